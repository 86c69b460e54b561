"""C-0211 "Apply Security Context to Your Pods and Containers": fifteen rules of regolibrary
v2.0.33, each a small check on the pod's or the containers' securityContext. The control fails
when any of its rules does; each rule is also kept apart (RULES) so its own test cases judge it.
"""

from __future__ import annotations

import re
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import workload as wl
from mcp_kscan.engine.controls.base import PASSED, YOUR_VALUE, AllRules, Check, Verdict, fail, merge, pod_sc, sc
from mcp_kscan.engine.model import Finding, Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list


def _unset(holder: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """object.get(holder, keys, "") == "": missing, or set to the empty string."""
    value: Any = holder
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return True
        value = value[key]
    return value == ""


_DROPS_NET_RAW = frozenset({"NET_RAW", "ALL", "all"})
_DROPS_ALL = frozenset({"ALL", "all"})


def drop_net_raw(res: Resource, ctx: ScanContext) -> Verdict:
    """drop-capability-netraw: NET_RAW is not dropped (nor ALL), or ALL is dropped but NET_RAW added."""
    out: list[Finding] = []
    for path, c in wl.containers(res):
        caps = _dict(sc(c).get("capabilities"))
        drop = _list(caps.get("drop"))
        dropped = set(map(str, drop))
        if dropped.isdisjoint(_DROPS_NET_RAW):
            out.append(fail([], [(f"{path}.securityContext.capabilities.drop[{len(drop)}]", "NET_RAW")],
                            f"container {c.get('name')!r} does not drop NET_RAW"))
        elif not dropped.isdisjoint(_DROPS_ALL) and "NET_RAW" in _list(caps.get("add")):
            out.append(fail([f"{path}.securityContext.capabilities.add"], [], f"container {c.get('name')!r} adds NET_RAW"))
    return merge(out)


def _unset_on_pod_and_container(*keys: str) -> Check:
    """Fails containers where neither the pod's nor the container's securityContext sets ``keys``."""
    where = ("securityContext", *keys)
    dotted = ".".join(keys)

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        spec = res.pod_spec or {}
        if not _unset(spec, where):
            return PASSED
        out = [fail([], [(f"{path}.securityContext.{dotted}", YOUR_VALUE)], f"container {c.get('name')!r} does not set {dotted}")
               for path, c in wl.containers(res) if _unset(c, where)]
        return merge(out)

    return check


selinux_options = _unset_on_pod_and_container("seLinuxOptions")  # set-seLinuxOptions
seccomp_profile = _unset_on_pod_and_container("seccompProfile")  # set-seccomp-profile


def _windows(res: Resource) -> bool:
    """The pod runs on Windows (spec.os.name, or its nodeSelector's kubernetes.io/os): asked by
    two rules, answered once per resource."""
    found: bool | None = res.derived.get("windows")
    if found is None:
        spec = res.pod_spec or {}
        found = res.derived["windows"] = (_dict(spec.get("os")).get("name") == "windows"
                                          or _dict(spec.get("nodeSelector")).get("kubernetes.io/os") == "windows")
    return found


def _windows_unset(*keys: str) -> Check:
    base = _unset_on_pod_and_container(*keys)

    def check(res: Resource, ctx: ScanContext) -> Verdict:
        return base(res, ctx) if _windows(res) else PASSED

    return check


gmsa_credential_spec = _windows_unset("windowsOptions", "gmsaCredentialSpecName")  # set-gmsacredentialspecname-value
run_as_user_name = _windows_unset("windowsOptions", "runAsUserName")  # set-runasusername-value


def _proc_mount_type_enabled(ctx: ScanContext) -> bool:
    """Some ControlPlaneInfo (Kubescape's host-sensor data) shows --feature-gates with ProcMountType=true."""
    for info in ctx.of_kind("ControlPlaneInfo"):
        if info.api_version != "hostdata.kubescape.cloud/v1beta0":
            continue
        cmd = _dict(_dict(info.obj.get("data")).get("APIServerInfo")).get("cmdLine")
        if isinstance(cmd, str) and "--feature-gates=" in cmd and any("ProcMountType=true" in a for a in re.split(" +", cmd)):
            return True
    return False


def proc_mount(res: Resource, ctx: ScanContext) -> Verdict:
    """set-procmount-default: with the ProcMountType feature gate on (known only from the host
    sensor's ControlPlaneInfo, never from plain manifests), a container's procMount is not Default."""
    if not _proc_mount_type_enabled(ctx):
        return PASSED
    out = [fail([], [(f"{path}.securityContext.procMount", "Default")], f"container {c.get('name')!r} procMount is not Default")
           for path, c in wl.containers(res) if sc(c).get("procMount") != "Default"]
    return merge(out)


def fs_group(res: Resource, ctx: ScanContext) -> Verdict:
    """set-fsgroup-value: the pod's fsGroup is not set to a number >= 0."""
    value = pod_sc(res).get("fsGroup")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return PASSED
    return fail([], [(f"{res.pod_path}securityContext.fsGroup", YOUR_VALUE)], "fsGroup is not set")


def fs_group_change_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """set-fsgroupchangepolicy-value: fsGroupChangePolicy is not Always or OnRootMismatch (the rule
    matches the value as a pattern over "Always|OnRootMismatch")."""
    value = pod_sc(res).get("fsGroupChangePolicy")
    if isinstance(value, str):
        try:
            if re.search(value, "Always|OnRootMismatch"):
                return PASSED
        except re.error:
            pass
    return fail([], [(f"{res.pod_path}securityContext.fsGroupChangePolicy", "Always")], "fsGroupChangePolicy is not set")


SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
})


def sysctls(res: Resource, ctx: ScanContext) -> Verdict:
    """set-sysctls-params: the pod sets a sysctl outside the safe set."""
    unsafe = [s.get("name") for s in _list(pod_sc(res).get("sysctls")) if isinstance(s, dict) and s.get("name") not in SAFE_SYSCTLS]
    if unsafe:
        return fail([f"{res.pod_path}securityContext.sysctls"], [], f"unsafe sysctls: {', '.join(map(str, unsafe))}")
    return PASSED


def supplemental_groups(res: Resource, ctx: ScanContext) -> Verdict:
    """set-supplementalgroups-values: supplementalGroups includes group 0 (root)."""
    if 0 in [g for g in _list(pod_sc(res).get("supplementalGroups")) if not isinstance(g, bool)]:
        return fail([f"{res.pod_path}securityContext.supplementalGroups"], [], "supplementalGroups includes root (0)")
    return PASSED


def host_process(res: Resource, ctx: ScanContext) -> Verdict:
    """set-hostprocess-true: a Windows HostProcess pod or container."""
    paths = []
    if _dict(pod_sc(res).get("windowsOptions")).get("hostProcess") is True:
        paths.append(f"{res.pod_path}securityContext.windowsOptions.hostProcess")
    paths += [f"{path}.securityContext.windowsOptions.hostProcess" for path, c in wl.containers(res, wl.ALL_CONTAINERS)
              if _dict(sc(c).get("windowsOptions")).get("hostProcess") is True]
    return fail(paths, [], "runs as a Windows HostProcess") if paths else PASSED


# The control's rules in the catalogue's order, each with its check.
RULES: tuple[tuple[str, Check], ...] = (
    ("rule-privilege-escalation", wl.privileged_container),
    ("immutable-container-filesystem", wl.immutable_filesystem),
    ("non-root-containers", wl.non_root_containers),
    ("drop-capability-netraw", drop_net_raw),
    ("set-seLinuxOptions", selinux_options),
    ("set-seccomp-profile", seccomp_profile),
    ("set-procmount-default", proc_mount),
    ("set-fsgroup-value", fs_group),
    ("set-fsgroupchangepolicy-value", fs_group_change_policy),
    ("set-sysctls-params", sysctls),
    ("set-supplementalgroups-values", supplemental_groups),
    ("rule-allow-privilege-escalation", wl.allow_privilege_escalation),
    ("set-gmsacredentialspecname-value", gmsa_credential_spec),
    ("set-hostprocess-true", host_process),
    ("set-runasusername-value", run_as_user_name),
)


security_context = AllRules(RULES)
"""C-0211: fails when any of its rules fails (their findings merged)."""
