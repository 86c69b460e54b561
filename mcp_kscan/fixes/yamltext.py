"""Edit one YAML document of a manifest file in place, keeping everything a person wrote.

Only the document being fixed is loaded and written back, with ruamel.yaml's round-trip mode:
comments, key order, quoting and flow style come back as they were. The other documents of the
file are not touched at all (their bytes are copied), so a fix never reflows a file. Indentation
is taken from the document itself: the settings under which an unchanged round trip reproduces
the document exactly are the ones used to write the change.

Documents are numbered as the engine and ``mcp_kscan.locations`` number them: 0-based, split on
``---`` lines, comments before the first ``---`` opening no document.
"""

from __future__ import annotations

import copy
import difflib
import functools
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from mcp_kscan.fixes.patch import PatchError, apply_patch

_DOC_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)
# (mapping indent, sequence indent, sequence dash offset): the styles seen in real manifests.
_STYLES = ((2, 2, 0), (2, 4, 2), (4, 4, 0), (4, 6, 4), (4, 4, 2), (3, 3, 0), (4, 2, 0))


class EditError(ValueError):
    """The document cannot be edited as text (it does not parse, or the patch does not fit)."""


@dataclass(frozen=True, slots=True)
class Span:
    """Where one document is in the file's text: ``head`` is its ``---`` line (kept as is)."""

    start: int
    body: int
    end: int


def document_spans(text: str) -> list[Span]:
    """Each document's span, numbered like the engine's document indexes."""
    starts = sorted({0, *(m.start() for m in _DOC_SEPARATOR.finditer(text))})
    spans: list[Span] = []
    for begin, end in zip(starts, [*starts[1:], len(text)]):
        chunk = text[begin:end]
        head = _DOC_SEPARATOR.match(chunk)
        if begin == 0 and head is None and all(
                not line.strip() or line.lstrip().startswith("#") for line in chunk.splitlines()):
            continue
        body = begin
        if head is not None:
            newline = text.find("\n", begin, end)
            body = end if newline < 0 else newline + 1
        spans.append(Span(begin, body, end))
    return spans


def _yaml(style: tuple[int, int, int]) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16  # never re-wrap a long line
    y.indent(mapping=style[0], sequence=style[1], offset=style[2])
    return y


def _dump(y: YAML, data: Any) -> str:
    buf = io.StringIO()
    y.dump(data, buf)
    return buf.getvalue()


_KEY_LINE = re.compile(r"^( *)[^\s#-][^:#]*:\s*(#.*)?$")
_DASH_LINE = re.compile(r"^( *)-( +)\S")
_ANY_LINE = re.compile(r"^( *)\S")


def _guess_style(body: str) -> tuple[int, int, int] | None:
    """The style the text shows: a block key's first child gives the mapping indent, a key's
    first ``- `` item the dash offset and the item's content column."""
    lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    mapping = offset = sequence = None
    for above, below in zip(lines, lines[1:]):
        key = _KEY_LINE.match(above)
        if key is None:
            continue
        parent = len(key.group(1))
        dash = _DASH_LINE.match(below)
        if dash is not None and offset is None and len(dash.group(1)) >= parent:
            offset = len(dash.group(1)) - parent
            sequence = offset + 1 + len(dash.group(2))
        elif dash is None and mapping is None:
            child = _ANY_LINE.match(below)
            if child is not None and len(child.group(1)) > parent:
                mapping = len(child.group(1)) - parent
        if mapping is not None and offset is not None:
            break
    if mapping is None and offset is None:
        return None
    mapping = mapping or 2
    if offset is None or sequence is None:
        return (mapping, mapping, 0)
    return (mapping, sequence, offset)


@functools.lru_cache(maxsize=256)
def _round_trip(body: str) -> tuple[tuple[int, int, int], str, Any]:
    """The indentation under which the document comes back unchanged (or with the fewest changed
    lines), ruamel's text of the unchanged document under it, and the loaded document (shared by
    every caller: each patches its own copy). Cached: a request fixing ten findings of one
    document works that out, and parses the document, once (ruamel is pure Python and not fast:
    copying the tree costs a fifth of parsing the text again)."""
    best: tuple[int, tuple[int, int, int], str] | None = None
    guessed = _guess_style(body)
    styles = ((guessed,) if guessed else ()) + tuple(s for s in _STYLES if s != guessed)
    # Loaded once: the indentation settings are the emitter's, not the loader's.
    try:
        data = _yaml(styles[0]).load(body)
    except YAMLError:
        raise EditError("the document does not parse as YAML") from None
    # Copied before any dump: the emitter leaves marks in a tree's comment lists, so a tree that
    # was dumped is not the one a fresh load gives.
    pristine = copy.deepcopy(data)
    lines = body.splitlines()
    for style in styles:
        out = _dump(_yaml(style), data)
        if out.rstrip("\n") == body.rstrip("\n"):
            return style, out, pristine
        changed = _changed_lines(lines, out.splitlines())
        if best is None or changed < best[0]:
            best = (changed, style, out)
    assert best is not None
    return best[1], best[2], pristine


def _changed_lines(before: list[str], after: list[str]) -> int:
    """How many lines ``difflib.ndiff`` marks ``-`` or ``+``, without its character-level pass.

    ndiff pairs the lines of each replaced block by similarity (most of its time), but every
    line of a block counts once either way, unless an identical line sits inside a replaced
    block: that happens only when the matcher may junk popular lines (``autojunk``, from 200
    lines of ``after`` on), and then ndiff itself counts.
    """
    if len(after) >= 200:
        return sum(1 for line in difflib.ndiff(before, after) if line[:1] in "+-")
    matcher = difflib.SequenceMatcher(None, before, after)
    return sum(i2 - i1 + j2 - j1 for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


def _to_rt(value: Any) -> Any:
    """Added values as round-trip nodes, block style like the rest of a manifest."""
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _to_rt(v)
        return out
    if isinstance(value, list):
        seq = CommentedSeq()
        seq.extend(_to_rt(v) for v in value)
        return seq
    return value


def _patch_json_body(body: str, patch: Sequence[dict[str, Any]]) -> str:
    """A JSON manifest stays JSON, with its indentation (key order is kept by ``json``)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise EditError("the document does not parse as JSON") from None
    apply_patch(data, patch)
    indent_match = re.search(r"\n([ \t]+)\S", body)
    indent: int | str | None = None
    if indent_match:
        ws = indent_match.group(1)
        indent = len(ws) if set(ws) == {" "} else ws
    trailing = body[len(body.rstrip()):]
    return json.dumps(data, indent=indent, ensure_ascii=False) + (trailing or "\n")


def patch_document(text: str, document: int, patch: Sequence[dict[str, Any]]) -> str:
    """The file's text with ``patch`` applied to document ``document`` and nothing else changed."""
    spans = document_spans(text)
    if not 0 <= document < len(spans):
        raise EditError(f"the file has no document {document}")
    span = spans[document]
    body = text[span.body:span.end]
    unterminated = bool(body) and not body.endswith("\n")  # the file's last line has no newline
    if unterminated:
        body += "\n"
    if body.lstrip().startswith(("{", "[")):
        new_body = _patch_json_body(body, patch)
    else:
        style, baseline, loaded = _round_trip(body)
        y = _yaml(style)
        data = copy.deepcopy(loaded)  # the cached tree stays as loaded
        try:
            apply_patch(data, patch, convert=_to_rt)
        except PatchError as exc:
            raise EditError(str(exc)) from None
        new_body = merge_changes(body, baseline, _dump(y, data))
        if not new_body.endswith("\n"):
            new_body += "\n"
    if unterminated:
        new_body = new_body[:-1]
    return text[:span.body] + new_body + text[span.end:]


def merge_changes(original: str, baseline: str, patched: str) -> str:
    """The patch's changes (``baseline`` → ``patched``, both written by ruamel) made to ``original``.

    ruamel reproduces nearly every document exactly, but not all (a one-key map in a flow list,
    ``[{port: 80}]``, comes back as ``[port: 80]``). Its own differences from the original are
    kept out: every line the patch did not touch is taken from the original text, and only where
    such a difference meets a patched line does ruamel's version of that line stand.
    """
    o_lines, b_lines, n_lines = (t.splitlines(True) for t in (original, baseline, patched))
    if b_lines == o_lines:
        return patched
    units: list[tuple[int, int, list[str]]] = []  # (baseline start, end, original lines)
    for tag, b1, b2, o1, o2 in difflib.SequenceMatcher(None, b_lines, o_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            units += [(b1 + k, b1 + k + 1, o_lines[o1 + k:o1 + k + 1]) for k in range(b2 - b1)]
        else:
            units.append((b1, b2, o_lines[o1:o2]))
    out: list[str] = []
    used: set[int] = set()
    for tag, b1, b2, n1, n2 in difflib.SequenceMatcher(None, b_lines, n_lines, autojunk=False).get_opcodes():
        if tag != "equal":
            for i, (u1, u2, lines) in enumerate(units):
                if u1 == u2 == b1 and i not in used:
                    used.add(i)
                    out += lines
            out += n_lines[n1:n2]
            continue
        for i, (u1, u2, lines) in enumerate(units):
            if i in used:
                continue
            if u1 == u2:
                if b1 <= u1 < b2 or u1 == b2 == len(b_lines):
                    used.add(i)
                    out += lines
            elif b1 <= u1 and u2 <= b2:
                used.add(i)
                out += lines
            elif u1 < b2 and u2 > b1:
                out += b_lines[max(u1, b1):min(u2, b2)]
    return "".join(out)


def unified_diff(path: str, before: str, after: str) -> str:
    """``---``/``+++``/``@@`` as ``diff -u`` and ``git apply`` read them."""
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        fromfile=f"a/{path.lstrip('/')}", tofile=f"b/{path.lstrip('/')}", n=3))
