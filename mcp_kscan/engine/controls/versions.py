"""Components whose version the manifests give away (regolibrary v2.0.33): images of releases with
known CVEs, nodes on unsupported Kubernetes versions, API servers without PodSecurityPolicy.
"""

from __future__ import annotations

import re

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, contains_any, fail
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list

_TAG = re.compile(r":[\w][\w.-]{0,127}(/)?")
_SEMVER = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")


def _images(res: Resource) -> list[tuple[int, str]]:
    """(index, image) of the containers that name one; four checks read them, so they are
    listed once per resource (``Resource.derived``)."""
    found: list[tuple[int, str]] | None = res.derived.get("container images")
    if found is None:
        containers = _list((res.pod_spec or {}).get("containers"))
        found = res.derived["container images"] = [(i, c["image"]) for i, c in enumerate(containers)
                                                   if isinstance(c, dict) and isinstance(c.get("image"), str)]
    return found


def _triplet(version: str) -> tuple[int, int, int] | None:
    parts = version.split(".")
    if len(parts) != 3:
        return None
    try:
        a, b, c = (float(p) for p in parts)
    except ValueError:
        return None
    return int(a), int(b), int(c)


def _after_v(image: str) -> str | None:
    parts = image.split(":v")
    return parts[1] if len(parts) > 1 else None


def argocd_cve_2022_24348(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0081: an Argo CD image older than 2.1.9 / 2.2.4 (path traversal in Helm charts)."""
    paths = []
    for i, image in _images(res):
        version = _after_v(image) if "argocd:v" in image else None
        t = _triplet(version) if version else None
        if t and (t[0] == 1 or (t[0] == 2 and (t[1] == 0 or (t[1] == 1 and t[2] < 9) or (t[1] == 2 and t[2] < 4)))):
            paths.append(f"{res.pod_path}containers[{i}].image")
    return fail(paths, [], "runs an Argo CD release vulnerable to CVE-2022-24348") if paths else PASSED


def kyverno_cve_2022_47633(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0091: a Kyverno image 1.8.3 or 1.8.4 (signature verification bypass)."""
    paths = []
    for i, image in _images(res):
        version = _after_v(image) if "kyverno:" in image else None
        t = _triplet(version) if version else None
        if t and t[0] == 1 and t[1] == 8 and 3 <= t[2] < 5:
            paths.append(f"{res.pod_path}containers[{i}].image")
    return fail(paths, [], "runs a Kyverno release vulnerable to CVE-2022-47633") if paths else PASSED


NGINX_CONTROLLER_MARKERS = ("nginx-controller", "ingress-controller", "ingress-nginx")


def nginx_snippet_cve_2021_25742(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0059: an ingress-nginx controller before 0.49.1/1.0.1 in a namespace where no ConfigMap
    sets allow-snippet-annotations: "false"."""
    ns = _dict(res.obj.get("metadata")).get("namespace")
    if ns is None:
        return PASSED
    snippets_off = ctx.memo("nginx-snippets-off", lambda: {
        _dict(m.obj.get("metadata")).get("namespace") for m in ctx.of_kind("ConfigMap")
        if _dict(m.obj.get("data")).get("allow-snippet-annotations") == "false"})
    if ns in snippets_off:
        return PASSED
    paths = []
    for i, image in _images(res):
        if not contains_any(image, NGINX_CONTROLLER_MARKERS):
            continue
        if not any(not m.group(0).endswith("/") for m in _TAG.finditer(image)):
            continue
        found = _SEMVER.search(image)
        if not found:
            continue
        a, b, c = (int(x) for x in found.group(0).split("."))
        if (a == 0 and (b < 49 or (b == 49 and c == 0))) or (a, b, c) == (1, 0, 0):
            paths.append(f"{res.pod_path}containers[{i}].image")
    return fail(paths, [], "runs an ingress-nginx controller vulnerable to CVE-2021-25742") if paths else PASSED


SUPPORTED_KUBELET_VERSIONS = ("v1.36", "v1.35", "v1.34")


def outdated_kubelet(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0273: a Node's kubelet is not one of the supported minor versions."""
    version = _dict(_dict(res.obj.get("status")).get("nodeInfo")).get("kubeletVersion")
    if not isinstance(version, str) or any(version.startswith(v) for v in SUPPORTED_KUBELET_VERSIONS):
        return PASSED
    return fail(["status.nodeInfo.kubeletVersion"], [], f"kubelet {version} is no longer supported")


def psp_not_enabled(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0068 (psp-enabled-native): a Pod's first container passes --enable-admission-plugins
    without PodSecurityPolicy (an API server pod)."""
    containers = _list(_dict(res.obj.get("spec")).get("containers"))
    first = _dict(containers[0]) if containers else {}
    command = first.get("command")
    if not isinstance(command, list):
        return PASSED
    flags = command + _list(first.get("args"))
    paths = []
    for j, flag in enumerate(flags):
        if isinstance(flag, str) and "--enable-admission-plugins=" in flag and "PodSecurityPolicy" not in flag.split("=")[1]:
            paths.append(f"spec.containers[0].command[{j}]" if j < len(command) else f"spec.containers[0].args[{j - len(command)}]")
    return fail(paths, [], "the API server does not enable the PodSecurityPolicy admission plugin") if paths else PASSED


def grafana_cve_2022_39328(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0090: a Grafana image 9.2.0-9.2.3 (authentication bypass)."""
    paths = []
    for i, image in _images(res):
        if "grafana:" not in image:
            continue
        parts = image.replace("-ubuntu", "").split(":")
        t = _triplet(parts[1]) if len(parts) > 1 else None
        if t and t[0] == 9 and t[1] == 2 and t[2] < 4:
            paths.append(f"{res.pod_path}containers[{i}].image")
    return fail(paths, [], "runs a Grafana release vulnerable to CVE-2022-39328") if paths else PASSED
