"""A bounded schemathesis run against a real server finds no unexpected 5xx and no response that
breaks /openapi.json (the document itself is checked in-process: tests/http_compat/test_rest_openapi.py).

Scans during the run hit the fake kubescape/kube-bench (fast answers), paths are confined to an
empty directory, and HOME points at an empty directory, so nothing can start a real long scan.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from .conftest import RestServerFactory

# 25 examples per operation (304 cases) reach every (operation, status code) pair that 40 did (484
# cases): the 16 operations answer 26 distinct pairs either way, including the rare ones (404 from
# /v1/metrics, 503 from /api/v1/vulnerabilities, 200 from DELETE /v1/scan). 20 lost the /v1/metrics 404.
EXAMPLES_PER_OPERATION = 25
BUDGET_S = 60.0


def scan_failure_or_no_server_error(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """No 5xx, except the documented scan-failure answers (a Kubescape error envelope naming why).

    A scan with engine=builtin and no paths looks for a live cluster; here there is none, so
    wait=true answers 500 and /v1/metrics 503 *by contract*; the operator routes answer 503 (no
    cluster configuration). A crash would answer the generic
    "internal server error" (or a bare 500), which still fails.
    """
    if response.status_code < 500:
        return None
    path = case.operation.path
    if path in ("/v1/scan", "/v1/results", "/v1/metrics") and response.status_code in (500, 503):
        body = response.json()
        assert body.get("type") == "error", body
        assert body.get("response") and "internal server error" not in body["response"], body
        return None
    if path.startswith("/api/v1/") and response.status_code == 503:
        # The operator routes without a cluster configuration (this server has none), by contract.
        assert response.json()["error"].startswith("the server has no cluster configuration"), response.text
        return None
    raise AssertionError(f"{response.status_code} from {case.operation.label}: {response.text[:300]}")


def test_schemathesis_finds_no_5xx_or_schema_violation(rest_server_factory: RestServerFactory, tmp_path: Path) -> None:
    roots = tmp_path / "empty-root"
    roots.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    server = rest_server_factory(
        {
            "MCP_KSCAN_ALLOWED_ROOTS": str(roots),
            "MCP_KSCAN_DEFAULT_TIMEOUT": "10",
            "HOME": str(home),
            "KUBECONFIG": str(home / "no-such-kubeconfig"),
            "MCP_KSCAN_QUEUE_CAPACITY": "50",
        }
    )
    # Imported here, not at the top: every pytest process (each xdist worker) imports every test
    # module to collect it, and schemathesis with requests costs ~0.35 s of CPU in each.
    schemathesis = pytest.importorskip("schemathesis")
    import requests  # schemathesis' own HTTP client
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    checks = [
        scan_failure_or_no_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    # One keep-alive session for every case; trust_env off: no proxy from the developer's shell on a
    # loopback call, and requests no longer reads the proxy variables again for each case.
    session = requests.Session()
    session.trust_env = False
    started = time.monotonic()
    cases = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13  # schemathesis may leave out the document itself
    for operation in operations:
        if time.monotonic() - started > BUDGET_S:
            break

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal cases
            cases += 1
            case.call_and_validate(base_url=server.base_url, session=session, checks=checks, timeout=30)

        run()
    session.close()
    print(f"schemathesis: {cases} cases in {time.monotonic() - started:.1f} s")
    assert cases >= 100
    assert "Traceback" not in server.log(), server.log()[-3000:]
