"""rapidyaml's fast path for ``fastyaml``: its C++ parse, then a Python walk of its tree.

rapidyaml (``ryml``) parses a text into a flat C++ tree about ten times faster than PyYAML's
loader and keeps, for every scalar, whether it was quoted; a plain scalar's value then comes from
``fastyaml.plain_value`` (PyYAML's resolver and constructors). rapidyaml lexes YAML 1.2 and is
lenient where YAML 1.1 is not, so besides what every fast path declines this one raises
``NotFast`` for:

- anchors, aliases, tags and merge keys (``<<``): their rules (alias bombs, ``!!binary``) live in
  the full path;
- directives (``%YAML``), a byte-order mark, tabs, CR line ends not followed by LF, NEL/LS/PS
  line breaks, control characters and invalid UTF-8: places where YAML 1.1 and rapidyaml's
  YAML 1.2 lexing differ, or where PyYAML refuses the text;
- ``.nan``/``.inf`` and the ``=`` value key: non-JSON or special values;
- a text whose last line has no line break and that may hold a block scalar, a malformed
  block scalar header (``| -``), and a ``:`` directly before a flow indicator (``{e:, f}``);
- anything rapidyaml cannot parse, nesting deeper than ``MAX_DEPTH``, and texts over
  ``MAX_FAST_BYTES`` (the full path's size limits decide about those).

It is the fast path wherever the C loader (``_cyaml.c``) is not built, and imported only then
(``fastyaml.rapidyaml_load``): a scan that reads with libyaml never loads rapidyaml.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

import ryml  # type: ignore[import-untyped]  # rapidyaml ships no type information
from ryml import _ryml  # type: ignore[import-untyped]

from mcp_kscan.engine.fastyaml import MAX_DEPTH, PLAIN_CACHE_LIMIT, NotFast, fast_bytes, plain_value

__all__ = ["load"]

# rapidyaml node-type bits (ryml.NodeType); the values are part of its ABI.
_KEY, _VAL, _MAP, _SEQ, _DOC = ryml.KEY, ryml.VAL, ryml.MAP, ryml.SEQ, ryml.DOC
_STREAM = ryml.STREAM
_CONTAINER = _MAP | _SEQ
_KEYQUO, _VALQUO = ryml.KEYQUO, ryml.VALQUO  # any style but plain: single, double, literal, folded
_BLOCK_SCALAR = ryml.VAL_LITERAL | ryml.VAL_FOLDED
_FLOW = ryml.FLOW_SL | ryml.FLOW_ML
_PROPERTIES = ryml.KEYREF | ryml.VALREF | ryml.KEYANCH | ryml.VALANCH | ryml.KEYTAG | ryml.VALTAG

# The SWIG functions themselves, called with the tree's ``this`` pointer: the Python wrapper
# methods cost five times as much per call, and a manifest has ~50 nodes per kilobyte.
_type = _ryml.Tree_type
_key = _ryml.Tree_key
_val = _ryml.Tree_val
_num_children = _ryml.Tree_num_children
_reorder = _ryml.Tree_reorder

# Texts the fast path leaves to PyYAML (see the module docstring): C0 controls but LF/CR, a tab,
# DEL, a CR without LF, C1 controls (NEL included), LS/PS, a BOM anywhere, U+FFFE/U+FFFF. Most
# manifests are printable ASCII, so one ``bytes.translate`` that drops LF and printable ASCII
# leaves nothing, and the slower search runs only on the rest.
_PRINTABLE_ASCII = b"\n" + bytes(range(0x20, 0x7F))
_NOT_FAST_BYTES = re.compile(
    rb"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]|\xef\xbb\xbf|\xef\xbf[\xbe\xbf]"
)


# A block scalar's header ("|", ">", then chomping/indentation indicators, then a comment or the
# line end) where a node can start. rapidyaml lets malformed headers ("| -") through.
_BLOCK_HEADER = re.compile(rb"(?:[-:?][ \t]+|^[ \t]*)[|>]([^\s]*)([ \t]*)([^\r\n]*)", re.MULTILINE)
_BLOCK_INDICATORS = re.compile(rb"[1-9]?[-+]?|[-+][1-9]")


def _bad_block_header(data: bytes) -> bool:
    for m in _BLOCK_HEADER.finditer(data):
        indicators, space, rest = m.groups()
        if _BLOCK_INDICATORS.fullmatch(indicators) is None or (rest and not (space and rest.startswith(b"#"))):
            return True
    return False


# In a flow collection, YAML 1.1 wants a blank after a value indicator (PyYAML refuses "{e:, f}",
# accepts "{e: , f}"); rapidyaml reads both as a key with an empty value. Such an empty value
# sends the text to this search (a JSON-like key, '{"e":, f}', is declined too: rare either way).
_COLON_BEFORE_FLOW_INDICATOR = re.compile(rb":[,\[\]{}]")


class _EmptyFlowValue(Exception):
    """A flow mapping holds a key with an empty value: check the text before answering."""

_BLANK_OR_COMMENTS = re.compile(rb"(?:[ ]*(?:#[^\n]*)?(?:\r?\n|$))*")


_NOT_PLAIN_START = frozenset("?:@`%!&*|>'\"#,[]{}\t")
"""Characters that cannot start a YAML 1.1 plain scalar but that rapidyaml lets through."""
_PLAIN_NEVER_AT_ENDS = frozenset(" \t\r\n")


def _resolve_plain(text: str, as_key: bool) -> Any:
    """``plain_value`` for a plain scalar as rapidyaml reads it, which YAML 1.1 may not allow."""
    if text[:1] in _NOT_PLAIN_START:
        raise NotFast(f"plain scalar {text!r} starts with an indicator")  # YAML 1.1 refuses it
    if text and (text[0] in _PLAIN_NEVER_AT_ENDS or text[-1] in _PLAIN_NEVER_AT_ENDS):
        # rapidyaml keeps the line break in "{a: x" when a blank line follows it; in YAML 1.1 a
        # plain scalar never starts or ends with a blank or a line break.
        raise NotFast(f"plain scalar {text!r} starts or ends with white space")
    return plain_value(text, as_key)


_plain_values: dict[bytes, Any] = {}
_plain_keys: dict[bytes, Any] = {}
"""Manifests repeat the same plain scalars endlessly (``name``, ``true``, ``8080``); a plain
scalar's value depends only on its bytes, so each is resolved once (immutable values only)."""


def _plain(mv: Any, cache: dict[bytes, Any], as_key: bool) -> Any:
    if mv is None:
        return None  # an empty plain scalar is null
    try:
        return cache[mv]
    except KeyError:
        pass
    value = _resolve_plain(str(mv, "utf-8"), as_key)
    if len(cache) >= PLAIN_CACHE_LIMIT:
        cache.clear()
    cache[bytes(mv)] = value
    return value


def _node(tp: Any, node: int, ty: int, depth: int, checked: bool) -> tuple[Any, int]:
    """The Python value of a map, sequence or scalar node (``ty`` is its type, already read),
    and the id of the node after its subtree.

    The tree is in preorder (``Tree_reorder``), so a node's first child is the next id and each
    following child comes right after its elder sibling's subtree: one ``num_children`` call per
    container replaces a sibling lookup per node.
    """
    if ty & _MAP:
        if depth >= MAX_DEPTH:
            raise NotFast("nested too deeply for the fast path")
        out: dict[Any, Any] = {}
        child = node + 1
        for _ in range(_num_children(tp, node)):
            cty = _type(tp, child)
            if cty & _PROPERTIES:
                raise NotFast("anchor, alias or tag")
            kmv = _key(tp, child)
            if kmv is None:
                raise NotFast("empty key")  # YAML 1.2 allows ": v"; YAML 1.1 only "? \n: v"
            key = str(kmv, "utf-8") if cty & _KEYQUO else _plain(kmv, _plain_keys, True)
            if cty & _CONTAINER:
                out[key], child = _node(tp, child, cty, depth + 1, checked)
                continue
            if cty & _VALQUO:
                out[key] = str(_val(tp, child), "utf-8")
            else:
                vmv = _val(tp, child)
                if vmv is None and ty & _FLOW and not checked:
                    raise _EmptyFlowValue
                out[key] = _plain(vmv, _plain_values, False)
            child += 1
        return out, child
    if ty & _SEQ:
        if depth >= MAX_DEPTH:
            raise NotFast("nested too deeply for the fast path")
        items: list[Any] = []
        append = items.append
        child = node + 1
        for _ in range(_num_children(tp, node)):
            cty = _type(tp, child)
            if cty & _PROPERTIES:
                raise NotFast("anchor, alias or tag")
            if cty & _CONTAINER:
                value, child = _node(tp, child, cty, depth + 1, checked)
                append(value)
                continue
            if cty & _VALQUO:
                append(str(_val(tp, child), "utf-8"))
            else:
                append(_plain(_val(tp, child), _plain_values, False))
            child += 1
        return items, child
    if ty & _VALQUO:
        return str(_val(tp, node), "utf-8"), node + 1
    return _plain(_val(tp, node), _plain_values, False), node + 1


def _document(tp: Any, node: int, checked: bool) -> tuple[Any, int]:
    ty = _type(tp, node)
    if ty & _PROPERTIES:
        raise NotFast("anchor, alias or tag")
    if ty & _KEY or not ty & (_CONTAINER | _VAL):
        raise NotFast(f"unexpected document node {ty:#x}")
    if ty & _BLOCK_SCALAR:
        raise NotFast("block scalar as a whole document")  # rapidyaml is lenient about its indentation
    return _node(tp, node, ty, 0, checked)


_stderr_lock = threading.Lock()


def _parse(data: bytes, tree: Any) -> None:
    """rapidyaml's parse; its error handler prints to file descriptor 2 before raising, so that
    descriptor points at /dev/null meanwhile, but only while this is the process's only thread
    (elsewhere a server's log lines must not be lost, and the two lines are left to stderr)."""
    if threading.active_count() > 1:
        ryml.parse_in_arena(data, tree)
        return
    with _stderr_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to protect
            ryml.parse_in_arena(data, tree)
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            ryml.parse_in_arena(data, tree)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _documents(tp: Any, size: int, data: bytes, checked: bool) -> list[Any]:
    rty = _type(tp, 0)
    if rty == 0:  # no document: right only for blank lines and comments ("..." alone is an error)
        if _BLANK_OR_COMMENTS.fullmatch(data) is None:
            raise NotFast("no document")
        return []
    if rty & _STREAM == _STREAM:
        docs: list[Any] = []
        after = 1
        for _ in range(_num_children(tp, 0)):
            doc, after = _document(tp, after, checked)
            docs.append(doc)
    else:
        doc, after = _document(tp, 0, checked)
        docs = [doc]
    if after != size:  # every node read exactly once, in order: the preorder walk was sound
        raise NotFast(f"walked {after} of {size} nodes")
    return docs


def load(data: bytes | str) -> list[Any]:
    """``fastyaml.fast_load`` by rapidyaml's parse and a Python walk of its tree."""
    data = fast_bytes(data)
    if data.translate(None, _PRINTABLE_ASCII) and _NOT_FAST_BYTES.search(data) is not None:
        raise NotFast("character outside the fast subset")
    if data.startswith(b"%") or b"\n%" in data:
        raise NotFast("directive")
    if b"|" in data or b">" in data:
        if not data.endswith(b"\n"):
            # rapidyaml ends a block scalar at the end of the text with a line break; YAML 1.1
            # (PyYAML, go-yaml) does not. Such a file is rare enough to leave to PyYAML.
            raise NotFast("block scalar may end the text")
        if _bad_block_header(data):
            raise NotFast("malformed block scalar header")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotFast("not UTF-8") from exc
    tree = ryml.Tree()
    try:
        _parse(data, tree)
    except Exception as exc:  # noqa: BLE001 - any rapidyaml refusal means: ask PyYAML
        raise NotFast(f"rapidyaml: {exc.__class__.__name__}") from exc
    size = tree.size()
    if not size:
        raise NotFast("no tree")
    tp = tree.this
    _reorder(tp)
    try:
        try:
            return _documents(tp, size, data, False)
        except _EmptyFlowValue:
            if _COLON_BEFORE_FLOW_INDICATOR.search(data) is not None:
                raise NotFast("value indicator before a flow indicator") from None
            return _documents(tp, size, data, True)
    except RecursionError as exc:
        raise NotFast("nested too deeply for the fast path") from exc
    except UnicodeDecodeError as exc:
        raise NotFast("not UTF-8") from exc
