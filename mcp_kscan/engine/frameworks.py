"""Which controls a scan runs: framework names and control IDs, validated against the catalogue.

Every framework of the regolibrary release that applies to files (its ``scanningScope`` names
``file``, or it declares no scope) can be selected. A selected control the engine cannot decide is
not dropped: it is reported as skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcp_kscan.catalogue.records import catalogue
from mcp_kscan.engine.controls import CONTROLS, Control
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.inputs import ControlInputs
from mcp_kscan.readers.kubescape_v2 import Severity, severity_from_score_factor

# "all" means every framework below, as `kubescape scan framework all` does.
ALL_ALIASES = ("all",)
DEFAULT_FRAMEWORKS = ("nsa", "mitre", "allcontrols")

CONTROLS_BY_ID: dict[str, Control] = {c.id: c for c in CONTROLS}

# Why a control of the catalogue is not decided by the engine, when the reason is more specific
# than its scanning scope (data, not code: one line per control).
NOT_DECIDABLE: dict[str, str] = {
    "C-0083": "needs image vulnerability scan results, which manifests do not carry",
    "C-0084": "needs image vulnerability scan results, which manifests do not carry",
    "C-0085": "needs image vulnerability scan results, which manifests do not carry",
    "C-0221": "needs the cloud provider's API (image scanning settings of the registry)",
    "C-0236": "needs the image registry to verify image signatures",
    "C-0237": "needs the image registry to look up image signatures",
}
NOT_IMPLEMENTED = "not implemented by the built-in engine; use the Kubescape binary (engine=kubescape)"
CLUSTER_ONLY = ("needs what only a live cluster shows (API server and kubelet settings, nodes, cloud APIs: its "
                "scanningScope is cluster), which the built-in engine does not read")


def _file_frameworks() -> dict[str, str]:
    """Accepted names (lower case) → the framework name Kubescape writes in reports."""
    return {f.name.lower(): f.name for f in catalogue().frameworks
            if f.scanning_scope is None or "file" in f.scanning_scope}


FRAMEWORK_NAMES: dict[str, str] = _file_frameworks()


class UnknownSelection(ValueError):
    """A framework or control name the engine does not know; the message lists what exists."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class SkippedControl:
    """A selected control the engine does not decide, and why (reported with status "skipped")."""

    id: str
    name: str
    score_factor: float
    frameworks: tuple[str, ...]
    reason: str
    category: tuple[str, str] | None = None

    @property
    def severity(self) -> Severity:
        return severity_from_score_factor(self.score_factor)


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
    skipped: tuple[SkippedControl, ...] = ()
    """Selected controls the engine cannot decide, with the reason."""
    exceptions: Exceptions | None = None
    """Accepted risk (``engine.exceptions``): failed verdicts it covers are reported passed, w/exceptions."""


def skip_reason(control_id: str) -> str:
    rec = catalogue().controls[control_id]
    if control_id in NOT_DECIDABLE:
        return NOT_DECIDABLE[control_id]
    if "file" not in rec.scanning_scope:
        return CLUSTER_ONLY
    return NOT_IMPLEMENTED


def skipped_control(control_id: str) -> SkippedControl:
    rec = catalogue().controls[control_id]
    return SkippedControl(rec.control_id, rec.name, rec.base_score, rec.frameworks, skip_reason(control_id),
                          (rec.category, rec.category_id or "") if rec.category else None)


def list_frameworks() -> list[str]:
    """Framework names a caller may pass (lower case), sorted, plus ``all``."""
    return sorted(FRAMEWORK_NAMES) + list(ALL_ALIASES)


def list_controls() -> list[dict[str, object]]:
    """Every control the engine decides: id, name, severity, scoreFactor, category and frameworks."""
    return [
        {"id": c.id, "name": c.name, "severity": c.severity, "scoreFactor": c.score_factor,
         "category": c.category[0] if c.category else None,
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

    Raises UnknownSelection naming every accepted value when a name is not known. A control of
    the catalogue that the engine does not decide is selected as skipped, not refused.
    """
    fw_names = _split(frameworks)
    ctl_ids = [c.upper() for c in _split(controls)]
    if not fw_names and not ctl_ids:
        fw_names = list(DEFAULT_FRAMEWORKS)
    report_frameworks: list[str] = []
    for name in fw_names:
        key = name.lower()
        if key in ALL_ALIASES:
            report_frameworks.extend(FRAMEWORK_NAMES[k] for k in sorted(FRAMEWORK_NAMES))
        elif key in FRAMEWORK_NAMES:
            report_frameworks.append(FRAMEWORK_NAMES[key])
        else:
            raise UnknownSelection(
                "frameworks", f"unknown framework {name!r}; known: {', '.join(list_frameworks())}"
            )
    report_frameworks = list(dict.fromkeys(report_frameworks))
    known = catalogue().controls
    for cid in ctl_ids:
        if cid not in known:
            raise UnknownSelection(
                "controls", f"unknown control {cid!r}; known: {', '.join(sorted(CONTROLS_BY_ID))} "
                            f"(and {len(known) - len(CONTROLS_BY_ID)} more the built-in engine reports as skipped)"
            )
    wanted: dict[str, None] = {}
    by_name = {f.name: f for f in catalogue().frameworks}
    for fw in report_frameworks:
        wanted.update(dict.fromkeys(by_name[fw].controls))
    wanted.update(dict.fromkeys(ctl_ids))
    selected = tuple(c for c in CONTROLS if c.id in wanted)
    skipped = tuple(skipped_control(cid) for cid in sorted(wanted) if cid not in CONTROLS_BY_ID and cid in known)
    if ctl_ids and not fw_names:
        return Selection(selected, (), "Control", tuple(ctl_ids), inputs, skipped)
    return Selection(selected, tuple(report_frameworks), "Framework", tuple(fw_names + ctl_ids), inputs, skipped)
