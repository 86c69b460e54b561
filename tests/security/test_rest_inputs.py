"""Every REST body field, query parameter and raw body × the hostile corpus, through the app in-process.

The REST app (``build_app`` with its lifespan, httpx's ASGI transport) as ``mcp-kscan serve
--transport http`` builds it, with a token: each case must be refused with a clear 4xx that names
the field, start no scanner, write no file and leak nothing, after a positive control that does
start one. One test runs every case (checks.CaseFailures) and names each that failed.
tests/security/test_http_inputs.py sends a sample of these, the raw bodies and the MCP tools'
subset to a real uvicorn server, as test_mcp_inputs.py's tool cases are run in-process and a
sample of them over HTTP: the refusals are the app's, and ~1,200 requests through a real socket
cost twice the CPU for the same answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import AliasChoices, BaseModel

import mcp_kscan.settings
from mcp_kscan.http_compat.app import build_app
from mcp_kscan.http_compat.kube_bench_api import KubeBenchToolRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest

from .checks import CaseFailures, assert_rejected_cleanly
from .conftest import TOKEN, SecEnv
from .corpus import CANARY, STRING_ATTACKS, Case, attacks_for, fill

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


def _body_fields(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Wire name (Kubescape's camelCase where it has one) -> JSON schema of the field."""
    schema = model.model_json_schema()["properties"]
    out: dict[str, dict[str, Any]] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        wire = alias.choices[1] if isinstance(alias, AliasChoices) and len(alias.choices) > 1 else name
        out[str(wire)] = schema.get(name) or schema.get(str(wire)) or {}
    return out


BODY_ROUTES = {
    "/v1/scan": _body_fields(KubescapeRequest),
    "/api/tools/kube-bench": _body_fields(KubeBenchToolRequest),
}
BODY_CASES = [
    Case(f"POST {route}", field, attack, value)
    for route, fields in BODY_ROUTES.items()
    for field, schema in fields.items()
    for attack, value in attacks_for(schema).items()
] + [Case(f"POST {route}", "outputFile", "unknown_field", CANARY) for route in BODY_ROUTES]

QUERY_ROUTES = {
    ("POST", "/v1/scan"): ("wait", "keep", "skipPersistence", "callback", "outputfile"),
    ("DELETE", "/v1/scan"): ("id",),
    ("GET", "/v1/status"): ("id",),
    ("GET", "/v1/results"): ("id", "keep"),
    ("DELETE", "/v1/results"): ("id", "all", "keep"),
    ("GET", "/v1/metrics"): ("frameworks", "skipPersistence"),
}
QUERY_CASES = [
    Case(f"{method} {path}", key, attack, value)
    for (method, path), keys in QUERY_ROUTES.items()
    for key in keys
    for attack, value in STRING_ATTACKS.items()
    if isinstance(value, str) and attack not in ("huge",)
    # frameworks is a comma list whose items are stripped: "nsa\n" is the framework nsa.
    and not (key == "frameworks" and attack == "trailing_newline")
]
# Where a query key is reported under the request field it maps to.
QUERY_FIELD_NAMES = {"outputfile": "query"}  # frameworks= errors name frameworks (the query's own name)

DEEP = b"[" * 100_000 + b"]" * 100_000
RAW_BODIES = {
    "deep_array": DEEP,
    "deep_object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep_in_field": b'{"targetNames":' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "invalid_json": b'{"targetNames": ["nsa"',
    "nan": b'{"complianceThreshold": NaN}',
    "top_level_list": b'["nsa"]',
    "top_level_string": b'"nsa"',
    "null": b"null",
    "invalid_utf8": b'{"account": "\xff\xfe"}',
    "over_limit": b'{"account": "' + b"a" * (2 * 1024 * 1024) + b'"}',
    "duplicate_keys": b'{"format": "json", "format": "$(id)"}',
    "bom": b'\xef\xbb\xbf{"format": "json; id"}',
}
RAW_CASES = [Case(f"POST {route}", "<body>", name, body) for route in BODY_ROUTES for name, body in RAW_BODIES.items()]


def test_rest_corpus_size() -> None:
    assert len(BODY_CASES) + len(QUERY_CASES) + len(RAW_CASES) >= 200


async def rest_positive_control(http: httpx.AsyncClient, sec_env: SecEnv) -> None:
    """A valid request does start the scanner: the refusals below are the attacks', not the server's."""
    before = len(sec_env.fake.starts())
    r = await http.post("/v1/scan?wait=true", json={"targetNames": ["nsa"]})
    assert r.status_code == 200, r.text
    assert len(sec_env.fake.starts()) == before + 1


async def rest_body_field(http: httpx.AsyncClient, sec_env: SecEnv, case: Case) -> None:
    route = case.tool.split()[1]
    body = {case.field: fill(case.value, str(sec_env.root), str(sec_env.outside))}
    starts, files = len(sec_env.fake.starts()), sec_env.files()
    r = await http.post(route + ("?wait=true" if route == "/v1/scan" else ""), content=json.dumps(body).encode())
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    assert_rejected_cleanly(sec_env, r.text, case.field, starts, files)


async def rest_query_param(http: httpx.AsyncClient, sec_env: SecEnv, case: Case) -> None:
    method, route = case.tool.split()
    starts, files = len(sec_env.fake.starts()), sec_env.files()
    r = await http.request(method, route, params={case.field: case.value}, content=b"{}" if method == "POST" else None)
    # Kubescape's API answers a malformed id with notBusy/204 rather than an error: anything but
    # a 5xx is acceptable there; every other parameter must be refused outright.
    lenient = case.field == "id" and method in ("GET", "DELETE")
    if lenient:
        assert r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    else:
        assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    field = "" if lenient else QUERY_FIELD_NAMES.get(case.field, case.field)
    assert_rejected_cleanly(sec_env, r.text, field, starts, files)


async def rest_raw_body(http: httpx.AsyncClient, sec_env: SecEnv, case: Case) -> None:
    route = case.tool.split()[1]
    starts, files = len(sec_env.fake.starts()), sec_env.files()
    r = await http.post(route, content=case.value, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:300]}"
    assert_rejected_cleanly(sec_env, r.text, "", starts, files)


async def rest_requires_token(http: httpx.AsyncClient, sec_env: SecEnv) -> None:
    starts = len(sec_env.fake.starts())
    for method, path in (("POST", "/v1/scan"), ("POST", "/api/tools/kube-bench"), ("GET", "/v1/results")):
        r = await http.request(method, path, content=b"{}", headers={**JSON, "Authorization": "Bearer " + TOKEN[:-1]})
        assert r.status_code == 401
        assert TOKEN not in r.text
    assert len(sec_env.fake.starts()) == starts


async def walk_rest_corpus(http: httpx.AsyncClient, sec_env: SecEnv, failures: CaseFailures,
                           body_cases: list[Case], query_cases: list[Case]) -> None:
    """A positive control, a wrong token, then each body and query case given and every raw body,
    each failure recorded under its case's name: in-process here, over a socket in test_http_inputs."""
    with failures.case("REST positive control"):
        await rest_positive_control(http, sec_env)
    with failures.case("REST with a wrong token"):
        await rest_requires_token(http, sec_env)
    for case in body_cases:
        with failures.case(f"body {case.id}"):
            await rest_body_field(http, sec_env, case)
    for case in query_cases:
        with failures.case(f"query {case.id}"):
            await rest_query_param(http, sec_env, case)
    for case in RAW_CASES:
        with failures.case(f"raw {case.id}"):
            await rest_raw_body(http, sec_env, case)


@pytest.fixture(scope="module")
async def app_client(sec_env: SecEnv) -> AsyncIterator[httpx.AsyncClient]:
    """The app built from sec_env's settings (its fakes, allowed root and token), lifespan running."""
    app = build_app(mcp_kscan.settings.get_settings())
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                                  headers={**AUTH, **JSON}, timeout=60) as http):
        yield http


async def test_the_app_refuses_the_rest_corpus(app_client: httpx.AsyncClient, sec_env: SecEnv) -> None:
    """REST bodies, query parameters and raw bodies, and a wrong token, after a positive control."""
    failures = CaseFailures()
    await walk_rest_corpus(app_client, sec_env, failures, BODY_CASES, QUERY_CASES)
    failures.assert_none()
