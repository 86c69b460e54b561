"""POST /api/tools/kube-bench with the fake kube-bench: exact argv, answer shape, validation."""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta

import httpx
import pytest
from .rest_helpers import RestFactory, wait_for

pytestmark = pytest.mark.anyio

PATH = "/api/tools/kube-bench"


async def test_targets_after_run_and_json_from_stdout(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await c.post(
        PATH,
        json={"targets": "master,node", "version": "1.28", "config_dir": "", "output_format": "json", "additional_args": "--skip 1.1.1"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    starts = fake_bin.starts("kube-bench")
    assert len(starts) == 1
    argv = starts[0]["argv"][1:]
    assert argv == ["run", "--targets", "master,node", "--json", "--version", "1.28", "--skip=1.1.1"]
    assert set(body) >= {
        "stdout", "stderr", "return_code", "success", "timed_out", "partial_results", "execution_time", "timestamp", "command",
    }
    report = json.loads(body["stdout"])
    assert "Controls" in report or isinstance(report, list)
    assert body["return_code"] == 0 and body["success"] is True
    assert body["timed_out"] is False and body["partial_results"] is False
    assert isinstance(body["execution_time"], float) and body["execution_time"] >= 0
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert shlex.split(body["command"])[1:] == argv
    assert isinstance(body["stderr"], str)


async def test_defaults_run_root_command(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await c.post(PATH, json={})
    assert r.status_code == 200
    assert fake_bin.starts("kube-bench")[0]["argv"][1:] == ["--json"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"output_format": "yaml"}, "output_format: only json"),
        ({"targets": "master;id"}, "targets"),
        ({"targets": "worker"}, "targets"),
        ({"version": "1.28; rm -rf /"}, "version"),
        ({"additional_args": "--outputfile /tmp/x"}, "additional_args"),
        ({"additional_args": "$(id)"}, "additional_args"),
        ({"config_dir": "/definitely/missing"}, "config_dir"),
        ({"benchmark_typo": "cis"}, "benchmark_typo"),
    ],
)
async def test_invalid_input_is_400(rest: httpx.AsyncClient, fake_bin, body: dict[str, str], needle: str) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await c.post(PATH, json=body)
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["error"]
    assert r.json()["error"].startswith(needle)
    assert fake_bin.starts("kube-bench") == []


async def test_bad_bodies(rest: httpx.AsyncClient) -> None:
    c = rest
    for content in (b"", b"nope", b"[]"):
        r = await c.post(PATH, content=content, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
    assert (await c.get(PATH)).status_code == 405


async def test_scanner_failure_is_reported_not_500(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    fake_bin.configure(mode="crash")
    r = await c.post(PATH, json={"targets": "node"})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is False and body["return_code"] != 0
    assert body["stderr"]


async def test_timeout_sets_timed_out(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    fake_bin.configure(mode="hang")
    r = await c.post(PATH, json={"targets": "node", "timeout_seconds": 1})
    assert r.status_code == 200
    body = r.json()
    assert body["timed_out"] is True and body["success"] is False
    assert body["partial_results"] is bool(body["stdout"] or body["stderr"])


async def test_queue_full_is_429(rest_factory: RestFactory, fake_bin) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="hang")
    c = await rest_factory({"MCP_KSCAN_MAX_CONCURRENT_SCANS": "1", "MCP_KSCAN_QUEUE_CAPACITY": "0"})
    running = (await c.post("/v1/scan", content=b"{}")).json()["id"]
    await wait_for(lambda: len(fake_bin.starts("kubescape")) == 1)
    r = await c.post(PATH, json={})
    assert r.status_code == 429 and r.headers["retry-after"] == "1" and "error" in r.json()
    await c.delete("/v1/scan", params={"id": running})


async def test_stderr_of_the_scanner_reaches_the_answer(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    fake_bin.configure(mode="error")
    r = await c.post(PATH, json={"targets": "node"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is False and body["return_code"] == 1
    assert body["stderr"].strip(), "kube-bench's stderr is returned"
    assert "Traceback" not in body["stderr"]
