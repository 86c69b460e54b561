"""Scanners die with their server: the parent-death signal, on Linux.

A server that dies without its clean-up (``kill -9``, the OOM killer, a replica's node lost)
cannot stop its scanners, and a scanner has no deadline of its own: the server enforced it. On
Linux each scanner therefore asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), between fork and exec, through a tiny exec wrapper:
``python -I -S -c WRAPPER <server pid> <binary path> <argv…>`` sets the signal, exits if the server
already died in between (``getppid`` changed: the signal would never come), then ``execv``s the
scanner. The pid, process group, environment and working directory stay the scanner's. The cost
is one bare interpreter start (about 20-50 ms) per scanner process. The built-in engine, this
package's own code, skips it: it calls ``die_with_parent`` itself, first thing, with the server's
pid from its spec (``run_process(arms_death_signal=True)``, ``engine.entry``).

Why a wrapper and not ``preexec_fn``: anyio's ``open_process`` has no ``preexec_fn``, and Python
code run between fork and exec in a server with other threads (the database thread, anyio's
worker threads) may block forever on a lock another thread held at the fork.

What the signal covers, and what it does not:

- It fires when the *thread* that started the child ends, not the process: ``run_process``
  starts children from the event loop's thread, which lives as long as the server.
- It reaches the direct child only. What a scanner starts itself (kube-bench's shell audits,
  the built-in engine's renderers) stays in the scanner's process group: a server on the same
  machine kills that group when it settles the dead server's scan
  (``ResultsStore.recover_sync``), and in a container everything dies with the container.
- A set-user-ID scanner binary drops the signal at exec (the kernel's rule).
- Other systems (macOS, the BSDs) have no parent-death signal: there scanners are started
  directly, and a killed server's scanners run until they end by themselves, unless a server
  started on the same machine kills their recorded process group (at start-up, or on its lease
  sweep when the database is shared).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

SUPPORTED = sys.platform.startswith("linux")

# PR_SET_PDEATHSIG = 1, SIGKILL = 9. Exit 127 (as a shell would) when the exec itself fails.
_WRAPPER = (
    "import ctypes, os, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0) != 0:\n"
    "    sys.exit('mcp-kscan: prctl(PR_SET_PDEATHSIG) failed: ' + os.strerror(ctypes.get_errno()))\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(137)\n"
    "try:\n"
    "    os.execv(sys.argv[2], sys.argv[3:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write('mcp-kscan: cannot run %s: %s\\n' % (sys.argv[2], exc.strerror))\n"
    "    os._exit(127)\n"
)


def resolve_executable(argv0: str, env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None) -> str:
    """``argv0`` as the exec would find it (the child's PATH, relative to its cwd); raises as Popen would.

    Resolved here, in the server, so a missing scanner is still a ``FileNotFoundError`` from
    ``run_process`` rather than an exit code from the wrapper.
    """
    if os.sep in argv0:
        path = Path(argv0) if os.path.isabs(argv0) else Path(cwd or os.getcwd()) / argv0
        candidates = [path]
    else:
        candidates = [Path(d or ".") / argv0 for d in os.get_exec_path(dict(env) if env is not None else None)]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.absolute())
    if candidates and candidates[0].is_file() and os.sep in argv0:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), argv0)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv0)


def with_parent_death_signal(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None
) -> list[str]:
    """The argv that runs ``argv`` so that it is killed when this process dies (Linux); else ``argv``."""
    if not SUPPORTED:
        return list(argv)
    binary = resolve_executable(argv[0], env, cwd)
    return [sys.executable, "-I", "-S", "-c", _WRAPPER, str(os.getpid()), binary, *argv]


def die_with_parent(sig: int, parent_pid: int) -> None:
    """Ask for ``sig`` when this process's parent (``parent_pid``) dies: what a server worker
    (``http_compat.workers``) and the built-in engine (``engine.entry``) call first thing. Linux
    only; elsewhere nothing happens."""
    if not SUPPORTED:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, int(sig), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os.kill(os.getpid(), sig)
