"""Run Kubescape's own rule test cases (regolibrary ``rules/<rule>/test/<case>/``) through the engine.

Each case holds input manifests and ``expected.json``, the alerts the rule raises. For every
implemented control and each of its rules, every case's resources are judged by the engine and
compared with the alerts:

- an alert's ``alertObject.k8sApiObjects`` name the failed resources; when the alert is about an
  RBAC subject (``externalObjects`` with related bindings), the binding is the failed unit;
- the units are the input objects of the kinds the rule matches, less the kinds the rule only
  reads as context (a Role for a binding rule, a NetworkPolicy for a workload rule): a kind
  counts when the engine judges it or when some case of the rule fails it;
- only the first YAML document of each input file is read, as regolibrary's runner does;
- a case's ``data.json`` (postureControlInputs) replaces the default inputs key by key.

Used by ``tests/engine/test_rule_cases.py`` and by ``python -m mcp_kscan.engine.ruletests REGOLIBRARY``
(a table per control, for docs/engine-agreement.md). Reads the reference only when asked to.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mcp_kscan.catalogue.records import catalogue
from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import CONTROLS, Control
from mcp_kscan.engine.inputs import merge_inputs
from mcp_kscan.engine.loader import KubeYAMLLoader
from mcp_kscan.engine.model import RBAC_BINDING_KINDS, Finding, Resource, make_resource

SUBJECT_KINDS = frozenset({"User", "Group", "ServiceAccount"})


@dataclass(frozen=True)
class UnitVerdict:
    rule: str
    case: str
    unit: str
    """``Kind/namespace/name`` of the judged object."""
    expected: str
    got: str

    @property
    def agrees(self) -> bool:
        return self.expected == self.got


@dataclass
class ControlResult:
    control_id: str
    name: str
    verdicts: list[UnitVerdict] = field(default_factory=list)
    cases: int = 0

    @property
    def agree(self) -> int:
        return sum(v.agrees for v in self.verdicts)

    @property
    def total(self) -> int:
        return len(self.verdicts)

    @property
    def disagreements(self) -> list[UnitVerdict]:
        return [v for v in self.verdicts if not v.agrees]


def first_document(path: Path) -> dict[str, Any] | None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        obj = json.loads(text)
    else:
        obj = next(iter(yaml.load_all(text, Loader=KubeYAMLLoader)), None)
    return obj if isinstance(obj, dict) else None


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def expected_failures(alerts: Any) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of every failed unit named by the alerts."""
    out: list[tuple[str, str, str]] = []
    for alert in alerts or []:
        obj = alert.get("alertObject") or {}
        external = obj.get("externalObjects") or {}
        related = external.get("relatedObjects") or [] if isinstance(external, dict) else []
        bindings = [r for r in related if isinstance(r, dict) and r.get("kind") in RBAC_BINDING_KINDS]
        if external and external.get("kind") in SUBJECT_KINDS and bindings:
            out.extend(_key(b) for b in bindings)
        elif external and external.get("kind") not in SUBJECT_KINDS:
            # a workload vector (the workload with the objects that expose it): the workload fails
            out.append((str(external.get("kind") or ""), str(external.get("namespace") or ""), str(external.get("name") or "")))
        # Kubescape reads this JSON with Go's case-insensitive field matching; some rules
        # write "k8SApiObjects".
        objects = next((v for k, v in obj.items() if k.lower() == "k8sapiobjects"), None) or []
        for k8s in objects:
            if isinstance(k8s, dict):
                out.append(_key(k8s))
    return out


def _matches(unit: Resource, key: tuple[str, str, str]) -> bool:
    kind, ns, name = key
    return unit.kind == kind and unit.name == name and (not ns or ns == unit.namespace or (ns == "default" and not unit.namespace))


@dataclass
class Case:
    rule: str
    name: str
    resources: list[Resource]
    failed: list[tuple[str, str, str]]
    data: Any | None


def load_case(rule: str, case_dir: Path) -> Case:
    objects = []
    for f in sorted((case_dir / "input").iterdir()):
        if f.suffix in (".yaml", ".yml", ".json"):
            obj = first_document(f)
            if obj is not None:
                objects.append((obj, f.name))
    resources = [make_resource(o, f"input/{name}", str(case_dir)) for o, name in objects]
    expected = json.loads((case_dir / "expected.json").read_text(encoding="utf-8"))
    data_file = case_dir / "data.json"
    data = json.loads(data_file.read_text(encoding="utf-8")) if data_file.is_file() else None
    return Case(rule, case_dir.name, resources, expected_failures(expected), data)


def rule_cases(reference: Path, rule: str) -> list[Case]:
    record = catalogue().rules.get(rule)
    if record is None:
        return []
    test_dir = reference / "rules" / record.directory / "test"
    if not test_dir.is_dir():
        return []
    return [load_case(rule, d) for d in sorted(test_dir.iterdir()) if (d / "expected.json").is_file() and (d / "input").is_dir()]


def case_inputs(case: Case) -> dict[str, tuple[str, ...]] | None:
    """The case's postureControlInputs over the defaults (None: the defaults)."""
    if isinstance(case.data, dict) and "postureControlInputs" in case.data:
        return merge_inputs(case.data)
    return None


def case_cloud_provider(case: Case) -> str:
    """A case's ``dataControlInputs.cloudProvider`` (the cluster's provider the rule reads)."""
    if isinstance(case.data, dict):
        return str((case.data.get("dataControlInputs") or {}).get("cloudProvider") or "")
    return ""


def judge(control: Control, rule: str, res: Resource, ctx: ScanContext) -> str:
    if res.kind not in control.kinds:
        return "passed"
    verdict = control.check_for_rule(rule)(res, ctx)
    return "failed" if isinstance(verdict, Finding) else "passed"


def run_control(reference: Path, control: Control) -> ControlResult:
    result = ControlResult(control.id, control.name)
    record = catalogue().controls[control.id]
    for rule in record.rules:
        cases = rule_cases(reference, rule)
        rule_kinds = set(catalogue().rules[rule].kinds)
        failed_kinds = {k for case in cases for (k, _, _) in case.failed}
        unit_kinds = rule_kinds & (set(control.kinds) | failed_kinds)
        for case in cases:
            result.cases += 1
            ctx = ScanContext.build(case.resources, case_inputs(case))
            ctx.cloud_provider = case_cloud_provider(case)
            matched: set[int] = set()
            for res in case.resources:
                if res.kind not in unit_kinds:
                    continue
                is_failed = any(_matches(res, key) for key in case.failed)
                matched.add(id(res))
                label = f"{res.kind}/{res.namespace}/{res.name}"
                result.verdicts.append(UnitVerdict(rule, case.name, label, "failed" if is_failed else "passed",
                                                   judge(control, rule, res, ctx)))
            for key in dict.fromkeys(case.failed):
                if not any(_matches(r, key) for r in case.resources if id(r) in matched):
                    # the rule failed an object that is not among the input units (e.g. a kind
                    # the engine does not know): a disagreement the engine cannot win
                    result.verdicts.append(UnitVerdict(rule, case.name, "/".join(key), "failed", "not judged"))
    return result


def run_all(reference: Path, controls: Iterable[Control] = CONTROLS) -> list[ControlResult]:
    return [run_control(reference, c) for c in controls]


def table(results: Sequence[ControlResult]) -> str:
    lines = ["| control | name | cases | verdicts | agree | % |", "|---|---|---|---|---|---|"]
    for r in results:
        pct = 100 * r.agree / r.total if r.total else 100.0
        lines.append(f"| {r.control_id} | {r.name} | {r.cases} | {r.total} | {r.agree} | {pct:.1f} |")
    agree, total = sum(r.agree for r in results), sum(r.total for r in results)
    lines.append(f"| **all** | | {sum(r.cases for r in results)} | {total} | {agree} | {100 * agree / total if total else 100:.1f} |")
    for r in results:
        for v in r.disagreements:
            lines.append(f"- {r.control_id} {v.rule}/{v.case}: {v.unit} expected {v.expected}, engine {v.got}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a convenience for humans
    if len(sys.argv) < 2:
        print("usage: python -m mcp_kscan.engine.ruletests REGOLIBRARY_DIR [C-0057 ...]", file=sys.stderr)
        raise SystemExit(2)
    wanted = {a.upper() for a in sys.argv[2:]}
    print(table(run_all(Path(sys.argv[1]), [c for c in CONTROLS if not wanted or c.id in wanted])))
