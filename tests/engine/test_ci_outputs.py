"""``mcp-kscan scan`` for CI: JUnit and SARIF validated against their schemas, ``--baseline`` (ours and
real Kubescape's reports) and the ``--fail-on`` exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from .test_cli import run

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCHEMAS = REPO / "tests" / "schemas"


@pytest.fixture
def xmlschema() -> Any:
    """Imported by the tests that use it: every pytest process (each xdist worker) imports this
    module to collect it, and xmlschema with elementpath costs ~0.2 s of CPU in each."""
    return pytest.importorskip("xmlschema")


@pytest.fixture(autouse=True)
def no_kubescape(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The built-in engine: hide any kubescape binary on the machine."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH", raising=False)


def test_junit_validates_and_has_one_testcase_per_control_and_resource(capsys: pytest.CaptureFixture[str], xmlschema: Any) -> None:
    import xml.etree.ElementTree as ET

    code, out, _ = run([str(EXAMPLES), "--format", "junit"], capsys)
    assert code == 0
    xmlschema.XMLSchema(str(SCHEMAS / "junit-4.xsd")).validate(out)
    _, report_text, _ = run([str(EXAMPLES), "--format", "json"], capsys)
    report = json.loads(report_text)
    verdicts = {(c["controlID"], r["resourceID"]) for r in report["results"] for c in r["controls"]}
    failed = {(c["controlID"], r["resourceID"]) for r in report["results"] for c in r["controls"]
              if c["status"]["status"] == "failed"}
    root = ET.fromstring(out)
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(verdicts) and int(root.get("tests", "0")) == len(verdicts)
    failures = root.findall("./testsuite/testcase/failure")
    assert len(failures) == len(failed) == int(root.get("failures", "0")) > 0
    privileged = next(c for c in cases if c.get("classname") == "C-0057" and c.find("failure") is not None)
    failure = privileged.find("failure")
    assert failure is not None
    # The locator (file:line of the failing field) and the remediation travel with the failure.
    assert "insecure.yaml:" in (failure.get("message") or "")
    assert "securityContext.privileged" in (failure.text or "") and "remediation:" in (failure.text or "")
    assert failure.get("type") == "High"


def test_sarif_validates_against_the_sarif_schema_with_lines(capsys: pytest.CaptureFixture[str]) -> None:
    schema = json.loads((SCHEMAS / "sarif-2.1.0-subset.schema.json").read_text())
    code, out, _ = run([str(EXAMPLES), "--format", "sarif"], capsys)
    sarif = json.loads(out)
    jsonschema.validate(sarif, schema, format_checker=jsonschema.FormatChecker())
    regions = [r["locations"][0]["physicalLocation"].get("region") for r in sarif["runs"][0]["results"]]
    assert regions and all(r and r["startLine"] >= 1 for r in regions)
    with pytest.raises(jsonschema.ValidationError):  # the schema does bite
        jsonschema.validate({**sarif, "version": "2.0.0"}, schema)


FULL_SARIF_SCHEMA = (REPO / ".ci" / "node_tools" / "node_modules" / "@microsoft" / "jest-sarif" / "lib" / "schemas"
                     / "sarif-2.1.0-rtm.5.json")
"""The whole SARIF 2.1.0 (rtm.5) JSON Schema, as Microsoft's SARIF matchers ship it (MIT; installed from
the npm registry by .ci/npm-tools.sh, never committed)."""


def test_sarif_validates_against_the_whole_sarif_2_1_0_schema(capsys: pytest.CaptureFixture[str]) -> None:
    if not FULL_SARIF_SCHEMA.is_file():
        pytest.skip("the full SARIF schema comes with @microsoft/jest-sarif: run bash .ci/npm-tools.sh")
    schema = json.loads(FULL_SARIF_SCHEMA.read_text())
    validator = jsonschema.Draft4Validator(schema)
    code, out, _ = run([str(EXAMPLES), "--format", "sarif"], capsys)
    sarif = json.loads(out)
    assert sarif["runs"][0]["results"]
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(sarif)]
    assert not errors, errors[:5]
    assert list(validator.iter_errors({**sarif, "runs": [{"results": []}]}))  # the schema does bite: no tool


def _write_baseline(tmp_path: Path, paths: list[str], capsys: pytest.CaptureFixture[str]) -> Path:
    base = tmp_path / "base.json"
    code, _, _ = run([*paths, "--format", "json", "-o", str(base)], capsys)
    assert code == 0 and base.stat().st_size > 0
    return base


def test_baseline_gates_only_new_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str], xmlschema: Any) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(EXAMPLES / "insecure.yaml", repo / "app.yaml")
    base = _write_baseline(tmp_path, [str(repo)], capsys)

    # Nothing changed: no new failure, exit 0 with --fail-on new, 1 with --fail-on any.
    code, out, _ = run([str(repo), "--baseline", str(base), "--fail-on", "new"], capsys)
    assert code == 0, out
    assert "0 new failure(s)" in out and "No new failures." in out
    assert run([str(repo), "--baseline", str(base), "--fail-on", "any"], capsys)[0] == 1
    assert run([str(repo), "--baseline", str(base)], capsys)[0] == 0  # no gate asked

    # A new privileged workload: exit 1, and only it is shown, in every format.
    (repo / "new.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: intruder, namespace: prod}\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx:1.25\n    securityContext: {privileged: true}\n")
    code, out, _ = run([str(repo), "--baseline", str(base), "--fail-on", "new"], capsys)
    assert code == 1
    assert "Pod/prod/intruder" in out and "legacy-agent" not in out
    code, out, _ = run([str(repo), "--baseline", str(base), "--fail-on", "new", "--format", "json"], capsys)
    shown = json.loads(out)
    assert code == 1 and shown["baseline"]["new"] > 0 and shown["baseline"]["unchanged"] > 0
    assert {r["resourceID"].rsplit("/", 1)[-1] for r in shown["results"]} == {"intruder"}
    assert all(c["status"]["status"] == "failed" for r in shown["results"] for c in r["controls"])
    _, out, _ = run([str(repo), "--baseline", str(base), "--format", "sarif", "--control", "C-0057"], capsys)
    assert [r["ruleId"] for r in json.loads(out)["runs"][0]["results"]] == ["C-0057"]
    _, out, _ = run([str(repo), "--baseline", str(base), "--format", "junit"], capsys)
    xmlschema.XMLSchema(str(SCHEMAS / "junit-4.xsd")).validate(out)
    assert "intruder" in out and "legacy-agent" not in out
    # --severity-threshold with a baseline looks at the regressions only.
    assert run([str(repo), "--baseline", str(base), "--severity-threshold", "critical"], capsys)[0] == 0
    assert run([str(repo), "--baseline", str(base), "--severity-threshold", "high"], capsys)[0] == 1


def test_new_failing_path_in_failing_control_gates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\nspec:\n  containers:\n"
           "  - name: a\n    image: nginx:1.25\n    securityContext: {privileged: true}\n")
    (repo / "pod.yaml").write_text(pod)
    base = _write_baseline(tmp_path, [str(repo), "--control", "C-0057"], capsys)
    (repo / "pod.yaml").write_text(pod + "  - name: b\n    image: nginx:1.25\n    securityContext: {privileged: true}\n")
    code, out, _ = run([str(repo), "--control", "C-0057", "--baseline", str(base), "--fail-on", "new"], capsys)
    assert code == 1
    assert "new: spec.containers[1].securityContext.privileged" in out


def test_without_baseline_fail_on_new_means_any_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([str(EXAMPLES / "insecure.yaml"), "--fail-on", "new"], capsys)[0] == 1
    config = ["--controls-config", str(REPO / "docs" / "controls-config.example.json")]
    assert run([str(EXAMPLES / "hardened.yaml"), "--fail-on", "new", *config], capsys)[0] == 0
    assert run([str(EXAMPLES / "hardened.yaml"), "--fail-on", "any", *config], capsys)[0] == 0


def test_baseline_from_real_kubescape_report(shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real Kubescape's 2022 report of its own examples (relativePath examples/online-boutique/...) as the
    baseline of a scan of the same files from another root: the failures both engines find match."""
    report = shared_dir / "fixtures/kubescape/defectdojo/many_findings.json"
    manifests = shared_dir / "fixtures/manifests/kubescape-examples-2022"
    code, out, _ = run([str(manifests / "examples" / "online-boutique"), "--control", "C-0017,C-0057,C-0034",
                        "--baseline", str(report), "--fail-on", "new", "--format", "json"], capsys)
    shown = json.loads(out)
    counts = shown["baseline"]
    assert counts["unchanged"] >= 10, counts  # immutable filesystem on the boutique's Deployments, matched by relativePath
    assert code == (1 if counts["new"] else 0)
    results_json = shared_dir / "fixtures/kubescape/defectdojo/with_a_failure.json"
    code, out, _ = run([str(manifests), "--control", "C-0017", "--baseline", str(results_json), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["baseline"]["fixed"] >= 0


@pytest.mark.parametrize(("content", "reason"), [
    (None, "cannot read"), ("not json", "not valid JSON"), ('{"a": 1}', "not a Kubescape report"),
])
def test_bad_baseline_is_one_line_before_scanning(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  content: str | None, reason: str) -> None:
    base = tmp_path / "base.json"
    if content is not None:
        base.write_text(content)
    code, out, err = run([str(EXAMPLES), "--baseline", str(base), "--fail-on", "new"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--baseline" in err and reason in err
