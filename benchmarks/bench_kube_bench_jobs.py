"""Orchestration overhead of the kube-bench Job executor per node, against the fake API server.

    /work/venv/bin/python benchmarks/bench_kube_bench_jobs.py [--nodes 10,50,200] [--parallel 10] [--delay 0.05]

The fake kubelet finishes each pod ``--delay`` seconds after its Job is created, so the ideal
wall time is ``ceil(nodes / parallel) * delay``; what the scan takes beyond that, divided by the
node count, is our overhead per node (API calls, watch dispatch, log read, parse, delete, store).
Everything is real except the cluster: HTTP, the kubernetes client, the ScanManager, SQLite.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "fakes"))

from kube_api import Behaviour, FakeKubeAPI, node_object  # noqa: E402

from mcp_kscan import settings as kscan_settings  # noqa: E402
from mcp_kscan.executors.k8s_jobs import KubeBenchJobsScan  # noqa: E402
from mcp_kscan.runner.manager import ScanManager  # noqa: E402
from mcp_kscan.runner.records import ScanState  # noqa: E402
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest  # noqa: E402

SHARED_REPORT = REPO.parent / "shared" / "fixtures" / "kube-bench" / "defectdojo" / "kube-bench-controls.json"


def report_bytes() -> tuple[bytes, str]:
    """A real kube-bench report when ../shared is there (read in place), else a small one."""
    if SHARED_REPORT.is_file():
        return SHARED_REPORT.read_bytes(), "kube-bench-controls.json (122 checks)"
    check = ('{"test_number":"4.1.%d","test_desc":"d","audit":"a","type":"","remediation":"r","test_info":[],'
             '"status":"FAIL","actual_value":"","scored":true,"expected_result":"","reason":""}')
    results = ",".join(check % i for i in range(20))
    doc = ('{"Controls":[{"id":"4","version":"cis-1.10","text":"Worker","node_type":"node","tests":[{"section":"4.1",'
           '"desc":"files","results":[%s]}]}]}' % results)
    return doc.encode(), "built-in (20 checks)"


async def one_run(nodes: int, parallel: int, delay: float, log: bytes, workdir: Path) -> dict[str, float]:
    api = FakeKubeAPI(nodes=[node_object(f"node-{i:04d}") for i in range(nodes)],
                      default_behaviour=Behaviour(log=log), delay_s=delay).start()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        kc = api.write_kubeconfig(workdir / f"kc-{nodes}")
        data = workdir / f"data-{nodes}"
        data.mkdir(parents=True)
        os.environ["MCP_KSCAN_DATA_DIR"] = str(data)
        kscan_settings.configure(None)
        req = KubeBenchRequest(executor="job", kubeconfig=str(kc), all_nodes=True, max_parallel_jobs=parallel)
        started = time.perf_counter()
        async with ScanManager(kscan_settings.get_settings()) as manager:
            record = await manager.submit(KubeBenchJobsScan(req, kscan_settings.get_settings()))
            done = await manager.wait(record.scan_id, 600)
        wall = time.perf_counter() - started
        if done.status is not ScanState.succeeded:
            raise SystemExit(f"{nodes} nodes: scan {done.status.value}: {done.error}")
        ideal = math.ceil(nodes / parallel) * delay
        return {"wall": wall, "ideal": ideal, "overhead_ms": (wall - ideal) / nodes * 1000,
                "requests": len(api.requests) / nodes, "peak": api.peak_jobs}
    finally:
        api.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,50,200")
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.05, help="fake kubelet seconds per pod")
    args = parser.parse_args()
    log, what = report_bytes()
    print(f"kube-bench Job executor vs fake API: max_parallel_jobs={args.parallel}, pod time {args.delay:g} s, "
          f"log {what}, {os.cpu_count()} CPUs")
    print(f"{'nodes':>6} {'wall s':>8} {'ideal s':>8} {'overhead/node ms':>17} {'API req/node':>13} {'peak Jobs':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        anyio.run(one_run, 1, 1, 0.0, log, Path(tmp) / "warm")  # one-time imports and client set-up, not timed
        for n in (int(x) for x in args.nodes.split(",")):
            r = anyio.run(one_run, n, args.parallel, args.delay, log, Path(tmp))
            print(f"{n:>6} {r['wall']:>8.2f} {r['ideal']:>8.2f} {r['overhead_ms']:>17.1f} {r['requests']:>13.1f} "
                  f"{r['peak']:>10}")


if __name__ == "__main__":
    main()
