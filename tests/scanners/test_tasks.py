"""KubeBenchTask / KubescapeTask against the fake scanners, through the real process runner."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from servers import wait_gone
from conftest import FakeBin, shared_fixture
from pydantic import ValidationError

import mcp_kscan.settings as settings_mod
from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY
from mcp_kscan.reports import KubeBenchReport, KubeBenchSummary, KubescapeReport, KubescapeSummary
from mcp_kscan.runner.records import ScanState
from mcp_kscan.scanners.binaries import find_binary
from mcp_kscan.scanners.tasks import HOST_WARNING, KubeBenchTask, KubescapeTask
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest

from .conftest import CtxRecorder

pytestmark = pytest.mark.anyio

MakeCtx = Callable[..., CtxRecorder]


def kb_job(**fields: Any) -> KubeBenchTask:
    return KubeBenchTask(KubeBenchRequest.model_validate(fields), settings_mod.get_settings(), check_host=False)


def ks_job(**fields: Any) -> KubescapeTask:
    return KubescapeTask(KubescapeRequest.model_validate(fields), settings_mod.get_settings())


# --------------------------------------------------------------------------- binaries


def test_find_binary_from_settings_and_path(kscan_settings: settings_mod.Settings, fake_bin: FakeBin,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_binary("kube-bench", settings_mod.get_settings()) == str(fake_bin.kube_bench)
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH")
    monkeypatch.setenv("PATH", str(fake_bin.bin_dir))
    settings_mod.configure(None)
    assert find_binary("kubescape", settings_mod.get_settings()) == str(fake_bin.kubescape)


@pytest.mark.parametrize("scanner", ["kube-bench", "kubescape"])
def test_missing_binary_message(scanner: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mcp_kscan.errors import BinaryNotFound

    monkeypatch.delenv("MCP_KSCAN_KUBE_BENCH_PATH", raising=False)
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    settings_mod.configure(None)
    try:
        with pytest.raises(BinaryNotFound) as info:
            find_binary(scanner, settings_mod.get_settings())  # type: ignore[arg-type]
        msg = str(info.value)
        env_var = "MCP_KSCAN_KUBE_BENCH_PATH" if scanner == "kube-bench" else "MCP_KSCAN_KUBESCAPE_PATH"
        assert env_var in msg and "mcp-kscan doctor" in msg
        assert ("aquasecurity/kube-bench/releases" if scanner == "kube-bench" else "kubescape/kubescape/releases") in msg
        monkeypatch.setenv(env_var, str(tmp_path / "nope"))
        settings_mod.configure(None)
        with pytest.raises(BinaryNotFound) as info:
            find_binary(scanner, settings_mod.get_settings())  # type: ignore[arg-type]
        assert env_var in str(info.value) and str(tmp_path) not in str(info.value)
    finally:
        settings_mod.configure(None)


# --------------------------------------------------------------------------- kube-bench jobs


async def test_kube_bench_ok_with_fail_checks_succeeds(kscan_settings: Any, fake_bin: FakeBin,
                                                       make_ctx: MakeCtx) -> None:
    rec = make_ctx()
    outcome = await kb_job(targets=["master", "node"], benchmark="cis-1.10").run(rec.ctx)
    assert outcome.status == ScanState.succeeded, outcome.error
    assert outcome.return_code == 0 and outcome.engine == "kube-bench"
    assert isinstance(outcome.report, KubeBenchReport) and isinstance(outcome.summary, KubeBenchSummary)
    assert outcome.report.totals.fail == 3
    assert outcome.summary.failed_checks[0].status == "FAIL"
    assert outcome.raw_output == rec.results[0].stdout and json.loads(outcome.raw_output or b"")["Controls"]
    assert outcome.command == [str(fake_bin.kube_bench), "run", "--targets", "master,node", "--json",
                               "--benchmark", "cis-1.10"]
    assert rec.phases == ["parsing"]
    (start,) = fake_bin.starts("kube-bench")
    assert start["cwd"] == str(rec.ctx.workdir)
    assert "FAKE_SCANNER_RECORD" not in start["env"] and "MCP_KSCAN_KUBE_BENCH_PATH" not in start["env"]


async def test_kube_bench_exit_code_flag_is_a_finished_scan(kscan_settings: Any, make_ctx: MakeCtx) -> None:
    outcome = await kb_job(additional_args="--exit-code 5").run(make_ctx().ctx)
    assert outcome.status == ScanState.succeeded and outcome.return_code == 5


async def test_kube_bench_host_warning(kscan_settings: Any, make_ctx: MakeCtx, tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "comm").write_text("bash\n")
    job = KubeBenchTask(KubeBenchRequest(), settings_mod.get_settings(), proc_root=proc)
    outcome = await job.run(make_ctx().ctx)
    assert isinstance(outcome.report, KubeBenchReport)
    assert HOST_WARNING in outcome.report.warnings
    assert HOST_WARNING in outcome.summary.warnings  # type: ignore[union-attr]


async def test_kube_bench_real_fixture_through_the_fake(kscan_settings: Any, fake_bin: FakeBin,
                                                        make_ctx: MakeCtx) -> None:
    fixture = shared_fixture("kube-bench", "defectdojo", "kube-bench-controls.json")
    fake_bin.configure(kube_bench_output=fixture)
    outcome = await kb_job().run(make_ctx().ctx)
    assert outcome.status == ScanState.succeeded
    assert outcome.raw_output == fixture.read_bytes()  # verbatim
    assert outcome.report.totals.fail == 36  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error", "kube-bench failed (exit 1): unable to determine benchmark version"),
        ("crash", "exit 2"),
        ("garbage", "not JSON"),
        ("empty", "no output"),
    ],
)
async def test_kube_bench_failures(mode: str, words: str, kscan_settings: Any, fake_bin: FakeBin,
                                   make_ctx: MakeCtx) -> None:
    fake_bin.configure(mode=mode)
    outcome = await kb_job().run(make_ctx().ctx)
    assert outcome.status == ScanState.failed
    assert words in (outcome.error or "")
    assert "\n" not in (outcome.error or "") and len(outcome.error or "") < 700
    assert outcome.report is None and outcome.raw_output is None


async def test_kube_bench_flag_error_255(kscan_settings: Any, fake_bin: FakeBin, make_ctx: MakeCtx,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate an adapter bug / old-style argv: --targets on the root command.
    import mcp_kscan.scanners.kube_bench_argv as kb

    monkeypatch.setattr(kb, "build_argv", lambda req, binary: [binary, "--targets", "master", "--json"])
    outcome = await kb_job().run(make_ctx().ctx)
    assert outcome.status == ScanState.failed and outcome.return_code == 255
    assert outcome.error == "kube-bench rejected its command line (exit 255): Error: unknown flag: --targets"


async def test_kube_bench_timeout_keeps_partial_output(kscan_settings: Any, fake_bin: FakeBin,
                                                       make_ctx: MakeCtx) -> None:
    fake_bin.configure(mode="hang_with_child")
    t0 = time.monotonic()
    outcome = await kb_job().run(make_ctx(timeout_s=1.5).ctx)
    assert time.monotonic() - t0 < 15
    assert outcome.status == ScanState.timed_out
    assert outcome.raw_output == b'{"Controls": ['
    grandchild = [r for r in fake_bin.records() if r["event"] == "grandchild"]
    assert grandchild
    assert wait_gone(grandchild[0]["pid"], 5)


async def test_kube_bench_missing_binary_is_a_failed_outcome(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                             make_ctx: MakeCtx) -> None:
    monkeypatch.setenv("MCP_KSCAN_KUBE_BENCH_PATH", str(tmp_path / "missing" / "kube-bench"))
    settings_mod.configure(None)
    try:
        outcome = await kb_job().run(make_ctx().ctx)
    finally:
        settings_mod.configure(None)
    assert outcome.status == ScanState.failed
    assert "MCP_KSCAN_KUBE_BENCH_PATH" in (outcome.error or "") and "Traceback" not in (outcome.error or "")


# --------------------------------------------------------------------------- Kubescape jobs


async def test_kubescape_ok(kscan_settings: Any, fake_bin: FakeBin, make_ctx: MakeCtx) -> None:
    rec = make_ctx()
    outcome = await ks_job(targetType="framework", targetNames=["nsa", "mitre"], format="sarif").run(rec.ctx)
    assert outcome.status == ScanState.succeeded, outcome.error
    assert outcome.engine == "kubescape"
    assert isinstance(outcome.report, KubescapeReport) and isinstance(outcome.summary, KubescapeSummary)
    assert outcome.report.compliance_score == 50.0
    assert [c.control_id for c in outcome.report.failed_controls] == ["C-0016"]
    report_file = rec.ctx.workdir / "report.json"
    assert outcome.raw_output == report_file.read_bytes()
    assert outcome.command == [str(fake_bin.kubescape), "scan", "framework", "nsa,mitre", "--format", "json",
                               "--output", str(report_file)]
    assert rec.phases == ["parsing"]


async def test_kubescape_access_key_reaches_env_only(kscan_settings: Any, fake_bin: FakeBin,
                                                     make_ctx: MakeCtx, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    monkeypatch.setenv("MCP_KSCAN_TOKEN", "server-api-token-xyz")
    settings_mod.configure(None)
    job = ks_job(accessKey=key, account="acc-1", submit=True)
    assert key not in json.dumps(job.request) and job.request["access_key"] == "***"
    assert tuple(job.secrets) == (key,)
    outcome = await job.run(make_ctx().ctx)
    assert outcome.status == ScanState.succeeded, outcome.error
    (start,) = fake_bin.starts("kubescape")
    assert start["env"]["KS_ACCESS_KEY"] == key
    assert key not in json.dumps(start["argv"]) and key not in json.dumps(outcome.command)
    assert "MCP_KSCAN_TOKEN" not in start["env"]
    assert "--submit" in start["argv"] and "acc-1" in start["argv"]


async def test_kubescape_threshold_exit_1_with_report_succeeds(kscan_settings: Any, make_ctx: MakeCtx) -> None:
    outcome = await ks_job(compliance_threshold=90).run(make_ctx().ctx)
    assert outcome.status == ScanState.succeeded and outcome.return_code == 1
    assert any("threshold" in e for e in outcome.report.errors)  # type: ignore[union-attr]


async def test_kubescape_real_report_verbatim(kscan_settings: Any, fake_bin: FakeBin, make_ctx: MakeCtx) -> None:
    fixture = shared_fixture("kubescape", "defectdojo", "many_findings.json")
    fake_bin.configure(kubescape_report=fixture)
    outcome = await ks_job().run(make_ctx().ctx)
    assert outcome.status == ScanState.succeeded
    assert outcome.raw_output == fixture.read_bytes()
    assert len(outcome.report.findings) == 710  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("error", "Kubescape failed (exit 1): [error] failed to initialize kubernetes client"),
        ("crash", "Kubescape failed (exit 2)"),
        ("garbage", "not valid JSON"),
        ("empty", "wrote no report"),
    ],
)
async def test_kubescape_failures(mode: str, words: str, kscan_settings: Any, fake_bin: FakeBin,
                                  make_ctx: MakeCtx) -> None:
    fake_bin.configure(mode=mode)
    outcome = await ks_job().run(make_ctx().ctx)
    assert outcome.status == ScanState.failed
    assert words in (outcome.error or ""), outcome.error
    assert "\n" not in (outcome.error or "")
    assert outcome.report is None


async def test_kubescape_timeout_keeps_partial_report(kscan_settings: Any, fake_bin: FakeBin,
                                                      make_ctx: MakeCtx) -> None:
    fake_bin.configure(mode="hang")
    outcome = await ks_job().run(make_ctx(timeout_s=1.0).ctx)
    assert outcome.status == ScanState.timed_out
    assert outcome.raw_output == b'{"summaryDetails": {'


async def test_kubescape_missing_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_ctx: MakeCtx) -> None:
    monkeypatch.delenv("MCP_KSCAN_KUBESCAPE_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    settings_mod.configure(None)
    try:
        outcome = await ks_job().run(make_ctx().ctx)
    finally:
        settings_mod.configure(None)
    assert outcome.status == ScanState.failed and "kubescape/kubescape/releases" in (outcome.error or "")


# --------------------------------------------------------------------------- hostile input, front-end path


@pytest.mark.parametrize(
    ("model", "job", "data"),
    [
        (KubeBenchRequest, KubeBenchTask, {"targets": ["master; touch x"]}),
        (KubeBenchRequest, KubeBenchTask, {"additional_args": "--outputfile=/etc/x"}),
        (KubeBenchRequest, KubeBenchTask, {"benchmark": "$(id)"}),
        (KubeBenchRequest, KubeBenchTask, {"config_dir": "-o/etc/x"}),
        (KubescapeRequest, KubescapeTask, {"targetNames": ["`id`"]}),
        (KubescapeRequest, KubescapeTask, {"paths": ["../../etc/shadow\n"]}),
        (KubescapeRequest, KubescapeTask, {"kube_context": "--kubeconfig=/etc/x"}),
    ],
)
async def test_no_process_starts_for_hostile_input(model: Any, job: Any, data: dict[str, Any],
                                                   kscan_settings: Any, fake_bin: FakeBin,
                                                   make_ctx: MakeCtx) -> None:
    async def submit() -> None:
        req = model.model_validate(data, context={ALLOWED_ROOTS_KEY: []})
        await job(req).run(make_ctx().ctx)

    with pytest.raises(ValidationError):
        await submit()
    assert fake_bin.records() == []


# --------------------------------------------------------------------------- output caps


async def test_kube_bench_huge_output_over_the_cap(kscan_settings: Any, fake_bin: FakeBin,
                                                   make_ctx: MakeCtx) -> None:
    fake_bin.configure(mode="huge", huge_mb=3)
    rec = make_ctx()
    rec.extra_kwargs["stdout_cap"] = 1024 * 1024
    outcome = await kb_job().run(rec.ctx)
    assert outcome.status == ScanState.failed and "exceeds the output cap" in (outcome.error or "")
    assert rec.results[0].stdout_bytes > 3 * 1024 * 1024 - 100_000


async def test_kube_bench_huge_output_within_the_cap(kscan_settings: Any, fake_bin: FakeBin,
                                                     make_ctx: MakeCtx) -> None:
    fake_bin.configure(mode="huge", huge_mb=2)
    outcome = await kb_job().run(make_ctx().ctx)
    assert outcome.status == ScanState.succeeded
    assert outcome.report and all(len(c.actual_value or "") <= 500 for c in outcome.report.checks)


async def test_kubescape_huge_report_over_the_cap(fake_bin: FakeBin, make_ctx: MakeCtx,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in fake_bin.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MCP_KSCAN_OUTPUT_CAP_BYTES", str(1024 * 1024))
    settings_mod.configure(None)
    fake_bin.configure(mode="huge", huge_mb=2)
    try:
        outcome = await ks_job().run(make_ctx().ctx)
    finally:
        settings_mod.configure(None)
    assert outcome.status == ScanState.failed and "exceeds the output cap" in (outcome.error or "")
