"""Read one manifest file as data: a regular file, under the size cap, inside the allowed roots.

Why so careful: the files of a scan are named by whoever sent the request (or by whoever can
write into a scanned folder). A FIFO named ``x.yaml`` blocks a plain ``open()`` forever, a
symlink to ``/dev/zero`` never ends, a 500 MB file is 500 MB of memory, and a symlink (or a
folder swapped for one after the request was checked) can point anywhere on the machine. So:

- the file is ``stat``-ed first and only a regular file under ``max_file_bytes`` goes on;
- its real path must lie inside ``allowed_roots`` (when roots are configured);
- it is opened by that real path with ``O_NOFOLLOW | O_NONBLOCK`` (a symlink swapped in since
  the check fails the open; nothing can block), and the opened descriptor must be the very file
  that was checked (same device and inode) and, by ``/proc/self/fd``, still inside the roots;
- at most ``max_file_bytes + 1`` bytes are read, so a file that grows meanwhile is refused too.

Every refusal is an ``UnreadableFile`` with a short reason that never shows where a symlink
points; the loader turns it into a per-file warning and scans the other files.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024
"""16 MiB: ten times what the API server stores for one object (1.5 MiB), so no real manifest
file is refused, and a scan's memory stays bounded per file."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_PROC_FD = "/proc/self/fd"
_READ_CHUNK = 1024 * 1024


class UnreadableFile(Exception):
    """A file the engine will not read; ``str()`` is the caller-safe reason."""


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What the engine may read. Built once per scan from the settings and passed down."""

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    allowed_roots: tuple[str, ...] = ()
    """Real (symlink-free) directories every file must lie in; empty = no confinement (CLI)."""
    real_folders: dict[str, str] | None = field(default=None, compare=False, repr=False)
    """A folder's real path by its name, worked out once per scan (``for_scan``): ``realpath``
    of every file's path, an ``lstat`` per component, cost a 6,668-file scan 0.13 CPU s of its
    0.22 for reading. None: resolved per file. Never shared between scans: a folder swapped for
    a symlink since would keep its old answer (the ``/proc/self/fd`` check still refuses any
    read outside the roots, but a scan would not see the swap)."""

    def for_scan(self) -> ReadLimits:
        """These limits with a cache of folders' real paths of its own, for one scan's reads;
        only where ``read_manifest`` checks the opened file through ``/proc/self/fd``."""
        if not self.allowed_roots or not os.path.isdir(_PROC_FD):
            return self
        return replace(self, real_folders={})

    @classmethod
    def create(cls, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
               allowed_roots: Sequence[str | os.PathLike[str]] = ()) -> ReadLimits:
        """Limits with the roots resolved now (a root that is itself a symlink counts as its target)."""
        return cls(max_file_bytes, tuple(os.path.realpath(os.path.expanduser(os.fspath(r))) for r in allowed_roots))


def within_roots(real_path: str, roots: Sequence[str]) -> bool:
    """Is ``real_path`` (already resolved) one of ``roots`` or below one of them?"""
    for root in roots:
        if real_path == root or real_path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such file (removed or a dangling symlink)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "the path changed into a symlink while being read; skipped"
    return f"cannot read file: {exc.strerror or exc.__class__.__name__}"


def _check_mode(st: os.stat_result, limits: ReadLimits) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(f"{_kind(st.st_mode)}, not a regular file; skipped")
    if st.st_size > limits.max_file_bytes:
        raise UnreadableFile(f"{st.st_size} bytes, over the {limits.max_file_bytes}-byte limit "
                             "(MCP_KSCAN_MAX_FILE_BYTES); skipped")


def _real_path(path: str, folders: dict[str, str] | None, is_link: bool) -> str:
    """``os.path.realpath(path)``, with the folder's part from ``folders`` when the file's own
    name is no symlink (``is_link``, from the caller's ``lstat``): its real path is then its real
    folder's joined with its name."""
    if folders is None:
        return os.path.realpath(path)
    head, name = os.path.split(path)
    if name in ("", ".", "..") or is_link:
        return os.path.realpath(path)
    return os.path.join(_real_folder(head, folders), name)


def _real_folder(folder: str, folders: dict[str, str]) -> str:
    """``os.path.realpath(folder)``, kept in ``folders``. A folder whose name is no symlink is its
    parent's real path joined with its name, the parent's found the same way: one ``lstat`` for a
    folder not seen before, where ``realpath`` walked every component of its path again (a folder
    per app, as in many repositories of manifests, holds one or two files)."""
    real = folders.get(folder)
    if real is not None:
        return real
    parent, name = os.path.split(folder)
    if not parent or parent == folder or name in ("", ".", "..") or stat.S_ISLNK(os.lstat(folder).st_mode):
        real = os.path.realpath(folder)
    else:
        real = os.path.join(_real_folder(parent, folders), name)
    if len(folders) >= _FOLDERS_KEPT:
        folders.clear()
    folders[folder] = real
    return real


_FOLDERS_KEPT = 4096


def read_manifest(path: str, limits: ReadLimits) -> bytes:
    """The bytes of the regular file at ``path``, or ``UnreadableFile`` saying why not."""
    try:
        # What the name points to now. Confined, the name itself first: nearly every name is no
        # symlink, and then its lstat is its stat (one system call, not two), and says so to _real_path.
        checked = os.lstat(path) if limits.allowed_roots else os.stat(path)
        is_link = stat.S_ISLNK(checked.st_mode)
        if is_link:
            checked = os.stat(path)
    except OSError as exc:
        raise UnreadableFile(_os_reason(exc)) from None
    _check_mode(checked, limits)
    if limits.allowed_roots:
        try:
            target = _real_path(path, limits.real_folders, is_link)
        except OSError as exc:
            raise UnreadableFile(_os_reason(exc)) from None
        if not within_roots(target, limits.allowed_roots):
            raise UnreadableFile("outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS); skipped")
        flags = _OPEN_FLAGS
    else:
        # Nothing confines the read, so the name may be followed as it stands (no realpath: a
        # tenth of reading a small file); the (device, inode) check below still ties what is
        # read to the regular file checked above.
        target, flags = path, _OPEN_FLAGS & ~os.O_NOFOLLOW
    try:
        fd = os.open(target, flags)
    except OSError as exc:
        raise UnreadableFile(_os_reason(exc)) from None
    try:
        opened = os.fstat(fd)
        _check_mode(opened, limits)
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            raise UnreadableFile("the file was replaced while being read; skipped")
        # A scan's limits (``for_scan``) found /proc/self/fd once; others look each time.
        if limits.allowed_roots and (limits.real_folders is not None or os.path.isdir(_PROC_FD)):
            # The kernel's own name for what was opened: a parent folder swapped for a symlink
            # between realpath() and open() shows here, whatever the race.
            actual = os.readlink(f"{_PROC_FD}/{fd}")
            if not within_roots(actual, limits.allowed_roots):
                raise UnreadableFile("outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS); skipped")
        # A regular file never blocks; clear O_NONBLOCK anyway so reads behave normally.
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limits.max_file_bytes:
            chunk = os.read(fd, min(_READ_CHUNK, limits.max_file_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limits.max_file_bytes:
            raise UnreadableFile(f"over the {limits.max_file_bytes}-byte limit (MCP_KSCAN_MAX_FILE_BYTES); skipped")
        return b"".join(chunks)
    except OSError as exc:
        raise UnreadableFile(_os_reason(exc)) from None
    finally:
        os.close(fd)
