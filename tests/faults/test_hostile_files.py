"""Hostile manifests cost one file each, never the scan, the CLI or the server (issue: bounded input).

Alias bomb, FIFO, a symlink to /dev/zero, a 500 MB file, wrong types, a recursive alias, NaN and
100,000 nesting levels, all in one folder with good files: through the CLI, REST and MCP, each in
a child process under an address-space cap, so a regression fails here instead of exhausting
the machine.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import InProcessCli
from mcp.client import Client
from servers import start_http_server, stop_server

from mcp_kscan.engine.loader import parse_documents
from mcp_kscan.engine.reading import ReadLimits, UnreadableFile, read_manifest
from mcp_kscan.engine.yamlguard import allowed_alias_ratio

from .hostile import (
    _cap_memory,
    check_report,
    cli,
    make_hostile_tree,
    run_capped,
    strict_json,
)


def test_cli_scans_the_good_files_and_names_every_hostile_one(tmp_path: Path) -> None:
    folder = make_hostile_tree(tmp_path / "m")
    done = run_capped(cli(str(folder), "--engine", "builtin", "--format", "json"))
    assert done.returncode == 0, done.stderr.decode()
    check_report(strict_json(done.stdout), folder)


def test_cli_table_output_survives_too(tmp_path: Path) -> None:
    folder = make_hostile_tree(tmp_path / "m")
    done = run_capped(cli(str(folder), "--engine", "builtin"))
    assert done.returncode == 0, done.stderr.decode()


def test_stdin_over_the_size_cap_is_refused(tmp_path: Path, cli_main: InProcessCli,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """4 KiB on stdin against a 2 KiB cap: nothing hostile, so ``cli.main`` in this process."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a: " + b"x" * 4096 + b"\n")))
    done = cli_main("scan", "-", "--engine", "builtin", "--format", "json",
                    env={**os.environ, "MCP_KSCAN_MAX_FILE_BYTES": "2048", "MCP_KSCAN_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 3, done.stderr  # nothing was scanned: never a pass
    engine = strict_json(done.stdout)["metadata"]["engine"]
    assert any("MCP_KSCAN_MAX_FILE_BYTES" in w for w in engine["errors"])
    assert not any("<stdin>" in w for w in engine["warnings"])  # refused, not "without objects"


def test_a_file_that_grows_past_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("x" * 5000)
    with pytest.raises(UnreadableFile, match="limit"):
        read_manifest(str(path), ReadLimits(max_file_bytes=4096))
    assert read_manifest(str(path), ReadLimits(max_file_bytes=5000)) == b"x" * 5000


def test_documents_after_a_refused_one_are_still_read() -> None:
    data = b"a: 1\n---\nb: &x [*x]\n---\nc: .inf\n---\nd: [\n---\ne: 5\n"
    docs, errors = parse_documents(data, "f.yaml")
    assert docs == [(0, {"a": 1}), (4, {"e": 5})]
    assert [e.document for e in errors] == [1, 2, 3]
    assert all(e.path == "f.yaml" for e in errors)


def test_kubernetes_reading_of_odd_tags() -> None:
    docs, errors = parse_documents(b"b: !!binary aGVsbG8=\ns: !!set {x, y}\nt: 2024-01-01\n", "f")
    assert not errors
    assert docs == [(0, {"b": "hello", "s": {"x": None, "y": None}, "t": "2024-01-01"})]


def test_alias_ratio_is_go_yaml_v2s() -> None:
    assert allowed_alias_ratio(100) == 0.99
    assert allowed_alias_ratio(4_000_000) == 0.10
    assert 0.10 < allowed_alias_ratio(2_000_000) < 0.99


def test_modest_aliasing_is_accepted() -> None:
    """Anchors used as Kubernetes users use them (shared env, merge keys) are fine."""
    data = (b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
            b"  - &c {name: a, image: nginx, env: [{name: X, value: '*'}]}\n  - {<<: *c, name: b}\n")
    docs, errors = parse_documents(data, "f")
    assert not errors and docs[0][1]["spec"]["containers"][1]["image"] == "nginx"


def _strict_results(client: httpx.Client, scan_id: str) -> dict:  # type: ignore[type-arg]
    r = client.get("/v1/results", params={"id": scan_id})
    assert r.status_code == 200, r.text[:300]
    report: dict = strict_json(r.content)["response"]  # type: ignore[type-arg]
    return report


def test_rest_and_mcp_scan_the_hostile_folder_and_the_server_stays_well(tmp_path: Path) -> None:
    folder = make_hostile_tree(tmp_path / "m")
    server = start_http_server(
        {"MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path),
         "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-kubescape")},
        tmp_path, memory_limit=1536 * 1024 * 1024,
    )
    try:
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            r = client.post("/v1/scan", params={"wait": "true", "keep": "true"},
                            json={"paths": [str(folder)], "engine": "builtin"})
            assert r.status_code == 200, r.text[:500]
            body = strict_json(r.content)
            check_report(body["response"], folder)
            check_report(_strict_results(client, body["id"]), folder)
            assert client.get("/livez", timeout=5).status_code == 200

        async def over_mcp() -> None:
            async with Client(server.base_url + "/mcp") as mcp:  # type: ignore[arg-type]
                result = await mcp.call_tool("kubescape_scan", {"paths": [str(folder)], "engine": "builtin",
                                                                "wait_seconds": 120})
                assert not result.is_error, result.content
                data = result.structured_content
                assert data is not None and data["status"] == "succeeded", data
                raw = await mcp.read_resource(f"kscan://scans/{data['scan_id']}/report")
                check_report(strict_json(raw.contents[0].text), folder)  # type: ignore[union-attr]

        anyio.run(over_mcp)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    finally:
        stop_server(server)


def test_stdio_server_exits_when_stdin_closes_after_a_hostile_scan(tmp_path: Path) -> None:
    """The FIFO once left a thread stuck in open(): the stdio server then never exited on EOF.
    Now it scans the hostile folder, answers, and exits 0 as soon as its client closes stdin."""
    folder = make_hostile_tree(tmp_path / "m")
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path),
           "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-kubescape")}
    log = tmp_path / "stdio.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mcp_kscan", "serve"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, env=env, preexec_fn=_cap_memory)
    assert proc.stdin is not None and proc.stdout is not None
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "kubescape_scan", "arguments": {
            "paths": [str(folder)], "engine": "builtin", "wait_seconds": 120}}},
    ]
    try:
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
        proc.stdin.flush()
        answer = None
        while answer is None:
            line = proc.stdout.readline()
            assert line, log.read_text()[-2000:]
            msg = json.loads(line)
            if msg.get("id") == 2:
                answer = msg["result"]["structuredContent"]
        assert answer["status"] == "succeeded", answer
        proc.stdin.close()
        assert proc.wait(30) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
