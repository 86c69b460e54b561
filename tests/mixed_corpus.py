"""A generated manifest folder with what breaks uniform verdicts: failures among passes, accepted
risk (current and expired) inside the same controls, namespaces (one non-ASCII, some none),
several kinds, a twice-written object, a file without objects, and optionally a broken file.

Shared by the digest's tests (tests/engine/test_digest.py) and the store's views tests
(tests/runner/test_item_views.py), each with the mix it needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PRIVILEGED = {"privileged": True, "runAsUser": 0}
HARDENED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def workload(kind: str, name: str, namespace: str | None, secure: bool,
             annotations: dict[str, str] | None = None, replicas: int = 3) -> dict[str, Any]:
    """A Pod, or a workload of ``kind`` with one container, hardened or privileged."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    container = {"name": "app", "image": "nginx:1.25", "securityContext": HARDENED if secure else PRIVILEGED}
    pod_spec = {"containers": [container]}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}}


def mixed_corpus(root: Path, *, files: int, kinds: Sequence[str], secure: Callable[[int], bool],
                 exceptions_every: int, name: Callable[[int], str], replicas: int = 3,
                 broken: bool = False) -> Path:
    """``root/manifests``: file ``i`` holds workload ``name(i)`` (``kinds[i % len(kinds)]``,
    hardened when ``secure(i)``), a Service and a ConfigMap; every ``exceptions_every`` files, at
    offsets 1 and 2, also a Pod with accepted risk, current and expired."""
    folder = root / "manifests"
    for i in range(files):
        ns = ["prod", "staging", "équipe-β", None][i % 4]
        docs = [workload(kinds[i % len(kinds)], name(i), ns, secure=secure(i), replicas=replicas)]
        if i % exceptions_every == 1:
            docs.append(workload("Pod", f"skipped-{i}", ns, secure=False, annotations={
                "kubescape.io/skip-controls": "C-0057,C-0013", "kubescape.io/skip-reason": "vendor driver"}))
        if i % exceptions_every == 2:
            docs.append(workload("Pod", f"expired-{i}", ns, secure=False, annotations={
                "kubescape.io/skip-controls": "C-0057", "kubescape.io/skip-reason": "until the fix",
                "kubescape.io/skip-expiry": "2020-01-01"}))
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": ns or "default"},
                     "spec": {"type": "NodePort" if i % 2 else "ClusterIP", "ports": [{"port": 80}]}})
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cfg-{i}"}, "data": {"k": "v"}})
        path = folder / f"team-{i % 3}" / f"{name(i)}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n---\n".join(json.dumps(d, ensure_ascii=False) for d in docs), encoding="utf-8")
    twice = workload("Deployment", "twice", "prod", secure=False, replicas=replicas)
    (folder / "twice.yaml").write_text(f"{json.dumps(twice)}\n---\n{json.dumps(twice)}\n")
    (folder / "rbac.yaml").write_text(json.dumps({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "admin-ish"},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}))
    if broken:
        (folder / "broken.yaml").write_text("kind: Pod\nmetadata: {name: [unclosed\n")
    (folder / "values.yaml").write_text("replicaCount: 2\n")
    return folder
