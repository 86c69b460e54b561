"""The ``auto`` executor decision: run kube-bench here, or as Jobs on the cluster's nodes?

kube-bench checks the machine it runs on. If this host is a node (a Kubernetes component
runs here: ``mcp_kscan.cluster.node_role``) a local run answers the question; otherwise (a laptop, a CI runner) only Jobs on
the nodes do, and that needs a cluster configuration. With neither, guessing would produce a
useless report, so the caller gets an error saying how to choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mcp_kscan.cluster import ClusterSource
from mcp_kscan.cluster.node_role import host_is_node
from mcp_kscan.errors import InvalidRequest
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.settings import Settings

Executor = Literal["local", "job"]

NO_EXECUTOR_MESSAGE = (
    "kube-bench checks the machine it runs on, and this host runs no kubelet or kube-apiserver, and no "
    "cluster configuration was found (no KUBECONFIG, "
    "~/.kube/config or in-cluster service account). Choose: executor='job' (the operator sets KUBECONFIG) to run "
    "kube-bench as Jobs on the cluster's nodes, or executor='local' to check this host anyway."
)


def choose_executor(
    req: KubeBenchRequest, settings: Settings, proc: Path = Path("/proc"), *, cluster: ClusterSource | None = None
) -> Executor:
    """``req.executor`` unless ``auto``; then local on a node, else job with a cluster config.

    Node selection fields (nodes, node_selector, all_nodes) only mean something for Jobs, so
    ``auto`` with one of them is ``job``. ``cluster`` is the resolver's answer for this request
    (``mcp_kscan.cluster.resolve_cluster``). An explicitly configured local binary
    (MCP_KSCAN_KUBE_BENCH_PATH) counts as the operator choosing ``local``.
    """
    if req.executor != "auto":
        return req.executor
    if req.nodes or req.node_selector or req.all_nodes:
        return "job"
    if host_is_node(proc):
        return "local"
    if settings.kube_bench_path:
        # The operator pointed this server at a kube-bench binary (MCP_KSCAN_KUBE_BENCH_PATH): that is
        # a decision to run it here. The local job still warns when no component runs on this host.
        # It also keeps a test suite that sets a fake binary from reaching a developer's real cluster.
        return "local"
    if cluster is not None:
        if req.config_dir:
            raise InvalidRequest(
                "config_dir", "is a path on this host, but auto chose executor='job' (no kubelet here); "
                "use executor='local' to run here with it"
            )
        return "job"
    raise InvalidRequest("executor", NO_EXECUTOR_MESSAGE)


__all__ = ["choose_executor", "host_is_node", "NO_EXECUTOR_MESSAGE"]
