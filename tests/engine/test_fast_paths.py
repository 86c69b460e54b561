"""The engine's fast paths give exactly what the straightforward evaluation gives.

A scan shares work between controls (one run per check shared by several controls, containers
listed once per object, C-0012's name answers remembered, a label index for C-0293, a literal
pre-test before C-0012's regular expressions) and writes its report in forked workers. Each
shortcut is checked here against the plain way of computing the same thing.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls import PASSED
from mcp_kscan.engine.controls import secrets, usage
from mcp_kscan.engine.frameworks import resolve
from mcp_kscan.engine.inputs import default_inputs
from mcp_kscan.engine.loader import load_paths
from mcp_kscan.engine.model import Finding, make_resource
from mcp_kscan.engine.parallel import scan_paths_json
from mcp_kscan.engine.report import build_report
from mcp_kscan.engine.scan import target_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bench_generate() -> Any:
    spec = importlib.util.spec_from_file_location("bench_engine", REPO_ROOT / "benchmarks" / "bench_engine.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's corpus at 1,000 resources (Deployments, Services, ConfigMaps, RBAC)."""
    root = tmp_path_factory.mktemp("corpus")
    _bench_generate()(root, 1000)
    return root


def _reference_report(root: Path) -> dict[str, Any]:
    """Every selected control's own check on a fresh copy of every object, one by one, and the
    report built as a dict: no shared verdicts, no per-object caches, no workers."""
    selection = resolve(None, None)
    loaded = load_paths([root])
    resources = [make_resource(d.obj, d.relative_path, d.root, document=d.index) for d in loaded.docs]
    ctx = ScanContext.build(resources, selection.inputs)
    verdicts = []
    for res in resources:
        vs = []
        for c in selection.controls:
            if res.kind not in c.kinds:
                continue
            fresh = make_resource(res.obj, res.relative_path, res.root, document=res.document)
            verdict = c.check(fresh, ctx)
            if verdict is not None:
                vs.append((c, None if verdict is PASSED else verdict))
        verdicts.append(vs)
    target = target_for([root])
    target.errors = [str(e) for e in loaded.errors]
    return build_report(selection, resources, verdicts, target)


def _rounded(value: Any) -> Any:
    """Scores to 9 places: workers sum their tallies apart, so the last bits of a float may differ."""
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_scan_equals_the_reference_evaluation(corpus: Path) -> None:
    """In one process and in two workers, against one reference evaluation (computing it is most
    of the cost, and as two tests under pytest -n each worker computed the corpus and it again)."""
    expected = _reference_report(corpus)
    for workers in (1, 2):
        got = json.loads(scan_paths_json([corpus], workers=workers))
        assert len(got["resources"]) >= 1000
        assert any(c["status"]["status"] == "failed" for r in got["results"] for c in r["controls"])
        for key in ("summaryDetails", "resources", "results"):
            # Rounding walks every value in Python (most of this test's own time): needed only
            # where the exact values differ, which equal rounded values then have to excuse.
            assert got[key] == expected[key] or _rounded(got[key]) == _rounded(expected[key]), (workers, key)
        assert got["metadata"] == expected["metadata"], workers


# ------------------------------------------------------------------ C-0012's pattern search

def _plain_search(exprs: tuple[str, ...], text: str, ignore_case: bool) -> bool:
    flags = re.IGNORECASE if ignore_case else 0
    found = False
    for e in exprs:
        try:
            found = found or re.search(e, text, flags) is not None
        except re.error:
            continue
    return found


PATTERN_LISTS = [
    default_inputs()["sensitiveValues"],
    ("secret", "(?i)token", "AKIA[0-9A-Z]{4}"),
    ("(?x) p a s s", r"\d+-key"),
    ("ſecret",),  # the long s matches "s" and "S" without regard to case
    ("K",),  # the Kelvin sign, likewise "k"
    ("a|b", "x*"),  # no literal every match needs: the expression decides alone
    ("[unclosed", "ok"),  # a pattern that does not compile matches nothing
    ("İd",),
]
TEXTS = ["", "plain value", "PRIVATE KEY here", "my_SECRET_x", "Secret", "ſecret", "SECRET", "kelvin K",
         "TOKEN", "AKIAABCD", "akiaabcd", "pass", "12-key", "12-KEY", "id", "İD", "i̇d", "ok", "b", "xyz", "/etc/x"]


@pytest.mark.parametrize("exprs", PATTERN_LISTS)
@pytest.mark.parametrize("ignore_case", [False, True])
def test_pattern_search_equals_plain_re(exprs: tuple[str, ...], ignore_case: bool) -> None:
    for text in TEXTS + [t.upper() for t in TEXTS] + [t.lower() for t in TEXTS]:
        assert secrets._search_any(exprs, text, ignore_case) == _plain_search(exprs, text, ignore_case), (exprs, text)


_text = st.text(alphabet=st.sampled_from("abcKkSsſİiIdeyY_-0 9AZ.\u212a"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["key", "SeCrEt", "a.c", "k[ae]y", "ſ", "(?i)Ab", "y+z", "İ", "\u212a", "_-"]),
                min_size=1, max_size=3).map(tuple), _text, st.booleans())
def test_pattern_search_equals_plain_re_generated(exprs: tuple[str, ...], text: str, ignore_case: bool) -> None:
    assert secrets._search_any(exprs, text, ignore_case) == _plain_search(exprs, text, ignore_case)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["key", "SeCrEt", "a.c", "k[ae]y", "ſ", "(?i)Ab", "y+z", "İ", "\u212a", "_-", "a\x00b"]),
                min_size=1, max_size=3).map(tuple),
       st.lists(st.one_of(_text, st.sampled_from(["a", "b", "ke", "y", "a\x00b", "\x00"])), max_size=4), st.booleans())
def test_texts_searched_together_find_what_each_search_finds(exprs: tuple[str, ...], texts: list[str],
                                                             ignore_case: bool) -> None:
    """C-0012 searches an object's environment values together first (``_Search.none_in``): when
    that says no pattern can match, searching each value finds nothing either."""
    search = secrets._compiled_search(exprs, ignore_case)
    if search.none_in(texts):
        assert not any(search.search(t) for t in texts), (exprs, texts)
    assert not any(search.search(t) for t in TEXTS if search.none_in([t]))


def test_texts_searched_together_answer_for_plain_values() -> None:
    values = secrets._compiled_search(tuple(default_inputs()["sensitiveValues"]), True)
    assert values.none_in(["plain value", "8080", ""]) and not values.none_in(["plain value", "Bearer x"])
    assert not values.none_in(["plain välue"])  # non-ASCII: each value is searched


# ------------------------------------------------------------------ C-0293's label index

def _plain_service_with_no_workload(service: dict[str, Any], workloads: list[dict[str, Any]]) -> bool:
    """True when the Service fails C-0293, by comparing its selector with every workload."""
    res = make_resource(service, cluster=True)
    spec = res.obj.get("spec") or {}
    if spec.get("type", "ClusterIP") == "ExternalName" or not spec.get("selector"):
        return False
    ns = res.namespace or "default"
    for w in (make_resource(o, cluster=True) for o in workloads):
        if (w.namespace or "default") == ns and usage._labels_match(spec["selector"], w.pod_labels):
            return False
    return True


def _deployment(name: str, labels: dict[Any, Any], namespace: str | None = "shop") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": []}}}}


def _service(selector: dict[Any, Any], namespace: str | None = "shop") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "s"} if namespace is None else {"name": "s", "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"selector": selector}}


WORKLOADS = [
    _deployment("a", {"app": "a", "tier": "web"}),
    _deployment("b", {"app": 1, "on": True}),
    _deployment("c", {"app": ["x"], "cfg": {"k": "v"}}),
    _deployment("d", {"app": "a"}, namespace=None),
    _deployment("e", {"app": "e", "tier": None}),
]
SELECTORS = [
    {"app": "a"}, {"app": "a", "tier": "web"}, {"app": "a", "tier": "db"}, {"tier": "web", "app": "a"},
    {"app": True}, {"app": 1}, {"app": 1.0}, {"on": 1}, {"app": ["x"]}, {"cfg": {"k": "v"}},
    {"app": None}, {"app": None, "tier": "web"}, {"app": False}, {"app": ""}, {"tier": None}, {"missing": "x"},
    {"app": "e", "tier": None},
]


@pytest.mark.parametrize("selector", SELECTORS)
@pytest.mark.parametrize("namespace", ["shop", None])
def test_service_selector_index_equals_comparing_every_workload(selector: dict[Any, Any], namespace: str | None) -> None:
    service = _service(selector, namespace)
    resources = [make_resource(o, cluster=True) for o in [*WORKLOADS, service]]
    verdict = usage.service_with_no_workload(resources[-1], ScanContext.build(resources))
    assert isinstance(verdict, Finding) == _plain_service_with_no_workload(service, WORKLOADS), selector


def test_a_check_that_raises_costs_each_of_its_controls_one_warning(tmp_path: Path) -> None:
    """C-0049, C-0054 and C-0206 share one check: it runs once, and each control still reports."""
    from mcp_kscan.engine.controls import CONTROLS
    from mcp_kscan.engine.loader import LoadError
    from mcp_kscan.engine.scan import evaluate_one

    shared = [c for c in CONTROLS if c.id in ("C-0049", "C-0054", "C-0206")]
    assert len({c.check for c in shared}) == 1
    calls = []

    def boom(res: Any, ctx: ScanContext) -> None:
        calls.append(res.name)
        raise KeyError("x")

    controls = [type(c)(**{**{f: getattr(c, f) for f in c.__dataclass_fields__}, "check": boom}) for c in shared]
    res = make_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}, cluster=True)
    problems: list[LoadError] = []
    by_kind = {"Namespace": controls}
    assert evaluate_one(res, ScanContext(), by_kind, problems) == []
    assert calls == ["n"]
    assert [p.message.split(" could not")[0] for p in problems] == [f"control {c.id}" for c in controls]



# ------------------------------------------------------------------ the report's encoding

def test_floats_out_of_range_are_refused_when_read() -> None:
    """orjson would write infinity as null: the loader keeps every float finite, as it refuses
    .inf, so the report never holds a number JSON cannot carry."""
    from mcp_kscan.engine.loader import parse_text
    from mcp_kscan.engine.yamlguard import NON_FINITE

    head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
    for body in ("data: {a: 1.0e+999}\n", "x: -2.5E+400\n", f"x: {'9' * 400}.5\n", "x: [.inf]\n"):
        objs, errors = parse_text(head + body, "f.yaml")
        assert objs == [] and [e.message for e in errors] == [NON_FINITE], body
    json_text = '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "x": 1.5e+999}'
    assert parse_text(json_text, "f.json")[1][0].message == NON_FINITE
    objs, errors = parse_text(head + 'x: [1.0e+300, "1.0e+999", 1_000.5]\n', "f.yaml")
    assert errors == [] and objs[0]["x"] == [1e300, "1.0e+999", 1000.5]


def test_objects_orjson_refuses_are_written_by_the_standard_library(tmp_path: Path) -> None:
    """A 70-bit integer, a non-string key and 300 levels of nesting: orjson refuses each, the
    standard library writes it, and the report reads back as the objects were read."""
    deep = "x: " + "[" * 300 + "]" * 300 + "\n"
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {a: '1'}\n"
                                     "x: 1180591620717411303424\n")
    (tmp_path / "b.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keys}\nx: {1: one, 2.5: f, null: n}\n")
    (tmp_path / "c.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\n" + deep)
    (tmp_path / "d.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n")
    for workers in (1, 2):
        report = json.loads(scan_paths_json([tmp_path], workers=workers))
        objects = {r["object"]["metadata"]["name"]: r["object"] for r in report["resources"]}
        assert sorted(objects) == ["big", "deep", "keys", "plain"]
        assert objects["big"]["x"] == 2**70
        assert objects["keys"]["x"] == {"1": "one", "2.5": "f", "null": "n"}
        depth, node = 0, objects["deep"]["x"]
        while node:
            depth, node = depth + 1, node[0]
        assert depth == 299
        assert len(report["results"]) == 4 and report["metadata"]["engine"]["errors"] == []


def test_an_object_no_encoder_can_write_costs_only_that_object() -> None:
    """A lone surrogate is not UTF-8 (YAML cannot produce one, an embedding caller's object can):
    that object is left out with a warning, its slice is still written."""
    from mcp_kscan.engine.parallel import Shard

    shard = Shard([], resolve(None, None), omit_raw=False)
    for name, value in (("bad", "\ud800"), ("good", "x")):
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": value}}
        shard.resources.append(make_resource(obj, f"{name}.yaml", "/r"))
    out = shard.finish([])
    resources = json.loads(b"[" + b"".join(out["resources"]) + b"]")
    results = json.loads(b"[" + b"".join(out["results"]) + b"]")
    assert [r["object"]["metadata"]["name"] for r in resources] == ["good"]
    assert [r["resourceID"] for r in results] == [resources[0]["resourceID"]]
    assert len(out["errors"]) == 1 and out["errors"][0].startswith("bad.yaml"), out["errors"]
    assert "cannot be written as JSON" in out["errors"][0]
    assert sum(out["tallies"][2]) == 1  # the dropped object is not counted either


def test_a_findings_copy_is_copy_copy_for_every_field() -> None:
    """``Finding.copy`` (evaluate_one's copy for controls sharing a check) spells its fields out:
    a field added to Finding and not to copy() fails here."""
    import copy
    import dataclasses

    from mcp_kscan.engine.model import Finding

    values = {f.name: object() for f in dataclasses.fields(Finding)}
    original = Finding(**values)  # type: ignore[arg-type]
    copied = original.copy()
    assert copied is not original
    for name, value in values.items():
        assert getattr(copied, name) is value is getattr(copy.copy(original), name), name


def test_results_put_together_from_pieces_equal_the_entries_encoded() -> None:
    """A shard writes ``results[]`` from pieces (a passed entry's bytes, a failed entry's bytes
    around its resource id): the same bytes as each item built as a dict (``report.result_entry``)
    and encoded, an item no encoder can write left out with a warning, on the shared fixtures plus
    a path orjson refuses (a lone surrogate) and one that holds the split's placeholder."""
    import orjson

    from mcp_kscan.engine.loader import plan_files
    from mcp_kscan.engine.parallel import Shard, _controls_by_kind
    from mcp_kscan.engine.report import result_entry

    from .conftest import shared_dir

    odd = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {key: "x"}}
           for name, key in (("surrogate", "password\ud800"), ("placeholder", "password\x00rid\x00"),
                             ("plain", "password"))]
    odd.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "x", "env": [{"name": "TOKEN\x00rid\x00", "value": "v"}]}]}})
    root = shared_dir()
    files = plan_files([root / "fixtures"], [], None, []) if (root / "fixtures").is_dir() else []
    selection = resolve(None, None)
    shards = []
    for _ in range(2):
        shard = Shard(files, selection, omit_raw=True)
        context = shard.load()
        for i, obj in enumerate(odd):
            shard.resources.append(make_resource(obj, f"odd-{i}.yaml", "/r"))
        shards.append((shard, context))
    (shard, context), (plain, plain_context) = shards
    done = shard.finish(context)
    ctx = ScanContext()
    for o, rel, root_dir in plain_context:
        ctx.add(make_resource(o, rel, root_dir))
    expected, dropped = [], []
    for res, vs in plain._evaluate(ctx, _controls_by_kind(selection)):
        if vs:
            try:
                expected.append(orjson.dumps(result_entry(res, vs)))
            except (TypeError, ValueError):
                dropped.append(res.name)
    assert b"".join(done["results"]) == b",".join(expected)
    assert dropped == ["surrogate"] and any("cannot be written as JSON" in e for e in done["errors"])
    results = json.loads(b"[" + b"".join(done["results"]) + b"]")
    assert [r["resourceID"].rsplit("/", 1)[1] for r in results[-3:]] == ["placeholder", "plain", "p"]


def test_a_failed_entry_from_pieces_equals_its_entry_encoded() -> None:
    """``_FailedEntries`` against ``control_entry`` encoded whole, for findings whose paths, fix
    values or message are exactly the placeholder the split uses (the split is then not used)."""
    import orjson

    from mcp_kscan.engine.parallel import _RID_PLACEHOLDER, _FailedEntries
    from mcp_kscan.engine.report import control_entry

    control = resolve(None, None).controls[0]
    p = _RID_PLACEHOLDER
    findings = [Finding(["a", "b"], [("a", "1")], "m"), Finding([], [("x", "y"), ("z", "w")]),
                Finding([p], [], ""), Finding(["a"], [("b", p)], ""), Finding(["a"], [], p),
                Finding(["a"], [], "", {"name": p, "source": "s", "reason": "r"})]
    entries = _FailedEntries()
    for rid in ("path=1/api=/v1/ns/Pod/a", p, 'q"uote\\'):
        for f in findings:
            expected = b"," + orjson.dumps(control_entry(control, f, rid))
            assert entries.entry(control, f, orjson.dumps(rid)) == expected, (rid, f)


# ------------------------------------------------------------------ small shortcuts

def _memory_bytes_plainly(value: Any) -> float | None:
    """The suffix list tried in order, as regolibrary's rule reads a memory quantity."""
    from mcp_kscan.engine.controls import resources

    text = resources._text(value)
    for suffix, factor in resources._MEMORY_SUFFIXES:
        if text.endswith(suffix):
            n = resources._number(text[: -len(suffix)])
            return None if n is None else n * factor
    return resources._number(text)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789.eE+-_ KMGTPEikmnai", max_size=8), st.integers(), st.floats(),
                 st.booleans(), st.none()))
def test_memory_quantities_read_as_the_suffix_list_reads_them(value: Any) -> None:
    from mcp_kscan.engine.controls.resources import memory_bytes

    got, expected = memory_bytes(value), _memory_bytes_plainly(value)
    both_nan = got is not None and expected is not None and math.isnan(got) and math.isnan(expected)
    assert got == expected or both_nan, value


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6), max_size=4))
def test_a_paths_hash_from_its_directorys_state_equals_the_whole_paths(parts: list[str]) -> None:
    from mcp_kscan.engine.model import fnv32a

    path = "/".join(parts)
    h = 0x811C9DC5
    for byte in path.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    assert fnv32a(path) == h and fnv32a(path) == h  # computed, then remembered


def _tallied_plainly(selection: Any, verdicts: list[tuple[Any, Any]]) -> tuple[Any, ...]:
    """Each verdict through ``ControlTally.add``, each framework by its members' set."""
    from mcp_kscan.engine.scoring import ControlTally

    tallies = {c.id: ControlTally(c.score_factor) for c in selection.controls}
    members = {fw: {c.id for c in selection.controls if fw in c.frameworks} for fw in selection.frameworks}
    fw_counts = {fw: [0, 0] for fw in selection.frameworks}
    counts = [0, 0]
    for res, vs in verdicts:
        if not vs:
            continue
        failed = set()
        for c, f in vs:
            bad = f is not None and f.exception is None
            tallies[c.id].add(res.weight_tenths, bad, f is not None and not bad)
            if bad:
                failed.add(c.id)
        counts[1 if failed else 0] += 1
        for fw, ids in members.items():
            if failed & ids:
                fw_counts[fw][1] += 1
            elif any(c.id in ids for c, _ in vs):
                fw_counts[fw][0] += 1
    return tallies, fw_counts, counts, len(verdicts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([10, 22, 33, 1, 77]),
                          st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["passed", "failed", "excepted"])),
                                   max_size=12)), max_size=30),
       st.sampled_from([None, ["all"], ["nsa"], ["nsa", "mitre", "nsa"]]))
def test_tallies_equal_each_verdict_counted_plainly(resources: list[Any], frameworks: list[str] | None) -> None:
    from mcp_kscan.engine.report import Accumulator

    selection = resolve(frameworks, None)
    verdicts = []
    for weight, picks in resources:
        res = make_resource({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}, cluster=True)
        res.weight_tenths = weight
        vs = []
        for index, status in picks:
            f = None if status == "passed" else Finding(["x"])
            if status == "excepted":
                f.exception = {"name": "n", "source": "s", "reason": "r"}  # type: ignore[union-attr]
            vs.append((selection.controls[index % len(selection.controls)], f))
        verdicts.append((res, vs))
    acc = Accumulator(selection)
    for res, vs in verdicts:
        acc.add(res, vs)
    assert acc.state() == _tallied_plainly(selection, verdicts)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(alphabet="ABCxyz019+/=-_ü \n\x00", max_size=14),
                 st.binary(max_size=12).map(lambda b: __import__("base64").b64encode(b).decode())))
def test_configmap_values_decode_as_b64decode_validates(value: str) -> None:
    import base64
    import binascii

    try:
        expected: str | None = base64.b64decode(value, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        expected = None
    assert secrets._decoded(value) == expected


def test_a_control_of_several_rules_shares_their_runs_with_the_rules_own_controls() -> None:
    """``evaluate_one`` runs each rule of an ``AllRules`` check once per resource, shared with
    the control whose own check the rule is: the same verdicts as running each check alone,
    findings that are not the same objects, and one warning per control when a rule raises."""
    from mcp_kscan.engine.controls.base import AllRules
    from mcp_kscan.engine.loader import LoadError
    from mcp_kscan.engine.scan import evaluate_one

    calls: list[str] = []

    def rule(name: str, verdict: Any) -> Any:
        def check(res: Any, ctx: ScanContext) -> Any:
            calls.append(name)
            if isinstance(verdict, Exception):
                raise verdict
            return verdict() if callable(verdict) else verdict
        return check

    template = resolve(None, None).controls[0]

    def control(cid: str, check: Any) -> Any:
        return type(template)(**{**{f: getattr(template, f) for f in template.__dataclass_fields__},
                                 "id": cid, "check": check})

    res = make_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}, cluster=True)
    for verdicts in ((lambda: Finding(["a"], [], "m1"), PASSED), (lambda: Finding(["a"]), lambda: Finding(["b"], [("c", "d")])),
                     (PASSED, None), (KeyError("x"), PASSED)):
        r1, r2 = rule("r1", verdicts[0]), rule("r2", verdicts[1])
        both = AllRules((("one", r1), ("two", r2)))
        controls = [control("A", r1), control("B", both), control("C", r2)]
        calls.clear()
        problems: list[LoadError] = []
        got = evaluate_one(res, ScanContext(), {"Namespace": controls}, problems)
        assert sorted(calls) == ["r1", "r2"][:len(calls)] and len(calls) == len(set(calls)), calls
        expected = []
        for c in controls:
            try:
                v = c.check(res, ScanContext())
            except KeyError:
                continue
            if v is not None:
                expected.append((c.id, None if v is PASSED else (v.failed_paths, v.fix_paths, v.message)))
        assert [(c.id, None if f is None else (f.failed_paths, f.fix_paths, f.message)) for c, f in got] == expected
        findings = [f for _, f in got if f is not None]
        assert len({id(f) for f in findings}) == len(findings)
        if isinstance(verdicts[0], Exception):
            assert [p.message.split(" could not")[0] for p in problems] == ["control A", "control B"]


def test_only_checks_that_several_controls_run_go_through_the_shared_table() -> None:
    """``evaluate_one``'s plan: a check run by several controls of a kind, itself or as a rule of
    an ``AllRules`` (C-0211's rules include C-0013's check), is shared; a check run once is a
    plain call, and so is a rule only its ``AllRules`` runs; a kind's plan is worked out once per list."""
    from mcp_kscan.engine.parallel import _controls_by_kind
    from mcp_kscan.engine.scan import _steps

    by_kind = _controls_by_kind(resolve(["all"], None))
    ctx = ScanContext()
    steps = _steps(by_kind["Deployment"], ctx)
    assert _steps(by_kind["Deployment"], ctx) is steps
    assert _steps(by_kind["Deployment"], ScanContext()) is not steps  # another scan plans again
    shared = {c.id: flag for c, _, flag, _ in steps}
    assert shared["C-0012"] and shared["C-0259"] and shared["C-0211"] and shared["C-0013"] and shared["C-0057"]
    assert not shared["C-0075"]

    def runs(check: Any) -> int:
        return sum(1 for other in by_kind["Deployment"] for r in (other.check, *getattr(other.check, "rules", ()))
                   if (r[1] if isinstance(r, tuple) else r) is check)

    for c, check, flag, rules in steps:
        assert flag == (runs(check) > 1 or hasattr(check, "rules")), c.id
        assert [rule for rule, _ in rules] == [rule for _, rule in getattr(check, "rules", ())], c.id
        for rule, rule_shared in rules:
            assert rule_shared == (runs(rule) > 1), (c.id, rule)
    rules_211 = dict(next(rules for c, _, _, rules in steps if c.id == "C-0211"))
    assert sum(rules_211.values()) == 4 and not all(rules_211.values())  # C-0013, C-0016, C-0017, C-0057's checks
