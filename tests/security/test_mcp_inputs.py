"""Every field of every MCP tool × the hostile corpus, through the SDK's in-process Client.

Each case must end in a tool error that names the field, start no scanner, write no file and
leak nothing (server paths, secrets, where a symlink points). One test per tool runs its cases
(checks.CaseFailures) and names every case that failed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from mcp_kscan.server import build_server

from .checks import CaseFailures, assert_rejected_cleanly
from .conftest import SecEnv
from .corpus import Case, fill, tool_cases

pytestmark = pytest.mark.anyio


def _schemas() -> dict[str, dict[str, Any]]:
    return {t.name: t.parameters for t in build_server()._tool_manager.list_tools()}


SCHEMAS = _schemas()
CASES = tool_cases(SCHEMAS)
TOOLS = sorted(SCHEMAS)


def base_args(tool: str) -> dict[str, Any]:
    """Arguments that make a valid call on their own, so only the attacked field can fail."""
    props = SCHEMAS[tool].get("properties", {})
    args: dict[str, Any] = {}
    if "wait_seconds" in props:
        args["wait_seconds"] = 0
    if "executor" in props:
        args["executor"] = "local"
    if "engine" in props:
        args["engine"] = "kubescape"
    required = SCHEMAS[tool].get("required", [])
    if "scan_id" in required:
        args["scan_id"] = "00000000-0000-0000-0000-000000000000"
    for name in ("base_scan_id", "head_scan_id"):
        if name in required:
            args[name] = "00000000-0000-0000-0000-000000000000"
    if "cve_id" in required:
        args["cve_id"] = "CVE-2023-39325"
    if "workload" in required:
        args["workload"] = "Deployment/default/web"
    if "finding_ids" in required:
        args["finding_ids"] = ["f-0000000000000000"]
    return args


@pytest.fixture(scope="module")
async def client(sec_env: SecEnv) -> AsyncIterator[Client]:
    async with Client(build_server()) as c:
        yield c


def test_corpus_size() -> None:
    assert len(CASES) >= 200
    assert {c.tool for c in CASES} == set(SCHEMAS)


async def test_base_args_start_a_scan(client: Client, sec_env: SecEnv) -> None:
    """The positive control: the same calls without an attack do start the fake scanners."""
    before = len(sec_env.fake.starts())
    for tool in ("kube_bench", "kubescape_scan"):
        result = await client.call_tool(tool, {**base_args(tool), "wait_seconds": 30})
        assert not result.is_error, result.content
        assert result.structured_content["status"] == "succeeded"
    assert len(sec_env.fake.starts()) == before + 2


async def attack(client: Client, sec_env: SecEnv, case: Case) -> None:
    args = {**base_args(case.tool), case.field: fill(case.value, str(sec_env.root), str(sec_env.outside))}
    starts, files = len(sec_env.fake.starts()), sec_env.files()
    result = await client.call_tool(case.tool, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, f"accepted: {text[:300]}"
    assert_rejected_cleanly(sec_env, text, case.field, starts, files)


@pytest.mark.parametrize("tool", TOOLS)
async def test_hostile_arguments(client: Client, sec_env: SecEnv, tool: str) -> None:
    failures = CaseFailures()
    for case in CASES:
        if case.tool == tool:
            with failures.case(case.id):
                await attack(client, sec_env, case)
    failures.assert_none()
