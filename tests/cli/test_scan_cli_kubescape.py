"""``mcp-kscan scan --engine kubescape|auto`` runs the real binary (here the fake) through the service.

The first test runs the real process (exit status, the stored scan); the others check the
command's logic through ``cli.main`` in this process (``cli_main``), with the same environment
and working directory.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import InProcessCli

REPO = Path(__file__).resolve().parents[2]


def _scan(fake_bin, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **fake_bin.env, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "scan", *args], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_engine_kubescape_runs_the_binary_and_stores_the_scan(fake_bin) -> None:  # type: ignore[no-untyped-def]
    done = _scan(fake_bin, "examples/", "--engine", "kubescape", "--framework", "nsa", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "summaryDetails" in report
    argv = fake_bin.starts("kubescape")[-1]["argv"][1:]
    assert argv[:3] == ["scan", "framework", "nsa"]
    assert str(REPO / "examples") in argv and "--format" in argv
    with sqlite3.connect(fake_bin.data_dir / "scans.db") as db:
        rows = db.execute("SELECT scanner, engine, status, origin FROM scans").fetchall()
    assert rows == [("kubescape", "kubescape", "succeeded", "cli")]


def _main(cli_main: InProcessCli, monkeypatch: pytest.MonkeyPatch, fake_bin, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(REPO)
    return cli_main("scan", *args, env={**os.environ, **fake_bin.env})


def test_auto_prefers_the_binary_and_builtin_ignores_it(fake_bin, cli_main: InProcessCli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    auto = _main(cli_main, monkeypatch, fake_bin, "examples/insecure.yaml", "--format", "json")
    assert auto.returncode == 0, auto.stderr
    assert len(fake_bin.starts("kubescape")) == 1
    builtin = _main(cli_main, monkeypatch, fake_bin, "examples/insecure.yaml", "--engine", "builtin", "--format", "json")
    assert builtin.returncode == 0
    assert json.loads(builtin.stdout)["metadata"]["engine"]["name"] == "mcp-kscan-builtin"
    assert len(fake_bin.starts("kubescape")) == 1


def test_kubescape_failure_is_one_line(fake_bin, cli_main: InProcessCli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="error")
    done = _main(cli_main, monkeypatch, fake_bin, "examples/", "--engine", "kubescape")
    assert done.returncode == 2
    assert done.stderr.startswith("mcp-kscan scan:") and len(done.stderr.strip().splitlines()) == 1
