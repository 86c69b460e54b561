"""Finding the executables the server runs: the MCP_KSCAN_*_PATH setting, else PATH.

The scanners (kube-bench, Kubescape) and the renderers the built-in engine uses for Kustomize
directories (kubectl) and Helm charts (helm) are found the same way.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Literal

from mcp_kscan.errors import BinaryNotFound
from mcp_kscan.settings import Settings

if TYPE_CHECKING:
    from mcp_kscan.engine.render import Renderers

ScannerName = Literal["kube-bench", "kubescape", "kubectl", "helm"]

ENV_VARS: dict[str, str] = {
    "kube-bench": "MCP_KSCAN_KUBE_BENCH_PATH",
    "kubescape": "MCP_KSCAN_KUBESCAPE_PATH",
    "kubectl": "MCP_KSCAN_KUBECTL_PATH",
    "helm": "MCP_KSCAN_HELM_PATH",
}
SETTING_NAMES: dict[str, str] = {
    "kube-bench": "kube_bench_path", "kubescape": "kubescape_path", "kubectl": "kubectl_path", "helm": "helm_path",
}
RELEASES: dict[str, str] = {
    "kube-bench": "https://github.com/aquasecurity/kube-bench/releases",
    "kubescape": "https://github.com/kubescape/kubescape/releases",
    "kubectl": "https://kubernetes.io/docs/tasks/tools/",
    "helm": "https://github.com/helm/helm/releases",
}


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_binary(scanner: ScannerName, settings: Settings) -> str:
    """The absolute path of ``scanner``'s executable, or raise ``BinaryNotFound``.

    The message names the variable and the download page but not the configured path: the caller may be a remote
    agent, and server paths are not its business.
    """
    env_var = ENV_VARS[scanner]
    configured = getattr(settings, SETTING_NAMES[scanner])
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


def optional_binary(name: ScannerName, settings: Settings) -> str | None:
    """``find_binary`` for tools a scan can do without (the renderers): None when absent."""
    try:
        return find_binary(name, settings)
    except BinaryNotFound:
        return None


def find_renderers(settings: Settings) -> Renderers:
    """What the built-in engine renders Kustomize directories and Helm charts with (None: not rendered)."""
    from mcp_kscan.engine.render import Renderers

    return Renderers(kubectl=optional_binary("kubectl", settings), helm=optional_binary("helm", settings))
