"""Results benchmark: GET /v1/results of a stored 77 KB Kubescape report under 100 connections.

    python benchmarks/bench_results.py [--seconds 30] [--connections 100] [--client wrk|python]
        [--report ../shared/fixtures/kubescape/defectdojo/results.json]
        [--database-url postgresql://…] [--workers N]

The goal (issue 19) is p99 <= 50 ms at 100 connections. Starts ``mcp-kscan serve --transport
http`` on a free loopback port with the fake Kubescape answering a real Kubescape report (77,721
bytes, the size of a small real one), stores one scan of it (``POST /v1/scan?wait=true&keep=true``),
checks that ``GET /v1/results?id=…&keep=true`` returns the stored bytes as they are (spliced into
Kubescape's envelope, never parsed and re-encoded), then hammers that URL. ``keep=true`` leaves the
result in place, so every request reads the same stored report.

With ``wrk`` on PATH (Debian package ``wrk``) the load comes from wrk (a Python client cannot keep
100 connections busy on two cores without measuring its own queueing); ``--client python`` uses an
asyncio httpx client instead. ``--database-url`` stores the results in PostgreSQL, and
``--workers N`` passes ``--workers N`` to ``serve`` (several processes on that database).
Prints requests/s, p50/p99 latency, errors and the server's RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx

from bench_load import _wrk_stats, database, rss_kib, serving

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
DEFAULT_REPORT = ROOT.parent / "shared" / "fixtures" / "kubescape" / "defectdojo" / "results.json"


def install_fake_kubescape(tmp: Path, report: Path) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    body = (FAKES / "kubescape").read_text().split("\n", 1)[1]
    (bin_dir / "kubescape").write_text(f"#!{sys.executable}\n{body}")
    (bin_dir / "kubescape").chmod(0o755)
    (bin_dir / "fake-scanner.json").write_text(json.dumps({"FAKE_KUBESCAPE_REPORT": str(report)}))
    return {
        "MCP_KSCAN_KUBESCAPE_PATH": str(bin_dir / "kubescape"),
        "MCP_KSCAN_DATA_DIR": str(tmp / "data"),
        "MCP_KSCAN_LOG_LEVEL": "WARNING",
        "MCP_KSCAN_SHUTDOWN_GRACE": "0",
    }


@contextmanager
def server_with_report(report: Path, database_url: str | None, workers: int) -> Iterator[tuple[int, str, str, bytes]]:
    """The server under test holding one stored scan of ``report``: yields (pid, base URL, scan id, stored bytes)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-results-"))
    env = {**os.environ, **install_fake_kubescape(tmp, report)}
    env.pop("MCP_KSCAN_TOKEN", None)
    if database_url:
        env["MCP_KSCAN_DATABASE_URL"] = database_url
    with serving(env, tmp, workers) as (server, base), httpx.Client(base_url=base, timeout=60) as http:
        stored = http.post("/v1/scan", params={"wait": "true", "keep": "true"}, json={})
        stored.raise_for_status()
        scan_id = stored.json()["id"]
        answer = http.get("/v1/results", params={"id": scan_id, "keep": "true"})
        answer.raise_for_status()
        head = b'{"id":' + json.dumps(scan_id).encode() + b',"type":"v1results","response":'
        assert answer.content.startswith(head) and answer.content.endswith(b"}"), answer.content[:200]
        raw = answer.content[len(head):-1]
        # The bytes served are the bytes the scanner wrote, not a re-encoding of them.
        assert raw == report.read_bytes().strip(), "the stored report was not served as it was written"
        yield server.pid, base, scan_id, raw


def _print(kind: str, connections: int, seconds: float, stats: dict[str, float], size: int, rss: list[int]) -> None:
    print(f"\nGET /v1/results?id=…&keep=true of a stored {size:,}-byte report: {connections} connections ({kind}),"
          f" {seconds:g} s, loopback\n")
    print(f"{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    print(f"{stats['requests']:>10.0f}{stats['rps']:>9.0f}{stats['p50']:>9.1f}{stats['p99']:>9.1f}{stats['errors']:>8.0f}")
    print(f"\nserver RSS: start {rss[0] / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB"
          " (the first process; --workers adds its own)")
    verdict = "meets" if stats["p99"] <= 50 and not stats["errors"] else "misses"
    print(f"goal p99 <= 50 ms: {verdict}")


def run_wrk(report: Path, seconds: float, connections: int, database_url: str | None, workers: int) -> int:
    with server_with_report(report, database_url, workers) as (pid, base, scan_id, raw):
        threads = max(1, min(4, os.cpu_count() or 1))
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", "-d", f"{max(1, int(seconds))}s", "--latency",
               f"{base}/v1/results?id={scan_id}&keep=true"]
        rss = [rss_kib(pid)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        while proc.poll() is None:
            time.sleep(0.5)
            rss.append(rss_kib(pid))
        out = proc.communicate()[0]
        stats = _wrk_stats(out)
    _print("wrk", connections, seconds, stats, len(raw), rss)
    return 1 if stats["errors"] else 0


async def run_python(report: Path, seconds: float, connections: int, database_url: str | None, workers: int) -> int:
    with server_with_report(report, database_url, workers) as (pid, base, scan_id, raw):
        latencies: list[float] = []
        errors = 0
        rss = [rss_kib(pid)]
        url = f"{base}/v1/results"
        params = {"id": scan_id, "keep": "true"}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            deadline = anyio.current_time() + seconds

            async def client() -> None:
                nonlocal errors
                while anyio.current_time() < deadline:
                    t0 = time.perf_counter()
                    try:
                        r = await http.get(url, params=params)
                        ok = r.status_code == 200 and len(r.content) > len(raw)
                    except httpx.HTTPError:
                        ok = False
                    latencies.append(time.perf_counter() - t0)
                    errors += not ok

            async with anyio.create_task_group() as tg:
                for _ in range(connections):
                    tg.start_soon(client)
        rss.append(rss_kib(pid))
    latencies.sort()
    stats = {
        "requests": float(len(latencies)),
        "rps": len(latencies) / seconds,
        "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0,
        "errors": float(errors),
    }
    _print("python httpx", connections, seconds, stats, len(raw), rss)
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="a Kubescape JSON report to store and serve")
    parser.add_argument("--database-url", help="store in PostgreSQL (MCP_KSCAN_DATABASE_URL) instead of SQLite")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N on PostgreSQL (--database-url, else a throw-away local cluster)")
    args = parser.parse_args()
    if not args.report.is_file():
        print(f"no report at {args.report} (../shared/fixtures absent?): pass --report FILE", file=sys.stderr)
        return 2
    with database(args.workers, args.database_url) as url:
        if args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")):
            return run_wrk(args.report, args.seconds, args.connections, url, args.workers)
        return anyio.run(run_python, args.report, args.seconds, args.connections, url, args.workers)


if __name__ == "__main__":
    sys.exit(main())
