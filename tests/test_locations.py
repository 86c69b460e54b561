"""Exact locations: the document and the line of the failing field, found in the file itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_kscan.locations import ManifestCache, finding_id, locate, parse_field_path

CORPUS = Path(__file__).resolve().parent / "corpus"


def _line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``text``."""
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if text in line]
    return hits[occurrence - 1]


def test_failing_field_line_in_a_commented_file() -> None:
    pod = CORPUS / "badpods/everything-allowed/pod.yaml"
    loc = locate(str(pod), [], "Pod", "badpods", "everything-allowed-exec-pod",
                 ["spec.containers[0].securityContext.privileged"])
    assert (loc.file, loc.document, loc.line) == (str(pod), 0, _line_of(pod, "privileged: true"))
    host_pid = locate(str(pod), [], "Pod", "badpods", "everything-allowed-exec-pod", ["spec.hostPID"])
    assert host_pid.line == _line_of(pod, "hostPID: true")


def test_second_document_and_leading_separator() -> None:
    web = CORPUS / "apps/shop/web.yaml"
    loc = locate(str(web), [], "Deployment", "shop", "web", ["spec.template.spec.containers[0].env[0].value"])
    assert loc.document == 1 and loc.line == _line_of(web, "value: hunter2")
    dep = CORPUS / "badpods/priv-and-hostpid/deployment.yaml"  # starts with "---"
    loc = locate(str(dep), [], "Deployment", "badpods", "priv-and-hostpid", ["spec.template.spec.hostPID"])
    assert loc.document == 0 and loc.line == _line_of(dep, "hostPID: true")


def test_missing_field_points_at_its_parent() -> None:
    """A limit that must be added goes where its parent is: here the container itself."""
    web = CORPUS / "apps/shop/web.yaml"
    loc = locate(str(web), [], "Deployment", "shop", "web", ["spec.template.spec.containers[0].resources.limits.cpu"])
    assert loc.line == _line_of(web, "- name: web")
    mail = CORPUS / "apps/shop/workers.yaml"
    loc = locate(str(mail), [], "Deployment", "shop", "mail-worker",
                 ["spec.template.spec.containers[0].resources.limits.memory"])
    assert loc.line == _line_of(mail, "resources:", 1)


def test_items_of_a_list_and_relative_files() -> None:
    workers = CORPUS / "apps/shop/workers.yaml"
    loc = locate("apps/shop/workers.yaml", [str(CORPUS)], "Deployment", "shop", "mail-worker", [])
    assert loc.file == "apps/shop/workers.yaml"  # as the report said it, never rewritten
    assert loc.document == 0 and loc.line == _line_of(workers, "- apiVersion: apps/v1", 2)


def test_label_keys_with_dots_and_quoted_keys() -> None:
    exporter = CORPUS / "apps/monitoring/node-exporter.yaml"
    for path in ("metadata.labels.app.kubernetes.io/name", 'metadata.labels["app.kubernetes.io/name"]'):
        loc = locate(str(exporter), [], "DaemonSet", "monitoring", "node-exporter", [path])
        assert loc.line == _line_of(exporter, "app.kubernetes.io/name: node-exporter"), path
    assert parse_field_path('a.b[2]["x.y"].c') == ["a", "b", 2, "x.y", "c"]


def test_unparseable_or_missing_file_keeps_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\nspec:\n  hostPID: true\n")
    loc = locate(str(broken), [], "Pod", "", "b", ["spec.hostPID"])
    assert (loc.document, loc.line) == (1, 10)  # the good document is still found, at its line in the file
    gone = locate(str(tmp_path / "gone.yaml"), [], "Pod", "", "a", ["spec"])
    assert gone.file == str(tmp_path / "gone.yaml") and gone.line is None and gone.document is None
    assert locate(None, [], "Pod", "ns", "a", []).file is None


def test_cache_notices_an_edited_file(tmp_path: Path) -> None:
    f = tmp_path / "pod.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  hostPID: true\n")
    cache = ManifestCache(max_files=2)
    assert locate(str(f), [], "Pod", "", "a", ["spec.hostPID"], cache).line == 5
    f.write_text("# a comment\n" + f.read_text() + "# and more\n")
    assert locate(str(f), [], "Pod", "", "a", ["spec.hostPID"], cache).line == 6


@pytest.mark.parametrize("field", ["control", "kind", "namespace", "name", "file", "document"])
def test_finding_id_is_stable_and_names_the_finding(field: str) -> None:
    base = dict(control_id="C-0057", kind="Pod", namespace="ns", name="a", file="/m/a.yaml", document=0)
    assert finding_id(**base) == finding_id(**base)  # type: ignore[arg-type]
    changed = dict(base)
    key = "control_id" if field == "control" else field
    changed[key] = 1 if field == "document" else "other"
    assert finding_id(**changed) != finding_id(**base)  # type: ignore[arg-type]
