"""The one redaction helper: secrets never reach logs, stored commands or responses.

Secrets are known three ways:

- the server's own, by value: the operator's token and ``KS_ACCESS_KEY`` (``register_secret``,
  called by the settings only), scrubbed everywhere;
- a scan's own, by value: an access key a request carries is scrubbed from that scan's outputs,
  record, stored report and log lines (``scan_secrets`` around the scan, or ``extra=``), and
  nowhere else. A caller's value never becomes a server-wide rule: a request could otherwise
  register ``127.0.0.1`` or ``json`` and blank them out of every log line and every other
  caller's command;
- by shape: the value after a flag such as ``--access-key``, or a key named like
  ``accessKey``/``token``/``password``.

Everything that leaves the process — stored argv, error messages, log lines, REST bodies —
passes through here. A scan without secrets pays nothing extra.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

REDACTED = "***"

# Flags whose next argv element (or ``=value``) is a secret.
SECRET_FLAGS = frozenset(
    {
        "--access-key",
        "--accesskey",
        "--token",
        "--password",
        "--client-secret",
        "--api-key",
        "--secret",
    }
)

_SECRET_KEY_RE = re.compile(r"(access[_-]?key|token|secret|password|passwd|api[_-]?key|credential)", re.I)

# Shortest value worth scrubbing by value: shorter strings would hit ordinary words.
_MIN_SECRET_LEN = 4

_lock = threading.Lock()
_known: set[str] = set()
_scan: ContextVar[tuple[str, ...]] = ContextVar("mcp_kscan_scan_secrets", default=())


def register_secret(value: str | None) -> None:
    """Remember one of the server's own secrets (settings only) so every redaction scrubs it.

    Never call this with a value from a request: use ``scan_secrets`` (or ``extra=``) instead.
    """
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _known.add(value)


@contextmanager
def scan_secrets(secrets: Iterable[str]) -> Iterator[None]:
    """Within this block (its task, and the threads it starts), also scrub ``secrets``.

    The runner wraps each scan in it, so that scan's log lines and messages lose its access key
    while every other scan and request is untouched.
    """
    values = tuple(v for v in secrets if v and len(v) >= _MIN_SECRET_LEN)
    token = _scan.set(values)
    try:
        yield
    finally:
        _scan.reset(token)


def is_secret_key(key: str) -> bool:
    """True for mapping keys / env names that hold secrets (accessKey, KS_ACCESS_KEY, token…)."""
    return bool(_SECRET_KEY_RE.search(key))


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every known secret value (and ``extra`` ones) in free text."""
    with _lock:
        values = set(_known)
    values.update(_scan.get())
    values.update(v for v in extra if v and len(v) >= _MIN_SECRET_LEN)
    # Longest first, so a secret containing another is replaced whole.
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def redact_argv(argv: Sequence[str], extra: Iterable[str] = ()) -> list[str]:
    """A copy of ``argv`` with secret flag values and known secret values masked."""
    out: list[str] = []
    hide_next = False
    extra = list(extra)
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _value = arg.partition("=")
        if flag.lower() in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_text(arg, extra))
    return out


def redact_mapping(data: Any, extra: Iterable[str] = ()) -> Any:
    """Deep copy of JSON-like data with secret-named keys masked and secret values scrubbed."""
    extra = list(extra)
    if isinstance(data, Mapping):
        result: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(key, str) and is_secret_key(key) and value not in (None, "", False):
                result[key] = REDACTED
            else:
                result[key] = redact_mapping(value, extra)
        return result
    if isinstance(data, list | tuple):
        return [redact_mapping(v, extra) for v in data]
    if isinstance(data, str):
        return redact_text(data, extra)
    return data


def redact_values(data: Any, secrets: Sequence[str]) -> Any:
    """Deep copy of JSON-like data with ``secrets`` replaced in every string (keys untouched).

    For a scan's report, summary and findings: the scanner may write the access key it was
    given anywhere, and the key names there are the scanner's, not ours to judge.
    """
    if not secrets:
        return data
    if isinstance(data, str):
        for value in sorted(secrets, key=len, reverse=True):
            if value in data:
                data = data.replace(value, REDACTED)
        return data
    if isinstance(data, Mapping):
        return {k: redact_values(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_values(v, secrets) for v in data]
    return data


def redact_bytes(raw: bytes, secrets: Sequence[str]) -> bytes:
    """``raw`` (a stored report) with each secret replaced; unchanged when there are none."""
    for value in sorted(secrets, key=len, reverse=True):
        needle = value.encode("utf-8")
        if needle and needle in raw:
            raw = raw.replace(needle, REDACTED.encode())
    return raw


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs known secrets from every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        cleaned = redact_text(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
