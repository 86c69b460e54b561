"""The fast YAML reader against PyYAML: the same objects wherever it answers, and no answer where
PyYAML refuses the text.

The property checked everywhere (``assert_same_as_pyyaml``), for each fast path this installation
has (``FAST_LOADERS``: libyaml's events built in C, and rapidyaml's tree walked in Python): the
loader either raises
``NotFast`` (the caller then reads the text with PyYAML), or returns exactly what PyYAML's YAML 1.1
safe loader returns, with Kubernetes' one change (timestamps stay strings): the same types (a
``True`` is not a ``1``), the same values, the same key order. There are no deliberate
deviations. Coverage is checked too: the fast path must answer for the manifests people write,
or it proves nothing.

``FASTYAML_EXAMPLES=5000 pytest tests/engine/test_fastyaml.py`` runs the generated cases longer
(and with fresh random seeds; the default run is derandomized, so CI sees the same cases).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_kscan.engine.fastyaml import FAST_LOADERS, MAX_DEPTH, YAML_LOADER, NotFast, fast_load, load_all, pyyaml_load_all
from .conftest import shared_dir

# 100 fixed (derandomized) cases per generated test in the default run: most of their cost is
# hypothesis drawing the data (~4 of 5 s at 300). Removing each of four of the fast path's
# refusal checks was caught, or missed, alike at 100 and at 300; the exploratory run above is
# where more cases pay.
EXAMPLES = int(os.environ.get("FASTYAML_EXAMPLES", "100"))
GENERATED = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 300,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, dict keys in the same order; NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return (len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


LOADERS = sorted(FAST_LOADERS)
each_loader = pytest.mark.parametrize("loader", LOADERS)


def assert_same_as_pyyaml(data: bytes | str, loader: str) -> bool:
    """The property; returns whether the fast path answered."""
    try:
        expected: Any = pyyaml_load_all(data)
        refused: BaseException | None = None
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        expected, refused = None, exc
    try:
        got = FAST_LOADERS[loader](data)
    except NotFast:
        return False
    assert refused is None, f"{loader} fast path answered {got!r} where PyYAML refuses the text ({refused!r}): {data!r}"
    assert same(got, expected), f"{loader} fast path read {got!r}, PyYAML {expected!r}: {data!r}"
    return True


def test_the_c_loader_is_in_use_where_it_is_required() -> None:
    """CI (.ci/run) sets MCP_KSCAN_REQUIRE_CYAML: there the C loader must be built and chosen, or
    the tests below would prove only rapidyaml's path while the scan runs on neither."""
    if YAML_LOADER != "libyaml":
        reason = "the C loader (mcp_kscan/engine/_cyaml.c) is not built: libyaml's headers were missing at install"
        if os.environ.get("MCP_KSCAN_REQUIRE_CYAML"):
            pytest.fail(f"MCP_KSCAN_REQUIRE_CYAML is set but {reason}")
        pytest.skip(f"{reason}; rapidyaml's path is tested alone")
    assert LOADERS == ["libyaml", "rapidyaml"]
    assert fast_load is FAST_LOADERS["libyaml"]
    assert fast_load("a: yes\n") == [{"a": True}]


# --- every manifest in ../shared ---------------------------------------------------------------

def _shared_manifests() -> list[Path]:
    root = shared_dir()
    files = [p for p in sorted((root / "fixtures").rglob("*"))
             if p.is_file() and p.suffix in (".yaml", ".yml", ".json")]
    files += sorted(root.glob("reference/regolibrary-v2.0.33/rules/*/test/*/input/*"))
    return [p for p in files if p.is_file()]


@pytest.mark.slow
@each_loader
def test_every_shared_manifest_reads_as_pyyaml_reads_it(loader: str) -> None:
    files = _shared_manifests()
    if not files:
        pytest.skip(f"no manifests under {shared_dir()} (../shared is absent; it is never copied into the repo)")
    answered = 0
    for path in files:
        answered += assert_same_as_pyyaml(path.read_bytes(), loader)
    # The fast path must carry the bulk of real manifests, or the scan gains nothing.
    assert answered >= 0.9 * len(files), f"{loader} fast path answered only {answered} of {len(files)} files"


# --- hand-written edge cases --------------------------------------------------------------------

YAML11_SCALARS = [
    "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N",
    "true", "True", "TRUE", "false", "False", "FALSE", "tRUE", "~", "null", "Null", "NULL", "nULL", "",
    "0644", "0755", "0o644", "08", "0x1F", "0X1F", "0b101", "-0b101", "1_000", "+12", "-12", "0", "-0", "00",
    "190:20:30", "1:60", "12e3", "1e3", "1.5e3", "1.5e+3", "1.0E-3", "6.8523015e+5", "685.230_15e+03",
    "1.", ".5", "-.5", "+.5", "1.2.3", "190:20:30.15", ".inf", "-.Inf", "+.INF", ".nan", ".NaN", "NaN",
    "inf", "Infinity", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
    "=", "<<", "1_2_3", "0_1", "0x_1F", "123456789012345678901234567890", "3.14159", "-", "--", "---a",
    "a b", "http://x:80/y", "8080/TCP", "100m", "128Mi", "1Gi", "v1", "@x", "`x",
]


@each_loader
@pytest.mark.parametrize("scalar", YAML11_SCALARS)
def test_yaml11_plain_scalars_resolve_as_pyyaml(scalar: str, loader: str) -> None:
    for text in (f"k: {scalar}\n", f"- {scalar}\n", f"{scalar}: v\n", f"[{scalar}]\n", f"{{a: {scalar}}}\n",
                 f'k: "{scalar}"\n', f"k: '{scalar}'\n", f"--- {scalar}\n"):
        assert_same_as_pyyaml(text, loader)


@each_loader
@pytest.mark.parametrize("scalar", ["yes", "on", "off", "no", "0644", "~", "1_000", "0x1F", "1e3", "190:20:30"])
def test_kubernetes_yaml11_values_take_the_fast_path(scalar: str, loader: str) -> None:
    assert assert_same_as_pyyaml(f"spec:\n  privileged: {scalar}\n  other: [{scalar}, '{scalar}']\n", loader)


EDGE_CASES = {
    "anchors and aliases": "a: &x {b: 1}\nc: *x\nd: &y [1, 2]\ne: *y\n",
    "merge keys": "base: &b {cpu: 1, mem: 2}\nx:\n  <<: *b\n  cpu: 3\n",
    "merge key list": "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n",
    "merge key without alias": "x:\n  <<: {cpu: 1}\n  mem: 2\n",
    "multi-document": "a: 1\n---\nb: 2\n---\n- 3\n--- x\n---\n",
    "explicit ends": "a: 1\n...\n---\nb: 2\n...\n",
    "empty documents": "---\n---\n---\n",
    "empty stream": "",
    "comments only": "# nothing\n  # here\n",
    "document end only": "...\n",
    "literal block": "a: |\n  line 1\n\n  line 3\nb: x\n",
    "literal keep": "a: |+\n  x\n\n\nb: 1\n",
    "literal strip": "a: |-\n  x\n\nb: 1\n",
    "folded": "a: >\n  folded\n  text\n\n  para\nb: 1\n",
    "folded strip indent": "a: >2-\n    indented\n   less\n",
    "block at end without newline": "a: |\n  x\n  y",
    "keep at end": "a: |+\n  x\n\n",
    "explicit tags": "a: !!str 1\nb: !!int '2'\nc: !!float 3\nd: !!bool yes\ne: !!null ''\n",
    "binary tag": "a: !!binary aGVsbG8=\n",
    "set and omap": "s: !!set {a, b}\no: !!omap [{a: 1}, {b: 2}]\n",
    "local tag": "a: !foo bar\n",
    "timestamp tag": "a: !!timestamp 2001-12-14\n",
    "duplicate keys": "a: 1\nb: 2\na: 3\n",
    "duplicate keys nested": "m:\n  x: 1\n  x: [2]\n",
    "bool and int keys collide": "1: a\ntrue: b\n1.0: c\n",
    "null keys": "~: a\n? \n: b\n",
    "complex key": "? [a, b]\n: c\n",
    "complex scalar key": "? a\n: b\n",
    "flow in block": "a: {b: [1, {c: d}], e: f}\ng: [h, i, [j]]\n",
    "flow multiline": "a: [1,\n  2,\n  3]\nb: {c: 1,\n  d: 2}\n",
    "flow continuation at column 0": "a: [1,\n2]\n",
    "flow empty values": "a: {e: , f}\nb: [x: , y]\nc: {g}\n",
    "flow colon before indicator": "a: {e:, f}\n",
    "flow colon in sequence": "a: [x:, y]\n",
    "flow json-like key": '{"a":, b}\n',
    "block header with a space": "a: | -\n  x\n",
    "block header with zero": "a: |0\n  x\n",
    "empty flow": "a: []\nb: {}\nc: ''\nd: \"\"\n",
    "double-quoted escapes": 'a: "tab\\tnl\\nuni\\u00e9\\x41\\U0001F600 \\/ \\"q\\" \\\\ \\0 \\a \\e \\N \\_ \\L \\P"\n',
    "single-quoted escape": "a: 'it''s'\n",
    "multi-line quoted": 'a: "one\n  two\n\n  three"\nb: \'x\n  y\'\n',
    "multi-line plain": "a: one\n  two\n\n  three\nb: c\n",
    "plain with colons and hashes": "a: b:c\nd: e#f\ng: h # comment\nurl: http://x:1/y?z=1&w=2\n",
    "plain with indicators": "a: -x\nb: ?y\nc: :z\nd: x-\n",
    "unicode": "name: café ☕ 日本\n'ключ': значение\n",
    "crlf": "a: 1\r\nb: |\r\n  x\r\n  y\r\nc: [1, 2]\r\n",
    "lone cr": "a: 1\rb: 2\r",
    "tabs": "a:\tb\nc: 'x\ty'\nd: |\n  \tindented\n",
    "tab indentation": "a:\n\tb: 1\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "tag directive": "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n",
    "bom": "\ufeffa: 1\n",
    "nel": "a: b\x85c\n",
    "line separator": "a: b\u2028c\n",
    "control character": "a: b\x01c\n",
    "del character": "a: b\x7fc\n",
    "nan and inf": "a: .nan\nb: .inf\nc: -.inf\n",
    "value indicator": "a: =\n=: b\n",
    "deep": "a:\n" + "".join("  " * i + "- x:\n" for i in range(1, 40)) + "  " * 40 + "- end\n",
    "sequence of sequences": "- - - a\n    - b\n  - c\n- d\n",
    "indentless sequence": "a:\n- 1\n- 2\nb: 3\n",
    "json": '{"apiVersion": "v1", "kind": "Pod", "n": [1, 2.5, true, null, "x"], "e": {}}\n',
    "json no newline": '{"a": [1, {"b": "c"}]}',
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "unclosed quote": "a: 'x\n",
    "unclosed flow": "a: [1, 2\n",
    "two colons": "a: b: c\n",
    "undefined alias": "a: *nope\n",
    "garbage": "}{][:-?!&*|>'\"%@`\n",
    "trailing spaces": "a: 1   \nb: 'x'   \n",
    "key without value at end": "a:",
    "scalar document": "just text\n",
    "quoted scalar document": "'just text'\n",
    "long string": "a: " + "x" * 100_000 + "\n",
    # rapidyaml keeps the line break before a blank line in a flow mapping's last plain value
    # ("x\n", "true\n"); YAML 1.1 reads "x" and True (regolibrary's rule.metadata.json has one).
    "flow mapping closed after a blank line": "{a: x\n\n}\n",
    "JSON closed after a blank line": '{\n  "a": 1,\n  "b": true\n\n}\n',
    "flow mapping closed after blank lines and a comment": "{a: yes\n\n  # done\n\n}\n",
    # libyaml 0.2.5 and PyYAML's newer bundled libyaml differ on "?" in flow sequences.
    "explicit key in a flow sequence": "[? a]\n",
    "empty explicit key in a flow sequence": "[?]\n",
    "explicit key closing a flow sequence": "a: [ ? ]\nb: 1\n",
    "explicit keys in flow mappings": "{? a, ? b: c}\n",
    "question marks in plain scalars": "url: http://x/?a=1&b=2\nq: what?\nr: [a?b, c ?d]\n",
    "collection keys": "{[a]: b}\n",
    "mapping as a key": "? {a: 1}\n: x\n",
    "sequence as a key": "? - a\n: x\n",
    "YAML 1.2 directive": "%YAML 1.2\n---\na: 1\n",
    "duplicate key holding collections": "a: [1]\nb: 2\na: {c: 3}\n",
    "keys of every scalar type": "1: a\n0x10: b\n1.5: c\nyes: d\n~: e\n'1': f\n=: g\n",
}


@each_loader
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_read_as_pyyaml_reads_them(name: str, loader: str) -> None:
    text = EDGE_CASES[name]
    assert_same_as_pyyaml(text, loader)
    assert_same_as_pyyaml(text.encode("utf-8"), loader)


@each_loader
def test_documents_that_need_pyyaml_are_handed_to_it(loader: str) -> None:
    """Anchors, tags, merge keys and directives are PyYAML's: the fast path must not answer."""
    for name in ("anchors and aliases", "merge keys", "merge key without alias", "explicit tags", "binary tag",
                 "directive", "bom", "nan and inf", "undefined alias", "complex key", "control character"):
        with pytest.raises(NotFast):
            FAST_LOADERS[loader](EDGE_CASES[name])


def test_load_all_falls_back_to_the_given_reader() -> None:
    calls: list[bytes | str] = []

    def fallback(data: bytes | str) -> list[Any]:
        calls.append(data)
        return ["from fallback"]

    assert load_all("a: &x 1\nb: *x\n", fallback) == ["from fallback"]
    assert load_all("a: yes\n", fallback) == [{"a": True}]
    assert calls == ["a: &x 1\nb: *x\n"]
    assert load_all("a: &x 1\nb: *x\n") == [{"a": 1, "b": 1}]


@each_loader
def test_non_utf8_input_is_left_to_pyyaml(loader: str) -> None:
    for data in (b"a: \xff\xfe\n", b"a: caf\xe9\n", "a: b\n".encode("utf-16"), b"\xef\xbb\xbfa: 1\n"):
        with pytest.raises(NotFast):
            FAST_LOADERS[loader](data)
        assert_same_as_pyyaml(data, loader)


@each_loader
def test_alias_bomb_is_never_expanded_by_the_fast_path(loader: str) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = "\n".join(lines) + "\n"
    with pytest.raises(NotFast):
        FAST_LOADERS[loader](bomb)


@each_loader
def test_nesting_past_the_fast_limit_is_left_to_pyyaml(loader: str) -> None:
    for depth in (MAX_DEPTH + 1, 2000, 100_000):
        text = "[" * depth + "]" * depth
        with pytest.raises(NotFast):
            FAST_LOADERS[loader](text)
        assert_same_as_pyyaml(text, loader)  # PyYAML's own scanner refuses past 1000 levels


@each_loader
def test_a_deep_block_document_within_the_limit_is_read(loader: str) -> None:
    depth = 200
    text = "".join("  " * i + "k:\n" for i in range(depth)) + "  " * depth + "v\n"
    assert assert_same_as_pyyaml(text, loader)


@each_loader
def test_deep_flow_collections_within_the_limit_are_read(loader: str) -> None:
    """libyaml 0.2.5 and PyYAML's 0.2.6 differ past 1000 levels only; MAX_DEPTH keeps below."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * MAX_DEPTH))  # for same(), which compares recursively
    try:
        depth = MAX_DEPTH - 2  # two more levels inside
        assert assert_same_as_pyyaml("[" * depth + "a, {b: [1, yes]}" + "]" * depth + "\n", loader)
        depth = MAX_DEPTH - 1
        assert assert_same_as_pyyaml("{a: " * depth + "[x, 0644]" + "}" * depth + "\n", loader)
        assert assert_same_as_pyyaml("[" * MAX_DEPTH + "on" + "]" * MAX_DEPTH + "\n", loader)
    finally:
        sys.setrecursionlimit(limit)


# --- the C loader's own bookkeeping ------------------------------------------------------------

# Each stops the C loader at a different point, with objects half built: it must free them all.
C_LOADER_PATHS = {
    "answered": "apiVersion: [1, {bb: cc, 0x1000: 0644, 1.5: 2.5}]\n---\n- xyz\n",
    "alias after objects": "apiVersion: [0644, {bb: cc}]\ndata: *x\n",
    "alias as a value": "apiVersion: [0644]\ndata: {key: *x}\n",
    "tag deep inside": "apiVersion: [0644, {bb: !!str cc}]\n",
    "anchor on a collection": "apiVersion: {0x1000: &x [0644]}\n",
    "collection as a key": "apiVersion: {0x1000: 0644, [cc]: dd}\n",
    "too deep": "apiVersion: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n",
    "libyaml error after objects": "apiVersion: {0x1000: [0644, 2\n",
    "libyaml error after a key": "apiVersion: {0x1000: 0644, metadata: \n  - a\n - b\n",
    "error in the second document": "apiVersion: 0644\n---\nkind: [xyz, {metadata: \n",
    "resolver refuses mid-mapping": "apiVersion: {0x1000: [0644, .inf]}\n",
    "merge key": "apiVersion: {<<: {0x1000: 0644}}\n",
    "directive in the second document": "apiVersion: 0644\n...\n%YAML 1.1\n---\nkind: 2\n",
}


@pytest.mark.skipif(YAML_LOADER != "libyaml", reason="the C loader is not built")
def test_the_c_loader_frees_what_it_built_on_every_path() -> None:
    """A missing DECREF on any path (answer or NotFast) grows the heap by at least one object per
    call: 2,000 calls per path must leave Python's heap as they found it (tracemalloc), and the
    cached values' reference counts unchanged. (libyaml's own buffers: valgrind, see the commit.)"""
    from mcp_kscan.engine import fastyaml

    load = FAST_LOADERS["libyaml"]

    def run(data: bytes) -> None:
        try:
            load(data)
        except NotFast:
            pass

    for name, text in C_LOADER_PATHS.items():
        data = text.encode("utf-8")
        for _ in range(50):  # warm the resolver caches and every lazily created object
            run(data)
        # The values only the caches hold (0644's 420): None, True and small ints move with everything else.
        cached = [v for v in [*fastyaml._c_plain_values.values(), *fastyaml._c_plain_keys.values()]
                  if type(v) is float or type(v) is int and v > 256]
        counts = [sys.getrefcount(v) for v in cached]
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(2000):
                run(data)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 16_000, f"{name}: {grown} bytes left behind by 2,000 calls"
        assert [sys.getrefcount(v) for v in cached] == counts, f"{name}: a cached value's reference count moved"
    assert any(v == 420 for v in fastyaml._c_plain_values.values())  # the check above had something to watch


# --- generated documents ------------------------------------------------------------------------

_tricky_text = st.one_of(
    st.sampled_from(YAML11_SCALARS),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12),
    st.text(alphabet=" \n\t:-#'\"|>[]{},?&*!%@`~.0123456789abcdefxyEn_+=<\\", max_size=12),
)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), _tricky_text,
)
_keys = st.one_of(_tricky_text, st.integers(-1000, 1000), st.booleans(), st.none())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=25,
)
_dump_options = st.fixed_dictionaries({
    "default_flow_style": st.sampled_from([False, True, None]),
    "default_style": st.sampled_from([None, None, None, '"', "'", "|", ">"]),
    "explicit_start": st.booleans(),
    "explicit_end": st.booleans(),
    "allow_unicode": st.booleans(),
    "width": st.sampled_from([20, 80, 10_000]),
    "indent": st.sampled_from([2, 4]),
    "sort_keys": st.booleans(),
})


@each_loader
@GENERATED
@given(docs=st.lists(_values, min_size=1, max_size=3), options=_dump_options)
def test_generated_documents_read_as_pyyaml_reads_them(docs: list[Any], options: dict[str, Any], loader: str) -> None:
    text = yaml.safe_dump_all(docs, **options)
    assert_same_as_pyyaml(text, loader)
    if options["default_style"] is None:
        assert_same_as_pyyaml(text.replace("\n", "\r\n"), loader)


_BASE_MANIFESTS = [
    EDGE_CASES["flow in block"], EDGE_CASES["literal block"], EDGE_CASES["multi-line plain"],
    """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: "front"}
  annotations:
    note: >-
      folded
      text
spec:
  replicas: 2
  template:
    spec:
      hostNetwork: on
      containers:
        - name: main
          image: nginx:1.25
          args: ["--port", 8080, yes]
          securityContext:
            privileged: yes
            runAsUser: 0
          env:
            - name: A
              value: '0644'
            - {name: B, value: 0644}
      volumes:
        - name: cfg
          configMap: {name: cfg, defaultMode: 0755}
---
apiVersion: v1
kind: ConfigMap
data:
  script: |
    #!/bin/sh
    echo "hi: there" # not a comment
  k: ~
""",
]
_mutation_alphabet = list(" \n\n\n  :-#'\"|>[]{},?&*!%.0123456789ayn~\\") + ["- ", ": ", "---\n", "  ", "\t"]


@each_loader
@GENERATED
@given(base=st.sampled_from(_BASE_MANIFESTS), edits=st.lists(
    st.tuples(st.floats(0, 1), st.integers(0, 3), st.sampled_from(_mutation_alphabet)), min_size=1, max_size=6))
def test_mutated_manifests_read_as_pyyaml_reads_them(base: str, edits: list[tuple[float, int, str]],
                                                     loader: str) -> None:
    """Random edits make broken and odd YAML: where PyYAML refuses it, the fast path must not answer."""
    text = base
    for where, delete, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + delete:]
    assert_same_as_pyyaml(text, loader)


# --- hostile input: bounded time and memory -----------------------------------------------------

HOSTILE_CHILD = r"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from mcp_kscan.engine.fastyaml import FAST_LOADERS, NotFast
fast_load = FAST_LOADERS[sys.argv[1]]
laughs = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
cases = {
    "billion laughs": laughs,
    "100,000 nested flow sequences": "[" * 100_000 + "]" * 100_000,
    "100,000 nested block sequences": "- " * 100_000 + "x\n",
    "100,000 nested flow mappings": "{a: " * 100_000 + "1" + "}" * 100_000,
    "500 MB": b"a: b\n" * 100_000_000,
}
for name, data in cases.items():
    try:
        fast_load(data)
    except NotFast as exc:
        print(f"{name}: declined ({exc})", flush=True)
    else:
        print(f"{name}: ANSWERED", flush=True)
print("peak MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@each_loader
def test_hostile_yaml_is_declined_in_bounded_time_and_memory(loader: str) -> None:
    """Each ends in NotFast (the caller's full path then reports a per-file error) within a 1 GiB
    address space: the 500 MB text itself is the biggest thing in the child."""
    proc = subprocess.run([sys.executable, "-c", HOSTILE_CHILD, loader], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "billion laughs", "100,000 nested flow sequences", "100,000 nested block sequences",
        "100,000 nested flow mappings", "500 MB"]
    assert all(": declined (" in line for line in lines[:-1]), lines
    assert int(lines[-1].split()[-1]) < 1024


def test_rapidyaml_refusals_print_nothing() -> None:
    """rapidyaml's error handler writes to stderr before raising; a CLI scan must not show that."""
    child = ("from mcp_kscan.engine.fastyaml import NotFast, rapidyaml_load\n"
             "try:\n    rapidyaml_load('a: [1,\\n2]\\n')\nexcept NotFast:\n    print('declined')\n")
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.stdout == "declined\n" and proc.stderr == ""
