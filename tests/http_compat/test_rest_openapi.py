"""/openapi.json describes every route (in-process). The fuzzing run against a real server is in
tests/e2e/test_openapi_fuzz.py."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

EXPECTED = {
    "/v1/scan": {"post", "delete"},
    "/v1/status": {"get"},
    "/v1/results": {"get", "delete"},
    "/v1/metrics": {"get", "post"},
    "/api/tools/kube-bench": {"post"},
    "/api/v1/contexts": {"get"},
    "/api/v1/vulnerabilities": {"get"},
    "/api/v1/cves/{cve_id}": {"get"},
    "/api/v1/compare": {"get"},
    "/api/v1/fixes": {"post"},
    "/metrics": {"get"},
    "/livez": {"get"},
    "/readyz": {"get"},
    "/openapi.json": {"get"},
}


async def test_document_lists_every_route(rest: httpx.AsyncClient) -> None:
    doc = (await rest.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {p: set(ops) for p, ops in doc["paths"].items()} == EXPECTED
    scan = doc["paths"]["/v1/scan"]["post"]
    assert {p["name"] for p in scan["parameters"]} >= {"wait", "keep"}
    assert set(scan["responses"]) >= {"200", "400", "413", "429", "500"}
    assert "Retry-After" in scan["responses"]["429"]["headers"]
    assert set(doc["paths"]["/v1/results"]["get"]["responses"]) >= {"200", "204", "400", "500"}
    assert "503" in doc["paths"]["/v1/metrics"]["get"]["responses"]
    body = doc["components"]["schemas"]["TriggerScanObject"]["properties"]
    assert set(body) >= {
        "format", "excludedNamespaces", "includeNamespaces", "useCachedArtifacts", "keepLocal", "submit",
        "hostScanner", "account", "accessKey", "targetType", "targetNames", "paths", "engine", "exceptions",
    }
    kb = doc["components"]["schemas"]["KubeBenchToolRequest"]["properties"]
    assert set(kb) >= {"targets", "version", "config_dir", "output_format", "additional_args"}
