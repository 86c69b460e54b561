"""Relative paths as an agent means them (issue 14): the client's MCP roots, never the server's "/"."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root

import mcp_kscan.settings
from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def roots_callback(*dirs: Path) -> Any:
    async def roots(_ctx: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=d.as_uri(), name=d.name) for d in dirs])

    return roots


async def _scan_relative(client: Client, path: str, **extra: Any) -> Any:
    return await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [path], "wait_seconds": 120, **extra})


async def test_relative_paths_resolve_against_client_roots(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The first root lacks "badpods": the root that holds it is the base.
    async with Client(build_server(), mode="legacy", list_roots_callback=roots_callback(tmp_path, CORPUS)) as client:
        result = await _scan_relative(client, "badpods")
        assert not result.is_error, result.content
        assert result.structured_content["request"]["paths"] == [str(CORPUS / "badpods")]
        missing = await _scan_relative(client, "no-such-dir")
    assert missing.is_error and "no such file or directory: 'no-such-dir'" in missing.content[0].text


async def test_client_roots_do_not_widen_the_allowed_roots(kscan_settings, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(tmp_path))
    mcp_kscan.settings.configure(None)
    async with Client(build_server(), mode="legacy", list_roots_callback=roots_callback(CORPUS)) as client:
        result = await _scan_relative(client, "badpods")
    assert result.is_error and "outside the allowed roots" in result.content[0].text


async def test_relative_paths_with_cwd_slash_are_refused(kscan_settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir("/")
    async with Client(build_server()) as client:
        for path in (".", "examples/"):
            result = await _scan_relative(client, path)
            text = result.content[0].text
            assert result.is_error and "pass an absolute path" in text and "no MCP roots" in text, path


async def test_relative_paths_use_a_real_working_directory(kscan_settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(CORPUS)
    async with Client(build_server()) as client:
        result = await _scan_relative(client, "apps")
        assert not result.is_error, result.content
        assert result.structured_content["request"]["paths"] == [str(CORPUS / "apps")]


async def test_controls_config_resolves_like_paths(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "controls.json").write_text('{"settings": {"postureControlInputs": {"sensitiveKeyNames": ["db_url"]}}}')
    async with Client(build_server(), mode="legacy", list_roots_callback=roots_callback(tmp_path)) as client:
        result = await client.call_tool("kubescape_scan", {
            "engine": "builtin", "paths": [str(CORPUS / "badpods")], "controls_config": "controls.json", "wait_seconds": 120})
    assert not result.is_error, result.content
    assert result.structured_content["request"]["controls_config"] == str(tmp_path / "controls.json")


@pytest.mark.parametrize("target", ["/", "/proc", "/sys/kernel", "/dev"])
async def test_root_and_system_trees_are_not_scan_targets(kscan_settings, target: str) -> None:  # type: ignore[no-untyped-def]
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    async with Client(build_server()) as client:
        result = await _scan_relative(client, target)
    assert result.is_error
    text = result.content[0].text
    assert "system tree" in text and "pass an absolute path" in text and "\n" not in text


async def test_a_root_of_slash_does_not_make_dot_the_filesystem(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server(), mode="legacy", list_roots_callback=roots_callback(Path("/"))) as client:
        result = await _scan_relative(client, ".")
    assert result.is_error and "system tree" in result.content[0].text
