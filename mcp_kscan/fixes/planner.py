"""Turn failed findings into fixes: build the patch, edit the text, re-scan, and combine per file.

Synchronous and CPU-bound (YAML round trips, engine evaluations): the service runs it in a
worker thread. One ``Planner`` serves one request, so each file is read once and the scan's
objects (the context of cross-object checks) are loaded once.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_kscan.engine.loader import LoadError, objects_in, parse_documents
from mcp_kscan.engine.model import Resource
from mcp_kscan.engine.reading import ReadLimits, UnreadableFile, read_manifest
from mcp_kscan.fixes.hashes import digest
from mcp_kscan.fixes.models import FixResult, NoFix, ProposedFix, UserValue
from mcp_kscan.fixes.patch import Edit, PatchError, Token, build_patch, prefixed
from mcp_kscan.fixes.remedies import Remedy, remedy_for
from mcp_kscan.fixes.verify import Identity, Verdict, Verifier, find_object
from mcp_kscan.fixes.yamltext import EditError, patch_document, unified_diff
from mcp_kscan.locations import parse_field_path, resolve_file

PATCH_MEMO_CHARS = 32 << 20
"""How many characters of patched text one ``Planner`` keeps to reuse (``Planner.patched``)."""

NO_REMEDY = ("no remedy: Kubescape gives no fix path for this control here "
             "(it needs a new object, such as a NetworkPolicy, or a change only a person can design)")


def edit_attempts(remedy: Remedy) -> list[tuple[list[Edit], list[UserValue]]]:
    """The edits to try, in order: the remedy's own edits alone, then with the user's choices at
    their suggested values (those then come back as ``needs_user_value``). Files and live objects
    try the same list."""
    attempts: list[tuple[list[Edit], list[UserValue]]] = []
    if remedy.edits:
        attempts.append((list(remedy.edits), []))
    if remedy.choices:
        chosen = [c.edit for c in remedy.choices if c.edit is not None]
        attempts.append(([*remedy.edits, *chosen], [UserValue(**c.as_dict()) for c in remedy.choices]))
    return attempts


@dataclass
class Plan:
    """A proposed fix and what applying it needs."""

    fix: ProposedFix
    edits: list[Edit]
    path: str | None
    who: Identity

    @property
    def applicable(self) -> bool:
        """Written by apply_fix: verified, with no value left for the user to choose."""
        return self.fix.verified and not self.fix.needs_user_value and self.path is not None and not self.fix.helm_values


@dataclass
class FileText:
    text: str
    sha256: str


def document_objects(text: str, document: int, display: str) -> tuple[list[dict[str, Any]], bool]:
    """The objects of one document, and whether the document is a List holding them."""
    docs, errors = parse_documents(text.encode("utf-8"), display)
    found: list[LoadError] = list(errors)
    raw = next((obj for index, obj in docs if index == document), None)
    is_list = isinstance(raw, dict) and str(raw.get("kind") or "").endswith("List") and isinstance(raw.get("items"), list)
    return [obj for index, obj in objects_in(docs, display, found) if index == document], is_list


def helm_chart_of(path: str) -> Path | None:
    """The chart directory when ``path`` is one of its templates (``templates/`` beside ``Chart.yaml``)."""
    for parent in Path(path).parents:
        if parent.name == "templates" and (parent.parent / "Chart.yaml").is_file():
            return parent.parent
    return None


_VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][\w-]*)+)")


def helm_values_hints(template: str, paths: Sequence[str]) -> list[dict[str, str]]:
    """values.yaml keys that feed the failing fields: the ``.Values.x`` a template line uses where
    the field (or its nearest parent) is written, e.g. ``securityContext: {{ toYaml .Values.securityContext }}``."""
    lines = template.splitlines()
    hints: dict[str, dict[str, str]] = {}
    for path in paths:
        keys = [t for t in parse_field_path(path) if isinstance(t, str)]
        for key in reversed(keys):
            leaf = key.rsplit("/", 1)[-1]
            found = None
            for i, line in enumerate(lines):
                if re.search(rf"(^|\s|-\s){re.escape(key)}\s*:", line) or (leaf == key and ".Values" in line and re.search(rf"\b{re.escape(key)}\b", line)):
                    for candidate in (line, *(lines[i + 1:i + 3])):
                        m = _VALUES_REF.search(candidate)
                        if m:
                            found = m.group(1).lstrip(".")
                            break
                if found:
                    break
            if found:
                hints.setdefault(found, {"values_key": found, "field": path})
                break
    return list(hints.values())


@dataclass
class Planner:
    """Plans fixes for the findings of one scan (file findings; cluster ones go to ``live``)."""

    roots: Sequence[str]
    """The scan's own paths: relative report paths resolve against them."""
    limits: ReadLimits
    context_objects: Sequence[Resource] = ()
    live: Callable[[Mapping[str, Any], Verifier], Plan | NoFix] | None = None
    _texts: dict[str, FileText | str] = field(default_factory=dict)
    _verifier: Verifier | None = None
    _patched: dict[tuple[str, int, str], str] = field(default_factory=dict)
    _patched_chars: int = 0

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier(self.context_objects)
        return self._verifier

    def read(self, path: str) -> FileText | str:
        """The file's text and digest, or why it cannot be read (cached for this request)."""
        if path not in self._texts:
            try:
                data = read_manifest(path, self.limits)
                self._texts[path] = FileText(data.decode("utf-8"), digest(data))
            except UnreadableFile as exc:
                self._texts[path] = f"cannot read the file: {exc}"
            except UnicodeDecodeError:
                self._texts[path] = "cannot read the file: not UTF-8 text"
        return self._texts[path]

    def patched(self, text: str, document: int, patch: list[dict[str, Any]]) -> str:
        """``patch_document``, remembered for this request: findings of different controls often
        patch a document alike (the same securityContext fields), and applying a file's fixes
        begins with a patch already made while planning them. A YAML round trip is most of a
        fix's cost. The texts kept are capped (``PATCH_MEMO_CHARS``): a huge file with many
        findings is patched anew each time rather than held in memory once per patch."""
        key = (text, document, repr(patch))
        found = self._patched.get(key)
        if found is None:
            found = patch_document(text, document, patch)
            if self._patched_chars + len(found) <= PATCH_MEMO_CHARS:
                self._patched[key] = found
                self._patched_chars += len(found)
        return found

    def plan(self, item: Mapping[str, Any]) -> Plan | NoFix:
        """The fix of one finding (as ``views.finding_item`` shows it), or why there is none."""
        fid, control = str(item.get("finding_id")), str(item.get("control_id") or "")
        loc = item.get("location") or {}
        res = item.get("resource") or {}
        who = Identity(str(res.get("kind") or ""), str(res.get("namespace") or ""), str(res.get("name") or ""))
        if not loc.get("file"):
            if self.live is None:
                return NoFix(finding_id=fid, control_id=control, reason="a cluster finding: no cluster to read the object from")
            return self.live(item, self.verifier)
        path = resolve_file(str(loc["file"]), self.roots)
        if path is None:
            return NoFix(finding_id=fid, control_id=control, reason="the file is gone since the scan")
        path = os.path.abspath(path)
        chart = helm_chart_of(path)
        rendered = loc.get("rendered_by")
        if rendered and chart is None:
            return NoFix(finding_id=fid, control_id=control,
                         reason=f"rendered by {rendered}: the object is in no file to edit; change its base, or add a "
                                "patch to the overlay")
        read = self.read(path)
        if isinstance(read, str):
            return NoFix(finding_id=fid, control_id=control, reason=read)
        base = ProposedFix(finding_id=fid, control_id=control, severity=item.get("severity"), resource=dict(res),
                           file=str(loc["file"]), document_index=loc.get("document"), line=loc.get("line"),
                           json_patch=[], verified=False, verification="")
        if chart is not None:
            paths = [*(item.get("failed_paths") or []), *(fp.get("path", "") for fp in item.get("fix_paths") or [])]
            hints = helm_values_hints(read.text, [p for p in paths if p])
            if not hints:
                return NoFix(finding_id=fid, control_id=control,
                             reason="a Helm chart template (never edited) and no values.yaml key feeds the failing field")
            base.helm_values = hints
            base.verification = "Helm templates are not edited: set these values.yaml keys, render and scan again"
            return Plan(base, [], None, who)
        document = loc.get("document")
        if document is None:
            return NoFix(finding_id=fid, control_id=control, reason="the resource is no longer in the file")
        objects, is_list = document_objects(read.text, int(document), str(loc["file"]))
        found = find_object(objects, who)
        if found is None:
            return NoFix(finding_id=fid, control_id=control, reason="the resource is no longer in its document")
        position, obj = found
        prefix: list[Token] = ["items", position] if is_list else []
        remedy = remedy_for(item, obj)
        if remedy.empty:
            return NoFix(finding_id=fid, control_id=control, reason=NO_REMEDY)

        attempts = edit_attempts(remedy)
        last: tuple[ProposedFix, list[Edit]] | None = None
        for edits, needs in attempts:
            fix = self._attempt(base, read.text, int(document), prefix, obj, who, edits)
            fix.needs_user_value = needs
            if needs and not fix.json_patch:
                fix.verification = "no value to suggest: nothing is patched until you choose one"
            last = (fix, edits)
            if fix.verified:
                break
        assert last is not None
        return Plan(last[0], last[1], path, who)

    def _attempt(self, base: ProposedFix, text: str, document: int, prefix: list[Token], obj: dict[str, Any],
                 who: Identity, edits: list[Edit]) -> ProposedFix:
        fix = base.model_copy(deep=True)
        patch = prefixed(build_patch(obj, edits), prefix)
        fix.json_patch = patch
        if not patch:
            fix.verification = "nothing to change: the object already holds these values (scan again)"
            return fix
        try:
            new_text = self.patched(text, document, patch)
        except (EditError, PatchError) as exc:
            fix.verification = f"the patch cannot be written into the file: {exc}"
            return fix
        fix.diff = unified_diff(base.file or "", text, new_text)
        objects, _ = document_objects(new_text, document, base.file or "")
        found = find_object(objects, who)
        if found is None:
            fix.verification = "the patched document no longer holds the resource"
            return fix
        verdict: Verdict = self.verifier.judge(base.control_id, obj, found[1])
        fix.verified, fix.verification = verdict.verified, verdict.reason
        return fix

    # ------------------------------------------------------------------ applying

    def combine(self, path: str, plans: Sequence[Plan], expected_sha256: str | None
                ) -> tuple[str | None, list[FixResult]]:
        """All fixes to one file as one new text, each checked against the others.

        Fixes go in one at a time, re-planned against the text as the previous ones left it (two
        fixes may add to the same securityContext). One is kept when its control passes after it
        and no control fails that passed in the scanned file, nor one an earlier kept fix fixed.
        Returns the new text (None when nothing changes) and each finding's outcome.
        """
        results: list[FixResult] = []
        read = self.read(path)

        def refuse_all(reason: str) -> tuple[None, list[FixResult]]:
            return None, [FixResult(finding_id=p.fix.finding_id, status="refused", reason=reason, file=p.fix.file)
                          for p in plans]

        if isinstance(read, str):
            return refuse_all(read)
        if expected_sha256 is None:
            return refuse_all("the scan recorded no content hash for this file (it changed while being scanned, "
                              "or the scan is older than fixes): scan again")
        if read.sha256 != expected_sha256:
            return refuse_all("the file changed since the scan; scan it again and propose the fix anew")
        current = read.text
        originals: dict[tuple[int, Identity], dict[str, bool]] = {}
        kept: dict[tuple[int, Identity], set[str]] = defaultdict(set)
        for plan in plans:
            fix = plan.fix
            if not plan.applicable:
                why = ("needs a value only you can choose: " + ", ".join(u.field for u in fix.needs_user_value)
                       if fix.needs_user_value else f"not verified: {fix.verification}")
                results.append(FixResult(finding_id=fix.finding_id, status="refused", reason=why, file=fix.file))
                continue
            document = int(fix.document_index or 0)
            key = (document, plan.who)
            outcome = self._fold(current, document, plan, originals, kept[key], key)
            if isinstance(outcome, str):
                results.append(FixResult(finding_id=fix.finding_id, status="refused", reason=outcome, file=fix.file))
                continue
            new_text, note = outcome
            current = new_text
            kept[key].add(fix.control_id)
            results.append(FixResult(finding_id=fix.finding_id, status="applied", reason=note, file=fix.file))
        return (current if current != read.text else None), results

    def _fold(self, text: str, document: int, plan: Plan, originals: dict[tuple[int, Identity], dict[str, bool]],
              kept: set[str], key: tuple[int, Identity]) -> tuple[str, str | None] | str:
        display = plan.fix.file or ""
        objects, is_list = document_objects(text, document, display)
        found = find_object(objects, plan.who)
        if found is None:
            return "the resource is no longer in its document"
        position, obj = found
        if key not in originals:
            originals[key] = self.verifier.failed_controls(obj)
        before = self.verifier.failed_controls(obj)
        if not before.get(plan.fix.control_id, False):
            return text, "already fixed by the other fixes written with it"
        patch = prefixed(build_patch(obj, plan.edits), ["items", position] if is_list else [])
        try:
            new_text = self.patched(text, document, patch)
        except (EditError, PatchError) as exc:
            return f"the patch no longer fits the file: {exc}"
        after_objects, _ = document_objects(new_text, document, display)
        after = find_object(after_objects, plan.who)
        if after is None:
            return "the patched document no longer holds the resource"
        failed = self.verifier.failed_controls(after[1])
        if failed.get(plan.fix.control_id, False):
            return "conflicts with the other fixes to this resource written with it"
        broken = sorted(c for c, f in failed.items() if f and (not originals[key].get(c, False) or c in kept))
        if broken:
            return f"together with the other fixes to this resource it makes {', '.join(broken)} fail"
        return new_text, None
