"""The built-in engine's one entry point: a scan spec in, the Kubescape v2 JSON report out.

The CLI calls ``run_engine`` in its own process. The server never scans in its own process: it
runs ``python -m mcp_kscan.engine.entry SPEC REPORT`` through the runner's ``run_process``, like a
scanner binary, so the scan gets a process group, the scan timeout, an output cap, cancellation
and orphan clean-up after a crash, uses every CPU (forked workers) and never holds the server's
GIL or memory. Killing the group ends the scan and frees its memory at once.

The child marks itself batch work (``as_batch_work``: SCHED_BATCH) so the server it serves
answers first on a busy machine. It speaks on stderr in JSON lines:
``{"progress": [files_done, files_total], "resources": [resources_done, resources_total]}`` while
it reads and checks (what each number means when: ``engine.progress``), and ``{"error": "..."}``
(one line, caller-safe) when it fails; the report goes to the REPORT file, written whole or not at all.

``python -m mcp_kscan.engine.entry --standby SERVER_PID`` is the same process started ahead of its
scan (``runner.standby``): it arms its parent-death signal, imports what a scan uses, and waits
for one order on stdin (``{"spec": ..., "report": ..., "cwd": ...}``, a JSON line), then runs
exactly as above. The interpreter's start and the imports (about 0.09 s, most of a small scan's
time) are then behind it when the scan begins. It leaves quietly when stdin closes without an
order. Its name in ``ps`` says which it is: ``kscan-standby`` while it waits, ``kscan-engine``
once it scans (either way).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mcp_kscan.engine.progress import ProgressFn, ScanProgress
from mcp_kscan.engine.reading import DEFAULT_MAX_FILE_BYTES, ReadLimits
from mcp_kscan.engine.render import Renderers
from mcp_kscan.engine.report_file import open_report

EXIT_OK, EXIT_FAILED, EXIT_BAD_SELECTION, EXIT_TOO_BIG = 0, 1, 2, 3
PROGRESS_INTERVAL_S = 0.25


@dataclass
class EngineSpec:
    """Everything one built-in scan needs, as plain JSON-able data (it crosses a process boundary)."""

    paths: list[str] = field(default_factory=list)
    """Files and folders; none means the live cluster."""
    frameworks: list[str] | None = None
    controls: list[str] | None = None
    omit_raw_resources: bool = False
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    allowed_roots: list[str] = field(default_factory=list)
    workers: int | None = None
    """Worker processes; None = one per CPU when the scan is big enough."""
    report_cap_bytes: int | None = None
    """Refuse to write a report larger than this (the server's MCP_KSCAN_ENGINE_REPORT_CAP_BYTES)."""
    digest_dir: str | None = None
    """Also write the summary and the store's item rows here (``engine.digest``): the server's case."""
    findings: bool = True
    """With ``digest_dir``: the store's findings too. False writes the summary only, for a result
    that is handed out once and deleted (REST's ``wait=true`` without ``keep``): nobody pages its
    findings, and working them out is a fifth of a big scan's CPU."""
    cluster: dict[str, Any] | None = None
    """A ``ClusterSource`` as a dict (the operator's kubeconfig and a context, or in-cluster)."""
    controls_config: str | None = None
    """A controls-config file (Kubescape's control inputs), read when the scan runs."""
    include_namespaces: list[str] = field(default_factory=list)
    exclude_namespaces: list[str] = field(default_factory=list)
    kubectl: str | None = None
    """``kubectl`` to render Kustomize directories with (found by the planner); None: not rendered."""
    helm: str | None = None
    """``helm`` to render Helm charts with; None: charts are reported as not rendered."""
    exceptions: str | None = None
    """A Kubescape exceptions file (postureExceptionPolicy list), as Kubescape's --exceptions."""
    system_exceptions: bool = True
    """Apply Kubescape's system exceptions (regolibrary's), as Kubescape does by default."""
    workload: list[str] | None = None
    """[kind, namespace, name]: scan that one cluster object (``engine.workload``), not the whole cluster."""
    server_pid: int | None = None
    """The server that started this process (``python -m mcp_kscan.engine.entry``): the engine
    asks for SIGKILL when it dies (``runner.deathsig``), itself, first thing, so the server starts
    it without the wrapper interpreter other scanners need (one interpreter start saved per scan)."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> EngineSpec:
        fields: dict[str, Any] = json.loads(data)
        return cls(**fields)

    def limits(self) -> ReadLimits:
        return ReadLimits.create(self.max_file_bytes, self.allowed_roots)

    def renderers(self) -> Renderers:
        return Renderers(kubectl=self.kubectl, helm=self.helm)


def run_engine(spec: EngineSpec, on_progress: ProgressFn | None = None) -> bytes:
    """The scan ``spec`` describes, as the report's UTF-8 JSON bytes (strict JSON: no NaN).

    Raises ``UnknownSelection`` for unknown framework or control names, before reading anything.
    """
    out = io.BytesIO()
    write_engine(spec, out, on_progress)
    return out.getvalue()


def write_engine(spec: EngineSpec, out: BinaryIO, on_progress: ProgressFn | None = None,
                 on_report: Callable[[], None] | None = None) -> int:
    """``run_engine`` written to ``out`` as it is produced (a file scan's report is never held whole).

    Returns how many Kubernetes objects the scan read (0: nothing scanned, no score). ``on_report``:
    called when the report is whole and the digest's items are still to be written (a file scan
    with ``digest_dir``; ``parallel.write_scan_json``)."""
    from mcp_kscan.engine.inputs import load_controls_config

    from mcp_kscan.engine.exceptions import Exceptions

    inputs = load_controls_config(spec.controls_config) if spec.controls_config else None
    exceptions = Exceptions.build(spec.exceptions, system=spec.system_exceptions)
    if spec.paths:
        from mcp_kscan.engine.parallel import write_scan_json

        return write_scan_json(out, spec.paths, spec.frameworks, spec.controls,
                               omit_raw_resources=spec.omit_raw_resources, workers=spec.workers, limits=spec.limits(),
                               on_progress=on_progress, inputs=inputs, renderers=spec.renderers(), exceptions=exceptions,
                               digest_dir=spec.digest_dir, findings=spec.findings, on_report=on_report)
    from mcp_kscan.cluster import ClusterSource
    from mcp_kscan.engine.cluster import ClusterError, scan_cluster

    if spec.cluster is None:
        raise ClusterError("no cluster configured: the server has no kubeconfig (KUBECONFIG, ~/.kube/config) and "
                           "no in-cluster service account; give paths to scan manifests")
    if spec.workload is not None:
        from mcp_kscan.engine.workload import scan_workload

        kind, namespace, name = spec.workload
        report = scan_workload(kind, namespace, name, ClusterSource(**spec.cluster), spec.frameworks, spec.controls,
                               omit_raw_resources=spec.omit_raw_resources, inputs=inputs, exceptions=exceptions)
    else:
        report = scan_cluster(
            ClusterSource(**spec.cluster), frameworks=spec.frameworks, controls=spec.controls,
            include_namespaces=spec.include_namespaces, exclude_namespaces=spec.exclude_namespaces,
            omit_raw_resources=spec.omit_raw_resources, inputs=inputs, exceptions=exceptions,
        )
    out.write(json.dumps(report, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    if spec.digest_dir is not None:
        from mcp_kscan.engine.digest import write_digest

        write_digest(report, Path(spec.digest_dir))  # from the dict: a cluster's report is small
    return len(report.get("resources") or [])


def as_batch_work() -> None:
    """Mark this process (and the workers it forks) as CPU-bound batch work: Linux's SCHED_BATCH.

    Why not a lower priority: the engine ran at nice 10 until 2026-12-02, and on the 2-vCPU
    virtual machine that cost the scan 10-40% of its wall time (anything else runnable, down to
    the kernel's own threads, took ten times its share), while the reads it was meant to protect
    answered no faster: during a 20,000-resource scan /livez, /v1/status and MCP scan_status had
    p99 8-18 ms either way (docs/benchmarks-engine.md). A batch task keeps its full share of the
    CPU but never preempts a task that wakes up, so the server's answers still go first.
    Where SCHED_BATCH does not exist (not Linux), the scan runs as it is."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError:
        pass  # refused (a seccomp profile, say): the scan still runs, at the server's priority


def _say(message: dict[str, Any]) -> None:
    """One JSON line on stderr in one write(2): lines from forked workers never interleave."""
    os.write(2, (json.dumps(message) + "\n").encode("utf-8"))


def _throttled_progress() -> ProgressFn:
    last = [0.0]

    def report(progress: ScanProgress) -> None:
        now = time.monotonic()
        if progress.milestone or now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            _say(progress.to_message())

    return report


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or exc.__class__.__name__)[:300]


ORDER_MAX_BYTES = 64 * 1024
"""The longest order a standby reads (paths, JSON-encoded): anything longer is refused."""


def _name_process(name: bytes) -> None:
    """What ``ps``/``top`` show as the command (Linux's ``PR_SET_NAME``, 15 bytes at most)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass  # a name is a courtesy to operators: the scan runs without it


def _preload() -> None:
    """Import what a file scan imports (its workers, the digest, the hashes, the exceptions, the
    control inputs), so that a standby has none of it left to do when its order comes."""
    import fcntl  # noqa: F401 - imported for its side effect: loaded once, here
    import pickle  # noqa: F401

    import mcp_kscan.engine.digest  # noqa: F401
    import mcp_kscan.engine.exceptions  # noqa: F401
    import mcp_kscan.engine.inputs  # noqa: F401
    import mcp_kscan.engine.parallel  # noqa: F401
    import mcp_kscan.fixes.hashes  # noqa: F401


def _read_order() -> dict[str, str] | None:
    """The server's one order from stdin, or None when stdin closed without one. Read with
    ``os.read`` (no buffer that could hold bytes past the line), at most ``ORDER_MAX_BYTES``."""
    data = b""
    while not data.endswith(b"\n") and len(data) <= ORDER_MAX_BYTES:
        chunk = os.read(0, ORDER_MAX_BYTES + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if not data.strip():
        return None
    order = json.loads(data)
    if not isinstance(order, dict) or not all(isinstance(order.get(k), str) for k in ("spec", "report", "cwd")):
        raise ValueError("an order is a JSON object of strings: spec, report, cwd")
    return {k: order[k] for k in ("spec", "report", "cwd")}


def standby(server_pid: int) -> int:
    """``--standby SERVER_PID``: wait, warm, for one order on stdin, then scan (see module doc)."""
    import signal

    from mcp_kscan.runner.deathsig import die_with_parent

    try:
        die_with_parent(signal.SIGKILL, server_pid)
    except OSError as exc:
        _say({"error": f"cannot ask to die with the server: {_one_line(exc)}"})
        return EXIT_FAILED
    _name_process(b"kscan-standby")
    _preload()
    try:
        order = _read_order()
    except (OSError, ValueError) as exc:
        _say({"error": f"bad order: {_one_line(exc)}"})
        return EXIT_FAILED
    if order is None:
        return EXIT_OK  # the server no longer wants this standby (shut down, or replaced it)
    # Nothing the scan starts (a renderer) reads the server's pipe: stdin is /dev/null, as for
    # every scanner the runner starts.
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        os.chdir(order["cwd"])
    except OSError as exc:
        _say({"error": f"cannot enter the scan's directory: {_one_line(exc)}"})
        return EXIT_FAILED
    return _scan(order["spec"], order["report"])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mcp_kscan.engine.entry SPEC REPORT``: scan, write REPORT, exit 0; or
    ``--standby SERVER_PID`` (see module doc)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--standby"] and len(args) == 2 and args[1].isdigit():
        return standby(int(args[1]))
    if len(args) != 2 or args[0] == "--standby":  # not a spec named "--standby": a mistyped pid
        _say({"error": "usage: python -m mcp_kscan.engine.entry SPEC REPORT | --standby SERVER_PID"})
        return EXIT_FAILED
    return _scan(*args)


def _scan(spec_path: str, report_path: str) -> int:
    from mcp_kscan.engine.exceptions import ExceptionsError
    from mcp_kscan.engine.frameworks import UnknownSelection
    from mcp_kscan.engine.inputs import ControlsConfigError

    try:
        with open(spec_path, "rb") as fh:
            spec = EngineSpec.from_json(fh.read())
    except Exception as exc:  # noqa: BLE001 - as below: one line for the parent
        _say({"error": f"{exc.__class__.__name__}: {_one_line(exc)}"})
        return EXIT_FAILED
    if spec.server_pid is not None:
        import signal

        from mcp_kscan.runner.deathsig import die_with_parent

        try:
            die_with_parent(signal.SIGKILL, spec.server_pid)
        except OSError as exc:
            _say({"error": f"cannot ask to die with the server: {_one_line(exc)}"})
            return EXIT_FAILED
    _name_process(b"kscan-engine")
    as_batch_work()
    # Written as it is produced, never held whole; it takes its name only once complete and within the cap.
    partial = report_path + ".part"
    placed = False

    def place(out: BinaryIO) -> None:
        """The report, whole: named, or refused over the cap (``_TooBig``: nothing after it runs)."""
        nonlocal placed
        out.flush()
        size = out.tell()
        if spec.report_cap_bytes is not None and size > spec.report_cap_bytes:
            raise _TooBig(size)
        os.replace(partial, report_path)
        placed = True

    def announce(out: BinaryIO) -> None:
        # The server may store the result now (``REPORT_READY``); the digest's items follow,
        # behind it (the workers lower theirs when asked for them: ``parallel._worker``).
        from mcp_kscan.engine.parallel import behind_the_server

        place(out)
        _sync_soon(out.fileno())
        behind_the_server()
        _say(REPORT_READY)

    try:
        with open_report(partial) as out:  # read-write: the workers fill it through mappings
            write_engine(spec, out, _throttled_progress(), on_report=lambda: announce(out))
            if not placed:
                place(out)
    except _TooBig as exc:
        os.unlink(partial)
        _say({"error": f"the report is {exc.size} bytes, over the built-in engine's report cap of "
                       f"{spec.report_cap_bytes} (MCP_KSCAN_ENGINE_REPORT_CAP_BYTES); scan fewer files "
                       "or use omit_raw_resources"})
        return EXIT_TOO_BIG
    except (UnknownSelection, ControlsConfigError, ExceptionsError) as exc:
        _say({"error": str(exc)})
        return EXIT_BAD_SELECTION
    except Exception as exc:  # noqa: BLE001 - the parent records one line; the traceback helps nobody there
        _say({"error": f"{exc.__class__.__name__}: {_one_line(exc)}"})
        return EXIT_FAILED
    return EXIT_OK


REPORT_READY = {"report": "ready"}
"""The line (on stderr, as progress) saying the report is whole under its name, and the digest's
head beside it: the server may store the result while the engine writes the items."""


def _sync_soon(fd: int) -> None:
    """Start writing the report to disk now, on a thread: the server syncs it before its row
    names it (``runner.report_files``), and a 10,000-resource report's 85 MB took it 0.03-0.06 s
    after it had read the summary; started here, most of that is done by then."""
    import threading

    copy = os.dup(fd)

    def sync() -> None:
        try:
            getattr(os, "fdatasync", os.fsync)(copy)  # Python has no fdatasync on macOS
        except OSError:
            pass  # the server's own sync reports any failure
        finally:
            os.close(copy)

    threading.Thread(target=sync, name="report-sync", daemon=True).start()


class _TooBig(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


if __name__ == "__main__":
    from mcp_kscan.engine.process_exit import leave

    leave(main())
