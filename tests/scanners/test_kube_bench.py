"""kube-bench adapter: request validation, exact argv, JSON parsing of real outputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeBin, shared_fixture
from pydantic import ValidationError

from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY
from mcp_kscan.cluster.node_role import host_runs_kubernetes
from mcp_kscan.errors import describe_validation_error
from mcp_kscan.executors.placement import JobPlacement
from mcp_kscan.readers.kube_bench_json import NO_COMPONENTS_WARNING, parse_output
from mcp_kscan.reports import MAX_TEXT_CHARS, summarize_kube_bench
from mcp_kscan.scanners.common import ScanOutputError
from mcp_kscan.scanners.kube_bench_argv import build_argv, requested_exit_code
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest, KubeBenchRun

B = "/opt/kb/kube-bench"
NO_ROOTS = {ALLOWED_ROOTS_KEY: []}  # the validation context with no MCP_KSCAN_ALLOWED_ROOTS set


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    d = tmp_path / "cfg"
    d.mkdir()
    return d


ARGV_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, [B, "--json"]),
    ({"targets": ["master"]}, [B, "run", "--targets", "master", "--json"]),
    ({"targets": ["master", "node"]}, [B, "run", "--targets", "master,node", "--json"]),
    ({"targets": "node,policies"}, [B, "run", "--targets", "node,policies", "--json"]),
    ({"targets": ["etcd", "etcd", "controlplane"]}, [B, "run", "--targets", "etcd,controlplane", "--json"]),
    ({"targets": ["managedservices"]}, [B, "run", "--targets", "managedservices", "--json"]),
    ({"version": "1.28"}, [B, "--json", "--version", "1.28"]),
    ({"version": "ocp-4.13"}, [B, "--json", "--version", "ocp-4.13"]),
    ({"version": "1.28.3"}, [B, "--json", "--version", "1.28.3"]),
    ({"benchmark": "cis-1.10"}, [B, "--json", "--benchmark", "cis-1.10"]),
    ({"targets": ["node"], "benchmark": "eks-1.5.0"},
     [B, "run", "--targets", "node", "--json", "--benchmark", "eks-1.5.0"]),
    ({"check": ["1.1.1", "1.2.3"]}, [B, "--json", "--check", "1.1.1,1.2.3"]),
    ({"check": "V-242390"}, [B, "--json", "--check", "V-242390"]),
    ({"group": ["1.1"], "skip": ["1.1.2"]}, [B, "--json", "--group", "1.1", "--skip", "1.1.2"]),
    ({"scored": False}, [B, "--json", "--scored=false"]),
    ({"scored": True, "unscored": False}, [B, "--json", "--scored=true", "--unscored=false"]),
    ({"additional_args": "--exit-code 3 -v 2"}, [B, "--json", "--exit-code=3", "-v=2"]),
    ({"additional_args": "--skip=1.1.1,1.1.2 --nototals"}, [B, "--json", "--skip=1.1.1,1.1.2", "--nototals"]),
    ({"additional_args": "-c 1.2.1 --unscored=false"}, [B, "--json", "--check=1.2.1", "--unscored=false"]),
    ({"additional_args": "  "}, [B, "--json"]),
    ({"timeout_seconds": 30, "targets": ["policies"]}, [B, "run", "--targets", "policies", "--json"]),
]


@pytest.mark.parametrize(("fields", "expected"), ARGV_CASES)
def test_argv(fields: dict[str, Any], expected: list[str]) -> None:
    assert build_argv(KubeBenchRequest.model_validate(fields), B) == expected


@pytest.mark.parametrize(("fields", "expected"), ARGV_CASES)
def test_argv_reads_only_what_to_check(fields: dict[str, Any], expected: list[str]) -> None:
    """kube-bench's flags come from KubeBenchRun alone: the same argv with any placement, so the Job
    executor and this host run the same check, and no Job setting can leak into an argv."""
    assert build_argv(KubeBenchRun.model_validate(fields), B) == expected
    placed = {**fields, "executor": "job", "all_nodes": True, "namespace": "cis", "image": "reg/kb:1",
              "max_parallel_jobs": 3, "keep_jobs": True, "kube_context": "prod"}
    assert build_argv(KubeBenchRequest.model_validate(placed), B) == expected
    assert not set(JobPlacement.model_fields) & set(KubeBenchRun.model_fields)
    assert list(KubeBenchRequest.model_fields) == [*KubeBenchRun.model_fields, *JobPlacement.model_fields]


def test_argv_config_dir(cfg_dir: Path) -> None:
    req = KubeBenchRequest.model_validate({"config_dir": str(cfg_dir)}, context=NO_ROOTS)
    assert build_argv(req, B) == [B, "--json", "--config-dir", str(cfg_dir.resolve())]


def test_relative_config_dir_becomes_absolute(cfg_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(cfg_dir.parent)
    assert KubeBenchRequest.model_validate({"config_dir": "cfg"}, context=NO_ROOTS).config_dir == str(cfg_dir.resolve())


def test_requested_exit_code() -> None:
    assert requested_exit_code(KubeBenchRequest()) is None
    assert requested_exit_code(KubeBenchRequest(additional_args="--exit-code=4")) == 4


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"version": "1.28", "benchmark": "cis-1.10"}, "benchmark", "not both"),
        ({"check": ["1.1.1"], "group": ["1.2"]}, "group", "not both"),
        ({"check": ["1.1.1"], "additional_args": "--group 1.2"}, "additional_args", "--group"),
        ({"targets": ["worker"]}, "targets[0]", ""),
        ({"version": "latest"}, "version", "Kubernetes version"),
        ({"benchmark": "CIS 1.10"}, "benchmark", "benchmark name"),
        ({"additional_args": "--outputfile /tmp/x"}, "additional_args", "--outputfile"),
        ({"additional_args": "--pgsql"}, "additional_args", "--pgsql"),
        ({"additional_args": "--asff"}, "additional_args", "--asff"),
        ({"additional_args": "--config=/etc/x"}, "additional_args", "--config"),
        ({"additional_args": "--targets master"}, "additional_args", "--targets"),
        ({"additional_args": "--exit-code abc"}, "additional_args", "exit code"),
        ({"additional_args": "--scored false"}, "additional_args", "false"),
        ({"additional_args": "hello"}, "additional_args", "hello"),
        ({"additional_args": "--check 'a b'"}, "additional_args", "check/group ID"),
        ({"additional_args": "--skip \"1.1"}, "additional_args", "split"),
        ({"timeout_seconds": 0}, "timeout_seconds", ""),
        ({"nonsense": 1}, "nonsense", ""),
    ],
)
def test_invalid_requests(fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        KubeBenchRequest.model_validate(fields, context=NO_ROOTS)
    err = describe_validation_error(info.value)
    assert err.field == field
    assert words in err.reason


# --------------------------------------------------------------------------- hostile inputs

HOSTILE_VALUES = [
    "; touch x",
    "$(id)",
    "`id`",
    "a\nb",
    "a\x00b",
    "--outputfile=/etc/x",
    "-o/etc/x",
    "../../etc",
    "x" * 10_000,
    "1\u2024" "2",  # ONE DOT LEADER lookalike of "."
    "cis\u20111.10",  # non-breaking hyphen
    "ｍaster",  # fullwidth m
]
HOSTILE_FIELDS = ["targets", "version", "benchmark", "check", "skip", "group", "additional_args", "config_dir"]


def _hostile_cases() -> list[tuple[str, str]]:
    cases = []
    for field in HOSTILE_FIELDS:
        for value in HOSTILE_VALUES:
            if field == "config_dir" and value == "../../etc":
                continue  # a real directory: covered by the allowed-roots test below
            cases.append((field, value))
    return cases


@pytest.mark.parametrize(("field", "value"), _hostile_cases())
def test_hostile_inputs_rejected(field: str, value: str, fake_bin: FakeBin) -> None:
    data: dict[str, Any] = {field: [value] if field in ("targets", "check", "skip", "group") else value}
    with pytest.raises(ValidationError) as info:
        KubeBenchRequest.model_validate(data, context=NO_ROOTS)
    err = describe_validation_error(info.value)
    assert err.field.split("[")[0] == field
    assert "\n" not in str(err) and "\x00" not in str(err)
    assert len(str(err)) < 600  # the 10 kB value is never echoed whole
    assert fake_bin.starts() == []


def test_config_dir_outside_allowed_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_kscan.settings as settings_mod

    root = tmp_path / "root"
    (root / "cfg").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(root))
    settings_mod.configure(None)
    roots = {ALLOWED_ROOTS_KEY: [str(r) for r in settings_mod.get_settings().allowed_roots]}
    try:
        assert KubeBenchRequest.model_validate({"config_dir": str(root / "cfg")}, context=roots).config_dir
        for bad in (str(root / "link"), str(root / ".." / "outside"), "/etc"):
            with pytest.raises(ValidationError) as info:
                KubeBenchRequest.model_validate({"config_dir": bad}, context=roots)
            err = describe_validation_error(info.value)
            assert err.field == "config_dir" and "allowed roots" in err.reason
            assert str(outside) not in str(err) or str(outside) in bad  # never the resolved target
    finally:
        settings_mod.configure(None)


# --------------------------------------------------------------------------- argv vs the fake CLI


@pytest.mark.parametrize(("fields", "expected"), ARGV_CASES)
def test_fake_kube_bench_accepts_our_argv(fields: dict[str, Any], expected: list[str], fake_bin: FakeBin) -> None:
    argv = build_argv(KubeBenchRequest.model_validate(fields), str(fake_bin.kube_bench))
    res = subprocess.run(argv, capture_output=True, timeout=30)
    assert res.returncode in (0, requested_exit_code(KubeBenchRequest.model_validate(fields))), res.stderr
    parse_output(res.stdout)


def test_hexstrike_style_root_targets_is_rejected_by_the_fake(fake_bin: FakeBin) -> None:
    res = subprocess.run([str(fake_bin.kube_bench), "--targets", "master", "--json"], capture_output=True)
    assert res.returncode == 255


# --------------------------------------------------------------------------- parsing


def test_parse_defectdojo_controls_totals() -> None:
    data = shared_fixture("kube-bench", "defectdojo", "kube-bench-controls.json").read_bytes()
    report = parse_output(data)
    t = report.totals
    assert (t.pass_, t.fail, t.warn, t.info) == (37, 36, 49, 0)
    counted = {s: sum(1 for c in report.checks if c.status == s) for s in ("PASS", "FAIL", "WARN", "INFO")}
    assert counted == {"PASS": 37, "FAIL": 36, "WARN": 49, "INFO": 0}
    doc = json.loads(data)
    for ctrl, raw in zip(report.controls, doc["Controls"], strict=True):
        assert (ctrl.totals.pass_, ctrl.totals.fail, ctrl.totals.warn) == (
            raw["total_pass"], raw["total_fail"], raw["total_warn"])
        assert ctrl.node_type == raw["node_type"]
    assert report.benchmark == "1.6"
    assert all(len(c.actual_value or "") <= MAX_TEXT_CHARS for c in report.checks)
    assert report.warnings == []  # a real master: some audits failed, most ran
    summary = summarize_kube_bench(report)
    assert summary.failed_checks_total == 36 + 49
    statuses = [c.status for c in summary.failed_checks]
    assert statuses == sorted(statuses, key=lambda s: s != "FAIL")


@pytest.mark.parametrize("name", ["many", "one", "zero"])
def test_parse_defectdojo_bare_arrays(name: str) -> None:
    data = shared_fixture("kube-bench", "defectdojo", f"kube-bench-report-{name}-vuln.json").read_bytes()
    doc = json.loads(data)
    assert isinstance(doc, list)
    report = parse_output(data)
    statuses = [r["status"] for c in doc for g in c["tests"] for r in g["results"]]
    assert report.totals.fail == statuses.count("FAIL")
    assert report.totals.pass_ == statuses.count("PASS")
    assert len(report.checks) == len(statuses)
    assert {"many": 4, "one": 1, "zero": 0}[name] == report.totals.fail


@pytest.mark.parametrize("name", ["result.json", "result_no_totals.json", "passedControlsCollection.json"])
def test_parse_upstream_shapes(name: str) -> None:
    report = parse_output(shared_fixture("kube-bench", "upstream", name).read_bytes())
    assert report.controls and report.checks
    assert {c.status for c in report.checks} <= {"PASS", "FAIL", "WARN", "INFO"}
    assert all(g.check_ids for c in report.controls for g in c.groups)


def test_text_output_is_a_clear_error() -> None:
    data = shared_fixture("kube-bench", "upstream", "Expected_output.data").read_bytes()
    with pytest.raises(ScanOutputError) as info:
        parse_output(data)
    assert "not JSON" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "data", [b"", b"   \n", b"{}", b'{"Controls": 3}', b"[1, 2]", b"null", b"\xff\xfe", b'{"Controls": [']
)
def test_garbage_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(ScanOutputError):
        parse_output(data)


def _ctrl(cid: str, checks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": cid, "version": "cis-1.10", "text": "T", "node_type": "node",
            "tests": [{"section": cid + ".1", "desc": "G", "results": checks}], **extra}


def _chk(num: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"test_number": num, "test_desc": "d", "status": status, "scored": True, **extra}


def test_computed_totals_and_cut_values() -> None:
    doc = [_ctrl("4", [_chk("4.1", "PASS"), _chk("4.2", "FAIL", actual_value="y" * 5000), _chk("4.3", "weird")],
                 detected_version="1.28")]
    report = parse_output(json.dumps(doc))
    assert (report.totals.pass_, report.totals.fail, report.totals.warn) == (1, 1, 1)
    assert report.detected_version == "1.28" and report.benchmark == "cis-1.10"
    assert len(report.checks[1].actual_value or "") == MAX_TEXT_CHARS
    assert report.controls[0].groups[0].counts.fail == 1


def test_concatenated_objects_of_old_releases() -> None:
    text = json.dumps(_ctrl("1", [_chk("1.1", "PASS")])) + "\n" + json.dumps(_ctrl("4", [_chk("4.1", "FAIL")]))
    report = parse_output(text)
    assert [c.id for c in report.controls] == ["1", "4"]


def test_no_components_warning() -> None:
    failing = [
        _chk(f"4.2.{i}", "FAIL", audit="/bin/ps -fC $kubeletbin",
             reason='failed to run: "/bin/ps -fC $kubeletbin", output: "", error: exit status 1')
        for i in range(6)
    ] + [_chk("4.3", "WARN", audit="")]
    report = parse_output(json.dumps({"Controls": [_ctrl("4", failing)], "Totals": {}}))
    assert NO_COMPONENTS_WARNING in report.warnings
    assert NO_COMPONENTS_WARNING in summarize_kube_bench(report).warnings
    healthy = [_chk(f"4.2.{i}", "PASS", audit="/bin/ps -fC kubelet") for i in range(6)]
    assert parse_output(json.dumps([_ctrl("4", healthy)])).warnings == []


def test_host_process_check(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("systemd\n")
    assert host_runs_kubernetes(tmp_path) is False
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "comm").write_text("kubelet\n")
    assert host_runs_kubernetes(tmp_path) is True
    assert host_runs_kubernetes(tmp_path / "missing") is None
