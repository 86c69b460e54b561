"""The fake scanners follow the real CLIs' rules: if they accept an argv, so should the real tool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import FakeBin


def run(argv: list[str | Path], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30, **kw)  # type: ignore[call-overload]


def test_kube_bench_root_rejects_targets_with_255(fake_bin: FakeBin) -> None:
    res = run([fake_bin.kube_bench, "--targets", "master", "--json"])
    assert res.returncode == 255
    assert "Error: unknown flag: --targets" in res.stderr
    assert "unknown flag: --targets" in res.stdout
    res = run([fake_bin.kube_bench, "-s", "master"])
    assert res.returncode == 255


def test_kube_bench_run_targets_json(fake_bin: FakeBin) -> None:
    res = run([fake_bin.kube_bench, "run", "--targets", "master,node", "--json"])
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert {c["node_type"] for c in doc["Controls"]} == {"master", "node"}
    assert doc["Totals"]["total_fail"] == 3


def test_kube_bench_rules(fake_bin: FakeBin, tmp_path: Path) -> None:
    assert run([fake_bin.kube_bench, "--version", "1.28", "--benchmark", "cis-1.10"]).returncode == 1
    assert run([fake_bin.kube_bench, "--check", "1.1.1", "--group", "1.2"]).returncode == 1
    assert run([fake_bin.kube_bench, "--pgsql-bogus"]).returncode == 255
    assert run([fake_bin.kube_bench, "master"]).returncode == 255  # subcommand removed in v0.6.7
    assert run([fake_bin.kube_bench, "--json", "--exit-code", "7"]).returncode == 7
    bare = json.loads(run([fake_bin.kube_bench, "--json", "--nototals"]).stdout)
    assert isinstance(bare, list)
    out = tmp_path / "out.json"
    res = run([fake_bin.kube_bench, "--json", "--outputfile", out])
    assert res.returncode == 0 and res.stdout == "" and json.loads(out.read_text())["Controls"]
    text = run([fake_bin.kube_bench, "run", "--targets", "node"])
    assert text.stdout.startswith("[INFO] 4 ")


def test_kubescape_rules(fake_bin: FakeBin, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    res = run([fake_bin.kubescape, "scan", "framework", "nsa,mitre", "--format", "json", "--output", out])
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
    doc = json.loads(out.read_text())
    assert [f["name"] for f in doc["summaryDetails"]["frameworks"]] == ["NSA", "MITRE"]
    bad = run([fake_bin.kubescape, "scan", "--bogus"])
    assert bad.returncode == 1 and "Error: unknown flag: --bogus" in bad.stderr
    gate = run([fake_bin.kubescape, "scan", "control", "C-0016", "--format", "json", "-o", out,
                "--compliance-threshold", "90"])
    assert gate.returncode == 1 and json.loads(out.read_text())["summaryDetails"]
    stdout = run([fake_bin.kubescape, "scan", "--format", "json"])
    assert json.loads(stdout.stdout)["results"]


def test_records_and_configure(fake_bin: FakeBin) -> None:
    fake_bin.configure(mode="garbage")
    res = run([fake_bin.kube_bench, "--json"], env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and res.stdout.startswith("this is not json")
    (start,) = fake_bin.starts("kube-bench")
    assert start["argv"][1:] == ["--json"]
    # The knobs came from fake-scanner.json beside the fake, not from the (minimal) environment.
    assert "FAKE_SCANNER_RECORD" not in start["env"] and "FAKE_SCANNER_MODE" not in start["env"]
