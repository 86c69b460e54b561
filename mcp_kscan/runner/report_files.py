"""Raw outputs kept as files beside ``scans.db`` (the SQLite store's big built-in reports).

Why: a 10,000-resource built-in scan writes an 85 MB report. Stored in SQLite it went through
the database's pages twice (the WAL, then the checkpoint: ~0.5 CPU s), was read back page by
page for the answer (~0.14) and freed page by page (~0.2): more than the server's whole share of
the scan. As a file it is the engine's file itself, linked (or, on another file system, copied
by the kernel: ``copy_file_range``; no byte passes through Python), streamed to its reader and
freed by one ``unlink``.

How it stays consistent with the database:

- a file is written under a fresh name (``<scan id>-<random>.json``), inside the write
  transaction that inserts its ``outputs`` row, and takes that name (``os.replace``) only once
  whole; a rolled-back transaction removes it;
- it is removed only after the transaction that deleted its row has committed, so a committed
  row never names a missing file;
- every file is written and removed while its process holds the database's write lock, so
  ``sweep`` (at start, inside a write transaction) sees only files that a committed row names or
  that no row ever will (a server killed between the copy and the commit): it removes those.

PostgreSQL keeps outputs in the database: several replicas on several machines read them.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from mcp_kscan.errors import StoreError

DIRECTORY_NAME = "reports"
"""The folder beside ``scans.db`` that holds them."""

_datasync = getattr(os, "fdatasync", os.fsync)
"""``fdatasync`` where the system has one (Python offers none on macOS): ``fsync`` there."""

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}\.json")
"""What a stored file is called: ``<scan id>-<random hex>.json``; nothing else is read or removed."""
_PARTIAL_SUFFIX = ".part"
_COPY_CHUNK = 1 << 30


class ReportFiles:
    """The folder of stored outputs (``DIRECTORY_NAME`` beside the database file)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        """The file a row names; a name that is not one of ours (a damaged row) is refused."""
        if not _NAME.fullmatch(name):
            raise StoreError(f"the results database names a stored output {name[:60]!r} that is not one of its files")
        return self.directory / name

    def store(self, scan_id: str, source: BinaryIO) -> tuple[str, int]:
        """Keep ``source`` (from its current position to its end) as a new file; returns its
        name and size. A whole file that still has a name on the same file system is linked
        (no byte copied: the engine's report, whose directory goes only after the store);
        otherwise the kernel copies it (``copy_file_range``). Either way the file is synced before
        it takes its name, so a row that names it never names a partial file after a power cut."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", scan_id)[:100]
        name = f"{safe}-{secrets.token_hex(6)}.json"
        final = self.directory / name
        partial = final.with_name(name + _PARTIAL_SUFFIX)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if source.tell() == 0 and _linked(source, final):
                return name, os.fstat(source.fileno()).st_size
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                size = _copy(source, fd)
                _datasync(fd)
            finally:
                os.close(fd)
            os.replace(partial, final)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"cannot store the scan's output in {self.directory.name}/: "
                             f"{exc.strerror or exc.__class__.__name__}") from None
        return name, size

    def sync_ahead(self, source: BinaryIO) -> None:
        """Start writing ``source``'s pages to disk on a thread of its own, and return at once.

        Why: ``store`` syncs the file before it takes its name, and the findings of a kept scan
        are inserted in the same transaction; started first, the sync runs while they are
        (a 20,000-resource report's sync took 0.07-0.09 s, the findings' rows 0.15-0.22 s), and
        ``store``'s own sync then waits only for what is left. The thread syncs a duplicate of
        the descriptor, so the caller may close the file whenever it likes. Only a file that
        ``store`` can link (the same file system): a copy is synced on its own."""
        try:
            linkable = os.fstat(source.fileno()).st_dev == _device(self.directory)
        except OSError:
            return
        if not linkable:
            return
        fd = os.dup(source.fileno())

        def sync() -> None:
            try:
                _datasync(fd)
            except OSError:
                pass  # store's own sync reports any failure
            finally:
                os.close(fd)

        threading.Thread(target=sync, name="mcp-kscan-report-sync", daemon=True).start()

    def read(self, name: str, size: int | None) -> bytes | None:
        """The file's bytes; None when it is gone (its result was deleted meanwhile, by another
        process sharing the database). A file of another size than stored is refused."""
        try:
            data = self.path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read a stored output: {exc.strerror or exc.__class__.__name__}") from None
        if size is not None and len(data) != size:
            raise StoreError(f"a stored output ({name}) is {len(data)} bytes, not the {size} stored: it was damaged")
        return data

    def open(self, name: str, size: int | None) -> BinaryIO | None:
        """The file, open for reading (the caller closes it): a big report is streamed from it,
        never held. None when it is gone; a file of another size than stored is refused."""
        try:
            fh = self.path(name).open("rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read a stored output: {exc.strerror or exc.__class__.__name__}") from None
        found = os.fstat(fh.fileno()).st_size
        if size is not None and found != size:
            fh.close()
            raise StoreError(f"a stored output ({name}) is {found} bytes, not the {size} stored: it was damaged")
        return fh

    def remove(self, names: Iterable[str]) -> None:
        """Remove files whose rows are gone (committed); one already gone is not an error."""
        for name in names:
            try:
                self.path(name).unlink(missing_ok=True)
            except (OSError, StoreError):
                continue  # a stray left here is swept at the next start

    def sweep(self, referenced: set[str]) -> int:
        """Remove every file no row names (and partial copies); the caller holds the write lock.
        Returns how many went."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        gone = 0
        for entry in entries:
            name = entry.name
            ours = _NAME.fullmatch(name) or (name.endswith(_PARTIAL_SUFFIX) and _NAME.fullmatch(name[:-len(_PARTIAL_SUFFIX)]))
            if ours and name not in referenced and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    gone += 1
                except OSError:
                    continue
        return gone


def _device(directory: Path) -> int:
    """The device ``directory`` is on, or will be (its nearest existing parent's, before it is made)."""
    for place in (directory, *directory.parents):
        try:
            return os.stat(place).st_dev
        except FileNotFoundError:
            continue
    raise FileNotFoundError(directory)


def _linked(source: BinaryIO, final: Path) -> bool:
    """Give the open file ``source`` the name ``final`` too, private and synced; False where that
    cannot be (no name left, another file system), for the caller to copy it. Linked by its
    path, and kept only if that path still named the very file open here."""
    path = getattr(source, "name", None)
    if not isinstance(path, str):
        return False
    try:
        os.link(path, final, follow_symlinks=False)
    except OSError:
        return False
    fd = source.fileno()
    try:
        opened, linked = os.fstat(fd), os.stat(final, follow_symlinks=False)
        if (opened.st_dev, opened.st_ino) != (linked.st_dev, linked.st_ino):
            final.unlink()
            return False
        os.fchmod(fd, 0o600)
        _datasync(fd)
    except OSError:
        final.unlink(missing_ok=True)
        raise
    return True


def _copy(source: BinaryIO, fd: int) -> int:
    """Copy ``source`` from its position to its end into ``fd`` (new, empty) in the kernel;
    returns the bytes copied."""
    src, start, total = source.fileno(), source.tell(), 0
    try:
        while True:
            copied = os.copy_file_range(src, fd, _COPY_CHUNK, start + total)
            if copied == 0:
                return total
            total += copied
    except OSError as exc:
        # Not every file system or kernel copies between files (EXDEV before Linux 5.3, some
        # FUSE and network mounts): the rest through user space, from where the kernel stopped.
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    source.seek(start + total)
    with open(fd, "wb", closefd=False) as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return os.fstat(fd).st_size
