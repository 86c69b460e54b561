"""The one order of urgency: which failed control to fix first.

Severity alone puts "set a memory limit" (C-0004, High) beside "privileged container" (C-0057,
High) and, by resource count, often before it. Kubescape's own metadata says more: a control
tagged ``security`` (``controlTypeTags``) or on an attack track is about an attacker, one tagged
only ``devops``/``compliance`` is about hygiene. So the order is:

1. severity (Critical first);
2. security-tagged or attack-track controls before devops/compliance-only ones;
3. the catalogue's base score (Kubescape's scoreFactor), higher first;
4. the number of affected resources, more first;
5. the control id, so equal controls always come in the same order.

The summary's top list, ``get_results(view="controls")`` and the findings pages all sort with
``risk_key``; nothing else orders controls.
"""

from __future__ import annotations

from mcp_kscan.readers.kubescape_v2 import severity_rank

SECURITY_TAGS = frozenset({"security", "security-impact"})


def _catalogue_facts(control_id: str) -> tuple[bool, float] | None:
    """(security-relevant, base score) from the control catalogue; None for a control it lacks."""
    return None


def is_security(control_id: str) -> bool | None:
    """True for a security-tagged or attack-track control; None when the catalogue lacks it."""
    facts = _catalogue_facts(control_id)
    return None if facts is None else facts[0]


def risk_key(control_id: str, severity: str, affected_resources: int, base_score: float | None = None) -> tuple[int, int, float, int, str]:
    """Sort key, most urgent first. ``base_score`` overrides the catalogue's (reports carry one)."""
    facts = _catalogue_facts(control_id)
    security = facts[0] if facts is not None else False
    score = base_score if base_score is not None else (facts[1] if facts is not None else 0.0)
    return (severity_rank(severity), 0 if security else 1, -score, -affected_resources, control_id)
