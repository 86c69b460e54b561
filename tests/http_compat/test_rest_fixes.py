"""POST /api/v1/fixes in-process: propose, apply with "apply": true, the same rules as the MCP tools."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from .rest_helpers import RestFactory

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


async def _scan(c: httpx.AsyncClient, root: Path) -> str:
    r = await c.post("/v1/scan", params={"wait": "true", "keep": "true"},
                     json={"paths": [str(root)], "engine": "builtin"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_propose_then_apply(rest_factory: RestFactory, tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    manifest = root / "insecure.yaml"
    shutil.copy(REPO / "examples/insecure.yaml", manifest)
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(root)})
    scan_id = await _scan(c, root)
    page = await c.post("/api/v1/fixes", json={"scan_id": scan_id, "control_id": "C-0038"})
    assert page.status_code == 200, page.text
    (fix,) = page.json()["fixes"]
    assert fix["verified"] and fix["json_patch"] == [{"op": "remove", "path": "/spec/template/spec/hostPID"}]
    assert manifest.read_text() == (REPO / "examples/insecure.yaml").read_text()
    applied = await c.post("/api/v1/fixes", json={"scan_id": scan_id, "finding_ids": [fix["finding_id"]], "apply": True})
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["applied"] == 1 and body["files_written"] == [str(manifest)]
    assert "-      hostPID: true                 # bad (C-0038)" in body["diffs"][str(manifest)]
    assert "hostPID" not in manifest.read_text()


async def test_bad_requests_are_one_line_400s(rest_factory: RestFactory, tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "examples/hardened.yaml", root / "hardened.yaml")
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(root)})
    scan_id = await _scan(c, root)
    for body, field in (({"scan_id": scan_id, "finding_ids": ["nope"]}, "finding_ids"),
                        ({"scan_id": scan_id, "finding_ids": ["f-0123456789abcdef"]}, "finding_ids"),
                        ({"scan_id": scan_id, "limit": 500}, "limit"),
                        ({"scan_id": scan_id, "control_id": "C-57"}, "control_id"),
                        ({"scan_id": scan_id, "cursor": "garbage"}, "cursor"),
                        ({"scan_id": scan_id, "apply": True}, "finding_ids"),
                        ({"scan_id": scan_id, "force": True}, "force")):
        r = await c.post("/api/v1/fixes", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"].startswith(field) and "\n" not in r.json()["error"]
    for scan in ("../etc", "0b7c3a54-0000-4000-8000-000000000000"):
        missing = await c.post("/api/v1/fixes", json={"scan_id": scan})
        assert missing.status_code == 404, missing.text
    assert (await c.get("/api/v1/fixes")).status_code == 405
