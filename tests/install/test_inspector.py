"""The official MCP Inspector CLI (0.15.0, the last release for Node 20) against the stdio server.

Skipped when npx is absent or the Inspector is neither in .ci/node_tools nor fetchable.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_kscan.tools import TOOL_NAMES

from .conftest import REPO_ROOT, isolated_env, node_tool

INSPECTOR = "@modelcontextprotocol/inspector@0.15.0"


def _inspector(fake_bin, tmp_path: Path, *method: str) -> dict:  # type: ignore[no-untyped-def]
    cli = node_tool("mcp-inspector-cli", INSPECTOR)
    env = isolated_env(tmp_path, **fake_bin.env)
    # The Inspector starts the server with its own env; pass ours through -e KEY=VALUE.
    env_args = [arg for key, value in fake_bin.env.items() for arg in ("-e", f"{key}={value}")]
    argv = [*cli, "--cli", *env_args, sys.executable, "-m", "mcp_kscan", "--method", *method]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)  # a hang guard, generous for a loaded machine
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_inspector_lists_the_tools(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    listed = _inspector(fake_bin, tmp_path, "tools/list")
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


def test_inspector_calls_list_scans(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = _inspector(fake_bin, tmp_path, "tools/call", "--tool-name", "list_scans")
    assert result.get("isError") is not True, result
    assert result["structuredContent"]["total"] == 0
