"""Finding the scanner executables: the MCP_KSCAN_*_PATH setting, else PATH."""

from __future__ import annotations

import os
import shutil
from typing import Literal

from mcp_kscan.errors import BinaryNotFound
from mcp_kscan.settings import Settings

ScannerName = Literal["kube-bench", "kubescape"]

ENV_VARS: dict[str, str] = {
    "kube-bench": "MCP_KSCAN_KUBE_BENCH_PATH",
    "kubescape": "MCP_KSCAN_KUBESCAPE_PATH",
}
RELEASES: dict[str, str] = {
    "kube-bench": "https://github.com/aquasecurity/kube-bench/releases",
    "kubescape": "https://github.com/kubescape/kubescape/releases",
}


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary(scanner: ScannerName, settings: Settings) -> str:
    """The absolute path of ``scanner``'s executable, or raise ``BinaryNotFound``.

    The message names the variable and the download page but not the configured path: the caller may be a remote
    agent, and server paths are not its business.
    """
    env_var = ENV_VARS[scanner]
    configured = getattr(settings, "kube_bench_path" if scanner == "kube-bench" else "kubescape_path")
    hint = f"install it from {RELEASES[scanner]} or set {env_var} to its path; run `mcp-kscan doctor` to check"
    if configured:
        if os.sep in configured:
            if _is_executable_file(configured):
                return os.path.abspath(configured)
            raise BinaryNotFound(f"{scanner}: {env_var} does not name an executable file; {hint}")
        found = shutil.which(configured)  # a bare command name: look it up on PATH
        if found:
            return os.path.abspath(found)
        raise BinaryNotFound(f"{scanner}: {env_var} names a command that is not on PATH; {hint}")
    found = shutil.which(scanner)
    if found:
        return os.path.abspath(found)
    raise BinaryNotFound(f"{scanner} is not installed (not on PATH and {env_var} is not set); {hint}")
