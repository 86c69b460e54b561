"""Read Kubernetes manifests the way Kubernetes reads them.

Kubernetes turns YAML into JSON with a YAML 1.1 reader (sigs.k8s.io/yaml over go-yaml v2), so
``privileged: yes`` and ``hostNetwork: on`` are booleans and ``defaultMode: 0755`` is octal 493.
A YAML 1.2 reader would see the strings "yes"/"on" and miss a privileged container. Texts are
read by ``fastyaml`` (rapidyaml with PyYAML's YAML 1.1 resolution, ~5x faster than libyaml),
which answers only where it equals PyYAML; every other text goes to PyYAML's loader (libyaml
when present). The only change: timestamps stay strings, as they do in Kubernetes' JSON.

Documents stream one at a time (``iter_documents``): a file is parsed, its objects handed on, and
nothing is kept twice. A document that does not parse becomes a per-file error; the rest of the
file and every other file are still scanned.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mcp_kscan.engine import fastyaml

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

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


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
    """Position of the document in its file."""


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


def parse_text(text: str, display_path: str) -> tuple[list[dict[str, Any]], list[LoadError]]:
    """Every Kubernetes object in a YAML/JSON text; documents after a broken one are lost only
    when libyaml cannot resynchronise (it stops at the first error, as kubectl does)."""
    objects: list[dict[str, Any]] = []
    errors: list[LoadError] = []
    try:
        for doc in _documents(text):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                continue  # a bare scalar or list is not an object; Kubescape ignores it too
            for obj in expand_lists(doc):
                if is_k8s_object(obj):
                    objects.append(obj)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        # One broken document stops libyaml for the whole stream. Parse document by document
        # instead, so only the broken ones are lost (and each is reported with its line).
        return _parse_documents_one_by_one(text, display_path)
    return objects, errors


def _documents(text: str) -> Iterable[Any]:
    """The fast path (``fastyaml``) when it answers, else PyYAML. The fast path declines every
    text PyYAML would refuse, so parse errors and their line numbers always come from PyYAML."""
    try:
        return fastyaml.fast_load(text)
    except fastyaml.NotFast:
        return yaml.load_all(text, Loader=KubeYAMLLoader)


_DOC_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)


def _describe_yaml_error(exc: Exception, line_offset: int) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1 + line_offset})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [exc.__class__.__name__])[0]
    return f"cannot parse YAML{where}: {problem}"


def _parse_documents_one_by_one(text: str, display_path: str) -> tuple[list[dict[str, Any]], list[LoadError]]:
    objects: list[dict[str, Any]] = []
    errors: list[LoadError] = []
    starts = [0] + [m.start() for m in _DOC_SEPARATOR.finditer(text)]
    bounds = sorted(set(starts)) + [len(text)]
    for begin, end in zip(bounds, bounds[1:]):
        chunk = text[begin:end]
        line_offset = text.count("\n", 0, begin)
        try:
            doc = yaml.load(chunk, Loader=KubeYAMLLoader)
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            errors.append(LoadError(display_path, _describe_yaml_error(exc, line_offset)))
            continue
        if isinstance(doc, dict):
            objects.extend(obj for obj in expand_lists(doc) if is_k8s_object(obj))
    return objects, errors


def _helm_chart_root(path: Path, stop: Path) -> Path | None:
    """The chart directory when ``path`` is a template of a Helm chart under ``stop``."""
    for parent in path.parents:
        if parent.name == "templates" and (parent.parent / "Chart.yaml").is_file():
            return parent.parent
        if parent == stop or parent == parent.parent:
            return None
    return None


def iter_manifest_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for every manifest under ``paths``: files as given, directories recursively
    (sorted, so reports are stable), hidden directories skipped."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            root = p
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.lower().endswith(MANIFEST_SUFFIXES):
                        yield Path(dirpath) / name, root
        else:
            yield p, p.parent


@dataclass(slots=True)
class FileJob:
    """One file to read: where it is and how the report names it."""

    path: str
    """Absolute path ("" for stdin)."""
    relative_path: str
    root: str
    text: str | None = None
    """Already read (stdin)."""


HELM_TEMPLATE_MESSAGE = ("Helm chart template not rendered by the built-in engine; "
                         "scan the output of `helm template` instead")


def plan_files(paths: Iterable[str | os.PathLike[str]], errors: list[LoadError]) -> list[FileJob]:
    """Every file a scan of ``paths`` reads, in report order; path problems go to ``errors``.

    ``"-"`` reads standard input now. Helm chart templates are reported, not parsed: they are Go
    templates, not YAML, until ``helm template`` renders them.
    """
    jobs: list[FileJob] = []
    for raw in paths:
        if str(raw) == "-":
            jobs.append(FileJob("", "<stdin>", "", sys.stdin.read()))
            continue
        p = Path(raw)
        if not p.exists():
            errors.append(LoadError(str(raw), "no such file or directory"))
            continue
        if p.is_dir():
            abs_root = os.path.abspath(p)
            for file, root in iter_manifest_files([p]):
                rel = os.path.relpath(file, root)
                if _helm_chart_root(file, root) is not None:
                    errors.append(LoadError(rel, HELM_TEMPLATE_MESSAGE))
                    continue
                jobs.append(FileJob(os.path.join(abs_root, rel), rel, abs_root))
        else:
            absolute = os.path.abspath(p)
            jobs.append(FileJob(absolute, p.name, os.path.dirname(absolute)))
    return jobs


def load_file(job: FileJob, errors: list[LoadError]) -> list[SourceDoc]:
    """The objects in one file; read and parse problems go to ``errors``."""
    text = job.text
    if text is None:
        try:
            with open(job.path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(LoadError(job.relative_path, f"cannot read file: {exc.__class__.__name__}"))
            return []
    objs, errs = parse_text(text, job.relative_path)
    errors.extend(errs)
    return [SourceDoc(obj, job.path, job.relative_path, job.root, i) for i, obj in enumerate(objs)]


def iter_documents(
    paths: Iterable[str | os.PathLike[str]], errors: list[LoadError], counter: list[int] | None = None
) -> Iterator[SourceDoc]:
    """Stream every object in ``paths`` (file by file); problems are appended to ``errors``."""
    for job in plan_files(paths, errors):
        if counter is not None:
            counter[0] += 1
        yield from load_file(job, errors)


def load_paths(paths: Iterable[str | os.PathLike[str]]) -> LoadResult:
    """Everything in ``paths`` at once (tests and small scans; scans stream instead)."""
    result = LoadResult()
    counter = [0]
    result.docs = list(iter_documents(paths, result.errors, counter))
    result.files = counter[0]
    return result
