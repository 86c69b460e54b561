"""No parameter without an effect (issue 14): every published tool parameter is accounted for, and
every kubescape_scan parameter changes what each engine does, or is refused with a one-line error.

The table below is the contract a reviewer reads in one screen; the tests hold the published
schemas and the planner's real behaviour to it.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import mcp_kscan.settings
from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY
from mcp_kscan.engine.task import BuiltinScanTask
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.reports import ControlCounts, FailedControl, KubescapeSummary, ResourceCounts
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.scanners import kubescape_argv
from mcp_kscan.scanners.kubescape_request import BINARY_ONLY_FIELDS, KubescapeRequest
from mcp_kscan.scanners.tasks import KubescapeTask
from mcp_kscan.server import build_server
from mcp_kscan.service import ScanService, evaluate_gate

pytestmark = pytest.mark.anyio

BOTH, BINARY = "both engines", "the Kubescape binary only (refused on the built-in engine)"

KUBESCAPE_SCAN: dict[str, str] = {
    "paths": f"{BOTH}: the files scanned instead of the cluster",
    "target_type": f"{BOTH}: whether target_names are frameworks or controls",
    "target_names": f"{BOTH}: the frameworks or controls evaluated",
    "include_namespaces": f"{BOTH}: cluster scans list only these namespaces",
    "exclude_namespaces": f"{BOTH}: cluster scans skip these namespaces",
    "kube_context": f"{BOTH}: which cluster a cluster scan reads",
    "workload": f"{BOTH}: one cluster object instead of the whole cluster",
    "controls_config": f"{BOTH}: control inputs (Kubescape's --controls-config)",
    "exceptions": f"{BOTH}: accepted risk (Kubescape's --exceptions)",
    "compliance_threshold": f"{BOTH}: the gate verdict of the finished scan",
    "severity_threshold": f"{BOTH}: the gate verdict of the finished scan",
    "timeout_seconds": f"{BOTH}: the scan's deadline",
    "engine": "which engine runs the scan",
    "wait_seconds": "how long the tool call waits (the scan goes on)",
    **{name: BINARY for name in BINARY_ONLY_FIELDS},
}

OTHER_TOOLS: dict[str, set[str]] = {
    # Checked by their own modules' tests; listed here so that a new parameter must be accounted for.
    "kube_bench": {"additional_args", "all_nodes", "benchmark", "check", "config_dir", "executor", "group", "image",
                   "keep_jobs", "kube_context", "max_parallel_jobs", "namespace", "node_selector", "nodes", "scored",
                   "skip", "targets", "timeout_seconds", "unscored", "version", "wait_seconds"},
    "scan_status": {"scan_id", "wait_seconds"},
    "cancel_scan": {"scan_id"},
    "list_contexts": set(),
    # Filters a view cannot use are refused per view (views.check_filters).
    "get_results": {"control_id", "cursor", "kind", "limit", "min_severity", "namespace", "node", "scan_id",
                    "severity", "status", "view"},
    "list_scans": {"limit", "scanner", "status"},
    "delete_results": {"all", "scan_id"},
    "compare_scans": {"base_scan_id", "cursor", "head_scan_id", "limit", "view"},
    "list_vulnerabilities": {"cursor", "cve", "fixable", "image", "limit", "min_severity", "namespace", "workload"},
    "find_cve": {"cursor", "cve_id", "limit"},
    "get_workload_posture": {"workload"},
    "propose_fix": {"control_id", "cursor", "finding_ids", "limit", "scan_id"},
    "apply_fix": {"finding_ids", "scan_id"},
    "list_controls": {"framework", "limit", "offset", "query", "severity"},
}


async def test_every_published_parameter_is_in_the_table(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        tools = {t.name: set(t.input_schema.get("properties", {})) for t in (await client.list_tools()).tools}
    assert tools.pop("kubescape_scan") == set(KUBESCAPE_SCAN)
    assert tools == OTHER_TOOLS


# ---------------------------------------------------------------- what each engine does with each field

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: a
clusters:
- {name: c, cluster: {server: "https://127.0.0.1:6443"}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: a, context: {cluster: c, user: u}}
- {name: b, context: {cluster: c, user: u}}
"""


@pytest.fixture
def planner(tmp_path: Path, kscan_settings) -> ScanService:  # type: ignore[no-untyped-def]
    """The real planner with a kubeconfig of two contexts (no manager: nothing is queued)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    settings = mcp_kscan.settings.Settings.from_env({**kscan_settings_env(), "KUBECONFIG": str(kubeconfig),
                                                    "MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    return ScanService(None, settings)  # type: ignore[arg-type]


def kscan_settings_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith(("MCP_KSCAN_", "FAKE_"))}


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    config = tmp_path / "controls-config.json"
    config.write_text('{"settings": {"postureControlInputs": {"insecureCapabilities": ["NET_RAW"]}}}')
    exceptions = tmp_path / "exceptions.json"
    exceptions.write_text('[{"name": "e", "policyType": "postureExceptionPolicy", "actions": ["alertOnly"],'
                          ' "resources": [{"designatorType": "Attributes", "attributes": {"kind": "Pod"}}],'
                          ' "posturePolicies": [{"controlID": "C-0057"}]}]')
    return {"folder": str(folder), "config": str(config), "exceptions": str(exceptions)}


# field -> (the request without it, the same request with it); every engine must behave differently.
def _cases(inp: dict[str, str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    files = {"paths": [inp["folder"]]}
    return {
        "paths": ({}, files),
        "target_type": ({"target_names": ["all"]}, {"target_type": "control", "target_names": ["C-0057"]}),
        "target_names": (files, {**files, "target_names": ["nsa"]}),
        "include_namespaces": ({}, {"include_namespaces": ["shop"]}),
        "exclude_namespaces": ({}, {"exclude_namespaces": ["kube-system"]}),
        "kube_context": ({}, {"kube_context": "b"}),
        "workload": ({}, {"workload": "Deployment/shop/web"}),
        "controls_config": (files, {**files, "controls_config": inp["config"]}),
        "exceptions": (files, {**files, "exceptions": inp["exceptions"]}),
        "compliance_threshold": (files, {**files, "compliance_threshold": 80}),
        "severity_threshold": (files, {**files, "severity_threshold": "high"}),
        "timeout_seconds": (files, {**files, "timeout_seconds": 7}),
        "submit": (files, {**files, "submit": True}),
        "account": (files, {**files, "account": "acct-1"}),
        "access_key": (files, {**files, "access_key": "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40"}),
        "keep_local": (files, {**files, "keep_local": True}),
        "use_cached_artifacts": (files, {**files, "use_cached_artifacts": True}),
    }


def _gate(job: Any) -> Any:
    """The gate verdict the finished scan would carry (the same function for both engines)."""
    summary = KubescapeSummary(compliance_score=50.0, frameworks=[], controls=ControlCounts(failed=1),
                               resources=ResourceCounts(failed=1), failed_controls_total=1,
                               failed_controls=[FailedControl(control_id="C-0057", name="Privileged container",
                                                              severity="High", failed_resources=1)])
    record = ScanRecord(scan_id="s", scanner="kubescape", engine=job.engine, status=ScanState.succeeded,
                        created_at="2026-12-01T00:00:00Z", request=dict(job.request), summary=summary)
    gate = evaluate_gate(record)
    return gate.model_dump() if gate else None


def _what_runs(service: ScanService, fields: dict[str, Any], engine: str) -> Any:
    """What the planner would run for this request: everything an engine's behaviour depends on."""
    req = KubescapeRequest.model_validate({**fields, "engine": engine},
                                          context={ALLOWED_ROOTS_KEY: [str(r) for r in service.settings.allowed_roots]})
    job = service.kubescape_task(req)
    if isinstance(job, BuiltinScanTask):
        return asdict(job.spec()), job.timeout_s, _gate(job)
    assert isinstance(job, KubescapeTask)
    argv = kubescape_argv.build_argv(job.req, "kubescape", "report.json", kube_context=job.cluster.context if job.cluster else None)
    env = kubescape_argv.build_env(job.req, job.settings, base={}, kubeconfig=job.cluster.kubeconfig if job.cluster else None)
    return argv, env, job.timeout_s, _gate(job)


@pytest.mark.parametrize("engine", ["builtin", "kubescape"])
@pytest.mark.parametrize("field", sorted(set(KUBESCAPE_SCAN) - {"engine", "wait_seconds"}))
def test_each_field_changes_what_runs_or_is_refused(planner: ScanService, inputs: dict[str, str], field: str,
                                                    engine: str) -> None:
    without, with_it = _cases(inputs)[field]
    if engine == "builtin" and KUBESCAPE_SCAN[field] == BINARY:
        with pytest.raises(InvalidRequest) as refused:
            _what_runs(planner, with_it, engine)
        assert refused.value.field == field
        assert "engine=kubescape" in str(refused.value) and "\n" not in str(refused.value)
        return
    assert _what_runs(planner, without, engine) != _what_runs(planner, with_it, engine), field


# ---------------------------------------------------------------- over MCP


@pytest.mark.parametrize("field,value", [("submit", True), ("account", "acct-1"), ("keep_local", True),
                                         ("use_cached_artifacts", True),
                                         ("access_key", "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40")])
async def test_binary_only_fields_are_refused_on_the_builtin_engine(kscan_settings, inputs: dict[str, str],  # type: ignore[no-untyped-def]
                                                                    field: str, value: Any) -> None:
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [inputs["folder"]],
                                                           field: value})
        scans = (await client.call_tool("list_scans", {})).structured_content
    assert result.is_error
    text = result.content[0].text
    assert f"{field}: only the Kubescape binary honours it (engine=kubescape)" in text, text
    assert "(engine=builtin)" in text and "\n" not in text and "5ec7e7a1" not in text
    assert not scans["scans"]  # refused before anything was queued


async def test_false_values_ask_for_nothing(kscan_settings, inputs: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [inputs["folder"]],
                                                           "submit": False, "keep_local": False})
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "succeeded"


async def test_auto_resolving_to_builtin_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 inputs: dict[str, str]) -> None:
    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_KSCAN_KUBESCAPE_PATH", str(tmp_path / "no-such-kubescape"))
    mcp_kscan.settings.configure(None)
    try:
        async with Client(build_server()) as client:
            result = await client.call_tool("kubescape_scan", {"paths": [inputs["folder"]], "submit": True,
                                                               "account": "acct-1"})
    finally:
        mcp_kscan.settings.configure(None)
    assert result.is_error
    text = result.content[0].text
    assert "submit: only the Kubescape binary honours it" in text and "\n" not in text
    assert "engine=auto found no kubescape binary" in text and "(also account)" in text


@pytest.mark.parametrize("executor", ["local", "auto"])
@pytest.mark.parametrize("field,value", [("namespace", "audit"), ("image", "aquasec/kube-bench:v0.10.0"),
                                         ("max_parallel_jobs", 3), ("keep_jobs", True)])
async def test_job_only_fields_are_refused_when_kube_bench_runs_here(kscan_settings, executor: str, field: str,  # type: ignore[no-untyped-def]
                                                                     value: Any) -> None:
    """With the fake kube-bench configured (MCP_KSCAN_KUBE_BENCH_PATH), auto runs it here, as local does."""
    async with Client(build_server()) as client:
        result = await client.call_tool("kube_bench", {"executor": executor, field: value, "wait_seconds": 0})
    assert result.is_error
    text = result.content[0].text
    assert f"{field}: only kube-bench Jobs use it (executor=job)" in text and "\n" not in text, text
