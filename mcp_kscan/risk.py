"""The one order of urgency: which failed control to fix first.

Severity alone puts "set a memory limit" (C-0004, High) beside "privileged container" (C-0057,
High) and, by resource count, usually before it. Kubescape's own metadata says more. The order is:

1. severity (Critical first);
2. the control's tier, from the catalogue (``tier``):
   0. attack surface: tagged ``security`` (``controlTypeTags``) and in Kubescape's ``security``
      framework, tagged ``security-impact``, or on an attack track that is not service destruction
      (privileged containers, host namespaces, hostPath, credentials, exposed workloads);
   1. other security controls, and those whose only attack track is service destruction: they
      protect availability (resource limits: C-0009, C-0270, C-0271);
   2. ``devops``/``compliance``-only controls (C-0004, C-0050, probes, labels);
3. the catalogue's base score (Kubescape's scoreFactor), higher first;
4. the number of affected resources, more first;
5. the control id, so equal controls always come in the same order.

The summary's top list, ``get_results(view="controls")`` and the findings pages all follow
``risk_key`` (the store ranks findings by the report's ``control_order``, built with it).
"""

from __future__ import annotations

from mcp_kscan.catalogue import ControlInfo, get_control
from mcp_kscan.readers.kubescape_v2 import severity_rank

SECURITY_TAGS = frozenset({"security", "security-impact"})
AVAILABILITY_TRACKS = frozenset({"service-destruction"})
"""Attack tracks about denial of service rather than compromise."""
SECURITY_FRAMEWORK = "security"
"""Kubescape's framework of "controls that are used to assess security threats"."""
UNKNOWN_TIER = 2


def tier(info: ControlInfo) -> int:
    """0 attack surface, 1 other security (availability), 2 devops/compliance only."""
    tags = set(info.control_type_tags)
    tracks = set(info.attack_tracks)
    if not (tags & SECURITY_TAGS or tracks):
        return 2
    if tracks and tracks <= AVAILABILITY_TRACKS:
        return 1
    if SECURITY_FRAMEWORK in info.frameworks or "security-impact" in tags or tracks:
        return 0
    return 1


def is_security(control_id: str) -> bool | None:
    """True for a security-tagged or attack-track control; None when the catalogue lacks it."""
    info = get_control(control_id)
    return None if info is None else tier(info) < 2


def risk_key(control_id: str, severity: str, affected_resources: int) -> tuple[int, int, float, int, str]:
    """Sort key, most urgent first (see the module docstring)."""
    info = get_control(control_id)
    level = tier(info) if info is not None else UNKNOWN_TIER
    score = info.base_score if info is not None else 0.0
    return (severity_rank(severity), level, -score, -affected_resources, control_id)
