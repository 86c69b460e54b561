"""list_controls and MCP completions (issue 14): frameworks and control ids are listed, not guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


async def test_list_controls_lists_frameworks_and_filters(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        everything = (await client.call_tool("list_controls", {"limit": 200})).structured_content
        assert {"NSA", "MITRE"} <= set(everything["frameworks"])
        nsa = await client.call_tool("list_controls", {"framework": "nsa", "severity": "HIGH"})
        data = nsa.structured_content
        assert data["total"] >= 3 and all(c["severity"] == "High" for c in data["controls"])
        row = next(c for c in data["controls"] if c["control_id"] == "C-0057")
        assert row["builtin"] is True and row["remediation"] and row["description"] and row["name"] == "Privileged container"
        assert "High C-0057 Privileged container" in nsa.content[0].text
        found = (await client.call_tool("list_controls", {"query": "hostpath"})).structured_content
        assert {"C-0045", "C-0048"} <= {c["control_id"] for c in found["controls"]}
        bad = await client.call_tool("list_controls", {"framework": "nsaa"})
        assert bad.is_error and "NSA" in bad.content[0].text and "\n" not in bad.content[0].text


async def test_completions_offer_controls_frameworks_and_scans(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server(), mode="legacy") as client:
        scan = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(CORPUS)], "wait_seconds": 120})
        scan_id = scan.structured_content["scan_id"]
        controls = await client.complete(PromptReference(name="explain_control"), {"name": "control_id", "value": "c-005"})
        assert "C-0057" in controls.completion.values and all(v.startswith("C-005") for v in controls.completion.values)
        frameworks = await client.complete(PromptReference(name="cluster_security_audit"), {"name": "framework", "value": "ci"})
        assert frameworks.completion.values and all(v.lower().startswith("ci") for v in frameworks.completion.values)
        scans = await client.complete(ResourceTemplateReference(uri="kscan://scans/{scan_id}"), {"name": "scan_id", "value": scan_id[:4]})
        assert scans.completion.values == [scan_id]
        audit = await client.get_prompt("cluster_security_audit", {"paths": str(CORPUS), "framework": "nsa"})
        text = audit.messages[0].content.text
        assert "view=\"controls\"" in text and "target_names=['nsa']" in text
