"""Kubescape's command line and environment for a validated ``KubescapeRequest``.

Facts this module relies on (kubescape cmd/scan, httphandler):
- ``scan framework <a,b|all> [paths…]`` and ``scan control <C-0001,…> [paths…]``; "all" (or no
  names) is the HTTP handler's ScanAll. ``--output F`` writes the report to F; logs go to stderr.
- Exit 1 means any error, *including* a failed ``--compliance-threshold``/``--severity-threshold``
  gate, and the report file is written before the gates run: exit 1 with a parseable report
  file is a finished scan.
- The access key is read from ``KS_ACCESS_KEY``; we never put it in argv (``ps`` shows argv to
  every local user).
"""


from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mcp_kscan.scanners.common import minimal_env
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.settings import Settings


def build_argv(
    req: KubescapeRequest, binary: str, output_file: str | Path, kube_context: str | None = None
) -> list[str]:
    """The argv for ``req``; the JSON report goes to ``output_file`` (a private per-scan path).

    ``kube_context`` is the context the cluster resolver chose (request, then MCP_KSCAN_KUBE_CONTEXT);
    the kubeconfig itself reaches Kubescape as ``KUBECONFIG`` (``build_env``), never as a flag a
    request could fill.
    """
    argv = [binary, "scan"]
    ref = req.workload_ref
    if ref is not None:
        kind, namespace, name = ref
        argv += ["workload", f"{kind}/{name}", "--namespace", namespace]
    elif req.target_type == "control":
        argv += ["control", ",".join(req.target_names)]
    elif req.scan_all:
        argv += ["framework", "all"]
    else:
        argv += ["framework", ",".join(req.target_names)]
    argv += req.paths
    argv += ["--format", "json", "--output", str(output_file)]
    if req.include_namespaces:
        argv += ["--include-namespaces", ",".join(req.include_namespaces)]
    if req.exclude_namespaces:
        argv += ["--exclude-namespaces", ",".join(req.exclude_namespaces)]
    if req.keep_local:
        argv.append("--keep-local")
    if req.use_cached_artifacts:
        argv += ["--use-artifacts-from", str(Path.home() / ".kubescape")]
    if kube_context:
        argv += ["--kube-context", kube_context]
    if req.controls_config:
        argv += ["--controls-config", req.controls_config]
    if req.exceptions:
        argv += ["--exceptions", req.exceptions]
    if req.compliance_threshold is not None:
        argv += ["--compliance-threshold", f"{req.compliance_threshold:g}"]
    if req.severity_threshold:
        argv += ["--severity-threshold", req.severity_threshold]
    if req.submit:
        argv.append("--submit")
    if req.account:
        argv += ["--account", req.account]
    return argv


def access_key_of(req: KubescapeRequest, settings: Settings) -> str | None:
    """The access key for the child: the request's, else the server's KS_ACCESS_KEY setting."""
    if req.access_key is not None:
        return req.access_key.get_secret_value()
    return settings.ks_access_key


def build_env(
    req: KubescapeRequest, settings: Settings, base: Mapping[str, str] | None = None, kubeconfig: str | None = None
) -> dict[str, str]:
    """The child's complete environment: minimal pass-through, the operator's kubeconfig, KS_ACCESS_KEY.

    ``kubeconfig`` is the resolver's (``ClusterSource.kubeconfig``); without one, the server's
    ``KUBECONFIG`` setting.
    """
    extra: dict[str, str | None] = {}
    if kubeconfig or settings.kubeconfig:
        extra["KUBECONFIG"] = kubeconfig or settings.kubeconfig
    key = access_key_of(req, settings)
    if key:
        extra["KS_ACCESS_KEY"] = key
    return minimal_env(base, extra)
