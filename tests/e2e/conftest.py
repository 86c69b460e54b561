"""Real servers for end-to-end tests: a stdio subprocess, and uvicorn on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import HttpServer, free_port, start_http_server, stop_server

__all__ = ["HttpServer", "free_port", "start_http_server", "stop_server"]


@pytest.fixture
def http_server(fake_bin, tmp_path: Path) -> Iterator[HttpServer]:  # type: ignore[no-untyped-def]
    server = start_http_server(fake_bin.env, tmp_path)
    try:
        yield server
    finally:
        stop_server(server)
