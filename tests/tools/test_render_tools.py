"""Over MCP: a scan of nothing has no score and says so; charts and overlays are rendered or named."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

import mcp_kscan.settings
from conftest import FakeHelm, write_chart, write_kustomize
from mcp_kscan.readers.kubescape_v2 import NOTHING_SCANNED
from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def settings_with(kscan_settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """``settings_with(HELM=..., KUBECTL=...)``: the fakes' settings, scans confined to tmp_path."""

    def apply(**paths: str) -> None:
        monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(tmp_path))
        for name, value in paths.items():
            monkeypatch.setenv(f"MCP_KSCAN_{name}_PATH", value)
        mcp_kscan.settings.configure(None)

    yield apply
    mcp_kscan.settings.configure(None)


async def test_scan_of_nothing_has_no_score(settings_with, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings_with()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "README.md").write_text("# text\n")
    (folder / "settings.yaml").write_text("a: 1\n")
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"paths": [str(folder)], "engine": "builtin"})
        assert not result.is_error, result.content
        summary = result.structured_content["summary"]
        assert result.structured_content["status"] == "succeeded"
        assert summary["compliance_score"] is None and summary["nothing_scanned"] is True
        assert summary["frameworks"] and all(fw["compliance_score"] is None for fw in summary["frameworks"])
        assert summary["warnings"] == [
            NOTHING_SCANNED,
            "1 file without a Kubernetes object (skipped): settings.yaml",
            "1 file not YAML or JSON (not read): README.md",
        ]
        text = result.content[0].text
        assert text.splitlines()[1] == NOTHING_SCANNED
        assert "warning: 1 file not YAML or JSON (not read): README.md" in text
        assert "compliance score 100" not in text and "100.0%" not in text  # (a scan id may hold "100")
        page = await client.call_tool("get_results", {"view": "summary"})
        assert page.structured_content["scan"]["summary"]["compliance_score"] is None
        assert NOTHING_SCANNED in page.content[0].text


async def test_chart_without_helm_is_named_in_the_text(settings_with, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings_with(HELM=str(tmp_path / "no-helm-here"))
    write_chart(tmp_path / "charts")
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"paths": [str(tmp_path / "charts")], "engine": "builtin"})
    summary = result.structured_content["summary"]
    assert summary["nothing_scanned"] is True and summary["compliance_score"] is None
    warning = ("Helm chart web not rendered: helm was not found (install it, or set MCP_KSCAN_HELM_PATH); "
               "its files were not scanned")
    assert warning in summary["warnings"]
    assert f"warning: {warning}" in result.content[0].text


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: Kustomize is rendered by it")
async def test_rendered_findings_say_where_they_came_from(settings_with, fake_helm: FakeHelm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert KUBECTL is not None
    settings_with(HELM=str(fake_helm.path), KUBECTL=KUBECTL)
    folder = tmp_path / "repo"
    write_chart(folder / "charts")
    write_kustomize(folder / "deploy")
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {
            "paths": [str(folder)], "engine": "builtin", "target_type": "control", "target_names": ["C-0057"]})
        assert result.structured_content["summary"]["warnings"] == []
        page = await client.call_tool("get_results", {"view": "findings", "status": "failed"})
    findings = page.structured_content["findings"]
    where = {f["resource"]["name"]: f["location"] for f in findings}
    assert set(where) == {"release-name-web", "prod-web"}
    helm = where["release-name-web"]
    assert helm["file"] == str(folder / "charts" / "web" / "templates" / "deployment.yaml")
    assert helm["rendered_by"] == "helm template of web" and helm["line"] is None and helm["document"] is None
    assert "no lines" in helm["note"]
    kustomize = where["prod-web"]
    assert kustomize["file"] == str(folder / "deploy" / "overlays" / "prod" / "kustomization.yaml")
    assert kustomize["rendered_by"] == "kubectl kustomize of deploy/overlays/prod" and kustomize["line"] is None
    text = page.content[0].text
    assert "(helm template of web)" in text and "(kubectl kustomize of deploy/overlays/prod)" in text
