"""MCP tools, resources and prompts: thin wrappers over ``mcp_kscan.service``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.tools.tool_manager import ToolManager
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import Icon, ToolAnnotations
from pydantic import ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from mcp_kscan.errors import describe_validation_error
from mcp_kscan.service import ScanService
from mcp_kscan.tools.schemas import declared_output_model, outline_source, publish_compact

TOOL_NAMES = (
    "kube_bench",
    "kubescape_scan",
    "scan_status",
    "get_results",
    "compare_scans",
    "list_scans",
    "delete_results",
    "cancel_scan",
    "list_contexts",
    "list_vulnerabilities",
    "find_cve",
    "get_workload_posture",
    "propose_fix",
    "apply_fix",
    "list_controls",
)


def register_all(mcp: MCPServer, current_service: Callable[[], ScanService]) -> None:
    """Every tool (built on first use), completion, resource and prompt on ``mcp``."""
    from mcp_kscan.tools import completions, prompts, resources

    mcp._tool_manager = ToolsOnFirstUse(mcp._tool_manager.warn_on_duplicate_tools)
    completions.register(mcp, current_service)
    resources.register(mcp, current_service)
    prompts.register(mcp)


@cache
def built_tools() -> tuple[Tool, ...]:
    """Every tool, built once per process and shared by each server's ``ToolsOnFirstUse``.

    Building them (the SDK derives every tool's argument model and input/output schemas) costs
    ~0.2 s of CPU, and the in-process tests build a server each time. The tools hold no state of
    their own: a call finds its service through its Context (``service_of``).
    """
    return build_tools()


def build_tools(shallow_outputs: bool = True) -> tuple[Tool, ...]:
    """The tools as published; ``shallow_outputs=False`` lets the SDK derive full output schemas
    (the tests check both publish the same)."""
    from mcp_kscan.tools import (
        catalogue,
        compare,
        contexts,
        fixes,
        operators,
        results,
        scans,
    )

    mcp = MCPServer("mcp-kscan")
    if shallow_outputs:
        mcp._tool_manager = _OutlinedOutputs(mcp._tool_manager.warn_on_duplicate_tools)
    scans.register(mcp)
    contexts.register(mcp)
    results.register(mcp)
    compare.register(mcp)
    operators.register(mcp)
    fixes.register(mcp)
    catalogue.register(mcp)
    for name in TOOL_NAMES:
        forbid_unknown_arguments(mcp, name)
        publish_compact(mcp, name)
    return tuple(mcp._tool_manager.list_tools())


class ToolsOnFirstUse(ToolManager):
    """A server's tool manager that builds the tools (``built_tools()``) when a request first needs them.

    Building them is about a fifth of a server's start-up CPU (~0.3 s: the tool modules' imports,
    then every argument model and input/output schema), and an HTTP server that only answers REST
    requests (most servers the test suite starts, a Kubescape-compatible deployment) never needs
    them. The first tools/list or tools/call of the process pays instead; a stdio server gets one
    at once, so its total is unchanged.
    """

    def __init__(self, warn_on_duplicate_tools: bool = True) -> None:
        super().__init__(warn_on_duplicate_tools)
        self._built = False

    def _build(self) -> None:
        if not self._built:
            self._tools.update((tool.name, tool) for tool in built_tools())
            self._built = True

    def get_tool(self, name: str) -> Tool | None:
        self._build()
        return super().get_tool(name)

    def list_tools(self) -> list[Tool]:
        self._build()
        return super().list_tools()

    def add_tool(self, *args: Any, **kwargs: Any) -> Tool:
        self._build()  # a tool added later still meets the built ones (the SDK warns on a duplicate)
        return super().add_tool(*args, **kwargs)

    def remove_tool(self, name: str) -> None:
        self._build()
        super().remove_tool(name)


class _OutlinedOutputs(ToolManager):
    """Where ``built_tools`` registers the tools: an output schema is made only as deep as it is published.

    The SDK derives each tool's full output schema from its declared model; ``publish_compact``
    then keeps only the top-level outline. Here a tool declared ``-> Annotated[CallToolResult, M]``
    is built unstructured and then given ``M`` (what results are validated against, as the SDK
    would have) and ``outline_source(M)`` (made once per model) as its output schema.
    """

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> Tool:
        model = declared_output_model(fn) if structured_output is None else None
        tool = super().add_tool(fn, name, title, description, annotations, icons, meta,
                                structured_output=False if model is not None else structured_output)
        if model is not None:
            tool.fn_metadata.output_model = model
            tool.fn_metadata.output_schema = outline_source(model)
        return tool


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
    known = tuple(tool.parameters.get("properties", {}))

    def model_validate(cls: type[ArgModelBase], obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super(strict, cls).model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise one_line_error(exc, known) from None

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


MAX_KEPT_ERRORS = 3
"""Errors kept (field names only) for the SDK's log line: 5,000 bad list items stay small."""


class ToolArgumentsError(ValidationError):
    """Invalid tool arguments whose text is one line, ``field: why`` (the SDK shows ``str()`` to the model).

    It stays a ValidationError, so the SDK still answers with a tool error and logs the fields.
    """

    line: str

    def __str__(self) -> str:
        return self.line


def one_line_error(exc: ValidationError, known_fields: Iterable[str]) -> ToolArgumentsError:
    """The first error as ``field: why`` (valid values included), plus how many more there were."""
    errors = exc.errors(include_url=False, include_input=False)
    details: list[Any] = [
        {"type": PydanticCustomError("invalid_argument", "{why}", {"why": str(err["msg"])}), "loc": err["loc"], "input": None}
        for err in errors[:MAX_KEPT_ERRORS]
    ]
    error = ToolArgumentsError.from_exception_data(exc.title, details)
    error.line = str(describe_validation_error(exc, known_fields))
    return error
