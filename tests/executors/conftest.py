"""Fixtures for the kube-bench Job executor: the fake Kubernetes API and a kubeconfig for it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FAKES = Path(__file__).resolve().parents[1] / "fakes"
if str(FAKES) not in sys.path:
    sys.path.insert(0, str(FAKES))

from kube_api import Behaviour, FakeKubeAPI, node_object  # noqa: E402

import mcp_kscan.settings  # noqa: E402

DEFECTDOJO = Path("kube-bench", "defectdojo")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def kube_bench_json(shared_dir: Path) -> bytes:
    """A real kube-bench --json output (read in place from ../shared; skipped when absent)."""
    return (shared_dir / "fixtures" / DEFECTDOJO / "kube-bench-controls.json").read_bytes()


SMALL_REPORT = (
    b'{"Controls":[{"id":"4","version":"cis-1.10","detected_version":"1.30","text":"Worker Node Security '
    b'Configuration","node_type":"node","tests":[{"section":"4.1","desc":"Worker Node Configuration Files",'
    b'"results":[{"test_number":"4.1.1","test_desc":"Ensure that the kubelet service file permissions are set '
    b'to 600","audit":"stat -c %a /etc/systemd/system/kubelet.service.d/10-kubeadm.conf","type":"","remediation":'
    b'"chmod 600 ...","test_info":["chmod 600"],"status":"FAIL","actual_value":"644","scored":true,'
    b'"expected_result":"permissions has value 600","reason":""},{"test_number":"4.1.2","test_desc":"Ensure '
    b'that the kubelet service file ownership is set to root:root","audit":"stat -c %U:%G x","type":"",'
    b'"remediation":"chown","test_info":["chown"],"status":"PASS","actual_value":"root:root","scored":true,'
    b'"expected_result":"root:root","reason":""}],"pass":1,"fail":1,"warn":0,"info":0}],"total_pass":1,'
    b'"total_fail":1,"total_warn":0,"total_info":0}],"Totals":{"total_pass":1,"total_fail":1,"total_warn":0,'
    b'"total_info":0}}'
)
"""Our own small kube-bench report (one node control, 1 PASS + 1 FAIL): runs without ../shared."""


@pytest.fixture
def job_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mcp_kscan.settings.Settings]:
    """Settings with a tmp data dir, no kube-bench binary configured, no KUBECONFIG from the host."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(data))
    for name in ("MCP_KSCAN_KUBE_BENCH_PATH", "KUBECONFIG", "MCP_KSCAN_KUBE_BENCH_IMAGE",
                 "MCP_KSCAN_KUBE_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    mcp_kscan.settings.configure(None)
    try:
        yield mcp_kscan.settings.get_settings()
    finally:
        mcp_kscan.settings.configure(None)


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Iterator[Callable[..., tuple[FakeKubeAPI, Path]]]:
    """``make(nodes=[...], **kw)`` → (started fake API, kubeconfig path); stopped afterwards."""
    started: list[FakeKubeAPI] = []

    def make(nodes: list[dict[str, Any]] | None = None, **kw: Any) -> tuple[FakeKubeAPI, Path]:
        kw.setdefault("default_behaviour", Behaviour(log=SMALL_REPORT))
        api = FakeKubeAPI(nodes=nodes if nodes is not None else [
            node_object("cp-1", control_plane=True), node_object("worker-1"), node_object("worker-2")], **kw)
        api.start()
        started.append(api)
        return api, api.write_kubeconfig(tmp_path / f"kubeconfig-{len(started)}")

    yield make
    for api in started:
        api.stop()
