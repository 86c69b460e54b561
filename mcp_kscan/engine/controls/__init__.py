"""Kubescape controls the built-in engine evaluates: the catalogue and the frameworks over it."""

from __future__ import annotations

from mcp_kscan.engine.controls.base import PASSED, Control, Verdict
from mcp_kscan.engine.controls.registry import CONTROLS

__all__ = ["CONTROLS", "PASSED", "Control", "Verdict"]
