"""The engine's in-memory view of one scanned object, and of what the controls found.

A ``Resource`` is built once per object and carries what nearly every control needs (the pod
spec and where it sits), so each control is a few lines over plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Where each workload kind keeps its pod spec (Kubescape's rules use the same table).
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
WORKLOAD_KINDS = frozenset(POD_SPEC_PATHS)
_POD_SPECS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...] | None]] = {
    kind: (keys, ".".join(keys) + ".", keys[:-1] + ("metadata",) if kind != "Pod" else None)
    for kind, keys in POD_SPEC_PATHS.items()
}
"""Per workload kind: the keys to its pod spec, their dotted prefix (``Resource.pod_path``) and
the keys to its pod template's metadata (None: a Pod's own), worked out once, not per object."""
RBAC_BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})
RBAC_ROLE_KINDS = frozenset({"Role", "ClusterRole"})

# Kinds that never live in a namespace: their resourceID has an empty namespace part.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
        "CustomResourceDefinition", "StorageClass", "PriorityClass", "IngressClass",
        "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
        "PodSecurityPolicy", "RuntimeClass", "CSIDriver", "CSINode", "VolumeAttachment",
    }
)


def dict_at(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` when it is a mapping, else ``{}``: scanned objects are untrusted, any field may be absent or malformed."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


_FNV_CACHE: dict[str, int] = {}


def fnv32a(text: str) -> int:
    """FNV-1a, 32 bits: Kubescape's ``path=<n>`` part of a file resource's ID is this of the path.

    Memoised: every document of a file shares its path, and the loop is pure Python.
    """
    cached = _FNV_CACHE.get(text)
    if cached is not None:
        return cached
    if len(_FNV_CACHE) > 100_000:
        _FNV_CACHE.clear()
        _FNV_DIRS.clear()
    # The hash runs over the bytes in order, so a directory's state is hashed once and each file
    # name continues from it ("/" is one byte in UTF-8: the split keeps every character whole).
    directory, slash, name = text.rpartition("/")
    if slash:
        state = _FNV_DIRS.get(directory)
        if state is None:
            state = _FNV_DIRS[directory] = _fnv32a(directory + slash)
        h = _fnv32a(name, state)
    else:
        h = _fnv32a(text)
    _FNV_CACHE[text] = h
    return h


_FNV_DIRS: dict[str, int] = {}
"""The hash state after each directory's path and its slash (see ``fnv32a``)."""


def _fnv32a(text: str, h: int = 0x811C9DC5) -> int:
    for byte in text.encode("utf-8"):
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _dig(obj: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


@dataclass(slots=True)
class Resource:
    """One Kubernetes object under scan."""

    obj: dict[str, Any]
    kind: str
    api_version: str
    namespace: str
    """As written; ``""`` when the manifest leaves it out (Kubescape keeps it empty too)."""
    name: str
    resource_id: str
    relative_path: str = ""
    root: str = ""
    document: int = 0
    """0-based position of the YAML document in its file (with ``relative_path``, where it was read)."""
    pod_spec: dict[str, Any] | None = None
    pod_path: str = ""
    """Dotted prefix of the pod spec, ending in a dot: ``spec.template.spec.``."""
    pod_labels: dict[str, Any] = field(default_factory=dict)
    pod_annotations: dict[str, Any] = field(default_factory=dict)
    weight_tenths: int = 10
    """Kubescape's risk weight in tenths: 1 (10), or replicas x 1.1 (replicas x 11) when there is
    more than one replica. Integers, so a control's sum of them is exact in any order: summed as
    floats, the scores' last digits changed with how the resources were split between workers."""
    origin: dict[str, str] | None = None
    """Rendered objects only: ``helmChartName`` or ``kustomizeDirectoryName`` (report ``source``)."""
    container_lists: dict[tuple[str, ...], tuple[tuple[str, dict[str, Any]], ...]] = field(
        default_factory=dict, repr=False, compare=False)
    """``controls.workload.containers`` per tuple of list names, built on first use: some sixty
    controls walk the same containers of every workload."""
    derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """Other values several checks derive from the object alike, each built on first use by the
    one helper that names it (the checks never change the objects they judge)."""

    @property
    def effective_namespace(self) -> str:
        """The namespace Kubernetes would put it in (an empty one means ``default``)."""
        return self.namespace or "default"

    def containers(self) -> list[tuple[str, dict[str, Any]]]:
        """(dotted path, container) for containers and init containers, in order."""
        out: list[tuple[str, dict[str, Any]]] = []
        spec = self.pod_spec
        if not spec:
            return out
        for key in ("containers", "initContainers"):
            items = spec.get(key)
            if isinstance(items, list):
                for i, c in enumerate(items):
                    if isinstance(c, dict):
                        out.append((f"{self.pod_path}{key}[{i}]", c))
        return out

def make_resource(obj: dict[str, Any], relative_path: str = "", root: str = "", cluster: bool = False,
                  document: int = 0, origin: dict[str, str] | None = None) -> Resource:
    """Wrap an object, computing its Kubescape resourceID and its pod spec, once."""
    kind = str(obj.get("kind") or "")
    api_version = str(obj.get("apiVersion") or "")
    meta = dict_at(obj, "metadata")
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "")
    if kind in CLUSTER_SCOPED_KINDS:
        namespace = ""
    # Kubescape writes core objects as "/v1" (empty group) and grouped ones as "apps/v1".
    api = api_version if "/" in api_version else f"/{api_version}"
    if cluster:
        resource_id = f"{api}/{namespace}/{kind}/{name}"
    else:
        resource_id = f"path={fnv32a(relative_path)}/api={api}/{namespace}/{kind}/{name}"
    res = Resource(obj, kind, api_version, namespace, name, resource_id, relative_path, root, document)
    res.origin = origin
    pod = _POD_SPECS.get(kind)
    if pod is not None:
        keys, pod_path, template_keys = pod
        spec = _dig(obj, keys)
        if isinstance(spec, dict):
            res.pod_spec = spec
            res.pod_path = pod_path
            template_meta = _dig(obj, template_keys) if template_keys is not None else meta
            if isinstance(template_meta, dict):
                labels = template_meta.get("labels")
                annotations = template_meta.get("annotations")
                res.pod_labels = labels if isinstance(labels, dict) else {}
                res.pod_annotations = annotations if isinstance(annotations, dict) else {}
    spec = obj.get("spec")
    if isinstance(spec, dict):
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas > 1:
            res.weight_tenths = replicas * 11
    if kind == "DaemonSet":
        status = obj.get("status")
        scheduled = status.get("desiredNumberScheduled") if isinstance(status, dict) else None
        if isinstance(scheduled, int) and not isinstance(scheduled, bool) and scheduled > 0:
            res.weight_tenths *= scheduled
    return res


@dataclass(slots=True)
class Finding:
    """One failed control on one resource: where it fails and how to fix it."""

    failed_paths: list[str] = field(default_factory=list)
    fix_paths: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""
    exception: dict[str, str] | None = None
    """The accepted risk that covers it (name, source, reason): reported passed, w/exceptions."""
    expired: dict[str, str] | None = None
    """An inline exception whose kubescape.io/skip-expiry has passed: the finding still fails."""

    def copy(self) -> Finding:
        """A shallow copy (the path lists shared), for another control with the same check:
        ``copy.copy`` goes through ``__reduce_ex__`` for a slotted class, several times slower."""
        return Finding(self.failed_paths, self.fix_paths, self.message, self.exception, self.expired)
