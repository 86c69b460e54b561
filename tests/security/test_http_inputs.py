"""The corpus against a real uvicorn server: a sample of the REST cases, every raw body, a wrong
token and a sample of the MCP tools' cases over streamable HTTP. Same checks as
in-process: rejected with a clear 4xx, no scanner started, no file written, nothing leaked.

Every REST case runs in-process (test_rest_inputs.py) and every tool case too (test_mcp_inputs.py):
the refusals are the app's. Here a real socket and uvicorn carry a sample of the body and query
cases (covering_sample: every field and every attack), and all the raw bodies, whose bytes
(nesting 100,000 deep, 2 MiB, invalid UTF-8) are what a server process has to survive.

Everything that needs the server is one test, so one server serves it: under pytest -n a
module-scoped server is started again in every worker that runs one of the module's tests
(1.3-1.6 s of CPU each). The test runs every case (checks.CaseFailures) and names each that failed.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import httpx2
import pytest
from e2e.conftest import HttpServer, start_http_server, stop_server
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .checks import CaseFailures, assert_rejected_cleanly
from .conftest import SecEnv
from .corpus import Case, fill
from .test_mcp_inputs import CASES as TOOL_CASES
from .test_mcp_inputs import base_args
from .test_rest_inputs import (
    AUTH,
    BODY_CASES,
    JSON,
    QUERY_CASES,
    walk_rest_corpus,
)


def covering_sample(cases: list[Case]) -> list[Case]:
    """The first case of each (route, field) and of each attack: every field meets an attack over
    the socket, and every attack a field."""
    fields: set[tuple[str, str]] = set()
    attacks: set[str] = set()
    sample = []
    for case in cases:
        if (case.tool, case.field) not in fields or case.attack not in attacks:
            sample.append(case)
            fields.add((case.tool, case.field))
            attacks.add(case.attack)
    return sample


HTTP_TOOL_CASES = covering_sample(TOOL_CASES)
"""As many cases as every ninth one was (241), but every tool field (178) and every attack (67)
goes over streamable HTTP, where every ninth reached 90 fields and 60 attacks."""
HTTP_BODY_CASES = covering_sample(BODY_CASES)
HTTP_QUERY_CASES = covering_sample(QUERY_CASES)


@pytest.fixture(scope="module")
def server(sec_env: SecEnv) -> Iterator[HttpServer]:
    srv = start_http_server(sec_env.env, sec_env.tmp)
    try:
        yield srv
    finally:
        stop_server(srv)


async def mcp_over_http(mcp_http: Client, sec_env: SecEnv, case: Case) -> None:
    args = {**base_args(case.tool), case.field: fill(case.value, str(sec_env.root), str(sec_env.outside))}
    starts, files = len(sec_env.fake.starts()), sec_env.files()
    result = await mcp_http.call_tool(case.tool, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, f"accepted: {text[:300]}"
    assert_rejected_cleanly(sec_env, text, case.field, starts, files)


@pytest.mark.slow
@pytest.mark.anyio
async def test_the_http_server_refuses_the_corpus(server: HttpServer, sec_env: SecEnv) -> None:
    """REST bodies, query parameters and raw bodies, a wrong token, and the MCP tools' subset over
    streamable HTTP, after a positive control."""
    failures = CaseFailures()
    async with httpx.AsyncClient(base_url=server.base_url, headers={**AUTH, **JSON}, timeout=30) as http:
        await walk_rest_corpus(http, sec_env, failures, HTTP_BODY_CASES, HTTP_QUERY_CASES)
    async with (httpx2.AsyncClient(headers=AUTH, timeout=30) as hc,
                Client(streamable_http_client(server.base_url + "/mcp", http_client=hc)) as mcp_http):
        for case in HTTP_TOOL_CASES:
            with failures.case(f"MCP over HTTP {case.id}"):
                await mcp_over_http(mcp_http, sec_env, case)
    failures.assert_none()
