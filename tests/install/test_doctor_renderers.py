"""``mcp-kscan doctor`` says whether charts and overlays can be rendered (kubectl, helm)."""

from __future__ import annotations

from pathlib import Path

from conftest import FakeHelm
from mcp_kscan.doctor import check_renderers
from mcp_kscan.settings import Settings


def test_renderers_found(fake_helm: FakeHelm, tmp_path: Path) -> None:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text("#!/bin/sh\nexit 0\n")
    kubectl.chmod(0o755)
    check = check_renderers(Settings(data_dir=tmp_path, kubectl_path=str(kubectl), helm_path=str(fake_helm.path)))
    assert check.level == "ok"
    assert check.message == f"kubectl at {kubectl}, helm at {fake_helm.path}"


def test_missing_renderers_say_what_is_not_scanned(tmp_path: Path) -> None:
    check = check_renderers(Settings(data_dir=tmp_path, kubectl_path=str(tmp_path / "none"),
                                     helm_path=str(tmp_path / "none")))
    assert check.level == "info"
    assert check.message == ("kubectl not found, helm not found: Kustomize directories and Helm charts are "
                             "reported as not rendered (not scanned)")
    assert check.fix == "install kubectl or set MCP_KSCAN_KUBECTL_PATH ; install helm or set MCP_KSCAN_HELM_PATH"
