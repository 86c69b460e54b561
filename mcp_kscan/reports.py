"""Normalized scan reports: the one shape every front end reads.

The scanner adapters (``mcp_kscan.scanners``) turn each tool's raw output into these
models; the runner stores them; the MCP tools and REST routes page through them.
Raw scanner output is kept beside them, untouched, for callers that want it verbatim.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mcp_kscan.readers.kubescape_fields import resource_key
from mcp_kscan.readers.kubescape_v2 import ControlStatus, Severity

CheckStatus = Literal["PASS", "FAIL", "WARN", "INFO"]

# Long free-text fields are cut to this many characters, with TRUNCATION_MARKER appended,
# so one kube-bench check (whose actual_value can be a whole `ps` line) cannot flood an agent.
MAX_TEXT_CHARS = 500
TRUNCATION_MARKER = "…[truncated]"


def cut_text(text: str | None, limit: int = MAX_TEXT_CHARS) -> str | None:
    """Cut ``text`` to ``limit`` characters, marking the cut so nobody mistakes it for the whole."""
    if text is None or len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATION_MARKER))] + TRUNCATION_MARKER


# --------------------------------------------------------------------------- kube-bench


class KubeBenchTotals(BaseModel):
    pass_: int = Field(0, validation_alias="pass", serialization_alias="pass")
    fail: int = 0
    warn: int = 0
    info: int = 0

    # "pass" on every wire (MCP, REST, the store), with or without by_alias: a summary is a typed
    # model inside records and results, dumped by whatever front end shows it.
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class KubeBenchCheck(BaseModel):
    """One CIS check result, flattened out of kube-bench's control → group → check tree."""

    id: str
    description: str
    status: CheckStatus
    scored: bool
    remediation: str | None = None
    actual_value: str | None = None
    expected_result: str | None = None
    reason: str | None = None
    audit: str | None = None
    control_id: str | None = None
    node_type: str | None = None
    section: str | None = None
    section_desc: str | None = None
    node: str | None = None
    """The cluster node the check ran on (kube-bench Jobs); None for a local run."""


class KubeBenchGroup(BaseModel):
    section: str
    desc: str
    counts: KubeBenchTotals
    check_ids: list[str]


class KubeBenchControl(BaseModel):
    id: str
    text: str
    node_type: str | None = None
    version: str | None = None
    detected_version: str | None = None
    totals: KubeBenchTotals
    groups: list[KubeBenchGroup]
    node: str | None = None


class KubeBenchReport(BaseModel):
    benchmark: str | None = None
    detected_version: str | None = None
    totals: KubeBenchTotals
    controls: list[KubeBenchControl]
    checks: list[KubeBenchCheck]
    """Every check, in report order, long fields cut to MAX_TEXT_CHARS."""
    warnings: list[str] = Field(default_factory=list)
    """Plain-language caveats, e.g. that no Kubernetes component runs on this host."""


class FailedCheck(BaseModel):
    id: str
    description: str
    status: CheckStatus
    scored: bool
    remediation: str | None = None
    node: str | None = None


class NodeTotals(BaseModel):
    node: str
    totals: KubeBenchTotals | None = None
    error: str | None = None


class KubeBenchSummary(BaseModel):
    kind: Literal["kube-bench"] = "kube-bench"
    benchmark: str | None = None
    detected_version: str | None = None
    totals: KubeBenchTotals
    failed_checks: list[FailedCheck]
    """FAIL first, then WARN; the first 20."""
    failed_checks_total: int
    nodes: list[NodeTotals] | None = None
    warnings: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- Kubescape


class ResourceRef(BaseModel):
    api_version: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    file: str | None = None
    """The manifest file as the scan saw it (Kubescape's ``source.path`` joined with
    ``relativePath``); None for cluster objects. Never shortened: an agent edits this file."""
    rendered_by: str | None = None
    """``"helm template of chart web"`` or ``"kubectl kustomize of overlays/prod"`` when the object
    exists only in rendered output; ``file`` is then its template or kustomization, with no line."""
    relative_path: str | None = None
    """The file under the scanned root (Kubescape's ``relativePath``): the same in every checkout,
    so comparisons with a baseline match on it."""

    def key(self) -> str:
        """The resource's identity as one string (JSON), for grouping findings by resource."""
        return resource_key(self.kind, self.namespace, self.name, self.file)


class FixPath(BaseModel):
    path: str
    value: str


class KubescapeFinding(BaseModel):
    """One (resource, control) verdict."""

    control_id: str
    control_name: str
    severity: Severity
    status: ControlStatus
    resource: ResourceRef
    failed_paths: list[str] = Field(default_factory=list)
    fix_paths: list[FixPath] = Field(default_factory=list)
    excepted: bool = False
    """Failed, but covered by a posture exception (Kubescape counts it as passed)."""
    exception: dict[str, str] | None = None
    """The exception that covers it: name, source, reason (when the report names it)."""
    exception_expired: dict[str, str] | None = None
    """An inline exception that no longer applies (its kubescape.io/skip-expiry has passed)."""


class FrameworkScore(BaseModel):
    name: str
    compliance_score: float | None = None


class FailedControl(BaseModel):
    control_id: str
    name: str
    severity: Severity
    failed_resources: int


class ControlCounts(BaseModel):
    passed: int = 0
    failed: int = 0
    skipped: int = 0


class ResourceCounts(BaseModel):
    passed: int = 0
    failed: int = 0
    skipped: int = 0


class KubescapeReport(BaseModel):
    compliance_score: float | None = None
    risk_score: float | None = None
    frameworks: list[FrameworkScore]
    controls: ControlCounts
    resources: ResourceCounts
    failed_controls: list[FailedControl]
    """Every failed control, most urgent first (``mcp_kscan.risk``)."""
    control_order: list[str] = Field(default_factory=list)
    """Every control of the report, most urgent first: failed ones, then the others."""
    findings: list[KubescapeFinding]
    engine: str | None = None
    """Which engine wrote the raw report, when the report says so (built-in engine metadata)."""
    kubescape_version: str | None = None
    errors: list[str] = Field(default_factory=list)
    """Per-file load errors and other caveats the report carries."""
    warnings: list[str] = Field(default_factory=list)
    """What the scan did not cover: charts and overlays not rendered, files that hold no
    Kubernetes object, and ``NOTHING_SCANNED`` when it read no object at all."""
    nothing_scanned: bool = False
    """No Kubernetes object was read: ``compliance_score`` is None, never 100."""


class KubescapeSummary(BaseModel):
    kind: Literal["kubescape"] = "kubescape"
    compliance_score: float | None = None
    frameworks: list[FrameworkScore]
    controls: ControlCounts
    resources: ResourceCounts
    failed_controls: list[FailedControl]
    """The first 20 of the report's failed controls."""
    failed_controls_total: int
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    nothing_scanned: bool = False
    """No Kubernetes object was read, so there is no compliance score (see ``warnings``)."""


SUMMARY_TOP_N = 20


def summarize_kube_bench(report: KubeBenchReport, nodes: list[NodeTotals] | None = None) -> KubeBenchSummary:
    """The part of a kube-bench report an agent sees first: totals and the worst 20 checks."""
    bad = [c for c in report.checks if c.status in ("FAIL", "WARN")]
    bad.sort(key=lambda c: 0 if c.status == "FAIL" else 1)
    return KubeBenchSummary(
        benchmark=report.benchmark,
        detected_version=report.detected_version,
        totals=report.totals,
        failed_checks=[
            FailedCheck(
                id=c.id,
                description=cut_text(c.description, 200) or "",
                status=c.status,
                scored=c.scored,
                remediation=cut_text(c.remediation, 300),
                node=c.node,
            )
            for c in bad[:SUMMARY_TOP_N]
        ],
        failed_checks_total=len(bad),
        nodes=nodes,
        warnings=report.warnings,
    )


def summarize_kubescape(report: KubescapeReport) -> KubescapeSummary:
    """The part of a Kubescape report an agent sees first: scores, counts, the worst 20 controls."""
    return KubescapeSummary(
        compliance_score=report.compliance_score,
        frameworks=report.frameworks,
        controls=report.controls,
        resources=report.resources,
        failed_controls=report.failed_controls[:SUMMARY_TOP_N],
        failed_controls_total=len(report.failed_controls),
        errors=[cut_text(e, 300) or "" for e in report.errors[:SUMMARY_TOP_N]],
        warnings=[cut_text(w, 300) or "" for w in report.warnings[:SUMMARY_TOP_N]],
        nothing_scanned=report.nothing_scanned,
    )
