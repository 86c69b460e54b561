"""Helpers for the fault tests: process liveness, RSS, the scans table read straight from disk."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from servers import alive, wait_gone

__all__ = ["alive", "wait_gone", "wait_for", "rss_kib", "scan_rows", "kill_leftovers"]


@pytest.fixture(autouse=True)
def _fast_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_KSCAN_KILL_GRACE", "0.5")
    monkeypatch.setenv("MCP_KSCAN_SHUTDOWN_GRACE", "1")


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def scan_rows(data_dir: Path) -> dict[str, tuple[str, str | None]]:
    """scan_id -> (status, error), read from the database file itself."""
    with sqlite3.connect(data_dir / "scans.db") as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT scan_id, status, error FROM scans")}


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
