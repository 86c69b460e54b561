"""The loop closed: fixes proposed for every failed finding, verified by a re-scan, applied per file.

For the examples, the results corpus, this folder's corpus (every workload kind, comments, odd
indentation, JSON, a List, flow style) and Kubescape's own 2022 examples: at least 90% of the
findings that need no user value get a verified fix; applying them all and scanning again leaves
only the findings that need a user value or have no remedy, and no resource fails a control it
passed before.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from mcp_kscan import views
from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.engine.scan import load_resources, scan_paths
from mcp_kscan.fixes.hashes import digest
from mcp_kscan.fixes.models import NoFix
from mcp_kscan.fixes.planner import Plan, Planner, helm_values_hints
from mcp_kscan.readers.kubescape_report import parse_report

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _items(root: Path) -> list[dict[str, Any]]:
    """The scan's passed and failed findings as the views show them (excepted ones included)."""
    report = parse_report(json.dumps(scan_paths([str(root)])).encode())
    return [views.finding_item(json.loads(f.model_dump_json()), [str(root)]) for f in report.findings
            if f.status in ("passed", "failed")]


def _failed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["status"] == "failed" and not i.get("excepted")]


def _findings(root: Path) -> list[dict[str, Any]]:
    return _failed(_items(root))


def _verdicts(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(i["finding_id"], i["status"]) for i in items}


def close_the_loop(root: Path) -> dict[str, int]:
    scanned = _items(root)  # one scan gives the findings to fix and the verdicts before
    items = _failed(scanned)
    planner = Planner([str(root)], ReadLimits(), load_resources([str(root)], []))
    plans = {i["finding_id"]: planner.plan(i) for i in items}
    auto = [p for p in plans.values() if isinstance(p, Plan) and not p.fix.needs_user_value]
    verified = [p for p in auto if p.fix.verified]
    by_file: dict[str, list[Plan]] = defaultdict(list)
    for p in plans.values():
        if isinstance(p, Plan) and p.path:
            by_file[p.path].append(p)
    applied = 0
    before = _verdicts(scanned)
    for path, file_plans in by_file.items():
        new_text, results = planner.combine(path, file_plans, digest(Path(path).read_bytes()))
        applied += sum(r.status == "applied" for r in results)
        if new_text is not None:
            Path(path).write_text(new_text)
    after = _verdicts(_items(root))
    passed_before = {fid for fid, status in before if status == "passed"}
    regressions = {fid for fid, status in after if status == "failed" and fid in passed_before}
    assert not regressions, regressions
    for fid, status in after:
        if status != "failed":
            continue
        plan = plans.get(fid)
        assert plan is not None, f"{fid} did not fail before"
        assert isinstance(plan, NoFix) or plan.fix.needs_user_value or not plan.fix.verified, (fid, plan)
    assert applied == len(verified)
    return {"auto": len(auto), "verified": len(verified), "applied": applied, "failed": len(items)}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "tree"
    shutil.copytree(src, dst) if src.is_dir() else (dst.mkdir(), shutil.copy(src, dst))
    return dst


@pytest.mark.parametrize("source", ["examples", "tests/corpus", "tests/fixes/corpus"])
def test_verified_fixes_close_the_loop(source: str, tmp_path: Path) -> None:
    counts = close_the_loop(_copy(REPO / source, tmp_path))
    assert counts["auto"] >= 10 and counts["verified"] >= 0.9 * counts["auto"], counts


@pytest.mark.slow
def test_kubescape_examples_close_the_loop(shared_dir: Path, tmp_path: Path) -> None:
    counts = close_the_loop(_copy(shared_dir / "fixtures/manifests/kubescape-examples-2022", tmp_path))
    assert counts["auto"] >= 50 and counts["verified"] >= 0.9 * counts["auto"], counts


def test_placeholders_need_a_user_value_with_a_suggestion(tmp_path: Path) -> None:
    root = _copy(REPO / "examples/insecure.yaml", tmp_path)
    planner = Planner([str(root)], ReadLimits())
    by_control = {(i["control_id"], i["resource"]["name"]): planner.plan(i) for i in _findings(root)}
    limits = by_control[("C-0271", "legacy-agent")]
    assert isinstance(limits, Plan)
    (value,) = limits.fix.needs_user_value
    assert value.field.endswith("resources.limits.memory") and value.suggested_value == "512Mi" and value.reason
    assert limits.fix.verified and not limits.applicable  # the suggestion works, but it is the user's to choose
    image = by_control[("C-0306", "legacy-agent")]
    assert isinstance(image, Plan) and image.fix.needs_user_value and image.fix.needs_user_value[0].suggested_value is None
    assert not image.fix.verified and image.fix.json_patch == []
    network = by_control[("C-0260", "legacy-agent")]
    assert isinstance(network, NoFix) and network.reason.startswith("no remedy")
    privileged = by_control[("C-0057", "legacy-agent")]
    assert isinstance(privileged, Plan) and privileged.applicable
    assert privileged.fix.json_patch == [{"op": "replace", "value": False,
                                         "path": "/spec/template/spec/containers/0/securityContext/privileged"}]
    assert privileged.fix.diff and privileged.fix.diff.count("\n-") == 1 and "# bad: YAML 1.1" in privileged.fix.diff


def test_conflicting_fixes_in_one_write(tmp_path: Path) -> None:
    """Baseline and restricted Pod Security labels: the later one wins; the earlier is then already met."""
    root = _copy(REPO / "examples/insecure.yaml", tmp_path)
    planner = Planner([str(root)], ReadLimits())
    items = [i for i in _findings(root) if i["control_id"] in ("C-0193", "C-0197")]
    plans = [planner.plan(i) for i in sorted(items, key=lambda i: i["control_id"], reverse=True)]
    path = str(root / "insecure.yaml")
    new_text, results = planner.combine(path, [p for p in plans if isinstance(p, Plan)],
                                        digest(Path(path).read_bytes()))
    assert [r.status for r in results] == ["applied", "applied"]
    assert results[1].reason == "already fixed by the other fixes written with it"
    assert new_text is not None and "pod-security.kubernetes.io/enforce: restricted" in new_text
    _, stale = planner.combine(path, [p for p in plans if isinstance(p, Plan)], "0" * 64)
    assert {r.status for r in stale} == {"refused"} and "changed since the scan" in str(stale[0].reason)


def test_helm_templates_get_values_hints_not_edits() -> None:
    template = ("spec:\n  template:\n    spec:\n      containers:\n        - name: {{ .Chart.Name }}\n"
                "          securityContext:\n            {{- toYaml .Values.securityContext | nindent 12 }}\n"
                "          resources:\n            {{- toYaml .Values.resources | nindent 12 }}\n")
    hints = helm_values_hints(template, ["spec.template.spec.containers[0].securityContext.privileged",
                                         "spec.template.spec.containers[0].resources.limits.memory",
                                         "spec.template.spec.hostNetwork"])
    assert hints == [
        {"values_key": "securityContext", "field": "spec.template.spec.containers[0].securityContext.privileged"},
        {"values_key": "resources", "field": "spec.template.spec.containers[0].resources.limits.memory"},
    ]


def test_a_finding_in_a_chart_template_is_never_edited(shared_dir: Path, tmp_path: Path) -> None:
    chart = _copy(shared_dir / "fixtures/manifests/kubescape-examples-2022/examples/helm_chart", tmp_path)
    template = chart / "templates/cronjob.yaml"
    before = template.read_bytes()
    container = "spec.jobTemplate.spec.template.spec.containers[0]"
    item = {"finding_id": "f-0000000000000000", "control_id": "C-0075", "severity": "Medium",
            "resource": {"kind": "CronJob", "namespace": "", "name": "kubescape"},
            "location": {"file": str(template), "document": 0, "line": 16},
            "failed_paths": [f"{container}.image", f"{container}.imagePullPolicy"], "fix_paths": []}
    plan = Planner([str(chart)], ReadLimits()).plan(item)
    assert isinstance(plan, Plan) and plan.fix.diff is None and not plan.applicable
    assert {"values_key": "image.pullPolicy", "field": f"{container}.imagePullPolicy"} in (plan.fix.helm_values or [])
    assert template.read_bytes() == before
