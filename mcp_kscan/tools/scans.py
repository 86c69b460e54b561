"""Tools that start, watch and cancel scans: kube_bench, kubescape_scan, scan_status, cancel_scan."""

from __future__ import annotations

import inspect
import time
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_kscan.client_roots import path_context
from mcp_kscan.runner.records import ScanRecord
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.service import ScanResult, present, validate_request
from mcp_kscan.tools.common import (
    describe_record,
    model_parameters,
    progress_reporter,
    service_of,
    structured,
    tool_errors,
    with_signature,
)

SCAN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Scan ids are UUIDs; anything else (paths, quotes, newlines) is refused before a lookup."""

SCAN_ANNOTATIONS = ToolAnnotations(read_only_hint=True, open_world_hint=True)
READ_ANNOTATIONS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

WAIT_PARAM_DOC = "Seconds to wait for the end (0: return the scan_id at once); the scan goes on after a timeout."

MCP_EXCLUDED_FIELDS = ("format", "host_scanner")
"""Request fields without an effect on an MCP scan: results are read with get_results whatever the
format (REST keeps ``format`` for Kubescape's API), and no front end deploys the host scanner."""

KUBE_BENCH_DOC = """Run kube-bench, the CIS Kubernetes Benchmark, on this node or as Jobs on the cluster's nodes.

Checks control-plane/kubelet/etcd configuration. `executor`: local (this machine: useful on a
node), job (one Kubernetes Job per node: `nodes`, `node_selector` or `all_nodes`; created and
deleted in `namespace`), or auto (local on a node, else job when the server has a kubeconfig).
Still running after wait_seconds -> scan_status(scan_id, wait_seconds=...). Then
get_results(scan_id, view="checks", status="FAIL")."""

KUBESCAPE_DOC = """Scan Kubernetes manifests or a live cluster for misconfigurations (Kubescape controls).

`paths`: manifest files/directories; else the cluster of the server's kubeconfig (`kube_context`
picks a context: list_contexts); `workload`: one object of it. `engine`: auto (the Kubescape binary if installed, else the
built-in engine), kubescape or builtin.
Returns the record; when finished, its summary has the compliance score (null with
nothing_scanned=true when no object was read), counts, warnings (charts/overlays not rendered) and
the most urgent failed controls. Still running -> scan_status(scan_id, wait_seconds=...). Then
get_results(view="controls") and get_results(view="findings", control_id=<top control>)."""


def _text(record: ScanRecord, result: ScanResult) -> str:
    text = describe_record(result)
    if result.hint:
        text += "\n" + result.hint
    return text


async def _start_and_wait(
    ctx: Context, start: Any, wait_seconds: float
) -> CallToolResult:
    service = service_of(ctx)
    started = time.monotonic()
    async with tool_errors():
        record = await start()
        if wait_seconds > 0:
            record = await service.wait(record.scan_id, wait_seconds, progress_reporter(ctx, started))
        result = present(record)
    return structured(result, _text(record, result))


def register(mcp: MCPServer) -> None:
    async def kube_bench(ctx: Context, **kwargs: Any) -> Annotated[CallToolResult, ScanResult]:
        wait_seconds = kwargs.pop("wait_seconds")
        data = {k: v for k, v in kwargs.items() if v is not None}
        context = await path_context(ctx, [data.get("config_dir")])
        async with tool_errors():
            req = validate_request(KubeBenchRequest, data, service_of(ctx).settings, context)
        service = service_of(ctx)
        return await _start_and_wait(ctx, lambda: service.start_kube_bench(req, origin="mcp"), wait_seconds)

    wait_param = inspect.Parameter(
        "wait_seconds",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[float, Field(ge=0, le=3600, description=WAIT_PARAM_DOC)],
        default=60,
    )
    with_signature(kube_bench, [*model_parameters(KubeBenchRequest), wait_param])
    mcp.add_tool(kube_bench, title="Run kube-bench (CIS benchmark)", description=KUBE_BENCH_DOC, annotations=SCAN_ANNOTATIONS)

    async def kubescape_scan(ctx: Context, **kwargs: Any) -> Annotated[CallToolResult, ScanResult]:
        wait_seconds = kwargs.pop("wait_seconds")
        data = {k: v for k, v in kwargs.items() if v is not None}
        paths = data.get("paths")
        context = await path_context(ctx, [*(paths if isinstance(paths, list) else [paths]), data.get("controls_config")])
        async with tool_errors():
            req = validate_request(KubescapeRequest, data, service_of(ctx).settings, context)
        service = service_of(ctx)
        return await _start_and_wait(ctx, lambda: service.start_kubescape(req, origin="mcp"), wait_seconds)

    with_signature(kubescape_scan, [*model_parameters(KubescapeRequest, exclude=MCP_EXCLUDED_FIELDS), wait_param])
    mcp.add_tool(
        kubescape_scan,
        title="Scan manifests or a cluster (Kubescape controls)",
        description=KUBESCAPE_DOC,
        annotations=SCAN_ANNOTATIONS,
    )

    @mcp.tool(title="Scan status", annotations=READ_ANNOTATIONS)
    async def scan_status(
        ctx: Context,
        scan_id: Annotated[str | None, Field(description="The scan's id; omit for the latest scan", max_length=64, pattern=SCAN_ID_PATTERN)] = None,
        wait_seconds: Annotated[
            float, Field(ge=0, le=3600, description="Wait up to this long for a final state (0: answer at once), with progress notifications")
        ] = 0,
    ) -> Annotated[CallToolResult, ScanResult]:
        """A scan's record: status (queued, running, succeeded, failed, timed_out, cancelled, interrupted), timings, error, summary once finished. wait_seconds long-polls a running scan."""
        started = time.monotonic()
        async with tool_errors():
            service = service_of(ctx)
            record = await service.status(scan_id or None)
            if wait_seconds > 0 and not record.finished:
                record = await service.wait(record.scan_id, wait_seconds, progress_reporter(ctx, started))
            result = present(record)
        return structured(result, _text(record, result))

    @mcp.tool(title="Cancel a scan", annotations=DESTRUCTIVE_ANNOTATIONS)
    async def cancel_scan(
        ctx: Context,
        scan_id: Annotated[str, Field(description="The id of a queued or running scan", min_length=1, max_length=64, pattern=SCAN_ID_PATTERN)],
    ) -> Annotated[CallToolResult, ScanResult]:
        """Stop a queued or running scan (its whole process tree is killed; recorded as cancelled). A finished scan is returned unchanged."""
        async with tool_errors():
            record = await service_of(ctx).cancel(scan_id)
            result = present(record)
        return structured(result, _text(record, result))
