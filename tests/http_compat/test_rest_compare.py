"""GET /api/v1/compare in-process: real built-in scans of a folder before and after an edit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from compare.manifests import CONTROLS, edit, write_before

pytestmark = pytest.mark.anyio


async def test_rest_compare_pages_like_the_tool(rest_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    root.mkdir()
    write_before(root)
    rest: httpx.AsyncClient = await rest_factory()
    ids = []
    for step in range(2):
        if step:
            edit(root)
        r = await rest.post("/v1/scan?wait=true&keep=true", json={"engine": "builtin", "paths": [str(root)], "targetType": "control",
                                                        "targetNames": CONTROLS})
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    summary = await rest.get("/api/v1/compare", params={"base": ids[0], "head": ids[1]})
    assert summary.status_code == 200, summary.text
    assert summary.json()["counts"] == {"new": 2, "new_evidence": 1, "fixed": 2, "unchanged": 0}
    page = await rest.get("/api/v1/compare", params={"base": ids[0], "head": ids[1], "view": "new", "limit": 1})
    body = page.json()
    assert body["returned"] == 1 and body["total_matching"] == 2 and body["next_cursor"]
    second = await rest.get("/api/v1/compare", params={"base": ids[0], "head": ids[1], "view": "new", "limit": 1,
                                                       "cursor": body["next_cursor"]})
    assert second.status_code == 200 and "counts" not in second.json()
    assert {body["findings"][0]["finding_id"], second.json()["findings"][0]["finding_id"]} == {
        f["finding_id"] for f in (await rest.get("/api/v1/compare", params={"base": ids[0], "head": ids[1], "view": "new"})).json()["findings"]}
    bad = await rest.get("/api/v1/compare", params={"base": ids[0], "head": ids[1], "view": "old"})
    assert bad.status_code == 400 and "view" in bad.json()["error"] and "unchanged" in bad.json()["error"]
    missing = await rest.get("/api/v1/compare", params={"base": ids[0]})
    assert missing.status_code == 400 and bad.json()["error"]
    unknown = await rest.get("/api/v1/compare", params={"base": ids[0], "head": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404
