"""POST /v1/scan's controlsConfig (Kubescape's --controls-config), in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .rest_helpers import JSON, RestFactory

pytestmark = pytest.mark.anyio

POD = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\n"
       "spec:\n  containers:\n  - name: c\n    image: x:1\n    env: [{name: DB_URL, value: 'db.example:5432'}]\n")


async def test_controls_config_body_field(rest_factory: RestFactory, fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "pod.yaml").write_text(POD)
    config = tmp_path / "controls-config.json"
    config.write_text(json.dumps({"settings": {"postureControlInputs": {"sensitiveKeyNames": ["db_url"]}}}))
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    body = {"paths": [str(tmp_path / "m")], "engine": "builtin", "targetType": "control", "targetNames": ["C-0012"]}

    async def status_of(extra: dict[str, str]) -> str:
        r = await c.post("/v1/scan", params={"wait": "true"}, content=json.dumps({**body, **extra}), headers=JSON)
        assert r.status_code == 200, r.text
        return str(r.json()["response"]["summaryDetails"]["controls"]["C-0012"]["status"])

    assert await status_of({}) == "passed"
    assert await status_of({"controlsConfig": str(config)}) == "failed"
    # The Kubescape binary gets the file as --controls-config.
    r = await c.post("/v1/scan", params={"wait": "true"}, headers=JSON,
                           content=json.dumps({"paths": [str(tmp_path / "m")], "engine": "kubescape", "controlsConfig": str(config)}))
    assert r.status_code == 200, r.text
    argv = fake_bin.starts("kubescape")[-1]["argv"]
    assert argv[argv.index("--controls-config") + 1] == str(config)
    outside = await c.post("/v1/scan", headers=JSON, content=json.dumps({**body, "controlsConfig": "/etc/hostname"}))
    assert outside.status_code == 400 and outside.json()["response"].startswith("controlsConfig: ")
    assert "allowed roots" in outside.json()["response"]
