"""Write a fixed manifest back: atomically, with its permissions, only inside the allowed roots.

The rules, and why:

- only inside the roots (``MCP_KSCAN_ALLOWED_ROOTS``, or the client's MCP roots): a scan may
  have read a file anywhere it was allowed to read, but a write is a bigger power;
- never through a symlink that leads out: the file's real path must be inside a root, the file
  itself must not be a symlink (replacing it would cut the link), and its folder is opened with
  ``O_NOFOLLOW`` and checked again by the kernel's own name for it (``/proc/self/fd``), so a
  folder swapped for a symlink after the check is caught;
- never over a change: the file's bytes, read through that folder descriptor right before the
  write, must have the SHA-256 recorded when the scan read it;
- atomically: the new text goes to a temporary file in the same folder, with the old file's mode
  (and owner, when the server may set it), is flushed, and replaces the old file in one rename,
  so a reader sees the old file or the new one, never half of each.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Sequence

from mcp_kscan.engine.reading import within_roots

_PROC_FD = "/proc/self/fd"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class WriteRefused(Exception):
    """Why a file is not written; ``str()`` is caller-safe (it never says where a symlink points)."""


def real_roots(roots: Sequence[str | os.PathLike[str]]) -> list[str]:
    return [os.path.realpath(os.path.expanduser(os.fspath(r))) for r in roots]


def check_writable(path: str, roots: Sequence[str]) -> str:
    """The real path of ``path`` when the rules allow writing it, else ``WriteRefused``."""
    if not roots:
        raise WriteRefused("no allowed roots are configured (MCP_KSCAN_ALLOWED_ROOTS, or the client's MCP roots): "
                           "fixes are written only inside them")
    if os.path.islink(path):
        raise WriteRefused("the file is a symlink; fix the file it points to by its own path")
    real = os.path.realpath(path)
    if not within_roots(real, roots):
        raise WriteRefused("outside the allowed roots (or reached through a symlink that leads out of them)")
    return real


def _read_all(fd: int, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise WriteRefused("the file grew past the size limit since the scan")
        chunks.append(chunk)


def replace_file(path: str, data: bytes, roots: Sequence[str], expected_sha256: str,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
    """Replace the file at ``path`` with ``data`` if it still holds what the scan read."""
    real = check_writable(path, roots)
    directory, name = os.path.split(real)
    try:
        dfd = os.open(directory, _DIR_FLAGS)
    except OSError:
        raise WriteRefused("its folder cannot be opened (it changed into a symlink, or is gone)") from None
    temp: str | None = None
    try:
        if os.path.isdir(_PROC_FD) and os.readlink(f"{_PROC_FD}/{dfd}") != directory:
            raise WriteRefused("its folder changed since it was checked (a symlink swapped in?)")
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
        except OSError:
            raise WriteRefused("the file is gone or changed into a symlink since the scan") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise WriteRefused("not a regular file")
            os.set_blocking(fd, True)
            current = _read_all(fd, max_bytes)
        finally:
            os.close(fd)
        if hashlib.sha256(current).hexdigest() != expected_sha256:
            raise WriteRefused("the file changed since the scan; scan it again and propose the fix anew")
        temp = f".{name}.kscan-fix-{secrets.token_hex(6)}"
        tfd = os.open(temp, _TEMP_FLAGS, stat.S_IMODE(st.st_mode), dir_fd=dfd)
        try:
            os.fchmod(tfd, stat.S_IMODE(st.st_mode))  # the umask narrowed the mode given to open
            try:
                os.fchown(tfd, st.st_uid, st.st_gid)
            except PermissionError:
                pass  # a server not running as the owner keeps its own ownership; the mode is kept
            view = memoryview(data)
            while view:
                view = view[os.write(tfd, view):]
            os.fsync(tfd)
        finally:
            os.close(tfd)
        os.replace(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        temp = None
        os.fsync(dfd)
    except OSError as exc:
        raise WriteRefused(f"could not write the file: {exc.strerror or exc.__class__.__name__}") from None
    finally:
        if temp is not None:
            try:
                os.unlink(temp, dir_fd=dfd)
            except OSError:
                pass
        os.close(dfd)
