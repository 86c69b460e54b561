"""Managed-cluster detection and the per-node target plan for kube-bench Jobs.

Why: on EKS, GKE and AKS the control plane is not ours to inspect; only the ``node``,
``policies`` and ``managedservices`` targets can run, and the matching CIS benchmark is a
managed one (eks-*, gke-*, aks-*). kube-bench itself detects the platform from the API server's
GitVersion suffix (``v1.30.2-eks-…``, ``v1.31.1-gke.…``); AKS has no suffix, so its node labels
and providerID tell. The version → benchmark tables follow kube-bench's
``getPlatformBenchmarkVersion`` (see ../shared/notes/kube-bench-facts.md §1).

Cluster-wide targets (``policies``, ``managedservices``) check API objects, not the node: they
run once, on the first selected node (control-plane first), not N times.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_kscan.scanners.kube_bench_request import KubeBenchRun, KubeBenchTarget

MANAGED_TARGETS: tuple[KubeBenchTarget, ...] = ("node", "policies", "managedservices")
CLUSTER_WIDE_TARGETS = frozenset({"policies", "managedservices"})
CONTROL_PLANE_TARGETS = ["master", "controlplane", "etcd", "node"]
WORKER_TARGETS = ["node"]

_SUFFIX_RE = re.compile(r"-(eks|gke)[.-]", re.I)
_MINOR_RE = re.compile(r"^v?(\d+)\.(\d+)")


@dataclass(frozen=True)
class Platform:
    name: str
    """eks | gke | aks"""
    how: str
    """What gave it away, said to the user: e.g. API server version v1.30.2-eks-1234."""


@dataclass
class TargetPlan:
    targets: dict[str, list[str]] = field(default_factory=dict)
    """Node name → kube-bench targets for its Job."""
    benchmark: str | None = None
    """The benchmark picked for a managed cluster when the caller gave neither benchmark nor version."""
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def _minor(git_version: str) -> int | None:
    m = _MINOR_RE.match(git_version or "")
    return int(m.group(2)) if m and m.group(1) == "1" else None


def detect_platform(git_version: str, nodes: Sequence[dict[str, Any]]) -> Platform | None:
    """EKS/GKE from the GitVersion suffix, else EKS/GKE/AKS from node labels (AKS also providerID)."""
    m = _SUFFIX_RE.search(git_version or "")
    if m:
        return Platform(m.group(1).lower(), f"API server version {git_version}")
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        provider_id = (node.get("spec") or {}).get("providerID") or ""
        name = (node.get("metadata") or {}).get("name", "?")
        if any(k.startswith("kubernetes.azure.com/") for k in labels):
            return Platform("aks", f"node {name} labels (kubernetes.azure.com/…)")
        if provider_id.startswith("azure://") and "agentpool" in labels:
            return Platform("aks", f"node {name} providerID azure:// and agentpool label")
        if any(k.startswith("eks.amazonaws.com/") for k in labels):
            return Platform("eks", f"node {name} labels (eks.amazonaws.com/…)")
        if any(k.startswith("cloud.google.com/gke-") for k in labels):
            return Platform("gke", f"node {name} labels (cloud.google.com/gke-…)")
    return None


def managed_benchmark(platform: str, git_version: str) -> str:
    """kube-bench's own pick per platform and minor version."""
    minor = _minor(git_version) or 0
    if platform == "eks":
        return "eks-1.8.0" if minor >= 32 else "eks-1.7.0" if minor >= 29 else "eks-1.5.0"
    if platform == "gke":
        return "gke-1.9.0" if minor >= 31 else "gke-1.6.0"
    return "aks-1.7" if 29 <= minor <= 31 else "aks-1.8"


def plan_targets(
    req: KubeBenchRun, platform: Platform | None, nodes: Sequence[tuple[str, bool]], git_version: str = ""
) -> TargetPlan:
    """Targets per node (``nodes`` = (name, is control-plane), control-plane first) and the benchmark."""
    plan = TargetPlan()
    if not nodes:
        return plan
    requested = list(req.targets)
    if platform is not None:
        if requested:
            allowed = [t for t in requested if t in MANAGED_TARGETS]
            dropped = [t for t in requested if t not in MANAGED_TARGETS]
            if not allowed:
                plan.error = (
                    f"this is a managed {platform.name.upper()} cluster ({platform.how}): only the node, policies and "
                    f"managedservices targets can run there, not {', '.join(dropped)}"
                )
                return plan
            if dropped:
                plan.notes.append(
                    f"Skipped target(s) {', '.join(dropped)}: the control plane of a managed "
                    f"{platform.name.upper()} cluster cannot be inspected."
                )
            base = allowed
        else:
            base = list(MANAGED_TARGETS)
        if not (req.benchmark or req.version):
            plan.benchmark = managed_benchmark(platform.name, git_version)
            plan.notes.append(
                f"Managed {platform.name.upper()} cluster (detected from {platform.how}): ran benchmark "
                f"{plan.benchmark} with targets {', '.join(base)}; control-plane checks cannot run on a "
                "managed cluster."
            )
        else:
            plan.notes.append(f"Managed {platform.name.upper()} cluster (detected from {platform.how}).")
        for i, (name, _cp) in enumerate(nodes):
            plan.targets[name] = [t for t in base if i == 0 or t not in CLUSTER_WIDE_TARGETS]
        return plan
    if requested:
        for name, _cp in nodes:
            plan.targets[name] = list(requested)
        return plan
    for i, (name, cp) in enumerate(nodes):
        targets = list(CONTROL_PLANE_TARGETS if cp else WORKER_TARGETS)
        if i == 0:
            targets.append("policies")
        plan.targets[name] = targets
    return plan


__all__ = ["Platform", "TargetPlan", "detect_platform", "managed_benchmark", "plan_targets", "MANAGED_TARGETS"]
