"""One node's part of a kube-bench Jobs scan: what is known of the node, its Job's state, and
the verdict read from its Pod's status (the dispatcher in ``k8s_jobs`` feeds Pod events here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from mcp_kscan.executors import job_manifest as jm
from mcp_kscan.reports import KubeBenchReport

PULL_ERRORS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
                         "RegistryUnavailable"})
CONTAINER_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


# --------------------------------------------------------------------------- per-node state


@dataclass
class NodeInfo:
    name: str
    control_plane: bool
    ready: bool
    not_ready_reason: str | None = None


@dataclass
class NodeRun:
    """One node's Job and what became of it."""

    node: NodeInfo
    job_name: str
    targets: list[str]
    argv: list[str]
    status: str = "pending"
    """pending → running → succeeded | failed | timed_out | skipped."""
    error: str | None = None
    report: KubeBenchReport | None = None
    output: Any = None
    """kube-bench's decoded JSON for this node (the scan's raw output gathers them)."""
    pod_name: str | None = None
    verdict: str | None = None
    """Set by the dispatcher: done | exit | image | unschedulable | container | job_failed."""
    detail: str | None = None
    exit_code: int | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)

    def set_verdict(self, verdict: str, detail: str | None = None) -> None:
        if self.verdict is None:
            self.verdict = verdict
            self.detail = detail
            self.changed.set()


def node_info(node: dict[str, Any]) -> NodeInfo:
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    cp = any(k in labels for k in jm.CONTROL_PLANE_TAINT_KEYS)
    taints = (node.get("spec") or {}).get("taints") or []
    cp = cp or any(t.get("key") in jm.CONTROL_PLANE_TAINT_KEYS for t in taints)
    ready, reason = False, "no Ready condition reported"
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = cond.get("status") == "True"
            reason = f"{cond.get('reason') or 'NotReady'}: {cond.get('message') or ''}".strip(": ")
    return NodeInfo(name=meta.get("name", ""), control_plane=cp, ready=ready, not_ready_reason=None if ready else reason)


def judge_pod(run: NodeRun, pod: dict[str, Any]) -> None:
    """Turn a Pod's status into a verdict for its node (or none yet)."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    statuses = status.get("containerStatuses") or []
    if phase == "Succeeded":
        run.set_verdict("done")
        return
    if phase == "Failed":
        for cs in statuses:
            term = (cs.get("state") or {}).get("terminated")
            if term:
                run.exit_code = term.get("exitCode")
        if run.exit_code is None:
            run.set_verdict("job_failed", f"the pod failed ({status.get('reason')}: {status.get('message')})")
        else:
            run.set_verdict("exit")
        return
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in PULL_ERRORS and reason != "ErrImagePull":
            run.set_verdict("image", f"{reason}: {waiting.get('message') or ''}".strip(": "))
        elif reason in CONTAINER_ERRORS:
            run.set_verdict("container", f"the container could not start ({reason}: {waiting.get('message')})")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            run.set_verdict("unschedulable", cond.get("message") or "Unschedulable")
