"""Read Kubernetes manifests the way Kubernetes reads them.

Kubernetes turns YAML into JSON with a YAML 1.1 reader (sigs.k8s.io/yaml over go-yaml v2), so
``privileged: yes`` and ``hostNetwork: on`` are booleans and ``defaultMode: 0755`` is octal 493.
A YAML 1.2 reader would see the strings "yes"/"on" and miss a privileged container. Texts are
read by ``fastyaml`` (libyaml's events built in C, or rapidyaml, with PyYAML's YAML 1.1
resolution: 5-10x faster than PyYAML's loader), which answers only where it equals PyYAML; every
other text goes to PyYAML's loader (libyaml when present). The only change: timestamps stay strings, as they do in Kubernetes' JSON.

Documents stream one at a time (``iter_documents``): a file is parsed, its objects handed on, and
nothing is kept twice. A document that does not parse becomes a per-file error; the rest of the
file and every other file are still scanned.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mcp_kscan.engine import fastyaml, yamlguard
from mcp_kscan.engine.shape import shape_problem
from mcp_kscan.engine.reading import ReadLimits, UnreadableFile, read_manifest
from mcp_kscan.engine.render import NotRendered, Renderers, RenderUnit, render_unit, unit_kind

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

_BaseLoader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader


_RESOLVE_CACHE_LIMIT = 200_000


class KubeYAMLLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """YAML 1.1 safe loader whose timestamps stay strings (Kubernetes' JSON has no date type).

    Tag resolution runs in Python once per scalar even with libyaml, and manifests repeat the
    same plain scalars endlessly (``name``, ``image``, ``true``...). A plain scalar's tag depends
    only on its text, so it is memoised; quoted scalars are always strings. This halves the
    resolver's share of a scan without changing any result.
    """

    _resolve_cache: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return self.DEFAULT_SCALAR_TAG
            cache = KubeYAMLLoader._resolve_cache
            tag = cache.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(cache) >= _RESOLVE_CACHE_LIMIT:
                    cache.clear()
                cache[value] = tag
            return tag
        return super().resolve(kind, value, implicit)


# The timestamp rule lives in fastyaml: the fast path and this full path must read alike.
KubeYAMLLoader.yaml_implicit_resolvers = fastyaml.KubeYAMLLoader.yaml_implicit_resolvers
KubeYAMLLoader.add_constructor(fastyaml.TIMESTAMP_TAG, fastyaml.timestamp_as_text)

# go-yaml v2 also resolves y/Y/n/N to booleans, but the API server decodes into typed structs and
# keeps them as strings where a string is expected (``namespace: n``). PyYAML's YAML 1.1 set
# (yes/no/on/off/true/false) is the safe common ground, so y/n stay strings here.

USING_LIBYAML: bool = _BaseLoader is not yaml.SafeLoader


@dataclass(slots=True)
class LoadError:
    """One file (or document in it) we could not read; reported, never fatal."""

    path: str
    message: str
    document: int | None = None
    """0-based position of the document in its file; None when the whole file is concerned."""

    def __str__(self) -> str:
        where = f" (document {self.document + 1})" if self.document is not None else ""
        return f"{self.path}{where}: {self.message}" if self.path else self.message


@dataclass(slots=True)
class SourceDoc:
    """One Kubernetes object and where it came from."""

    obj: dict[str, Any]
    path: str
    """Absolute path of the file (``""`` for stdin or the API)."""
    relative_path: str
    """Path relative to the scanned root, as Kubescape's ``source.relativePath``."""
    root: str
    """The directory the relative path is relative to (Kubescape's ``source.path``)."""
    index: int = 0
    """0-based position of the YAML document in its file (objects of one ``kind: List`` share it)."""
    origin: dict[str, str] | None = None
    """Set for rendered objects: Kubescape's ``helmChartName`` or ``kustomizeDirectoryName``."""


@dataclass
class LoadResult:
    docs: list[SourceDoc] = field(default_factory=list)
    errors: list[LoadError] = field(default_factory=list)
    files: int = 0


def is_k8s_object(obj: Any) -> bool:
    """Kubescape skips anything that is not a Kubernetes object (Chart.yaml, values.yaml, ...)."""
    return isinstance(obj, dict) and isinstance(obj.get("kind"), str) and isinstance(obj.get("apiVersion"), str)


def expand_lists(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``kind: List`` (and ``*List`` kinds from ``kubectl get -o yaml``) hold objects in ``items``."""
    kind = obj.get("kind", "")
    items = obj.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                if "apiVersion" not in item and kind != "List" and isinstance(obj.get("apiVersion"), str):
                    item = {"apiVersion": obj["apiVersion"], **item}
                if "kind" not in item and kind != "List":
                    item = {**item, "kind": kind[: -len("List")]}
                yield from expand_lists(item)
    else:
        yield obj


def _construct_binary_as_text(loader: Any, node: Any) -> str:
    """go-yaml v2 decodes ``!!binary`` into a string of the raw bytes, so JSON gets text, not bytes."""
    data: bytes = yaml.SafeLoader.construct_yaml_binary(loader, node)
    return data.decode("utf-8", "replace")


def _construct_set_as_mapping(loader: Any, node: Any) -> Iterator[dict[Any, None]]:
    """go-yaml v2 reads ``!!set`` as the mapping it is written as (every value null)."""
    data: dict[Any, None] = {}
    yield data
    data.update(loader.construct_mapping(node))


KubeYAMLLoader.add_constructor("tag:yaml.org,2002:binary", _construct_binary_as_text)
KubeYAMLLoader.add_constructor("tag:yaml.org,2002:set", _construct_set_as_mapping)

_PARSE_ERRORS = (yaml.YAMLError, ValueError, TypeError, RecursionError, MemoryError)
_DOC_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)


def _describe_yaml_error(exc: BaseException, line_offset: int) -> str:
    if isinstance(exc, RecursionError):
        return "cannot parse YAML: nested too deeply"
    if isinstance(exc, MemoryError):
        return "cannot parse YAML: the document needs too much memory"
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1 + line_offset})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [exc.__class__.__name__])[0]
    return f"cannot parse YAML{where}: {problem}"


def _reset_constructor(loader: Any) -> None:
    """After a failed document, drop the constructor's half-built state so the next one starts clean."""
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []
    loader.deep_construct = False


def _load_stream(text: str, path: str, first_index: int, guard: bool,
                 docs: list[tuple[int, Any]], errors: list[LoadError]) -> int:
    """Compose, check and build each document of ``text``; returns how many documents were read.

    Document-level problems (aliasing, non-finite floats, constructor errors) cost only their
    document. A syntax error stops the stream and is raised: the caller then splits the text.
    """
    loader = KubeYAMLLoader(text)
    index = first_index
    try:
        while loader.check_node():
            node = loader.get_node()
            problem = yamlguard.check_node(node) if guard and node is not None else None
            if problem is not None:
                errors.append(LoadError(path, problem, index))
            else:
                try:
                    docs.append((index, loader.construct_document(node) if node is not None else None))
                except _PARSE_ERRORS as exc:
                    _reset_constructor(loader)
                    errors.append(LoadError(path, _describe_yaml_error(exc, 0), index))
            index += 1
    finally:
        loader.dispose()
    return index - first_index


def parse_documents(data: bytes, path: str) -> tuple[list[tuple[int, Any]], list[LoadError]]:
    """THE parse step (one function, so a faster parser can replace it with the same contract).

    Contract: ``data`` is a file's bytes (UTF-8, an optional BOM); ``path`` only names the file in
    errors. Returns ``(documents, errors)``: ``documents`` is ``(index, value)`` for each YAML
    document that was read, in file order, where ``index`` is the document's 0-based position in
    the stream and ``value`` is what Kubernetes' YAML 1.1 reader gives (yes/no/on/off booleans,
    octal ints, timestamps as strings, ``!!binary`` as text, ``!!set`` as a mapping of nulls;
    ``None`` for an empty document), built only from dict/list/str/int/float/bool/None.
    ``errors`` holds one ``LoadError(path, reason, index)`` per document that could not be read:
    a syntax error, excessive aliasing or a recursive alias (``yamlguard``), ``.nan``/``.inf``,
    nesting deeper than the parser allows. One bad document never costs the others when the text
    can be split at ``---`` lines. Never raises for any input.
    """
    try:  # the fast path declines aliases, tags, .nan/.inf, invalid UTF-8 and every text PyYAML would refuse
        return list(enumerate(fastyaml.fast_load(data))), []
    except fastyaml.NotFast:
        pass
    try:  # decoded only here: the fast path reads the bytes (and checks their UTF-8) itself
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [LoadError(path, f"not UTF-8 text (invalid byte at offset {exc.start}); skipped")]
    guard = yamlguard.might_need_guard(text)
    docs: list[tuple[int, Any]] = []
    errors: list[LoadError] = []
    try:
        _load_stream(text, path, 0, guard, docs, errors)
        return docs, errors
    except _PARSE_ERRORS:
        pass
    # A syntax error stops libyaml for the whole stream. Parse document by document instead, so
    # only the broken ones are lost (each reported with its line).
    docs, errors = [], []
    starts = [0] + [m.start() for m in _DOC_SEPARATOR.finditer(text)]
    bounds = sorted(set(starts)) + [len(text)]
    index = 0
    for begin, end in zip(bounds, bounds[1:]):
        chunk = text[begin:end]
        try:
            index += max(1, _load_stream(chunk, path, index, guard, docs, errors))
        except _PARSE_ERRORS as exc:
            errors.append(LoadError(path, _describe_yaml_error(exc, text.count("\n", 0, begin)), index))
            index += 1
    return docs, errors


def objects_in(docs: list[tuple[int, Any]], path: str, errors: list[LoadError]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(document index, object) for every Kubernetes object in parsed documents (``kind: List``
    expanded); objects Kubernetes would refuse become warnings."""
    for index, doc in docs:
        if not isinstance(doc, dict):
            continue  # a bare scalar or list is not an object; Kubescape ignores it too
        for obj in expand_lists(doc):
            if is_k8s_object(obj):
                problem = shape_problem(obj)
                if problem is not None:
                    errors.append(LoadError(path, f"{problem}; skipped", index))
                else:
                    yield index, obj


def parse_text(text: str, display_path: str) -> tuple[list[dict[str, Any]], list[LoadError]]:
    """Every Kubernetes object in a YAML/JSON text (tests and callers holding text)."""
    docs, errors = parse_documents(text.encode("utf-8"), display_path)
    return [obj for _, obj in objects_in(docs, display_path, errors)], errors


def _walk(top: str | os.PathLike[str], others: list[str] | None) -> Iterator[tuple[str, str, RenderUnit | None]]:
    """(absolute path, path relative to ``top``, None) for every manifest under ``top`` and
    (directory, relative directory, unit) for every chart or overlay, in a stable order (sorted,
    hidden folders skipped).

    A Helm chart's whole tree belongs to its chart (templates, values, subcharts). A Kustomize
    directory's files and those of its subfolders belong to it (patches look like objects but
    are not); a subfolder that is a chart or overlay itself is its own unit.

    Paths stay strings, and a relative path is the absolute one without the root's prefix (every
    path os.walk gives starts with it): a 10,000-file tree is planned before any worker starts,
    so ``Path`` objects and ``os.path.relpath`` per file were a fifth of a scan's serial time.
    """
    root = os.path.abspath(top)
    cut = len(root) if root.endswith(os.sep) else len(root) + 1
    inside_overlay: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        while inside_overlay and not (dirpath + os.sep).startswith(inside_overlay[-1] + os.sep):
            inside_overlay.pop()
        rel_dir = dirpath[cut:]  # "" for the root itself
        kind = unit_kind(filenames, dirnames)
        if kind is not None:
            yield dirpath, rel_dir, RenderUnit(kind, dirpath, rel_dir, root)
            if kind == "helm":
                dirnames[:] = []
                continue
            inside_overlay.append(dirpath)
        if inside_overlay:
            continue
        prefix = dirpath if dirpath.endswith(os.sep) else dirpath + os.sep
        rel_prefix = rel_dir + os.sep if rel_dir else ""
        for name in sorted(filenames):
            if name.lower().endswith(MANIFEST_SUFFIXES):
                yield prefix + name, rel_prefix + name, None
            elif others is not None:
                others.append(rel_prefix + name)


@dataclass(slots=True)
class FileToRead:
    """One file to read: where it is and how the report names it."""

    path: str
    """Absolute path ("" for stdin and rendered output)."""
    relative_path: str
    root: str
    data: bytes | None = None
    """Already read (stdin, rendered output)."""
    unit: RenderUnit | None = None
    """A chart or overlay still to render (``expand_units``); nothing to read yet."""
    origin: dict[str, str] | None = None
    """Rendered output: Kubescape's source fields saying what rendered it (``render.Rendered``)."""


def _read_stdin(limits: ReadLimits, errors: list[LoadError]) -> bytes | None:
    """Standard input, or None (and an error) when it is over the size cap."""
    stream = getattr(sys.stdin, "buffer", None)  # a text-only stdin (tests, embedding) has none
    data = stream.read(limits.max_file_bytes + 1) if stream is not None else \
        sys.stdin.read(limits.max_file_bytes + 1).encode("utf-8")
    if len(data) > limits.max_file_bytes:
        errors.append(LoadError("<stdin>", f"over the {limits.max_file_bytes}-byte limit "
                                           "(MCP_KSCAN_MAX_FILE_BYTES); skipped"))
        return None
    return data


def plan_files(paths: Iterable[str | os.PathLike[str]], errors: list[LoadError],
               limits: ReadLimits | None = None, others: list[str] | None = None) -> list[FileToRead]:
    """Every file a scan of ``paths`` reads, in report order; path problems go to ``errors``.

    ``"-"`` reads standard input now. Helm charts and Kustomize directories become one job each
    (``unit``), rendered later by ``expand_units``: their files are templates and patches, not
    the objects they deploy. Files of a scanned folder that are not YAML or JSON are named in
    ``others``. Nothing here opens a file: what each file is (regular, inside the roots) is
    decided when it is read (``read_manifest``).
    """
    limits = limits or ReadLimits()
    jobs: list[FileToRead] = []
    for raw in paths:
        if str(raw) == "-":
            data = _read_stdin(limits, errors)
            if data is not None:
                jobs.append(FileToRead("", "<stdin>", "", data))
            continue
        p = Path(raw)
        if not p.exists():
            errors.append(LoadError(str(raw), "no such file or directory"))
            continue
        if p.is_dir():
            abs_root = os.path.abspath(p)
            for file, rel, unit in _walk(abs_root, others):
                if unit is not None:
                    jobs.append(FileToRead("", unit.relative_path, abs_root, unit=unit))
                    continue
                jobs.append(FileToRead(file, rel, abs_root))
        else:
            absolute = os.path.abspath(p)
            jobs.append(FileToRead(absolute, p.name, os.path.dirname(absolute)))
    return jobs


def expand_units(jobs: list[FileToRead], renderers: Renderers | None, limits: ReadLimits | None,
                 warnings: list[str]) -> list[FileToRead]:
    """``jobs`` with every chart and overlay replaced by its rendered output, in place; a unit
    that cannot be rendered is left out and named in ``warnings`` with the reason."""
    out: list[FileToRead] = []
    for job in jobs:
        if job.unit is None:
            out.append(job)
            continue
        try:
            pieces = render_unit(job.unit, renderers or Renderers(), limits or ReadLimits())
        except NotRendered as exc:
            warnings.append(str(exc))
            continue
        out.extend(FileToRead("", piece.relative_path, job.root, piece.data, origin=piece.origin) for piece in pieces)
    return out


def files_warning(what: str, names: Sequence[str], shown: int = 10) -> str:
    """``"3 files without a Kubernetes object (skipped): a.yaml, b.yaml, c.yaml"``, at most ``shown`` names."""
    listed = ", ".join(names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} file{'s' if len(names) != 1 else ''} {what}: {listed}{more}"


def load_file(job: FileToRead, errors: list[LoadError], limits: ReadLimits | None = None,
              on_read: Callable[[str, bytes], None] | None = None) -> list[SourceDoc]:
    """The objects in one file; read and parse problems go to ``errors`` (never raises for the file).

    ``on_read(path, data)`` sees the bytes of each file read from disk, before they are parsed
    (the server's scans record their digests: ``fixes.hashes``)."""
    data = job.data
    if data is None:
        try:
            data = read_manifest(job.path, limits or ReadLimits())
        except UnreadableFile as exc:
            errors.append(LoadError(job.relative_path, str(exc)))
            return []
        if on_read is not None:
            on_read(job.path, data)
    docs, errs = parse_documents(data, job.relative_path)
    errors.extend(errs)
    return [SourceDoc(obj, job.path, job.relative_path, job.root, index, job.origin)
            for index, obj in objects_in(docs, job.relative_path, errors)]


def iter_documents(
    paths: Iterable[str | os.PathLike[str]], errors: list[LoadError], counter: list[int] | None = None,
    limits: ReadLimits | None = None, renderers: Renderers | None = None,
) -> Iterator[SourceDoc]:
    """Stream every object in ``paths`` (file by file); problems are appended to ``errors``
    (charts and overlays that were not rendered too, named by their folder)."""
    warnings: list[str] = []
    jobs = expand_units(plan_files(paths, errors, limits), renderers, limits, warnings)
    errors.extend(LoadError("", w) for w in warnings)
    for job in jobs:
        if counter is not None:
            counter[0] += 1
        yield from load_file(job, errors, limits)


def load_paths(paths: Iterable[str | os.PathLike[str]], limits: ReadLimits | None = None) -> LoadResult:
    """Everything in ``paths`` at once (tests and small scans; scans stream instead)."""
    result = LoadResult()
    counter = [0]
    result.docs = list(iter_documents(paths, result.errors, counter, limits))
    result.files = counter[0]
    return result
