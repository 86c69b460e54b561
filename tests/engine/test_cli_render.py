"""``mcp-kscan scan`` on charts, overlays and folders without objects: no silent pass.

Exit codes (engine/cli.py ``EXIT_CODES``): 3 when nothing was scanned, whatever the format and
whatever threshold was asked; 1 when ``--compliance-threshold`` is not met.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import mcp_kscan.settings
from conftest import FakeHelm, write_chart, write_kustomize
from mcp_kscan.readers.kubescape_v2 import NOTHING_SCANNED

from .test_cli import EXAMPLES, run

KUBECTL = shutil.which("kubectl")


@pytest.fixture(autouse=True)
def tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No kubescape binary (the built-in engine runs); no renderer unless a test names one."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    for name in ("MCP_KSCAN_KUBESCAPE_PATH", "MCP_KSCAN_KUBECTL_PATH", "MCP_KSCAN_HELM_PATH"):
        monkeypatch.delenv(name, raising=False)
    mcp_kscan.settings.configure(None)
    yield
    mcp_kscan.settings.configure(None)


def use(monkeypatch: pytest.MonkeyPatch, **paths: str) -> None:
    for name, value in paths.items():
        monkeypatch.setenv(f"MCP_KSCAN_{name.upper()}_PATH", value)
    mcp_kscan.settings.configure(None)


@pytest.fixture
def markdown(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "README.md").write_text("# not manifests\n")
    return folder


def test_empty_scan_exits_3_in_every_format(markdown: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([str(markdown)], capsys)
    assert code == 3
    assert f"Compliance score: none ({NOTHING_SCANNED})" in out and "Nothing was checked." in out
    assert "1 file not YAML or JSON (not read): README.md" in out
    assert err.strip() == f"mcp-kscan scan: {NOTHING_SCANNED}; exit 3"

    code, out, _ = run([str(markdown), "--format", "json"], capsys)  # the streaming writer
    report = json.loads(out)
    assert code == 3 and report["summaryDetails"]["complianceScore"] is None
    assert report["metadata"]["engine"]["warnings"][0] == NOTHING_SCANNED

    code, out, _ = run([str(markdown), "--format", "sarif"], capsys)
    notes = json.loads(out)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert code == 3 and notes[0] == {"level": "warning", "message": {"text": NOTHING_SCANNED}}


@pytest.mark.parametrize("extra", [["--compliance-threshold", "0"], ["--severity-threshold", "low"],
                                   ["--format", "json", "--compliance-threshold", "0"]])
def test_empty_scan_never_meets_a_threshold(markdown: Path, extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run([str(markdown), *extra], capsys)
    assert code == 3


@pytest.mark.parametrize("path, threshold, expected", [
    ("insecure.yaml", "90", 1), ("insecure.yaml", "1", 0), ("hardened.yaml", "99", 0), ("hardened.yaml", "100", 1),
])
def test_compliance_threshold(path: str, threshold: str, expected: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run([str(EXAMPLES / path), "--compliance-threshold", threshold], capsys)
    assert code == expected


def test_compliance_threshold_is_a_percentage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run([str(EXAMPLES), "--compliance-threshold", "120"], capsys)
    assert "outside 0-100" in capsys.readouterr().err


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: Kustomize is rendered by it")
def test_overlay_rendered_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert KUBECTL is not None
    use(monkeypatch, kubectl=KUBECTL)
    code, out, _ = run([str(write_kustomize(tmp_path / "app")), "--control", "C-0057"], capsys)
    assert code == 0
    assert "Deployment/prod-web  (overlays/prod/kustomization.yaml, kubectl kustomize of overlays/prod)" in out


def test_chart_rendered_from_the_cli(tmp_path: Path, fake_helm: FakeHelm, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_chart(tmp_path / "charts")
    use(monkeypatch, helm=str(fake_helm.path))
    code, out, _ = run([str(tmp_path / "charts"), "--control", "C-0057", "--format", "sarif"], capsys)
    (result,) = json.loads(out)["runs"][0]["results"]
    assert code == 0 and result["ruleId"] == "C-0057"
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "web/templates/deployment.yaml"
    assert result["properties"] == {"renderedBy": "helm template of web"}
    assert [s["argv"][1:3] for s in fake_helm.starts()] == [["template", "release-name"]]


def test_chart_without_helm_is_named_and_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_chart(tmp_path)
    code, out, _ = run([str(tmp_path)], capsys)
    assert code == 3
    assert "Helm chart web not rendered: helm was not found" in out
