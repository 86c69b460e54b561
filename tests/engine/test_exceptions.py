"""Accepted risk in the built-in engine: inline annotations (with expiry), the ignore label, Kubescape's
exceptions file, the system exceptions, and malformed files that stop the scan."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_kscan.engine.exceptions import SYSTEM_FILE, ExceptionsError, Exceptions, load_exceptions_file, system_exceptions
from mcp_kscan.engine.scan import scan_objects
from mcp_kscan.readers.kubescape_report import parse_report

from .test_cli import run

REPO = Path(__file__).resolve().parents[2]


def pod(name: str = "p", namespace: str = "prod", annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "securityContext": {"privileged": True}}]}}


def verdicts(report: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(f.resource.name or "", f.control_id): f for f in parse_report(report).findings}


def scan(objects: list[dict[str, Any]], exceptions: Exceptions | None = None,
         controls: str = "C-0057,C-0017") -> dict[str, Any]:
    return scan_objects(objects, controls=controls.split(","), exceptions=exceptions or Exceptions.build())


def test_inline_skip_controls_with_reason() -> None:
    report = scan([pod(annotations={"kubescape.io/skip-controls": " c-0057 ,C-9999",
                                    "kubescape.io/skip-reason": "host driver; SEC-12"})])
    found = verdicts(report)
    excepted = found[("p", "C-0057")]
    assert excepted.status == "passed" and excepted.excepted
    assert excepted.exception == {"name": "kubescape.io/skip-controls annotation", "reason": "host driver; SEC-12",
                                  "source": "annotation kubescape.io/skip-controls"}
    assert found[("p", "C-0017")].status == "failed"  # not listed: still failing
    summary = report["summaryDetails"]["controls"]["C-0057"]
    assert summary["status"] == "passed" and summary["statusInfo"]["subStatus"] == "w/exceptions"
    assert summary["subStatusCounters"]["ignoredResources"] == 1
    assert summary["complianceScore"] == 100  # an excepted failure does not count against the score
    rule = next(c for r in report["results"] for c in r["controls"] if c["controlID"] == "C-0057")["rules"][0]
    assert rule["status"] == "passed" and rule["subStatus"] == "w/exceptions" and rule["paths"]


@pytest.mark.parametrize(("expiry", "applies", "says"), [
    ("2999-01-01T00:00:00Z", True, None),
    ("2020-01-01T00:00:00Z", False, "expired at 2020-01-01T00:00:00Z (temporary)"),
    ("2020-01-01", False, "expired at 2020-01-01 (temporary)"),
    ("next tuesday", False, "is not an RFC 3339 time"),
])
def test_inline_expiry(expiry: str, applies: bool, says: str | None) -> None:
    found = verdicts(scan([pod(annotations={"kubescape.io/skip-controls": "C-0057", "kubescape.io/skip-reason": "temporary",
                                            "kubescape.io/skip-expiry": expiry})]))[("p", "C-0057")]
    assert (found.status == "passed") is applies
    if says:
        assert found.status == "failed" and found.exception_expired is not None
        assert says in found.exception_expired["reason"] and found.exception_expired["expiry"] == expiry


@pytest.mark.parametrize("where", ["labels", "annotations"])
def test_ignore_label_or_annotation_excepts_every_control(where: str) -> None:
    obj = pod(**{where: {"kubescape.io/ignore": "true"}})  # type: ignore[arg-type]
    found = verdicts(scan([obj, pod("other")]))
    assert found[("p", "C-0057")].excepted and found[("p", "C-0017")].excepted
    assert found[("p", "C-0057")].exception["source"] == f"{where[:-1]} kubescape.io/ignore"  # type: ignore[index]
    assert found[("other", "C-0057")].status == "failed"


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "exceptions.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_exceptions_file_designators_and_policies(tmp_path: Path) -> None:
    path = write(tmp_path, [
        {"name": "legacy", "policyType": "postureExceptionPolicy", "actions": ["alertOnly"], "reason": "replaced in Q3",
         "resources": [{"designatorType": "Attributes", "attributes": {"kind": "Pod", "name": "legacy-.*", "namespace": "prod"}}],
         "posturePolicies": [{"controlID": "c-0057"}]},
        {"name": "team-x", "resources": [{"designatorType": "Attributes", "attributes": {"team": "x"}}],
         "posturePolicies": [{"frameworkName": "allcontrols", "controlName": "Immutable container .*"}]},
    ])
    found = verdicts(scan([pod("legacy-1"), pod("new-legacy-1"),
                           pod("web", labels={"team": "x"}), pod("api", labels={"team": "y"})],
                          Exceptions.build(str(path))))
    assert found[("legacy-1", "C-0057")].exception == {"name": "legacy", "reason": "replaced in Q3",
                                                        "source": "exceptions file (legacy)"}
    assert found[("legacy-1", "C-0017")].status == "failed"  # the policy names C-0057 only
    assert found[("new-legacy-1", "C-0057")].status == "failed"  # the whole name must match
    assert found[("web", "C-0017")].excepted and found[("web", "C-0057")].status == "failed"
    assert found[("api", "C-0017")].status == "failed"
    dev = [f for f in parse_report(scan([pod("legacy-1", namespace="dev")], Exceptions.build(str(path)))).findings
           if f.control_id == "C-0057"]
    assert dev[0].status == "failed"


def test_system_exceptions_apply_by_default() -> None:
    kubescape = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "kubescape", "namespace": "kubescape"},
                 "spec": {"template": {"spec": {"containers": [{"name": "k", "image": "quay.io/kubescape/kubescape:v3"}]}}}}
    found = verdicts(scan([kubescape], controls="C-0055"))
    assert found[("kubescape", "C-0055")].excepted
    assert found[("kubescape", "C-0055")].exception["source"] == "system exception (kubescape.json)"  # type: ignore[index]
    without = verdicts(scan_objects([kubescape], controls=["C-0055"], exceptions=Exceptions.build(system=False)))
    assert without[("kubescape", "C-0055")].status == "failed"
    assert len(system_exceptions()) == 48


@pytest.mark.parametrize(("doc", "says"), [
    ("not json", "not JSON"),
    ({"name": "x"}, "must be a JSON list"),
    (["x"], "entry 0: must be an object"),
    ([{"resources": [], "posturePolicies": [{}]}], "entry 0: name: required"),
    ([{"name": "a", "resources": [], "posturePolicies": [{}]}], "entry 0 ('a'): resources: required"),
    ([{"name": "a", "resources": [{"attributes": {"kind": ".*"}}]}], "entry 0 ('a'): posturePolicies: required"),
    ([{"name": "ok", "resources": [{"attributes": {"kind": ".*"}}], "posturePolicies": [{}]},
      {"name": "b", "resources": [{"attributes": {"name": "("}}], "posturePolicies": [{}]}],
     "entry 1 ('b'): resources[0].attributes.name: not a regular expression"),
    ([{"name": "c", "resources": [{"attributes": {"kind": ".*"}}], "posturePolicies": [{"controlId": "C-0057"}]}],
     "entry 0 ('c'): posturePolicies[0]: unknown key 'controlId'"),
    ([{"name": "d", "policyType": "vulnerabilityExceptionPolicy", "resources": [{"attributes": {"kind": ".*"}}],
       "posturePolicies": [{}]}], "entry 0 ('d'): policyType: must be postureExceptionPolicy"),
])
def test_malformed_file_is_one_line_naming_the_entry(tmp_path: Path, doc: Any, says: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(ExceptionsError) as err:
        load_exceptions_file(path)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_cli_exceptions_file_and_malformed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH", raising=False)
    insecure = REPO / "examples" / "insecure.yaml"
    good = write(tmp_path, [{"name": "legacy agent", "reason": "replaced in Q3",
                             "resources": [{"attributes": {"kind": "Deployment", "name": "legacy-agent"}}],
                             "posturePolicies": [{"controlID": "C-0057"}]}])
    assert run([str(insecure), "--control", "C-0057", "--fail-on", "any"], capsys)[0] == 1
    code, out, _ = run([str(insecure), "--control", "C-0057", "--fail-on", "any", "--exceptions", str(good),
                        "--format", "junit"], capsys)
    assert code == 0 and "<skipped>excepted (accepted risk) by exceptions file (legacy agent): replaced in Q3" in out
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "x", "resources": [{"attributes": {"name": "("}}], "posturePolicies": [{}]}]')
    code, out, err = run([str(insecure), "--exceptions", str(bad), "--format", "json"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--exceptions" in err and "entry 0 ('x')" in err


def test_generated_system_exceptions_match_the_reference(tmp_path: Path) -> None:
    reference = REPO.parent / "shared" / "reference" / "regolibrary-v2.0.33"
    if not (reference / "exceptions").is_dir():
        pytest.skip(f"../shared reference absent: {reference}")
    committed = (REPO / "mcp_kscan" / "engine" / "system_exceptions.json").read_text()
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import gen_system_exceptions
    finally:
        sys.path.pop(0)
    assert json.loads(committed) == gen_system_exceptions.collect(reference)
    assert subprocess.run([sys.executable, str(REPO / "scripts" / "gen_system_exceptions.py"), str(tmp_path)],
                          capture_output=True, text=True).returncode == 2  # no exceptions/ there


def test_reader_takes_the_exception_from_a_kubescape_report() -> None:
    """Kubescape writes the applied postureExceptionPolicy objects on the rule; the reader keeps name and reason."""
    report = {
        "summaryDetails": {"controls": {"C-0057": {"controlID": "C-0057", "name": "Privileged container", "scoreFactor": 8,
                                                   "status": "passed", "statusInfo": {"status": "passed", "subStatus": "w/exceptions"}}}},
        "resources": [{"resourceID": "/v1/kube-system/Pod/kube-proxy-x", "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "kube-proxy-x", "namespace": "kube-system"}}}],
        "results": [{"resourceID": "/v1/kube-system/Pod/kube-proxy-x", "controls": [{
            "controlID": "C-0057", "name": "Privileged container", "status": {"status": "passed", "subStatus": "w/exceptions"},
            "rules": [{"name": "rule-privilege-escalation", "status": "passed", "subStatus": "w/exceptions",
                       "exception": [{"name": "exclude-kube-proxy", "policyType": "postureExceptionPolicy",
                                      "actions": ["alertOnly"], "reason": "kube-proxy needs it"}]}]}]}],
    }
    finding = parse_report(report).findings[0]
    assert finding.status == "passed" and finding.excepted
    assert finding.exception == {"name": "exclude-kube-proxy", "reason": "kube-proxy needs it",
                                 "source": "exception exclude-kube-proxy"}


def test_an_exception_for_one_of_two_controls_sharing_a_check_leaves_the_other_failing() -> None:
    """C-0012 and C-0259 share one check (run once per object): excepting C-0012 must not except
    C-0259's finding too."""
    obj = pod(annotations={"kubescape.io/skip-controls": "C-0012", "kubescape.io/skip-reason": "test value"})
    obj["spec"]["containers"][0]["env"] = [{"name": "DB_PASSWORD", "value": "hunter2"}]
    found = verdicts(scan([obj], controls="C-0012,C-0259"))
    assert found[("p", "C-0012")].status == "passed" and found[("p", "C-0012")].excepted
    assert found[("p", "C-0259")].status == "failed" and not found[("p", "C-0259")].excepted


def test_plain_designator_values_match_exactly_without_a_regex() -> None:
    """Values without regex syntax are compared (Exact), others compiled: the same answers as re.fullmatch."""
    from mcp_kscan.engine.exceptions import Exact, parse_policies

    doc = [{"name": "e", "resources": [{"designatorType": "Attributes",
                                         "attributes": {"name": "kube-proxy", "namespace": "kube-.*"}}],
            "posturePolicies": [{"controlID": "c-0057"}]}]
    (policy,) = parse_policies(doc, "x.json")
    patterns = dict(policy.resources[0].patterns)
    assert isinstance(patterns["name"], Exact) and not isinstance(patterns["namespace"], Exact)
    for value in ("kube-proxy", "kube-proxy2", "Kube-proxy", "kube-prox", ""):
        assert bool(patterns["name"].fullmatch(value)) == bool(re.fullmatch("kube-proxy", value)), value
    assert patterns["namespace"].fullmatch("kube-system")


def test_the_system_exceptions_patterns_compile_when_used_and_are_all_valid() -> None:
    """The shipped patterns are compiled on first use (``Lazy``), not at every scan's start; each
    one is a valid regular expression, and a lazy one answers as the compiled pattern does."""
    from mcp_kscan.engine.exceptions import Lazy, compile_patterns, parse_policies

    policies = parse_policies(json.loads(SYSTEM_FILE.read_text(encoding="utf-8")), "system.json", system=True)
    assert compile_patterns(policies) >= 30
    (policy,) = parse_policies([{"name": "e", "resources": [{"attributes": {"namespace": "kube-.*"}}],
                                 "posturePolicies": [{"controlID": "c-00(13|57)"}]}], "s.json", system=True)
    namespace = dict(policy.resources[0].patterns)["namespace"]
    control = policy.policies[0].control_id
    assert isinstance(namespace, Lazy) and isinstance(control, Lazy)
    for value in ("kube-system", "kube-", "default", "xkube-system"):
        assert bool(namespace.fullmatch(value)) == bool(re.fullmatch("kube-.*", value)), value
    for value in ("C-0013", "c-0057", "C-0012", "C-00135"):
        assert bool(control.fullmatch(value)) == bool(re.fullmatch("c-00(13|57)", value, re.IGNORECASE)), value
    (bad,) = parse_policies([{"name": "bad", "resources": [{"attributes": {"name": "a("}}],
                              "posturePolicies": [{}]}], "s.json", system=True)
    with pytest.raises(ExceptionsError, match="not a regular expression"):
        compile_patterns([bad])
