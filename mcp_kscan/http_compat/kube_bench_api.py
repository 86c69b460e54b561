"""``POST /api/tools/kube-bench``: the endpoint security-agent servers (HexStrike-style) expose.

Same body and answer shape as the reference server, minus its bugs: the body is validated by the
kube-bench adapter's request model (no shell string is ever built), ``--targets`` goes after
``run``, and the JSON is read from stdout instead of a fixed file in /tmp. The call is
synchronous: start the scan, wait for it (the runner enforces the request's timeout), answer.
"""

from __future__ import annotations

import logging
import shlex
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_kscan.errors import InvalidRequest, KscanError, ScanNotFound
from mcp_kscan.http_compat.envelope import parse_json_object, read_body, retry_headers, status_for
from mcp_kscan.http_compat.v1 import app_state, wait_until_done
from mcp_kscan.runner.records import ScanState
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.service import validate_request
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

ORIGIN = "rest"


class KubeBenchToolRequest(BaseModel):
    """The body (all strings in the reference server; empty means "not given")."""

    model_config = ConfigDict(extra="forbid")

    targets: str | list[str] | None = Field(
        None, description="Comma-separated targets: master, node, controlplane, etcd, policies, managedservices."
    )
    version: str | None = Field(None, description="Kubernetes version, e.g. 1.28 (kube-bench --version).")
    config_dir: str | None = Field(None, description="kube-bench cfg directory (--config-dir).")
    output_format: str | None = Field("json", description="Only json: kube-bench's JSON is returned in stdout.")
    additional_args: str | None = Field(None, description="Extra allow-listed kube-bench flags, e.g. '--skip 1.1'.")
    timeout_seconds: float | None = Field(None, gt=0, description="Scan timeout (default: the server's).")
    # Where kube-bench runs (see the README, "kube-bench on the cluster's nodes"); validated by
    # the adapter's request model exactly as for the MCP tool.
    executor: str | None = Field(None, description="auto (default), local, or job (Kubernetes Jobs on the nodes).")
    nodes: str | list[str] | None = Field(None, description="executor=job: node names (comma-separated or a list).")
    node_selector: str | None = Field(None, description="executor=job: a label selector choosing the nodes.")
    all_nodes: bool | None = Field(None, description="executor=job: every node.")
    namespace: str | None = Field(None, description="executor=job: namespace of the Jobs (default kube-bench).")
    image: str | None = Field(None, description="executor=job: the kube-bench image.")
    max_parallel_jobs: int | None = Field(None, ge=1, le=100, description="executor=job: Jobs at once (default 10).")
    keep_jobs: bool | None = Field(None, description="executor=job: keep the finished Jobs.")
    kube_context: str | None = Field(
        None, description="executor=job: a context of the server's kubeconfig (GET /api/v1/contexts lists them)."
    )


class KubeBenchToolResponse(BaseModel):
    """The reference server's ``execute_command`` result, plus the argv that ran."""

    stdout: str = Field(
        description="kube-bench's JSON report, verbatim (empty when it produced none); with executor=job, "
        "each node's report."
    )
    stderr: str = Field(description="The end of kube-bench's stderr (redacted), or why the scan failed.")
    return_code: int = Field(description="kube-bench's exit code; -1 when it did not exit by itself.")
    success: bool = Field(description="True when kube-bench exited 0.")
    timed_out: bool
    partial_results: bool = Field(description="Timed out, but some output was captured.")
    execution_time: float = Field(description="Seconds the scan ran.")
    timestamp: str = Field(description="When the scan finished, ISO-8601 UTC.")
    command: str = Field(description="The argv that ran, secrets redacted, joined with shlex.join.")
    scan_id: str = Field(description="The scan's id: get_results/list_scans over MCP know it too.")


class ErrorBody(BaseModel):
    error: str


def _error(message: str, status_code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def to_request(body: dict[str, Any], settings: Settings) -> KubeBenchRequest:
    """Map the body onto the adapter's request model; empty strings mean "not given"."""
    known = set(KubeBenchToolRequest.model_fields)
    for key in body:
        if key not in known:
            raise InvalidRequest(str(key)[:60], f"unknown field; allowed: {', '.join(sorted(known))}")
    data = {k: v for k, v in body.items() if v is not None and v != ""}
    fmt = data.pop("output_format", "json")
    if not isinstance(fmt, str) or fmt.strip().lower() != "json":
        raise InvalidRequest(
            "output_format",
            f"only json is supported: kube-bench's JSON report is returned in stdout (got {str(fmt)[:40]!r})",
        )
    return validate_request(KubeBenchRequest, data, settings)


async def kube_bench_tool(request: Request) -> Response:
    try:
        state = app_state(request)
        body = parse_json_object(await read_body(request, state.settings.ks_scan_request_max_bytes))
        req = to_request(body, state.settings)
        record = await state.service.start_kube_bench(req, origin=ORIGIN)
        record = await wait_until_done(state.service, record)
        stdout = ""
        if record.has_report:
            try:
                raw, _ = await state.service.raw_report(record.scan_id)
                stdout = raw.decode("utf-8", "replace")
            except ScanNotFound:
                stdout = ""
    except KscanError as exc:
        code = status_for(exc)
        message = str(exc) if code < 500 else f"Server error: {exc}"
        return _error(message, code, retry_headers(exc))
    except Exception as exc:
        log.exception("POST /api/tools/kube-bench failed")
        return _error(f"Server error: {type(exc).__name__} (see the server log)", 500)
    timed_out = record.status is ScanState.timed_out
    stderr = record.stderr_tail or ""
    if not stderr and record.status is not ScanState.succeeded and record.error:
        stderr = record.error
    finished = record.finished_at or datetime.now(UTC)
    answer = KubeBenchToolResponse(
        stdout=stdout,
        stderr=stderr,
        return_code=record.return_code if record.return_code is not None else -1,
        # Exit 0, as the reference server; a Job scan has no single exit code, so its state decides.
        success=record.return_code == 0 if record.return_code is not None else record.status is ScanState.succeeded,
        timed_out=timed_out,
        partial_results=timed_out and bool(stdout or stderr),
        execution_time=record.duration_s or 0.0,
        timestamp=finished.astimezone(UTC).isoformat(),
        command=shlex.join(record.command or []),
        scan_id=record.scan_id,
    )
    return JSONResponse(answer.model_dump())
