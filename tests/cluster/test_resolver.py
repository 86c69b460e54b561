"""The one cluster resolver: every cluster scan uses the context it picks (issue 12).

Two fake API servers behind one kubeconfig (contexts ``a`` → A, current, and ``b`` → B). Each
kind of cluster scan is run through the service layer, with ``MCP_KSCAN_KUBE_CONTEXT`` and with a
request's ``kube_context``, and the fake that received the calls tells which context was used:
the Kubescape binary (the fake records ``--kube-context`` and the context it resolved), the
built-in engine and kube-bench Jobs (the fake APIs record their requests and Jobs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fakes.kube_api import Behaviour, FakeKubeAPI, node_object
from mcp import Client

import mcp_kscan.settings
from conftest import FakeBin
from mcp_kscan.cluster import ClusterSource, list_contexts, resolve_cluster
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanRecord, ScanState
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.server import build_server
from mcp_kscan.service import ScanService
from mcp_kscan.settings import Settings

pytestmark = pytest.mark.anyio

SMALL_REPORT = json.dumps({"Controls": [], "Totals": {"total_pass": 0, "total_fail": 0, "total_warn": 0,
                                                      "total_info": 0}}).encode()


@pytest.fixture
def two_clusters(tmp_path: Path, fake_bin: FakeBin, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeKubeAPI, FakeKubeAPI, Path]]:
    apis = {name: FakeKubeAPI(nodes=[node_object(f"{name}-node")], default_behaviour=Behaviour(log=SMALL_REPORT))
            for name in ("a", "b")}
    for api in apis.values():
        api.start()
    kc = FakeKubeAPI.write_multi_kubeconfig(tmp_path / "kubeconfig", apis, current="a")
    for key, value in fake_bin.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBECONFIG", str(kc))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("MCP_KSCAN_KUBE_CONTEXT", "KS_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    mcp_kscan.settings.configure(None)
    try:
        yield apis["a"], apis["b"], kc
    finally:
        mcp_kscan.settings.configure(None)
        for api in apis.values():
            api.stop()


def settings_with(monkeypatch: pytest.MonkeyPatch, context: str | None, variable: str = "MCP_KSCAN_KUBE_CONTEXT") -> Settings:
    if context:
        monkeypatch.setenv(variable, context)
    mcp_kscan.settings.configure(None)
    return mcp_kscan.settings.get_settings()


async def run(settings: Settings, start: Any) -> ScanRecord:
    async with ScanManager(settings) as manager:
        service = ScanService(manager, settings)
        record = await start(service)
        return await service.wait(record.scan_id, 60)


def listed(api: FakeKubeAPI) -> bool:
    return any(path.startswith("/api/v1/namespaces") for _, path in api.requests)


# --------------------------------------------------------------------------- the resolver itself


def test_order_request_then_env_then_current(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, kc = two_clusters
    settings = settings_with(monkeypatch, None)
    assert resolve_cluster(settings) == ClusterSource(str(kc), None)  # the kubeconfig's current context
    assert resolve_cluster(settings, "b") == ClusterSource(str(kc), "b")
    settings = settings_with(monkeypatch, "b", "KS_CONTEXT")
    assert resolve_cluster(settings) == ClusterSource(str(kc), "b")
    assert resolve_cluster(settings, "a") == ClusterSource(str(kc), "a")  # the request wins
    with pytest.raises(InvalidRequest) as err:
        resolve_cluster(settings, "prod")
    assert err.value.field == "kube_context" and "'a'" not in str(err.value) and "a, b" in str(err.value)


def test_no_kubeconfig_means_no_context_to_choose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    settings = Settings(data_dir=tmp_path)
    assert resolve_cluster(settings) is None
    with pytest.raises(InvalidRequest, match="no kubeconfig"):
        resolve_cluster(settings, "b")


def test_list_contexts_shows_names_never_credentials(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    api_a, _, kc = two_clusters
    answer = list_contexts(settings_with(monkeypatch, "b"))
    assert [(c.name, c.cluster, c.namespace, c.current) for c in answer.contexts] == [
        ("a", "a-cluster", "ns-a", True), ("b", "b-cluster", "ns-b", False)]
    assert answer.current_context == "a" and answer.default_context == "b" and not answer.in_cluster
    text = answer.model_dump_json()
    assert api_a.url not in text and str(kc) not in text and "password" not in text


async def test_list_contexts_tool(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path]) -> None:
    api_a, _, kc = two_clusters
    async with Client(build_server()) as client:
        result = await client.call_tool("list_contexts", {})
    assert not result.is_error
    data = result.structured_content
    assert [c["name"] for c in data["contexts"]] == ["a", "b"] and data["default_context"] == "a"
    text = json.dumps(data) + " ".join(getattr(c, "text", "") for c in result.content)
    assert api_a.url not in text and str(kc) not in text


# --------------------------------------------------------------------------- every cluster scan honours it


@pytest.mark.parametrize(("env_context", "request_context", "expected"),
                         [(None, None, "a"), ("b", None, "b"), ("b", "a", "a")])
async def test_kubescape_binary_gets_the_context(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path], fake_bin: FakeBin,
                                                 monkeypatch: pytest.MonkeyPatch, env_context: str | None,
                                                 request_context: str | None, expected: str) -> None:
    _, _, kc = two_clusters
    settings = settings_with(monkeypatch, env_context)
    req = KubescapeRequest(engine="kubescape", kube_context=request_context)
    record = await run(settings, lambda s: s.start_kubescape(req))
    assert record.status is ScanState.succeeded, record.error
    (start,) = fake_bin.starts("kubescape")
    assert start["env"]["KUBECONFIG"] == str(kc)
    context_flag = start["argv"][start["argv"].index("--kube-context") + 1] if "--kube-context" in start["argv"] else None
    assert context_flag == (request_context or env_context)
    (cluster,) = [r for r in fake_bin.records() if r.get("event") == "cluster"]
    assert cluster["kube_context"] == expected


@pytest.mark.parametrize(("env_context", "request_context", "expected"),
                         [(None, None, "a"), ("b", None, "b"), ("b", "a", "a")])
async def test_builtin_engine_lists_the_chosen_cluster(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path],
                                                       monkeypatch: pytest.MonkeyPatch, env_context: str | None,
                                                       request_context: str | None, expected: str) -> None:
    api_a, api_b, _ = two_clusters
    settings = settings_with(monkeypatch, env_context)
    req = KubescapeRequest(engine="builtin", kube_context=request_context, target_type="control", target_names=["C-0057"])
    record = await run(settings, lambda s: s.start_kubescape(req))
    assert record.status is ScanState.succeeded, record.error
    used, unused = (api_a, api_b) if expected == "a" else (api_b, api_a)
    assert listed(used) and not listed(unused)


@pytest.mark.parametrize(("env_context", "request_context", "expected"),
                         [(None, None, "a"), ("b", None, "b"), ("b", "a", "a")])
async def test_kube_bench_jobs_run_on_the_chosen_cluster(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path],
                                                         monkeypatch: pytest.MonkeyPatch, env_context: str | None,
                                                         request_context: str | None, expected: str) -> None:
    api_a, api_b, _ = two_clusters
    settings = settings_with(monkeypatch, env_context)
    req = KubeBenchRequest(executor="job", kube_context=request_context, timeout_seconds=60)
    record = await run(settings, lambda s: s.start_kube_bench(req))
    assert record.engine == "kube-bench-job"
    used, unused = (api_a, api_b) if expected == "a" else (api_b, api_a)
    assert used.created_jobs and not unused.created_jobs
    assert [j["spec"]["template"]["spec"]["nodeName"] for j in used.created_jobs] == [f"{expected}-node"]


async def test_an_unknown_context_is_refused_before_anything_runs(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path],
                                                                  fake_bin: FakeBin, monkeypatch: pytest.MonkeyPatch) -> None:
    api_a, api_b, _ = two_clusters
    settings = settings_with(monkeypatch, None)
    async with ScanManager(settings) as manager:
        service = ScanService(manager, settings)
        for start in (lambda: service.start_kubescape(KubescapeRequest(engine="kubescape", kube_context="prod")),
                      lambda: service.start_kubescape(KubescapeRequest(engine="builtin", kube_context="prod")),
                      lambda: service.start_kube_bench(KubeBenchRequest(executor="job", kube_context="prod"))):
            with pytest.raises(InvalidRequest, match="kube_context: no context 'prod'"):
                await start()
    await anyio.sleep(0)
    assert fake_bin.starts() == [] and not api_a.requests and not api_b.requests
    settings = settings_with(monkeypatch, "staging")  # the operator's variable names a missing context
    async with ScanManager(settings) as manager:
        with pytest.raises(InvalidRequest, match="MCP_KSCAN_KUBE_CONTEXT='staging'"):
            await ScanService(manager, settings).start_kubescape(KubescapeRequest(engine="builtin"))


async def test_rest_contexts_route(two_clusters: tuple[FakeKubeAPI, FakeKubeAPI, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The REST route, in-process (the app with its lifespan, through httpx's ASGI transport)."""
    from mcp_kscan.http_compat.app import build_app

    api_a, _, kc = two_clusters
    for name in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = settings_with(monkeypatch, "b")
    app = build_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=30) as client:
        r = await client.get("/api/v1/contexts")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["contexts"]] == ["a", "b"] and body["default_context"] == "b"
    assert api_a.url not in r.text and str(kc) not in r.text
