"""Kubescape's HTTP handler API (``/v1/scan``, ``/v1/status``, ``/v1/results``, ``/v1/metrics``).

Each handler parses Kubescape's wire format, makes one ScanService call (plus the wait a
synchronous call implies) and answers in Kubescape's envelope. Behaviour follows current
Kubescape (httphandler/handlerequests/v1) except two deliberate differences: ``GET /v1/results``
without an id returns the latest result (Kubescape: 400 unless offline; like its offline mode the
fallback never deletes the result), and a failed ``/v1/metrics`` scan is 503 (Kubescape: 500).

The /v1 API is Kubescape's, so "the latest scan" means the latest Kubescape scan that is not a
metrics scrape; kube-bench scans started over MCP never show up there.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from mcp_kscan.errors import InvalidRequest, KscanError, NotAccepting, ScanBusy, ScanNotFound
from mcp_kscan.http_compat.envelope import (
    envelope,
    error,
    raw_envelope,
    is_uuid,
    parse_json_object,
    query_bool,
    query_params,
    read_body,
    retry_headers,
    status_for,
    v1_errors,
)
from mcp_kscan.http_compat.prometheus import CONTENT_TYPE, StoredMetrics, kubescape_metrics_text, scan_age_text
from mcp_kscan.runner.records import ACTIVE_STATES, ScanRecord, ScanState
from mcp_kscan.runner.store import Output
from mcp_kscan.scanners.kubescape_request import BINARY_ONLY_FIELDS, KubescapeRequest
from mcp_kscan.server import AppState
from mcp_kscan.service import ScanService, validate_request
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

SCANNER = "kubescape"
REST_ORIGIN = "rest"
METRICS_ORIGIN = "metrics"
WAIT_CHUNK_S = 60.0

SCAN_QUERY = ("wait", "keep", "skipPersistence", "callback")
RESULTS_GET_QUERY = ("id", "keep")
RESULTS_DELETE_QUERY = ("id", "keep", "all")
STATUS_QUERY = ("id",)
CANCEL_QUERY = ("id",)
METRICS_QUERY = ("frameworks", "skipPersistence", "source")
METRICS_SOURCES = ("scan", "latest")
"""``source`` of ``/v1/metrics``: scan now (Kubescape's behaviour, the default) or read the newest stored scan."""

# Keys of the Trigger Scan Object, by the names a body may use (camelCase first: Kubescape's).
_EXCLUDE_KEYS = ("excludedNamespaces", "excluded_namespaces", "exclude_namespaces", "excludeNamespaces")
_INCLUDE_KEYS = ("includeNamespaces", "include_namespaces")
_CACHED_KEYS = ("useCachedArtifacts", "use_cached_artifacts")


def app_state(request: Request) -> AppState:
    state: AppState | None = request.app.state.kscan_ref.state
    if state is None or request.app.state.kscan_ref.shutting_down:
        raise NotAccepting("the server is starting or shutting down")
    return state


def _missing(data: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """Kubescape applies the KS_* default when a field is absent or empty (Go zero value)."""
    return all(data.get(k) in (None, "", []) for k in keys)


def kubescape_request(body: dict[str, Any], settings: Settings, *, metrics: bool = False) -> KubescapeRequest:
    """A Trigger Scan Object with the KS_* environment defaults applied to the fields it leaves out."""
    data = {k: v for k, v in body.items() if v is not None}  # null means "default" in Go's decoder
    # Binary-only fields the server set, not the caller (the metrics scan's own body, the KS_*
    # defaults): a built-in scan does not refuse them (scan_plan._builtin_task).
    filled: set[str] = set(BINARY_ONLY_FIELDS) if metrics else set()
    if _missing(data, _EXCLUDE_KEYS) and settings.ks_exclude_namespaces:
        for k in _EXCLUDE_KEYS:
            data.pop(k, None)
        data["excludedNamespaces"] = list(settings.ks_exclude_namespaces)
    if _missing(data, _INCLUDE_KEYS) and settings.ks_include_namespaces:
        for k in _INCLUDE_KEYS:
            data.pop(k, None)
        data["includeNamespaces"] = list(settings.ks_include_namespaces)
    if not metrics and _missing(data, ("format",)):
        data["format"] = settings.ks_format
    if _missing(data, ("account",)) and settings.ks_account:
        data["account"] = settings.ks_account
        filled.add("account")
    # Kubescape's server scans with the cached policies unless KS_DOWNLOAD_ARTIFACTS=true; we
    # only do so when a cache exists, so a plain install does not fail on a missing ~/.kubescape.
    if _missing(data, _CACHED_KEYS) and not settings.ks_download_artifacts and (Path.home() / ".kubescape").is_dir():
        data["useCachedArtifacts"] = True
        filled.add("use_cached_artifacts")
    req: KubescapeRequest = validate_request(KubescapeRequest, data, settings)
    return req.with_server_defaults(filled)


async def wait_until_done(service: ScanService, record: ScanRecord) -> ScanRecord:
    """Wait for a scan to reach a final state; the manager's own deadline bounds this."""
    while record.status in ACTIVE_STATES:
        record = await service.wait(record.scan_id, WAIT_CHUNK_S)
    return record


def decode_report(raw: bytes) -> Any:
    """The stored report as JSON (the parsed object, not a string); text when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def failure_message(record: ScanRecord) -> str:
    return record.error or f"scan {record.status.value}"


async def _delete_quietly(service: ScanService, scan_id: str, *, purge: bool = True) -> None:
    """Remove a result once it was handed out; shielded, so a client hanging up cannot skip it."""
    with anyio.CancelScope(shield=True):
        try:
            await service.delete(scan_id, purge=purge)
        except (ScanNotFound, ScanBusy):
            pass


async def _purge_quietly(service: ScanService, scan_id: str) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await service.purge(scan_id)
        except KscanError as exc:  # the next start frees it (ResultsStore.purge_orphans_sync)
            log.error("freeing the stored result of scan %s failed: %s", scan_id, exc)


async def _deleted(answer: Response, service: ScanService, scan_id: str) -> Response:
    """``answer``, with its result deleted before it goes out, as Kubescape does: a read that
    follows finds nothing. Only the record goes first; its bulk (a 10,000-resource scan's 85 MB
    report, a third of a second to free) is freed once the body is handed to the connection,
    shielded, so a client that hangs up does not skip it.
    """
    await _delete_quietly(service, scan_id, purge=False)
    answer.background = BackgroundTask(_purge_quietly, service, scan_id)
    return answer


async def _report_or_failure(
    service: ScanService, record: ScanRecord, stored: Output | None = None
) -> Response:
    """200 v1results with the report, or 500 error for a scan that did not succeed.

    ``stored``: the raw report when it was read with the record (``service.status_with_report``).
    A report the store keeps as a file comes open, and is streamed from it (and closed).
    """
    if record.status is not ScanState.succeeded:
        if stored is not None and not isinstance(stored[0], bytes):
            stored[0].close()
        return error(failure_message(record), 500, record.scan_id)
    raw, media_type = stored or await service.report_source(record.scan_id)
    if record.scanner == SCANNER and media_type == "application/json":
        # Kubescape scans (binary or built-in) are stored as strict JSON (strict_json,
        # allow_nan=False), so the bytes go out as they are: no parse in the event loop, no
        # second copy of a large report as Python objects, nothing that can fail to encode.
        return raw_envelope("v1results", record.scan_id, raw)
    if not isinstance(raw, bytes):
        with raw:
            raw = await anyio.to_thread.run_sync(raw.read)
    report = await anyio.to_thread.run_sync(decode_report, raw)
    return envelope("v1results", record.scan_id, report)


# ---------------------------------------------------------------------------- /v1/scan


@v1_errors
async def scan(request: Request) -> Response:
    if request.method == "DELETE":
        return await cancel_scan(request)
    state = app_state(request)
    params = query_params(request, SCAN_QUERY)
    wait = query_bool(params, "wait")
    keep = query_bool(params, "keep")
    query_bool(params, "skipPersistence")  # accepted: we keep no operator CRDs to skip
    if params.get("callback"):
        raise InvalidRequest("callback", "scan-completion callbacks are not enabled on this server; poll /v1/status")
    body = parse_json_object(await read_body(request, state.settings.ks_scan_request_max_bytes))
    req = kubescape_request(body, state.settings)
    # Waited for and not kept: the answer is the report, and the result is deleted once it is
    # out; nobody can page its findings, so they are not worked out (a fifth of a big scan's CPU).
    record = await state.service.start_kubescape(req, origin=REST_ORIGIN, index_findings=keep or not wait)
    scan_id = record.scan_id
    if not wait:
        return envelope("busy", scan_id, f"scanning '{scan_id}' is in progress")
    record = await wait_until_done(state.service, record)
    try:
        answer = await _report_or_failure(state.service, record)
    except ScanNotFound as exc:
        answer = error(str(exc), 500, scan_id)
    except BaseException:
        if not keep:
            await _delete_quietly(state.service, scan_id)
        raise
    return answer if keep else await _deleted(answer, state.service, scan_id)


async def _record_for(service: ScanService, scan_id: str) -> ScanRecord | None:
    """The scan an optional id names: no id is the latest scan in flight; a bad id is none."""
    if not scan_id:
        return await service.latest_scan(SCANNER, in_flight=True)
    if not is_uuid(scan_id):
        return None
    try:
        return await service.status(scan_id)
    except ScanNotFound:
        return None


async def cancel_scan(request: Request) -> Response:
    """DELETE /v1/scan: cancel a queued or running scan (no id: the latest one in flight)."""
    state = app_state(request)
    params = query_params(request, CANCEL_QUERY)
    scan_id = params.get("id", "")
    record = await _record_for(state.service, scan_id)
    if record is None or record.status not in ACTIVE_STATES:
        what = f" for '{scan_id}'" if scan_id else ""
        return error(f"no in-flight scan found{what}", 404, scan_id)
    record = await state.service.cancel(record.scan_id)
    if record.status is not ScanState.cancelled:
        return error(f"no in-flight scan found for '{record.scan_id}' (it ended as {record.status.value})", 404, record.scan_id)
    return envelope("notBusy", record.scan_id, f"scan '{record.scan_id}' cancelled")


# ---------------------------------------------------------------------------- /v1/status


@v1_errors
async def status(request: Request) -> Response:
    """Always 200: busy (with the id) while queued or running, else notBusy with an empty id."""
    state = app_state(request)
    params = query_params(request, STATUS_QUERY)
    scan_id = params.get("id", "")
    record = await _record_for(state.service, scan_id)
    if record is not None and record.status in ACTIVE_STATES:
        return envelope("busy", record.scan_id, record.scan_id)
    return envelope("notBusy", "")


# ---------------------------------------------------------------------------- /v1/results


@v1_errors
async def results(request: Request) -> Response:
    if request.method == "DELETE":
        return await delete_results(request)
    state = app_state(request)
    params = query_params(request, RESULTS_GET_QUERY)
    keep = query_bool(params, "keep")
    scan_id = params.get("id", "")
    fallback = not scan_id
    stored: Output | None = None
    if fallback:
        record = await state.service.latest_scan(SCANNER)
        if record is None:
            return error("latest scan not found", 400)
    else:
        if not is_uuid(scan_id):
            return Response(status_code=204)
        try:
            # The record and the report in one database trip: this read is the API's hottest.
            record, stored = await state.service.status_with_report(scan_id)
        except ScanNotFound:
            return Response(status_code=204)
    if record.status in ACTIVE_STATES:
        return envelope("busy", record.scan_id, f"scanning '{record.scan_id}' in progress")
    try:
        answer = await _report_or_failure(state.service, record, stored)
    except ScanNotFound:
        return Response(status_code=204)
    # Reading deletes the result, as Kubescape does; never on the no-id fallback (like its offline mode).
    if not keep and not fallback:
        return await _deleted(answer, state.service, record.scan_id)
    return answer


async def delete_results(request: Request) -> Response:
    state = app_state(request)
    params = query_params(request, RESULTS_DELETE_QUERY)
    query_bool(params, "keep")
    scan_id = params.get("id", "")
    if query_bool(params, "all"):
        try:
            await state.service.delete(all_scans=True)
        except ScanBusy:
            return error("cannot delete all results while a scan is in progress", 400, scan_id)
        return Response(status_code=200)
    if not scan_id:
        return error("scan ID is required (or all=true)", 400)
    if is_uuid(scan_id):
        try:
            record = await state.service.status(scan_id)
        except ScanNotFound:
            return Response(status_code=200)  # nothing to remove: Kubescape answers 200 too
        if record.status in ACTIVE_STATES:
            return envelope("busy", scan_id, f"scanning '{scan_id}' in progress")
        await _delete_quietly(state.service, scan_id)
    return Response(status_code=200)


# ---------------------------------------------------------------------------- /v1/metrics


@v1_errors
async def metrics(request: Request) -> Response:
    """Kubescape's metric families: from a scan run for this scrape, or (``source=latest``) at
    once from the newest stored framework scan of the cluster. A failed scan is 503."""
    try:
        state = app_state(request)
        params = query_params(request, METRICS_QUERY)
        query_bool(params, "skipPersistence")
        source = params.get("source", "scan")
        if source not in METRICS_SOURCES:
            raise InvalidRequest("source", f"{source[:20]!r} is not a metrics source; use {' or '.join(METRICS_SOURCES)}")
        names = [n.strip() for n in params.get("frameworks", "").split(",") if n.strip()]
        body: dict[str, Any] = {"targetType": "framework", "targetNames": names, "keepLocal": True, "submit": False}
        # The scan this scrape runs, or (source=latest) the stored scan must match: the same
        # frameworks over the same namespaces (KS_* defaults included), checked by the one model.
        try:
            req = kubescape_request(body, state.settings, metrics=True)
        except InvalidRequest as exc:  # the names came in as this route's `frameworks`: say that
            if exc.field.split("[")[0] not in ("targetNames", "target_names"):
                raise
            raise InvalidRequest("frameworks", exc.reason) from None
        if source == "latest":
            return await _stored_metrics(request, state.service, req)
        record = await state.service.start_kubescape(req, origin=METRICS_ORIGIN)
    except KscanError as exc:
        return error(str(exc), status_for(exc), headers=retry_headers(exc))
    try:
        record = await wait_until_done(state.service, record)
        if record.status is not ScanState.succeeded:
            return error(failure_message(record), 503, record.scan_id)
        raw, _ = await state.service.raw_report(record.scan_id)
        report = await anyio.to_thread.run_sync(decode_report, raw)
        if not isinstance(report, dict):
            return error("the scan's report is not a JSON object", 503, record.scan_id)
        return Response(kubescape_metrics_text(report), media_type=CONTENT_TYPE)
    except KscanError as exc:
        return error(str(exc), 503, record.scan_id)
    finally:
        await _delete_quietly(state.service, record.scan_id)


async def _stored_metrics(request: Request, service: ScanService, scrape: KubescapeRequest) -> Response:
    """``source=latest``: the newest stored framework scan that covered what ``scrape`` (the scan
    this scrape would run) covers: its families plus its age; no scan runs.

    Finished scans never change, so the families of the last scan served are kept (one per app)
    and a scrape every few seconds costs a database read, not a report parse.
    """
    record = await service.latest_framework_scan(
        scrape.target_names, include_namespaces=scrape.include_namespaces, exclude_namespaces=scrape.exclude_namespaces
    )
    cache: StoredMetrics = request.app.state.stored_metrics
    text = cache.text_for(record.scan_id)
    if text is None:
        raw, _ = await service.raw_report(record.scan_id)
        report = await anyio.to_thread.run_sync(decode_report, raw)
        if not isinstance(report, dict):
            return error("the stored scan's report is not a JSON object", 503, record.scan_id)
        text = await anyio.to_thread.run_sync(kubescape_metrics_text, report)
        cache.keep(record.scan_id, text)
    finished = record.finished_at or record.created_at
    return Response(text + scan_age_text(datetime.now(UTC) - finished), media_type=CONTENT_TYPE)
