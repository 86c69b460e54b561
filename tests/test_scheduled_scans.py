"""scheduled_scans.py: MCP_KSCAN_SCHEDULE's entries, good and bad, checked when the settings are read
(the server then refuses to start with one line naming the entry)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mcp_kscan.cli import main
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.scheduled_scans import parse_schedule
from mcp_kscan.settings import Settings


def test_good_entries() -> None:
    scans = parse_schedule(
        "0 */6 * * * framework=nsa; @daily kube-bench\n"
        "# nightly, every framework, skipping the system namespaces\n"
        "30 1 * * mon-fri   framework=all   exclude-namespaces=kube-system,kube-public  timeout=3600\n"
        "@weekly kube-bench targets=master,node benchmark=cis-1.10 executor=job node-selector=role=cp;"
    )
    assert [s.entry.key for s in scans] == [
        "0 */6 * * * framework=nsa",
        "0 0 * * * kube-bench",
        "30 1 * * mon-fri framework=all exclude-namespaces=kube-system,kube-public timeout=3600",
        "0 0 * * 0 kube-bench benchmark=cis-1.10 executor=job node-selector=role=cp targets=master,node",
    ]
    nsa, daily, nightly, weekly = (s.request for s in scans)
    assert isinstance(nsa, KubescapeRequest) and nsa.target_type == "framework" and nsa.target_names == ["NSA"]
    assert not nsa.paths  # a cluster scan
    assert isinstance(daily, KubeBenchRequest) and daily.executor == "auto"
    assert isinstance(nightly, KubescapeRequest) and nightly.target_names == []  # all frameworks
    assert nightly.exclude_namespaces == ["kube-system", "kube-public"] and nightly.timeout_seconds == 3600
    assert isinstance(weekly, KubeBenchRequest)
    assert weekly.targets == ["master", "node"] and weekly.benchmark == "cis-1.10" and weekly.node_selector == "role=cp"
    assert parse_schedule(None) == parse_schedule("  ;\n ") == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("@daly kube-bench", "entry 1 ('@daly kube-bench'): unknown macro '@daly'; use one of @yearly"),
        ("0 0 * * framework=nsa", "entry 1 ('0 0 * * framework=nsa'): write a cron expression (five fields"),
        ("* * * * * * framework=nsa", "'*' looks like a sixth cron field: cron takes five (no seconds)"),
        ("@daily", "entry 1 ('@daily'): write a cron expression"),
        ("@daily nmap", "'nmap' is not a scan; use framework=NAMES (framework=nsa,mitre or framework=all) or kube-bench"),
        ("@daily framework=", "framework= names no framework"),
        ("@daily framework=nsa,bogus", "unknown framework 'bogus'; use all or one of"),
        ("@daily framework=nsa paths=/etc", "unknown option 'paths' for framework; use include-namespaces"),
        ("@daily kube-bench config-dir=/tmp", "unknown option 'config-dir' for kube-bench; use targets"),
        ("@daily kube-bench targets", "'targets' is not an option; write key=value"),
        ("@daily kube-bench targets=node targets=master", "option 'targets' is given twice"),
        ("@daily kube-bench benchmark=", "option 'benchmark' has no value"),
        ("@daily kube-bench benchmark=cis$(rm)", "entry 1 ('@daily kube-bench benchmark=cis$(rm)'): benchmark: "),
        ("@daily kube-bench targets=moon", "targets: Input should be 'master', 'node', 'controlplane'"),
        ("@daily framework=nsa exclude-namespaces=Bad_NS", "exclude-namespaces: not a Kubernetes namespace name"),
        ("@daily framework=nsa engine=fast", "engine: Input should be 'auto', 'kubescape' or 'builtin'"),
        ("@daily framework=nsa timeout=soon", "): timeout: Input should be a valid number"),
        ("@daily framework=nsa timeout=-5", "): timeout: Input should be greater than 0"),
        ("0 0 * * * kube-bench; 70 * * * * framework=nsa", "entry 2 ('70 * * * * framework=nsa'): minute: 70 is outside 0-59"),
        ("@daily kube-bench; 0  0 * * *   kube-bench", "entry 2 ('0  0 * * *   kube-bench'): repeats entry 1"),
    ],
)
def test_bad_entries_are_one_line_naming_the_entry(value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_env({"MCP_KSCAN_SCHEDULE": value})
    text = str(caught.value)
    assert text.startswith("MCP_KSCAN_SCHEDULE entry ")
    assert message in text
    assert "\n" not in text


def test_the_server_refuses_to_start_with_a_bad_schedule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MCP_KSCAN_SCHEDULE", "0 */6 * * * framework=nsa; @daily kube-bench colour=blue")
    assert main(["serve", "--transport", "http"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "mcp-kscan: bad setting: MCP_KSCAN_SCHEDULE entry 2 ('@daily kube-bench colour=blue'): unknown option"
        " 'colour' for kube-bench; use targets, benchmark, version, executor, kube-context, node-selector,"
        " namespace, timeout"
    )


def test_a_stdio_server_says_it_ignores_the_schedule(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "MCP_KSCAN_SCHEDULE": "@daily framework=nsa", "MCP_KSCAN_DATA_DIR": str(tmp_path)}
    env.pop("MCP_KSCAN_TOKEN", None)
    done = subprocess.run([sys.executable, "-m", "mcp_kscan", "serve"], stdin=subprocess.DEVNULL, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MCP_KSCAN_SCHEDULE is ignored over stdio; run `mcp-kscan serve --transport http` to schedule scans" in done.stderr
