"""Which controls a scan runs: framework names and control IDs, validated against the catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp_kscan.engine.controls import CONTROLS, Control
from mcp_kscan.engine.inputs import ControlInputs

# Accepted names (case-insensitive) → the framework name Kubescape writes in reports.
FRAMEWORK_NAMES: dict[str, str] = {"nsa": "NSA", "mitre": "MITRE", "allcontrols": "AllControls"}
# "all" means every native framework, as `kubescape scan framework all` does.
ALL_ALIASES = ("all",)
DEFAULT_FRAMEWORKS = ("nsa", "mitre", "allcontrols")

CONTROLS_BY_ID: dict[str, Control] = {c.id: c for c in CONTROLS}


class UnknownSelection(ValueError):
    """A framework or control name the engine does not know; the message lists what exists."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Selection:
    controls: tuple[Control, ...]
    frameworks: tuple[str, ...]
    """Report names (NSA, MITRE, AllControls); empty for a control scan."""
    target_type: str
    """"Framework" or "Control", as in Kubescape's scanMetadata."""
    target_names: tuple[str, ...]
    inputs: ControlInputs | None = None
    """The control inputs (a --controls-config file's); None: the release's defaults."""


def list_frameworks() -> list[str]:
    """Framework names a caller may pass, sorted, plus ``all``."""
    return sorted(FRAMEWORK_NAMES) + list(ALL_ALIASES)


def list_controls() -> list[dict[str, object]]:
    """Every control: id, name, severity, scoreFactor and frameworks (like ``kubescape list controls``)."""
    return [
        {"id": c.id, "name": c.name, "severity": c.severity, "scoreFactor": c.score_factor,
         "frameworks": list(c.frameworks), "remediation": c.remediation}
        for c in CONTROLS
    ]


def _split(values: Sequence[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def resolve(frameworks: Sequence[str] | str | None = None, controls: Sequence[str] | str | None = None,
            inputs: ControlInputs | None = None) -> Selection:
    """The controls to run. Frameworks and controls may be combined (the union runs).

    Raises UnknownSelection naming every accepted value when a name is not known.
    """
    fw_names = _split(frameworks)
    ctl_ids = [c.upper() for c in _split(controls)]
    if not fw_names and not ctl_ids:
        fw_names = list(DEFAULT_FRAMEWORKS)
    report_frameworks: list[str] = []
    for name in fw_names:
        key = name.lower()
        if key in ALL_ALIASES:
            report_frameworks.extend(FRAMEWORK_NAMES[k] for k in DEFAULT_FRAMEWORKS)
        elif key in FRAMEWORK_NAMES:
            report_frameworks.append(FRAMEWORK_NAMES[key])
        else:
            raise UnknownSelection(
                "frameworks", f"unknown framework {name!r}; known: {', '.join(list_frameworks())}"
            )
    report_frameworks = list(dict.fromkeys(report_frameworks))
    for cid in ctl_ids:
        if cid not in CONTROLS_BY_ID:
            raise UnknownSelection(
                "controls", f"unknown control {cid!r}; known: {', '.join(sorted(CONTROLS_BY_ID))}"
            )
    chosen = {c.id for c in CONTROLS if any(f in c.frameworks for f in report_frameworks)} | set(ctl_ids)
    selected = tuple(c for c in CONTROLS if c.id in chosen)
    if ctl_ids and not fw_names:
        return Selection(selected, (), "Control", tuple(ctl_ids), inputs)
    return Selection(selected, tuple(report_frameworks), "Framework", tuple(fw_names + ctl_ids), inputs)
