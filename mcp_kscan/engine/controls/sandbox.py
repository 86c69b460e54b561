"""Agent Sandbox templates (``SandboxTemplate``, agents.x-k8s.io), regolibrary v2.0.33: a hardened
runtime class, and resource ceilings from the sandbox_* control inputs."""

from __future__ import annotations

from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, YOUR_VALUE, AllRules, Check, Verdict, fail, merge
from mcp_kscan.engine.controls.resources import memory_bytes
from mcp_kscan.engine.controls.workload import truthy
from mcp_kscan.engine.model import Finding, Resource
from mcp_kscan.engine.controls.base import as_dict as _dict

_CPU_SUFFIXES: tuple[tuple[str, float], ...] = (
    ("n", 1 / 1_000_000), ("u", 1 / 1000), ("m", 1), ("k", 1e6), ("M", 1e9), ("G", 1e12), ("T", 1e15),
    ("P", 1e18), ("E", 1e21),
)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def sandbox_millicores(value: Any) -> float | None:
    """The sandbox rule's CPU reading (it knows n, u, m and the decimal multipliers)."""
    s = str(value)
    for suffix, factor in _CPU_SUFFIXES:
        if s.endswith(suffix):
            n = _number(s[: -len(suffix)])
            return None if n is None else n * factor
    n = _number(s)
    return None if n is None else n * 1000


def _pod_spec(res: Resource) -> dict[str, Any]:
    return _dict(_dict(_dict(res.obj.get("spec")).get("podTemplate")).get("spec"))


def hardened_runtime_class(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0297: the template's pods run without one of the hardenedSandboxRuntimeClasses."""
    runtime_class = _pod_spec(res).get("runtimeClassName", "")
    if runtime_class not in ("", None) and runtime_class in ctx.input("hardenedSandboxRuntimeClasses"):
        return PASSED
    return fail([], [("spec.podTemplate.spec.runtimeClassName", YOUR_VALUE)],
                f"SandboxTemplate {res.name!r} does not use a hardened runtime class")


def _ceiling(resource: str, convert: Any, input_key: str) -> Check:
    def check(res: Resource, ctx: ScanContext) -> Verdict:
        out: list[Finding] = []
        containers = _pod_spec(res).get("containers")
        for i, c in enumerate(containers if isinstance(containers, list) else []):
            path = f"spec.podTemplate.spec.containers[{i}].resources.limits.{resource}"
            value = _dict(_dict(_dict(c).get("resources")).get("limits")).get(resource)
            if not truthy(value):
                out.append(fail([], [(path, YOUR_VALUE)], f"container {i} sets no {resource} limit"))
                continue
            given = convert(value)
            for bound in ctx.input(input_key):
                limit = convert(bound)
                if given is not None and limit is not None and given > limit:
                    out.append(fail([path], [], f"container {i}'s {resource} limit {value} is above {bound}"))
                    break
        return merge(out)

    return check


cpu_ceiling = _ceiling("cpu", sandbox_millicores, "sandbox_cpu_limit_max")
memory_ceiling = _ceiling("memory", memory_bytes, "sandbox_memory_limit_max")

# C-0303 has one rule per resource, judged apart by their own test cases.
CEILING_RULES: tuple[tuple[str, Check], ...] = (
    ("resources-sandbox-cpu-limits", cpu_ceiling),
    ("resources-sandbox-memory-limits", memory_ceiling),
)


resource_ceilings = AllRules(CEILING_RULES)
"""C-0303: a container without CPU/memory limits, or above the sandbox ceilings."""


def _images(res: Resource) -> list[tuple[str, str]]:
    spec = _pod_spec(res)
    out = []
    for key in ("containers", "initContainers"):
        items = spec.get(key)
        for i, c in enumerate(items if isinstance(items, list) else []):
            image = _dict(c).get("image", "")
            if isinstance(image, str) and image != "":
                out.append((f"spec.podTemplate.spec.{key}[{i}].image", image))
    return out


def _host_wrapped(image: str) -> str:
    parts = image.split("/")
    if len(parts) == 1:
        return f"docker.io/{image}"
    first = parts[0]
    return image if ("." in first or ":" in first or first == "localhost") else f"docker.io/{image}"


def _matches_registry(image: str, registry: str) -> bool:
    if registry.endswith("/"):
        return image.startswith(registry)
    if image.startswith(registry + "/") or image == registry:
        return True
    return "/" in registry and (image.startswith(registry + ":") or image.startswith(registry + "@"))


def registry_allowlist(res: Resource, ctx: ScanContext) -> Verdict:
    """agent-sandbox-image-registry-allowlist: an image outside imageRepositoryAllowList."""
    allowed = ctx.input("imageRepositoryAllowList")
    paths = [p for p, image in _images(res) if not any(_matches_registry(_host_wrapped(image), r) for r in allowed)]
    return fail(paths, [], "images come from registries outside the allowed list") if paths else PASSED


def _tag(image: str) -> str | None:
    parts = image.split("/")[-1].split(":")
    return parts[1] if len(parts) == 2 else None


def tag_provenance(res: Resource, ctx: ScanContext) -> Verdict:
    """agent-sandbox-image-tag-provenance: an untagged, :latest or floating-tag image (no digest)."""
    floating = set(ctx.input("floatingImageTags"))
    paths = []
    for p, image in _images(res):
        if "@" in image:
            continue
        tag = _tag(image)
        if tag is None or tag == "latest" or tag in floating:
            paths.append(p)
    return fail(paths, [], "images are not pinned to a version tag or digest") if paths else PASSED


PROVENANCE_RULES: tuple[tuple[str, Check], ...] = (
    ("agent-sandbox-image-registry-allowlist", registry_allowlist),
    ("agent-sandbox-image-tag-provenance", tag_provenance),
)


image_provenance = AllRules(PROVENANCE_RULES)
"""C-0304: images from an allowed registry, pinned to a version or digest."""


UNIVERSAL_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


def _selector_non_empty(sel: dict[str, Any]) -> bool:
    labels, expressions = sel.get("matchLabels"), sel.get("matchExpressions")
    return (isinstance(labels, dict) and len(labels) > 0) or (isinstance(expressions, list) and len(expressions) > 0)


def _peer_scoped(peer: Any) -> bool:
    if not isinstance(peer, dict):
        return False
    ip_block = peer.get("ipBlock")
    if isinstance(ip_block, dict):
        cidr = ip_block.get("cidr", "")
        if isinstance(cidr, str) and cidr != "" and cidr not in UNIVERSAL_CIDRS:
            return True
    return any(isinstance(peer.get(k), dict) and _selector_non_empty(peer[k]) for k in ("podSelector", "namespaceSelector"))


def _egress_rule_scoped(rule: Any) -> bool:
    to = rule.get("to") if isinstance(rule, dict) else None
    return isinstance(to, list) and len(to) > 0 and all(_peer_scoped(p) for p in to)


def egress_policy(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0301: the template does not let the controller manage a network policy whose every egress
    rule is scoped to specific peers (no universal CIDR, no empty selectors)."""
    spec = _dict(res.obj.get("spec"))
    management = spec.get("networkPolicyManagement", "Managed")
    if management is None:
        management = "Managed"
    if management != "Managed":
        return fail(["spec.networkPolicyManagement"], [], "the sandbox's network policy is not managed")
    policy = spec.get("networkPolicy")
    if not isinstance(policy, dict):
        return fail(["spec.networkPolicy"], [], "the sandbox has no network policy")
    egress = policy.get("egress", [])
    if egress is not None and not isinstance(egress, list):
        return fail(["spec.networkPolicy.egress"], [], "the network policy's egress is malformed")
    if isinstance(egress, list) and any(not _egress_rule_scoped(r) for r in egress):
        return fail(["spec.networkPolicy.egress"], [], "an egress rule reaches any destination")
    return PASSED
