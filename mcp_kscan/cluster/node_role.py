"""Is this host a Kubernetes node? One answer for doctor, kube-bench's warning and ``executor=auto``.

kube-bench audits the machine it runs on, so whether a local run means anything depends on which
Kubernetes components run here. They used to be three lists that disagreed (a k3s-only host was
a node for one and not for another; kube-proxy counted for one only). The one list: every
component kube-bench has checks for (control plane, etcd, kubelet, kube-proxy) and the all-in-one
distributions that embed them.
"""

from __future__ import annotations

from pathlib import Path

from mcp_kscan.hostinfo import running_process_names

NODE_COMPONENTS = frozenset({
    "kubelet", "kube-apiserver", "kube-controller-manager", "kube-controller", "kube-scheduler", "etcd",
    "kube-proxy",
    # all-in-one distributions: the kubelet and the API server live inside these processes
    "k3s", "k3s-server", "k3s-agent", "rke2", "k0s", "microk8s", "hyperkube",
})
"""Process names (``comm`` is cut to 15 characters: "kube-controller") that make this host a node."""


def running_components(proc: Path = Path("/proc")) -> list[str] | None:
    """The node components running here, sorted; None when ``proc`` cannot be read (cannot tell)."""
    names = running_process_names(proc)
    if names is None:
        return None
    found = names & NODE_COMPONENTS
    if "kube-controller-manager" in found:
        found.discard("kube-controller")
    return sorted(found)


def host_runs_kubernetes(proc: Path = Path("/proc")) -> bool | None:
    """True on a node, False on a host that runs no component, None when it cannot be told."""
    running = running_components(proc)
    return None if running is None else bool(running)


def host_is_node(proc: Path = Path("/proc")) -> bool:
    """``host_runs_kubernetes`` with "cannot tell" counted as "no" (``executor=auto`` then needs a cluster)."""
    return bool(host_runs_kubernetes(proc))


__all__ = ["NODE_COMPONENTS", "host_is_node", "host_runs_kubernetes", "running_components"]
