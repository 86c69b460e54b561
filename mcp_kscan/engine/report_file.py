"""A report file the forked workers fill in parallel, each through a memory map of its own parts.

Why: a 10,000-resource report is 85 MB, and written with ``write(2)`` it went in one piece after
another, whoever wrote it: ext4 takes a file's inode lock for every buffered write, so two
workers writing their parts at once (``pwrite``) took as long as one after the other. Writing
into a file's new pages is not free: on the 2-vCPU virtual machine this project is measured on,
a page the guest has not used lately costs a fault in the host, and the report's write took
0.19-0.25 s of a 1.1-1.5 s scan (the same report to /dev/null: nothing). Page faults on a shared
mapping take no such lock, so two workers copying into their own mapped parts of the file fill
it in about half the time (85 MB: 0.24 s by ``writev``, 0.24 s by two ``pwritev``, 0.11 s by
two mappings).

How: once the workers have finished and said how long each fragment is, the parent knows every
byte's place (``ShardOutputs.write_report``): it reserves the file's blocks (``posix_fallocate``,
so a full disk is an ``OSError`` here and never a SIGBUS in a worker's copy), writes its own
pieces at their offsets, and each worker maps its parts and copies its pieces in. It needs a
regular file opened for reading and writing (a mapping cannot be written through a write-only
descriptor): ``open_report`` opens one where it can; any other output is written in turn, as
before.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
from typing import BinaryIO

Fragment = list[bytes | memoryview]
"""A worker's part of the report: pieces of bytes, in order, never joined whole."""

_JOIN = 2048
"""Pieces joined into one copy into the mapping: a slice assignment per piece cost ~0.2 µs, and a
slice's results are a quarter of a million pieces."""


def open_report(path: str | os.PathLike[str]) -> BinaryIO:
    """``open(path, "wb")``, but read-write for a regular file (new or existing), so the workers
    can map it (``mappable_fd``). Anything else (a FIFO, a device such as /dev/null) and a file
    this process may write but not read are opened write-only, as ``open`` does."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        regular = True
    if regular:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except PermissionError:
            pass  # write-only for us: open() says so, or writes it in turn
        else:
            return open(fd, "wb")
    return open(path, "wb")


def mappable_fd(fd: int) -> bool:
    """Whether the workers may fill ``fd`` through mappings: a regular file, open for reading
    and writing, not in append mode (whose writes go to the end whatever the offset)."""
    import fcntl  # here: only a scan that forks workers (never on Windows) writes through mappings

    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        return stat.S_ISREG(os.fstat(fd).st_mode) and flags & os.O_ACCMODE == os.O_RDWR and not flags & os.O_APPEND
    except OSError:  # a closed descriptor: written in turn, which says what is wrong
        return False


def reserve(fd: int, start: int, length: int) -> bool:
    """Make the file ``start + length`` bytes long with its blocks reserved, and check that it
    can be mapped; False (nothing written past ``start``) where it cannot be mapped."""
    if length <= 0:
        return False
    try:
        os.posix_fallocate(fd, start, length)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise  # no room for the report: the scan fails saying so, however it is written
        os.ftruncate(fd, start)  # not supported here (a C library that does not emulate it)
        return False
    try:
        with mmap.mmap(fd, length + start % mmap.ALLOCATIONGRANULARITY, offset=_page(start)):
            pass
    except (OSError, ValueError):
        os.ftruncate(fd, start)
        return False
    return True


def copy_mapped(fd: int, at: int, fragment: Fragment) -> None:
    """``fragment``'s pieces into the file at offset ``at`` (the file is long enough: ``reserve``)."""
    size = sum(map(len, fragment))
    if not size:
        return
    base = _page(at)
    with mmap.mmap(fd, size + at - base, offset=base) as mapped:
        pos = at - base
        for start in range(0, len(fragment), _JOIN):
            chunk = b"".join(fragment[start:start + _JOIN])
            mapped[pos:pos + len(chunk)] = chunk
            pos += len(chunk)


def pwrite_all(fd: int, data: bytes, at: int) -> None:
    """All of ``data`` at offset ``at`` (``pwrite`` may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, at)
        view, at = view[written:], at + written


def _page(offset: int) -> int:
    return offset - offset % mmap.ALLOCATIONGRANULARITY
