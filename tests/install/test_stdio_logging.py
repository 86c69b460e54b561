"""stdio hygiene: stdout carries JSON-RPC only; logs go to stderr, as text or (--log-format json) JSON lines.

The sessions are an older client's, by hand: a 2025-06-18 initialize, whose version the server
answers with, then tools/list and two scans (the fake Kubescape and kube-bench) over real stdio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import InProcessCli, make_fake_bin

from mcp_kscan.settings import Settings
from mcp_kscan.tools import TOOL_NAMES

from .conftest import REPO_ROOT, isolated_env

EXAMPLES = str(REPO_ROOT / "examples")


def _drive(argv: list[str], env: dict[str, str], timeout: float = 90) -> tuple[list[str], list[str]]:
    """initialize, tools/list, kubescape_scan (the fake binary), list_scans, kube_bench; then close stdin."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "install-test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "kubescape_scan", "arguments": {"paths": [EXAMPLES], "engine": "kubescape", "wait_seconds": 60}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "list_scans", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
            "name": "kube_bench", "arguments": {"wait_seconds": 20}}},
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_kscan", *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=REPO_ROOT,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    out_lines: list[str] = []
    try:
        # One request at a time: the next goes once the previous one has answered.
        for message in messages:
            proc.stdin.write((json.dumps(message) + "\n").encode())
            proc.stdin.flush()
            if "id" not in message:
                continue
            while True:
                line = proc.stdout.readline()
                assert line, "server closed stdout early"
                out_lines.append(line.decode())
                if json.loads(line).get("id") == message["id"]:
                    break
        proc.stdin.close()
        out_lines.extend(line.decode() for line in proc.stdout)  # anything written after the last answer
        proc.wait(30)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    return out_lines, b"".join(err_chunks).decode(errors="replace").splitlines()


def _check_stdout(out_lines: list[str]) -> dict[int, dict]:
    answers: dict[int, dict] = {}
    for line in out_lines:
        assert line.endswith("\n")
        msg = json.loads(line)  # a stray print would fail here
        assert msg.get("jsonrpc") == "2.0", line
        if "id" in msg:
            answers[msg["id"]] = msg
    assert answers[1]["result"]["protocolVersion"] == "2025-06-18"
    assert {t["name"] for t in answers[2]["result"]["tools"]} == set(TOOL_NAMES)
    call = answers[3]["result"]
    assert call.get("isError") is not True, call
    assert call["structuredContent"]["status"] == "succeeded", call["structuredContent"]
    assert answers[4]["result"]["structuredContent"]["total"] == 1
    bench = answers[5]["result"]
    assert bench.get("isError") is not True and bench["structuredContent"]["status"] == "succeeded", bench
    return answers


SECRET = "ks-access-key-0123456789abcdef"

# Two server starts (~1.5 CPU s each) serve the checks below, each a fresh server with its own
# data directory and fakes, both at DEBUG (the most that can leak) with a secret in the
# environment: the bare form `mcp-kscan --log-format json --log-level DEBUG` (JSON, the level
# from the command line), and `mcp-kscan serve` with MCP_KSCAN_LOG_LEVEL=DEBUG (text, the
# default; the level from the environment). That a bare `mcp-kscan`, as MCP hosts start it, is
# that same stdio server is checked in-process (test_bare_command_is_the_stdio_server).
RUNS: dict[str, tuple[list[str], dict[str, str]]] = {
    "bare-json-argv-debug": (["--log-format", "json", "--log-level", "DEBUG"], {"KS_ACCESS_KEY": SECRET}),
    "serve-text-env-debug": (["serve"], {"KS_ACCESS_KEY": SECRET, "MCP_KSCAN_LOG_LEVEL": "DEBUG"}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[list[str], list[str]]]:
    """``runs(name)``: stdout lines and stderr lines of that run, started on first use."""
    done: dict[str, tuple[list[str], list[str]]] = {}

    def get(name: str) -> tuple[list[str], list[str]]:
        if name not in done:
            argv, extra = RUNS[name]
            tmp = tmp_path_factory.mktemp(name)
            fake_bin = make_fake_bin(tmp)
            done[name] = _drive(argv, isolated_env(tmp, **fake_bin.env, **extra))
        return done[name]

    return get


def test_stdio_json_logs(runs) -> None:  # type: ignore[no-untyped-def]
    out_lines, err_lines = runs("bare-json-argv-debug")
    _check_stdout(out_lines)
    assert err_lines, "expected at least the scan's log lines on stderr"
    for line in err_lines:
        if not line.strip():
            continue
        entry = json.loads(line)  # every stderr line is one JSON object
        assert {"ts", "level", "logger", "msg"} <= set(entry), line
    assert any("succeeded" in json.loads(line)["msg"] for line in err_lines if line.strip())
    assert any(json.loads(line)["level"] == "DEBUG" for line in err_lines if line.strip())


def test_stdio_text_logs_by_default(runs) -> None:  # type: ignore[no-untyped-def]
    out_lines, err_lines = runs("serve-text-env-debug")
    _check_stdout(out_lines)
    scan_lines = [line for line in err_lines if "mcp_kscan" in line]
    assert scan_lines
    for line in scan_lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert " INFO " in line or " WARNING " in line or " DEBUG " in line or " ERROR " in line
    assert any(" DEBUG " in line for line in err_lines)  # MCP_KSCAN_LOG_LEVEL was read


@pytest.mark.parametrize("name", list(RUNS))
def test_secrets_never_reach_stderr(runs, name: str) -> None:  # type: ignore[no-untyped-def]
    out_lines, err_lines = runs(name)
    _check_stdout(out_lines)
    assert SECRET not in "\n".join(err_lines) and SECRET not in "".join(out_lines)


@pytest.mark.parametrize("argv, log_format", [([], "text"), (["--log-format", "json"], "json"), (["serve"], "text")])
def test_bare_command_is_the_stdio_server(argv: list[str], log_format: str, cli_main: InProcessCli,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`mcp-kscan` and `mcp-kscan --log-format json` (what MCP hosts launch) are `mcp-kscan serve`:
    the stdio server, with the logging asked for."""
    import mcp_kscan.server
    from mcp_kscan import cli

    served: list[Settings] = []
    logging_set_up: list[tuple[str, str]] = []
    monkeypatch.setattr(mcp_kscan.server, "run_stdio", served.append)
    monkeypatch.setattr(cli, "setup_logging", lambda level, fmt="text": logging_set_up.append((level, fmt)))
    done = cli_main(*argv, env=isolated_env(tmp_path, MCP_KSCAN_DATA_DIR=str(tmp_path / "data")))
    assert done.returncode == 0, done.stderr
    assert len(served) == 1 and served[0].data_dir == tmp_path / "data"
    assert logging_set_up == [("INFO", log_format)]
