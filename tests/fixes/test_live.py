"""Cluster findings: a JSON Patch of the live object and the API server's dry run, nothing applied."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

FAKES = Path(__file__).resolve().parents[1] / "fakes"
if str(FAKES) not in sys.path:
    sys.path.insert(0, str(FAKES))

from kube_api import FakeKubeAPI, namespace_object  # noqa: E402

import mcp_kscan.settings  # noqa: E402
from mcp_kscan.server import build_server  # noqa: E402

pytestmark = pytest.mark.anyio

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"hostNetwork": True, "containers": [
            {"name": "web", "image": "registry.example.com/shop/web:1.4.2", "securityContext": {"privileged": True}}]}}},
}


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeAPI]:
    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("MCP_KSCAN_KUBE_CONTEXT", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with FakeKubeAPI(objects=[namespace_object("shop"), copy.deepcopy(DEPLOYMENT)]) as fake:
        fake.write_kubeconfig(kubeconfig)
        mcp_kscan.settings.configure(None)
        yield fake
    mcp_kscan.settings.configure(None)


async def _fixes(client: Client, control_id: str) -> tuple[str, dict[str, Any]]:
    scan = await client.call_tool("kubescape_scan", {"engine": "builtin", "wait_seconds": 120})
    assert not scan.is_error and scan.structured_content["status"] == "succeeded", scan.content
    scan_id = scan.structured_content["scan_id"]
    page = await client.call_tool("propose_fix", {"scan_id": scan_id, "control_id": control_id})
    assert not page.is_error, page.content
    (fix,) = [f for f in page.structured_content["fixes"] if f["resource"]["name"] == "web"]
    return scan_id, fix


async def test_cluster_fix_is_a_patch_checked_by_a_dry_run(api: FakeKubeAPI) -> None:
    async with Client(build_server()) as client:
        scan_id, fix = await _fixes(client, "C-0057")
        assert fix["file"] is None and fix["diff"] is None
        assert fix["json_patch"] == [{"op": "replace", "value": False,
                                      "path": "/spec/template/spec/containers/0/securityContext/privileged"}]
        assert fix["verified"] is True
        assert fix["dry_run"] == {"accepted": True, "status": 200, "message": None}
        refused = await client.call_tool("apply_fix", {"scan_id": scan_id, "finding_ids": [fix["finding_id"]]})
        assert refused.structured_content["results"][0]["status"] == "refused"
        assert "nothing is applied to a cluster" in refused.structured_content["results"][0]["reason"]
    patches = [(path, dry) for path, dry, _ in api.patches]
    assert patches and all(dry == "All" for _, dry in patches)
    assert all(path.startswith("/apis/apps/v1/namespaces/shop/deployments/web?") for path, _ in patches)
    stored = api.get("Deployment", "web", "shop")
    assert stored is not None and stored["spec"] == DEPLOYMENT["spec"]  # the dry run stored nothing


async def test_admission_denial_is_reported(api: FakeKubeAPI) -> None:
    def no_host_network_removal(obj: dict[str, Any]) -> str | None:
        spec = obj["spec"]["template"]["spec"]
        return None if spec.get("hostNetwork") else "this workload must keep hostNetwork (policy net-001)"

    api.admission = no_host_network_removal
    async with Client(build_server()) as client:
        _, fix = await _fixes(client, "C-0041")
    assert fix["json_patch"] == [{"op": "remove", "path": "/spec/template/spec/hostNetwork"}]
    assert fix["verified"] is True  # the engine passes it; the cluster's own policy does not
    assert fix["dry_run"]["accepted"] is False and fix["dry_run"]["status"] == 403
    assert "policy net-001" in fix["dry_run"]["message"]
    assert api.get("Deployment", "web", "shop")["spec"]["template"]["spec"]["hostNetwork"] is True


def test_the_fake_refuses_other_dry_run_values(api: FakeKubeAPI) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(f"{api.url}/apis/apps/v1/namespaces/shop/deployments/web?dryRun=Yes",
                                 data=json.dumps([{"op": "remove", "path": "/spec/replicas"}]).encode(),
                                 method="PATCH", headers={"Content-Type": "application/json-patch+json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    assert api.get("Deployment", "web", "shop")["spec"]["replicas"] == 2
