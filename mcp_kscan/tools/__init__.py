"""MCP tools, resources and prompts: thin wrappers over ``mcp_kscan.service``."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server import MCPServer
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from mcp_kscan.service import ScanService

TOOL_NAMES = (
    "kube_bench",
    "kubescape_scan",
    "scan_status",
    "get_results",
    "list_scans",
    "delete_results",
    "cancel_scan",
    "list_contexts",
    "list_vulnerabilities",
    "find_cve",
    "get_workload_posture",
)


def register_all(mcp: MCPServer, current_service: Callable[[], ScanService]) -> None:
    from mcp_kscan.tools import contexts, operators, prompts, resources, results, scans

    scans.register(mcp)
    contexts.register(mcp)
    results.register(mcp)
    operators.register(mcp)
    resources.register(mcp, current_service)
    prompts.register(mcp)
    for name in TOOL_NAMES:
        forbid_unknown_arguments(mcp, name)


def forbid_unknown_arguments(mcp: MCPServer, name: str) -> None:
    """Reject arguments a tool does not have instead of dropping them silently.

    The SDK's argument models ignore extra keys, so ``kube_bench(outputfile="/etc/x")`` would
    start a default scan and the caller would believe its option was used. Here an unknown key
    is a validation error (and the schema says ``additionalProperties: false``).
    """
    tool = mcp._tool_manager.get_tool(name)
    if tool is None:
        return
    base = tool.fn_metadata.arg_model

    def model_validate(cls: type[ArgModelBase], obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super(strict, cls).model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _first_errors(exc) from None

    strict: type[ArgModelBase] = type(
        base.__name__,
        (base,),
        {
            "model_config": ConfigDict(**base.model_config, extra="forbid"),
            "model_validate": classmethod(model_validate),
        },
    )
    tool.fn_metadata.arg_model = strict
    tool.parameters["additionalProperties"] = False


MAX_REPORTED_ERRORS = 3


def _first_errors(exc: ValidationError) -> ValidationError:
    """The first few errors only: 5,000 bad list items must not make a 1 MB error message."""
    errors = exc.errors(include_url=False)
    if len(errors) <= MAX_REPORTED_ERRORS:
        return exc
    details: list[Any] = []
    for err in errors[:MAX_REPORTED_ERRORS]:
        detail: dict[str, Any] = {"type": err["type"], "loc": err["loc"], "input": err["input"]}
        if "ctx" in err:
            detail["ctx"] = err["ctx"]
        details.append(detail)
    details.append(
        {
            "type": PydanticCustomError("too_many_errors", "{count} more errors not shown", {"count": len(errors) - MAX_REPORTED_ERRORS}),
            "loc": (),
            "input": None,
        }
    )
    try:
        return ValidationError.from_exception_data(exc.title, details)
    except Exception:  # an error type that cannot be rebuilt: keep one generic line
        return ValidationError.from_exception_data(
            exc.title,
            [{"type": PydanticCustomError("invalid_arguments", "{count} invalid arguments", {"count": len(errors)}), "loc": (), "input": None}],
        )
