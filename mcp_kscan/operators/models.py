"""The normalised shapes: one vulnerability row, one configuration finding, and the pages around them.

Both operators' objects are turned into these, so a caller never needs to know that Kubescape
nests a GHSA match's CVE under ``relatedVulnerabilities`` or that Trivy names the ReplicaSet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from mcp_kscan.operators.severity import VulnSeverity
from mcp_kscan.reports import KubescapeFinding

OperatorName = Literal["kubescape", "trivy"]


class ImageRef(BaseModel):
    repository: str | None = Field(default=None, description="Registry and repository, e.g. index.docker.io/library/nginx")
    tag: str | None = None
    digest: str | None = None


class WorkloadRef(BaseModel):
    kind: str
    namespace: str | None = None
    name: str

    def key(self) -> str:
        return f"{self.kind}/{self.namespace or ''}/{self.name}"


class ObjectRef(BaseModel):
    """The operator object a row was read from (to fetch it with kubectl)."""

    kind: str
    namespace: str | None = None
    name: str


class PackageRef(BaseModel):
    name: str
    installed_version: str | None = None
    fixed_version: str | None = Field(default=None, description="Version(s) with the fix; null when none is known")
    type: str | None = Field(default=None, description="deb, apk, go-module, …")


class VulnerabilityRow(BaseModel):
    """One vulnerability of one package in one workload's image (or in an image no workload names)."""

    source: OperatorName
    severity: VulnSeverity
    fixable: bool
    vulnerability_id: str = Field(description="The id the operator reports (CVE, GHSA, …)")
    cve: str | None = Field(default=None, description="The CVE id, also when the operator's id is a GHSA id")
    aliases: list[str] = Field(default_factory=list, description="Other ids of the same vulnerability")
    title: str | None = None
    score: float | None = None
    fix_state: str | None = Field(default=None, description="Kubescape: fixed, not-fixed, wont-fix, unknown")
    package: PackageRef
    image: ImageRef
    namespace: str | None = None
    workload: WorkloadRef | None = Field(default=None, description="null for an image scan no workload refers to")
    container: str | None = None
    report: ObjectRef


class SourceStatus(BaseModel):
    """What one operator contributed, or why it could not (so an empty answer is never silent)."""

    operator: OperatorName
    installed: bool
    read: bool = Field(description="True when its objects were read")
    objects: int = Field(default=0, description="Report objects read (Kubescape: summaries, Trivy: reports)")
    error: str | None = None


class VulnerabilityPage(BaseModel):
    vulnerabilities: list[VulnerabilityRow]
    total_matching: int = Field(description="Rows matching the filters across all pages")
    next_cursor: str | None = Field(default=None, description="Pass as cursor for the next page; null on the last")
    sources: list[SourceStatus]
    warnings: list[str] = Field(default_factory=list)
    cut: bool = Field(default=False, description="True when the size budget ended the page before limit rows")


class CveOccurrences(VulnerabilityPage):
    cve_id: str
    found: bool
    namespaces: list[str] = Field(default_factory=list, description="Every namespace where it appears")
    images: list[str] = Field(default_factory=list, description="Every affected image (repository:tag)")
    workloads: int = Field(default=0, description="How many workloads run an affected image")
    fixable_everywhere: bool = Field(default=False, description="A fixed version is known for every occurrence")
    fixed_versions: list[str] = Field(default_factory=list)


class OperatorFinding(KubescapeFinding):
    """get_results' finding shape, plus where it came from and the operator's own words."""

    source: OperatorName
    messages: list[str] = Field(default_factory=list)
    remediation: str | None = None
    report: ObjectRef


class WorkloadPosture(BaseModel):
    workload: WorkloadRef
    findings: list[OperatorFinding] = Field(description="Failed configuration findings, worst first")
    findings_total: int
    passed: int = Field(default=0, description="Controls/checks that passed")
    skipped: int = 0
    vulnerabilities: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="Per operator: vulnerability count per severity"
    )
    resolved_from: list[WorkloadRef] = Field(
        default_factory=list, description="Objects read on the workload's behalf (Trivy: its ReplicaSets)"
    )
    sources: list[SourceStatus]
    warnings: list[str] = Field(default_factory=list)
    cut: bool = False


class OperatorInventory(BaseModel):
    """Which operators the cluster serves, by API group (doctor and every query start here)."""

    kubescape: list[str] = Field(default_factory=list, description="Kubescape storage resources served")
    trivy: list[str] = Field(default_factory=list, description="Trivy-operator resources served")

    def installed(self, operator: OperatorName) -> bool:
        return bool(getattr(self, operator))


@dataclass
class VulnerabilityRead:
    """What one operator's reader found for a query, before merging and paging."""

    rows: list[VulnerabilityRow] = field(default_factory=list)
    objects: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class PostureRead:
    """One operator's configuration findings and vulnerability counts for a workload."""

    findings: list[OperatorFinding] = field(default_factory=list)
    passed: int = 0
    skipped: int = 0
    vulnerabilities: dict[str, int] = field(default_factory=dict)
    resolved_from: list[WorkloadRef] = field(default_factory=list)
    objects: int = 0
    warnings: list[str] = field(default_factory=list)
