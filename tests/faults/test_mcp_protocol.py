"""MCP protocol faults on a real server (issue 21): malformed JSON-RPC ids, one-line argument
errors, and header values with surrounding whitespace (RFC 9110 §5.5)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from servers import HttpServer, start_http_server, stop_server

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    tmp = tmp_path_factory.mktemp("mcp-protocol")
    (tmp / "manifests").mkdir()
    server = start_http_server({"MCP_KSCAN_DATA_DIR": str(tmp / "data"), "MCP_KSCAN_ALLOWED_ROOTS": str(tmp)}, tmp)
    try:
        yield server
    finally:
        stop_server(server)


def sse_or_json(response: httpx.Response) -> dict[str, Any]:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return json.loads(data[-1])  # type: ignore[no-any-return]
    return response.json()  # type: ignore[no-any-return]


def legacy_session(client: httpx.Client) -> dict[str, str]:
    init = client.post(
        "/mcp",
        headers=ACCEPT,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        },
    )
    assert init.status_code == 200, init.text
    headers = {**ACCEPT, "mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    done = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert done.status_code == 202
    return headers


# ---------------------------------------------------------------------------- JSON-RPC ids


@pytest.mark.parametrize(
    ("bad_id", "named"),
    [(None, "null"), ({"a": 1}, "an object"), ([1], "an array"), (True, "a boolean"), (1.5, "a fractional number")],
)
def test_a_request_with_a_malformed_id_gets_a_json_rpc_error(server: HttpServer, bad_id: Any, named: str) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        headers = legacy_session(client)
        response = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": bad_id, "method": "tools/list"})
        assert response.status_code == 400, (response.status_code, response.text)
        body = response.json()
        assert body["jsonrpc"] == "2.0" and body["id"] is None
        assert body["error"]["code"] == -32600
        assert body["error"]["message"] == f"Invalid Request: id must be a string or an integer, not {named}"
        # The session is unharmed: a well-formed request right after is answered.
        good = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": "s-1", "method": "tools/list"})
        assert good.status_code == 200
        assert sse_or_json(good)["id"] == "s-1" and sse_or_json(good)["result"]["tools"]


def test_notifications_and_good_ids_still_pass(server: HttpServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        headers = legacy_session(client)
        note = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                         "params": {"requestId": 99}})
        assert note.status_code == 202
        numbered = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 0, "method": "ping"})
        assert numbered.status_code == 200 and sse_or_json(numbered) == {"jsonrpc": "2.0", "id": 0, "result": {}}


# ---------------------------------------------------------------------------- one-line argument errors


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("kubescape_scan", {"paths": ["/nonexistent/x.yaml"]}, ["paths[0]:"]),
    ("kubescape_scan", {"paths": [1, 2, 3, 4, 5]}, ["paths[0]:", "valid string", "(and 4 more errors)"]),
    ("kubescape_scan", {"paths": "one.yaml"}, ["paths:", "valid list"]),
    ("kubescape_scan", {"paths": ["a\nb"]}, ["paths[0]:"]),
    ("kubescape_scan", {"engine": "fast"}, ["engine:", "'auto', 'kubescape' or 'builtin'"]),
    ("kubescape_scan", {"wait_seconds": -1}, ["wait_seconds:", "greater than or equal to 0"]),
    ("kubescape_scan", {"outputfile": "/etc/x"}, ["outputfile: unknown field; valid fields:", "paths", "target_names"]),
    ("kube_bench", {"targets": ["bogus"]}, ["targets[0]:", "'master', 'node'"]),
    ("get_results", {"scan_id": "../x"}, ["scan_id:", "pattern"]),
    ("list_scans", {"limit": "many"}, ["limit:", "valid integer"]),
]


def test_every_argument_error_is_one_line_naming_field_reason_and_valid_values(server: HttpServer) -> None:
    texts: dict[int, str] = {}

    async def main() -> None:
        async with Client(server.base_url + "/mcp") as client:
            for i, (tool, args, _) in enumerate(CASES):
                extra = {"wait_seconds": 0} if tool in ("kubescape_scan", "kube_bench") and "wait_seconds" not in args else {}
                result = await client.call_tool(tool, {**extra, **args})
                assert result.is_error, (tool, args)
                texts[i] = " ".join(getattr(c, "text", "") for c in result.content)

    anyio.run(main)
    for i, (tool, args, needles) in enumerate(CASES):
        text = texts[i]
        assert "\n" not in text, f"{tool} {args}: not one line: {text!r}"
        assert text.startswith(f"Error executing tool {tool}: "), text
        assert "validation error for" not in text and "errors.pydantic.dev" not in text and "[type=" not in text, text
        for needle in needles:
            assert needle in text, f"{tool} {args}: {needle!r} missing from {text!r}"


# ---------------------------------------------------------------------------- header whitespace


def test_mcp_name_with_surrounding_whitespace_is_accepted(server: HttpServer) -> None:
    """A 2026-07-28 tools/call whose ``Mcp-Name`` has spaces around the name (the conformance check)."""
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {
                "name": "list_scans",
                "arguments": {},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
    ).encode()

    def raw(name_header: bytes) -> bytes:
        request = (
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json, text/event-stream\r\n"
            b"Content-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
            b"Mcp-Name: " + name_header + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        ) % (server.port, len(body))
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(request + body)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    padded = raw(b"  list_scans  ")
    assert padded.startswith(b"HTTP/1.1 200"), padded[:400]
    assert b'"isError":false' in padded.replace(b" ", b"") or b'"isError"' not in padded, padded[:400]
    wrong = raw(b"  kube_bench  ")
    assert wrong.startswith(b"HTTP/1.1 400") and b"-32020" in wrong, wrong[:400]
