"""The REST app in-process: ``build_app`` with its lifespan run, reached through httpx's ASGI transport.

Each test gets its own app, ScanManager, data directory and fakes, exactly as a fresh
``mcp-kscan serve --transport http`` would have, without a uvicorn subprocess to start and stop.
The scans themselves still run the fake scanners as real processes. What needs a real socket or
the real process's log (bind-address rules, DNS-rebinding protection, secrets in the log, a fuzzing
run) lives in tests/e2e (tests/e2e/test_rest_server.py, test_openapi_fuzz.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

import mcp_kscan.settings
from mcp_kscan.http_compat.app import build_app
from .rest_helpers import JSON, RestFactory

BASE_URL = "http://127.0.0.1"
# What launching the server would give it: short shutdown graces, and no token from the developer's shell.
SERVE_ENV = {"MCP_KSCAN_SHUTDOWN_GRACE": "1", "MCP_KSCAN_KILL_GRACE": "1"}
TOKEN_VARIABLES = ("MCP_KSCAN_TOKEN", "KS_API_TOKEN")


@pytest.fixture
async def rest_factory(fake_bin, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RestFactory]:  # type: ignore[no-untyped-def]
    """``await rest_factory({"ENV": "value"})``: a client of a fresh app whose settings come from
    that environment (on top of the fakes'), as the server would read them at start. ``wrap``
    (an ASGI middleware) sees every request and message in between."""

    async def make(env: dict[str, str] | None = None, wrap: Callable[[Any], Any] | None = None) -> httpx.AsyncClient:
        env = {**SERVE_ENV, **fake_bin.env, **(env or {})}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in TOKEN_VARIABLES:
            if name not in env:
                monkeypatch.delenv(name, raising=False)
        mcp_kscan.settings.configure(None)  # below the service layer, code still reads the global
        app = build_app(mcp_kscan.settings.get_settings())
        await stack.enter_async_context(app.router.lifespan_context(app))
        return await stack.enter_async_context(
            # Bodies are JSON, as the API requires (a text/plain body is 415: browsers send those without a preflight).
            httpx.AsyncClient(transport=httpx.ASGITransport(app=wrap(app) if wrap else app), base_url=BASE_URL,
                              timeout=60, headers=JSON)
        )

    try:
        async with AsyncExitStack() as stack:  # closed in reverse: clients, then each app's lifespan
            yield make
    finally:
        mcp_kscan.settings.configure(None)


@pytest.fixture
async def rest(rest_factory: RestFactory) -> httpx.AsyncClient:
    """A client of a fresh app with the default settings and the fake scanners."""
    return await rest_factory()
