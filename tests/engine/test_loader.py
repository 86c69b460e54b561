"""The loader reads YAML as Kubernetes does (YAML 1.1) and never lets one bad document stop a scan."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import yaml

from mcp_kscan.engine import loader
from mcp_kscan.engine.loader import KubeYAMLLoader, LoadError, iter_documents, load_paths, parse_text


def _one(text: str) -> dict:
    objs, errs = parse_text(text, "t.yaml")
    assert not errs
    assert len(objs) == 1
    return objs[0]


@pytest.mark.parametrize("word", ["yes", "Yes", "YES", "on", "On", "true", "True", "ON", "TRUE"])
def test_yaml_11_booleans_are_true(word: str) -> None:
    obj = _one(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostNetwork: {word}\n")
    assert obj["spec"]["hostNetwork"] is True


@pytest.mark.parametrize("word", ["no", "off", "Off", "false", "NO"])
def test_yaml_11_booleans_are_false(word: str) -> None:
    obj = _one(f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  hostPID: {word}\n")
    assert obj["spec"]["hostPID"] is False


def test_octal_default_mode() -> None:
    obj = _one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  volumes:\n  - name: v\n    secret: {defaultMode: 0755}\n")
    assert obj["spec"]["volumes"][0]["secret"]["defaultMode"] == 493


def test_timestamps_stay_strings() -> None:
    obj = _one("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  creationTimestamp: 2024-01-02T03:04:05Z\ndata:\n  day: 2024-01-02\n")
    assert obj["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"
    assert obj["data"]["day"] == "2024-01-02"


def test_our_loader_does_not_change_pyyaml_defaults() -> None:
    import datetime

    assert isinstance(yaml.safe_load("d: 2024-01-02")["d"], datetime.date)
    assert yaml.safe_load("a: y")["a"] == "y"


def test_single_letters_stay_strings() -> None:
    obj = _one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y, namespace: n}\n")
    assert obj["metadata"] == {"name": "y", "namespace": "n"}


def test_quoted_words_stay_strings() -> None:
    obj = _one('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: "yes", b: "0755", c: "y"}\n')
    assert obj["data"] == {"a": "yes", "b": "0755", "c": "y"}


def test_uses_libyaml_when_available() -> None:
    assert loader.USING_LIBYAML == bool(getattr(yaml, "__with_libyaml__", False))
    assert issubclass(KubeYAMLLoader, yaml.CSafeLoader if loader.USING_LIBYAML else yaml.SafeLoader)


def test_privileged_yes_is_caught_by_a_scan(tmp_path: Path) -> None:
    from mcp_kscan.engine.scan import scan_paths

    (tmp_path / "p.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: x}\nspec:\n  containers:\n"
        "  - name: c\n    image: nginx:1.25\n    securityContext:\n      privileged: yes\n"
    )
    report = scan_paths([tmp_path], controls=["C-0057"])
    assert report["summaryDetails"]["controls"]["C-0057"]["status"] == "failed"


def test_multi_document_and_lists(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c1}\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c2}\n"
    )
    result = load_paths([tmp_path])
    assert [d.obj["metadata"]["name"] for d in result.docs] == ["a", "c1", "c2"]
    assert [d.relative_path for d in result.docs] == ["a.yaml"] * 3


def test_typed_lists_fill_in_kind(tmp_path: Path) -> None:
    objs, errs = parse_text("apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: p}\n  spec: {}\n", "x")
    assert not errs and objs[0]["kind"] == "Pod" and objs[0]["apiVersion"] == "v1"


def test_broken_document_is_reported_and_the_rest_scanned(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: third}\n"
    )
    (tmp_path / "good.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}}')
    result = load_paths([tmp_path])
    names = sorted(d.obj["metadata"]["name"] for d in result.docs)
    assert names == ["first", "j", "third"]
    assert len(result.errors) == 1 and result.errors[0].path == "bad.yaml"
    assert "line" in result.errors[0].message


def test_recursive_and_suffixes(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ("sub/a.yml", "sub/deeper/b.yaml", "c.json"):
        (tmp_path / name).write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}')
    (tmp_path / "notes.txt").write_text("kind: Pod")
    (tmp_path / "Chart.yaml").write_text("name: not-an-object\n")
    result = load_paths([tmp_path])
    assert sorted(d.relative_path for d in result.docs) == ["c.json", "sub/a.yml", "sub/deeper/b.yaml"]


def test_missing_path_is_an_error() -> None:
    errors: list[LoadError] = []
    assert list(iter_documents(["/nonexistent/x.yaml"], errors)) == []
    assert "no such file" in errors[0].message


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("apiVersion: v1\nkind: Namespace\nmetadata: {name: s}\n"))
    errors: list[LoadError] = []
    docs = list(iter_documents(["-"], errors))
    assert docs[0].obj["metadata"]["name"] == "s" and docs[0].relative_path == "<stdin>"


def test_helm_templates_are_never_parsed_as_manifests(tmp_path: Path) -> None:
    """A chart is rendered whole or reported (engine/render.py); without helm it is reported."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "templates" / "d.yaml").write_text("kind: Pod\nmetadata:\n  name: {{ .Release.Name }}\n")
    result = load_paths([tmp_path])
    assert result.docs == []
    assert [str(e) for e in result.errors] == [
        "Helm chart chart not rendered: helm was not found (install it, or set MCP_KSCAN_HELM_PATH); "
        "its files were not scanned"]
