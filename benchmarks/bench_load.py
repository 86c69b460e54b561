"""Load benchmark: status reads while 4 scans run.

    python benchmarks/bench_load.py [--seconds 30] [--clients 100] [--client wrk|python]
                                    [--workers N [--database-url postgresql://...]]

``--workers N`` runs ``mcp-kscan serve --workers N`` on PostgreSQL: the URL given (or
MCP_KSCAN_DATABASE_URL), else a throw-away PostgreSQL 15 cluster started like the tests' one
(tests/pgcluster.py; it needs /usr/lib/postgresql/15/bin). MCP then runs stateless: the clients'
``initialize`` gets no session and each call stands alone. RSS is the sum over the workers.

With ``wrk`` on PATH (Debian package ``wrk``) the load comes from three wrk processes, one per
endpoint, splitting the clients between them: a Python load client cannot keep 100 connections
busy on a 2-core machine without becoming the bottleneck itself (it measured its own queueing:
100% CPU against the server's 40%). ``--client python`` keeps the pure-Python client.

Starts ``mcp-kscan serve --transport http`` on a free loopback port with the fake scanners
(tests/fakes) sleeping for the whole run and MCP_KSCAN_MAX_CONCURRENT_SCANS=4, starts 4 scans,
then runs N concurrent clients, each cycling through GET /v1/status, GET /v1/results?id=<a
running scan> and the MCP tool scan_status (one MCP session per client), for the given time.
Prints requests/s, p50/p99 latency and errors per endpoint, and the server's RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def install_fakes(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for name in ("kube-bench", "kubescape"):
        body = (FAKES / name).read_text().split("\n", 1)[1]
        (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
        (bin_dir / name).chmod(0o755)
    (bin_dir / "fake-scanner.json").write_text(json.dumps({"FAKE_SCANNER_SLEEP": "3600"}))
    return {
        "MCP_KSCAN_KUBESCAPE_PATH": str(bin_dir / "kubescape"),
        "MCP_KSCAN_KUBE_BENCH_PATH": str(bin_dir / "kube-bench"),
        "MCP_KSCAN_DATA_DIR": str(tmp / "data"),
        "MCP_KSCAN_MAX_CONCURRENT_SCANS": "4",
        "MCP_KSCAN_SHUTDOWN_GRACE": "0",
        "MCP_KSCAN_KILL_GRACE": "0.5",
        "MCP_KSCAN_LOG_LEVEL": "WARNING",
    }


def tree_rss_kib(pid: int) -> int:
    """RSS of ``pid`` and its children (the workers of ``--workers N``)."""
    total = rss_kib(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    for child in children:
        try:
            total += rss_kib(int(child))
        except OSError:
            pass
    return total


async def mcp_session(client: httpx.AsyncClient, base: str) -> dict[str, str]:
    """The headers of a 2025-06-18 session: with a session id, or none when the server is stateless."""
    init = await client.post(base + "/mcp", headers=MCP_HEADERS, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    init.raise_for_status()
    headers = {**MCP_HEADERS, "mcp-protocol-version": "2025-06-18"}
    if "mcp-session-id" in init.headers:
        headers["mcp-session-id"] = init.headers["mcp-session-id"]
    await client.post(base + "/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return headers


@contextmanager
def database(workers: int, url: str | None) -> Iterator[str | None]:
    """The PostgreSQL URL for ``--workers`` above 1: the one given, else a throw-away cluster."""
    if workers <= 1 or url:
        yield url
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from pgcluster import PostgresCluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"bench_load: --workers {workers} needs PostgreSQL: {reason} (or pass --database-url)")
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.new_database()
    finally:
        cluster.stop()


@contextmanager
def loaded_server(workers: int = 1, database_url: str | None = None
                  ) -> Iterator[tuple[subprocess.Popen[bytes], str, list[str]]]:
    """The server under test with 4 scans running: yields (process, base URL, scan ids)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = {**os.environ, **install_fakes(tmp)}
    env.pop("MCP_KSCAN_TOKEN", None)
    env.pop("MCP_KSCAN_DATABASE_URL", None)
    if database_url:
        env["MCP_KSCAN_DATABASE_URL"] = database_url
    with serving(env, tmp, workers) as (server, base), httpx.Client(base_url=base, timeout=10) as http:
        ids = [http.post("/v1/scan", json={"targetNames": [n]}).json()["id"]
               for n in ("nsa", "mitre", "allcontrols", "cis-v1.10.0")]
        # Every worker must see all four running (claims from the shared queue take a moment).
        for _ in range(100):
            time.sleep(0.2)
            if all(http.get("/v1/status", params={"id": i}, headers={"Connection": "close"}).json()["type"]
                   == "busy" for i in ids):
                break
        busy = http.get("/v1/status").json()
        assert busy["type"] == "busy", busy
        yield server, base, ids


@contextmanager
def serving(env: dict[str, str], tmp: Path, workers: int = 1) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``mcp-kscan serve --transport http`` on a free port, ready (``/readyz``) when this yields
    (process, base URL); stopped, and ``tmp`` removed, afterwards. Its log is ``tmp/server.log``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"), cwd=ROOT)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            for _ in range(300):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(f"the server exited: {(tmp / 'server.log').read_text()[-2000:]}")
                time.sleep(0.1)
        yield server, base
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)


async def run(seconds: float, clients: int, workers: int = 1, database_url: str | None = None) -> int:
    with loaded_server(workers, database_url) as (server, base, ids):
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=clients + 10)) as http:
            samples: dict[str, list[float]] = {"GET /v1/status": [], "GET /v1/results": [], "MCP scan_status": []}
            errors: dict[str, int] = dict.fromkeys(samples, 0)
            rss: list[int] = [tree_rss_kib(server.pid)]
            deadline = anyio.current_time() + seconds

            async def sampler() -> None:
                while anyio.current_time() < deadline:
                    await anyio.sleep(0.5)
                    rss.append(tree_rss_kib(server.pid))

            async def worker(i: int) -> None:
                mcp_headers = await mcp_session(http, base)
                n = i
                while anyio.current_time() < deadline:
                    kind = list(samples)[n % 3]
                    scan_id = ids[n % 4]
                    n += 1
                    t0 = time.perf_counter()
                    try:
                        if kind == "GET /v1/status":
                            r = await http.get(base + "/v1/status", params={"id": scan_id})
                            ok = r.status_code == 200 and r.json()["type"] == "busy"
                        elif kind == "GET /v1/results":
                            r = await http.get(base + "/v1/results", params={"id": scan_id})
                            ok = r.status_code == 200 and r.json()["type"] == "busy"
                        else:
                            r = await http.post(base + "/mcp", headers=mcp_headers, json={
                                "jsonrpc": "2.0", "id": n, "method": "tools/call",
                                "params": {"name": "scan_status", "arguments": {"scan_id": scan_id}}})
                            ok = r.status_code == 200 and '"running"' in r.text and '"isError":true' not in r.text
                    except httpx.HTTPError:
                        ok = False
                    samples[kind].append(time.perf_counter() - t0)
                    if not ok:
                        errors[kind] += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(sampler)
                for i in range(clients):
                    tg.start_soon(worker, i)
            rss.append(tree_rss_kib(server.pid))

    print(f"\n{clients} clients, {seconds:g} s, {_shape(workers)}, 4 scans running (MCP_KSCAN_MAX_CONCURRENT_SCANS=4),"
          " loopback\n")
    print(f"{'endpoint':<18}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    total_err = 0
    for kind, lat in samples.items():
        lat.sort()
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
        total_err += errors[kind]
        print(f"{kind:<18}{len(lat):>10}{len(lat) / seconds:>9.0f}{p50:>9.1f}{p99:>9.1f}{errors[kind]:>8}")
    n = sum(len(v) for v in samples.values())
    print(f"{'all':<18}{n:>10}{n / seconds:>9.0f}{'':>18}{total_err:>8}")
    print(f"\nserver RSS: start {rss[0] / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB")
    return 1 if total_err else 0


def _shape(workers: int) -> str:
    return f"{workers} workers on PostgreSQL" if workers > 1 else "one process"


WRK_MCP_LUA = """
local counter = 0
setup = function(thread)
  thread:set("sid", table.remove(sessions, 1))
end
init = function(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.headers["mcp-protocol-version"] = "2025-06-18"
  if sid ~= "" then
    wrk.headers["mcp-session-id"] = sid
  end
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"scan_status","arguments":{"scan_id":"%s"}}}',
    counter, scan_id)
  return wrk.format(nil, "/mcp", nil, body)
end
"""


def _wrk_stats(text: str) -> dict[str, float]:
    """Requests/s, p50/p99 (ms) and errors from ``wrk --latency`` output."""
    def ms(token: str) -> float:
        for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)):
            if token.endswith(unit):
                return float(token[: -len(unit)]) * factor
        return float(token)

    stats = {"requests": 0.0, "rps": 0.0, "p50": 0.0, "p99": 0.0, "errors": 0.0}
    for line in text.splitlines():
        parts = line.split()
        if line.strip().startswith("50%"):
            stats["p50"] = ms(parts[1])
        elif line.strip().startswith("99%"):
            stats["p99"] = ms(parts[1])
        elif line.startswith("Requests/sec:"):
            stats["rps"] = float(parts[1])
        elif "requests in" in line:
            stats["requests"] = float(parts[0])
        elif line.strip().startswith("Non-2xx"):
            stats["errors"] += float(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            stats["errors"] += sum(float(p.strip(",")) for p in parts if p.strip(",").isdigit())
    return stats


def run_wrk(seconds: float, clients: int, workers: int = 1, database_url: str | None = None) -> int:
    """The same scenario, with wrk generating the load (one process per endpoint)."""
    share = [clients - 2 * (clients // 3), clients // 3, clients // 3]
    with loaded_server(workers, database_url) as (server, base, ids), \
            tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        with httpx.Client(base_url=base, timeout=10) as http:
            sessions = []
            for _ in range(share[2]):
                init = http.post("/mcp", headers=MCP_HEADERS, json={
                    "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                        "protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": {"name": "bench", "version": "1"}}})
                sid = init.headers.get("mcp-session-id", "")  # none from a stateless server (--workers)
                http.post("/mcp", headers={**MCP_HEADERS, "mcp-protocol-version": "2025-06-18",
                                           **({"mcp-session-id": sid} if sid else {})},
                          json={"jsonrpc": "2.0", "method": "notifications/initialized"})
                sessions.append(sid)
            lua = Path(scratch) / "mcp.lua"
            lua.write_text(
                "sessions = {" + ",".join(f'"{s}"' for s in sessions) + "}\n"
                + f'scan_id = "{ids[0]}"\n' + WRK_MCP_LUA
            )
            duration = f"{max(1, int(seconds))}s"
            commands = {
                "GET /v1/status": ["wrk", "-t1", f"-c{share[0]}", "-d", duration, "--latency",
                                   f"{base}/v1/status?id={ids[0]}"],
                "GET /v1/results": ["wrk", "-t1", f"-c{share[1]}", "-d", duration, "--latency",
                                    f"{base}/v1/results?id={ids[1]}"],
                "MCP scan_status": ["wrk", f"-t{share[2]}", f"-c{share[2]}", "-d", duration, "--latency",
                                    "-s", str(lua), base],
            }
            rss = [tree_rss_kib(server.pid)]
            procs = {k: subprocess.Popen(v, stdout=subprocess.PIPE, text=True) for k, v in commands.items()}
            end = time.monotonic() + seconds + 5
            while any(p.poll() is None for p in procs.values()) and time.monotonic() < end + 30:
                time.sleep(0.5)
                rss.append(tree_rss_kib(server.pid))
            outputs = {k: p.communicate(timeout=30)[0] for k, p in procs.items()}
            # wrk does not read bodies: check the answers are still right after the run.
            assert http.get("/v1/status", params={"id": ids[0]}).json()["type"] == "busy"
            rss.append(tree_rss_kib(server.pid))

    print(f"\n{clients} connections (wrk), {seconds:g} s, {_shape(workers)}, 4 scans running"
          " (MCP_KSCAN_MAX_CONCURRENT_SCANS=4), loopback\n")
    print(f"{'endpoint':<18}{'conns':>6}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    total_err = 0.0
    for (kind, out), conns in zip(outputs.items(), share, strict=True):
        st = _wrk_stats(out)
        total_err += st["errors"]
        print(f"{kind:<18}{conns:>6}{st['requests']:>10.0f}{st['rps']:>9.0f}{st['p50']:>9.1f}{st['p99']:>9.1f}"
              f"{st['errors']:>8.0f}")
    print(f"\nserver RSS: start {rss[0] / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB")
    return 1 if total_err else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--workers", type=int, default=1, help="server processes (above 1: on PostgreSQL)")
    parser.add_argument("--database-url", default=os.environ.get("MCP_KSCAN_DATABASE_URL"),
                        help="PostgreSQL for --workers (default: a throw-away local cluster)")
    args = parser.parse_args()
    with database(args.workers, args.database_url) as url:
        if args.client == "wrk" or (args.client == "auto" and shutil.which("wrk")):
            return run_wrk(args.seconds, args.clients, args.workers, url)
        return anyio.run(run, args.seconds, args.clients, args.workers, url)


if __name__ == "__main__":
    sys.exit(main())
