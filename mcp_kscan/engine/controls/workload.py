"""Checks on a workload's pod spec and containers, as regolibrary v2.0.33's rules write them.

Every check gets a ``Resource`` whose ``pod_spec``/``pod_path`` are set (the registry only calls
them for the workload kinds a rule matches) and returns PASSED, a Finding, or None when it does
not apply. Which container lists a rule reads differs from rule to rule and is part of the rule:
most read only ``containers``; C-0057 also reads init and ephemeral containers; the hostPath and
runtime-socket rules also read init containers. Each check names the lists it reads.
"""

from __future__ import annotations

import re
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, YOUR_VALUE, Verdict, fail, merge, pod_sc, sc
from mcp_kscan.engine.model import Finding, Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list

MAIN = ("containers",)
WITH_INIT = ("containers", "initContainers")
ALL_CONTAINERS = ("containers", "initContainers", "ephemeralContainers")

# C-0074's socket paths: the rule compares hostPath.path with exactly these.
RUNTIME_SOCKETS = frozenset({"/var/run/docker.sock", "/var/run/docker", "/run/containerd/containerd.sock",
                             "/var/run/crio/crio.sock"})


def containers(res: Resource, lists: tuple[str, ...] = MAIN) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(dotted path, container) for the named container lists of the pod spec, in order.

    Computed once per resource and list names (checks never change the objects they judge)."""
    found = res.container_lists.get(lists)
    if found is not None:
        return found
    out: list[tuple[str, dict[str, Any]]] = []
    spec = res.pod_spec
    if spec:
        for key in lists:
            items = spec.get(key)
            if isinstance(items, list):
                out.extend((f"{res.pod_path}{key}[{i}]", c) for i, c in enumerate(items) if isinstance(c, dict))
    found = res.container_lists[lists] = tuple(out)
    return found


def truthy(value: Any) -> bool:
    """Rego's truth for a bare reference: defined, not null, not false."""
    return value is not None and value is not False


# ----------------------------------------------------------------------------- privileges


def privileged_container(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0057: privileged: true, or SYS_ADMIN in capabilities.add (containers, init, ephemeral)."""
    out: list[Finding] = []
    for path, c in containers(res, ALL_CONTAINERS):
        s = sc(c)
        paths = [f"{path}.securityContext.capabilities.add[{k}]"
                 for k, cap in enumerate(_list(_dict(s.get("capabilities")).get("add"))) if cap == "SYS_ADMIN"]
        fixes = []
        if s.get("privileged") is True:
            paths.append(f"{path}.securityContext.privileged")
            fixes.append((f"{path}.securityContext.privileged", "false"))
        if paths:
            out.append(fail(paths, fixes, f"container {c.get('name')!r} is privileged"))
    return merge(out)


def allow_privilege_escalation(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0016: allowPrivilegeEscalation is not false, and no scanned PodSecurityPolicy forbids it
    everywhere (the rule passes when every PSP sets allowPrivilegeEscalation: false)."""
    psps = ctx.of_kind("PodSecurityPolicy")
    if psps and all(_dict(p.obj.get("spec")).get("allowPrivilegeEscalation") is False for p in psps):
        return PASSED
    out: list[Finding] = []
    for path, c in containers(res):
        if sc(c).get("allowPrivilegeEscalation") is not False:
            p = f"{path}.securityContext.allowPrivilegeEscalation"
            out.append(fail([], [(p, "false"), (f"{path}.securityContext.privileged", "false")],
                            f"container {c.get('name')!r} may escalate privileges"))
    return merge(out)


def insecure_capabilities(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0046: capabilities.add names one of the insecureCapabilities input (exact strings)."""
    insecure = set(ctx.input("insecureCapabilities"))
    out: list[Finding] = []
    for path, c in containers(res):
        adds = _list(_dict(sc(c).get("capabilities")).get("add"))
        paths = [f"{path}.securityContext.capabilities.add[{k}]" for k, cap in enumerate(adds) if cap in insecure]
        if paths:
            out.append(fail(paths, [], f"container {c.get('name')!r} adds insecure capabilities"))
    return merge(out)


def _first_defined(value: Any, fallback: Any, default: Any) -> Any:
    """The first of the three that is not None (the container's setting, the pod's, the default)."""
    if value is not None:
        return value
    return default if fallback is None else fallback


def non_root_containers(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0013: a container may run as root: runAsNonRoot is not true and runAsUser is 0 (or unset),
    or runAsGroup is 0 (or unset). The container's setting wins over the pod's."""
    psc = pod_sc(res)
    out: list[Finding] = []
    for path, c in containers(res):
        s = sc(c)
        non_root = _first_defined(s.get("runAsNonRoot"), psc.get("runAsNonRoot"), False)
        user = _first_defined(s.get("runAsUser"), psc.get("runAsUser"), 0)
        group = _first_defined(s.get("runAsGroup"), psc.get("runAsGroup"), 0)
        fixes: list[tuple[str, str]] = []
        if non_root is False and user == 0:
            if s.get("runAsUser") is not None:
                fixes.append((f"{path}.securityContext.runAsUser", "1000"))
            elif psc.get("runAsUser") is not None:
                fixes.append((f"{res.pod_path}securityContext.runAsUser", "1000"))
            else:
                fixes.append((f"{path}.securityContext.runAsNonRoot", "true"))
        if group == 0:
            fixes.append((f"{path}.securityContext.runAsGroup", "1000"))
        if fixes:
            out.append(fail([], fixes, f"container {c.get('name')!r} may run as root"))
    return merge(out)


def immutable_filesystem(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0017: readOnlyRootFilesystem is not true."""
    out: list[Finding] = []
    for path, c in containers(res):
        if sc(c).get("readOnlyRootFilesystem") is not True:
            p = f"{path}.securityContext.readOnlyRootFilesystem"
            out.append(fail([], [(p, "true")], f"container {c.get('name')!r} has a writable root filesystem"))
    return merge(out)


def linux_hardening(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0055: neither the pod nor the container (or init container) sets a seccompProfile."""
    if truthy(pod_sc(res).get("seccompProfile")):
        return PASSED
    out: list[Finding] = []
    for path, c in containers(res, WITH_INIT):
        if not truthy(sc(c).get("seccompProfile")):
            out.append(fail([], [(f"{path}.securityContext.seccompProfile", YOUR_VALUE)],
                            f"container {c.get('name')!r} has no seccomp profile"))
    return merge(out)


def host_pid_ipc(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0038: the pod shares the host's PID or IPC namespace."""
    spec = res.pod_spec or {}
    paths = [f"{res.pod_path}{k}" for k in ("hostPID", "hostIPC") if spec.get(k) is True]
    return fail(paths, [], "the pod shares the host's PID/IPC namespace") if paths else PASSED


def host_network(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0041: the pod uses the host's network namespace."""
    if (res.pod_spec or {}).get("hostNetwork") is True:
        return fail([f"{res.pod_path}hostNetwork"], [], "hostNetwork is true")
    return PASSED


def host_port(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0044: a container port sets hostPort."""
    out: list[Finding] = []
    for path, c in containers(res):
        paths = [f"{path}.ports[{j}].hostPort" for j, port in enumerate(_list(c.get("ports")))
                 if isinstance(port, dict) and truthy(port.get("hostPort"))]
        if paths:
            out.append(fail(paths, [], f"container {c.get('name')!r} uses hostPort"))
    return merge(out)


# ----------------------------------------------------------------------------- volumes


def _volumes(res: Resource) -> list[tuple[int, dict[str, Any]]]:
    """(index, volume) of the pod's volumes that are mappings; C-0045, C-0048 and C-0074 (and
    C-0020 with a cloud provider) each read them, so they are listed once per resource."""
    found: list[tuple[int, dict[str, Any]]] | None = res.derived.get("volumes")
    if found is None:
        found = res.derived["volumes"] = [(i, v) for i, v in enumerate(_list((res.pod_spec or {}).get("volumes")))
                                          if isinstance(v, dict)]
    return found


def _mounting(res: Resource, volume_name: Any, lists: tuple[str, ...]) -> tuple[bool, list[str]]:
    """(does any container of ``lists`` have volumeMounts at all, paths of those mounting the volume)."""
    any_mounts = False
    paths: list[str] = []
    for path, c in containers(res, lists):
        mounts = c.get("volumeMounts")
        if mounts is None:
            continue
        any_mounts = True
        paths.extend(f"{path}.volumeMounts[{k}]" for k, m in enumerate(_list(mounts))
                     if isinstance(m, dict) and m.get("name") == volume_name)
    return any_mounts, paths


def _volume_check(res: Resource, dangerous: Any, message: str) -> Verdict:
    """Volumes for which ``dangerous(volume)`` holds fail, when some container has volumeMounts
    (the rules join a volume with every container's volumeMounts list)."""
    out: list[Finding] = []
    for i, vol in _volumes(res):
        if not dangerous(vol):
            continue
        any_mounts, paths = _mounting(res, vol.get("name"), WITH_INIT)
        if any_mounts:
            out.append(fail([f"{res.pod_path}volumes[{i}]"] + paths, [], message.format(vol.get("name"))))
    return merge(out)


def host_path_mount(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0048: a hostPath volume with a path."""
    return _volume_check(res, lambda v: truthy(_dict(v.get("hostPath")).get("path")), "volume {!r} is a hostPath")


def runtime_socket(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0074: a hostPath volume is the container runtime's socket."""
    return _volume_check(res, lambda v: isinstance(v.get("hostPath"), dict) and v["hostPath"].get("path") in RUNTIME_SOCKETS,
                         "volume {!r} mounts the container runtime socket")


def writable_host_path(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0045: a container (or init container) mounts a hostPath volume without readOnly: true."""
    host_paths = {v.get("name") for _, v in _volumes(res) if truthy(v.get("hostPath"))}
    out: list[Finding] = []
    for path, c in containers(res, WITH_INIT):
        for k, mount in enumerate(_list(c.get("volumeMounts"))):
            if isinstance(mount, dict) and mount.get("name") in host_paths and mount.get("readOnly") is not True:
                out.append(fail([], [(f"{path}.volumeMounts[{k}].readOnly", "true")],
                                f"container {c.get('name')!r} mounts hostPath volume {mount.get('name')!r} writable"))
    return merge(out)


# C-0020: credential paths per cloud provider (the rule only runs when the cluster's provider is known).
CLOUD_CREDENTIAL_PATHS: dict[str, tuple[str, ...]] = {
    "eks": ("/.aws/", "/.aws/config/", "/.aws/credentials/"),
    "aks": ("/etc/", "/etc/kubernetes/", "/etc/kubernetes/azure.json", "/.azure/", "/.azure/credentials/"),
    "gke": ("/.config/gcloud/", "/.config/", "/gcloud/", "/.config/gcloud/application_default_credentials.json",
            "/gcloud/application_default_credentials.json"),
}
_FILE_NAME = re.compile(r"[\w-]+\.")


def _normalised_path(path: str) -> str:
    """The rule appends "/" to a directory path (one without a dotted file name)."""
    if not _FILE_NAME.search(path) and not path.endswith("/"):
        return path + "/"
    return path


def cloud_credentials_mount(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0020: a hostPath volume exposes the node's cloud credentials (only when the cloud provider
    is known, which it never is for manifest files)."""
    unsafe = CLOUD_CREDENTIAL_PATHS.get(ctx.cloud_provider)
    if not unsafe:
        return PASSED
    out: list[Finding] = []
    for i, vol in _volumes(res):
        host_path = _dict(vol.get("hostPath")).get("path")
        if isinstance(host_path, str) and _normalised_path(host_path) in unsafe:
            _, paths = _mounting(res, vol.get("name"), MAIN)
            out.append(fail([f"{res.pod_path}volumes[{i}]"] + paths, [],
                            f"volume {vol.get('name')!r} mounts cloud credentials at {host_path!r}"))
    return merge(out)


# ----------------------------------------------------------------------------- probes, images, commands


def _probe_check(probe: str):  # type: ignore[no-untyped-def]
    def check(res: Resource, ctx: ScanContext) -> Verdict:
        out = [fail([], [(f"{path}.{probe}", YOUR_VALUE)], f"container {c.get('name')!r} has no {probe}")
               for path, c in containers(res) if not truthy(c.get(probe))]
        return merge(out)

    return check


liveness_probe = _probe_check("livenessProbe")  # C-0056
readiness_probe = _probe_check("readinessProbe")  # C-0018

_TAG = re.compile(r":[\w][\w.-]{0,127}(/)?")


def _tagged(tags: list[str]) -> bool:
    """Whether one of an image's ``_TAG`` matches is a tag (a port of the registry ends in "/")."""
    for tag in tags:
        if not tag.endswith("/"):
            return True
    return False


def _floating_tag(image: str, floating: set[str]) -> bool:
    if "@" in image:
        return False
    parts = image.split("/")[-1].split(":")
    return len(parts) == 2 and parts[1] in floating


def image_pull_policy_latest(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0075: imagePullPolicy Never/IfNotPresent on a ``:latest``, floating-tag or untagged image."""
    floating = set(ctx.input("floatingImageTags"))
    out: list[Finding] = []
    for path, c in containers(res):
        if c.get("imagePullPolicy") not in ("Never", "IfNotPresent"):
            continue
        image = str(c.get("image") or "")
        tags = [m.group(0) for m in _TAG.finditer(image)]
        if ":latest" in tags or _floating_tag(image, floating) or not _tagged(tags):
            out.append(fail([f"{path}.image", f"{path}.imagePullPolicy"], [],
                            f"container {c.get('name')!r} may run a stale latest image"))
    return merge(out)


def sudo_in_entrypoint(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0062: a command word contains "sudo"."""
    out: list[Finding] = []
    for path, c in containers(res):
        paths = [f"{path}.command[{k}]" for k, word in enumerate(_list(c.get("command")))
                 if isinstance(word, str) and "sudo" in word]
        if paths:
            out.append(fail(paths, [], f"container {c.get('name')!r} runs sudo"))
    return merge(out)


def dashboard_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0014 (rule-access-dashboard-wl-v1): a workload not named kubernetes-dashboard* runs as
    the kubernetes-dashboard service account."""
    if (res.pod_spec or {}).get("serviceAccountName") == "kubernetes-dashboard" and not res.name.startswith("kubernetes-dashboard"):
        return fail([f"{res.pod_path}serviceAccountName"], [], "runs as the kubernetes-dashboard service account")
    return PASSED


def default_namespace(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0061: the workload is in ``default`` or names no namespace."""
    meta = _dict(res.obj.get("metadata"))
    if meta.get("namespace") == "default":
        return fail(["metadata.namespace"], [], f"{res.kind} {res.name!r} is in the default namespace")
    if not truthy(meta.get("namespace")):
        return fail([], [("metadata.namespace", "YOUR_NAMESPACE")], f"{res.kind} {res.name!r} names no namespace")
    return PASSED


def naked_pod(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0073: a Pod no controller owns."""
    if truthy(_dict(res.obj.get("metadata")).get("ownerReferences")):
        return PASSED
    return fail([], [("kind", "Deployment")], f"Pod {res.name!r} is not managed by a controller")


def pod_template(res: Resource) -> tuple[str, Any]:
    """(the pod template's dotted path, ending in a dot, and what is there: None when missing),
    walked from ``pod_path`` as the rules walk it (``spec.template.spec.`` -> ``spec.template.``).
    C-0042, C-0076 and C-0077 each read it, so it is found once per resource."""
    found: tuple[str, Any] | None = res.derived.get("pod template")
    if found is None:
        template_path = res.pod_path.removesuffix("spec.")
        template: Any = res.obj
        for part in template_path.rstrip(".").split("."):
            template = _dict(template).get(part)
        found = res.derived["pod template"] = (template_path, template)
    return found


def _labels_check(input_key: str):  # type: ignore[no-untyped-def]
    """C-0076/C-0077: the object and its pod template each carry one of the input's labels."""

    def lacks(holder: Any, names: tuple[str, ...]) -> bool:
        labels = _dict(_dict(holder).get("metadata")).get("labels")
        if isinstance(labels, dict):
            for n in names:
                if truthy(labels.get(n)):
                    return False
        return True

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        names = ctx.input(input_key)
        key = names[0] if names else "YOUR_LABEL"
        missing = []
        if lacks(res.obj, names):
            missing.append(f"metadata.labels[{key}]")
        if res.kind != "Pod":
            template_path, template = pod_template(res)
            if lacks(template, names):
                missing.append(f"{template_path}metadata.labels[{key}]")
        if not missing:
            return PASSED
        return fail([], [(m, YOUR_VALUE) for m in missing], f"none of the labels {', '.join(names[:3])}... is set")

    return check


label_usage = _labels_check("recommendedLabels")  # C-0076
k8s_common_labels = _labels_check("k8sRecommendedLabels")  # C-0077


def host_pid(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0275: the pod shares the host's PID namespace."""
    if (res.pod_spec or {}).get("hostPID") is True:
        return fail([f"{res.pod_path}hostPID"], [], "hostPID is true")
    return PASSED


def host_ipc(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0276: the pod shares the host's IPC namespace."""
    if (res.pod_spec or {}).get("hostIPC") is True:
        return fail([f"{res.pod_path}hostIPC"], [], "hostIPC is true")
    return PASSED


def seccomp_runtime_default(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0210: a container's seccomp profile type (else the pod's) is not RuntimeDefault."""
    pod_profile = _dict(pod_sc(res).get("seccompProfile"))
    out: list[Finding] = []
    for path, c in containers(res):
        profile = _dict(sc(c).get("seccompProfile"))
        if "type" in profile and profile.get("type") is not None:
            if profile["type"] != "RuntimeDefault":
                out.append(fail([f"{path}.securityContext.seccompProfile.type"], [], f"container {c.get('name')!r} is not RuntimeDefault"))
        elif "type" in pod_profile and pod_profile.get("type") is not None:
            if pod_profile["type"] != "RuntimeDefault":
                out.append(fail([f"{res.pod_path}securityContext.seccompProfile.type"], [], "the pod's seccomp profile is not RuntimeDefault"))
        else:
            out.append(fail([], [(f"{path}.securityContext.seccompProfile.type", "RuntimeDefault")],
                            f"container {c.get('name')!r} sets no seccomp profile"))
    return merge(out)


def ingress_without_tls(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0263: an Ingress without spec.tls."""
    if truthy(_dict(res.obj.get("spec")).get("tls")):
        return PASSED
    return fail([], [("spec.tls", "<your-tls-definition>")], f"Ingress {res.name!r} serves no TLS")
