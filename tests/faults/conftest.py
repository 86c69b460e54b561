"""Helpers for the fault tests: process liveness, RSS, the scans table read straight from disk."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from servers import HttpServer, alive, stop_server, wait_gone

__all__ = ["ServerSlot", "alive", "kill_leftovers", "rss_kib", "scan_rows", "wait_for", "wait_gone"]


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


class ServerSlot:
    """A module's one server, which a test may also end (kill -9, SIGTERM) or replace.

    A server start is ~1.9 CPU s, mostly imports. A test about a server's end or restart takes the
    module's server (``take``) instead of starting one of its own, and a restarted server becomes
    the module's (``put``): the module then starts one server for the tests that leave it serving
    plus one per restart. Whatever the order the tests run in, ``get`` gives a live server: one is
    started (``start``, the module's settings) when a test ended the last.
    """

    def __init__(self, start: Callable[[], HttpServer]) -> None:
        self.start = start
        self._server: HttpServer | None = None

    def get(self) -> HttpServer:
        if self._server is None or self._server.process.poll() is not None:
            self.stop()
            self._server = self.start()
        return self._server

    def take(self) -> HttpServer:
        """The live server, no longer the module's: the caller ends it (``stop_server`` at the latest)."""
        server = self.get()
        self._server = None
        return server

    def put(self, server: HttpServer) -> None:
        """``server`` (started with ``start``) is the module's from now on."""
        self.stop()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            stop_server(self._server)
            self._server = None
