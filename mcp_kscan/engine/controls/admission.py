"""What admission control the manifests set up (regolibrary v2.0.33): Pod Security Admission
labels on namespaces, PodSecurityPolicies, and the default service accounts.

The PodSecurityPolicy rules judge the policies together: a PSP fails only when *every* scanned
PSP allows the thing (one strict policy is enough, as PSPs are ORed by the admission controller).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Check, Verdict, fail
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list

ENFORCE = "pod-security.kubernetes.io/enforce"


def _labels(res: Resource) -> dict[str, Any]:
    return _dict(_dict(res.obj.get("metadata")).get("labels"))


def _external_policy_control(ctx: ScanContext) -> bool:
    """A scanned admission webhook with a rule whose scope is not Cluster (Kyverno, Gatekeeper...)."""
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for hook_config in ctx.of_kind(kind):
            for hook in _list(hook_config.obj.get("webhooks")):
                if any(_dict(r).get("scope") != "Cluster" for r in _list(_dict(hook).get("rules"))):
                    return True
    return False


def psa_enforced(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0192: the namespace has no pod-security.kubernetes.io/enforce* label and no admission
    webhook among the scanned objects enforces policies instead."""
    if _external_policy_control(ctx) or any(str(k).startswith(ENFORCE) for k in _labels(res)):
        return PASSED
    return fail([], [(f"metadata.labels[{ENFORCE}]", "YOUR_VALUE")], f"namespace {res.name!r} enforces no pod security level")


def _psa_level(levels: tuple[str, ...], fix: str) -> Check:
    def check(res: Resource, ctx: ScanContext) -> Verdict:
        if _labels(res).get(ENFORCE) in levels:
            return PASSED
        return fail([], [(f"metadata.labels[{ENFORCE}]", fix)], f"namespace {res.name!r} does not enforce the {fix} level")

    return check


psa_baseline = _psa_level(("baseline", "restricted"), "baseline")  # C-0193..C-0196, C-0199, C-0202..C-0204
psa_restricted = _psa_level(("restricted",), "restricted")  # C-0197, C-0198, C-0200, C-0201


def _psp_rule(bad: Callable[[dict[str, Any]], bool], path: str, what: str) -> Check:
    def check(res: Resource, ctx: ScanContext) -> Verdict:
        policies = ctx.of_kind("PodSecurityPolicy") or [res]
        if all(bad(_dict(p.obj.get("spec"))) for p in policies):
            return fail([path] if path else [], [], f"every PodSecurityPolicy {what}")
        return PASSED

    return check


def _no_root(spec: dict[str, Any]) -> bool:
    run_as = _dict(spec.get("runAsUser"))
    if run_as.get("rule") == "MustRunAsNonRoot":
        return True
    return run_as.get("rule") == "MustRunAs" and any(
        isinstance(_dict(r).get("min"), (int, float)) and _dict(r)["min"] > 0 for r in _list(run_as.get("ranges")))


psp_host_pid = _psp_rule(lambda s: s.get("hostPID") is True, "spec.hostPID", "allows hostPID")  # C-0214
psp_host_ipc = _psp_rule(lambda s: s.get("hostIPC") is True, "spec.hostIPC", "allows hostIPC")  # C-0215
psp_host_network = _psp_rule(lambda s: s.get("hostNetwork") is True, "spec.hostNetwork", "allows hostNetwork")  # C-0216
psp_privilege_escalation = _psp_rule(lambda s: s.get("allowPrivilegeEscalation") is True,
                                     "spec.allowPrivilegeEscalation", "allows privilege escalation")  # C-0217
psp_root = _psp_rule(lambda s: not _no_root(s), "spec.runAsUser.rule", "allows root containers")  # C-0218
psp_allowed_capabilities = _psp_rule(lambda s: bool(_list(s.get("allowedCapabilities")) or _dict(s.get("allowedCapabilities"))),
                                     "spec.allowedCapabilities", "allows added capabilities")  # C-0219
psp_required_drop = _psp_rule(lambda s: not (_list(s.get("requiredDropCapabilities")) or _dict(s.get("requiredDropCapabilities"))),
                              "", "leaves requiredDropCapabilities empty")  # C-0220


def default_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0189 (automount-default-service-account): a ``default`` ServiceAccount that does not set
    automountServiceAccountToken: false."""
    if res.kind == "Namespace":
        return namespace_without_service_account(res, ctx)
    if res.name != "default":
        return PASSED
    setting = res.obj.get("automountServiceAccountToken")
    if setting is True:
        return fail(["automountServiceAccountToken"], [], "the default service account mounts its token")
    if setting is False:
        return PASSED
    return fail([], [("automountServiceAccountToken", "false")], "the default service account mounts its token")


def namespace_without_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0189 (namespace-without-service-account): a namespace with no service account of its own
    (one not named ``default``) among the scanned objects."""
    for sa in ctx.of_kind("ServiceAccount"):
        meta = _dict(sa.obj.get("metadata"))
        if meta.get("namespace") == res.name and meta.get("name") != "default":
            return PASSED
    return fail([], [], f"namespace {res.name!r} has only the default service account")
