"""The control catalogue's data file, read once: Kubescape's controls, frameworks and rules.

``controls.json`` is written by ``scripts/gen_catalogue.py`` from Kubescape's regolibrary release
and shipped as package data, so nothing here reads the reference at run time. This module knows
nothing of the engine (the engine imports it); ``mcp_kscan.catalogue`` adds what the engine
implements on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("controls.json")
"""Package data beside this module (as ``engine/system_exceptions.json``): read as a file, not
through ``importlib.resources``, whose import alone (tempfile, zipfile) cost every engine process
a tenth of its start-up."""


@dataclass(frozen=True)
class ControlRecord:
    """One control exactly as the regolibrary release describes it."""

    control_id: str
    name: str
    base_score: float
    description: str
    remediation: str
    category: str | None
    category_id: str | None
    control_type_tags: tuple[str, ...]
    attack_tracks: tuple[str, ...]
    frameworks: tuple[str, ...]
    scanning_scope: tuple[str, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True)
class FrameworkRecord:
    name: str
    description: str
    scanning_scope: tuple[str, ...] | None
    """None when the framework declares no scope (Kubescape then applies it to any target)."""
    type_tags: tuple[str, ...]
    controls: tuple[str, ...]


@dataclass(frozen=True)
class RuleRecord:
    name: str
    directory: str
    """The rule's directory in regolibrary's rules/ (differs from the name for a few rules)."""
    kinds: tuple[str, ...]
    config_inputs: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    source: str
    controls: dict[str, ControlRecord]
    frameworks: tuple[FrameworkRecord, ...]
    rules: dict[str, RuleRecord]
    default_control_inputs: dict[str, list[str]]


def _control(raw: dict[str, Any]) -> ControlRecord:
    return ControlRecord(
        control_id=raw["id"], name=raw["name"], base_score=float(raw["base_score"]),
        description=raw["description"], remediation=raw["remediation"],
        category=raw["category"], category_id=raw["category_id"],
        control_type_tags=tuple(raw["control_type_tags"]), attack_tracks=tuple(raw["attack_tracks"]),
        frameworks=tuple(raw["frameworks"]), scanning_scope=tuple(raw["scanning_scope"]),
        rules=tuple(raw["rules"]),
    )


@cache
def catalogue() -> Catalogue:
    """The parsed data file (cached: it is read-only and the same for the process' lifetime)."""
    text = DATA_FILE.read_text(encoding="utf-8")
    raw = json.loads(text)
    controls = {c["id"]: _control(c) for c in raw["controls"]}
    frameworks = tuple(
        FrameworkRecord(
            name=f["name"], description=f["description"],
            scanning_scope=tuple(f["scanning_scope"]) if f["scanning_scope"] is not None else None,
            type_tags=tuple(f["type_tags"]), controls=tuple(f["controls"]),
        )
        for f in raw["frameworks"]
    )
    rules = {
        name: RuleRecord(name, r["directory"], tuple(r["kinds"]), tuple(r["config_inputs"]))
        for name, r in raw["rules"].items()
    }
    return Catalogue(raw["source"], controls, frameworks, rules, raw["default_control_inputs"])


def control_record(control_id: str) -> ControlRecord:
    """The record of a control the engine implements; a missing one is a programming error."""
    try:
        return catalogue().controls[control_id]
    except KeyError:
        raise KeyError(f"{control_id} is not in the catalogue ({catalogue().source})") from None
