"""Every MCP tool through the SDK's in-process Client, against the fake scanners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_kscan.server import build_server
from mcp_kscan.tools import TOOL_NAMES, ToolsOnFirstUse, build_tools, built_tools
from mcp_kscan.tools.schemas import declared_output_model

pytestmark = pytest.mark.anyio

BUDGET = 16_500  # "about 16 KB of JSON"


def _verdict(f: dict[str, Any]) -> str:
    """What a finding says, whatever the page adds around it (location, id, catalogue facts)."""
    res = f["resource"]
    keys = (f["control_id"], f["status"], f["severity"], res.get("kind"), res.get("namespace"), res.get("name"),
            f["failed_paths"], f["fix_paths"])
    return json.dumps(keys, sort_keys=True)


def _size(result: Any) -> int:
    return len(json.dumps(result.structured_content).encode())


async def test_tools_schemas_and_annotations(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(TOOL_NAMES)
    for tool in tools.values():
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None, tool.name
        assert tool.description and len(tool.description) > 60, tool.name
    assert tools["kube_bench"].annotations.read_only_hint is True
    assert tools["kubescape_scan"].annotations.open_world_hint is True
    for name in ("get_results", "scan_status", "list_scans"):
        assert tools[name].annotations.read_only_hint and tools[name].annotations.idempotent_hint
    for name in ("delete_results", "cancel_scan"):
        assert tools[name].annotations.destructive_hint is True
    ks_props = tools["kubescape_scan"].input_schema["properties"]
    for field in ("target_type", "target_names", "paths", "include_namespaces", "exclude_namespaces",
                  "use_cached_artifacts", "keep_local", "account", "access_key", "wait_seconds", "timeout_seconds", "engine"):
        assert field in ks_props, field
    kb_props = tools["kube_bench"].input_schema["properties"]
    for field in ("targets", "version", "benchmark", "config_dir", "check", "skip", "group", "wait_seconds", "timeout_seconds"):
        assert field in kb_props, field


async def test_tools_are_built_when_a_request_first_needs_them(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    """A server that answers no MCP request (a REST-only HTTP server) never builds its tools."""
    server = build_server()
    manager = server._tool_manager
    assert isinstance(manager, ToolsOnFirstUse)
    assert not manager._tools, "the tools were built with the server"
    async with Client(server) as client:
        listed = [t.name for t in (await client.list_tools()).tools]
    assert sorted(listed) == sorted(TOOL_NAMES)
    assert [t.name for t in built_tools()] == listed


def test_shallow_output_schemas_publish_what_the_sdks_full_ones_did() -> None:
    """The tools are built with shallow output schemas (outline_source); tools/list still publishes
    exactly the outlines of the schemas the SDK derives, and results are validated against the same
    declared models."""
    shallow = {t.name: t for t in built_tools()}
    full = {t.name: t for t in build_tools(shallow_outputs=False)}
    assert list(shallow) == list(full) and len(full) == len(TOOL_NAMES)
    for name, tool in full.items():
        mine = shallow[name]
        assert mine.output_schema is not None and json.dumps(mine.output_schema) == json.dumps(tool.output_schema), name
        assert json.dumps(mine.parameters) == json.dumps(tool.parameters), name
        assert mine.fn_metadata.output_model is tool.fn_metadata.output_model is declared_output_model(tool.fn), name
        assert mine.fn_metadata.wrap_output is tool.fn_metadata.wrap_output is False, name


async def test_kube_bench_scan_with_wait(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        result = await client.call_tool("kube_bench", {"targets": ["master", "node"], "benchmark": "cis-1.10"})
    assert not result.is_error, result.content
    data = result.structured_content
    assert data["status"] == "succeeded" and data["scanner"] == "kube-bench"
    totals = data["summary"]["totals"]
    assert totals["fail"] > 0  # FAILs are a finished scan, not an error
    assert data["summary"]["failed_checks"][0]["status"] == "FAIL"
    text = result.content[0].text
    assert "succeeded" in text and len(text) < 2000
    argv = fake_bin.starts("kube-bench")[-1]["argv"]
    assert argv[1:4] == ["run", "--targets", "master,node"]


async def test_kubescape_async_then_poll_then_page(kscan_settings, fake_bin, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(kubescape_report=shared_dir / "fixtures/kubescape/defectdojo/many_findings.json", sleep=0.5)
    manifests = shared_dir / "fixtures/manifests/kubescape-examples-2022"
    async with Client(build_server()) as client:
        started = await client.call_tool(
            "kubescape_scan", {"engine": "kubescape", "paths": [str(manifests)], "wait_seconds": 0}
        )
        assert not started.is_error, started.content
        scan_id = started.structured_content["scan_id"]
        assert started.structured_content["status"] in ("queued", "running")
        assert "scan_status" in started.structured_content["hint"]
        assert _size(started) < BUDGET
        with anyio.fail_after(60):
            while True:
                status = await client.call_tool("scan_status", {"scan_id": scan_id})
                if status.structured_content["status"] not in ("queued", "running"):
                    break
                await anyio.sleep(0.2)
        assert status.structured_content["status"] == "succeeded", status.structured_content
        assert _size(status) < BUDGET
        summary = status.structured_content["summary"]
        assert summary["failed_controls"] and len(summary["failed_controls"]) <= 20

        # Page through every finding with a cursor: each visited once, every page within budget.
        seen: list[tuple[str, str, str]] = []
        cursor = None
        total = None
        while True:
            args: dict[str, Any] = {"scan_id": scan_id, "view": "findings"}
            if cursor:
                args["cursor"] = cursor
            page = await client.call_tool("get_results", args)
            assert not page.is_error, page.content
            assert _size(page) < BUDGET
            data = page.structured_content
            total = data["total_matching"]
            seen += [_verdict(f) for f in data["findings"]]
            cursor = data["next_cursor"]
            if cursor is None:
                break
        assert total and len(seen) == total
        # The walk equals the parser's own list of findings, as a multiset: nothing twice, nothing missed.
        from collections import Counter

        from mcp_kscan.readers.kubescape_report import parse_report

        report = parse_report((shared_dir / "fixtures/kubescape/defectdojo/many_findings.json").read_bytes())
        expected = Counter(_verdict(f.model_dump(mode="json")) for f in report.findings)
        assert Counter(seen) == expected

        failed_critical = await client.call_tool(
            "get_results", {"scan_id": scan_id, "view": "findings", "status": "failed", "severity": "High", "limit": 5}
        )
        for f in failed_critical.structured_content["findings"]:
            assert f["status"] == "failed" and f["severity"] == "High"


async def test_errors_are_tool_results_naming_the_field(kscan_settings, fake_bin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        bad = await client.call_tool("kube_bench", {"version": "1.28", "benchmark": "cis-1.10"})
        assert bad.is_error
        assert "version" in bad.content[0].text or "benchmark" in bad.content[0].text
        assert len(bad.content[0].text.splitlines()) == 1

        inj = await client.call_tool("kube_bench", {"additional_args": "--outputfile=/etc/x"})
        assert inj.is_error and "additional_args" in inj.content[0].text

        unknown = await client.call_tool("scan_status", {"scan_id": "00000000-0000-4000-8000-000000000000"})
        assert unknown.is_error and "no scan" in unknown.content[0].text

        wrong_view = await client.call_tool("get_results", {"view": "checks"})
        assert wrong_view.is_error

    # Settings are read when a server starts: a server started with a wrong binary path says so.
    monkeypatch.setenv("MCP_KSCAN_KUBESCAPE_PATH", "/nonexistent/kubescape")
    import mcp_kscan.settings

    mcp_kscan.settings.configure(None)
    async with Client(build_server()) as client:
        missing = await client.call_tool("kubescape_scan", {"engine": "kubescape", "wait_seconds": 0})
        assert missing.is_error and "MCP_KSCAN_KUBESCAPE_PATH" in missing.content[0].text
    assert not fake_bin.starts()


async def test_queue_full_is_a_tool_error(fake_bin, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key, value in fake_bin.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MCP_KSCAN_MAX_CONCURRENT_SCANS", "1")
    monkeypatch.setenv("MCP_KSCAN_QUEUE_CAPACITY", "1")
    import mcp_kscan.settings

    mcp_kscan.settings.configure(None)
    fake_bin.configure(mode="hang")
    try:
        async with Client(build_server()) as client:
            first = await client.call_tool("kube_bench", {"wait_seconds": 0, "timeout_seconds": 30})
            await client.call_tool("kube_bench", {"wait_seconds": 0, "timeout_seconds": 30})
            third = await client.call_tool("kube_bench", {"wait_seconds": 0, "timeout_seconds": 30})
            assert third.is_error and "queue is full" in third.content[0].text
            cancelled = await client.call_tool("cancel_scan", {"scan_id": first.structured_content["scan_id"]})
            assert cancelled.structured_content["status"] == "cancelled"
    finally:
        mcp_kscan.settings.configure(None)


async def test_progress_notifications_while_waiting(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(sleep=2.5)
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(build_server()) as client:
        result = await client.call_tool("kube_bench", {"wait_seconds": 30}, progress_callback=on_progress)
    assert result.structured_content["status"] == "succeeded"
    assert len(updates) >= 2
    progresses = [u[0] for u in updates]
    assert progresses == sorted(progresses) and len(set(progresses)) == len(progresses)
    assert any("running" in (u[2] or "") for u in updates)


async def test_list_delete_resources_prompts(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        a = (await client.call_tool("kube_bench", {})).structured_content["scan_id"]
        b = (await client.call_tool("kubescape_scan", {"engine": "kubescape"})).structured_content["scan_id"]
        listed = await client.call_tool("list_scans", {})
        assert [s["scan_id"] for s in listed.structured_content["scans"]] == [b, a]
        only = await client.call_tool("list_scans", {"scanner": "kube-bench"})
        assert [s["scan_id"] for s in only.structured_content["scans"]] == [a]

        res = await client.read_resource("kscan://scans")
        assert b in res.contents[0].text
        rec = await client.read_resource(f"kscan://scans/{b}")
        assert json.loads(rec.contents[0].text)["scan_id"] == b
        raw = await client.read_resource(f"kscan://scans/{b}/report")
        assert "summaryDetails" in json.loads(raw.contents[0].text)

        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"cluster_security_audit", "explain_control"} <= prompts
        audit = await client.get_prompt("cluster_security_audit", {"paths": "k8s/"})
        assert "kubescape_scan" in audit.messages[0].content.text
        failed = (await client.call_tool("get_results", {"scan_id": b, "view": "findings", "status": "failed"})).structured_content["findings"]
        control = failed[0]["control_id"]
        explained = await client.get_prompt("explain_control", {"control_id": control, "scan_id": b})
        assert control in explained.messages[0].content.text and "fix" in explained.messages[0].content.text

        deleted = await client.call_tool("delete_results", {"scan_id": a})
        assert deleted.structured_content["deleted"] == 1
        gone = await client.call_tool("scan_status", {"scan_id": a})
        assert gone.is_error
        all_gone = await client.call_tool("delete_results", {"all": True})
        assert all_gone.structured_content["deleted"] == 1


async def test_auto_engine_falls_back_to_builtin(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_KSCAN_KUBESCAPE_PATH", str(tmp_path / "no-such-kubescape"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    import mcp_kscan.settings

    mcp_kscan.settings.configure(None)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx:1.25\n    securityContext: {privileged: yes}\n"
    )
    try:
        async with Client(build_server()) as client:
            result = await client.call_tool(
                "kubescape_scan", {"paths": [str(manifest)], "target_type": "control", "target_names": ["C-0057"]}
            )
            assert not result.is_error, result.content
            data = result.structured_content
            assert data["engine"] == "builtin" and data["status"] == "succeeded"
            assert [c["control_id"] for c in data["summary"]["failed_controls"]] == ["C-0057"]
            page = await client.call_tool("get_results", {"view": "findings", "status": "failed"})
            finding = page.structured_content["findings"][0]
            assert finding["resource"]["name"] == "p" and finding["failed_paths"]
    finally:
        mcp_kscan.settings.configure(None)
