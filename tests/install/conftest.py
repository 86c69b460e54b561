"""Helpers for the install-story tests: the CLI as a subprocess with a clean, isolated environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_TOOLS_BIN = REPO_ROOT / ".ci" / "node_tools" / "node_modules" / ".bin"


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """PATH and Python only: no MCP_KSCAN_*/KS_*/KUBECONFIG from the developer's shell, HOME in tmp."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**keep, "HOME": str(home), "XDG_DATA_HOME": str(home / ".local" / "share"), **extra}


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_kscan", *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
    )


_NPX_PROBES: dict[str, list[str] | str] = {}


def node_tool(bin_name: str, package: str) -> list[str]:
    """argv prefix for a Node CLI such as ``mcpb`` from ``@anthropic-ai/mcpb@2.1.2``.

    1. ``.ci/node_tools`` (what ``bash .ci/npm-tools.sh`` installs): works offline.
    2. else ``npx --yes --package PKG BIN`` (the npm cache, or the registry when online), probed once.
    Skips when npx is absent, or when the package can be neither found locally nor fetched.
    """
    if shutil.which("npx") is None or shutil.which("node") is None:
        pytest.skip("npx/node not installed")
    local = NODE_TOOLS_BIN / bin_name
    if local.exists():
        return [str(local)]
    if package not in _NPX_PROBES:
        argv = ["npx", "--yes", "--package", package, bin_name]
        try:
            probe = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=180)
            _NPX_PROBES[package] = argv if probe.returncode == 0 else f"npx could not run {package}: {probe.stderr[-300:]}"
        except subprocess.TimeoutExpired:
            _NPX_PROBES[package] = f"npx timed out fetching {package}"
    found = _NPX_PROBES[package]
    if isinstance(found, str):
        pytest.skip(f"{found} (run bash .ci/npm-tools.sh to install it into .ci/node_tools)")
    return found
