"""The controls the built-in engine evaluates: which kinds each judges and which check decides it.

Everything a reader sees about a control (name, baseScore and severity, description, remediation,
category, frameworks) comes from the catalogue data file generated from Kubescape's regolibrary
(``mcp_kscan.catalogue``); this table only binds a control ID to the kinds its rules judge and the
check that decides them. Adding a control is one row here plus its check.
"""

from __future__ import annotations

from mcp_kscan.catalogue.records import control_record
from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import network, rbac, resources as rs, secrets, workload as wl
from mcp_kscan.engine.controls.base import Check, Control, Verdict
from mcp_kscan.engine.model import RBAC_BINDING_KINDS, Resource

# The workload kinds the rules match (ReplicationController is in none of these rules).
W = frozenset({"Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob"})
B = RBAC_BINDING_KINDS
POD = frozenset({"Pod"})


def dashboard_access(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014 has a rule for bindings and one for workloads."""
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
    # workloads: privileges and isolation
    ("C-0013", W, wl.non_root_containers),
    ("C-0016", W, wl.allow_privilege_escalation),
    ("C-0017", W, wl.immutable_filesystem),
    ("C-0038", W, wl.host_pid_ipc),
    ("C-0041", W, wl.host_network),
    ("C-0044", W, wl.host_port),
    ("C-0046", W, wl.insecure_capabilities),
    ("C-0055", W, wl.linux_hardening),
    ("C-0057", W, wl.privileged_container),
    # workloads: volumes
    ("C-0020", W, wl.cloud_credentials_mount),
    ("C-0045", W, wl.writable_host_path),
    ("C-0048", W, wl.host_path_mount),
    ("C-0074", W, wl.runtime_socket),
    # workloads: hygiene
    ("C-0014", W | B, dashboard_access),
    ("C-0018", W, wl.readiness_probe),
    ("C-0056", W, wl.liveness_probe),
    ("C-0061", W, wl.default_namespace),
    ("C-0062", W, wl.sudo_in_entrypoint),
    ("C-0073", POD, wl.naked_pod),
    ("C-0075", W, wl.image_pull_policy_latest),
    ("C-0076", W, wl.label_usage),
    ("C-0077", W, wl.k8s_common_labels),
    # resources
    ("C-0004", W, rs.memory_limit_and_request),
    ("C-0009", W, rs.resource_limits),
    ("C-0050", W, rs.cpu_limit_and_request),
    ("C-0270", W, rs.cpu_limits),
    ("C-0271", W, rs.memory_limits),
    # secrets and service accounts
    ("C-0012", W | {"ConfigMap"}, secrets.credentials_in_config),
    ("C-0034", W, secrets.automount_service_account),
    # network
    ("C-0030", network.C0030_KINDS, network.ingress_and_egress_blocked),
    ("C-0054", frozenset({"Namespace"}), network.namespace_without_network_policy),
    ("C-0260", network.C0260_KINDS, network.missing_network_policy),
    # RBAC
    ("C-0002", B, rbac.exec_into_container),
    ("C-0007", B, rbac.data_destruction),
    ("C-0015", B, rbac.list_secrets),
    ("C-0031", B, rbac.delete_events),
    ("C-0035", B, rbac.administrative_role),
    ("C-0063", B, rbac.port_forward),
    ("C-0065", B, rbac.impersonation),
    ("C-0187", B, rbac.administrative_role),
    ("C-0188", B, rbac.create_pods),
)

CONTROLS: tuple[Control, ...] = tuple(
    sorted((control(cid, kinds, check) for cid, kinds, check in IMPLEMENTED), key=lambda c: c.id)
)
