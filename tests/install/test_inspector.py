"""The official MCP Inspector CLI (0.15.0, the last release for Node 20) against the server.

The scan call goes to the stdio server the Inspector launches itself, as an MCP host does; the
two calls that only read (tools/list, list_scans) go to one HTTP server shared by the module
(/mcp, the Inspector's --transport http): each stdio call starts a server, ~1.5 CPU s.
Skipped when npx is absent or the Inspector is neither in .ci/node_tools nor fetchable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_fake_bin
from servers import HttpServer, start_http_server, stop_server

from mcp_kscan.tools import TOOL_NAMES

from .conftest import REPO_ROOT, isolated_env, node_tool

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"


def _run(argv: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)  # a hang guard, generous for a loaded machine
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _inspector(fake_bin, tmp_path: Path, *method: str) -> dict:  # type: ignore[no-untyped-def]
    """The Inspector launching the stdio server, as an MCP host does."""
    cli = node_tool("mcp-inspector-cli", INSPECTOR)
    env = isolated_env(tmp_path, **fake_bin.env)
    # The Inspector starts the server with its own env; pass ours through -e KEY=VALUE.
    env_args = [arg for key, value in fake_bin.env.items() for arg in ("-e", f"{key}={value}")]
    return _run([*cli, "--cli", *env_args, sys.executable, "-m", "mcp_kscan", "--method", *method], env)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Path]]:
    """One HTTP server (its own data dir and fakes) for the Inspector calls that only read."""
    node_tool("mcp-inspector-cli", INSPECTOR)  # skip before starting a server for nothing
    tmp = tmp_path_factory.mktemp("inspector-http")
    fake = make_fake_bin(tmp)
    server = start_http_server(fake.env, tmp, drop_env=("MCP_KSCAN_TOKEN", "KS_API_TOKEN"))
    try:
        yield server, tmp
    finally:
        stop_server(server)


def _inspector_http(http_server: tuple[HttpServer, Path], *method: str) -> dict:
    server, tmp = http_server
    cli = node_tool("mcp-inspector-cli", INSPECTOR)
    return _run([*cli, "--cli", server.base_url + "/mcp", "--transport", "http", "--method", *method], isolated_env(tmp))


def test_inspector_lists_the_tools(http_server: tuple[HttpServer, Path]) -> None:
    listed = _inspector_http(http_server, "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}
    assert set(tools) == set(TOOL_NAMES)
    assert tools["get_results"]["inputSchema"]["type"] == "object"
    assert "outputSchema" in tools["kubescape_scan"]


def test_inspector_calls_kubescape_scan_with_the_fake(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _inspector(
        fake_bin, tmp_path, "tools/call", "--tool-name", "kubescape_scan",
        "--tool-arg", f'paths=["{REPO_ROOT / "examples"}"]', "--tool-arg", "engine=kubescape",
        "--tool-arg", "wait_seconds=60",
    )
    assert result.get("isError") is not True, result
    assert result["structuredContent"]["status"] == "succeeded"
    assert fake_bin.starts("kubescape"), "the fake kubescape was not started"


def test_inspector_calls_list_scans(http_server: tuple[HttpServer, Path]) -> None:
    result = _inspector_http(http_server, "tools/call", "--tool-name", "list_scans")
    assert result.get("isError") is not True, result
    assert result["structuredContent"]["total"] == 0
