"""Where a finding is: its file, the YAML document in that file, and the line of the failing field.

Scanners name a resource's file but not the document or the line, and an agent that must edit a
manifest needs both. Lines are found lazily, only for the findings of the page being read: the
file is composed into YAML nodes once (libyaml when present), each node keeps its start mark, and
the failed path (``spec.template.spec.containers[0].securityContext.privileged``) is walked
through the nodes. A field that is absent (it must be added) gets the line of the deepest parent
that exists. Composed files are cached per (path, size, mtime), so a page of 200 findings over 30
files reads 30 files once.

Document indexes are 0-based positions in the file's YAML stream (as ``yq``'s
``document_index``); lines are 1-based.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import yaml

from mcp_kscan.engine.loader import USING_LIBYAML

_Loader: type = yaml.CSafeLoader if USING_LIBYAML else yaml.SafeLoader

MAX_FILE_BYTES = 32 * 1024 * 1024
"""Larger files are not composed: a location then has the file but no document or line."""
CACHE_FILES = 128

_DOC_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)
_PATH_TOKEN = re.compile(r"""\[(\d+)\]|\[["']([^"']*)["']\]|\[([^\]]*)\]|([^.\[\]]+)""")


@dataclass(frozen=True, slots=True)
class Location:
    """Where to edit. ``file`` is the path as the scan saw it, never shortened."""

    file: str | None
    document: int | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class _Object:
    """One Kubernetes object in a file: its identity and its node (an item of a List, or a document)."""

    document: int
    kind: str
    namespace: str
    name: str
    node: yaml.MappingNode


def finding_id(control_id: str, kind: str | None, namespace: str | None, name: str | None,
               file: str | None, document: int | None) -> str:
    """A stable id for one (control, resource) verdict: the same for every re-scan of unchanged input.

    Built from what identifies the finding for a person (control, kind/namespace/name, file and
    document), not from report positions or scan ids, so it survives re-scans and re-orderings.
    """
    key = json.dumps([control_id, kind or "", namespace or "", name or "", file or "", document],
                     separators=(",", ":"))
    return "f-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def parse_field_path(path: str) -> list[str | int]:
    """``a.b[0]["x.y"]`` → ``["a", "b", 0, "x.y"]``; ``labels[app.kubernetes.io/name]`` (Kubescape's
    fix paths) keeps its bracketed key whole."""
    tokens: list[str | int] = []
    for m in _PATH_TOKEN.finditer(path):
        index, quoted, bracketed, plain = m.groups()
        if index is not None:
            tokens.append(int(index))
        elif quoted is not None:
            tokens.append(quoted)
        elif bracketed is not None:
            tokens.append(bracketed)
        elif plain:
            tokens.append(plain)
    return tokens


def _scalar(node: yaml.Node | None) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""


def _get(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node, value node) of ``key`` in a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _objects_in(document: int, node: yaml.Node) -> Iterator[_Object]:
    if not isinstance(node, yaml.MappingNode):
        return
    kind = _scalar((_get(node, "kind") or (None, None))[1])
    items = _get(node, "items")
    if kind.endswith("List") and items is not None and isinstance(items[1], yaml.SequenceNode):
        for item in items[1].value:
            yield from _objects_in(document, item)
        return
    meta = (_get(node, "metadata") or (None, None))[1]
    name = _scalar((_get(meta, "name") or (None, None))[1]) if meta is not None else ""
    namespace = _scalar((_get(meta, "namespace") or (None, None))[1]) if meta is not None else ""
    yield _Object(document, kind, namespace, name, node)


def _compose(text: str) -> list[_Object]:
    """Every object in a YAML stream; a document that does not parse is skipped, the others kept."""
    try:
        return [o for i, doc in enumerate(yaml.compose_all(text, Loader=_Loader)) if doc is not None
                for o in _objects_in(i, doc)]
    except (yaml.YAMLError, ValueError, RecursionError):
        pass
    objects: list[_Object] = []
    starts = sorted({0, *(m.start() for m in _DOC_SEPARATOR.finditer(text))})
    document = -1
    for begin, end in zip(starts, [*starts[1:], len(text)]):
        chunk = text[begin:end]
        if begin == 0 and not _DOC_SEPARATOR.match(chunk) and _only_comments(chunk):
            continue  # comments before the first "---" open no document
        document += 1
        try:
            node = yaml.compose(chunk, Loader=_Loader)
        except (yaml.YAMLError, ValueError, RecursionError):
            continue
        if node is not None:
            _shift(node, text.count("\n", 0, begin))
            objects.extend(_objects_in(document, node))
    return objects


def _only_comments(chunk: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in chunk.splitlines())


def _shift(node: yaml.Node, lines: int) -> None:
    """Move a chunk's marks to the file's line numbers."""
    if not lines:
        return
    stack = [node]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        n.start_mark = yaml.Mark(n.start_mark.name, n.start_mark.index, n.start_mark.line + lines,
                                 n.start_mark.column, None, 0)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack += [k, v]
        elif isinstance(n, yaml.SequenceNode):
            stack += list(n.value)


class ManifestCache:
    """Composed manifest files, newest used kept; thread-safe (pages are read in worker threads)."""

    def __init__(self, max_files: int = CACHE_FILES) -> None:
        self.max_files = max_files
        self._files: OrderedDict[tuple[str, int, int], list[_Object] | None] = OrderedDict()
        self._lock = threading.Lock()

    def objects(self, path: str) -> list[_Object] | None:
        """The file's objects, or None when it cannot be read as YAML (missing, too big, binary)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._files:
                self._files.move_to_end(key)
                return self._files[key]
        objects: list[_Object] | None = None
        if st.st_size <= MAX_FILE_BYTES:
            try:
                with open(path, encoding="utf-8") as fh:
                    objects = _compose(fh.read())
            except (OSError, UnicodeDecodeError):
                objects = None
        with self._lock:
            self._files[key] = objects
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        return objects


_CACHE = ManifestCache()


def resolve_file(file: str, roots: Iterable[str]) -> str | None:
    """The readable file a report's path names: as is when absolute, else under a scanned root."""
    if os.path.isabs(file):
        return file if os.path.isfile(file) else None
    for root in roots:
        if os.path.isdir(root):
            candidate = os.path.join(root, file)
            if os.path.isfile(candidate):
                return candidate
        elif os.path.isfile(root) and (root == file or root.endswith(os.sep + file)):
            return root
    return None


def _find_object(objects: Sequence[_Object], kind: str | None, namespace: str | None, name: str | None) -> _Object | None:
    candidates = [o for o in objects if o.kind == (kind or "") and o.name == (name or "")]
    if not candidates:
        return None
    for o in candidates:  # an exact namespace match first; a manifest without one matches any
        if o.namespace == (namespace or ""):
            return o
    return candidates[0]


def line_of(node: yaml.Node, path: str) -> int:
    """1-based line of ``path`` under ``node``; of its deepest existing parent when it is absent."""
    line = node.start_mark.line + 1
    tokens = parse_field_path(path)
    i = 0
    current = node
    while i < len(tokens):
        token = tokens[i]
        if isinstance(token, int):
            if not isinstance(current, yaml.SequenceNode) or token >= len(current.value):
                break
            current = current.value[token]
            line = current.start_mark.line + 1
            i += 1
            continue
        found = _get(current, token)
        # Keys with dots (labels like app.kubernetes.io/name) arrive split: join tokens until one matches.
        j = i
        key = token
        while found is None and j + 1 < len(tokens) and isinstance(tokens[j + 1], str):
            j += 1
            key = f"{key}.{tokens[j]}"
            found = _get(current, key)
        if found is None:
            break
        key_node, current = found
        line = key_node.start_mark.line + 1
        i = j + 1
    return line


def locate(file: str | None, roots: Iterable[str], kind: str | None, namespace: str | None, name: str | None,
           field_paths: Sequence[str], cache: ManifestCache = _CACHE) -> Location:
    """The location of one finding. ``file`` is kept as given; lines come from the file on disk."""
    if not file:
        return Location(None)
    path = resolve_file(file, roots)
    objects = cache.objects(path) if path else None
    if not objects:
        return Location(file)
    obj = _find_object(objects, kind, namespace, name)
    if obj is None:
        return Location(file)
    lines = [line_of(obj.node, p) for p in field_paths if p]
    line = lines[0] if lines else obj.node.start_mark.line + 1
    return Location(file, obj.document, line)
