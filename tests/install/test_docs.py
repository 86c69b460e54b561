"""README.md (the install sections): every JSON block parses, client configs have the right shape, the settings table is complete."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mcp_kscan.doctor import SETTING_ENV
from mcp_kscan.settings import Settings
from mcp_kscan.tools import TOOL_NAMES

from .conftest import REPO_ROOT

DOC = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in FENCE.findall(DOC.read_text()) if kind == lang]


def _table_rows() -> dict[str, tuple[str, str]]:
    """The Configuration table: every variable named in a row's first cell → (default, meaning)."""
    section = DOC.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            rows[name] = (cells[1], cells[2])
    return rows


def test_every_json_block_parses() -> None:
    blocks = _blocks("json")
    assert len(blocks) >= 6
    for body in blocks:
        json.loads(body)


def test_every_yaml_block_parses() -> None:
    for body in _blocks("yaml") + _blocks("yml"):
        yaml.safe_load(body)


def test_client_configs_have_the_right_shape() -> None:
    configs = [json.loads(b) for b in _blocks("json")]
    stdio = [c["mcpServers"]["mcp-kscan"] for c in configs if "mcpServers" in c and "command" in c["mcpServers"]["mcp-kscan"]]
    assert stdio, "no stdio config block"
    for server in stdio:
        assert isinstance(server["command"], str) and isinstance(server.get("args", []), list)
        assert all(isinstance(v, str) for v in server.get("env", {}).values())
    vscode = [c for c in configs if "servers" in c]
    assert any(c["servers"]["mcp-kscan"]["type"] == "stdio" for c in vscode)
    http = [s for c in vscode for s in c["servers"].values() if s["type"] == "http"]
    assert http and all(s["url"].endswith("/mcp") for s in http)
    # Input ids used in ${input:…} are declared.
    for c in vscode:
        used = set(re.findall(r"\$\{input:([\w-]+)\}", json.dumps(c)))
        assert used <= {i["id"] for i in c.get("inputs", [])}


def test_claude_code_add_json_argument_parses() -> None:
    found = re.findall(r"claude mcp add-json \S+ '([^']+)'", DOC.read_text())
    assert found
    for body in found:
        assert json.loads(body)["type"] == "stdio"


def test_settings_table_lists_every_variable_the_server_reads() -> None:
    source = (REPO_ROOT / "mcp_kscan" / "settings.py").read_text()
    read = set(re.findall(r'"((?:MCP_KSCAN|KS)_[A-Z0-9_]+|KUBECONFIG)"', source))
    assert read, "no env names found in settings.py"
    rows = _table_rows()
    assert read - set(rows) == set(), "missing from the README table"
    assert set(rows) - read == set(), "documented but not read by settings.py"
    assert {n for names in SETTING_ENV.values() for n in names} == read


@pytest.mark.parametrize(
    "field",
    ["max_concurrent_scans", "queue_capacity", "max_results", "output_cap_bytes", "max_file_bytes", "default_timeout_s", "kill_grace_s",
     "shutdown_grace_s", "log_level", "ks_format", "ks_scan_request_max_bytes", "http_max_header_bytes",
     "http_header_timeout_s", "http_body_timeout_s", "http_keepalive_timeout_s", "http_max_connections",
     "mcp_session_idle_timeout_s", "mcp_max_sessions"],
)
def test_documented_defaults_match_the_code(field: str, tmp_path: Path) -> None:
    value = getattr(Settings.from_env({"MCP_KSCAN_DATA_DIR": str(tmp_path)}), field)
    default_cell = _table_rows()[SETTING_ENV[field][0]][0]
    shown = re.search(r"`([^`]+)`", default_cell)
    assert shown, default_cell
    expected = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    assert shown.group(1) == expected


def test_tool_table_lists_every_tool() -> None:
    section = DOC.read_text().split("## What the tools return", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", section, re.M)
    assert sorted(listed) == sorted(TOOL_NAMES)


def test_the_troubleshooting_points_are_there() -> None:
    text = DOC.read_text()
    for needle in ("mcp-kscan doctor", "interrupted", "421", "--allowed-host", "MCP_KSCAN_TOKEN", "uvx --from",
                   "pipx run mcp-kscan", ".vscode/mcp.json", "~/.cursor/mcp.json", "claude mcp add", "/mcp",
                   "--log-format json", "pip install --target server/lib", "mcpb pack"):
        assert needle in text, needle
