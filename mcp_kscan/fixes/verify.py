"""Is a fix a fix? Re-scan the patched object in memory with the built-in engine.

The patched file's text is read back with the engine's own loader (the YAML 1.1 rules of a real
scan, so ``on`` left elsewhere is still ``true``), the object is found again by kind, namespace
and name in its document, and every control of the engine is evaluated on it beside the original,
against the same context (the other objects of the scan, for the checks that look across
objects). A fix is verified when its control passes on the patched object and no control fails
there that passed before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import Control
from mcp_kscan.engine.frameworks import resolve
from mcp_kscan.engine.model import Resource, make_resource
from mcp_kscan.engine.scan import evaluate_one


def _all_controls() -> list[Control]:
    return list(resolve(["all"]).controls)


@dataclass(frozen=True, slots=True)
class Identity:
    """How a finding names its object: kind, namespace (as written) and name."""

    kind: str
    namespace: str
    name: str


def find_object(objects: Sequence[dict[str, Any]], who: Identity) -> tuple[int, dict[str, Any]] | None:
    """(position among the document's objects, object) of the finding's resource."""
    hits = []
    for i, obj in enumerate(objects):
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        if str(obj.get("kind") or "") == who.kind and str(meta.get("name") or "") == who.name:
            hits.append((i, obj, str(meta.get("namespace") or "")))
    for i, obj, ns in hits:
        if ns == who.namespace:
            return i, obj
    return (hits[0][0], hits[0][1]) if hits else None


@dataclass
class Verifier:
    """Evaluates objects against every engine control, in the context of one scan's objects."""

    context_objects: Sequence[Resource] = ()
    controls: list[Control] = field(default_factory=_all_controls)
    _ctx: ScanContext | None = None
    _by_kind: dict[str, list[Control]] | None = None

    def failed_controls(self, obj: dict[str, Any], relative_path: str = "", root: str = "",
                        document: int = 0, cluster: bool = False) -> dict[str, bool]:
        """control id → failed? for every control that applies to ``obj``."""
        if self._ctx is None:
            self._ctx = ScanContext.build(self.context_objects)
            by_kind: dict[str, list[Control]] = defaultdict(list)
            for c in self.controls:
                for kind in c.kinds:
                    by_kind[kind].append(c)
            self._by_kind = by_kind
        assert self._by_kind is not None
        res = make_resource(obj, relative_path, root, cluster=cluster, document=document)
        return {c.id: verdict is not None for c, verdict in evaluate_one(res, self._ctx, self._by_kind)}

    def judge(self, control_id: str, before: dict[str, Any], after: dict[str, Any], **where: Any) -> Verdict:
        """Does ``after`` pass ``control_id`` without failing a control ``before`` passed?"""
        if control_id not in {c.id for c in self.controls}:
            return Verdict(False, f"the built-in engine does not evaluate {control_id}, so the fix cannot be checked")
        old = self.failed_controls(before, **where)
        new = self.failed_controls(after, **where)
        if new.get(control_id, False):
            return Verdict(False, f"{control_id} still fails on the patched object")
        broken = sorted(cid for cid, failed in new.items() if failed and not old.get(cid, False))
        if broken:
            return Verdict(False, f"the patch makes {', '.join(broken)} fail", broken)
        return Verdict(True, f"{control_id} passes on the patched object and no other control fails that passed")


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    reason: str
    new_failures: list[str] = field(default_factory=list)

    def as_dict(self) -> Mapping[str, Any]:
        return {"verified": self.verified, "reason": self.reason}
