"""The OpenAPI 3 document served at ``/openapi.json``, written as data.

Bodies and answers come from pydantic models' JSON schemas, so the document cannot drift from
the models the routes use for the kube-bench endpoint; the Trigger Scan Object is described by
``TriggerScanObject`` (Kubescape's camelCase names plus our ``paths`` and ``engine``), which
``KubescapeRequest`` accepts field for field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_kscan import __version__
from mcp_kscan.cluster import Contexts
from mcp_kscan.http_compat.envelope import Envelope
from mcp_kscan.fixes.models import ApplyResult, FixPage, FixRequest
from mcp_kscan.http_compat.kube_bench_api import ErrorBody, KubeBenchToolRequest, KubeBenchToolResponse
from mcp_kscan.operators.models import CveOccurrences, VulnerabilityPage
from mcp_kscan.readers.kubescape_v2 import SeverityThreshold
from mcp_kscan.service import ComparePage

REF = "#/components/schemas/{model}"


class TriggerScanObject(BaseModel):
    """Kubescape's PostScanRequest (the body of ``POST /v1/scan``); every field is optional."""

    model_config = ConfigDict(extra="forbid")

    format: str | None = Field(None, description="Kubescape output format (default KS_FORMAT or json); the stored report is always JSON.")
    excludedNamespaces: list[str] | None = Field(None, description="Namespaces to skip (default KS_EXCLUDE_NAMESPACES).")
    includeNamespaces: list[str] | None = Field(None, description="Only these namespaces (default KS_INCLUDE_NAMESPACES).")
    useCachedArtifacts: bool | None = Field(None, description="Scan with the policies cached in ~/.kubescape.")
    keepLocal: bool | None = Field(None, description="Do not submit results (kubescape --keep-local).")
    submit: bool | None = Field(None, description="Submit results to the Kubescape Cloud account.")
    hostScanner: bool | None = Field(None, description="Accepted for compatibility; the CLI scan deploys no host scanner.")
    account: str | None = Field(None, description="Kubescape Cloud account ID (default KS_ACCOUNT / KS_ACCOUNT_ID).")
    accessKey: str | None = Field(None, description="Kubescape Cloud access key (default KS_ACCESS_KEY); never put on a command line.")
    targetType: Literal["framework", "control", "Framework", "Control"] | None = Field(
        None, description="framework or control; with no names (or 'all') every framework is scanned."
    )
    targetNames: list[str] | None = Field(None, description="Framework names (nsa, mitre, ...) or control IDs (C-0016).")
    paths: list[str] | None = Field(
        None, description="Local manifests (files or directories) to scan instead of the cluster; inside MCP_KSCAN_ALLOWED_ROOTS."
    )
    engine: Literal["auto", "kubescape", "builtin"] | None = Field(
        None, description="auto (default): the kubescape binary when installed, else the built-in engine."
    )
    exceptions: str | None = Field(
        None, description="A Kubescape exceptions file (postureExceptionPolicy list) inside MCP_KSCAN_ALLOWED_ROOTS: "
                          "excepted findings are reported passed, w/exceptions. A path: Kubescape's own API takes the "
                          "policies inline, which this server refuses.",
    )
    complianceThreshold: float | None = Field(None, ge=0, le=100)
    severityThreshold: SeverityThreshold | None = None
    kubeContext: str | None = Field(
        None, description="A context of the server's kubeconfig to scan (GET /api/v1/contexts lists them)."
    )
    timeoutSeconds: float | None = Field(None, gt=0, le=86400, description="Scan timeout (default MCP_KSCAN_DEFAULT_TIMEOUT).")


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Envelope, TriggerScanObject, KubeBenchToolRequest, KubeBenchToolResponse, ErrorBody, Contexts,
                  VulnerabilityPage, CveOccurrences, ComparePage, FixRequest, FixPage, ApplyResult):
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    # Envelope.response is "any JSON" (a report object or a message string).
    schemas["Envelope"]["properties"]["response"] = {
        "description": schemas["Envelope"]["properties"]["response"].get("description", "")
    }
    schemas["Envelope"]["required"] = ["id", "type"]
    return schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _envelope(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref("Envelope")}}}
    if headers:
        answer["headers"] = headers
    return answer


def _query(name: str, description: str, kind: str = "string", fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _bool(name: str, description: str) -> dict[str, Any]:
    return _query(name, description + " (true/false)", "boolean")


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}}
UNAUTHORIZED = {
    "description": "A token is configured (MCP_KSCAN_TOKEN) and the request lacks `Authorization: Bearer <token>`.",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": _ref("ErrorBody")}},
}
SCAN_ID = "Scan ID (UUID4)."


def _error_body(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("ErrorBody")}}}


OPERATOR_PAGING = [
    _query("limit", "Rows per page, 1-200 (default 20; fewer when the size budget is reached).", "integer"),
    _query("cursor", "next_cursor of the previous page, with the same filters."),
]
OPERATOR_ERRORS = {
    "400": _error_body("Invalid filter: `field: why` with the valid values."),
    "401": UNAUTHORIZED,
    "403": _error_body("The cluster's RBAC refuses the server's identity: names the resource and verb."),
    "404": _error_body("Neither the Kubescape nor the Trivy operator is installed (names the API groups looked for)."),
    "502": _error_body("The Kubernetes API cannot be reached."),
    "503": _error_body("The server has no usable cluster configuration (kubeconfig or service account)."),
}


def openapi_document() -> dict[str, Any]:
    bad = _envelope("Invalid body or query (unknown query key, bad value): type error, `field: why`.")
    down = _envelope("The server is shutting down and takes no new work.")
    full = _envelope("The scan queue is full; retry after the Retry-After delay.", RETRY_AFTER)
    paths: dict[str, Any] = {
        "/v1/scan": {
            "post": {
                "operationId": "triggerScan",
                "summary": "Start a Kubescape scan (async by default; wait=true answers with the report).",
                "parameters": [
                    _bool("wait", "Wait for the scan and answer with the report"),
                    _bool("keep", "With wait=true: keep the result instead of deleting it after answering"),
                    _bool("skipPersistence", "Accepted for compatibility; nothing is persisted to the cluster"),
                    _query("callback", "Not supported here: a non-empty value is a 400."),
                ],
                "requestBody": {
                    "required": True,
                    "description": "The Trigger Scan Object; `{}` scans with the defaults (every framework).",
                    "content": {"application/json": {"schema": _ref("TriggerScanObject")}},
                },
                "responses": {
                    "200": _envelope("busy (async: the scan is queued) or v1results (wait=true: the raw report)."),
                    "400": bad,
                    "401": UNAUTHORIZED,
                    "413": _envelope("The body is over KS_SCAN_REQUEST_MAX_BYTES."),
                    "429": full,
                    "500": _envelope("wait=true and the scan failed: type error with the reason."),
                    "503": down,
                },
            },
            "delete": {
                "operationId": "cancelScan",
                "summary": "Cancel a queued or running scan (no id: the latest one in flight).",
                "parameters": [_query("id", SCAN_ID)],
                "responses": {
                    "200": _envelope("notBusy: scan '<id>' cancelled."),
                    "400": bad,
                    "401": UNAUTHORIZED,
                    "404": _envelope("No in-flight scan with that id."),
                    "503": down,
                },
            },
        },
        "/v1/status": {
            "get": {
                "operationId": "getStatus",
                "summary": "busy while the scan (no id: any scan) is queued or running, else notBusy.",
                "parameters": [_query("id", SCAN_ID)],
                "responses": {"200": _envelope("busy (id and response = the scan id) or notBusy (id '')."), "400": bad, "401": UNAUTHORIZED, "503": down},
            }
        },
        "/v1/results": {
            "get": {
                "operationId": "getScanResults",
                "summary": "The raw report of a finished scan (no id: the latest scan); deleted after reading unless keep=true.",
                "parameters": [
                    _query("id", SCAN_ID + " Empty: the latest Kubescape scan (never deleted by reading)."),
                    _bool("keep", "Keep the result after returning it"),
                ],
                "responses": {
                    "200": _envelope("v1results with the raw report, or busy while the scan runs."),
                    "204": {"description": "No scan with that id (or the id is not a UUID)."},
                    "400": _envelope("Bad query, or no id and no scan at all ('latest scan not found')."),
                    "401": UNAUTHORIZED,
                    "500": _envelope("The scan failed: type error with the reason."),
                    "503": down,
                },
            },
            "delete": {
                "operationId": "deleteScanResults",
                "summary": "Delete one result (id) or every finished result (all=true).",
                "parameters": [_query("id", SCAN_ID), _bool("keep", "Ignored"), _bool("all", "Delete every finished result")],
                "responses": {
                    "200": {"description": "Deleted (empty body), or the busy envelope when that scan still runs."},
                    "400": _envelope("No id and no all=true, a bad query, or all=true while a scan runs."),
                    "401": UNAUTHORIZED,
                    "503": down,
                },
            },
        },
        "/v1/metrics": {
            method: {
                "operationId": f"kubescapeMetrics{method.title()}",
                "summary": "Kubescape's Prometheus metric families: from a scan run now, or (source=latest) from the newest stored one.",
                "parameters": [
                    _query("frameworks", "Comma-separated framework names (default: all)."),
                    _bool("skipPersistence", "Accepted for compatibility"),
                    {
                        "name": "source",
                        "in": "query",
                        "required": False,
                        "description": "scan (default): run a scan for this scrape, as Kubescape does. latest: answer at once"
                        " from the newest stored successful framework scan of the cluster that covered what a scan for"
                        " this scrape would (the same frameworks and namespaces), plus kubescape_scan_age_seconds.",
                        "schema": {"type": "string", "enum": ["scan", "latest"], "default": "scan"},
                    },
                ],
                "responses": {
                    "200": {"description": "Prometheus text exposition.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": bad,
                    "401": UNAUTHORIZED,
                    "404": _envelope("source=latest: no stored successful framework scan (of those frameworks)."),
                    "429": full,
                    "503": _envelope("The scan failed (or the server is shutting down)."),
                },
            }
            for method in ("get", "post")
        },
        "/api/tools/kube-bench": {
            "post": {
                "operationId": "kubeBenchTool",
                "summary": "Run kube-bench synchronously (the security-agent endpoint).",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("KubeBenchToolRequest")}}},
                "responses": {
                    "200": {"description": "The run's result.", "content": {"application/json": {"schema": _ref("KubeBenchToolResponse")}}},
                    "400": {"description": "Invalid input: `field: why`.", "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                    "401": UNAUTHORIZED,
                    "413": {"description": "Body too large.", "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                    "429": {"description": "Queue full.", "headers": RETRY_AFTER, "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                    "500": {"description": "Server error: ...", "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                    "503": {"description": "Shutting down.", "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                },
            }
        },
        "/api/v1/contexts": {
            "get": {
                "operationId": "listContexts",
                "summary": "The contexts of the server's kubeconfig a scan may choose with kubeContext (names only, never credentials).",
                "responses": {
                    "200": {"description": "The contexts.", "content": {"application/json": {"schema": _ref("Contexts")}}},
                    "401": UNAUTHORIZED,
                    "500": {"description": "The server's kubeconfig cannot be read.", "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                    "503": {"description": "Starting or shutting down.", "content": {"application/json": {"schema": _ref("ErrorBody")}}},
                },
            }
        },
        "/api/v1/vulnerabilities": {
            "get": {
                "operationId": "listVulnerabilities",
                "summary": "Image vulnerabilities the cluster's Kubescape and Trivy operators already found, worst first, paged.",
                "parameters": [
                    _query("namespace", "Only this namespace."),
                    _query("workload", "Only this workload: Kind/namespace/name."),
                    _query("image", "Only this image: repository, repo:tag or repo@digest."),
                    _query("min_severity", "This severity or worse: Critical, High, Medium, Low, Negligible, Unknown."),
                    _bool("fixable", "Only rows with (true) or without (false) a fixed version"),
                    _query("cve", "Only this CVE or GHSA id (aliases match)."),
                    *OPERATOR_PAGING,
                ],
                "responses": {
                    "200": {"description": "One page.", "content": {"application/json": {"schema": _ref("VulnerabilityPage")}}},
                    **OPERATOR_ERRORS,
                },
            }
        },
        "/api/v1/cves/{cve_id}": {
            "get": {
                "operationId": "findCve",
                "summary": "Where one CVE (or GHSA id, matched through aliases) runs: namespaces, images, workloads, fixes.",
                "parameters": [
                    {"name": "cve_id", "in": "path", "required": True, "description": "CVE-YYYY-NNNN or GHSA id.",
                     "schema": {"type": "string"}},
                    *OPERATOR_PAGING,
                ],
                "responses": {
                    "200": {"description": "The occurrences (found=false when none).",
                            "content": {"application/json": {"schema": _ref("CveOccurrences")}}},
                    **OPERATOR_ERRORS,
                },
            }
        },
        "/api/v1/compare": {
            "get": {
                "operationId": "compareScans",
                "summary": "New, fixed and unchanged failures from the base scan to the head scan, paged like get_results.",
                "parameters": [
                    {**_query("base", "The baseline scan's id."), "required": True},
                    {**_query("head", "The newer scan's id (same scanner)."), "required": True},
                    _query("view", "summary (default), new, fixed or unchanged."),
                    *OPERATOR_PAGING,
                ],
                "responses": {
                    "200": {"description": "One page.", "content": {"application/json": {"schema": _ref("ComparePage")}}},
                    "400": _error_body("Invalid query, unfinished or empty scan, or scans of two scanners: `field: why`."),
                    "401": UNAUTHORIZED,
                    "404": _error_body("No such scan."),
                },
            }
        },
        "/api/v1/fixes": {
            "post": {
                "operationId": "fixes",
                "summary": "Fixes for a scan's failed findings (JSON Patch, diff, needs_user_value, verified by a "
                           "re-scan); with \"apply\": true, write the verified fixes of finding_ids.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("FixRequest")}}},
                "responses": {
                    "200": {"description": "A page of fixes (propose) or each finding's outcome (apply).",
                            "content": {"application/json": {"schema": {"oneOf": [_ref("FixPage"), _ref("ApplyResult")]}}}},
                    "400": _error_body("Invalid input: `field: why` (an unknown finding, a scan that is not a finished Kubescape scan)."),
                    "401": UNAUTHORIZED,
                    "404": _error_body("No such scan."),
                    "413": _error_body("Body too large."),
                    "500": _error_body("Server error: ..."),
                    "503": _error_body("Starting or shutting down, or the store is unavailable."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "serverMetrics",
                "summary": "This server's metrics: scans by scanner and state, scan durations, queue depth, running scans.",
                "responses": {
                    "200": {"description": "Prometheus text exposition.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": UNAUTHORIZED,
                },
            }
        },
        "/livez": {"get": {"operationId": "livez", "summary": "200 while the process serves.", "security": [], "responses": {"200": {"description": "Alive."}}}},
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "200 when the store is open and the runner accepts work.",
                "security": [],
                "responses": {"200": {"description": "Ready."}, "503": {"description": "Not ready (starting, shutting down, store failure)."}},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1 document.", "content": {"application/json": {"schema": {"type": "object"}}}}, "401": UNAUTHORIZED},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mcp-kscan REST API",
            "version": __version__,
            "description": "Kubescape's HTTP handler API (/v1), the kube-bench tool endpoint, what the cluster's "
            "security operators found (/api/v1/vulnerabilities, /api/v1/cves) and server metrics. "
            "MCP (streamable HTTP) is served at /mcp on the same port.",
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }
