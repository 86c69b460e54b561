"""The content of each manifest as a scan read it, as SHA-256 digests.

A fix is computed from the file a scan read; writing it into a file that someone changed since
would overwrite their change with a patch made for other text. So every manifest scan records
the digest of each file, taken before and after the scanner ran: a file whose digest differs
between the two changed while it was being scanned and gets no digest (a fix then refuses it).
Files are read with the engine's rules (regular files, inside the allowed roots, size cap).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from mcp_kscan.engine.loader import LoadError, plan_files
from mcp_kscan.engine.reading import ReadLimits, UnreadableFile, read_manifest

if TYPE_CHECKING:
    from mcp_kscan.runner.records import TaskOutcome


def digest(data: bytes) -> str:
    """The digest of ``data``. The built-in engine's workers take it of every file they parse; this
    module imports the runner (and through it pydantic) only in ``scan_with_hashes``, which they never call."""
    return hashlib.sha256(data).hexdigest()


def file_hashes(paths: Sequence[str], limits: ReadLimits) -> dict[str, str]:
    """Absolute path → SHA-256 of every manifest file under ``paths`` (standard input has none)."""
    errors: list[LoadError] = []
    out: dict[str, str] = {}
    for job in plan_files([p for p in paths if p != "-"], errors, limits):
        try:
            out[os.path.abspath(job.path)] = digest(read_manifest(job.path, limits))
        except UnreadableFile:
            continue
    return out


def unchanged(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """The digests that were the same before and after the scan."""
    return {path: d for path, d in before.items() if after.get(path) == d}


async def scan_with_hashes(paths: Sequence[str], limits: ReadLimits,
                           run: Callable[[], Awaitable[TaskOutcome]]) -> TaskOutcome:
    """Run a manifest scan and record, on success, the digests of the files it read (unchanged ones)."""
    import anyio.to_thread

    from mcp_kscan.runner.records import ScanState

    if not paths:
        return await run()
    before = await anyio.to_thread.run_sync(file_hashes, paths, limits)
    outcome = await run()
    if outcome.status is ScanState.succeeded:
        outcome.file_hashes = unchanged(before, await anyio.to_thread.run_sync(file_hashes, paths, limits))
    return outcome
