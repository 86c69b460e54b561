"""A server killed with SIGKILL during a Job scan: the next start deletes the Jobs it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
from kube_api import Behaviour

import mcp_kscan.settings
from mcp_kscan.runner.records import ScanState
from mcp_kscan.service import open_manager

pytestmark = pytest.mark.anyio

SERVER = textwrap.dedent(
    """
    import anyio
    from mcp_kscan.executors.k8s_jobs import KubeBenchJobsScan
    from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
    from mcp_kscan.service import open_manager
    from mcp_kscan.settings import get_settings

    async def main():
        async with open_manager(get_settings()) as manager:
            record = await manager.submit(KubeBenchJobsScan(KubeBenchRequest(executor="job"), get_settings()))
            print(record.scan_id, flush=True)
            await anyio.sleep(300)

    anyio.run(main)
    """
)


async def test_restart_deletes_jobs_of_an_interrupted_scan(job_settings, fake_cluster, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    api, kc = fake_cluster(default_behaviour=Behaviour("hang"))
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": str(job_settings.data_dir), "HOME": str(tmp_path / "home")}
    env["KUBECONFIG"] = str(kc)  # the operator's kubeconfig, for the killed server and the restarted one
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(kc=str(kc))], stdout=subprocess.PIPE, text=True, env=env)
    try:
        scan_id = server.stdout.readline().strip()  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while len(api.jobs()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(api.jobs()) == 3, "the killed server had not created its Jobs"
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(api.jobs()) == 3  # nobody cleaned up: the server died

    monkeypatch.setenv("KUBECONFIG", str(kc))
    mcp_kscan.settings.configure(None)
    async with open_manager(mcp_kscan.settings.get_settings()) as manager:
        assert (await manager.status(scan_id)).status is ScanState.interrupted
        with anyio.fail_after(20):
            while api.jobs():
                await anyio.sleep(0.05)
    assert api.jobs() == []
