"""``mcp-kscan fix`` as a user runs it: a real store, files on disk.

The write runs the real process (exit status 1, what a user sees); the diff, the re-run that
finds nothing left and the usage errors run ``cli.main`` in this process (``cli_main``: a CLI
start is 0.3-0.6 CPU s), with the same environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import InProcessCli

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "MCP_KSCAN_DATA_DIR": str(tmp_path / "data")}
    env.pop("MCP_KSCAN_ALLOWED_ROOTS", None)
    return env


def _fix(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_kscan", "fix", *args], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=600)


def test_diff_without_write_then_write_then_nothing_left_to_fix(tmp_path: Path, cli_main: InProcessCli) -> None:
    manifest = tmp_path / "insecure.yaml"
    shutil.copy(REPO / "examples/insecure.yaml", manifest)
    original = manifest.read_text()

    shown = cli_main("fix", str(manifest), "--control", "C-0041", "--control", "c-0057", env=_env(tmp_path))
    assert shown.returncode == 0, shown.stderr  # every failed finding of these controls has a verified fix
    assert shown.stdout.startswith(f"--- a/{str(manifest).lstrip('/')}\n+++ b/")
    assert '-      hostNetwork: on               # bad: YAML 1.1 "on" is true (C-0041)' in shown.stdout
    assert "fix(es) verified (run again with --write to apply)" in shown.stderr
    assert manifest.read_text() == original

    everything = _fix(tmp_path, str(manifest), "--write")
    assert everything.returncode == 1  # memory limits, probes, images: values only a person chooses
    assert "needs a value only you can choose" in everything.stderr and f"written: {manifest}" in everything.stderr
    text = manifest.read_text()
    assert "hostNetwork" not in text and "privileged: false       # bad" in text
    assert "# An intentionally insecure workload" in text

    again = cli_main("fix", str(manifest), "--control", "C-0041", "--control", "C-0057", "--write", env=_env(tmp_path))
    assert again.returncode == 0 and again.stdout == ""
    assert "0 failed finding(s)" in again.stderr


def test_usage_errors_exit_2(tmp_path: Path, cli_main: InProcessCli) -> None:
    missing = cli_main("fix", str(tmp_path / "nope"), env=_env(tmp_path))
    assert missing.returncode == 2 and "no such file or directory" in missing.stderr
    bad = cli_main("fix", str(REPO / "examples"), "--control", "C-57", env=_env(tmp_path))
    assert bad.returncode == 2 and bad.stderr.startswith("mcp-kscan fix:")
