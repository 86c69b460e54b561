"""``mcp-kscan scan``: formats, exit codes, engine choice, stdin."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mcp_kscan.settings

from mcp_kscan.engine import cli as engine_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    engine_cli.add_scan_parser(sub)
    args = parser.parse_args(["scan", *argv])
    mcp_kscan.settings.configure(None)  # the environment the test set, read as the CLI reads it
    code = engine_cli.run_scan_command(args, mcp_kscan.settings.get_settings())
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def no_kubescape(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """These tests exercise the built-in engine: hide any kubescape binary on the machine."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH", raising=False)


def test_table_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(EXAMPLES)], capsys)
    assert code == 0
    assert out.startswith("Scan by mcp-kscan-builtin")
    assert "C-0057  Privileged container" in out and "Deployment/legacy-agent" in out
    assert out.index("HIGH") < out.index("MEDIUM") < out.index("LOW")


def test_json_is_the_v2_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    code, out, _ = run([str(EXAMPLES), "--format", "json", "-o", str(target), "--framework", "nsa"], capsys)
    assert code == 0 and out == ""
    report = json.loads(target.read_text())
    assert report["metadata"]["engine"]["name"] == "mcp-kscan-builtin"
    assert [f["name"] for f in report["summaryDetails"]["frameworks"]] == ["NSA"]


def test_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(EXAMPLES / "insecure.yaml"), "--format", "sarif", "--control", "C-0057,C-0041"], capsys)
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run_ = sarif["runs"][0]
    assert {r["id"] for r in run_["tool"]["driver"]["rules"]} == {"C-0057", "C-0041"}
    assert {r["ruleId"] for r in run_["results"]} == {"C-0057", "C-0041"}
    loc = run_["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert loc == "insecure.yaml"
    assert run_["results"][0]["level"] == "error"


def test_sarif_validates_against_schema_subset(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {  # the parts of SARIF 2.1.0 code-scanning tools insist on
        "type": "object", "required": ["version", "runs"],
        "properties": {"version": {"const": "2.1.0"}, "runs": {"type": "array", "items": {
            "type": "object", "required": ["tool", "results"],
            "properties": {"tool": {"type": "object", "required": ["driver"], "properties": {"driver": {
                "type": "object", "required": ["name"]}}},
                "results": {"type": "array", "items": {"type": "object", "required": ["ruleId", "message"],
                    "properties": {"message": {"type": "object", "required": ["text"]},
                                   "level": {"enum": ["none", "note", "warning", "error"]}}}}}}}},
    }
    _, out, _ = run([str(EXAMPLES), "--format", "sarif"], capsys)
    jsonschema.validate(json.loads(out), schema)


@pytest.mark.parametrize(("threshold", "path", "expected"), [
    ("high", "insecure.yaml", 1), ("critical", "insecure.yaml", 0), ("low", "hardened.yaml", 0),
])
def test_severity_threshold_exit_code(threshold: str, path: str, expected: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run([str(EXAMPLES / path), "--severity-threshold", threshold, "--format", "json",
                      "--controls-config", str(REPO / "docs" / "controls-config.example.json")], capsys)
    assert code == expected


def test_hardened_example_passes_everything(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run([str(EXAMPLES / "hardened.yaml"), "--format", "json",
                     "--controls-config", str(REPO / "docs" / "controls-config.example.json")], capsys)
    report = json.loads(out)
    assert report["summaryDetails"]["ResourceCounters"]["failedResources"] == 0
    assert report["summaryDetails"]["complianceScore"] == 100
    # Without a trusted registry, C-0078 (images from an allowed registry) allows nothing.
    _, out, _ = run([str(EXAMPLES / "hardened.yaml"), "--format", "json"], capsys)
    failed = [cid for cid, c in json.loads(out)["summaryDetails"]["controls"].items() if c["status"] == "failed"]
    assert failed == ["C-0078"]


def test_insecure_example_fails_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run([str(EXAMPLES / "insecure.yaml"), "--format", "json"], capsys)
    controls = json.loads(out)["summaryDetails"]["controls"]
    for cid in ("C-0034", "C-0035", "C-0061", "C-0041", "C-0038", "C-0075", "C-0057", "C-0046", "C-0012",
                "C-0044", "C-0074", "C-0045", "C-0048", "C-0062"):
        assert controls[cid]["status"] == "failed", cid


def test_unknown_framework_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(EXAMPLES), "--framework", "cis"], capsys)
    assert code == 2 and "unknown framework 'cis'" in err and "nsa" in err


def test_json_output_file_is_not_created_for_a_bad_request(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The JSON report is streamed to -o as it is produced; a request refused up front leaves no file."""
    target = tmp_path / "report.json"
    code, _, err = run([str(EXAMPLES), "--format", "json", "-o", str(target), "--framework", "cis"], capsys)
    assert code == 2 and "unknown framework 'cis'" in err
    assert not target.exists()


def test_no_paths(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([], capsys)
    assert code == 2 and "PATH" in err


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((EXAMPLES / "insecure.yaml").read_text()))
    code, out, _ = run(["-", "--format", "json", "--control", "C-0057"], capsys)
    report = json.loads(out)
    assert report["summaryDetails"]["controls"]["C-0057"]["status"] == "failed"
    assert report["resources"][0]["source"]["relativePath"] == "<stdin>"


def test_engine_kubescape_without_the_binary_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """The planner's answer (``scan_plan.choose_engine``, tested in tests/test_scan_plan.py), said in one line."""
    code, _, err = run([str(EXAMPLES), "--engine", "kubescape"], capsys)
    assert code == 2 and "kubescape is not installed" in err and "--engine builtin" in err
    assert len(err.strip().splitlines()) == 1


def _slow_corpus(root: Path, files: int = 400) -> Path:
    """Enough manifests that no scan of them ends within a millisecond."""
    text = (EXAMPLES / "insecure.yaml").read_text()
    root.mkdir(exist_ok=True)
    for i in range(files):
        (root / f"m{i}.yaml").write_text(text)
    return root


def _scan_process(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``mcp-kscan scan`` with the built-in engine in its own process (no kubescape on PATH).

    For the timeout tests: the deadline is an exception that SIGALRM raises wherever the main
    thread is (runner/deadline.py). Run through ``run`` in a test worker, it once landed inside
    ``logging``'s module lock, which the worker's main thread then held for good: a later test's
    thread hung on it (pytest -n 8). A CLI process ends right after, which is all it needs."""
    full_env = {**os.environ, "PATH": str(tmp_path / "empty-bin"), **env}
    full_env.pop("MCP_KSCAN_KUBESCAPE_PATH", None)
    return subprocess.run([sys.executable, "-m", "mcp_kscan", "scan", *argv, "--engine", "builtin"],
                          env=full_env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_builtin_scan_times_out(fmt: str, tmp_path: Path) -> None:
    """A terminal scan gets a server scan's timeout (--timeout, as timeout_seconds) and ends with it:
    exit 2, one line saying so, no half-written report left behind."""
    corpus = _slow_corpus(tmp_path / "corpus")
    out_file = tmp_path / "report.out"
    proc = _scan_process(tmp_path, str(corpus), "--format", fmt, "--timeout", "0.001", "-o", str(out_file))
    assert proc.returncode == 2, proc.stderr
    assert "timed out after 0.001s" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out_file.exists()


def test_builtin_scan_takes_the_default_timeout(tmp_path: Path) -> None:
    """Without --timeout, MCP_KSCAN_DEFAULT_TIMEOUT: the rule of a server scan."""
    proc = _scan_process(tmp_path, str(_slow_corpus(tmp_path / "corpus")), "--format", "json",
                         MCP_KSCAN_DEFAULT_TIMEOUT="0.001")
    assert proc.returncode == 2 and "timed out after 0.001s" in proc.stderr, proc.stderr


def test_timeout_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run([str(EXAMPLES), "--timeout", "0"], capsys)
    assert "outside (0, 86400] seconds" in capsys.readouterr().err


def test_list_controls(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--list-controls"], capsys)
    assert code == 0 and "C-0057" in out and len(out.splitlines()) >= 30


def test_top_level_cli_has_scan() -> None:
    from mcp_kscan.cli import build_parser

    args = build_parser().parse_args(["scan", "x.yaml", "--format", "json"])
    assert args.command == "scan" and args.paths == ["x.yaml"]


ENV_POD = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: n}\n"
           "spec:\n  containers:\n  - name: c\n    image: x:1\n    env: [{name: DB_URL, value: 'db.example:5432'}]\n")


def test_controls_config_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(tmp_path))
    mcp_kscan.settings.configure(None)
    try:
        manifest = tmp_path / "pod.yaml"
        manifest.write_text(ENV_POD)
        config = tmp_path / "controls-config.json"
        config.write_text(json.dumps({"settings": {"postureControlInputs": {"sensitiveKeyNames": ["db_url"]}}}))
        for fmt in ("json", "table"):  # the parallel JSON writer and the report path both take it
            code, out, _ = run([str(manifest), "--control", "C-0012", "--format", fmt, "--controls-config", str(config)], capsys)
            assert code == 0
            assert ("C-0012" in out and "failed" in out) if fmt == "json" else "C-0012" in out
        code, out, _ = run([str(manifest), "--control", "C-0012", "--format", "json"], capsys)
        assert json.loads(out)["summaryDetails"]["controls"]["C-0012"]["status"] == "passed"
        code, out, _ = run([str(manifest), "--control", "C-0012", "--format", "json", "--controls-config", str(config)], capsys)
        assert json.loads(out)["summaryDetails"]["controls"]["C-0012"]["status"] == "failed"
        # The path rules apply, and a bad file is one line naming the option.
        code, _, err = run([str(manifest), "--controls-config", "/etc/hostname"], capsys)
        assert code == 2 and "--controls-config:" in err and "allowed roots" in err
        config.write_text('{"settings": {}}')
        code, _, err = run([str(manifest), "--controls-config", str(config)], capsys)
        assert code == 2 and err.strip() == "mcp-kscan scan: --controls-config: no settings.postureControlInputs object in the file"
    finally:
        mcp_kscan.settings.configure(None)
