"""Controls whose regolibrary rules ship no test case: small cases written from the rules."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_kscan.engine.context import ScanContext
from mcp_kscan.engine.controls.images import normalized_name
from mcp_kscan.engine.frameworks import CONTROLS_BY_ID
from mcp_kscan.engine.inputs import merge_inputs
from mcp_kscan.engine.model import Finding, make_resource


def deployment(image: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image, **container}]}}}}


def failed(control: str, obj: dict[str, Any], inputs: dict[str, list[str]] | None = None) -> bool:
    res = make_resource(obj)
    ctx = ScanContext.build([res], merge_inputs({"postureControlInputs": inputs}) if inputs else None)
    return isinstance(CONTROLS_BY_ID[control].check(res, ctx), Finding)


@pytest.mark.parametrize(("image", "name"), [
    ("nginx", "docker.io/library/nginx"), ("nginx:1.25", "docker.io/library/nginx"),
    ("bitnami/redis:7", "docker.io/bitnami/redis"), ("quay.io/x/y@sha256:abc", "quay.io/x/y"),
    ("localhost:5000/app:1", "localhost:5000/app"), ("localhost/app", "localhost/app"),
])
def test_normalized_image_names(image: str, name: str) -> None:
    assert normalized_name(image) == name


def test_c0001_forbidden_registries_come_from_the_inputs() -> None:
    assert not failed("C-0001", deployment("quay.io/team/app:1"))  # the default lists are empty
    assert failed("C-0001", deployment("quay.io/team/app:1"), {"untrustedRegistries": ["quay.io"]})
    assert failed("C-0001", deployment("nginx:1"), {"publicRegistries": ["docker.io/"]})
    assert not failed("C-0001", deployment("gcr.io/x:1"), {"publicRegistries": ["docker.io/"]})


def test_c0009_c0018_resource_limits_and_readiness() -> None:
    assert failed("C-0009", deployment("x:1", resources={"limits": {"cpu": "1"}}))
    assert not failed("C-0009", deployment("x:1", resources={"limits": {"cpu": "1", "memory": "1Gi"}}))
    assert failed("C-0018", deployment("x:1"))
    assert not failed("C-0018", deployment("x:1", readinessProbe={"tcpSocket": {"port": 80}}))


def test_c0073_naked_pods() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}}
    assert failed("C-0073", pod)
    pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "j"}]
    assert not failed("C-0073", pod)


@pytest.mark.parametrize(("control", "image", "vulnerable"), [
    ("C-0081", "quay.io/argoproj/argocd:v2.1.8", True), ("C-0081", "quay.io/argoproj/argocd:v2.1.9", False),
    ("C-0081", "quay.io/argoproj/argocd:v1.8.7", True), ("C-0081", "quay.io/argoproj/argocd:v2.2.4", False),
    ("C-0090", "grafana/grafana:9.2.3", True), ("C-0090", "grafana/grafana:9.2.4", False),
    ("C-0090", "grafana/grafana:9.2.1-ubuntu", True),
    ("C-0091", "ghcr.io/kyverno/kyverno:v1.8.3", True), ("C-0091", "ghcr.io/kyverno/kyverno:v1.8.5", False),
    ("C-0091", "ghcr.io/kyverno/kyverno:1.8.3", False),  # the rule reads the version after ":v"
])
def test_cve_images(control: str, image: str, vulnerable: bool) -> None:
    assert failed(control, deployment(image)) is vulnerable
