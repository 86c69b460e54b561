"""MCP resources: the scan list, one scan's record, and its raw report."""

from __future__ import annotations

import json
from collections.abc import Callable

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from mcp_kscan.errors import KscanError, ScanNotFound
from mcp_kscan.service import ScanService, present


def register(mcp: MCPServer, current_service: Callable[[], ScanService]) -> None:
    """``current_service`` reaches the process's service: static resources get no Context in the SDK."""

    def _service(ctx: Context | None = None) -> ScanService:
        return current_service()

    @mcp.resource("kscan://scans", name="scans", title="Stored scans", mime_type="application/json")
    async def scans() -> str:
        """The 50 newest scans: id, scanner, engine, status, times."""
        records, total = await _service().list_scans(limit=50)
        return json.dumps(
            {
                "total": total,
                "scans": [
                    r.model_dump(mode="json", include={"scan_id", "scanner", "engine", "status", "created_at", "finished_at"})
                    for r in records
                ],
            }
        )

    @mcp.resource("kscan://scans/{scan_id}", name="scan", title="Scan record and summary", mime_type="application/json")
    async def scan(scan_id: str, ctx: Context) -> str:
        """One scan's record and summary."""
        try:
            record = await _service(ctx).status(scan_id)
        except ScanNotFound as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except KscanError as exc:
            raise ResourceError(str(exc)) from None
        return present(record).model_dump_json()

    @mcp.resource(
        "kscan://scans/{scan_id}/report", name="scan_report", title="Raw scanner report", mime_type="application/json"
    )
    async def report(scan_id: str, ctx: Context) -> str:
        """The scanner's own output, verbatim (Kubescape's v2 JSON report, kube-bench's JSON). Can be large."""
        try:
            data, _media = await _service(ctx).raw_report(scan_id)
        except ScanNotFound as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except KscanError as exc:
            raise ResourceError(str(exc)) from None
        return data.decode("utf-8", "replace")
