"""Tools over what the cluster's operators already found: list_vulnerabilities, find_cve, get_workload_posture."""

from __future__ import annotations

from typing import Annotated, cast

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from mcp_kscan.operators.filters import MAX_PAGE_LIMIT
from mcp_kscan.operators.models import CveOccurrences, VulnerabilityPage, VulnerabilityRow, WorkloadPosture
from mcp_kscan.operators.service import OperatorService, vulnerability_query
from mcp_kscan.tools.common import structured, tool_errors

# Read-only, but open-world: the answers come from a cluster this server does not control.
READ_ANNOTATIONS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)

TOOL_NAMES = ("list_vulnerabilities", "find_cve", "get_workload_posture")

# Ranges and spellings are checked by the query model, whose errors are one line naming the field.
Limit = Annotated[int, Field(description=f"Rows per page, 1-{MAX_PAGE_LIMIT} (fewer when the size budget is reached)")]
Cursor = Annotated[str | None, Field(description="next_cursor of the previous page (same filters)", max_length=600)]

LIST_DOC = """Image vulnerabilities the cluster's Kubescape operator and Trivy operator already found (read from the Kubernetes API).
One row per workload (or image) × vulnerability × package, worst first (severity, then fixable). Pass next_cursor as cursor with the same filters until it is null; sources says what each operator contributed."""

CVE_DOC = """Where one vulnerability runs in the cluster, from the Kubescape and Trivy operators' results.
Matched by CVE or alias (a GHSA id finds its CVE and back): every namespace, image and workload, whether a fix exists and in which version. Paged like list_vulnerabilities."""

POSTURE_DOC = """One workload's configuration findings and vulnerability counts, from the Kubescape and Trivy operators' results.
Findings (Kubescape WorkloadConfigurationScan, Trivy ConfigAuditReport) come in get_results' finding shape, failed only, worst first; vulnerabilities are counted per operator and severity."""


def _operators(ctx: Context) -> OperatorService:
    return cast(OperatorService, getattr(ctx.request_context.lifespan_context, "operators"))


def _row_line(row: VulnerabilityRow) -> str:
    where = row.workload.key() if row.workload else f"image {row.image.repository}"
    fix = f"fixed in {row.package.fixed_version}" if row.package.fixed_version else "no fix"
    ident = row.vulnerability_id + (f" ({row.cve})" if row.cve and row.cve != row.vulnerability_id else "")
    return f"- [{row.severity}] {ident} {row.package.name} {row.package.installed_version or ''}, {fix}; {where} ({row.source})"


def _page_text(page: VulnerabilityPage, head: str, limit: int) -> str:
    shown = len(page.vulnerabilities)
    if page.next_cursor and shown < limit:
        head += f" ({shown} of {limit} asked: page budget)"
    lines = [head]
    lines += [_row_line(VulnerabilityRow.model_validate(r)) for r in page.model_dump()["vulnerabilities"][:10]]
    if shown > 10:
        lines.append(f"… {shown - 10} more on this page in the structured result")
    lines.append(f"next_cursor={page.next_cursor}" if page.next_cursor else "(last page)")
    for source in page.sources:
        if source.error:
            lines.append(f"{source.operator}: {source.error}")
    lines += [f"warning: {w}" for w in page.warnings[:3]]
    return "\n".join(lines)


def register(mcp: MCPServer) -> None:
    @mcp.tool(title="List image vulnerabilities (operators)", description=LIST_DOC, annotations=READ_ANNOTATIONS)
    async def list_vulnerabilities(
        ctx: Context,
        namespace: Annotated[str | None, Field(description="Only this namespace", max_length=63)] = None,
        workload: Annotated[str | None, Field(description="Only this workload: Kind/namespace/name", max_length=400)] = None,
        image: Annotated[str | None, Field(description="Only this image: repository, repo:tag or repo@digest", max_length=512)] = None,
        min_severity: Annotated[
            str | None, Field(description="This or worse: Critical, High, Medium, Low, Negligible, Unknown", max_length=16)
        ] = None,
        fixable: Annotated[bool | None, Field(description="true: only with a fixed version; false: only without")] = None,
        cve: Annotated[str | None, Field(description="Only this CVE-YYYY-NNNN or GHSA id (aliases match)", max_length=64)] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, VulnerabilityPage]:
        async with tool_errors():
            query = vulnerability_query(
                {"namespace": namespace, "workload": workload, "image": image, "min_severity": min_severity,
                 "fixable": fixable, "cve": cve, "limit": limit, "cursor": cursor}
            )
            page = await _operators(ctx).list_vulnerabilities(query)
        head = f"{len(page.vulnerabilities)} of {page.total_matching} matching vulnerability rows, worst first"
        return structured(page, _page_text(page, head, limit))

    @mcp.tool(title="Find a CVE in the cluster (operators)", description=CVE_DOC, annotations=READ_ANNOTATIONS)
    async def find_cve(
        ctx: Context,
        cve_id: Annotated[str, Field(description="CVE-YYYY-NNNN or GHSA-xxxx-xxxx-xxxx", max_length=64)],
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> Annotated[CallToolResult, CveOccurrences]:
        async with tool_errors():
            found = await _operators(ctx).find_cve(cve_id, limit=limit, cursor=cursor)
        if not found.found:
            head = f"{found.cve_id}: not found in any operator's results"
        else:
            head = (
                f"{found.cve_id}: {found.total_matching} occurrence(s) in {found.workloads} workload(s), namespaces "
                f"{', '.join(found.namespaces) or '-'}; images {', '.join(found.images[:5])}; "
                + ("fixed versions: " + ", ".join(found.fixed_versions) if found.fixed_versions else "no fix known")
            )
        return structured(found, _page_text(found, head, limit))

    @mcp.tool(title="A workload's posture (operators)", description=POSTURE_DOC, annotations=READ_ANNOTATIONS)
    async def get_workload_posture(
        ctx: Context,
        workload: Annotated[str, Field(description="Kind/namespace/name, e.g. Deployment/default/nginx", max_length=400)],
    ) -> Annotated[CallToolResult, WorkloadPosture]:
        async with tool_errors():
            posture = await _operators(ctx).workload_posture(workload)
        lines = [
            f"{posture.workload.key()}: {posture.findings_total} failed finding(s), {posture.passed} passed, "
            f"{posture.skipped} skipped"
        ]
        for f in posture.findings[:10]:
            lines.append(f"- [{f.severity}] {f.control_id} {f.control_name} ({f.source})")
        for operator, counts in posture.vulnerabilities.items():
            lines.append(f"vulnerabilities ({operator}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        lines += [f"warning: {w}" for w in posture.warnings[:3]]
        return structured(posture, "\n".join(lines))


__all__ = ["TOOL_NAMES", "register"]
