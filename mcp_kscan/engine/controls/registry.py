"""The controls the built-in engine evaluates: which kinds each judges and which check decides it.

Everything a reader sees about a control (name, baseScore and severity, description, remediation,
category, frameworks) comes from the catalogue data file generated from Kubescape's regolibrary
(``mcp_kscan.catalogue``); this table only binds a control ID to the kinds its rules judge and the
check that decides them. Adding a control is one row here plus its check.
"""

from __future__ import annotations

from mcp_kscan.catalogue.records import control_record
from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import (
    admission,
    images,
    network,
    paths,
    rbac,
    references as refs,
    resources as rs,
    sandbox,
    secrets,
    security_context,
    usage,
    versions,
    workload as wl,
)
from mcp_kscan.engine.controls.base import Check, Control, Verdict
from mcp_kscan.engine.model import RBAC_BINDING_KINDS, Resource

# The workload kinds the rules match (ReplicationController is in none of these rules).
W = frozenset({"Pod", "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob"})
B = RBAC_BINDING_KINDS
POD = frozenset({"Pod"})
NAMESPACE = frozenset({"Namespace"})
W_RC = W | {"ReplicationController"}
PSP = frozenset({"PodSecurityPolicy"})


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
        rule_checks=RULE_CHECKS.get(control_id, ()),
    )


# Controls whose rules are judged apart (by their own test cases), with a check per rule.
RULE_CHECKS: dict[str, tuple[tuple[str, Check], ...]] = {
    "C-0211": security_context.RULES,
    "C-0303": sandbox.CEILING_RULES,
    "C-0304": sandbox.PROVENANCE_RULES,
}


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
    ("C-0211", W, security_context.security_context),
    ("C-0210", W, wl.seccomp_runtime_default),
    ("C-0275", W, wl.host_pid),
    ("C-0276", W, wl.host_ipc),
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
    ("C-0268", W, rs.cpu_requests),
    ("C-0269", W, rs.memory_requests),
    ("C-0270", W, rs.cpu_limits),
    ("C-0271", W, rs.memory_limits),
    # secrets and service accounts
    ("C-0012", W | {"ConfigMap"}, secrets.credentials_in_config),
    ("C-0034", W, secrets.automount_service_account),
    ("C-0190", W, secrets.automount_service_account),
    ("C-0259", W, secrets.credentials_in_config),
    # what workloads use and refer to
    ("C-0207", W, usage.secrets_in_env),
    ("C-0253", W, usage.old_k8s_registry),
    ("C-0255", W, usage.mounted_secrets),
    ("C-0257", W, usage.mounted_pvcs),
    ("C-0258", W, usage.mounted_configmaps),
    ("C-0261", W, usage.service_account_token_mounted),
    ("C-0293", frozenset({"Service"}), usage.service_with_no_workload),
    ("C-0294", W_RC, usage.deprecated_service_account_field),
    ("C-0295", W_RC, usage.duplicate_env),
    ("C-0305", frozenset({"Deployment"}), usage.no_rolling_update),
    ("C-0306", W, usage.image_not_pinned),
    ("C-0307", W_RC, usage.non_existent_service_account),
    # images
    ("C-0001", W, images.forbidden_registries),
    ("C-0078", W, images.registry_not_allowed),
    ("C-0292", frozenset({"Deployment", "DaemonSet", "StatefulSet"}), images.nginx_ingress_eol),
    # admission control
    ("C-0189", frozenset({"ServiceAccount", "Namespace"}), admission.default_service_account),
    ("C-0192", NAMESPACE, admission.psa_enforced),
    *((cid, NAMESPACE, admission.psa_baseline) for cid in
      ("C-0193", "C-0194", "C-0195", "C-0196", "C-0199", "C-0202", "C-0203", "C-0204")),
    *((cid, NAMESPACE, admission.psa_restricted) for cid in ("C-0197", "C-0198", "C-0200", "C-0201")),
    ("C-0214", PSP, admission.psp_host_pid),
    ("C-0215", PSP, admission.psp_host_ipc),
    ("C-0216", PSP, admission.psp_host_network),
    ("C-0217", PSP, admission.psp_privilege_escalation),
    ("C-0218", PSP, admission.psp_root),
    ("C-0219", PSP, admission.psp_allowed_capabilities),
    ("C-0220", PSP, admission.psp_required_drop),
    # versions
    ("C-0059", frozenset({"Deployment"}), versions.nginx_snippet_cve_2021_25742),
    ("C-0068", POD, versions.psp_not_enabled),
    ("C-0081", frozenset({"Deployment"}), versions.argocd_cve_2022_24348),
    ("C-0090", frozenset({"Deployment"}), versions.grafana_cve_2022_39328),
    ("C-0091", frozenset({"Deployment"}), versions.kyverno_cve_2022_47633),
    # Agent Sandbox templates
    ("C-0297", frozenset({"SandboxTemplate"}), sandbox.hardened_runtime_class),
    ("C-0301", frozenset({"SandboxTemplate"}), sandbox.egress_policy),
    ("C-0303", frozenset({"SandboxTemplate"}), sandbox.resource_ceilings),
    ("C-0304", frozenset({"SandboxTemplate"}), sandbox.image_provenance),
    ("C-0273", frozenset({"Node"}), versions.outdated_kubelet),
    # attack paths through several objects
    ("C-0042", W, paths.ssh_exposed),
    ("C-0267", W, paths.cluster_takeover_roles),
    ("C-0272", W, paths.administrative_roles),
    # references between objects
    ("C-0296", W_RC - POD, refs.mismatching_selector),
    ("C-0263", frozenset({"Ingress"}), wl.ingress_without_tls),
    ("C-0298", frozenset({"Ingress"}), refs.dangling_ingress_backend),
    ("C-0299", frozenset({"NetworkPolicy"}), refs.dangling_network_policy),
    ("C-0300", frozenset({"HorizontalPodAutoscaler"}), refs.hpa_without_target),
    ("C-0302", frozenset({"HTTPRoute", "TCPRoute", "UDPRoute"}), refs.dangling_gateway_backend),
    # network
    ("C-0030", network.C0030_KINDS, network.ingress_and_egress_blocked),
    ("C-0049", NAMESPACE, network.namespace_without_network_policy),
    ("C-0054", NAMESPACE, network.namespace_without_network_policy),
    ("C-0206", NAMESPACE, network.namespace_without_network_policy),
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
    ("C-0037", B, rbac.update_configmaps),
    ("C-0053", B, rbac.service_account_bound),
    ("C-0186", B, rbac.list_secrets),
    ("C-0191", B, rbac.bind_escalate_impersonate),
    ("C-0262", B, rbac.anonymous_binding),
    ("C-0278", B, rbac.create_pv),
    ("C-0279", B, rbac.node_proxy),
    ("C-0280", B, rbac.approve_csr),
    ("C-0281", B, rbac.modify_webhooks),
    ("C-0282", B, rbac.create_sa_token),
)

CONTROLS: tuple[Control, ...] = tuple(
    sorted((control(cid, kinds, check) for cid, kinds, check in IMPLEMENTED), key=lambda c: c.id)
)
