"""kubescape_scan's controls_config argument: Kubescape's --controls-config, over MCP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

POD = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n"
       "spec:\n  containers:\n  - name: c\n    image: x:1\n    env: [{name: DB_URL, value: 'db.example:5432'}]\n")


@pytest.fixture
def roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    import mcp_kscan.settings

    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("MCP_KSCAN_KUBESCAPE_PATH", str(tmp_path / "no-such-kubescape"))
    mcp_kscan.settings.configure(None)
    yield tmp_path
    mcp_kscan.settings.configure(None)


async def test_controls_config_changes_the_builtin_verdict(roots: Path) -> None:
    manifest = roots / "pod.yaml"
    manifest.write_text(POD)
    config = roots / "controls-config.json"
    config.write_text(json.dumps({"settings": {"postureControlInputs": {"sensitiveKeyNames": ["db_url"]}}}))
    args = {"paths": [str(manifest)], "target_type": "control", "target_names": ["C-0012"], "engine": "builtin"}
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "controls_config" in tools["kubescape_scan"].input_schema["properties"]
        plain = await client.call_tool("kubescape_scan", args)
        assert not plain.is_error and plain.structured_content["summary"]["failed_controls"] == []
        configured = await client.call_tool("kubescape_scan", {**args, "controls_config": str(config)})
        assert not configured.is_error, configured.content
        assert [c["control_id"] for c in configured.structured_content["summary"]["failed_controls"]] == ["C-0012"]


async def test_controls_config_is_a_checked_path(roots: Path) -> None:
    manifest = roots / "pod.yaml"
    manifest.write_text(POD)
    bad = roots / "bad.json"
    bad.write_text('{"settings": {"postureControlInputs": {"nope": []}}}')
    async with Client(build_server()) as client:
        outside = await client.call_tool("kubescape_scan", {"paths": [str(manifest)], "engine": "builtin",
                                                            "controls_config": "/etc/hostname"})
        assert outside.is_error and "controls_config" in outside.content[0].text and "allowed roots" in outside.content[0].text
        wrong = await client.call_tool("kubescape_scan", {"paths": [str(manifest)], "engine": "builtin",
                                                          "controls_config": str(bad)})
        assert wrong.is_error and "controls_config: unknown input 'nope'" in wrong.content[0].text
