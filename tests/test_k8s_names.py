"""One naming rule for namespaces (DNS-1123 label, 63 characters) and node names (DNS-1123
subdomain, 253), whichever front end or request model asks."""

from __future__ import annotations

import pytest
from mcp import Client
from pydantic import ValidationError

from mcp_kscan.k8s_names import is_dns_subdomain, is_namespace
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.server import build_server

LONGEST = "a" * 63
TOO_LONG = "a" * 64


def test_namespace_is_a_dns_label() -> None:
    assert is_namespace("kube-system") and is_namespace("a") and is_namespace(LONGEST)
    for bad in (TOO_LONG, "Kube-System", "-a", "a-", "a.b", "", "ns\n", "ñ"):
        assert not is_namespace(bad), bad


def test_node_name_is_a_dns_subdomain() -> None:
    assert is_dns_subdomain("ip-10-0-0-1.eu-west-1.compute.internal")
    assert is_dns_subdomain(".".join(["a" * 63] * 3) + "." + "b" * 61)  # 253 characters
    assert not is_dns_subdomain(".".join(["a" * 63] * 4))  # 255
    assert not is_dns_subdomain("Node_1")


def test_request_models_agree_on_namespaces() -> None:
    assert KubescapeRequest(exclude_namespaces=[LONGEST]).exclude_namespaces == [LONGEST]
    assert KubeBenchRequest(executor="job", namespace=LONGEST).namespace == LONGEST
    with pytest.raises(ValidationError, match="namespace"):
        KubescapeRequest(include_namespaces=[TOO_LONG])
    with pytest.raises(ValidationError, match="namespace"):
        KubeBenchRequest(executor="job", namespace=TOO_LONG)


@pytest.mark.anyio
async def test_results_filter_refuses_a_namespace_that_cannot_exist(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        namespace = tools["get_results"].input_schema["properties"]["namespace"]
        # The published schema leaves string lengths to the argument model (tools/schemas.py), which refuses.
        assert "string" in namespace["type"]
        refused = await client.call_tool("get_results", {"view": "findings", "namespace": TOO_LONG})
        assert refused.is_error and "namespace" in refused.content[0].text
