"""The controls the built-in engine evaluates: which kinds each applies to and which check decides it.

Everything a reader sees about a control (name, baseScore and severity, description, remediation,
category, frameworks) comes from the catalogue data file generated from Kubescape's regolibrary
(``mcp_kscan.catalogue``); this table only binds a control ID to its check. Adding a control is one
row here plus its check function.
"""

from __future__ import annotations

from mcp_kscan.catalogue.records import control_record
from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import rbac, workload as wl
from mcp_kscan.engine.controls.base import Check, Control, Verdict
from mcp_kscan.engine.model import RBAC_BINDING_KINDS, RBAC_ROLE_KINDS, WORKLOAD_KINDS, Resource

W = WORKLOAD_KINDS
B = RBAC_BINDING_KINDS
# Controls that do not need a pod's lifecycle (probes make no sense for run-to-completion Jobs).
LONG_RUNNING = frozenset({"Pod", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet"})
LABELLED = frozenset(W - {"Pod"}) | {"Pod"}


def dashboard_access(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014 looks at both workloads and bindings."""
    if res.kind in B:
        return rbac.dashboard_binding(res, ctx)
    return wl.dashboard_service_account(res, ctx)


def control(control_id: str, kinds: frozenset[str], check: Check) -> Control:
    """A control from its catalogue record plus the engine's kinds and check."""
    rec = control_record(control_id)
    return Control(
        id=rec.control_id, name=rec.name, score_factor=rec.base_score, frameworks=rec.frameworks,
        rule=rec.rules[0] if rec.rules else "", kinds=kinds, check=check,
        category=(rec.category, rec.category_id or "") if rec.category else None,
        description=rec.description, remediation=rec.remediation,
    )


IMPLEMENTED: tuple[tuple[str, frozenset[str], Check], ...] = (
    ("C-0002", B, rbac.exec_into_container),
    ("C-0004", W, wl.memory_limit_and_request),
    ("C-0007", B, rbac.data_destruction),
    ("C-0009", W, wl.resource_limits),
    ("C-0012", W | {"ConfigMap"}, wl.credentials_in_config),
    ("C-0013", W, wl.non_root_containers),
    ("C-0014", W | B, dashboard_access),
    ("C-0015", B, rbac.list_secrets),
    ("C-0016", W, wl.allow_privilege_escalation),
    ("C-0017", W, wl.immutable_filesystem),
    ("C-0018", LONG_RUNNING, wl.readiness_probe),
    ("C-0020", W, wl.cloud_credentials_mount),
    ("C-0030", W, wl.ingress_and_egress_blocked),
    ("C-0031", B, rbac.delete_events),
    ("C-0034", W | {"ServiceAccount"}, wl.automount_service_account),
    ("C-0035", B, rbac.administrative_role),
    ("C-0038", W, wl.host_pid_ipc),
    ("C-0041", W, wl.host_network),
    ("C-0044", W, wl.host_port),
    ("C-0045", W, wl.writable_host_path),
    ("C-0046", W, wl.insecure_capabilities),
    ("C-0048", W, wl.host_path_mount),
    ("C-0050", W, wl.cpu_limit_and_request),
    ("C-0054", frozenset({"Namespace"}), wl.namespace_without_network_policy),
    ("C-0055", W, wl.linux_hardening),
    ("C-0056", LONG_RUNNING, wl.liveness_probe),
    ("C-0057", W, wl.privileged_container),
    ("C-0061", W, wl.default_namespace),
    ("C-0062", W, wl.sudo_in_entrypoint),
    ("C-0063", B, rbac.port_forward),
    ("C-0065", B, rbac.impersonation),
    ("C-0073", frozenset({"Pod"}), wl.naked_pod),
    ("C-0074", W, wl.runtime_socket),
    ("C-0075", W, wl.image_pull_policy_latest),
    ("C-0076", LABELLED, wl.label_usage),
    ("C-0077", LABELLED, wl.k8s_common_labels),
    ("C-0187", RBAC_ROLE_KINDS, rbac.wildcard_role),
    ("C-0188", B, rbac.create_pods),
    ("C-0260", W, wl.missing_network_policy),
    ("C-0270", W, wl.cpu_limits),
    ("C-0271", W, wl.memory_limits),
)

CONTROLS: tuple[Control, ...] = tuple(control(cid, kinds, check) for cid, kinds, check in IMPLEMENTED)
