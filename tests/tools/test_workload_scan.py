"""kubescape_scan(workload="Kind/namespace/name"): the binary's `scan workload`, and the built-in engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.kube_api import FakeKubeAPI  # noqa: E402

from mcp_kscan.server import build_server  # noqa: E402

pytestmark = pytest.mark.anyio


async def test_binary_runs_scan_workload_with_the_namespace_flag(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"engine": "kubescape", "workload": "Deployment/shop/web"})
        assert not result.is_error, result.content
        assert result.structured_content["status"] == "succeeded", result.structured_content
        page = await client.call_tool("get_results", {"view": "findings", "status": "failed"})
    argv = fake_bin.starts("kubescape")[-1]["argv"]
    assert argv[1:4] == ["scan", "workload", "Deployment/web"]
    assert argv[argv.index("--namespace") + 1] == "shop"
    (finding,) = page.structured_content["findings"]
    assert finding["resource"]["name"] == "web" and finding["resource"]["namespace"] == "shop"


async def test_workload_is_validated_and_scans_alone(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        for bad in ("Deployment/shop/web/x", "Deploy ment/shop/web", "Deployment/Shop/web", "Deployment/shop/--all",
                    "Deployment/web"):
            result = await client.call_tool("kubescape_scan", {"engine": "kubescape", "workload": bad})
            text = result.content[0].text
            assert result.is_error and "workload: must be Kind/namespace/name" in text and "\n" not in text, (bad, text)
        mixed = await client.call_tool("kubescape_scan", {"workload": "Deployment/shop/web", "target_names": ["nsa"]})
        assert mixed.is_error and "target_names" in mixed.content[0].text
    assert not fake_bin.starts()


async def test_builtin_engine_fetches_only_that_object(kscan_settings, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    objects = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": n, "namespace": "shop"},
         "spec": {"selector": {"matchLabels": {"app": n}}, "template": {"metadata": {"labels": {"app": n}}, "spec": {
             "hostPID": n == "web", "containers": [{"name": "c", "image": "nginx:1.25"}]}}}}
        for n in ("web", "api")
    ]
    with FakeKubeAPI(objects=json.loads(json.dumps(objects))) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # the operator's kubeconfig: a request cannot name one
        import mcp_kscan.settings

        mcp_kscan.settings.configure(None)
        async with Client(build_server()) as client:
            result = await client.call_tool("kubescape_scan", {"engine": "builtin", "workload": "Deployment/shop/web",
                                                                "wait_seconds": 120})
            assert result.structured_content["status"] == "succeeded", result.structured_content
            page = await client.call_tool("get_results", {"view": "findings", "control_id": "C-0038"})
            record = result.structured_content
    (finding,) = page.structured_content["findings"]
    assert record["summary"]["resources"]["failed"] + record["summary"]["resources"]["passed"] == 1
    assert finding["status"] == "failed" and finding["resource"]["name"] == "web"
    assert finding["location"]["file"] is None  # a cluster object has no file
    assert not any(p.rstrip("/").endswith("deployments") for _, p in api.requests)
