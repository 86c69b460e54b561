"""A fixed manifest keeps every comment, key order, quoting and indentation: only the fix changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mcp_kscan.fixes.yamltext import EditError, document_spans, patch_document, unified_diff

CORPUS = Path(__file__).resolve().parent / "corpus"
REPO = Path(__file__).resolve().parents[2]


def _changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = unified_diff("f.yaml", before, after).splitlines()
    removed = [line[1:] for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff if line.startswith("+") and not line.startswith("+++")]
    return removed, added


@pytest.mark.parametrize("name", ["api.yaml", "batch.yaml", "misc.yaml"])
def test_an_empty_patch_changes_nothing(name: str) -> None:
    text = (CORPUS / name).read_text()
    for doc in range(len(document_spans(text))):
        assert patch_document(text, doc, []) == text


def test_four_space_indentation_comments_and_quotes_survive() -> None:
    text = (CORPUS / "api.yaml").read_text()
    patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/privileged", "value": False},
        {"op": "remove", "path": "/spec/template/spec/hostNetwork"},
        {"op": "add", "path": "/spec/template/spec/containers/1/securityContext", "value": {"runAsNonRoot": True}},
    ]
    after = patch_document(text, 0, patch)
    removed, added = _changed_lines(text, after)
    assert removed == ["            hostNetwork: true",
                       "                        privileged: true    # TODO remove"]
    assert added == ["                        privileged: false   # TODO remove",
                     "                    securityContext:",
                     "                        runAsNonRoot: true"]
    for kept in ('namespace: "payments"', "tier: 'backend'", "# host namespaces: left from a debugging session",
                 "matchLabels: {app: payments-api}", 'add: ["SYS_ADMIN", "NET_BIND_SERVICE"]'):
        assert kept in after
    assert yaml.safe_load(after)["spec"]["template"]["spec"]["containers"][1]["securityContext"] == {"runAsNonRoot": True}


def test_only_the_fixed_document_of_a_stream_changes() -> None:
    text = (CORPUS / "batch.yaml").read_text()
    spans = document_spans(text)
    assert len(spans) == 2  # the leading comment opens no document
    after = patch_document(text, 1, [{"op": "remove", "path": "/spec/template/spec/hostPID"},
                                     {"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/privileged",
                                      "value": False}])
    new_spans = document_spans(after)
    assert after[:new_spans[1].start] == text[:spans[1].start]  # document 0 and the head, byte for byte
    removed, added = _changed_lines(text, after)
    assert removed == ["      hostPID: on", "        securityContext: {runAsNonRoot: false, privileged: yes}"]
    assert added == ["        securityContext: {runAsNonRoot: false, privileged: false}"]
    assert "# a one-off migration" in after and "metadata: {name: migrate-2026-11, namespace: payments}" in after


def test_items_of_a_list_and_flow_style_lines() -> None:
    text = (CORPUS / "misc.yaml").read_text()
    after = patch_document(text, 1, [{"op": "remove", "path": "/items/0/spec/template/spec/hostIPC"}])
    assert _changed_lines(text, after) == (["          hostIPC: true"], [])
    after = patch_document(text, 0, [{"op": "replace", "path": "/spec/containers/0/securityContext/privileged",
                                      "value": False}])
    removed, added = _changed_lines(text, after)
    assert len(removed) == len(added) == 1 and added[0] == removed[0].replace("privileged: true", "privileged: false")


def test_json_manifests_stay_json() -> None:
    text = (CORPUS / "daemonset.json").read_text()
    after = patch_document(text, 0, [{"op": "remove", "path": "/spec/template/spec/hostPID"}])
    data = json.loads(after)
    assert "hostPID" not in data["spec"]["template"]["spec"]
    assert list(data) == ["apiVersion", "kind", "metadata", "spec"]
    assert after.startswith('{\n  "apiVersion": "apps/v1",')


def test_the_examples_round_trip_exactly() -> None:
    for path in (REPO / "examples").glob("*.yaml"):
        text = path.read_text()
        for doc in range(len(document_spans(text))):
            assert patch_document(text, doc, []) == text, (path.name, doc)


def test_errors_name_the_problem() -> None:
    with pytest.raises(EditError, match="no document 3"):
        patch_document("a: 1\n", 3, [])
    with pytest.raises(EditError):
        patch_document("a: 1\n", 0, [{"op": "replace", "path": "/b", "value": 1}])


def test_what_ruamel_would_rewrite_elsewhere_stays_as_written() -> None:
    """ruamel writes ``[{port: 8080}]`` back as ``[port: 8080]``: lines the fix does not touch keep their text."""
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  containers:\n"
            "    - name: c\n      ports: [{containerPort: 8080}]\n\n\n")
    after = patch_document(text, 0, [{"op": "remove", "path": "/spec/hostNetwork"}])
    assert after == text.replace("  hostNetwork: true\n", "")


def test_a_last_line_without_newline_stays_so() -> None:
    text = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx:1.25"
    after = patch_document(text, 0, [{"op": "add", "path": "/spec/automountServiceAccountToken", "value": False}])
    assert after == text + "\n  automountServiceAccountToken: false"
    assert patch_document(text, 0, [{"op": "remove", "path": "/spec/containers/0/image"}]) == \
        "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c"
