"""The control catalogue: one entry per Kubescape control the built-in engine evaluates.

IDs, names, score factors, categories and framework membership follow Kubescape's regolibrary
(the NSA and MITRE lists as released in Kubescape v3.0.x reports). Adding a control is one entry
here plus its check function.
"""

from __future__ import annotations

from mcp_kscan.engine.controls import rbac, workload as wl
from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import Control, Verdict
from mcp_kscan.engine.model import RBAC_BINDING_KINDS, RBAC_ROLE_KINDS, WORKLOAD_KINDS, Resource

NSA, MITRE, ALL = "NSA", "MITRE", "AllControls"
W = WORKLOAD_KINDS
B = RBAC_BINDING_KINDS
# Controls that do not need a pod's lifecycle (probes make no sense for run-to-completion Jobs).
LONG_RUNNING = frozenset({"Pod", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet", "DaemonSet"})
LABELLED = frozenset(W - {"Pod"}) | {"Pod"}

WORKLOAD_CAT = ("Workload", "Cat-5")
ACCESS_CAT = ("Access control", "Cat-2")
NETWORK_CAT = ("Network", "Cat-4")
SECRETS_CAT = ("Secrets", "Cat-3")


def dashboard_access(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014 looks at both workloads and bindings."""
    if res.kind in B:
        return rbac.dashboard_binding(res, ctx)
    return wl.dashboard_service_account(res, ctx)


def _c(id: str, name: str, sf: float, fw: tuple[str, ...], rule: str, kinds: frozenset[str], check, cat, remediation: str = "") -> Control:  # type: ignore[no-untyped-def]
    return Control(id, name, sf, fw + (ALL,), rule, kinds, check, cat, remediation=remediation)


CONTROLS: tuple[Control, ...] = (
    _c("C-0002", "Exec into container", 5, (NSA, MITRE), "exec-into-container-v1", B, rbac.exec_into_container, ACCESS_CAT,
       "Remove pods/exec create from roles bound to users who do not need a shell in containers."),
    _c("C-0004", "Resources memory limit and request", 8, (), "resources-memory-limit-and-request", W, wl.memory_limit_and_request, WORKLOAD_CAT,
       "Set resources.requests.memory and resources.limits.memory on every container."),
    _c("C-0007", "Data Destruction", 5, (MITRE,), "rule-excessive-delete-rights-v1", B, rbac.data_destruction, ACCESS_CAT,
       "Do not grant delete/deletecollection on workloads, secrets and services to users who do not need it."),
    _c("C-0009", "Resource limits", 7, (NSA,), "resource-policies", W, wl.resource_limits, WORKLOAD_CAT,
       "Set resources.limits.cpu and resources.limits.memory on every container."),
    _c("C-0012", "Applications credentials in configuration files", 8, (NSA, MITRE), "rule-credentials-in-env-var", W | {"ConfigMap"}, wl.credentials_in_config, SECRETS_CAT,
       "Move credentials into Secrets and reference them with valueFrom.secretKeyRef."),
    _c("C-0013", "Non-root containers", 6, (NSA,), "non-root-containers", W, wl.non_root_containers, WORKLOAD_CAT,
       "Set securityContext.runAsNonRoot: true (or a non-zero runAsUser)."),
    _c("C-0014", "Access Kubernetes dashboard", 2, (MITRE,), "rule-access-dashboard-wl-v1", W | B, dashboard_access, ACCESS_CAT,
       "Do not run workloads or bind roles as the kubernetes-dashboard service account."),
    _c("C-0015", "List Kubernetes secrets", 7, (MITRE,), "rule-can-list-get-secrets-v1", B, rbac.list_secrets, ACCESS_CAT,
       "Grant get/list/watch on secrets only to the identities that need them."),
    _c("C-0016", "Allow privilege escalation", 6, (NSA,), "rule-allow-privilege-escalation", W, wl.allow_privilege_escalation, WORKLOAD_CAT,
       "Set securityContext.allowPrivilegeEscalation: false on every container."),
    _c("C-0017", "Immutable container filesystem", 3, (NSA,), "immutable-container-filesystem", W, wl.immutable_filesystem, WORKLOAD_CAT,
       "Set securityContext.readOnlyRootFilesystem: true; mount emptyDir volumes where the app must write."),
    _c("C-0018", "Configured readiness probe", 3, (), "configured-readiness-probe", LONG_RUNNING, wl.readiness_probe, WORKLOAD_CAT,
       "Add a readinessProbe to every container."),
    _c("C-0020", "Mount service principal", 4, (MITRE,), "alert-mount-potential-credentials-paths", W, wl.cloud_credentials_mount, WORKLOAD_CAT,
       "Do not mount the node's cloud credential files into pods."),
    _c("C-0030", "Ingress and Egress blocked", 6, (NSA,), "ingress-and-egress-blocked", W, wl.ingress_and_egress_blocked, NETWORK_CAT,
       "Add NetworkPolicies selecting these pods that restrict both Ingress and Egress."),
    _c("C-0031", "Delete Kubernetes events", 4, (MITRE,), "rule-can-delete-k8s-events-v1", B, rbac.delete_events, ACCESS_CAT,
       "Do not grant delete on events (attackers erase their traces)."),
    _c("C-0034", "Automatic mapping of service account", 6, (NSA,), "automount-service-account", W | {"ServiceAccount"}, wl.automount_service_account, SECRETS_CAT,
       "Set automountServiceAccountToken: false on service accounts and pods that do not call the API."),
    _c("C-0035", "Administrative Roles", 6, (NSA, MITRE), "rule-list-all-cluster-admins-v1", B, rbac.administrative_role, ACCESS_CAT,
       "Bind cluster-admin-like roles (every verb on every resource) only to break-glass identities."),
    _c("C-0038", "Host PID/IPC privileges", 7, (NSA,), "host-pid-ipc-privileges", W, wl.host_pid_ipc, WORKLOAD_CAT,
       "Remove hostPID and hostIPC (or set them to false)."),
    _c("C-0041", "HostNetwork access", 7, (NSA,), "host-network-access", W, wl.host_network, WORKLOAD_CAT,
       "Remove hostNetwork (or set it to false)."),
    _c("C-0044", "Container hostPort", 4, (NSA,), "container-hostPort", W, wl.host_port, NETWORK_CAT,
       "Remove hostPort; expose the pod through a Service instead."),
    _c("C-0045", "Writable hostPath mount", 8, (MITRE,), "alert-rw-hostpath", W, wl.writable_host_path, WORKLOAD_CAT,
       "Mount hostPath volumes with readOnly: true, or avoid hostPath."),
    _c("C-0046", "Insecure capabilities", 7, (NSA,), "insecure-capabilities", W, wl.insecure_capabilities, WORKLOAD_CAT,
       "Remove dangerous capabilities (SYS_ADMIN, NET_ADMIN, NET_RAW, ...) from capabilities.add."),
    _c("C-0048", "HostPath mount", 7, (MITRE,), "alert-any-hostpath", W, wl.host_path_mount, WORKLOAD_CAT,
       "Use another volume type than hostPath."),
    _c("C-0050", "Resources CPU limit and request", 8, (), "resources-cpu-limit-and-request", W, wl.cpu_limit_and_request, WORKLOAD_CAT,
       "Set resources.requests.cpu and resources.limits.cpu on every container."),
    _c("C-0054", "Cluster internal networking", 4, (NSA, MITRE), "internal-networking", frozenset({"Namespace"}), wl.namespace_without_network_policy, NETWORK_CAT,
       "Add NetworkPolicies to every namespace."),
    _c("C-0055", "Linux hardening", 4, (NSA,), "linux-hardening", W, wl.linux_hardening, WORKLOAD_CAT,
       "Set a seccompProfile (RuntimeDefault), SELinux/AppArmor profile, or drop capabilities."),
    _c("C-0056", "Configured liveness probe", 4, (), "configured-liveness-probe", LONG_RUNNING, wl.liveness_probe, WORKLOAD_CAT,
       "Add a livenessProbe to every container."),
    _c("C-0057", "Privileged container", 8, (NSA, MITRE), "rule-privilege-escalation", W, wl.privileged_container, WORKLOAD_CAT,
       "Remove privileged: true and the SYS_ADMIN capability."),
    _c("C-0061", "Pods in default namespace", 3, (), "pods-in-default-namespace", W, wl.default_namespace, WORKLOAD_CAT,
       "Deploy workloads to a dedicated namespace."),
    _c("C-0062", "Sudo in container entrypoint", 5, (), "sudo-in-container-entrypoint", W, wl.sudo_in_entrypoint, WORKLOAD_CAT,
       "Do not run sudo in the container command."),
    _c("C-0063", "Portforwarding privileges", 5, (), "rule-can-portforward-v1", B, rbac.port_forward, ACCESS_CAT,
       "Do not grant create on pods/portforward to users who do not need it."),
    _c("C-0065", "No impersonation", 6, (), "rule-can-impersonate-users-groups-v1", B, rbac.impersonation, ACCESS_CAT,
       "Do not grant the impersonate verb."),
    _c("C-0073", "Naked pods", 3, (), "naked-pods", frozenset({"Pod"}), wl.naked_pod, WORKLOAD_CAT,
       "Run pods through a Deployment, StatefulSet, DaemonSet or Job."),
    _c("C-0074", "Container runtime socket mounted", 5, (), "containers-mounting-docker-socket", W, wl.runtime_socket, WORKLOAD_CAT,
       "Do not mount the container runtime socket."),
    _c("C-0075", "Image pull policy on latest tag", 2, (), "image-pull-policy-is-not-set-to-always", W, wl.image_pull_policy_latest, WORKLOAD_CAT,
       "Pin image tags, or set imagePullPolicy: Always for latest images."),
    _c("C-0076", "Label usage for resources", 2, (), "label-usage-for-resources", LABELLED, wl.label_usage, WORKLOAD_CAT,
       "Label workloads and pod templates (app, tier, phase, version, owner, env)."),
    _c("C-0077", "K8s common labels usage", 2, (), "k8s-common-labels-usage", LABELLED, wl.k8s_common_labels, WORKLOAD_CAT,
       "Use the app.kubernetes.io/* recommended labels."),
    _c("C-0187", "Minimize wildcard use in Roles and ClusterRoles", 7, (), "rule-list-all-cluster-admins", RBAC_ROLE_KINDS, rbac.wildcard_role, ACCESS_CAT,
       "Replace * in rules with the verbs, resources and API groups actually needed."),
    _c("C-0188", "Minimize access to create pods", 5, (), "rule-can-create-pod", B, rbac.create_pods, ACCESS_CAT,
       "Grant create on pods only to the identities that need it."),
    _c("C-0260", "Missing network policy", 5, (), "ensure_network_policy_configured_in_labels", W, wl.missing_network_policy, NETWORK_CAT,
       "Add a NetworkPolicy selecting these pods."),
    _c("C-0270", "Ensure CPU limits are set", 8, (), "resources-cpu-limits", W, wl.cpu_limits, WORKLOAD_CAT,
       "Set resources.limits.cpu on every container."),
    _c("C-0271", "Ensure memory limits are set", 8, (), "resources-memory-limits", W, wl.memory_limits, WORKLOAD_CAT,
       "Set resources.limits.memory on every container."),
)
