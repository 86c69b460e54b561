"""JSON Patches from Kubescape's paths: add the missing branch, replace, remove, never clobber."""

from __future__ import annotations

import pytest

from mcp_kscan.fixes.patch import Edit, PatchError, apply_patch, build_patch, pointer, typed_value


def test_values_are_typed_except_labels() -> None:
    assert typed_value("spec.containers[0].securityContext.privileged", "false") is False
    assert typed_value("spec.securityContext.runAsGroup", "1000") == 1000
    assert typed_value("metadata.labels[app]", "true") == "true"
    assert typed_value("spec.containers[0].imagePullPolicy", "Always") == "Always"


def test_missing_parents_become_one_add_and_existing_fields_a_replace() -> None:
    obj = {"spec": {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}}
    patch = build_patch(obj, [
        Edit("set", "spec.containers[0].securityContext.privileged", False),
        Edit("set", "spec.containers[0].securityContext.seccompProfile.type", "RuntimeDefault"),
        Edit("set", "metadata.labels[app.kubernetes.io/name]", "web"),
    ])
    assert patch == [
        {"op": "replace", "path": "/spec/containers/0/securityContext/privileged", "value": False},
        {"op": "add", "path": "/spec/containers/0/securityContext/seccompProfile", "value": {"type": "RuntimeDefault"}},
        {"op": "add", "path": "/metadata", "value": {"labels": {"app.kubernetes.io/name": "web"}}},
    ]
    assert obj["spec"]["containers"][0]["securityContext"] == {"privileged": True}  # untouched
    patched = apply_patch({**obj, "spec": {"containers": [dict(obj["spec"]["containers"][0])]}}, patch)
    assert patched["metadata"]["labels"] == {"app.kubernetes.io/name": "web"}


def test_list_items_are_appended_not_overwritten_and_deletes_go_deepest_first() -> None:
    obj = {"c": {"capabilities": {"drop": ["ALL"], "add": ["A", "B", "C"]}}, "volumes": [{"n": 0}, {"n": 1}]}
    patch = build_patch(obj, [
        Edit("set", "c.capabilities.drop[0]", "NET_RAW"),
        Edit("set", "c.capabilities.drop[1]", "ALL"),  # already there: no operation
        Edit("delete", "c.capabilities.add[0]"),
        Edit("delete", "c.capabilities.add[2]"),
        Edit("delete", "volumes[0]"),
        Edit("delete", "hostPID"),  # absent: nothing to remove
    ])
    assert patch[0] == {"op": "add", "path": "/c/capabilities/drop/-", "value": "NET_RAW"}
    assert [op["path"] for op in patch[1:]] == ["/volumes/0", "/c/capabilities/add/2", "/c/capabilities/add/0"]
    apply_patch(obj, patch)
    assert obj == {"c": {"capabilities": {"drop": ["ALL", "NET_RAW"], "add": ["B"]}}, "volumes": [{"n": 1}]}


def test_a_scalar_in_the_way_is_replaced_by_the_branch() -> None:
    obj = {"spec": {"securityContext": None}}
    patch = build_patch(obj, [Edit("set", "spec.securityContext.runAsNonRoot", True)])
    assert patch == [{"op": "replace", "path": "/spec/securityContext", "value": {"runAsNonRoot": True}}]


def test_pointer_escapes_and_bad_patches_fail_loudly() -> None:
    assert pointer(["metadata", "labels", "a/b~c"]) == "/metadata/labels/a~1b~0c"
    with pytest.raises(PatchError):
        apply_patch({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}])
    with pytest.raises(PatchError):
        apply_patch({"a": [1]}, [{"op": "remove", "path": "/a/3"}])
    with pytest.raises(PatchError):
        apply_patch({"a": 1}, [{"op": "copy", "path": "/a", "from": "/b"}])
