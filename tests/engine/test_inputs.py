"""Control inputs: the defaults, Kubescape's --controls-config file, and the reference's own
custom-input rule test cases run through such a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_kscan.engine.controls import CONTROLS
from mcp_kscan.engine.inputs import ControlsConfigError, default_inputs, load_controls_config, merge_inputs
from mcp_kscan.engine.ruletests import rule_cases
from mcp_kscan.engine.scan import scan_paths
from mcp_kscan.catalogue.records import catalogue


def test_defaults_are_the_references(regolibrary: Path) -> None:
    raw = json.loads((regolibrary / "default-config-inputs.json").read_text())
    expected = {k: tuple(v) for k, v in raw["settings"]["postureControlInputs"].items()}
    assert default_inputs() == expected


def test_keys_set_replace_defaults_and_others_stay() -> None:
    merged = merge_inputs({"settings": {"postureControlInputs": {"insecureCapabilities": ["NET_RAW"]}}})
    assert merged["insecureCapabilities"] == ("NET_RAW",)
    assert merged["sensitiveKeyNames"] == default_inputs()["sensitiveKeyNames"]
    # A rule test's data.json has the same object without "settings".
    assert merge_inputs({"postureControlInputs": {"recommendedLabels": []}})["recommendedLabels"] == ()


@pytest.mark.parametrize(("content", "message"), [
    ("[]", "expected a JSON object"),
    ('{"settings": {}}', "no settings.postureControlInputs"),
    ('{"settings": {"postureControlInputs": {"insecureCapabilities": "NET_RAW"}}}', "insecureCapabilities must be a list"),
    ('{"settings": {"postureControlInputs": {"noSuchInput": []}}}', "unknown input 'noSuchInput'; known: "),
    ("{not json", "is not JSON"),
])
def test_bad_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "controls.json"
    path.write_text(content)
    with pytest.raises(ControlsConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_controls_config(path)


def _implemented_cases_with_inputs(regolibrary: Path) -> list[tuple[str, Path, object]]:
    out = []
    for control in CONTROLS:
        for rule in catalogue().controls[control.id].rules:
            for case in rule_cases(regolibrary, rule):
                if isinstance(case.data, dict) and "postureControlInputs" in case.data:
                    out.append((control.id, regolibrary / "rules" / catalogue().rules[rule].directory / "test" / case.name, case.data))
    return out


def test_reference_custom_input_cases_through_a_controls_config_file(regolibrary: Path, tmp_path: Path) -> None:
    """Each implemented rule's data.json case, given as a Kubescape controls-config file to a real
    scan of the case's input files: the failed resources are exactly the expected ones."""
    cases = _implemented_cases_with_inputs(regolibrary)
    assert len(cases) >= 10
    for control_id, case_dir, data in cases:
        label = f"{control_id}-{case_dir.parent.parent.name}-{case_dir.name}"
        config = tmp_path / f"{label}.json"
        config.write_text(json.dumps({"settings": data}))
        inputs = load_controls_config(config)
        work = tmp_path / label
        work.mkdir()
        for f in (case_dir / "input").iterdir():
            # regolibrary's runner reads only the first document of each file
            first = f.read_text().split("\n---")[0]
            (work / f.name).write_text(first)
        if control_id in ("C-0303", "C-0304"):
            # a control of several rules whose cases each test one rule: test_rule_cases judges
            # those rule by rule; a whole-control scan would also fail what the other rule fails
            continue
        report = scan_paths([str(work)], controls=[control_id], inputs=inputs)
        failed = sorted(r["resourceID"].rsplit("/", 1)[-1] for r in report["results"]
                        for c in r["controls"] if c["status"]["status"] == "failed")
        expected = sorted({o["metadata"]["name"] for a in json.loads((case_dir / "expected.json").read_text())
                           for o in a["alertObject"].get("k8sApiObjects", [])})
        assert failed == expected, f"{control_id} {case_dir.name}"


def test_a_controls_config_changes_a_verdict(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\n"
                        "spec:\n  containers:\n  - name: c\n    image: x:1\n    env: [{name: DB_URL, value: 'db.example:5432'}]\n")
    before = scan_paths([str(manifest)], controls=["C-0012"])
    assert before["summaryDetails"]["controls"]["C-0012"]["status"] == "passed"
    config = tmp_path / "controls-config.json"
    config.write_text(json.dumps({"settings": {"postureControlInputs": {"sensitiveKeyNames": ["db_url"]}}}))
    after = scan_paths([str(manifest)], controls=["C-0012"], inputs=load_controls_config(config))
    assert after["summaryDetails"]["controls"]["C-0012"]["status"] == "failed"


def test_value_patterns_that_python_cannot_join_or_compile(tmp_path: Path) -> None:
    """A pattern with its own inline flags is still applied; one that does not compile matches nothing."""
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\n"
                        "spec:\n  containers:\n  - name: c\n    image: x:1\n    env: [{name: A, value: 'xx TOPSECRET'}]\n")
    for patterns, status in ((["(?i)topsecret", "AKIA"], "failed"), (["["], "passed")):
        config = tmp_path / "c.json"
        config.write_text(json.dumps({"settings": {"postureControlInputs": {"sensitiveValues": patterns}}}))
        report = scan_paths([str(manifest)], controls=["C-0012"], inputs=load_controls_config(config))
        assert report["summaryDetails"]["controls"]["C-0012"]["status"] == status, patterns
