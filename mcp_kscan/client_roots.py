"""Where a caller's relative paths start: the MCP client's roots, else the server's working directory.

An agent's ``paths=["examples/"]`` means "in my project", not "in the server's working
directory", and a desktop client starts its servers in ``/``, where ``"."`` meant the whole
filesystem (issue 14). An MCP client says where its project is with roots (``roots/list``).
REST and CLI callers have only the server's working directory, which is what they mean.

This module is the one place for that rule; every tool that takes a path (scans, controls
configs, fixes) resolves relative paths through it:

- an MCP front end asks ``await path_context(ctx, values)`` and passes the result as pydantic's
  validation context (``validate_request(Model, data, context)``);
- validators call ``bases_in(info)`` and ``roots_in(info)`` (the operator's allowed roots, which
  ``validate_request`` always adds) and hand both to ``scanners.paths.validate_path``,
  which calls ``relative_base`` for a relative value.

Roots never widen what may be read: the resolved path still has to lie under the operator's
MCP_KSCAN_ALLOWED_ROOTS, and ``/`` and the system trees are refused whatever the base.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, PrivateAttr, ValidationInfo

from mcp_kscan.scanners.common import shown

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

log = logging.getLogger(__name__)

PATH_BASES_KEY = "path_bases"
ALLOWED_ROOTS_KEY = "allowed_roots"
"""The validation-context key holding the operator's MCP_KSCAN_ALLOWED_ROOTS (``validate_request`` sets it)."""
"""The validation-context key holding the bases (a list of absolute directory strings)."""

ROOTS_TIMEOUT_S = 10.0
"""How long a tool call waits for the client's roots/list answer before going on without roots."""

ABSOLUTE_PATH_ADVICE = "pass an absolute path"


class RootedRequest(BaseModel):
    """A request with path fields: remembers the bases its relative paths were resolved against, so
    another server that runs the queued scan re-validates it as the admitting one did (``scan_plan``)."""

    _path_bases: tuple[str, ...] = PrivateAttr(default=())

    @property
    def path_bases(self) -> tuple[str, ...]:
        return self._path_bases

    def with_path_bases(self, context: Mapping[str, Any] | None) -> RootedRequest:
        """Keep the bases of the validation ``context`` this request was validated with."""
        bases = (context or {}).get(PATH_BASES_KEY) or ()
        self._path_bases = tuple(str(b) for b in bases)
        return self


def is_relative(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not value.startswith("/")


async def client_roots(ctx: Context[Any, Any]) -> list[Path]:
    """The client's MCP roots as directories (``roots/list``), or [] when it declares none.

    A client that cannot answer (no roots capability, no back channel, an error, no answer within
    ROOTS_TIMEOUT_S) has no roots. Only ``file://`` roots are directories; others are ignored.
    The request goes out as part of the tool call (``related_request_id``), so over streamable
    HTTP it travels on the call's own response stream.
    """
    # Imported here: the path rules below also run in the engine's process, which has no MCP session.
    import anyio
    from mcp.shared.exceptions import MCPDeprecationWarning
    from mcp.shared.message import ServerMessageMetadata
    from mcp.types import ListRootsRequest, ListRootsResult

    session = ctx.request_context.session
    caps = session.client_capabilities
    if caps is None or caps.roots is None:
        return []
    try:
        with warnings.catch_warnings():
            # The SDK marks roots deprecated for the 2026-07-28 protocol; clients still send them.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            with anyio.fail_after(ROOTS_TIMEOUT_S):
                listed = await session.send_request(
                    ListRootsRequest(),
                    ListRootsResult,
                    metadata=ServerMessageMetadata(related_request_id=ctx.request_context.request_id),
                )
    except Exception:  # noqa: BLE001 - a client that cannot list its roots simply has none
        log.debug("roots/list failed", exc_info=True)
        return []
    dirs: list[Path] = []
    for root in listed.roots:
        parsed = urlparse(str(root.uri))
        path = unquote(parsed.path)
        if parsed.scheme == "file" and path.startswith("/"):
            dirs.append(Path(path))
    return dirs


async def path_context(ctx: Context[Any, Any], values: Iterable[object]) -> dict[str, Any] | None:
    """The validation context for a request whose path fields hold ``values``.

    The client is asked for its roots only when one of the values is relative (an absolute path
    needs no base, and roots/list is a round trip to the client).
    """
    if not any(is_relative(v) for v in values):
        return None
    return {PATH_BASES_KEY: [str(p) for p in await client_roots(ctx)]}


def roots_in(info: ValidationInfo | None) -> list[Path]:
    """The operator's allowed roots from the validation context. Missing means the request was
    validated without the server's settings: refused, never read as "no roots" (which allows all)."""
    context = info.context if info is not None else None
    if not isinstance(context, Mapping) or ALLOWED_ROOTS_KEY not in context:
        raise ValueError("cannot be checked: validated without the server's settings (use service.validate_request)")
    return [Path(r) for r in context[ALLOWED_ROOTS_KEY]]


def bases_in(info: ValidationInfo | None) -> list[Path] | None:
    """The bases an MCP front end put in the validation context, or None (REST, CLI: the cwd)."""
    context = info.context if info is not None else None
    if not isinstance(context, Mapping):
        return None
    bases = context.get(PATH_BASES_KEY)
    return [Path(b) for b in bases] if bases else None


def relative_base(value: str, bases: Sequence[Path] | None) -> Path:
    """Where the relative path ``value`` starts.

    With client roots: the first root under which ``value`` exists, else the first root (so the
    "no such file" error names the caller's project, not the server's directory). Without: the
    server's working directory, unless that is ``/`` (a desktop client's), where "." would mean
    the whole filesystem and "examples/" nothing the caller meant.
    """
    if bases:
        for base in bases:
            if (base / value).exists():
                return base
        return bases[0]
    cwd = Path(os.getcwd())
    if cwd == Path("/"):
        raise ValueError(
            f"relative path {shown(value)} has no base: the client declared no MCP roots and the server's "
            f"working directory is /; {ABSOLUTE_PATH_ADVICE}"
        )
    return cwd
