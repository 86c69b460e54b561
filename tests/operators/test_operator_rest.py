"""GET /api/v1/vulnerabilities and GET /api/v1/cves/{id}, in-process through the ASGI app (httpx)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

import mcp_kscan.settings
from mcp_kscan.http_compat.app import build_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def rest(cluster) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    app = build_app(mcp_kscan.settings.get_settings())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
            yield client


async def test_vulnerabilities_filters_and_pages_like_the_tool(cluster, samples, rest) -> None:  # type: ignore[no-untyped-def]
    cluster(samples)
    first = await rest.get("/api/v1/vulnerabilities", params={"namespace": "kube-system", "min_severity": "HIGH", "limit": "5"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["vulnerabilities"]) == 5 and body["next_cursor"]
    seen = body["vulnerabilities"]
    cursor = body["next_cursor"]
    while cursor:
        page = (await rest.get("/api/v1/vulnerabilities", params={"namespace": "kube-system", "min_severity": "HIGH",
                                                                  "limit": "5", "cursor": cursor})).json()
        seen += page["vulnerabilities"]
        cursor = page["next_cursor"]
    assert len(seen) == body["total_matching"]
    assert {r["severity"] for r in seen} <= {"Critical", "High"} and {r["namespace"] for r in seen} == {"kube-system"}
    fixable = (await rest.get("/api/v1/vulnerabilities", params={"fixable": "false", "workload": "Deployment/default/nginx-deployment"})).json()
    assert fixable["total_matching"] == 2


async def test_cve_route(cluster, samples, rest) -> None:  # type: ignore[no-untyped-def]
    cluster(samples)
    found = await rest.get("/api/v1/cves/CVE-2023-39325")
    assert found.status_code == 200
    assert found.json()["vulnerabilities"][0]["vulnerability_id"] == "GHSA-4374-p667-p6c8"
    assert (await rest.get("/api/v1/cves/CVE-1999-0001")).json()["found"] is False


@pytest.mark.parametrize(
    ("path", "params", "start"),
    [
        ("/api/v1/vulnerabilities", {"min_severity": "bad"}, "min_severity: must be one of Critical, High"),
        ("/api/v1/vulnerabilities", {"workload": "x"}, "workload: must be Kind/namespace/name"),
        ("/api/v1/vulnerabilities", {"limit": "0"}, "limit: must be between 1 and 200"),
        ("/api/v1/vulnerabilities", {"limit": "many"}, "limit: must be a whole number"),
        ("/api/v1/vulnerabilities", {"fixable": "perhaps"}, "fixable: expected a boolean"),
        ("/api/v1/vulnerabilities", {"severity": "High"}, "query: unknown key 'severity'"),
        ("/api/v1/cves/not-a-cve", {}, "cve_id: must be a CVE id"),
    ],
)
async def test_bad_queries_are_400_one_line(cluster, rest, path, params, start) -> None:  # type: ignore[no-untyped-def]
    cluster([])
    answer = await rest.get(path, params=params)
    assert answer.status_code == 400 and answer.json()["error"].startswith(start), answer.text


async def test_missing_operator_forbidden_and_unreachable_statuses(cluster, samples, rest) -> None:  # type: ignore[no-untyped-def]
    cluster([], kubescape=False, trivy=False)
    none = await rest.get("/api/v1/vulnerabilities")
    assert none.status_code == 404 and "looked for the Kubescape operator" in none.json()["error"]
    cluster(samples, kubescape=False, forbidden={("list", "vulnerabilityreports")})
    forbidden = await rest.get("/api/v1/cves/CVE-2023-23914")
    assert forbidden.status_code == 403 and "list on vulnerabilityreports.aquasecurity.github.io" in forbidden.json()["error"]
    cluster(samples).stop()
    down = await rest.get("/api/v1/vulnerabilities")
    assert down.status_code == 502 and down.json()["error"].startswith("cannot reach the Kubernetes API")
    assert "/" not in down.json()["error"].split("(")[1].split(")")[0]  # no kubeconfig path in the message


async def test_no_cluster_configuration_is_503(rest) -> None:  # type: ignore[no-untyped-def]
    answer = await rest.get("/api/v1/vulnerabilities")  # cluster() never called: no kubeconfig file
    assert answer.status_code == 503
    assert answer.json()["error"].startswith("the server has no cluster configuration: set KUBECONFIG")
