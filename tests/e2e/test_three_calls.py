"""The three-call loop (issue 14): scan, controls view, findings of the top control.

The server in this process through the SDK's in-memory transport, in both protocols (the legacy
initialize handshake and the 2026 one, ``auto``), the built-in engine (its own process, as in a
served scan) and the real-world-style corpus in tests/corpus. It checks what an agent relies on:
the order (what to fix first), the locations (file and line at the failing field), the page sizes
and the text. These are the tools' answers, not the process's: tests/e2e/test_mcp_stdio.py runs
an agent's loop in both protocols over a real stdio server (a start costs ~1.5 CPU s).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import mcp_kscan.settings
from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
RESOURCE_LIMIT_CONTROLS = {"C-0004", "C-0009", "C-0050", "C-0270", "C-0271"}
PRIVILEGED_OR_HOST_ACCESS = {"C-0057", "C-0038", "C-0041", "C-0045", "C-0048", "C-0046"}
PAGE_BUDGET = 16_500


def assert_at_failing_field(finding: dict, at: str) -> None:  # type: ignore[type-arg]
    """The line is the failing field's; when the field is missing (only a fix path says what to
    add), it is the line of a parent that exists."""
    if finding["failed_paths"]:
        failed_path = finding["failed_paths"][0]
        if failed_path.endswith("]"):  # a list item (volumeMounts[0]): its "- " line
            assert at.startswith("- "), (failed_path, at)
        else:  # a field (securityContext.privileged): its "key:" line
            assert at.removeprefix("- ").startswith(failed_path.rsplit(".", 1)[-1] + ":"), (failed_path, at)
        return
    fix_path = finding["fix_paths"][0]["path"]
    *parents, field = [p for p in re.split(r"\.|\[\d+\]", fix_path) if p]
    assert not at.removeprefix("- ").startswith(field + ":"), (fix_path, at)  # the field is missing
    assert at.startswith("- ") or any(at.startswith(p + ":") for p in parents), (fix_path, at)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_scan_controls_findings(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No Kubescape binary: a scan that names no engine runs the built-in one, as for a user without it.
    env = {"MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-kubescape")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    mcp_kscan.settings.configure(None)  # read again from the environment above
    try:
        await _three_calls(build_server(), mode)
    finally:
        mcp_kscan.settings.configure(None)


async def _three_calls(server: Any, mode: str) -> None:
    async with Client(server, mode=mode) as client:  # type: ignore[arg-type]
        # 1. How secure is it?
        scan = await client.call_tool("kubescape_scan", {"paths": [str(CORPUS)], "wait_seconds": 120})
        assert not scan.is_error, scan.content
        record = scan.structured_content
        assert record["status"] == "succeeded" and record["engine"] == "builtin"
        assert record["summary"]["resources"]["failed"] >= 8

        # 2. What first?
        controls = await client.call_tool("get_results", {"scan_id": record["scan_id"], "view": "controls",
                                                          "status": "failed", "limit": 50})
        assert not controls.is_error, controls.content
        page = controls.structured_content
        assert len(json.dumps(page)) < PAGE_BUDGET
        rows = page["controls"]
        ids = [r["control_id"] for r in rows]
        assert all(r["security"] for r in rows[:3]), rows[:3]
        first_limit = min(ids.index(c) for c in RESOURCE_LIMIT_CONTROLS if c in ids)
        assert all(ids.index(c) < first_limit for c in PRIVILEGED_OR_HOST_ACCESS if c in ids), ids
        assert page["returned"] == len(rows) and (page["returned"] == 50 or page["note"] or page["next_cursor"] is None)
        text_lines = controls.content[0].text.splitlines()
        assert f"{rows[0]['severity']} {rows[0]['control_id']} {rows[0]['name']}: failed" in text_lines[-len(rows) - 1]

        # 3. Exactly where? The top control (an agent's third call), and the next two as well.
        for row in rows[:3]:
            top = row["control_id"]
            findings = await client.call_tool("get_results", {"scan_id": record["scan_id"], "view": "findings",
                                                              "control_id": top, "status": "failed", "limit": 5})
            assert not findings.is_error, findings.content
            fpage = findings.structured_content
            assert len(json.dumps(fpage)) < PAGE_BUDGET
            assert fpage["returned"] == len(fpage["findings"]) == min(5, fpage["total_matching"])
            assert fpage["total_matching"] == row["failed"]
            text = findings.content[0].text.splitlines()
            for f in fpage["findings"]:
                loc = f["location"]
                path = Path(loc["file"])
                assert path.is_file() and path.is_relative_to(CORPUS)
                lines = path.read_text().splitlines()
                assert 1 <= loc["line"] <= len(lines)
                assert_at_failing_field(f, lines[loc["line"] - 1].strip())
                res = f["resource"]
                assert f"{f['severity']} {top} {res['kind']}/{res['namespace']}/{res['name']} {loc['file']}:{loc['line']}" in text
