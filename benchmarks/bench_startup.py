"""A server's start-up CPU: what each MCP session (stdio) and each `serve --transport http` costs.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 7]

- http: `mcp-kscan serve --transport http` on a free loopback port, with a fresh data dir; the
  server process's own CPU (user + system, from /proc/PID/stat) when /readyz first answers 200.
- stdio: `mcp-kscan serve` (what an MCP client launches); initialize, then tools/list; the
  server's CPU when the tools/list answer arrives (the tools are built on that first request).

Each figure is the best of ``--repeat`` starts: CPU time is not inflated much by other load, but
cache and scheduler noise on a shared machine only ever add. mcp_kscan's bytecode is written first
(``compileall``), as an installed wheel has it: an editable checkout under PYTHONDONTWRITEBYTECODE=1
would otherwise compile every module on every start. Linux only (/proc).

2026-12-02 (2 cores, loaded by other work; instruction counts from callgrind are steadier):
http 1.23 -> 1.00 CPU s, stdio 1.11 -> 1.04 CPU s; in instructions, what `serve --transport http`
does before it listens 4.36 G -> 3.65 G, and with the tools built (a stdio session's first
tools/list) 4.36 G -> 4.01 G. The MCP SDK's, uvicorn's and Starlette's imports are 2.80 G of it.
"""

from __future__ import annotations

import argparse
import compileall
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_start(data_dir: str) -> float:
    port = free_port()
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": data_dir}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve", "--transport", "http", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    return cpu_seconds(proc.pid)
            except OSError:
                pass
            time.sleep(0.02)
        raise SystemExit("the server was not ready within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def stdio_start(data_dir: str) -> float:
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": data_dir}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", "serve"],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    stdin, stdout = proc.stdin, proc.stdout
    assert stdin is not None and stdout is not None

    def ask(message: dict[str, object]) -> None:
        stdin.write((json.dumps(message) + "\n").encode())
        stdin.flush()

    try:
        ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
        if not stdout.readline():
            raise SystemExit("the stdio server closed its output")
        ask({"jsonrpc": "2.0", "method": "notifications/initialized"})
        ask({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        answer = json.loads(stdout.readline())
        used = cpu_seconds(proc.pid)
        if not answer.get("result", {}).get("tools"):
            raise SystemExit(f"tools/list answered {answer}")
        return used
    finally:
        stdin.close()
        proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    compileall.compile_dir(str(REPO / "mcp_kscan"), quiet=1)
    print(f"{'start':<8} {'best CPU s':>10}  all")
    for name, start in (("http", http_start), ("stdio", stdio_start)):
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-startup-") as data_dir:
                runs.append(start(data_dir))
        print(f"{name:<8} {min(runs):>10.2f}  {' '.join(f'{r:.2f}' for r in runs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
