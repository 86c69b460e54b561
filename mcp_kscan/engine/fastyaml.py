"""A fast reader for the plain YAML that manifests are made of, equal to PyYAML where it answers.

PyYAML's C loader spends most of its time in Python: one constructor call, one resolver call and
one node object per scalar. A faster reader needs only a parse that keeps, for every scalar,
whether it was plain: a *plain* scalar is resolved by PyYAML's own resolver table (``yes``/``on``
are booleans, ``0644`` is octal 420, ``~`` is null, ``1_000`` is 1000) and built by PyYAML's own
constructors (``plain_value``, the one place of these rules); a quoted or block scalar is a
string. Timestamps stay strings, as in Kubernetes' JSON.

A fast path answers only for the subset it can prove equal (see tests/engine/test_fastyaml.py)
and raises ``NotFast`` for everything else, so the caller runs the full PyYAML path: anchors,
aliases, tags, merge keys (``<<``), directives, ``.nan``/``.inf`` and the ``=`` value, nesting
deeper than ``MAX_DEPTH``, texts over ``MAX_FAST_BYTES``, and every text PyYAML would refuse (the
refusal always comes from PyYAML). There are two fast paths, proven by the same tests, and
``fast_load`` is the best one this installation has (``YAML_LOADER``, shown by ``mcp-kscan doctor``):

- ``libyaml``: ``_cyaml.c``, built by setup.py where libyaml's headers are. It runs libyaml's
  event parser, the one PyYAML's C loader runs, and builds the objects in C; plain scalars that a
  resolver may claim go to ``plain_value`` (cached). Being PyYAML's own parser it needs no lexical
  checks; it also declines collections as keys, a leading byte-order mark and explicit ``?`` keys
  (libyaml versions differ there). About 1.5x as fast as rapidyaml's path
  (docs/benchmarks-engine.md).
- ``rapidyaml``: rapidyaml's parse and a Python walk of its tree (``rymlwalk``, imported only when
  used), wherever the extension is not built.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

import yaml

__all__ = ["FAST_LOADERS", "MAX_DEPTH", "MAX_FAST_BYTES", "PLAIN_CACHE_LIMIT", "TIMESTAMP_TAG", "YAML_LOADER",
           "KubeYAMLLoader", "NotFast", "fast_load", "libyaml_load", "libyaml_version", "load_all", "plain_value",
           "pyyaml_load_all", "rapidyaml_load", "timestamp_as_text"]

MAX_DEPTH = 500
"""Deeper documents go to PyYAML, whose C scanner refuses nesting past 1000 levels on its own."""
MAX_FAST_BYTES = 64 * 1024 * 1024
"""Bigger texts go to the full path, whose size limits apply."""

TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_Base: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader)


class KubeYAMLLoader(_Base):  # type: ignore[misc,valid-type]
    """PyYAML's YAML 1.1 safe loader (libyaml when present), except that timestamps stay strings.

    Kubernetes' JSON has no date type, so ``2024-01-01`` is the string it was written as.
    This is the reference the fast path is proven against, and the rule the loader's full path uses.
    """


KubeYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != TIMESTAMP_TAG]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def timestamp_as_text(loader: Any, node: yaml.Node) -> Any:
    """An explicit ``!!timestamp`` is the text it was written as."""
    return loader.construct_scalar(node)


KubeYAMLLoader.add_constructor(TIMESTAMP_TAG, timestamp_as_text)


def pyyaml_load_all(data: bytes | str) -> list[Any]:
    """Every document of ``data`` read by PyYAML with Kubernetes' timestamp rule (the reference)."""
    return list(yaml.load_all(data, Loader=KubeYAMLLoader))


class NotFast(Exception):
    """The text uses something the fast path does not prove equal; read it with PyYAML."""


class _PlainResolver(yaml.resolver.Resolver):
    """PyYAML's YAML 1.1 implicit resolvers for plain scalars, without the timestamp rule."""


_PlainResolver.yaml_implicit_resolvers = KubeYAMLLoader.yaml_implicit_resolvers
_resolver = _PlainResolver()
_constructor = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_BUILT = {
    tag: yaml.constructor.SafeConstructor.yaml_constructors[tag]
    for tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                "tag:yaml.org,2002:float")
}
_VALUE_TAG = "tag:yaml.org,2002:value"


def plain_value(text: str, as_key: bool) -> Any:
    """What PyYAML makes of a plain scalar: its resolver picks the tag, its constructor builds it.

    The one place of the YAML 1.1 scalar rules for both fast paths (libyaml's calls it from C).
    """
    tag = _resolver.resolve(yaml.ScalarNode, text, (True, False))
    if tag == _STR:
        return text
    if tag == _VALUE_TAG and as_key:
        return text  # SafeConstructor turns a "=" key into the string "=" (flatten_mapping)
    build = _BUILT.get(tag)
    if build is None:
        raise NotFast(f"plain scalar {text!r} resolves to {tag}")  # << merge key, "=" value
    value = build(_constructor, yaml.ScalarNode(tag, text))
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        raise NotFast("non-finite float")
    return value


PLAIN_CACHE_LIMIT = 200_000
"""Entries per scalar cache (emptied when full): manifests repeat the same plain scalars
endlessly (``name``, ``true``, ``8080``), and a plain scalar's value depends only on its text."""


@functools.cache
def _rymlwalk() -> ModuleType:
    return importlib.import_module("mcp_kscan.engine.rymlwalk")


def rapidyaml_load(data: bytes | str) -> list[Any]:
    """``fast_load`` by rapidyaml's parse and a Python walk of its tree (``rymlwalk``)."""
    return _rymlwalk().load(data)  # type: ignore[no-any-return]


# --- libyaml's events built in C (_cyaml.c) -------------------------------------------------------

def _find_libyaml_loader() -> ModuleType | None:
    """The C loader, when setup.py could build it (it needs libyaml's headers) and PyYAML reads
    with libyaml too: it is proven against PyYAML's C loader, the reference wherever libyaml is."""
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    if importlib.util.find_spec("mcp_kscan.engine._cyaml") is None:
        return None
    return importlib.import_module("mcp_kscan.engine._cyaml")


_cyaml = _find_libyaml_loader()


def _resolvable_first_bytes(resolvers: dict[Any, Any]) -> bytes:
    """256 flags: 1 where an implicit resolver looks at a plain scalar starting with that byte.
    Any other plain scalar is a string without asking the resolver (``name``, ``nginx:1.25``)."""
    flags = bytearray(256)
    for first in resolvers:
        if first is None:  # a wildcard resolver looks at every scalar
            return bytes([1]) * 256
        if first:
            flags[first.encode("utf-8")[0]] = 1
    return bytes(flags)


_RESOLVABLE_FIRST = _resolvable_first_bytes(KubeYAMLLoader.yaml_implicit_resolvers)
_c_plain_values: dict[str, Any] = {}
_c_plain_keys: dict[str, Any] = {}
_c_strings: dict[str, str] = {}
"""The C loader's caches, by the scalar's text (see ``cached`` in _cyaml.c)."""
_UTF8_BOM = b"\xef\xbb\xbf"
# A "?" where a token can start: an explicit key. libyaml 0.2.5 (the system's) and the newer one
# PyYAML's wheels bundle read "?" in a flow sequence differently (libyaml pull requests 295/296),
# so texts that may hold one are PyYAML's. A "?" inside a plain scalar (a URL's query) is no token.
_EXPLICIT_KEY = re.compile(rb"(?:^|[\s\[\]{},:'\"])\?")


def fast_bytes(data: bytes | str) -> bytes:
    """The text as UTF-8 bytes, or ``NotFast`` where a fast loader must not take it (both loaders)."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise NotFast("not encodable as UTF-8") from exc
    else:
        data = bytes(data)
    if len(data) > MAX_FAST_BYTES:
        raise NotFast("too big for the fast path")
    return data


def libyaml_load(data: bytes | str) -> list[Any]:
    """``fast_load`` by libyaml's event parse, built into Python objects in C (``_cyaml.c``).

    libyaml is the parser PyYAML's C loader runs, so the text is accepted or refused alike; what
    is left to prove is the building (tests/engine/test_fastyaml.py), and the C declines all that
    it does not build itself (anchors, aliases, tags, collections as keys, deep nesting).
    """
    if _cyaml is None:
        raise NotFast("the C loader is not built")
    data = fast_bytes(data)
    if data.startswith(_UTF8_BOM):
        raise NotFast("byte-order mark")  # PyYAML skips it; libyaml told "UTF-8" would keep it
    if b"?" in data and _EXPLICIT_KEY.search(data) is not None:
        raise NotFast("explicit key")
    return _cyaml.load(data, plain_value, _c_plain_values, _c_plain_keys, _c_strings, _RESOLVABLE_FIRST,
                       MAX_DEPTH, PLAIN_CACHE_LIMIT, NotFast)  # type: ignore[no-any-return]


def libyaml_version() -> str | None:
    """The version of the libyaml the C loader runs (``None`` where it is not built)."""
    return None if _cyaml is None else str(_cyaml.libyaml_version())


FAST_LOADERS: dict[str, Callable[[bytes | str], list[Any]]] = (
    {"libyaml": libyaml_load, "rapidyaml": rapidyaml_load} if _cyaml is not None else {"rapidyaml": rapidyaml_load})
"""The fast paths this installation has, best first; each is proven against PyYAML alike."""
YAML_LOADER = next(iter(FAST_LOADERS))
"""The one ``fast_load`` runs: ``libyaml`` (the C extension) or ``rapidyaml``."""
fast_load: Callable[[bytes | str], list[Any]] = FAST_LOADERS[YAML_LOADER]
"""Every document of ``data``, exactly as ``pyyaml_load_all`` reads it, or ``NotFast``.

Returns plain dict/list/str/int/float/bool/None values (``None`` for an empty document).
Raises ``NotFast`` (and nothing else) when the text is outside the subset proven equal,
including every text PyYAML would refuse.
"""


def load_all(data: bytes | str, fallback: Callable[[bytes | str], list[Any]] = pyyaml_load_all) -> list[Any]:
    """``fast_load`` when it answers, else ``fallback`` (PyYAML by default) on the same input."""
    try:
        return fast_load(data)
    except NotFast:
        return fallback(data)
