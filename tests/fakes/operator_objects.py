"""Operator objects for the fake API: the real samples in ../shared (read in place) and bulk copies.

The bulk objects are built from the real samples' own vulnerability entries (Trivy) and Grype
matches (Kubescape), so only names, namespaces and images are made up: what the readers parse
is real operator output. Used by tests/operators and benchmarks/bench_operators.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

SHARED_OPERATORS = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "operators"
"""../shared/fixtures/operators, seen from the repository root."""

TRIVY_RS_DEPLOYMENTS = {
    ("default", "nginx-deployment-965685897"): "nginx-deployment",
    ("kube-system", "coredns-558bd4d5db"): "coredns",
    ("default", "wordpress-84bbf6f4dd"): "wordpress",
}
"""The ReplicaSets the Trivy samples name, and the Deployments that own them (by their names)."""


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    # The C loader: the pure-Python one takes seconds on the 515 kB Kubescape sample.
    doc = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=yaml.CSafeLoader)
    # YAML timestamps become datetimes; the API serves them as RFC 3339 strings.
    return json.loads(json.dumps(doc, default=lambda o: o.isoformat().replace("+00:00", "Z")))


def kubescape_samples(root: Path = SHARED_OPERATORS) -> list[dict[str, Any]]:
    return [_load(p) for p in sorted((root / "kubescape").iterdir()) if p.suffix in (".json", ".yaml")]


def trivy_samples(root: Path = SHARED_OPERATORS) -> list[dict[str, Any]]:
    wanted = ("vulnerabilityreport-", "configauditreport-")
    return [_load(p) for p in sorted((root / "trivy").iterdir()) if p.name.startswith(wanted)]


def replica_set(namespace: str, name: str, deployment: str, revision: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                 "uid": f"uid-{deployment}", "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {"replicas": 1},
    }


def sample_replica_sets() -> list[dict[str, Any]]:
    return [replica_set(ns, rs, dep) for (ns, rs), dep in TRIVY_RS_DEPLOYMENTS.items()]


def namespaces_of(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}


# --------------------------------------------------------------------------- bulk


def bulk_trivy(count: int, template: dict[str, Any], *, namespaces: int = 20, images: int = 50,
               per_report: int = 8, seed: int = 1) -> list[dict[str, Any]]:
    """``count`` VulnerabilityReports (each on a Deployment's ReplicaSet) plus those ReplicaSets."""
    rnd = random.Random(seed)
    vulns = template["report"]["vulnerabilities"]
    out: list[dict[str, Any]] = []
    for i in range(count):
        ns = f"team-{i % namespaces:02d}"
        deployment = f"app-{i:05d}"
        rs = f"{deployment}-{rnd.randrange(16**9):09x}"
        img = i % images
        report = json.loads(json.dumps(template))
        report["metadata"] = {
            "name": f"replicaset-{rs}-main",
            "namespace": ns,
            "labels": {"trivy-operator.resource.kind": "ReplicaSet", "trivy-operator.resource.name": rs,
                       "trivy-operator.resource.namespace": ns, "trivy-operator.container.name": "main"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": f"uid-{rs}",
                                 "controller": True}],
        }
        chosen = rnd.sample(vulns, min(per_report, len(vulns)))
        report["report"]["vulnerabilities"] = chosen
        report["report"]["artifact"] = {"repository": f"team/service-{img:02d}", "tag": f"1.{img % 7}"}
        report["report"]["registry"] = {"server": "registry.example.com"}
        summary = {k: 0 for k in ("criticalCount", "highCount", "mediumCount", "lowCount", "unknownCount", "noneCount")}
        for v in chosen:
            summary[f"{v['severity'].lower()}Count"] = summary.get(f"{v['severity'].lower()}Count", 0) + 1
        report["report"]["summary"] = summary
        out.append(report)
        out.append(replica_set(ns, rs, deployment))
    return out


def bulk_kubescape(summaries: int, manifest_templates: list[dict[str, Any]], *, images: int = 100,
                   namespaces: int = 20, per_manifest: int = 30, seed: int = 2) -> list[dict[str, Any]]:
    """``images`` image-level VulnerabilityManifests (in ``kubescape``) and ``summaries`` workload
    summaries pointing at them, with counts that agree with the manifests' matches."""
    rnd = random.Random(seed)
    matches = [m for t in manifest_templates for m in (t["spec"]["payload"].get("matches") or [])]
    payload_base = {k: v for k, v in manifest_templates[0]["spec"]["payload"].items() if k != "matches"}
    out: list[dict[str, Any]] = []
    counts: list[dict[str, int]] = []
    for i in range(images):
        chosen = rnd.sample(matches, min(per_manifest, len(matches)))
        digest = f"{i:064x}"
        out.append({
            "apiVersion": "spdx.softwarecomposition.kubescape.io/v1beta1",
            "kind": "VulnerabilityManifest",
            "metadata": {
                "name": f"registry.example.com-team-image-{i:03d}-sha256-{digest}-{digest[-6:]}",
                "namespace": "kubescape",
                "labels": {"kubescape.io/context": "non-filtered", "kubescape.io/image-name": f"team-image-{i:03d}"},
                "annotations": {"kubescape.io/image-id": f"registry.example.com/team/image-{i:03d}@sha256:{digest}",
                                "kubescape.io/image-tag": f"2.{i % 5}", "kubescape.io/status": ""},
            },
            "spec": {"metadata": {"withRelevancy": False, "tool": {"name": "grype", "version": "v0.61.0"}},
                     "payload": {**payload_base, "matches": chosen}},
        })
        tally: dict[str, int] = {}
        for m in chosen:
            level = m["vulnerability"]["severity"].lower()
            tally[level] = tally.get(level, 0) + 1
        counts.append(tally)
    for j in range(summaries):
        i = j % images
        ns = f"team-{j % namespaces:02d}"
        name = f"svc-{j:05d}"
        digest = f"{i:064x}"
        out.append({
            "apiVersion": "spdx.softwarecomposition.kubescape.io/v1beta1",
            "kind": "VulnerabilityManifestSummary",
            "metadata": {
                "name": f"deployment-{name}-main",
                "namespace": ns,
                "labels": {"kubescape.io/context": "non-filtered", "kubescape.io/workload-api-group": "apps",
                           "kubescape.io/workload-api-version": "v1", "kubescape.io/workload-container-name": "main",
                           "kubescape.io/workload-kind": "deployment", "kubescape.io/workload-name": name,
                           "kubescape.io/workload-namespace": ns},
                "annotations": {"kubescape.io/image-id": f"registry.example.com/team/image-{i:03d}@sha256:{digest}",
                                "kubescape.io/wlid": f"wlid://cluster-bench/namespace-{ns}/deployment-{name}",
                                "kubescape.io/workload-container-name": "main"},
            },
            "spec": {
                "severities": {level: {"all": counts[i].get(level, 0)}
                               for level in ("critical", "high", "medium", "low", "negligible", "unknown")},
                "vulnerabilitiesRef": {
                    "all": {"kind": "vulnerabilitymanifests", "namespace": ns,
                            "name": f"registry.example.com-team-image-{i:03d}-sha256-{digest}-{digest[-6:]}"},
                    "relevant": {"kind": "", "name": "", "namespace": ""},
                },
            },
        })
    return out


def namespace_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}
            for ns in sorted(namespaces_of(objects))]


__all__ = [
    "SHARED_OPERATORS",
    "TRIVY_RS_DEPLOYMENTS",
    "bulk_kubescape",
    "bulk_trivy",
    "kubescape_samples",
    "namespace_objects",
    "replica_set",
    "sample_replica_sets",
    "trivy_samples",
]
