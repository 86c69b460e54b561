"""Control inputs: the lists Kubescape's configurable rules read (``settings.postureControlInputs``).

Defaults are the regolibrary release's ``default-config-inputs.json`` (carried in the catalogue
data file). A ``--controls-config`` file has that file's shape; each key it sets replaces that
key's default, and keys it leaves out keep their default (so a file that only lists trusted
registries does not silently turn off the credential and capability checks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mcp_kscan.catalogue.records import catalogue

ControlInputs = Mapping[str, tuple[str, ...]]

MAX_CONFIG_BYTES = 1_000_000


class ControlsConfigError(ValueError):
    """A controls-config file that cannot be used; the message is one line (front ends name the field)."""


def default_inputs() -> dict[str, tuple[str, ...]]:
    return {k: tuple(str(v) for v in values) for k, values in catalogue().default_control_inputs.items()}


def _inputs_block(raw: Any) -> Mapping[str, Any]:
    """``settings.postureControlInputs`` (Kubescape's file) or ``postureControlInputs`` (a rule test's data.json)."""
    if not isinstance(raw, dict):
        raise ControlsConfigError("expected a JSON object with settings.postureControlInputs")
    if isinstance(raw.get("settings"), dict) and "postureControlInputs" in raw["settings"]:
        block = raw["settings"]["postureControlInputs"]
    elif "postureControlInputs" in raw:
        block = raw["postureControlInputs"]
    else:
        raise ControlsConfigError("no settings.postureControlInputs object in the file")
    if not isinstance(block, dict):
        raise ControlsConfigError("settings.postureControlInputs must be an object")
    return block


def merge_inputs(raw: Any, base: ControlInputs | None = None) -> dict[str, tuple[str, ...]]:
    """``base`` (the defaults) with every key the config sets replaced by the config's list."""
    out = dict(base if base is not None else default_inputs())
    known = set(out)
    for key, values in _inputs_block(raw).items():
        if not isinstance(values, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            raise ControlsConfigError(f"postureControlInputs.{key} must be a list of strings")
        if key not in known:
            raise ControlsConfigError(
                f"unknown input {key!r}; known: {', '.join(sorted(known))}")
        out[key] = tuple(str(v) for v in values)
    return out


def load_controls_config(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read a controls-config file (JSON). The caller validates the path against the allowed roots."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ControlsConfigError(f"{p.name} is larger than {MAX_CONFIG_BYTES} bytes")
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ControlsConfigError(f"cannot read {p.name}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlsConfigError(f"{p.name} is not JSON ({exc})") from None
    return merge_inputs(raw)
