"""The schemas tools/list publishes: the same contracts in fewer characters.

Every client pays for tools/list in its context window, on every conversation (issue 14: it cost
about 7,900 tokens). Validation does not use these published copies: the SDK validates
arguments with the tool's argument model and results with the return annotation's model, so
trimming what is published changes no behaviour.

- Input schemas keep every property, type, enum, numeric range, default and description (what an
  agent needs to call the tool), and drop what repeats them or only guards the server: titles (the
  property name again), ``default: null`` and ``default: []`` (what omitting a field means anyway), ``anyOf [X, null]`` (said ``type: [X, null]``), and the
  string patterns and lengths (regular expressions that keep paths and quotes out of lookups; the
  argument model still enforces them, and a value they refuse is a one-line error naming the field).
- Output schemas are outlines: the top-level fields and their JSON types. The full nested schemas
  of scan records and result pages were most of tools/list; the README's "What the tools return"
  and the tool descriptions say what the fields hold, and the structured content is what it is.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Annotated, Any, get_args, get_origin

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema


def publish_compact(mcp: MCPServer, name: str) -> None:
    """Replace tool ``name``'s published input and output schemas with their compact forms."""
    tool = mcp._tool_manager.get_tool(name)
    if tool is None:
        return
    tool.parameters = compact_input(tool.parameters)
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema = outline(tool.fn_metadata.output_schema)


UNPUBLISHED_INPUT_KEYS = frozenset({"title", "pattern", "maxLength", "minLength"})


def compact_input(schema: Any) -> Any:
    if isinstance(schema, list):
        return [compact_input(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in UNPUBLISHED_INPUT_KEYS or (key == "default" and value in (None, [])):
            continue
        if key in ("properties", "$defs"):
            out[key] = {k: compact_input(v) for k, v in value.items()}
        else:
            out[key] = compact_input(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = options[0] if options[1] == {"type": "null"} else options[1]
        # Only a plain typed schema folds into its parent; a $ref or a nested anyOf stays as it is.
        if isinstance(other, dict) and isinstance(other.get("type"), str) and not (set(other) & (set(out) - {"anyOf"})):
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
    return out


UNPUBLISHED_OUTPUT_FIELDS = frozenset(
    {"origin", "created_at", "started_at", "finished_at", "command", "return_code", "stderr_tail",
     "output_truncated", "has_report", "progress_done", "progress_total", "resources_done",
     "resources_total", "phase", "duration_s", "server"}
)
"""A scan record's bookkeeping and timestamps, left out of the outlines (results still carry it; an outline does
not forbid other properties, so it stays true): not what an agent reads a schema for."""

_ENUM_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def _json_types(prop: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    ref = prop.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return _json_types(target, defs) if isinstance(target, dict) else ["object"]
    if "anyOf" in prop:
        types: list[str] = []
        for option in prop["anyOf"]:
            types += _json_types(option, defs)
        return sorted(set(types))
    kind = prop.get("type")
    if kind is None and isinstance(prop.get("enum"), list):
        return sorted({_ENUM_TYPES.get(type(v), "string") for v in prop["enum"]})
    if kind is None:
        return ["object"]
    return list(kind) if isinstance(kind, list) else [kind]


def outline(schema: dict[str, Any]) -> dict[str, Any]:
    """The top-level fields of an object schema and their JSON types, without nested definitions or texts."""
    defs = schema.get("$defs", {})
    properties: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if name in UNPUBLISHED_OUTPUT_FIELDS:
            continue
        types = _json_types(prop, defs)
        properties[name] = {"type": types[0] if len(types) == 1 else types}
    return {"type": "object", "properties": properties}


def declared_output_model(fn: Any) -> type[BaseModel] | None:
    """``M`` of a tool declared ``-> Annotated[CallToolResult, M]`` (every tool here), else None."""
    annotation = inspect.signature(fn, eval_str=True).return_annotation
    if get_origin(annotation) is not Annotated:
        return None
    base, *metadata = get_args(annotation)
    if base is CallToolResult and len(metadata) == 1 and isinstance(metadata[0], type) and issubclass(metadata[0], BaseModel):
        return metadata[0]
    return None


class _TopLevelJsonSchema(GenerateJsonSchema):
    """A model's JSON schema in which nested models are bare objects.

    ``outline`` reads only the top-level fields and their JSON types, for which a nested model is
    ``object`` either way; the full nested schemas of scan records and result pages were most of
    the CPU of building the tools (the SDK derives one per tool, ScanResult four times).
    ``tests/tools/test_tools.py`` checks every tool's outline against the SDK's full schema.
    """

    _depth = 0

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        if self._depth and not getattr(schema["cls"], "__pydantic_root_model__", False):
            return {"type": "object"}
        self._depth += 1
        try:
            return super().model_schema(schema)
        finally:
            self._depth -= 1


@cache
def outline_source(model: type[BaseModel]) -> dict[str, Any]:
    """What ``outline`` needs of ``model``'s output schema, made once per model and process."""
    schema = model.model_json_schema(schema_generator=_TopLevelJsonSchema)
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):  # a self-referencing model: its definition is the root
        schema = {**schema["$defs"][ref.removeprefix("#/$defs/")], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema
