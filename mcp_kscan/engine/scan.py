"""The engine's library API: scan manifests (or objects) and get the Kubescape v2 report as a dict.

Pure and synchronous; callers on an event loop run it in a worker thread (see ``engine.task``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.controls import PASSED, Control
from mcp_kscan.engine.controls.base import AllRules, Check, Verdict, merge
from mcp_kscan.engine.frameworks import Selection, list_controls, list_frameworks, resolve
from mcp_kscan.engine.inputs import ControlInputs
from mcp_kscan.engine.loader import LoadError, iter_documents
from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.engine.render import Renderers
from mcp_kscan.engine.model import Finding, Resource, make_resource
from mcp_kscan.engine.report import ResourceVerdicts, ScanTarget, build_report

__all__ = ["evaluate", "list_controls", "list_frameworks", "scan_objects", "scan_paths", "scan_resources"]


def evaluate_one(res: Resource, ctx: ScanContext, by_kind: dict[str, list[Control]],
                 problems: list[LoadError] | None = None) -> ResourceVerdicts:
    """Every applicable control's verdict on one resource (None verdicts are left out).

    This is the evaluation boundary: a control that raises on an object of an unexpected shape
    (``volumes: 5``) costs only that control's verdict on that object, reported in ``problems``
    with the file and document, never the scan.

    Several controls share one check (C-0012 and C-0259 are the same credentials rule, C-0049,
    C-0054 and C-0206 the same network-policy rule): a check is pure, so it runs once per
    resource and the others reuse its verdict (or its exception). Each control gets its own
    Finding (a copy), since accepted risk is marked on a control's finding (apply_exceptions).
    """
    controls = by_kind.get(res.kind)
    if not controls:
        return []
    vs: ResourceVerdicts = []
    seen: dict[Check, Verdict | Exception] = {}
    for c, check, shared, rules in _steps(controls, ctx):
        if shared:
            verdict = seen.get(check, _UNSEEN)
            if verdict is _UNSEEN:
                try:
                    verdict = _all_rules(rules, res, ctx, seen) if rules else check(res, ctx)
                except Exception as exc:  # noqa: BLE001 - any control bug on any input stays one warning
                    verdict = exc.with_traceback(None)  # kept without its frames (no reference cycle)
                seen[check] = verdict
            elif isinstance(verdict, Finding):
                verdict = verdict.copy()
        else:
            try:
                verdict = check(res, ctx)
            except Exception as exc:  # noqa: BLE001 - as above
                verdict = exc.with_traceback(None)
        if verdict is None:
            continue
        if verdict is PASSED:
            vs.append((c, None))
        elif isinstance(verdict, Exception):
            if problems is not None:
                problems.append(evaluation_problem(res, f"control {c.id}", verdict))
        else:
            vs.append((c, verdict))  # type: ignore[arg-type]
    return vs


Step = tuple[Control, Check, bool, tuple[tuple[Check, bool], ...]]


def _steps(controls: Sequence[Control], ctx: ScanContext) -> tuple[Step, ...]:
    """(control, its check, whether the check's verdict is shared, and for an ``AllRules`` each
    rule with whether its verdict is shared) for a kind's controls, worked out once per list and
    scan (a scan passes the same lists for every resource; they must not change afterwards). A
    check is shared when several of the controls run it, itself or as a rule of an ``AllRules``:
    only those verdicts go through ``seen``, the others are a plain call.

    Kept in the scan's context, not in the module: a process-wide cache held earlier scans'
    controls until it filled up and was cleared in the middle of a later scan."""
    plans: dict[int, tuple[Sequence[Control], tuple[Step, ...]]] = ctx.memo("control steps", dict)
    found = plans.get(id(controls))
    if found is None:
        found = plans[id(controls)] = (controls, _plan(controls))
    return found[1] if found[0] is controls else _plan(controls)  # the list held: its id is not reused


def _plan(controls: Sequence[Control]) -> tuple[Step, ...]:
    uses: dict[Check, int] = {}
    for c in controls:
        checks: list[Check] = [c.check]
        if isinstance(c.check, AllRules):
            checks += [rule for _, rule in c.check.rules]
        for check in checks:
            uses[check] = uses.get(check, 0) + 1
    return tuple((c, c.check, type(c.check) is AllRules or uses[c.check] > 1,
                  tuple((rule, uses[rule] > 1) for _, rule in c.check.rules) if type(c.check) is AllRules else ())
                 for c in controls)


def _all_rules(rules: tuple[tuple[Check, bool], ...], res: Resource, ctx: ScanContext,
               seen: dict[Check, Verdict | Exception]) -> Verdict:
    """An ``AllRules`` check's verdict from its ``rules`` (each with whether its verdict is
    shared): a shared rule's verdict is taken from ``seen`` or left there for the controls whose
    own check it is, the others' are a plain call; the same findings merged, or the first rule's
    exception raised."""
    findings: list[Finding] = []
    for rule, shared in rules:
        if not shared:
            if isinstance(own := rule(res, ctx), Finding):
                findings.append(own)
            continue
        verdict = seen.get(rule, _UNSEEN)
        if verdict is _UNSEEN:
            try:
                verdict = rule(res, ctx)
            except Exception as exc:  # kept for the rule's own control, then raised for this one
                verdict = seen[rule] = exc.with_traceback(None)
                raise
            seen[rule] = verdict
        if isinstance(verdict, Exception):
            raise verdict
        if isinstance(verdict, Finding):
            findings.append(verdict)
    # A rule's finding is also its own control's verdict: a merge of one would be that very
    # object, so it is copied (accepted risk is marked per control, apply_exceptions).
    return findings[0].copy() if len(findings) == 1 else merge(findings)


def apply_exceptions(res: Resource, vs: ResourceVerdicts, exceptions: Exceptions | None) -> ResourceVerdicts:
    """Mark the failed verdicts that accepted risk covers (and those whose exception expired)."""
    if exceptions is None or not _any_failed(vs):
        return vs
    found = exceptions.for_resource(res)
    if found.empty:
        return vs  # the checks' findings are new, none marked yet (``Finding``'s defaults)
    for c, f in vs:
        if f is not None:
            applied, expired = found.check(c.id, c.name, c.frameworks, c.rule)
            f.exception = applied.as_dict() if applied else None
            f.expired = expired.as_dict() if expired else None
    return vs


def _any_failed(vs: ResourceVerdicts) -> bool:
    for _, f in vs:
        if f is not None:
            return True
    return False


_UNSEEN: Final = object()


def evaluation_problem(res: Resource, what: str, exc: BaseException) -> LoadError:
    """A per-object warning: which file and document, what failed, and the exception's kind."""
    where = res.relative_path or res.resource_id
    return LoadError(where, f"{what} could not evaluate {res.kind} {res.name!r} ({exc.__class__.__name__}); "
                            "left out of the results", res.document if res.relative_path else None)


def evaluate(resources: Sequence[Resource], controls: Sequence[Control],
             inputs: ControlInputs | None = None,
             problems: list[LoadError] | None = None) -> list[ResourceVerdicts]:
    """Run every applicable control on every resource (index context first)."""
    ctx = ScanContext.build(resources, inputs)
    by_kind: dict[str, list[Control]] = defaultdict(list)
    for c in controls:
        for kind in c.kinds:
            by_kind[kind].append(c)
    return [evaluate_one(res, ctx, by_kind, problems) for res in resources]


def scan_resources(
    resources: Sequence[Resource], selection: Selection, target: ScanTarget, *, omit_raw_resources: bool = False
) -> dict[str, Any]:
    problems: list[LoadError] = []
    verdicts = [apply_exceptions(res, vs, selection.exceptions)
                for res, vs in zip(resources, evaluate(resources, selection.controls, selection.inputs, problems))]
    target.errors = list(target.errors) + [str(p) for p in problems]
    return build_report(selection, resources, verdicts, target, omit_raw_resources=omit_raw_resources)


def load_resources(paths: Sequence[str | os.PathLike[str]], errors: list[LoadError],
                   limits: ReadLimits | None = None) -> list[Resource]:
    return [make_resource(d.obj, d.relative_path, d.root, document=d.index, origin=d.origin)
            for d in iter_documents(paths, errors, limits=limits)]


def target_for(paths: Sequence[str | os.PathLike[str]]) -> ScanTarget:
    shown = [str(p) for p in paths]
    if shown == ["-"]:
        return ScanTarget("stdin", shown)
    if len(shown) == 1 and Path(shown[0]).is_dir():
        return ScanTarget("directory", [os.path.abspath(shown[0])])
    return ScanTarget("file", [os.path.abspath(p) if p != "-" else p for p in shown])


def scan_paths(
    paths: Sequence[str | os.PathLike[str]],
    frameworks: Sequence[str] | str | None = None,
    controls: Sequence[str] | str | None = None,
    *,
    omit_raw_resources: bool = False,
    inputs: ControlInputs | None = None,
    limits: ReadLimits | None = None,
    workers: int | None = 1,
    renderers: Renderers | None = None,
    exceptions: Exceptions | None = None,
) -> dict[str, Any]:
    """Scan files/directories (``-`` for stdin) and return the v2 report.

    The same scan as ``parallel.scan_paths_json`` (one code path: reading, isolation and the
    JSON-safe report are decided there), decoded. Unreadable files and documents that cannot be
    read or evaluated land in ``metadata.engine.errors``; everything else is still scanned.
    Raises ``UnknownSelection`` for unknown framework/control names.
    """
    from mcp_kscan.engine.parallel import scan_paths_json

    report: dict[str, Any] = json.loads(scan_paths_json(
        paths, frameworks, controls, omit_raw_resources=omit_raw_resources, limits=limits, workers=workers,
        inputs=inputs, renderers=renderers, exceptions=exceptions))
    return report


def scan_objects(
    objects: Iterable[dict[str, Any]],
    frameworks: Sequence[str] | str | None = None,
    controls: Sequence[str] | str | None = None,
    *,
    cluster: bool = True,
    target: ScanTarget | None = None,
    omit_raw_resources: bool = False,
    inputs: ControlInputs | None = None,
    exceptions: Exceptions | None = None,
) -> dict[str, Any]:
    """Scan objects already in memory (a live cluster's, or a test's)."""
    selection = replace(resolve(frameworks, controls, inputs), exceptions=exceptions)
    resources = [make_resource(o, cluster=cluster) for o in objects]
    return scan_resources(resources, selection, target or ScanTarget("cluster"), omit_raw_resources=omit_raw_resources)
