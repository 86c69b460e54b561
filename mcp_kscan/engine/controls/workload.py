"""Checks on a workload's pod spec and containers (facts from Kubescape's regolibrary rules).

Every check gets a ``Resource`` whose ``pod_spec``/``pod_path`` are set (the catalogue only
calls them for workload kinds) and returns PASSED, a Finding, or None when it does not apply.
"""

from __future__ import annotations

import re
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, YOUR_VALUE, Verdict, fail, merge, pod_sc, sc
from mcp_kscan.engine.model import Finding, Resource, dict_at

# Capabilities Kubescape's C-0046 calls insecure (its default controlConfiguration).
INSECURE_CAPABILITIES = frozenset(
    {"SETPCAP", "NET_ADMIN", "NET_RAW", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "SYS_ADMIN",
     "SYS_BOOT", "MAC_OVERRIDE", "MAC_ADMIN", "PERFMON", "ALL", "BPF"}
)
# C-0012's default sensitiveKeyNames: an env var or ConfigMap key containing one is suspect.
SENSITIVE_KEY_NAMES = (
    "aws_access_key_id", "aws_secret_access_key", "azure_batchai_storage_account",
    "azure_batchai_storage_key", "azure_batch_account", "azure_batch_key", "secret", "key",
    "password", "pwd", "token", "jwt", "bearer", "credential",
)
# Container runtime sockets (C-0074).
RUNTIME_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock", "/var/run/containerd/containerd.sock",
                   "/run/containerd/containerd.sock", "/var/run/crio/crio.sock", "/run/crio/crio.sock",
                   "/var/run/cri-dockerd.sock")
# Host paths where cloud credentials live (C-0020, "Mount service principal").
CLOUD_CREDENTIAL_PATHS = ("/etc/kubernetes/azure.json", "/etc/kubernetes/cloud.conf", "/.azure",
                          "/.aws", "/root/.aws", "/home/admin/.aws", "/etc/gcp", "/.config/gcloud",
                          "/root/.config/gcloud", "/var/lib/kubelet/kubeconfig")
RECOMMENDED_LABELS = ("app", "tier", "phase", "version", "owner", "env")
K8S_RECOMMENDED_LABELS = (
    "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
    "app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by",
    "app.kubernetes.io/created-by",
)
_SUDO = re.compile(r"(^|[\s/;&|])sudo(\s|$)")


def _bool_true(value: Any) -> bool:
    return value is True


# ----------------------------------------------------------------------------- privileges


def privileged_container(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0057: privileged: true, or the SYS_ADMIN capability (as good as privileged)."""
    out: list[Finding] = []
    for path, c in res.containers():
        s = sc(c)
        if _bool_true(s.get("privileged")):
            p = f"{path}.securityContext.privileged"
            out.append(fail([p], [(p, "false")], f"container {c.get('name')!r} is privileged"))
        adds = (s.get("capabilities") or {}).get("add") if isinstance(s.get("capabilities"), dict) else None
        for j, cap in enumerate(adds or []):
            if str(cap).upper().removeprefix("CAP_") == "SYS_ADMIN":
                p = f"{path}.securityContext.capabilities.add[{j}]"
                out.append(fail([p], [(p, "")], f"container {c.get('name')!r} adds SYS_ADMIN"))
    return merge(out)


def host_pid_ipc(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0038: the pod shares the host's PID or IPC namespace."""
    spec = res.pod_spec or {}
    out = [
        fail([f"{res.pod_path}{k}"], [(f"{res.pod_path}{k}", "false")], f"{k} is true")
        for k in ("hostIPC", "hostPID") if _bool_true(spec.get(k))
    ]
    return merge(out)


def host_network(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0041: the pod uses the host's network namespace."""
    if _bool_true((res.pod_spec or {}).get("hostNetwork")):
        p = f"{res.pod_path}hostNetwork"
        return fail([p], [(p, "false")], "hostNetwork is true")
    return PASSED


def host_port(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0044: a container port is bound to the node (hostPort)."""
    out: list[Finding] = []
    for path, c in res.main_containers():
        for j, port in enumerate(c.get("ports") or []):
            if isinstance(port, dict) and port.get("hostPort"):
                p = f"{path}.ports[{j}].hostPort"
                out.append(fail([p], [(p, "")], f"container {c.get('name')!r} uses hostPort"))
    return merge(out)


def insecure_capabilities(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0046: capabilities.add holds one of the dangerous capabilities."""
    out: list[Finding] = []
    for path, c in res.containers():
        caps = sc(c).get("capabilities")
        adds = caps.get("add") if isinstance(caps, dict) else None
        for j, cap in enumerate(adds or []):
            if str(cap).upper().removeprefix("CAP_") in INSECURE_CAPABILITIES:
                p = f"{path}.securityContext.capabilities.add[{j}]"
                out.append(fail([p], [(p, "")], f"container {c.get('name')!r} adds {cap}"))
    return merge(out)


def allow_privilege_escalation(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0016: allowPrivilegeEscalation is not explicitly false."""
    out: list[Finding] = []
    for path, c in res.containers():
        value = sc(c).get("allowPrivilegeEscalation")
        if value is not False:
            p = f"{path}.securityContext.allowPrivilegeEscalation"
            out.append(fail([p], [(p, "false")], f"container {c.get('name')!r} may escalate privileges"))
    return merge(out)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def non_root_containers(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0013: neither the container nor the pod says runAsNonRoot: true or a non-zero runAsUser.

    The container's setting wins over the pod's, as in Kubernetes.
    """
    psc = pod_sc(res)
    out: list[Finding] = []
    for path, c in res.containers():
        s = sc(c)
        non_root = s.get("runAsNonRoot", psc.get("runAsNonRoot"))
        user = s.get("runAsUser", psc.get("runAsUser"))
        if non_root is True and user != 0:
            continue
        if _positive_int(user):
            continue
        p = f"{path}.securityContext.runAsNonRoot"
        failed = [f"{path}.securityContext.runAsUser"] if user == 0 else [p]
        out.append(fail(failed, [(p, "true")], f"container {c.get('name')!r} may run as root"))
    return merge(out)


def immutable_filesystem(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0017: readOnlyRootFilesystem is not true."""
    out: list[Finding] = []
    for path, c in res.main_containers():
        if sc(c).get("readOnlyRootFilesystem") is not True:
            p = f"{path}.securityContext.readOnlyRootFilesystem"
            out.append(fail([p], [(p, "true")], f"container {c.get('name')!r} has a writable root filesystem"))
    return merge(out)


def linux_hardening(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0055: no seccomp, SELinux, AppArmor profile and no dropped capabilities at all."""
    psc = pod_sc(res)
    pod_hardened = bool(psc.get("seccompProfile") or psc.get("seLinuxOptions") or psc.get("appArmorProfile"))
    out: list[Finding] = []
    for path, c in res.main_containers():
        if pod_hardened:
            break
        s = sc(c)
        caps = dict_at(s, "capabilities")
        apparmor = f"container.apparmor.security.beta.kubernetes.io/{c.get('name')}"
        if (s.get("seccompProfile") or s.get("seLinuxOptions") or s.get("appArmorProfile")
                or caps.get("drop") or apparmor in res.pod_annotations):
            continue
        base = f"{path}.securityContext"
        out.append(fail(
            [base],
            [(f"{base}.seccompProfile", YOUR_VALUE), (f"{base}.seLinuxOptions", YOUR_VALUE),
             (f"{base}.capabilities.drop[0]", YOUR_VALUE)],
            f"container {c.get('name')!r} has no seccomp, SELinux, AppArmor or dropped capabilities",
        ))
    return merge(out)


def automount_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0034: the pod gets an API token it probably does not need.

    Kubescape's rule: a ServiceAccount fails unless it sets automountServiceAccountToken: false.
    A workload fails when its pod spec leaves the setting out and its service account (found
    among the scanned objects) does not turn it off, or when the pod spec says true.
    """
    if res.kind == "ServiceAccount":
        value = res.obj.get("automountServiceAccountToken")
        if value is False:
            return PASSED
        p = "automountServiceAccountToken"
        return fail([p], [(p, "false")], f"service account {res.name!r} mounts its token in pods by default")
    spec = res.pod_spec or {}
    setting = spec.get("automountServiceAccountToken")
    if setting is False:
        return PASSED
    sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    sa = ctx.service_accounts.get((res.effective_namespace, str(sa_name)))
    p = f"{res.pod_path}automountServiceAccountToken"
    if setting is None:
        if sa is not None and sa.get("automountServiceAccountToken") is not False:
            return fail([p], [(p, "false")], f"service account {sa_name!r} token is mounted by default")
        return PASSED
    if setting is True and (not ctx.any_service_account or (sa is not None and sa.get("automountServiceAccountToken") is not False)):
        return fail([p], [(p, "false")], "automountServiceAccountToken is true")
    return PASSED


# ----------------------------------------------------------------------------- host paths


def _host_path_volumes(res: Resource) -> list[tuple[int, str, dict[str, Any]]]:
    out = []
    for i, vol in enumerate((res.pod_spec or {}).get("volumes") or []):
        if isinstance(vol, dict) and isinstance(vol.get("hostPath"), dict):
            out.append((i, str(vol.get("name", "")), vol["hostPath"]))
    return out


def host_path_mount(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0048: any hostPath volume."""
    out = []
    for i, name, hp in _host_path_volumes(res):
        p = f"{res.pod_path}volumes[{i}].hostPath.path"
        out.append(fail([p], [(p, "")], f"volume {name!r} mounts host path {hp.get('path')!r}"))
    return merge(out)


def writable_host_path(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0045: a container mounts a hostPath volume without readOnly: true."""
    names = {name for _, name, _ in _host_path_volumes(res)}
    if not names:
        return PASSED
    out = []
    for path, c in res.containers():
        for k, mount in enumerate(c.get("volumeMounts") or []):
            if isinstance(mount, dict) and mount.get("name") in names and mount.get("readOnly") is not True:
                p = f"{path}.volumeMounts[{k}].readOnly"
                out.append(fail([f"{path}.volumeMounts[{k}]"], [(p, "true")],
                                f"container {c.get('name')!r} mounts host path volume {mount.get('name')!r} writable"))
    return merge(out)


def runtime_socket(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0074: a hostPath volume points at the container runtime's socket."""
    out = []
    for i, name, hp in _host_path_volumes(res):
        path = str(hp.get("path", "")).rstrip("/")
        if path in RUNTIME_SOCKETS or path.endswith((".sock",)) and any(s in path for s in ("docker", "containerd", "crio")):
            p = f"{res.pod_path}volumes[{i}].hostPath.path"
            out.append(fail([p], [(p, "")], f"volume {name!r} mounts the runtime socket {path!r}"))
    return merge(out)


def cloud_credentials_mount(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0020: a hostPath volume exposes the node's cloud credentials."""
    out = []
    for i, name, hp in _host_path_volumes(res):
        path = str(hp.get("path", "")).rstrip("/")
        if any(path == c or path.startswith(c + "/") or path.endswith(c) for c in CLOUD_CREDENTIAL_PATHS):
            p = f"{res.pod_path}volumes[{i}].hostPath.path"
            out.append(fail([p], [(p, "")], f"volume {name!r} mounts cloud credentials at {path!r}"))
    return merge(out)


# ----------------------------------------------------------------------------- resources, probes


def _limits_check(*fields: tuple[str, str]):  # type: ignore[no-untyped-def]
    """A check that each container sets every (section, resource) pair, e.g. ("limits", "cpu")."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        out = []
        for path, c in res.main_containers():
            resources = dict_at(c, "resources")
            missing = []
            for section, name in fields:
                block = resources.get(section)
                if not (isinstance(block, dict) and block.get(name) not in (None, "")):
                    missing.append(f"{path}.resources.{section}.{name}")
            if missing:
                out.append(fail(missing, [(m, YOUR_VALUE) for m in missing],
                                f"container {c.get('name')!r} does not set {', '.join(m.rsplit('.', 2)[-2] + '.' + m.rsplit('.', 1)[-1] for m in missing)}"))
        return merge(out)

    return check


resource_limits = _limits_check(("limits", "cpu"), ("limits", "memory"))  # C-0009
memory_limit_and_request = _limits_check(("requests", "memory"), ("limits", "memory"))  # C-0004
cpu_limit_and_request = _limits_check(("requests", "cpu"), ("limits", "cpu"))  # C-0050
cpu_limits = _limits_check(("limits", "cpu"))  # C-0270
memory_limits = _limits_check(("limits", "memory"))  # C-0271


def _probe_check(probe: str):  # type: ignore[no-untyped-def]
    def check(res: Resource, ctx: ScanContext) -> Verdict:
        out = []
        for path, c in res.main_containers():
            if not isinstance(c.get(probe), dict):
                p = f"{path}.{probe}"
                out.append(fail([p], [(p, YOUR_VALUE)], f"container {c.get('name')!r} has no {probe}"))
        return merge(out)

    return check


liveness_probe = _probe_check("livenessProbe")  # C-0056
readiness_probe = _probe_check("readinessProbe")  # C-0018


# ----------------------------------------------------------------------------- images, commands


def _image_tag(image: str) -> str | None:
    """The tag of an image reference, None when it has none (a digest counts as pinned)."""
    if "@" in image:
        return "@digest"
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


def image_pull_policy_latest(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0075: a ``latest`` (or untagged) image with an explicit pull policy other than Always.

    When imagePullPolicy is left out Kubernetes defaults it to Always for such images, so only an
    explicit IfNotPresent/Never is a problem (Kubescape's rule agrees).
    """
    out = []
    for path, c in res.containers():
        policy = c.get("imagePullPolicy")
        if policy is None or policy == "Always":
            continue
        tag = _image_tag(str(c.get("image", "")))
        if tag is None or tag == "latest":
            p = f"{path}.imagePullPolicy"
            out.append(fail([p], [(p, "Always")], f"container {c.get('name')!r} pulls a latest image with {policy}"))
    return merge(out)


def sudo_in_entrypoint(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0062: the container's command runs sudo."""
    out = []
    for path, c in res.containers():
        for j, word in enumerate(c.get("command") or []):
            if isinstance(word, str) and _SUDO.search(word):
                p = f"{path}.command[{j}]"
                out.append(fail([p], [(p, "")], f"container {c.get('name')!r} runs sudo"))
    return merge(out)


def _sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(key in lowered for key in SENSITIVE_KEY_NAMES)


def credentials_in_config(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0012: a literal value under a secret-looking name (env var or ConfigMap key)."""
    out = []
    if res.kind == "ConfigMap":
        data = res.obj.get("data")
        for key, value in (data.items() if isinstance(data, dict) else ()):
            if _sensitive(str(key)) and value not in (None, ""):
                p = f"data[{key}]"
                out.append(fail([p], [(p, "")], f"ConfigMap key {key!r} looks like a credential"))
        return merge(out)
    for path, c in res.containers():
        for j, env in enumerate(c.get("env") or []):
            if not isinstance(env, dict) or "valueFrom" in env:
                continue
            if _sensitive(str(env.get("name", ""))) and env.get("value") not in (None, ""):
                p = f"{path}.env[{j}].value"
                out.append(fail([f"{path}.env[{j}].name"], [(p, "")],
                                f"env var {env.get('name')!r} holds a literal credential; use a Secret"))
    return merge(out)


def dashboard_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014: a workload runs as the Kubernetes dashboard's service account."""
    spec = res.pod_spec or {}
    if spec.get("serviceAccountName") == "kubernetes-dashboard" or spec.get("serviceAccount") == "kubernetes-dashboard":
        p = f"{res.pod_path}serviceAccountName"
        return fail([p], [(p, YOUR_VALUE)], "runs as the kubernetes-dashboard service account")
    return PASSED


def default_namespace(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0061: the workload lives in the ``default`` namespace (or names none)."""
    if res.namespace in ("", "default"):
        return fail(["metadata.namespace"], [("metadata.namespace", "YOUR_NAMESPACE")],
                    f"{res.kind} {res.name!r} is in the default namespace")
    return PASSED


def naked_pod(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0073: a Pod no controller owns (nothing restarts or reschedules it)."""
    meta = dict_at(res.obj, "metadata")
    if meta.get("ownerReferences"):
        return PASSED
    return fail(["kind"], [("kind", "Deployment")], f"Pod {res.name!r} is not managed by a controller")


def _labels_check(names: tuple[str, ...], all_fix_paths: bool):  # type: ignore[no-untyped-def]
    """C-0076/C-0077: the object and its pod template each carry one of the recommended labels."""

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        meta = dict_at(res.obj, "metadata")
        labels = dict_at(meta, "labels")
        missing = []
        if not any(n in labels for n in names):
            missing.append("metadata.labels")
        if res.kind != "Pod" and not any(n in res.pod_labels for n in names):
            template = res.pod_path.removesuffix("spec.") + "metadata.labels"
            missing.append(template)
        if not missing:
            return PASSED
        return fail(missing, [(m, YOUR_VALUE) for m in missing],
                    f"none of the recommended labels ({', '.join(names[:3])}, ...) is set")

    return check


label_usage = _labels_check(RECOMMENDED_LABELS, False)
k8s_common_labels = _labels_check(K8S_RECOMMENDED_LABELS, True)


# ----------------------------------------------------------------------------- network


def ingress_and_egress_blocked(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0030: no NetworkPolicy restricts both the pods' ingress and their egress."""
    selecting = ctx.policies_selecting(res)
    if any(p.ingress for p in selecting) and any(p.egress for p in selecting):
        return PASSED
    p = res.pod_path.removesuffix("spec.") + "metadata.labels"
    return fail([p], [], f"no NetworkPolicy limits both ingress and egress of {res.kind} {res.name!r}")


def missing_network_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0260: no NetworkPolicy selects the workload's pods at all."""
    if ctx.policies_selecting(res):
        return PASSED
    p = res.pod_path.removesuffix("spec.") + "metadata.labels"
    return fail([p], [], f"no NetworkPolicy selects the pods of {res.kind} {res.name!r}")


def namespace_without_network_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0054: a namespace with no NetworkPolicy lets every pod talk to every other."""
    if ctx.network_policies.get(res.name):
        return PASSED
    return fail(["metadata.name"], [], f"namespace {res.name!r} has no NetworkPolicy")
