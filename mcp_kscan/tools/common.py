"""What every MCP tool shares: reaching the service, turning errors into ToolError, short texts."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any, get_args, get_origin

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from mcp_kscan.errors import KscanError, ScanNotFound, StoreError
from mcp_kscan.readers.kubescape_v2 import NOTHING_SCANNED
from mcp_kscan.reports import KubeBenchSummary, KubescapeSummary
from mcp_kscan.redact import redact_text
from mcp_kscan.runner.records import ScanRecord
from mcp_kscan.server import AppState
from mcp_kscan.service import ScanService

log = logging.getLogger(__name__)

DOCTOR_HINT = " (run `mcp-kscan doctor` to check the set-up)"
SCAN_NOT_FOUND_HINT = "; list_scans shows the stored scans, kubescape_scan or kube_bench starts one"


def service_of(ctx: Context[Any, Any]) -> ScanService:
    """The scan service of the lifespan's state (the SDK types ``lifespan_context`` as a plain dict)."""
    state = ctx.request_context.lifespan_context
    if not isinstance(state, AppState):
        raise RuntimeError(f"the MCP lifespan yielded {type(state).__name__}, not AppState")
    return state.service


@asynccontextmanager
async def tool_errors() -> AsyncIterator[None]:
    """Caller-fixable errors become one-line ToolErrors; anything else is logged and hidden."""
    try:
        yield
    except ToolError:
        raise
    except StoreError as exc:
        raise ToolError(redact_text(str(exc)) + DOCTOR_HINT) from None
    except ScanNotFound as exc:
        # The runner's messages name no front end's operations; the MCP hint names the tools.
        raise ToolError(redact_text(str(exc)) + SCAN_NOT_FOUND_HINT) from None
    except KscanError as exc:
        raise ToolError(redact_text(str(exc))) from None


def structured(model: BaseModel, text: str) -> CallToolResult:
    """A tool result: the model as structured content, plus a short human/agent-readable text."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json", by_alias=True),
    )


def _plain(annotation: Any) -> Any:
    """The type without validators (``list[Annotated[str, AfterValidator(f)]]`` -> ``list[str]``).

    The SDK validates arguments against the signature before the tool runs; validators copied
    there would run without the request's validation context (the client's roots for relative
    paths) and twice. The request model runs them, once, with the context.
    """
    if get_origin(annotation) is Annotated:
        return _plain(get_args(annotation)[0])
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return list[_plain(item)]  # type: ignore[misc]
    return annotation


def model_parameters(model: type[BaseModel], exclude: Iterable[str] = ()) -> list[inspect.Parameter]:
    """Keyword parameters mirroring a request model's fields (types and descriptions only).

    The tool's input schema then lists exactly the request's fields, and the request model stays
    the one place that validates them (patterns, allow-lists, cross-field rules).
    """
    skip = set(exclude)
    params: list[inspect.Parameter] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        annotation: Any = _plain(info.annotation)
        if info.description:
            annotation = Annotated[annotation, Field(description=info.description)]
        default = inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default))
    return params


def with_signature(fn: Callable[..., Any], params: list[inspect.Parameter]) -> Callable[..., Any]:
    """Give ``fn(ctx, **kwargs)`` an explicit signature, which the SDK turns into the input schema."""
    original = inspect.signature(fn, eval_str=True)
    ctx_param = next(iter(original.parameters.values()))
    fn.__signature__ = original.replace(parameters=[ctx_param, *params])  # type: ignore[attr-defined]
    return fn


def progress_reporter(ctx: Context, started: float) -> Callable[[ScanRecord], Awaitable[None]]:
    """Progress notifications while a tool waits: elapsed seconds (always increasing) and the phase."""
    last = [-1.0]

    async def report(record: ScanRecord) -> None:
        elapsed = round(time.monotonic() - started, 1)
        if elapsed <= last[0]:
            elapsed = last[0] + 0.1
        last[0] = elapsed
        message = f"{record.status.value}"
        if record.phase and record.phase != record.status.value:
            message += f" ({record.phase})"
        progress = progress_text(record)
        if progress:
            message += f", {progress}"
        message += f", {elapsed:.0f}s elapsed"
        try:
            await ctx.report_progress(elapsed, None, message)
        except Exception:  # a client that went away must not end the wait with an error
            log.debug("progress notification failed", exc_info=True)

    return report


def progress_text(record: ScanRecord) -> str | None:
    """How far an active scan is, in words: units done (files read, for the built-in engine; nodes,
    for kube-bench Jobs), then resources found or checked (the built-in engine, see ``engine.progress``)."""
    if not record.progress_total:
        return None
    done, total = record.progress_done or 0, record.progress_total
    if record.resources_total is None:
        return f"{done}/{total} done"
    words = f"{done}/{total} files read, "
    if record.resources_done:
        return words + f"{record.resources_done}/{record.resources_total} resources checked"
    return words + f"{record.resources_total} resources found" + (" so far" if done < total else "")


def describe_record(record: ScanRecord) -> str:
    """A few lines an agent can read at a glance; the structured content has the rest."""
    head = f"{record.scanner} scan {record.scan_id} ({record.engine}): {record.status.value}"
    if record.duration_s is not None:
        head += f" in {record.duration_s:.1f}s"
    lines = [head]
    if not record.finished and (progress := progress_text(record)):
        lines.append(f"progress: {progress}")
    if record.error:
        lines.append(f"error: {record.error}")
    summary = record.summary
    if isinstance(summary, KubescapeSummary):
        score = summary.compliance_score
        controls, resources = summary.controls, summary.resources
        if summary.nothing_scanned:
            lines.append(NOTHING_SCANNED)
        else:
            lines.append(f"compliance score {score:.1f}%" if score is not None else "compliance score n/a")
        lines.append(
            f"controls: {controls.failed} failed, {controls.passed} passed, "
            f"{controls.skipped} skipped; resources: {resources.failed} failed of "
            f"{resources.failed + resources.passed + resources.skipped}"
        )
        gate = getattr(record, "gate", None)
        if gate is not None:
            verdict = {True: "passed", False: "FAILED", None: "not evaluated"}[gate.passed]
            lines.append(f"threshold gate {verdict}: {gate.reason}")
        for fc in summary.failed_controls[:5]:
            lines.append(f"- {fc.control_id} {fc.name} [{fc.severity}]: {fc.failed_resources} resource(s)")
        more = summary.failed_controls_total - min(5, len(summary.failed_controls))
        if more > 0:
            lines.append(f"… {more} more failed control(s) in the structured result / get_results")
        # What the scan did not cover (charts and overlays not rendered, files without objects).
        warnings = [w for w in summary.warnings if w != NOTHING_SCANNED]
        for warning in warnings[:5]:
            lines.append(f"warning: {warning}")
        if len(warnings) > 5:
            lines.append(f"… {len(warnings) - 5} more warning(s) in the structured result")
    elif isinstance(summary, KubeBenchSummary):
        t = summary.totals
        lines.append(
            f"benchmark {summary.benchmark or 'auto'}: {t.pass_} pass, {t.fail} fail, {t.warn} warn, {t.info} info"
        )
        for check in summary.failed_checks[:5]:
            node = f" on {check.node}" if check.node else ""
            lines.append(f"- {check.id} [{check.status}]{node}: {check.description[:120]}")
        for warning in summary.warnings[:3]:
            lines.append(f"warning: {warning}")
    return "\n".join(lines)


def compact_schema(schema: Any) -> Any:
    """The same JSON Schema in fewer characters, for the one tools/list budget every tool shares:
    no generated titles, no ``default: null``, and ``anyOf [X, null]`` as ``type: [X, "null"]``."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: compact_schema(prop) for name, prop in value.items()}
            continue
        out[key] = compact_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other.get("type"), str):
            del out["anyOf"]
            out.update({**other, "type": [other["type"], "null"]})
    if out.get("type") == "object" and out.get("additionalProperties") is True:
        del out["additionalProperties"]  # the default
    return out
