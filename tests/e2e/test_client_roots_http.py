"""Client roots over streamable HTTP: roots/list travels on the tool call's own response stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


async def test_relative_paths_resolve_against_roots_over_http(http_server) -> None:  # type: ignore[no-untyped-def]
    async def roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=CORPUS.as_uri(), name="corpus")])

    async with Client(http_server.base_url + "/mcp", mode="legacy", list_roots_callback=roots) as client:  # type: ignore[arg-type]
        result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": ["badpods"], "wait_seconds": 120})
    assert not result.is_error, result.content
    assert result.structured_content["request"]["paths"] == [str(CORPUS / "badpods")]
    assert result.structured_content["status"] == "succeeded"
