"""What the server needs from a finished built-in scan, computed in the engine's own process.

Reading a 100 MB report into Python objects takes seconds of CPU and a heap of millions of
objects; in the server that stalls the event loop (every full garbage collection walks that
heap) and its memory grows with what the scan read. So the engine process, right after writing
the report, also writes its summary (``summary.json``) and the store's item rows
(``items.jsonl``, one JSON array per line, ``runner.store.report_items``'s order). The server
reads the small summary and streams the rows into the database, one line at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_kscan.reports import KubescapeSummary, summarize_kubescape

SUMMARY_NAME, ITEMS_NAME = "summary.json", "items.jsonl"


def write_digest(raw: bytes, directory: Path) -> None:
    """Parse the report ``raw`` here (the engine's process) and write the summary and item rows."""
    from mcp_kscan.readers.kubescape_report import parse_report
    from mcp_kscan.runner.store import report_items

    report = parse_report(raw)
    _write_atomically(directory / ITEMS_NAME, (json.dumps(list(row)) + "\n" for row in report_items(report)))
    _write_atomically(directory / SUMMARY_NAME, [summarize_kubescape(report).model_dump_json()])


def _write_atomically(path: Path, pieces: Any) -> None:
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", encoding="utf-8") as fh:
        for piece in pieces:
            fh.write(piece)
    os.replace(partial, path)


def read_summary(directory: Path) -> KubescapeSummary:
    return KubescapeSummary.model_validate_json((directory / SUMMARY_NAME).read_bytes())


def item_rows(directory: Path) -> Iterator[tuple[Any, ...]]:
    """The rows, read lazily. The file is opened now: the scan's directory is removed before the
    manager stores the outcome, and an open file outlives its name."""
    fh = open(directory / ITEMS_NAME, "rb")  # noqa: SIM115 - closed by the generator below

    def rows() -> Iterator[tuple[Any, ...]]:
        with fh:
            for line in fh:
                yield tuple(json.loads(line))

    return rows()
