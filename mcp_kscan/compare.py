"""What changed between two scans: which failures are new, which were fixed, which remain.

Teams adopt a scanner on code that already fails hundreds of checks; from then on CI and agents
want only what a change broke. Both ``compare_scans`` (two stored scans) and ``mcp-kscan scan
--baseline`` (a report file) classify with the functions here, so they cannot disagree.

How failures are matched (Kubescape findings):

- by control and resource identity: apiVersion, kind, namespace, name and, for manifests, the
  file. The file is compared as Kubescape's ``relativePath`` (the path under the scanned root),
  so a baseline written in another checkout still matches; when one scan was run on a parent
  folder, a relative path that ends with the other one (``examples/app/web.yaml`` and
  ``app/web.yaml``) is the same file. A renamed resource or a moved file is one new failure and
  one fixed one, as for a reviewer it is.
- a failure present in both scans whose head has a failing path the base did not (a second
  privileged container in an already privileged Deployment) is *new evidence*: it counts as new,
  with the new paths named, because the change made things worse.
- excepted findings are not failures (Kubescape reports them passed, ``w/exceptions``).

kube-bench checks are matched per node and check id; a check is failing when its status is FAIL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Change = Literal["new", "new_evidence", "fixed", "unchanged"]
VIEWS: tuple[str, ...] = ("summary", "new", "fixed", "unchanged")


@dataclass
class Compared:
    """One failure and what happened to it. ``item`` is the stored finding or check: the head's
    for new and unchanged ones, the base's for fixed ones."""

    item: Mapping[str, Any]
    change: Change
    new_paths: list[str] = field(default_factory=list)
    """For new evidence: the failing paths the base did not have."""


@dataclass
class Comparison:
    """The three lists, each in its scan's stored order (most urgent first, as ``get_results``)."""

    new: list[Compared]
    """New failures, new evidence included, in the head's order."""
    fixed: list[Compared]
    """Failures of the base that the head no longer has, in the base's order."""
    unchanged: list[Compared]
    """Failures in both, with no new failing path, in the head's order."""

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "new_evidence": sum(1 for c in self.new if c.change == "new_evidence"),
            "fixed": len(self.fixed),
            "unchanged": len(self.unchanged),
        }

    def view(self, name: str) -> list[Compared]:
        return {"new": self.new, "fixed": self.fixed, "unchanged": self.unchanged}[name]


def is_failing_finding(item: Mapping[str, Any]) -> bool:
    return item.get("status") == "failed" and not item.get("excepted")


def is_failing_check(item: Mapping[str, Any]) -> bool:
    return item.get("status") == "FAIL"


def identity_key(item: Mapping[str, Any]) -> tuple[str, ...]:
    res = item.get("resource") or {}
    return (str(item.get("control_id") or ""), str(res.get("api_version") or ""), str(res.get("kind") or ""),
            str(res.get("namespace") or ""), str(res.get("name") or ""))


def file_identity(item: Mapping[str, Any]) -> str:
    """The manifest file as compared: the path under the scanned root when the report says it."""
    res = item.get("resource") or {}
    found = res.get("relative_path") or res.get("file") or ""
    return str(found).replace("\\", "/").lstrip("./") if found else ""


def same_file(a: str, b: str) -> bool:
    """Equal, or one relative path is the other under a parent folder (``x/app.yaml``, ``app.yaml``)."""
    if a == b:
        return True
    if not a or not b:
        return False
    return a.endswith("/" + b) or b.endswith("/" + a)


def _paths(item: Mapping[str, Any]) -> set[str]:
    """Failing and fix paths: many controls name only the path to add (readOnlyRootFilesystem)."""
    paths = {str(p) for p in item.get("failed_paths") or []}
    paths |= {str(fp.get("path")) for fp in item.get("fix_paths") or [] if isinstance(fp, Mapping) and fp.get("path")}
    return paths


def compare_findings(base: Iterable[Mapping[str, Any]], head: Iterable[Mapping[str, Any]]) -> Comparison:
    """Classify the failing findings of two Kubescape scans (each iterable in its stored order)."""
    base_failing = [f for f in base if is_failing_finding(f)]
    head_failing = [f for f in head if is_failing_finding(f)]
    by_key: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, f in enumerate(base_failing):
        by_key[identity_key(f)].append(i)
    matched: dict[int, int] = {}
    """head index → base index."""
    taken: set[int] = set()
    pending: list[int] = []
    for j, f in enumerate(head_failing):  # exact file first, so a suffix never steals an exact pair
        name = file_identity(f)
        hit = next((i for i in by_key.get(identity_key(f), ()) if i not in taken
                    and file_identity(base_failing[i]) == name), None)
        if hit is None:
            pending.append(j)
        else:
            matched[j] = hit
            taken.add(hit)
    for j in pending:
        f = head_failing[j]
        name = file_identity(f)
        hit = next((i for i in by_key.get(identity_key(f), ()) if i not in taken
                    and same_file(file_identity(base_failing[i]), name)), None)
        if hit is not None:
            matched[j] = hit
            taken.add(hit)
    new: list[Compared] = []
    unchanged: list[Compared] = []
    for j, f in enumerate(head_failing):
        if j not in matched:
            new.append(Compared(f, "new"))
            continue
        added = sorted(_paths(f) - _paths(base_failing[matched[j]]))
        if added:
            new.append(Compared(f, "new_evidence", added))
        else:
            unchanged.append(Compared(f, "unchanged"))
    fixed = [Compared(f, "fixed") for i, f in enumerate(base_failing) if i not in taken]
    return Comparison(new, fixed, unchanged)


def _check_key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (str(item.get("node") or ""), str(item.get("id") or ""))


def compare_checks(base: Iterable[Mapping[str, Any]], head: Iterable[Mapping[str, Any]]) -> Comparison:
    """Classify the FAIL checks of two kube-bench scans, per node and check id."""
    base_failing = [c for c in base if is_failing_check(c)]
    head_failing = [c for c in head if is_failing_check(c)]
    remaining: dict[tuple[str, str], int] = defaultdict(int)
    for c in base_failing:
        remaining[_check_key(c)] += 1
    new: list[Compared] = []
    unchanged: list[Compared] = []
    for c in head_failing:
        key = _check_key(c)
        if remaining[key] > 0:
            remaining[key] -= 1
            unchanged.append(Compared(c, "unchanged"))
        else:
            new.append(Compared(c, "new"))
    head_left: dict[tuple[str, str], int] = defaultdict(int)
    for c in head_failing:
        head_left[_check_key(c)] += 1
    fixed: list[Compared] = []
    for c in base_failing:
        key = _check_key(c)
        if head_left[key] > 0:
            head_left[key] -= 1
        else:
            fixed.append(Compared(c, "fixed"))
    return Comparison(new, fixed, unchanged)


def compare(scanner: str, base: Sequence[Mapping[str, Any]], head: Sequence[Mapping[str, Any]]) -> Comparison:
    return compare_checks(base, head) if scanner == "kube-bench" else compare_findings(base, head)


def new_by_control(comparison: Comparison, top: int = 10) -> list[dict[str, Any]]:
    """The controls (or checks) with new failures, in the head's order, with how many each."""
    counts: dict[str, dict[str, Any]] = {}
    for c in comparison.new:
        cid = str(c.item.get("control_id") or c.item.get("id") or "")
        row = counts.setdefault(cid, {"control_id": cid, "severity": c.item.get("severity"), "new": 0})
        row["new"] += 1
    return list(counts.values())[:top]
