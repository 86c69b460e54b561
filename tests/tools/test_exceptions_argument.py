"""kubescape_scan's exceptions argument (Kubescape's --exceptions) over MCP and as the REST body field:
excepted findings in get_results, a checked path, a malformed file that stops the scan, and the
binary's argv."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from mcp import Client

from mcp_kscan.http_compat.app import build_app
from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

POD = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: prod\n"
       "spec:\n  containers:\n  - name: c\n    image: nginx:1.25\n    securityContext: {{privileged: true}}\n")
EXCEPTIONS = [{"name": "legacy pods", "policyType": "postureExceptionPolicy", "actions": ["alertOnly"],
               "reason": "replaced in Q3 (SEC-12)",
               "resources": [{"designatorType": "Attributes", "attributes": {"kind": "Pod", "name": "legacy-.*"}}],
               "posturePolicies": [{"controlID": "C-0057"}]}]
MALFORMED = [{"name": "ok", "resources": [{"attributes": {"kind": ".*"}}], "posturePolicies": [{}]},
             {"name": "typo", "resources": [{"attributes": {"kind": ".*"}}], "posturePolicies": [{"controlId": "C-0057"}]}]


@pytest.fixture
def roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_bin):  # type: ignore[no-untyped-def]
    import mcp_kscan.settings

    for key, value in fake_bin.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(tmp_path))
    mcp_kscan.settings.configure(None)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "legacy.yaml").write_text(POD.format(name="legacy-1"))
    (tmp_path / "repo" / "web.yaml").write_text(POD.format(name="web"))
    (tmp_path / "exceptions.json").write_text(json.dumps(EXCEPTIONS))
    (tmp_path / "malformed.json").write_text(json.dumps(MALFORMED))
    yield tmp_path
    mcp_kscan.settings.configure(None)


async def test_excepted_findings_in_get_results(roots: Path) -> None:
    args = {"paths": [str(roots / "repo")], "engine": "builtin", "target_type": "control", "target_names": ["C-0057"],
            "exceptions": str(roots / "exceptions.json"), "wait_seconds": 120}
    async with Client(build_server()) as client:
        scan = await client.call_tool("kubescape_scan", args)
        assert not scan.is_error, scan.content
        assert scan.structured_content["status"] == "succeeded"
        scan_id = scan.structured_content["scan_id"]
        controls = (await client.call_tool("get_results", {"scan_id": scan_id, "view": "controls"})).structured_content
        row = controls["controls"][0]
        assert (row["control_id"], row["failed"], row["excepted"]) == ("C-0057", 1, 1)
        assert "1 excepted" in (await client.call_tool("get_results", {"scan_id": scan_id, "view": "controls"})).content[0].text
        passed = (await client.call_tool("get_results", {"scan_id": scan_id, "view": "findings", "status": "passed"})).structured_content
        legacy = next(f for f in passed["findings"] if f["resource"]["name"] == "legacy-1")
        assert legacy["excepted"] is True
        assert legacy["exception"] == {"name": "legacy pods", "reason": "replaced in Q3 (SEC-12)",
                                       "source": "exceptions file (legacy pods)"}
        failed = (await client.call_tool("get_results", {"scan_id": scan_id, "view": "findings", "status": "failed"})).structured_content
        assert [f["resource"]["name"] for f in failed["findings"]] == ["web"]


async def test_exceptions_path_is_checked_and_malformed_file_never_scans(roots: Path, fake_bin) -> None:  # type: ignore[no-untyped-def]
    base = {"paths": [str(roots / "repo")], "engine": "builtin", "wait_seconds": 30}
    async with Client(build_server()) as client:
        outside = await client.call_tool("kubescape_scan", {**base, "exceptions": "/etc/hostname"})
        assert outside.is_error and "exceptions" in outside.content[0].text and "allowed roots" in outside.content[0].text
        malformed = await client.call_tool("kubescape_scan", {**base, "exceptions": str(roots / "malformed.json")})
        text = malformed.content[0].text
        assert malformed.is_error and "entry 1 ('typo')" in text and "controlId" in text and "\n" not in text
        inline = await client.call_tool("kubescape_scan", {**base, "exceptions": EXCEPTIONS})
        assert inline.is_error and "exceptions: " in inline.content[0].text  # a path, not inline policies
        listed = await client.call_tool("list_scans", {})
        assert listed.structured_content["total"] == 0  # nothing ran as if no exceptions were given


async def test_kubescape_binary_gets_the_exceptions_flag(roots: Path, fake_bin, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(kubescape_report=shared_dir / "fixtures/kubescape/defectdojo/results.json")
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"paths": [str(roots / "repo")], "engine": "kubescape",
                                                           "exceptions": str(roots / "exceptions.json"), "wait_seconds": 60})
        assert not result.is_error, result.content
    argv = fake_bin.starts("kubescape")[-1]["argv"]
    assert argv[argv.index("--exceptions") + 1] == str((roots / "exceptions.json").resolve())


async def test_rest_body_field(roots: Path) -> None:
    import mcp_kscan.settings

    app = build_app(mcp_kscan.settings.get_settings())
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=60,
        headers={"Content-Type": "application/json"},
    ) as rest:
        body = {"engine": "builtin", "paths": [str(roots / "repo")], "targetType": "control", "targetNames": ["C-0057"]}
        bad = await rest.post("/v1/scan?wait=true", json={**body, "exceptions": str(roots / "malformed.json")})
        assert bad.status_code == 400 and "entry 1 ('typo')" in bad.text
        good = await rest.post("/v1/scan?wait=true", json={**body, "exceptions": str(roots / "exceptions.json")})
        assert good.status_code == 200, good.text
        report = good.json()["response"]
        statuses = {r["resourceID"].rsplit("/", 1)[-1]: r["controls"][0]["status"] for r in report["results"]}
        assert statuses == {"legacy-1": {"status": "passed", "subStatus": "w/exceptions"}, "web": {"status": "failed"}}
