"""Errors a caller can act on, each with a one-line message.

Front ends translate these, not arbitrary exceptions: an MCP tool raises ``ToolError`` with
``str(exc)``, a REST route picks a status code from the class. Anything else is a bug and is
logged with its traceback, never shown to the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError



class KscanError(Exception):
    """Base class: the message is safe to show to a caller (no secrets, no server paths)."""


class InvalidRequest(KscanError):
    """A request field failed validation. ``str()`` reads ``<field>: <why>``."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class BinaryNotFound(KscanError):
    """The scanner executable is not installed where we looked."""


class QueueFull(KscanError):
    """More scans are waiting than the queue holds; retry later."""


class ScanNotFound(KscanError):
    """No scan with that id (or no scan at all) is known."""


class ScanBusy(KscanError):
    """The operation needs a scan that is not queued or running."""


class FindingsUnavailable(KscanError):
    """A finished scan's findings cannot be paged: still being indexed after the wait, or never indexed."""


class NotAccepting(KscanError):
    """The runner is shutting down (or its store failed) and takes no new work."""


class StoreError(KscanError):
    """The results database could not be written or read."""


class OperatorNotInstalled(KscanError):
    """None of the security operators whose results we read is installed in the cluster."""


class ClusterForbidden(KscanError):
    """The cluster's RBAC refused a read; the message names the resource and the verb."""


class ClusterNotConfigured(KscanError):
    """The server has no usable cluster configuration (no kubeconfig, not in a pod, or a broken one)."""


class ClusterUnreachable(KscanError):
    """The Kubernetes API could not be reached (or answered with a server error)."""


def _loc_to_field(loc: tuple[object, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def describe_validation_error(exc: ValidationError, known_fields: Iterable[str] = ()) -> InvalidRequest:
    """Turn pydantic's multi-line error into one ``field: why`` line (the first error wins).

    ``known_fields`` names the valid fields, so an unknown one is answered with the list.
    """
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return InvalidRequest("", "invalid request")
    first = errors[0]
    field = _loc_to_field(tuple(first.get("loc", ())))
    msg = str(first.get("msg", "invalid value"))
    known = sorted(known_fields)
    if first.get("type") == "extra_forbidden" and known:
        msg = f"unknown field; valid fields: {', '.join(known)}"
    # pydantic prefixes messages raised from validators with "Value error, ".
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    msg = " ".join(msg.split())  # one line, whatever the validator wrote
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return InvalidRequest(field, msg)
