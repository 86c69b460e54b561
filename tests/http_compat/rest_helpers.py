"""Helpers for the in-process REST tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import anyio
import httpx

JSON = {"Content-Type": "application/json"}

RestFactory = Callable[..., Awaitable[httpx.AsyncClient]]
"""The ``rest_factory`` fixture: ``await rest_factory({"ENV": "value"})`` -> a client of a fresh app."""


async def post_scan(client: httpx.AsyncClient, body: object = None, **params: str) -> httpx.Response:
    content = b"{}" if body is None else json.dumps(body).encode()
    return await client.post("/v1/scan", params=params, content=content, headers=JSON)


async def wait_not_busy(client: httpx.AsyncClient, scan_id: str, timeout: float = 30) -> None:
    with anyio.move_on_after(timeout):
        while True:
            body = (await client.get("/v1/status", params={"id": scan_id})).json()
            if body["type"] == "notBusy":
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"scan {scan_id} still busy after {timeout} s")


async def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)
        return
    raise AssertionError(f"condition not met within {timeout} s")
