"""MCP completions for the arguments of prompts and resource templates: scan ids, control ids, frameworks.

A client offers these while the user types (``completion/complete``), so nobody has to know a
control id or copy a scan id by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mcp.server import MCPServer
from mcp.types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from mcp_kscan.catalogue import all_controls, framework_names
from mcp_kscan.service import ScanService

MAX_VALUES = 100
"""The protocol's limit on values per answer."""

# Which arguments of which prompts/templates complete to what.
PROMPT_ARGUMENTS = {
    ("explain_control", "control_id"): "control",
    ("explain_control", "scan_id"): "scan",
    ("cluster_security_audit", "framework"): "framework",
}
TEMPLATE_ARGUMENTS = {"scan_id": "scan"}
TEMPLATE_PREFIX = "kscan://scans/"


def _matching(values: Sequence[str], prefix: str) -> Completion:
    wanted = prefix.strip().lower()
    found = [v for v in values if v.lower().startswith(wanted)]
    return Completion(values=found[:MAX_VALUES], total=len(found), has_more=len(found) > MAX_VALUES)


def register(mcp: MCPServer, current_service: Callable[[], ScanService]) -> None:
    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument, context: CompletionContext | None
    ) -> Completion | None:
        if isinstance(ref, PromptReference):
            what = PROMPT_ARGUMENTS.get((ref.name, argument.name))
        else:
            what = TEMPLATE_ARGUMENTS.get(argument.name) if ref.uri.startswith(TEMPLATE_PREFIX) else None
        if what == "control":
            return _matching([c.control_id for c in all_controls()], argument.value)
        if what == "framework":
            return _matching(framework_names(), argument.value)
        if what == "scan":
            records, _ = await current_service().list_scans(limit=MAX_VALUES)
            return _matching([r.scan_id for r in records], argument.value)
        return None
