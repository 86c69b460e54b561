"""stdio hygiene: stdout carries JSON-RPC only; logs go to stderr, as text or (--log-format json) JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mcp_kscan.tools import TOOL_NAMES

from .conftest import REPO_ROOT, isolated_env

EXAMPLES = str(REPO_ROOT / "examples")


def _drive(argv: list[str], env: dict[str, str], timeout: float = 90) -> tuple[list[str], list[str]]:
    """initialize, tools/list, kubescape_scan (the fake binary), list_scans; then close stdin."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "install-test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "kubescape_scan", "arguments": {"paths": [EXAMPLES], "engine": "kubescape", "wait_seconds": 60}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "list_scans", "arguments": {}}},
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
    assert {t["name"] for t in answers[2]["result"]["tools"]} == set(TOOL_NAMES)
    call = answers[3]["result"]
    assert call.get("isError") is not True, call
    assert call["structuredContent"]["status"] == "succeeded", call["structuredContent"]
    assert answers[4]["result"]["structuredContent"]["total"] == 1
    return answers


@pytest.mark.parametrize("argv", [["serve", "--log-format", "json"], ["--log-format", "json"], ["serve", "--log-format", "json", "--log-level", "DEBUG"]])
def test_stdio_json_logs(fake_bin, tmp_path: Path, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    env = isolated_env(tmp_path, **fake_bin.env)
    out_lines, err_lines = _drive(argv, env)
    _check_stdout(out_lines)
    assert err_lines, "expected at least the scan's log lines on stderr"
    for line in err_lines:
        if not line.strip():
            continue
        entry = json.loads(line)  # every stderr line is one JSON object
        assert {"ts", "level", "logger", "msg"} <= set(entry), line
    assert any("succeeded" in json.loads(line)["msg"] for line in err_lines if line.strip())
    if "DEBUG" in argv:
        assert any(json.loads(line)["level"] == "DEBUG" for line in err_lines if line.strip())


def test_stdio_text_logs_by_default(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = isolated_env(tmp_path, **fake_bin.env)
    out_lines, err_lines = _drive([], env)  # bare `mcp-kscan`, as MCP hosts start it
    _check_stdout(out_lines)
    scan_lines = [line for line in err_lines if "mcp_kscan" in line]
    assert scan_lines
    for line in scan_lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert " INFO " in line or " WARNING " in line or " DEBUG " in line or " ERROR " in line


def test_secrets_never_reach_stderr(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = "ks-access-key-0123456789abcdef"
    env = isolated_env(tmp_path, **fake_bin.env, KS_ACCESS_KEY=secret, MCP_KSCAN_LOG_LEVEL="DEBUG")
    out_lines, err_lines = _drive(["serve", "--log-format", "json"], env)
    _check_stdout(out_lines)
    assert secret not in "\n".join(err_lines) and secret not in "".join(out_lines)
