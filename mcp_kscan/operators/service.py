"""The operator operations every front end calls: list vulnerabilities, find a CVE, a workload's posture.

Each call opens the cluster once, finds which operators are installed (by API group), asks
every installed one, and merges what they say into one worst-first, paged answer under the same
size budget as ``get_results``. What an operator could not contribute is said in ``sources``
and ``warnings``; when nothing could be read at all the call fails with the reason (no operator
installed, RBAC, unreachable API), never with an empty "all clear".
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from pydantic import ValidationError

from mcp_kscan.budget import DEFAULT_BUDGET_BYTES, fit, json_size
from mcp_kscan.errors import ClusterForbidden, InvalidRequest, KscanError, OperatorNotInstalled, describe_validation_error
from mcp_kscan.operators import trivy
from mcp_kscan.operators.client import KubeReader
from mcp_kscan.operators.discovery import LOOKED_FOR, discover
from mcp_kscan.operators.filters import (
    VulnerabilityQuery,
    decode_cursor,
    encode_cursor,
    parse_vuln_id,
    parse_workload,
    sort_key,
)
from mcp_kscan.operators.kubescape import KubescapeReader, ManifestCache
from mcp_kscan.operators.models import (
    CveOccurrences,
    OperatorInventory,
    OperatorFinding,
    OperatorName,
    PostureRead,
    SourceStatus,
    VulnerabilityRead,
    VulnerabilityPage,
    VulnerabilityRow,
    WorkloadPosture,
    WorkloadRef,
)
from mcp_kscan.readers.kubescape_v2 import severity_rank
from mcp_kscan.settings import Settings

# What each reader needs the operator's API group to serve.
NEEDED: dict[OperatorName, dict[str, tuple[str, ...]]] = {
    "kubescape": {
        "vulnerabilities": ("vulnerabilitymanifestsummaries", "vulnerabilitymanifests"),
        "posture": ("workloadconfigurationscansummaries", "workloadconfigurationscans"),
    },
    "trivy": {"vulnerabilities": ("vulnerabilityreports",), "posture": ("configauditreports",)},
}

T = TypeVar("T", VulnerabilityRead, PostureRead)


def vulnerability_query(data: dict[str, Any]) -> VulnerabilityQuery:
    try:
        return VulnerabilityQuery.model_validate(data)
    except ValidationError as exc:
        raise describe_validation_error(exc) from None


class OperatorService:
    """Reads the operators' results; holds only a cache of parsed Kubescape manifests."""

    def __init__(self, settings: Settings, budget: int = DEFAULT_BUDGET_BYTES) -> None:
        self.settings = settings
        self.budget = budget
        self.cache = ManifestCache()

    @asynccontextmanager
    async def _cluster(self) -> AsyncIterator[tuple[KubeReader, OperatorInventory]]:
        reader = await KubeReader.open(self.settings)
        try:
            inventory = await discover(reader)
            if not inventory.kubescape and not inventory.trivy:
                raise OperatorNotInstalled(f"no security operator is installed in the cluster: looked for {LOOKED_FOR}")
            yield reader, inventory
        finally:
            reader.close()

    async def inventory(self) -> OperatorInventory:
        """Which operators the cluster serves (no error when there are none: doctor reports it)."""
        reader = await KubeReader.open(self.settings)
        try:
            return await discover(reader)
        finally:
            reader.close()

    async def _ask(
        self,
        inventory: OperatorInventory,
        what: str,
        readers: dict[OperatorName, Callable[[], Awaitable[T]]],
    ) -> tuple[dict[OperatorName, T], list[SourceStatus]]:
        """Ask every installed operator at once; one that cannot be read is reported, not fatal."""
        results: dict[OperatorName, T] = {}
        statuses: dict[OperatorName, SourceStatus] = {}
        fatal: list[KscanError] = []

        async def one(operator: OperatorName) -> None:
            served = getattr(inventory, operator)
            if not served:
                statuses[operator] = SourceStatus(operator=operator, installed=False, read=False)
                return
            lacking = [r for r in NEEDED[operator][what] if r not in served]
            if lacking:
                statuses[operator] = SourceStatus(
                    operator=operator, installed=True, read=False, error=f"its API group does not serve {', '.join(lacking)}"
                )
                return
            try:
                results[operator] = await readers[operator]()
            except ClusterForbidden as exc:
                statuses[operator] = SourceStatus(operator=operator, installed=True, read=False, error=str(exc))
                return
            except KscanError as exc:  # unreachable API, broken kubeconfig: nothing else will work either
                fatal.append(exc)
                statuses[operator] = SourceStatus(operator=operator, installed=True, read=False, error=str(exc))
                return
            statuses[operator] = SourceStatus(operator=operator, installed=True, read=True, objects=results[operator].objects)

        async with anyio.create_task_group() as tg:
            for operator in readers:
                tg.start_soon(one, operator)
        if fatal:
            raise fatal[0]
        ordered = [statuses[o] for o in readers]
        if not results:
            errors = [s for s in ordered if s.error]
            if errors and all(s.error and s.error.startswith("RBAC") for s in errors):
                raise ClusterForbidden("; ".join(f"{s.operator}: {s.error}" for s in errors))
            raise OperatorNotInstalled(
                "no installed operator could answer: " + "; ".join(f"{s.operator}: {s.error}" for s in errors)
                if errors
                else f"no security operator is installed in the cluster: looked for {LOOKED_FOR}"
            )
        return results, ordered

    async def _rows(self, query: VulnerabilityQuery) -> tuple[list[VulnerabilityRow], list[SourceStatus], list[str]]:
        async with self._cluster() as (reader, inventory):
            ks = KubescapeReader(reader, self.cache)
            results, statuses = await self._ask(
                inventory,
                "vulnerabilities",
                {"kubescape": lambda: ks.read_vulnerabilities(query), "trivy": lambda: trivy.read_vulnerabilities(reader, query)},
            )
        rows: list[VulnerabilityRow] = []
        warnings: list[str] = []
        for result in results.values():
            rows.extend(result.rows)
            warnings.extend(result.warnings)
        return rows, statuses, warnings

    def _page(self, query: VulnerabilityQuery, rows: list[VulnerabilityRow]) -> tuple[list[dict[str, Any]], int, str | None, bool]:
        """One page after the cursor within the budget: (items, total, next_cursor, ended early)."""
        keyed = sorted(((sort_key(r), r) for r in rows), key=lambda kr: kr[0])
        keys = [k for k, _ in keyed]
        after = decode_cursor(query)
        start = bisect.bisect_right(keys, after) if after is not None else 0
        chosen = keyed[start : start + query.limit]
        # Whole rows only: a row's fields are its locators (image digest, report name), so a page
        # that would pass the budget ends early instead of cutting them.
        items: list[dict[str, Any]] = []
        used = 2
        for _, row in chosen:
            item = row.model_dump(mode="json")
            used += json_size(item) + 1
            if items and used > self.budget - 2_000:
                break
            items.append(item)
        keep = len(items)
        cut = keep < len(chosen)
        more = start + keep < len(keyed)
        next_cursor = encode_cursor(query, keys[start + keep - 1]) if more and keep else None
        return items, len(keyed), next_cursor, cut

    async def list_vulnerabilities(self, query: VulnerabilityQuery) -> VulnerabilityPage:
        rows, statuses, warnings = await self._rows(query)
        items, total, next_cursor, cut = self._page(query, rows)
        return VulnerabilityPage.model_validate(
            {"vulnerabilities": items, "total_matching": total, "next_cursor": next_cursor,
             "sources": statuses, "warnings": warnings, "cut": cut}
        )

    async def find_cve(self, cve_id: str, limit: int = 20, cursor: str | None = None) -> CveOccurrences:
        cve = parse_vuln_id(cve_id, "cve_id")
        query = vulnerability_query({"cve": cve, "limit": limit, "cursor": cursor})
        rows, statuses, warnings = await self._rows(query)
        items, total, next_cursor, cut = self._page(query, rows)
        images = sorted({_image_text(r) for r in rows})
        fixed = sorted({r.package.fixed_version for r in rows if r.package.fixed_version})
        return CveOccurrences.model_validate(
            {
                "cve_id": cve,
                "found": bool(rows),
                "namespaces": sorted({r.namespace for r in rows if r.namespace}),
                "images": images[:50],
                "workloads": len({r.workload.key() for r in rows if r.workload}),
                "fixable_everywhere": bool(rows) and all(r.fixable for r in rows),
                "fixed_versions": fixed[:20],
                "vulnerabilities": items,
                "total_matching": total,
                "next_cursor": next_cursor,
                "sources": statuses,
                "warnings": warnings + ([f"{len(images) - 50} more images not listed"] if len(images) > 50 else []),
                "cut": cut,
            }
        )

    async def workload_posture(self, workload_text: str) -> WorkloadPosture:
        workload = parse_workload(workload_text)
        async with self._cluster() as (reader, inventory):
            ks = KubescapeReader(reader, self.cache)
            results, statuses = await self._ask(
                inventory,
                "posture",
                {"kubescape": lambda: ks.read_posture(workload), "trivy": lambda: trivy.read_posture(reader, workload)},
            )
        findings: list[OperatorFinding] = []
        passed = skipped = 0
        vulnerabilities: dict[str, dict[str, int]] = {}
        warnings: list[str] = []
        resolved: list[WorkloadRef] = []
        for operator, result in results.items():
            findings.extend(result.findings)
            passed += result.passed
            skipped += result.skipped
            warnings.extend(result.warnings)
            resolved.extend(result.resolved_from)
            if result.vulnerabilities:
                vulnerabilities[operator] = result.vulnerabilities
        if not findings and not passed and not skipped and not vulnerabilities:
            raise InvalidRequest(
                "workload",
                f"no operator has results for {workload.key()}: check the kind, namespace and name "
                f"(operators asked: {', '.join(s.operator for s in statuses if s.read) or 'none'})",
            )
        findings.sort(key=lambda f: (severity_rank(f.severity), f.control_id, f.source))
        items = [f.model_dump(mode="json") for f in findings]
        room = max(2_000, self.budget - 3_000)
        items, cut = fit(items, room)
        keep = len(items)
        while keep > 1 and json_size(items[:keep]) > room:
            keep -= 1
        if keep < len(items):
            items, cut = items[:keep], True
            warnings.append(f"{len(findings) - keep} more failed finding(s) not shown (size budget)")
        return WorkloadPosture.model_validate(
            {
                "workload": workload,
                "findings": items,
                "findings_total": len(findings),
                "passed": passed,
                "skipped": skipped,
                "vulnerabilities": vulnerabilities,
                "resolved_from": resolved,
                "sources": statuses,
                "warnings": warnings,
                "cut": cut,
            }
        )


def _image_text(row: VulnerabilityRow) -> str:
    text = row.image.repository or "?"
    if row.image.tag:
        text += f":{row.image.tag}"
    elif row.image.digest:
        text += f"@{row.image.digest}"
    return text


__all__ = ["OperatorService", "vulnerability_query"]
