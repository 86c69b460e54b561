"""Charts and overlays rendered before the scan (engine/render.py): real kubectl, a fake helm.

And the honest empty cases: a scan that read no object has no score, and what was not scanned
(charts not rendered, files without objects) is named in the report's warnings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.engine.render import NotRendered, Renderers, RenderUnit, render_unit, run_bounded
from mcp_kscan.engine.scan import scan_paths
from mcp_kscan.readers.kubescape_v2 import NOTHING_SCANNED
from conftest import FakeHelm, write_chart, write_kustomize

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: Kustomize is rendered by it")


def warnings_of(report: dict[str, Any]) -> list[str]:
    return list(report["metadata"]["engine"]["warnings"])


def failed(report: dict[str, Any], control: str) -> list[str]:
    return [r["resourceID"].rsplit("/", 1)[-1] for r in report["results"]
            for c in r["controls"] if c["controlID"] == control and c["status"]["status"] == "failed"]


def sources(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Source by object name (Deployments only when a Service shares the name)."""
    out: dict[str, dict[str, Any]] = {}
    for r in report["resources"]:
        kind, name = r["resourceID"].rsplit("/", 2)[-2:]
        if kind != "Service" or name not in out:
            out[name] = r["source"]
    return out


# --------------------------------------------------------------------------- Kustomize, real kubectl


@needs_kubectl
def test_overlay_rendered_with_kubectl(tmp_path: Path) -> None:
    folder = write_kustomize(tmp_path / "app")
    report = scan_paths([folder], controls=["C-0057"], renderers=Renderers(kubectl=KUBECTL),
                        limits=ReadLimits.create(allowed_roots=[tmp_path]))
    # The base and the overlay are each what they deploy; the overlay's patch is not an object.
    assert set(sources(report)) == {"web", "prod-web"}
    assert failed(report, "C-0057") == ["prod-web"]
    src = sources(report)["prod-web"]
    assert src["relativePath"] == "overlays/prod/kustomization.yaml"
    assert src["kustomizeDirectoryName"] == "overlays/prod"
    assert sources(report)["web"]["kustomizeDirectoryName"] == "base"
    assert warnings_of(report) == []
    assert report["summaryDetails"]["complianceScore"] == 50


@needs_kubectl
def test_overlay_given_as_the_scanned_folder(tmp_path: Path) -> None:
    folder = write_kustomize(tmp_path / "app")
    report = scan_paths([folder / "overlays" / "prod"], controls=["C-0057"], renderers=Renderers(kubectl=KUBECTL))
    assert failed(report, "C-0057") == ["prod-web"]
    assert sources(report)["prod-web"]["kustomizeDirectoryName"] == "prod"


@needs_kubectl
def test_kustomize_failure_is_a_warning_with_kubectls_reason(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    report = scan_paths([tmp_path], renderers=Renderers(kubectl=KUBECTL))
    (warning,) = warnings_of(report)
    assert warning.startswith("Kustomize directory broken not rendered: ")
    assert "does not exist" in warning and "its files were not scanned" in warning
    assert set(sources(report)) == {"p"}  # the rest of the folder is still scanned


@needs_kubectl
def test_kustomize_file_symlinked_outside_the_roots_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-VALUE\n")
    folder = tmp_path / "scanned" / "app"
    folder.mkdir(parents=True)
    (folder / "kustomization.yaml").write_text(
        "configMapGenerator:\n- name: leak\n  files:\n  - secret.txt\n")
    (folder / "secret.txt").symlink_to(secret)
    limits = ReadLimits.create(allowed_roots=[tmp_path / "scanned"])
    report = scan_paths([tmp_path / "scanned"], renderers=Renderers(kubectl=KUBECTL), limits=limits)
    assert "TOP-SECRET-VALUE" not in str(report)
    assert any("secret.txt" in w and "outside the allowed roots" in w for w in warnings_of(report))


@pytest.mark.parametrize("reference, why", [
    ("github.com/example/repo//base?ref=v1.0.0", "remote base"),
    ("https://example.com/base.git", "remote base"),
    ("/etc/kubernetes", "absolute path"),
    ("../../outside", "outside the allowed roots"),
    ("../nowhere", "does not exist"),
])
def test_references_that_are_never_followed(tmp_path: Path, reference: str, why: str) -> None:
    """Refused before kubectl runs: the kubectl given here does not even exist."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "kustomization.yaml").write_text("resources: []\n")
    overlay = tmp_path / "scanned" / "overlay"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(f"resources:\n- {reference}\n")
    unit = RenderUnit("kustomize", str(overlay), "overlay", str(tmp_path / "scanned"))
    never = Renderers(kubectl=str(tmp_path / "kubectl-that-must-not-run"))
    with pytest.raises(NotRendered) as caught:
        render_unit(unit, never, ReadLimits.create(allowed_roots=[tmp_path / "scanned"]))
    assert why in str(caught.value) and "could not start" not in str(caught.value)


def test_overlay_without_kubectl_is_named_and_nothing_scanned(tmp_path: Path) -> None:
    folder = write_kustomize(tmp_path / "app")
    report = scan_paths([folder], renderers=Renderers(kubectl=None))
    warnings = warnings_of(report)
    assert warnings[0] == NOTHING_SCANNED
    assert "Kustomize directory base not rendered: kubectl was not found" in warnings[1]
    assert "Kustomize directory overlays/prod not rendered: kubectl was not found" in warnings[2]
    assert report["resources"] == [] and report["summaryDetails"]["complianceScore"] is None


# --------------------------------------------------------------------------- Helm, the fake helm


def test_chart_rendered_with_helm_and_default_values(tmp_path: Path, fake_helm: FakeHelm) -> None:
    write_chart(tmp_path / "charts")
    report = scan_paths([tmp_path / "charts"], controls=["C-0057"], renderers=Renderers(helm=str(fake_helm.path)),
                        limits=ReadLimits.create(allowed_roots=[tmp_path / "charts"]))
    assert failed(report, "C-0057") == ["release-name-web"]
    src = sources(report)
    assert src["release-name-web"]["relativePath"] == "web/templates/deployment.yaml"
    assert src["release-name-web"]["helmChartName"] == "web"
    deployment = next(r["object"] for r in report["resources"] if r["object"]["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"  # values.yaml
    (start,) = fake_helm.starts()
    helm, command, release, chart = start["argv"]
    assert (command, release) == ("template", "release-name")
    # helm ran on a private copy, with nothing of the user's environment.
    assert chart.endswith(str(tmp_path / "charts" / "web")) and chart != str(tmp_path / "charts" / "web")
    assert not os.path.exists(chart)  # the copy is gone
    assert start["env"]["HOME"] != os.environ.get("HOME") and start["env"]["HOME"].startswith(start["cwd"])
    assert set(start["env"]) <= {"PATH", "LANG", "HOME", "TMPDIR", "KUBECONFIG",
                                 "HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"}
    assert warnings_of(report) == []


# The fake helm must finish within the timeout when it fails or floods (3 s: a busy machine starts
# Python slowly); a hung one is waited for the whole timeout, so 1 s there.
@pytest.mark.parametrize("mode, timeout_s, why", [
    ("fail", 3, "helm template failed: Error: template: web/templates/deployment.yaml:7:20"),
    ("hang", 1, "helm template did not finish within 1s"),
    ("huge", 3, "helm template printed more than 65536 bytes"),
])
def test_helm_failures_are_named_warnings(tmp_path: Path, fake_helm: FakeHelm, mode: str, timeout_s: int, why: str) -> None:
    write_chart(tmp_path)
    fake_helm.configure(mode)
    unit = RenderUnit("helm", str(tmp_path / "web"), "web", str(tmp_path))
    with pytest.raises(NotRendered) as caught:
        render_unit(unit, Renderers(helm=str(fake_helm.path), timeout_s=timeout_s),
                    ReadLimits.create(max_file_bytes=65536))
    assert str(caught.value).startswith("Helm chart web not rendered: ")
    assert why in str(caught.value)


def test_chart_with_a_missing_dependency_is_not_fetched(tmp_path: Path, fake_helm: FakeHelm) -> None:
    chart = write_chart(tmp_path)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n"
                                      "dependencies:\n- name: redis\n  repository: https://charts.example.com\n")
    report = scan_paths([tmp_path], renderers=Renderers(helm=str(fake_helm.path)))
    assert "missing in charts/ directory: redis" in warnings_of(report)[1]
    assert report["summaryDetails"]["complianceScore"] is None


def test_chart_file_symlinked_outside_the_roots_is_refused(tmp_path: Path, fake_helm: FakeHelm) -> None:
    (tmp_path / "outside.yaml").write_text("secret: value\n")
    chart = write_chart(tmp_path / "scanned")
    (chart / "templates" / "leak.yaml").symlink_to(tmp_path / "outside.yaml")
    report = scan_paths([tmp_path / "scanned"], renderers=Renderers(helm=str(fake_helm.path)),
                        limits=ReadLimits.create(allowed_roots=[tmp_path / "scanned"]))
    assert fake_helm.starts() == []
    assert "templates/leak.yaml: outside the allowed roots" in warnings_of(report)[1]


def test_chart_without_helm_is_reported_not_rendered(tmp_path: Path) -> None:
    write_chart(tmp_path)
    report = scan_paths([tmp_path], renderers=Renderers())
    assert warnings_of(report) == [
        NOTHING_SCANNED,
        "Helm chart web not rendered: helm was not found (install it, or set MCP_KSCAN_HELM_PATH); "
        "its files were not scanned",
    ]


def test_a_stray_chart_file_does_not_make_a_chart(tmp_path: Path) -> None:
    (tmp_path / "Chart.yaml").write_text("name: not-a-chart\n")
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    report = scan_paths([tmp_path], renderers=Renderers())
    assert set(sources(report)) == {"p"}
    assert warnings_of(report) == ["1 file without a Kubernetes object (skipped): Chart.yaml"]


# --------------------------------------------------------------------------- nothing scanned


def test_folder_without_objects_has_no_score(tmp_path: Path) -> None:
    for name in ("README.md", "notes.txt", "docs/guide.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("# text\n")
    (tmp_path / "config.yaml").write_text("settings: {a: 1}\n")
    report = scan_paths([tmp_path])
    sd = report["summaryDetails"]
    assert sd["complianceScore"] is None and sd["score"] is None and sd["status"] == "skipped"
    assert all(fw["complianceScore"] is None for fw in sd["frameworks"])
    assert {c["status"] for c in sd["controls"].values()} == {"skipped"}
    assert warnings_of(report) == [
        NOTHING_SCANNED,
        "1 file without a Kubernetes object (skipped): config.yaml",
        "3 files not YAML or JSON (not read): README.md, notes.txt, docs/guide.md",
    ]


def test_files_without_objects_are_named_beside_a_score(tmp_path: Path) -> None:
    (tmp_path / "values.yaml").write_text("replicas: 2\n")
    (tmp_path / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    report = scan_paths([tmp_path])
    assert isinstance(report["summaryDetails"]["complianceScore"], float)
    assert warnings_of(report) == ["1 file without a Kubernetes object (skipped): values.yaml"]


def test_bounded_process_takes_argv_lists_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        run_bounded("echo hi", cwd=str(tmp_path), env={}, timeout_s=5, stdout_cap=10)  # type: ignore[arg-type]
    result = run_bounded(["/bin/echo", "$HOME;", "x"], cwd=str(tmp_path), env={"PATH": "/bin"}, timeout_s=30,
                         stdout_cap=100)
    assert result.stdout == b"$HOME; x\n" and result.return_code == 0


@needs_kubectl
def test_a_component_is_rendered_through_the_overlay_that_uses_it(tmp_path: Path) -> None:
    folder = write_kustomize(tmp_path / "app")
    component = folder / "components" / "hardened"
    component.mkdir(parents=True)
    (component / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "labels:\n- pairs: {team: platform}\n")
    overlay = folder / "overlays" / "prod" / "kustomization.yaml"
    overlay.write_text(overlay.read_text() + "components:\n- ../../components/hardened\n")
    report = scan_paths([folder], controls=["C-0057"], renderers=Renderers(kubectl=KUBECTL))
    assert warnings_of(report) == []  # the component alone is not a failed render
    prod = next(r["object"] for r in report["resources"] if r["object"]["metadata"]["name"] == "prod-web")
    assert prod["metadata"]["labels"] == {"team": "platform"}
