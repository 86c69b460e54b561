"""compare_scans through the MCP SDK Client and GET /api/v1/compare through the ASGI app, on real
built-in engine scans of a folder before and after an edit, and on real Kubescape reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

from .manifests import CONTROLS, edit, write_before


async def scan(client: Client, root: Path, **extra: Any) -> str:
    result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(root)], "target_type": "control",
                                                       "target_names": CONTROLS, "wait_seconds": 120, **extra})
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "succeeded", result.structured_content
    return str(result.structured_content["scan_id"])


async def test_two_real_scans_before_and_after_an_edit(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    root.mkdir()
    write_before(root)
    async with Client(build_server()) as client:
        base = await scan(client, root)
        edit(root)
        head = await scan(client, root)
        summary = await client.call_tool("compare_scans", {"base_scan_id": base, "head_scan_id": head})
        assert not summary.is_error, summary.content
        data = summary.structured_content
        # web C-0057: new evidence; api-v2 C-0017: new; api C-0017: fixed; worker C-0017: fixed.
        assert data["counts"] == {"new": 2, "new_evidence": 1, "fixed": 2, "unchanged": 0}, data
        assert "2 new (1 new evidence), 2 fixed" in summary.content[0].text

        new = (await client.call_tool("compare_scans", {"base_scan_id": base, "head_scan_id": head, "view": "new"})).structured_content
        by_name = {(f["resource"]["name"], f["control_id"]): f for f in new["findings"]}
        assert set(by_name) == {("web", "C-0057"), ("api-v2", "C-0017")}
        evidence = by_name[("web", "C-0057")]
        assert evidence["change"] == "new_evidence"
        assert evidence["new_failed_paths"] == ["spec.template.spec.containers[1].securityContext.privileged"]
        # The locator of get_results: the file as scanned, the document and the line of the failing field.
        assert evidence["location"]["file"].endswith("web.yaml") and evidence["location"]["line"] > 1
        assert evidence["finding_id"].startswith("f-")
        assert by_name[("api-v2", "C-0017")]["change"] == "new"

        fixed = (await client.call_tool("compare_scans", {"base_scan_id": base, "head_scan_id": head, "view": "fixed"})).structured_content
        assert {f["resource"]["name"] for f in fixed["findings"]} == {"api", "worker"}

        # Paging: one at a time, following the cursor, gives the same items in the same order.
        seen, cursor = [], None
        while True:
            args: dict[str, Any] = {"base_scan_id": base, "head_scan_id": head, "view": "fixed", "limit": 1}
            if cursor:
                args["cursor"] = cursor
            page = (await client.call_tool("compare_scans", args)).structured_content
            seen += [f["finding_id"] for f in page["findings"]]
            assert page["total_matching"] == 2
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert seen == [f["finding_id"] for f in fixed["findings"]]

        same = (await client.call_tool("compare_scans", {"base_scan_id": head, "head_scan_id": head})).structured_content
        assert same["counts"]["new"] == 0 and same["counts"]["fixed"] == 0 and same["counts"]["unchanged"] == 2

        bad_cursor = await client.call_tool("compare_scans", {"base_scan_id": base, "head_scan_id": head, "view": "new",
                                                              "cursor": page_cursor_of(base, head)})
        assert bad_cursor.is_error and "cursor" in bad_cursor.content[0].text
        missing = await client.call_tool("compare_scans", {"base_scan_id": base, "head_scan_id": "no-such-scan"})
        assert missing.is_error and "no-such-scan" in missing.content[0].text


def page_cursor_of(base: str, head: str) -> str:
    """A cursor made for another view: refused, never silently restarted."""
    import base64

    raw = json.dumps({"id": f"{base}..{head}", "seq": 1, "f": "[]"}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_compare_refuses_two_scanners_and_unfinished_scans(kscan_settings, fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    root.mkdir()
    write_before(root)
    async with Client(build_server()) as client:
        ks = await scan(client, root)
        kb = await client.call_tool("kube_bench", {"targets": ["node"]})
        kb_id = kb.structured_content["scan_id"]
        mixed = await client.call_tool("compare_scans", {"base_scan_id": kb_id, "head_scan_id": ks})
        assert mixed.is_error and "same scanner" in mixed.content[0].text
        same_kb = await client.call_tool("compare_scans", {"base_scan_id": kb_id, "head_scan_id": kb_id, "view": "unchanged"})
        assert not same_kb.is_error, same_kb.content
        checks = same_kb.structured_content["checks"]
        assert checks and all(c["status"] == "FAIL" and c["change"] == "unchanged" for c in checks)


async def test_builtin_scan_against_real_kubescape_report(kscan_settings, fake_bin, shared_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One of each: real Kubescape's report of nginx.yaml (served by the fake binary) and a built-in
    scan of the same manifest, rebuilt from the report's own object, in another folder."""
    report_path = shared_dir / "fixtures/kubescape/defectdojo/with_a_failure.json"
    report = json.loads(report_path.read_text())
    root = tmp_path / "elsewhere"
    root.mkdir()
    import yaml

    objects = [r["object"] for r in report["resources"] if r.get("object")]
    (root / "nginx.yaml").write_text(yaml.safe_dump_all(objects))
    fake_bin.configure(kubescape_report=report_path)
    async with Client(build_server()) as client:
        real = await client.call_tool("kubescape_scan", {"engine": "kubescape", "paths": [str(root)], "wait_seconds": 120})
        assert real.structured_content["status"] == "succeeded", real.structured_content
        controls = sorted({c["controlID"] for r in report["results"] for c in r["controls"]
                           if (c.get("status") or {}).get("status") == "failed"})
        ours = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(root)], "target_type": "control",
                                                         "target_names": controls, "wait_seconds": 120})
        assert ours.structured_content["status"] == "succeeded"
        result = await client.call_tool("compare_scans", {"base_scan_id": real.structured_content["scan_id"],
                                                          "head_scan_id": ours.structured_content["scan_id"], "view": "unchanged",
                                                          "limit": 200})
        assert not result.is_error, result.content
        data = result.structured_content
        # The same Deployment in nginx.yaml under another root: the controls both engines fail match.
        assert data["counts"]["unchanged"] >= 3, data
        assert all(f["resource"]["name"] == "nginx-deployment" for f in data["findings"])


async def test_compare_scans_entry_in_tools_list_stays_small(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    """Every tool shares one tools/list budget: compare_scans' description and input schema take < 1,000
    characters, its whole entry (output schema included) < 2,200."""
    async with Client(build_server()) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "compare_scans")
    entry = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert len(entry["description"]) + len(json.dumps(entry["inputSchema"])) < 1_100
    assert all(prop.get("description") for prop in entry["inputSchema"]["properties"].values())
    assert len(json.dumps(entry)) < 2_200
    assert entry["inputSchema"]["additionalProperties"] is False
