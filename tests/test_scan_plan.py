"""The one planner (``mcp_kscan.scan_plan``): engine choice, timeout, the built-in engine's spec."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY
from mcp_kscan.engine.task import BuiltinScanTask
from mcp_kscan.errors import BinaryNotFound, InvalidRequest
from mcp_kscan.scan_plan import builtin_plan, choose_engine, kubescape_task
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.scanners.tasks import KubescapeTask
from mcp_kscan.service import ScanService
from mcp_kscan.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "PATH": str(tmp_path / "empty"), **env})


@pytest.fixture
def with_binary(tmp_path: Path) -> Settings:
    fake = tmp_path / "kubescape"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    return _settings(tmp_path, MCP_KSCAN_KUBESCAPE_PATH=str(fake))


@pytest.fixture
def without_binary(tmp_path: Path) -> Settings:
    return _settings(tmp_path, MCP_KSCAN_KUBESCAPE_PATH=str(tmp_path / "no-such-kubescape"))


def test_auto_is_the_binary_when_found(with_binary: Settings) -> None:
    assert choose_engine("auto", with_binary) == "kubescape"
    assert choose_engine("builtin", with_binary) == "builtin"
    assert choose_engine("kubescape", with_binary) == "kubescape"
    assert choose_engine("auto", with_binary, stdin=True) == "builtin"  # only the engine reads stdin
    with pytest.raises(InvalidRequest, match="stdin"):
        choose_engine("kubescape", with_binary, stdin=True)


def test_auto_is_builtin_without_the_binary(without_binary: Settings) -> None:
    assert choose_engine("auto", without_binary) == "builtin"
    with pytest.raises(BinaryNotFound, match="MCP_KSCAN_KUBESCAPE_PATH"):
        choose_engine("kubescape", without_binary)
    with pytest.raises(InvalidRequest, match="engine"):
        choose_engine("fast", without_binary)


@pytest.mark.parametrize("binary", [True, False])
def test_every_front_end_gets_the_planners_answer(binary: bool, with_binary: Settings, without_binary: Settings) -> None:
    """The service (MCP and REST) builds the task the planner chose; the CLI calls choose_engine
    itself (tests/engine/test_cli.py) and has no rule of its own."""
    settings = with_binary if binary else without_binary
    req = KubescapeRequest.model_validate({"paths": [str(EXAMPLES)]}, context={ALLOWED_ROOTS_KEY: []})
    expected = KubescapeTask if choose_engine("auto", settings) == "kubescape" else BuiltinScanTask
    assert isinstance(kubescape_task(req, settings), expected)
    assert isinstance(ScanService(None, settings).kubescape_task(req), expected)  # type: ignore[arg-type]  # nothing queued


def test_timeout_is_the_requests_else_the_default(tmp_path: Path) -> None:
    settings = _settings(tmp_path, MCP_KSCAN_DEFAULT_TIMEOUT="42")
    assert builtin_plan(settings, paths=[str(EXAMPLES)]).timeout_s == 42
    assert builtin_plan(settings, paths=[str(EXAMPLES)], timeout_seconds=7).timeout_s == 7
    req = KubescapeRequest.model_validate({"paths": [str(EXAMPLES)], "engine": "builtin", "timeout_seconds": 9},
                                          context={ALLOWED_ROOTS_KEY: []})
    assert kubescape_task(req, settings).timeout_s == 9


def test_a_server_scan_is_confined_and_a_terminal_one_is_not(tmp_path: Path) -> None:
    """The server reads inside the allowed roots with a report cap; the CLI's user reads their own files."""
    settings = _settings(tmp_path, MCP_KSCAN_ALLOWED_ROOTS=str(EXAMPLES), MCP_KSCAN_ENGINE_REPORT_CAP_BYTES="5000000")
    server = builtin_plan(settings, paths=[str(EXAMPLES)]).spec
    cli = builtin_plan(settings, paths=[str(EXAMPLES)], confined=False).spec
    assert server.allowed_roots == [str(EXAMPLES)] and server.report_cap_bytes == 5_000_000
    assert cli.allowed_roots == [] and cli.report_cap_bytes is None


def test_where_a_queued_scan_may_run_and_how_another_server_rebuilds_it(
    tmp_path: Path, with_binary: Settings, without_binary: Settings
) -> None:
    """Manifests bind a scan to the host that read them, an access key to the admitting process;
    anything else runs anywhere. The plan carries the engine chosen at admission, the roots that
    resolved the request's relative paths and the server's own defaults; rebuilt elsewhere it is
    planned again under that server's settings, which may refuse it."""
    from mcp_kscan.client_roots import PATH_BASES_KEY
    from mcp_kscan.scan_plan import task_from_plan
    from mcp_kscan.service import validate_request

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    with_kube = with_binary.replace(kubeconfig=str(kubeconfig))
    project = EXAMPLES.parent

    files = validate_request(KubescapeRequest, {"paths": ["examples"]}, with_kube, {PATH_BASES_KEY: [str(project)]})
    task = kubescape_task(files, with_kube)
    assert task.placement.runs_on == "host" and "paths" in task.placement.why
    plan = task.placement.plan
    assert plan is not None and plan["bases"] == [str(project)] and plan["request"]["engine"] == "kubescape"
    assert plan["request"]["paths"] == [str(EXAMPLES)]

    cluster = kubescape_task(validate_request(KubescapeRequest, {"target_names": ["nsa"]}, with_kube), with_kube)
    assert cluster.placement.runs_on == "anywhere"
    rebuilt = task_from_plan(cluster.placement.plan or {}, with_kube)
    assert isinstance(rebuilt, KubescapeTask) and rebuilt.request == {**cluster.request, "engine": "kubescape"}

    keyed = validate_request(KubescapeRequest, {"target_names": ["nsa"], "submit": True, "account": "acme",
                                                 "access_key": "1e3a88bf-92ce-44f8-914e-cbe71830d566"}, with_kube)
    placement = kubescape_task(keyed, with_kube).placement
    assert placement.runs_on == "process" and placement.plan is None and "access key" in placement.why

    # Another server without the binary refuses the plan (the engine was chosen at admission).
    with pytest.raises(BinaryNotFound):
        task_from_plan(cluster.placement.plan or {}, without_binary.replace(kubeconfig=str(kubeconfig)))
    builtin = kubescape_task(validate_request(KubescapeRequest, {"target_names": ["nsa"]}, without_binary.replace(
        kubeconfig=str(kubeconfig))), without_binary.replace(kubeconfig=str(kubeconfig)))
    assert isinstance(task_from_plan(builtin.placement.plan or {}, with_kube), BuiltinScanTask)

    # A result answered once and deleted (REST wait=true without keep) skips the findings' index
    # on whichever server runs it: the plan says so, and the rebuilt task works out the summary only.
    unkept = kubescape_task(files.model_copy(update={"engine": "builtin"}), with_kube, index_findings=False)
    assert isinstance(unkept, BuiltinScanTask) and unkept.base_spec.findings is False
    rebuilt_unkept = task_from_plan(unkept.placement.plan or {}, with_kube)
    assert isinstance(rebuilt_unkept, BuiltinScanTask) and rebuilt_unkept.base_spec.findings is False
    assert rebuilt_unkept.request.get("index_findings") is False
    kept = task_from_plan(kubescape_task(files.model_copy(update={"engine": "builtin"}), with_kube).placement.plan or {},
                          with_kube)
    assert isinstance(kept, BuiltinScanTask) and kept.base_spec.findings is True


def test_kube_bench_here_is_bound_to_the_host_and_jobs_run_anywhere(tmp_path: Path) -> None:
    from mcp_kscan.scan_plan import kube_bench_task, task_from_plan
    from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
    from mcp_kscan.service import validate_request

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    settings = _settings(tmp_path, KUBECONFIG=str(kubeconfig))
    local = kube_bench_task(validate_request(KubeBenchRequest, {"executor": "local"}, settings), settings)
    assert local.placement.runs_on == "host" and "executor=local" in local.placement.why
    jobs = kube_bench_task(validate_request(KubeBenchRequest, {"executor": "auto"}, settings), settings)
    assert jobs.engine == "kube-bench-job" and jobs.placement.runs_on == "anywhere"
    assert (jobs.placement.plan or {})["request"]["executor"] == "job"  # auto decided once, at admission
    assert task_from_plan(jobs.placement.plan or {}, settings).engine == "kube-bench-job"
    with pytest.raises(InvalidRequest, match="scanner"):
        task_from_plan({"scanner": "trivy", "request": {}}, settings)
