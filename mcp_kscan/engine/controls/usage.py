"""What workloads use and refer to: secrets, volumes, service accounts, images, other objects
(regolibrary v2.0.33). Checks that look at another object find it in the scan context; a
reference to an object that is not among the scanned objects is judged as the rule judges it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.base import PASSED, Verdict, fail, merge
from mcp_kscan.engine.controls.workload import ALL_CONTAINERS, containers, truthy
from mcp_kscan.engine.model import Finding, Resource
from mcp_kscan.engine.controls.base import as_dict as _dict, as_list as _list, metadata_of as _meta


def _namespace(obj: dict[str, Any]) -> str:
    """The rules' namespace of an object: as written, "default" when missing."""
    return str(_meta(obj).get("namespace") or "default")


def secrets_in_env(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0207: an environment variable reads a Secret (valueFrom.secretKeyRef)."""
    paths = [f"{path}.env[{j}].name" for path, c in containers(res)
             for j, env in enumerate(_list(c.get("env")))
             if isinstance(env, dict) and isinstance(source := env.get("valueFrom"), dict)
             and truthy(source.get("secretKeyRef"))]
    return fail(paths, [], "secrets are passed as environment variables") if paths else PASSED


def old_k8s_registry(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0253: a kube-system workload pulls from the deprecated k8s.gcr.io registry."""
    if _meta(res.obj).get("namespace") != "kube-system":
        return PASSED
    paths = [f"{path}.image" for path, c in containers(res) if str(c.get("image") or "").startswith("k8s.gcr.io/")]
    return fail(paths, [], "images come from the deprecated k8s.gcr.io registry") if paths else PASSED


def _mounted_names(res: Resource) -> set[Any]:
    """The names of the volumes the containers mount: C-0255, C-0257 and C-0258 each read them,
    so they are gathered once per resource (``Resource.derived``)."""
    found: set[Any] | None = res.derived.get("mounted volume names")
    if found is None:
        found = res.derived["mounted volume names"] = {
            m.get("name") for _, c in containers(res) for m in _list(c.get("volumeMounts")) if isinstance(m, dict)}
    return found


def _mounted_volumes(res: Resource, source: str, matches: Any) -> Verdict:
    """Volumes of ``source`` type whose object ``matches(volume)`` and that a container mounts."""
    mounted = _mounted_names(res)
    out: list[Finding] = []
    for i, vol in enumerate(_list((res.pod_spec or {}).get("volumes"))):
        if isinstance(vol, dict) and truthy(vol.get(source)) and vol.get("name") in mounted and matches(vol):
            out.append(fail([f"{res.pod_path}volumes[{i}].{source}"], [], f"volume {vol.get('name')!r} mounts a {source}"))
    return merge(out)


def _names(ctx: ScanContext, kind: str) -> set[tuple[str, Any]]:
    """(namespace, name) of every scanned object of ``kind`` (built once per scan)."""
    return ctx.memo(("names", kind), lambda: {(_namespace(o.obj), _meta(o.obj).get("name")) for o in ctx.of_kind(kind)})


def _mounted_known(res: Resource, ctx: ScanContext, source: str, kind: str, name_key: str) -> Verdict:
    known = _names(ctx, kind)
    ns = res.effective_namespace  # ``_namespace(res.obj)``: a workload's namespace, "default" when missing
    return _mounted_volumes(res, source, lambda vol: (ns, _dict(vol.get(source)).get(name_key)) in known)


def mounted_secrets(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0255: a container mounts a Secret that is among the scanned objects (same namespace)."""
    return _mounted_known(res, ctx, "secret", "Secret", "secretName")


def mounted_pvcs(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0257: a container mounts a PersistentVolumeClaim that is among the scanned objects (same namespace)."""
    return _mounted_known(res, ctx, "persistentVolumeClaim", "PersistentVolumeClaim", "claimName")


def mounted_configmaps(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0258: a container mounts a ConfigMap that is among the scanned objects (same namespace)."""
    return _mounted_known(res, ctx, "configMap", "ConfigMap", "name")


def _sa_is_bound(ctx: ScanContext, sa: dict[str, Any]) -> bool:
    """The rule's test: some binding names the account (name, namespace and kind may each come from
    a different subject, as the rule writes it), or binds system:authenticated/serviceaccounts."""
    name, ns = _meta(sa).get("name"), _meta(sa).get("namespace")
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        for b in ctx.of_kind(kind):
            subjects = [s for s in _list(b.obj.get("subjects")) if isinstance(s, dict)]
            names = {s.get("name") for s in subjects}
            if names & {"system:authenticated", "system:serviceaccounts"}:
                return True
            if (ns is not None and name in names and ns in {s.get("namespace") for s in subjects}
                    and "ServiceAccount" in {s.get("kind") for s in subjects}):
                return True
    return False


def service_account_token_mounted(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0261: the pods mount the token of a service account that has role bindings."""
    spec = res.pod_spec or {}
    name = spec.get("serviceAccountName") or "default"
    setting = spec.get("automountServiceAccountToken")
    sa = ctx.service_accounts.get((_namespace(res.obj), str(name)))
    if sa is None or not ctx.memo(("sa-bound", _namespace(sa), str(name)), lambda: _sa_is_bound(ctx, sa)):
        return PASSED
    p = f"{res.pod_path}automountServiceAccountToken"
    if setting is True:
        return fail([p], [], f"mounts the token of bound service account {name!r}")
    if setting is None and sa.get("automountServiceAccountToken") is not False:
        return fail([], [(p, "false")], f"mounts the token of bound service account {name!r}")
    return PASSED


def deprecated_service_account_field(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0294: spec.serviceAccount (deprecated) is set and serviceAccountName is missing or differs."""
    spec = res.pod_spec or {}
    if "serviceAccount" not in spec or spec.get("serviceAccount") is None:
        return PASSED
    if spec.get("serviceAccount") != spec.get("serviceAccountName", ""):
        return fail([f"{res.pod_path}serviceAccount"], [(f"{res.pod_path}serviceAccountName", str(spec.get("serviceAccount")))],
                    "uses the deprecated serviceAccount field")
    return PASSED


def duplicate_env(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0295: a container sets the same environment variable twice."""
    paths: list[str] = []
    for path, c in containers(res, ALL_CONTAINERS):
        names = [e.get("name") if isinstance(e, dict) else None for e in _list(c.get("env"))]
        try:
            repeated = len(set(names)) < len(names)
        except TypeError:  # an unhashable name (a list, a mapping): the counts tell
            repeated = True
        if repeated:
            paths += [f"{path}.env[{j}].name" for j, n in enumerate(names) if n is not None and names.count(n) > 1]
    return fail(paths, [], "an environment variable is set twice") if paths else PASSED


def no_rolling_update(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0305: a Deployment's strategy.type is set to something other than RollingUpdate."""
    strategy = _dict(_dict(res.obj.get("spec")).get("strategy"))
    if "type" in strategy and strategy.get("type") is not None and strategy.get("type") != "RollingUpdate":
        return fail(["spec.strategy.type"], [], f"strategy {strategy.get('type')!r} stops every pod before an update")
    return PASSED


_DIGEST = (re.compile(r"@sha256:[a-f0-9]{64}$"), re.compile(r"@sha512:[a-f0-9]{128}$"), re.compile(r"@blake3:[a-f0-9]{64}$"))
_OTHER_DIGEST = re.compile(r"@([a-z0-9]+([.+_-][a-z0-9]+)*):[a-zA-Z0-9=_-]+$")
_KNOWN_ALGORITHM = re.compile(r"@(sha256|sha512|blake3):")


def _has_digest(image: str) -> bool:
    if "@" not in image:  # every digest pattern starts with one
        return False
    if any(p.search(image) for p in _DIGEST):
        return True
    return bool(_OTHER_DIGEST.search(image)) and not _KNOWN_ALGORITHM.search(image)


def _exempt(image: str, repositories: tuple[str, ...]) -> bool:
    for repo in repositories:
        if image.startswith(repo):
            rest = image[len(repo):]
            if rest == "" or rest[0] in "/:@":
                return True
    return False


def image_not_pinned(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0306: an image is not pinned to a digest (imageDigestExemptRepositories are exempt)."""
    exempt = ctx.input("imageDigestExemptRepositories")
    paths = []
    for path, c in containers(res, ALL_CONTAINERS):
        image = c.get("image")
        if isinstance(image, str) and not _has_digest(image) and not _exempt(image, exempt):
            paths.append(f"{path}.image")
    return fail(paths, [], "images are not pinned to a digest") if paths else PASSED


def non_existent_service_account(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0307: serviceAccountName names an account that is not among the scanned objects
    ("default" and "" always exist)."""
    name = (res.pod_spec or {}).get("serviceAccountName")
    if name is None or name in ("default", ""):
        return PASSED
    ns = _namespace(res.obj)
    if (ns, str(name)) in ctx.service_accounts:
        return PASSED
    return fail([f"{res.pod_path}serviceAccountName"], [], f"service account {name!r} does not exist in {ns!r}")


def workloads_by_namespace(ctx: ScanContext) -> dict[str, list[Resource]]:
    """Every scanned workload by its namespace ("default" when unset), built once per scan."""
    def build() -> dict[str, list[Resource]]:
        out: dict[str, list[Resource]] = {}
        for wl in ctx.workloads():
            out.setdefault(_namespace(wl.obj), []).append(wl)
        return out
    return ctx.memo("workloads-by-namespace", build)


def _labels_match(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """The rule's match: every selector entry with a value (rego truth) equals the label."""
    return bool(selector) and all(k in labels and labels[k] == v for k, v in selector.items() if truthy(v))


def _workloads_by_label(ctx: ScanContext) -> dict[tuple[str, Any, Any], list[Resource]]:
    """(namespace, label, value) → the workloads whose pods carry that label, built once per scan
    (values that cannot be dict keys are left out: they never equal a selector's hashable value)."""
    def build() -> dict[tuple[str, Any, Any], list[Resource]]:
        out: dict[tuple[str, Any, Any], list[Resource]] = {}
        for ns, workloads in workloads_by_namespace(ctx).items():
            for wl in workloads:
                for key, value in wl.pod_labels.items():
                    try:
                        out.setdefault((ns, key, value), []).append(wl)
                    except TypeError:  # an unhashable label value (a list or a mapping)
                        continue
        return out
    return ctx.memo("workloads-by-label", build)


def _selector_candidates(ctx: ScanContext, ns: str, selector: dict[str, Any]) -> Sequence[Resource]:
    """The workloads that may match ``selector``: those carrying its first entry that has a value
    (every match must), else every workload of the namespace. Each is still checked in full."""
    for key, value in selector.items():
        if truthy(value):
            try:
                return _workloads_by_label(ctx).get((ns, key, value), ())
            except TypeError:  # an unhashable selector value: compare with every workload
                break
    return workloads_by_namespace(ctx).get(ns, ())


def service_with_no_workload(res: Resource, ctx: ScanContext) -> Verdict:
    """C-0293: a Service (not ExternalName) with a selector no scanned workload's pods match."""
    spec = _dict(res.obj.get("spec"))
    if spec.get("type", "ClusterIP") == "ExternalName":
        return PASSED
    selector = _dict(spec.get("selector"))
    if not selector:
        return PASSED
    for wl in _selector_candidates(ctx, _namespace(res.obj), selector):
        if _labels_match(selector, wl.pod_labels):
            return PASSED
    return fail(["spec.selector"], [], "no workload's pods match the selector")
