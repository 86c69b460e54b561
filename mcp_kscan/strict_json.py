"""JSON as every parser outside Python reads it: no NaN, no Infinity.

Python's ``json.loads`` accepts ``NaN``/``Infinity``; Go's encoder, browsers and ``jq`` do not.
Reports are parsed with ``loads`` here so that the bytes the store keeps as ``application/json``
are always strict JSON, which is what lets ``GET /v1/results`` hand them out without parsing.
"""

from __future__ import annotations

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def reason(exc: ValueError) -> str:
    """Why a document did not parse, in a few words: where for a syntax error, which constant otherwise."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.__class__.__name__} at char {exc.pos}"
    return str(exc)


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` that refuses NaN and ±Infinity with a ValueError naming the constant."""
    return json.loads(data, parse_constant=_reject_constant)


def decoder() -> json.JSONDecoder:
    """A decoder with the same refusal, for ``raw_decode`` over concatenated documents."""
    return json.JSONDecoder(parse_constant=_reject_constant)
