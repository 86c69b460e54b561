"""The one redaction helper: secrets never reach logs, stored commands or responses.

Secrets are known two ways: by value (an access key or token registered when a request
arrives, or read from the environment) and by shape (the value after a flag such as
``--access-key``, or a key named like ``accessKey``/``token``/``password``). Everything that
leaves the process — stored argv, error messages, log lines, REST bodies — passes through here.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
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


def register_secret(value: str | None) -> None:
    """Remember a secret value so every later redaction scrubs it, wherever it turns up."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _known.add(value)


def is_secret_key(key: str) -> bool:
    """True for mapping keys / env names that hold secrets (accessKey, KS_ACCESS_KEY, token…)."""
    return bool(_SECRET_KEY_RE.search(key))


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every known secret value (and ``extra`` ones) in free text."""
    with _lock:
        values = set(_known)
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
