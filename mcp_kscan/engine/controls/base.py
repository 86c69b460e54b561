"""The shape of a control and the helpers its checks share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.model import Finding, Resource
from mcp_kscan.readers.kubescape_v2 import Severity, severity_from_score_factor


class _Passed:
    """The resource was checked and is fine (distinct from None: "does not apply")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PASSED"


PASSED: Final = _Passed()

Verdict = Finding | _Passed | None
Check = Callable[[Resource, ScanContext], Verdict]

def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a mapping, else {}: manifests may hold any type anywhere (issue 21)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """The value if it is a list, else []."""
    return value if isinstance(value, list) else []


def contains_any(text: str, parts: tuple[str, ...]) -> bool:
    """``any(p in text for p in parts)`` without a generator (several checks ask it of every image)."""
    for part in parts:
        if part in text:
            return True
    return False


def metadata_of(obj: dict[str, Any]) -> dict[str, Any]:
    """An object's metadata mapping, {} when absent or malformed."""
    return as_dict(obj.get("metadata"))


YOUR_VALUE = "YOUR_VALUE"  # Kubescape's placeholder when the right value is the user's to choose


@dataclass(frozen=True, slots=True)
class Control:
    """One Kubescape control: its identity, its weight, which frameworks hold it, and its check."""

    id: str
    name: str
    score_factor: float
    frameworks: tuple[str, ...]
    rule: str
    """Kubescape's rule name, written into results[].controls[].rules[].name."""
    kinds: frozenset[str]
    check: Check
    category: tuple[str, str] | None = None
    """(name, id), e.g. ("Workload", "Cat-5")."""
    description: str = ""
    remediation: str = ""
    rule_checks: tuple[tuple[str, Check], ...] = ()
    """For a control of several rules that are judged apart: (rule name, check) for each; the
    control's ``check`` fails when any of them does."""

    def check_for_rule(self, rule: str) -> Check:
        """The check that decides one of the control's rules (the control's own when not split)."""
        return dict(self.rule_checks).get(rule, self.check)

    @property
    def severity(self) -> Severity:
        return severity_from_score_factor(self.score_factor)


fail = Finding
"""``fail(failed paths, fixes, message)``: a failure at the ``failed`` paths, fixed at the
``fixes`` ones. The Finding itself, no wrapper call (a hundred thousand failures in a big scan):
the lists become the finding's own, not copied, since every check passes lists it has just built
and nothing changes a finding's lists afterwards (``merge`` builds a new one)."""


def sc(container: dict[str, Any]) -> dict[str, Any]:
    """A container's securityContext, or {} (so checks can .get() without None tests)."""
    value = container.get("securityContext")
    return value if isinstance(value, dict) else {}


def pod_sc(res: Resource) -> dict[str, Any]:
    value = res.pod_spec.get("securityContext") if res.pod_spec else None
    return value if isinstance(value, dict) else {}


class AllRules:
    """The check of a control judged by several rules (``Control.rule_checks``): each rule's
    check, their findings merged (``merge``), PASSED when none fails.

    ``scan.evaluate_one`` knows this shape: it runs each rule's check once per resource and
    shares its verdict with the controls whose own check it is (C-0211's rules include C-0013's,
    C-0016's, C-0017's and C-0057's checks)."""

    __slots__ = ("rules",)

    def __init__(self, rules: tuple[tuple[str, Check], ...]) -> None:
        self.rules = rules

    def __call__(self, res: Resource, ctx: ScanContext) -> Verdict:
        return merge([v for _, check in self.rules if isinstance(v := check(res, ctx), Finding)])


def merge(findings: list[Finding]) -> Verdict:
    """Many per-container findings become one failure (or a pass when there are none)."""
    if not findings:
        return PASSED
    if len(findings) == 1 and findings[0].exception is None and findings[0].expired is None:
        # One finding is its own merge: the checks pass findings they have just built, owned by
        # nobody else, so no copy is needed (and most failures are one container's).
        return findings[0]
    failed: list[str] = []
    fixes: list[tuple[str, str]] = []
    message = ""
    for f in findings:
        failed += f.failed_paths
        fixes += f.fix_paths
        if not message:
            message = f.message  # the first finding's that has one
    return Finding(failed, fixes, message)
