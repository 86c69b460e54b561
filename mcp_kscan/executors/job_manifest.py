"""The kube-bench Job manifest for one node: a pure function, so tests can pin its exact shape.

Shaped like kube-bench's own ``job.yaml``/``job-master.yaml``/``job-node.yaml``: ``hostPID: true``
(kube-bench looks at the host's processes to find the components and their flags), read-only
hostPath mounts of the directories its audits read, ``restartPolicy: Never`` and
``backoffLimit: 0`` (a failed audit run is a result to report, not something to retry).
Differences, and why:
- one Job per node, pinned with ``nodeName`` (no scheduler involved: the Job runs on exactly
  that node even when it is cordoned);
- tolerations for the control-plane taints only on control-plane nodes;
- labels carrying the scan id, so every Job and Pod of a scan can be found and deleted;
- the command is built by the same adapter (``scanners.kube_bench_argv.build_argv``) as a local run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT_IMAGE = "docker.io/aquasec/kube-bench:v0.15.6"
"""kube-bench's own job.yaml pins this release; override with MCP_KSCAN_KUBE_BENCH_IMAGE."""

SCAN_ID_LABEL = "mcp-kscan.io/scan-id"
COMPONENT_LABEL = "app.kubernetes.io/name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
NODE_ANNOTATION = "mcp-kscan.io/node"
"""Node names may be 253 characters, longer than a label value may be: kept as an annotation."""

CONTROL_PLANE_TAINT_KEYS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
TTL_SECONDS_AFTER_FINISHED = 3600
"""The Kubernetes TTL controller removes a finished Job after an hour even if we could not."""

# (volume name, host path, mount path in the container) — all mounted read-only.
HOST_MOUNTS: tuple[tuple[str, str, str], ...] = (
    ("var-lib-etcd", "/var/lib/etcd", "/var/lib/etcd"),
    ("var-lib-kubelet", "/var/lib/kubelet", "/var/lib/kubelet"),
    ("var-lib-kube-scheduler", "/var/lib/kube-scheduler", "/var/lib/kube-scheduler"),
    ("var-lib-kube-controller-manager", "/var/lib/kube-controller-manager", "/var/lib/kube-controller-manager"),
    ("etc-systemd", "/etc/systemd", "/etc/systemd"),
    ("lib-systemd", "/lib/systemd", "/lib/systemd"),
    ("srv-kubernetes", "/srv/kubernetes", "/srv/kubernetes"),
    ("etc-kubernetes", "/etc/kubernetes", "/etc/kubernetes"),
    # kubectl/kubelet for version detection; this directory is on the image's PATH.
    ("usr-bin", "/usr/bin", "/usr/local/mount-from-host/bin"),
    ("etc-cni-netd", "/etc/cni/net.d", "/etc/cni/net.d"),
    ("opt-cni-bin", "/opt/cni/bin", "/opt/cni/bin"),
)


def job_name(scan_id: str, index: int) -> str:
    """``kube-bench-<first 8 of scan id>-<index>``: short (Job names feed the 63-char job-name label)."""
    return f"kube-bench-{scan_id[:8]}-{index}"


def scan_selector(scan_id: str) -> str:
    """The label selector that finds every Job and Pod of one scan."""
    return f"{SCAN_ID_LABEL}={scan_id}"


def control_plane_tolerations() -> list[dict[str, Any]]:
    return [{"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in CONTROL_PLANE_TAINT_KEYS]


def build_job_manifest(
    *,
    name: str,
    namespace: str,
    scan_id: str,
    node: str,
    command: Sequence[str],
    image: str = DEFAULT_IMAGE,
    control_plane: bool = False,
    ttl_seconds_after_finished: int = TTL_SECONDS_AFTER_FINISHED,
    active_deadline_seconds: int | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job that runs ``command`` (``["kube-bench", "run", ...]``) on ``node``."""
    labels = {
        SCAN_ID_LABEL: scan_id,
        COMPONENT_LABEL: "kube-bench",
        MANAGED_BY_LABEL: "mcp-kscan",
    }
    pod_spec: dict[str, Any] = {
        "hostPID": True,
        "nodeName": node,
        "restartPolicy": "Never",
        "automountServiceAccountToken": True,  # kube-bench reads the API server version in-cluster
        "containers": [
            {
                "name": "kube-bench",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": list(command),
                "volumeMounts": [
                    {"name": vol, "mountPath": mount, "readOnly": True} for vol, _, mount in HOST_MOUNTS
                ],
            }
        ],
        "volumes": [{"name": vol, "hostPath": {"path": host}} for vol, host, _ in HOST_MOUNTS],
    }
    if control_plane:
        pod_spec["tolerations"] = control_plane_tolerations()
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": ttl_seconds_after_finished,
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = max(1, int(active_deadline_seconds))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {NODE_ANNOTATION: node},
        },
        "spec": spec,
    }


__all__ = [
    "DEFAULT_IMAGE",
    "HOST_MOUNTS",
    "SCAN_ID_LABEL",
    "NODE_ANNOTATION",
    "build_job_manifest",
    "job_name",
    "scan_selector",
    "control_plane_tolerations",
]
