"""The Trivy operator's reports (CRDs in ``aquasecurity.github.io/v1alpha1``) as rows and findings.

A VulnerabilityReport is one container image of one workload, listed in full (CRDs have no
metadata-only list), so rows come straight from the list pages. Reports about a Deployment's
pods are owned by its current ReplicaSet and labelled with the ReplicaSet's name; the
ReplicaSet's owner reference says which Deployment it belongs to, so that is what rows name
when the ReplicaSets can be read (otherwise the ReplicaSet, with a warning).
"""

from __future__ import annotations

from typing import Any

import anyio

from mcp_kscan.errors import ClusterForbidden, KscanError
from mcp_kscan.operators.client import KubeReader, Resource
from mcp_kscan.operators.filters import VulnerabilityQuery, canonical_kind, normalise_vuln_id
from mcp_kscan.operators.models import (
    ImageRef,
    ObjectRef,
    OperatorFinding,
    PackageRef,
    PostureRead,
    VulnerabilityRead,
    VulnerabilityRow,
    WorkloadRef,
)
from mcp_kscan.operators.severity import RANK, SEVERITIES, TRIVY_SUMMARY_KEYS, config_severity, parse_severity
from mcp_kscan.reports import ResourceRef

GROUP, VERSION = "aquasecurity.github.io", "v1alpha1"
VULNERABILITY_REPORTS = Resource(GROUP, VERSION, "vulnerabilityreports")
CONFIG_AUDIT_REPORTS = Resource(GROUP, VERSION, "configauditreports")
REPLICA_SETS = Resource("apps", "v1", "replicasets")

KIND_LABEL = "trivy-operator.resource.kind"
NAME_LABEL = "trivy-operator.resource.name"
NAMESPACE_LABEL = "trivy-operator.resource.namespace"
CONTAINER_LABEL = "trivy-operator.container.name"
NAME_ANNOTATION = "trivy-operator.resource.name"  # the real name when the label holds a hash


def subject_of(report: dict[str, Any]) -> WorkloadRef | None:
    """The resource a report is about, from its labels (the long-name annotation wins)."""
    meta = report.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    kind = labels.get(KIND_LABEL)
    name = annotations.get(NAME_ANNOTATION) or labels.get(NAME_LABEL)
    if not kind or not name:
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
        if owner is None:
            return None
        kind, name = owner.get("kind"), owner.get("name")
        if not kind or not name:
            return None
    return WorkloadRef(kind=canonical_kind(kind), namespace=labels.get(NAMESPACE_LABEL) or meta.get("namespace"), name=name)


def image_of(report: dict[str, Any]) -> ImageRef:
    body = report.get("report") or {}
    server = ((body.get("registry") or {}).get("server") or "").strip("/")
    artifact = body.get("artifact") or {}
    repo = artifact.get("repository") or ""
    return ImageRef(
        repository=f"{server}/{repo}" if server and repo else (repo or None),
        tag=artifact.get("tag") or None,
        digest=artifact.get("digest") or None,
    )


def _has_severity_at_least(report: dict[str, Any], minimum: str | None) -> bool:
    """The report's own summary says whether reading its list can yield a row at all."""
    summary = (report.get("report") or {}).get("summary")
    if minimum is None or not isinstance(summary, dict):
        return True
    return any(int(summary.get(TRIVY_SUMMARY_KEYS[s]) or 0) > 0 for s in SEVERITIES if RANK[s] >= RANK[minimum])


class ReplicaSetOwners:
    """ReplicaSet → Deployment, read once per request (metadata only where the API offers it)."""

    def __init__(self, reader: KubeReader) -> None:
        self.reader = reader
        self.owner: dict[tuple[str, str], str] = {}
        self.revision: dict[tuple[str, str], int] = {}
        self.ready = anyio.Event()
        self.warning: str | None = None
        self.error: KscanError | None = None

    async def load(self, namespace: str | None) -> None:
        """Never raises (it runs beside the report listing): a refusal becomes a warning, any
        other error is kept for the caller to raise."""
        try:
            async for page in self.reader.list_pages(REPLICA_SETS, namespace, metadata_only=True):
                for rs in page:
                    meta = rs.get("metadata") or {}
                    key = (meta.get("namespace") or "", meta.get("name") or "")
                    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
                    if owner and owner.get("kind") == "Deployment":
                        self.owner[key] = owner.get("name") or ""
                    try:
                        self.revision[key] = int((meta.get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                    except ValueError:
                        self.revision[key] = 0
        except ClusterForbidden as exc:
            self.warning = f"Trivy reports name ReplicaSets, not their Deployments: {exc}"
        except KscanError as exc:
            self.error = exc
        finally:
            self.ready.set()

    def resolve(self, subject: WorkloadRef) -> WorkloadRef:
        if subject.kind != "ReplicaSet":
            return subject
        deployment = self.owner.get((subject.namespace or "", subject.name))
        if not deployment:
            return subject
        return WorkloadRef(kind="Deployment", namespace=subject.namespace, name=deployment)

    def replica_sets_of(self, deployment: WorkloadRef) -> list[str]:
        """The Deployment's ReplicaSets, newest revision first."""
        names = [
            (self.revision.get(key, 0), key[1])
            for key, owner in self.owner.items()
            if owner == deployment.name and key[0] == deployment.namespace
        ]
        return [name for _, name in sorted(names, reverse=True)]


def rows_of(report: dict[str, Any], workload: WorkloadRef | None, image: ImageRef,
            query: VulnerabilityQuery) -> list[VulnerabilityRow]:
    """The report's entries that pass the row filters (checked before anything is built)."""
    meta = report.get("metadata") or {}
    ref = ObjectRef(kind="VulnerabilityReport", namespace=meta.get("namespace"), name=meta.get("name") or "")
    container = (meta.get("labels") or {}).get(CONTAINER_LABEL)
    rows = []
    for vuln in (report.get("report") or {}).get("vulnerabilities") or []:
        severity = parse_severity(vuln.get("severity"))
        fixed = (vuln.get("fixedVersion") or "").strip() or None
        vid = normalise_vuln_id(str(vuln.get("vulnerabilityID") or "")) or "UNKNOWN"
        if not query.passes(severity, fixed is not None, (vid,)):
            continue
        score = vuln.get("score")
        # model_construct: every value is parsed here; validating 100k rows again would cost seconds.
        rows.append(
            VulnerabilityRow.model_construct(
                source="trivy",
                severity=severity,
                fixable=fixed is not None,
                vulnerability_id=vid,
                cve=vid if vid.startswith("CVE-") else None,
                aliases=[],
                fix_state=None,
                title=vuln.get("title") or None,
                score=float(score) if isinstance(score, int | float) else None,
                package=PackageRef.model_construct(
                    name=str(vuln.get("resource") or "?"),
                    installed_version=vuln.get("installedVersion") or None,
                    fixed_version=fixed,
                    type=vuln.get("packageType") or None,
                ),
                image=image,
                namespace=meta.get("namespace"),
                workload=workload,
                container=container,
                report=ref,
            )
        )
    return rows


async def read_vulnerabilities(reader: KubeReader, query: VulnerabilityQuery) -> VulnerabilityRead:
    wanted = query.workload_ref()
    namespace = query.namespace or (wanted.namespace if wanted else None)
    if query.namespace and wanted and wanted.namespace != query.namespace:
        return VulnerabilityRead()
    images = query.image_matcher()
    owners = ReplicaSetOwners(reader)
    out = VulnerabilityRead()
    failed: list[KscanError] = []

    async def reports() -> None:
        async for page in reader.list_pages(VULNERABILITY_REPORTS, namespace):
            out.objects += len(page)
            for report in page:
                if not _has_severity_at_least(report, query.min_severity):
                    continue
                image = image_of(report)
                if images and not images.matches(image):
                    continue
                subject = subject_of(report)
                workload = subject
                if subject is not None and subject.kind == "ReplicaSet":
                    await owners.ready.wait()
                    workload = owners.resolve(subject)
                if wanted and wanted != workload and wanted != subject:
                    continue
                out.rows.extend(rows_of(report, workload, image, query))

    async with anyio.create_task_group() as tg:
        # The ReplicaSets are listed beside the reports (most reports name one), not after them.
        if wanted is None or wanted.kind in ("Deployment", "ReplicaSet"):
            tg.start_soon(owners.load, namespace)
        else:
            owners.ready.set()
        try:
            await reports()
        except KscanError as exc:  # raised below as itself, not inside an ExceptionGroup
            failed.append(exc)
            tg.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if owners.error:
        raise owners.error
    if owners.warning:
        out.warnings.append(owners.warning)
    return out


# --------------------------------------------------------------------------- posture


def _selector(subject: WorkloadRef) -> str:
    # Label values are validated names (DNS-1123), so they are safe inside a selector.
    return f"{KIND_LABEL}={subject.kind},{NAME_LABEL}={subject.name}"


async def subjects_for(reader: KubeReader, workload: WorkloadRef) -> tuple[list[WorkloadRef], str | None]:
    """What Trivy labels its reports with for this workload: a Deployment's newest ReplicaSet."""
    if workload.kind != "Deployment":
        return [workload], None
    owners = ReplicaSetOwners(reader)
    await owners.load(workload.namespace)
    if owners.error:
        raise owners.error
    names = owners.replica_sets_of(workload)
    if owners.warning or not names:
        return [workload], owners.warning
    return [WorkloadRef(kind="ReplicaSet", namespace=workload.namespace, name=names[0])], None


async def read_posture(reader: KubeReader, workload: WorkloadRef) -> PostureRead:
    out = PostureRead()
    subjects, warning = await subjects_for(reader, workload)
    if warning:
        out.warnings.append(warning)
    out.resolved_from = [s for s in subjects if s != workload]
    for subject in subjects:
        for report in await reader.list_all(CONFIG_AUDIT_REPORTS, workload.namespace, label_selector=_selector(subject)):
            out.objects += 1
            meta = report.get("metadata") or {}
            ref = ObjectRef(kind="ConfigAuditReport", namespace=meta.get("namespace"), name=meta.get("name") or "")
            for check in (report.get("report") or {}).get("checks") or []:
                if check.get("success"):
                    out.passed += 1
                    continue
                out.findings.append(
                    OperatorFinding(
                        source="trivy",
                        control_id=str(check.get("checkID") or check.get("id") or "?"),
                        control_name=str(check.get("title") or ""),
                        severity=config_severity(check.get("severity")),
                        status="failed",
                        resource=ResourceRef(kind=workload.kind, namespace=workload.namespace, name=workload.name),
                        messages=[str(m) for m in check.get("messages") or []],
                        remediation=check.get("remediation") or None,
                        report=ref,
                    )
                )
        for report in await reader.list_all(VULNERABILITY_REPORTS, workload.namespace, label_selector=_selector(subject)):
            out.objects += 1
            summary = (report.get("report") or {}).get("summary") or {}
            for severity, key in TRIVY_SUMMARY_KEYS.items():
                count = int(summary.get(key) or 0)
                if count:
                    out.vulnerabilities[severity] = out.vulnerabilities.get(severity, 0) + count
    return out


__all__ = ["CONFIG_AUDIT_REPORTS", "VULNERABILITY_REPORTS", "read_posture", "read_vulnerabilities", "subject_of"]
