"""Kubeconfigs are configuration: a request can never run one's exec plugin or read its token file.

The attack (issue 20, holes 1 and 2): a kubeconfig inside the allowed roots (any scanned
repository can ship one) whose user is an ``exec`` credential plugin writing a canary file, or
whose ``tokenFile`` is ``/etc/passwd``. Every front end that used to accept a kubeconfig path is
tried: MCP in-process (the server stdio serves) and over streamable HTTP, REST ``/v1/scan`` and
``/api/tools/kube-bench``. The canary must never appear; the request is refused naming the field.
The operator's own kubeconfig with a ``tokenFile`` of ``/etc/passwd`` must not leak the file into
errors, the database or the log either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from conftest import FakeBin
from fakes.kube_api import FakeKubeAPI, node_object
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from servers import HttpServer, start_http_server, stop_server

import mcp_kscan.settings
from mcp_kscan.server import build_server

from .conftest import make_fake_bin

TOKEN = "tok-kubeconfig-tests-7c1d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWD_MARK = "root:"


def exec_plugin_kubeconfig(path: Path, canary: Path, server: str = "http://127.0.0.1:9") -> Path:
    """A kubeconfig whose user is an exec credential plugin that writes ``canary``."""
    script = f"id > {canary}; echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\"," \
             f"\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"x\"}}}}'"
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "evil",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "/bin/sh", "args": ["-c", script],
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "evil", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(json.dumps(doc))
    return path


def token_file_kubeconfig(path: Path, server: str, token_file: str = "/etc/passwd") -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "reader",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"tokenFile": token_file}}],
        "contexts": [{"name": "reader", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(json.dumps(doc))
    return path


@dataclass
class KcEnv:
    fake: FakeBin
    root: Path
    canary: Path
    evil: Path
    """The exec-plugin kubeconfig, inside the allowed root."""
    passwd: Path
    """The tokenFile=/etc/passwd kubeconfig, inside the allowed root."""
    env: dict[str, str]
    tmp: Path


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def kc_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KcEnv]:
    tmp = tmp_path_factory.mktemp("kc")
    fake = make_fake_bin(tmp)
    root = tmp / "repo"
    root.mkdir()
    (root / "deploy.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    canary = tmp / "canary-exec-plugin-ran"
    evil = exec_plugin_kubeconfig(root / "kubeconfig", canary)
    passwd = token_file_kubeconfig(root / "kubeconfig-passwd", "http://127.0.0.1:9")
    env = {
        **fake.env,
        "MCP_KSCAN_ALLOWED_ROOTS": str(root),
        "MCP_KSCAN_TOKEN": TOKEN,
        "HOME": str(tmp / "home"),  # no ~/.kube/config from the machine running the tests
    }
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    mp.delenv("KUBECONFIG", raising=False)
    mp.delenv("MCP_KSCAN_KUBE_CONTEXT", raising=False)
    mcp_kscan.settings.configure(None)
    try:
        yield KcEnv(fake, root, canary, evil, passwd, env, tmp)
    finally:
        mp.undo()
        mcp_kscan.settings.configure(None)


# Each (tool, arguments) a request could once use to hand the server a kubeconfig.
def tool_calls(kubeconfig: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("kubescape_scan", {"engine": "builtin", "kubeconfig": kubeconfig, "wait_seconds": 20}),
        ("kubescape_scan", {"engine": "kubescape", "kubeconfig": kubeconfig, "wait_seconds": 20}),
        ("kube_bench", {"executor": "job", "kubeconfig": kubeconfig, "wait_seconds": 20}),
    ]


def rest_calls(kubeconfig: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/v1/scan?wait=true", {"engine": "builtin", "kubeconfig": kubeconfig}),
        ("/v1/scan?wait=true", {"engine": "kubescape", "kubeconfig": kubeconfig}),
        ("/v1/scan?wait=true", {"engine": "builtin", "kubeConfig": kubeconfig}),
        ("/api/tools/kube-bench", {"executor": "job", "kubeconfig": kubeconfig}),
    ]


def assert_refused(env: KcEnv, text: str, field: str = "kubeconfig") -> None:
    assert field.lower() in text.lower(), f"the error does not name the field: {text[:300]}"
    assert not env.canary.exists(), "the request's kubeconfig ran its exec plugin"
    assert PASSWD_MARK not in text
    assert env.fake.starts() == [], "a scanner was started with the request's kubeconfig"


async def _call_all(client: Client, env: KcEnv) -> None:
    for kubeconfig in (str(env.evil), str(env.passwd)):
        for tool, args in tool_calls(kubeconfig):
            result = await client.call_tool(tool, args)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert result.is_error, f"{tool} accepted a kubeconfig: {text[:300]}"
            assert_refused(env, text)


@pytest.mark.anyio
async def test_mcp_in_process_cannot_name_a_kubeconfig(kc_env: KcEnv) -> None:
    """MCP over stdio too: ``mcp-kscan`` serves this same ``build_server()`` on stdin/stdout
    (server.run_stdio), with the settings read from the same environment; a stdio process (~1.5
    CPU s to start) would send the same calls to the same tools."""
    async with Client(build_server()) as client:
        tools = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        for name in ("kubescape_scan", "kube_bench"):
            assert "kubeconfig" not in tools[name]["properties"], f"{name} still offers a kubeconfig field"
        await _call_all(client, kc_env)


@pytest.fixture(scope="module")
def server(kc_env: KcEnv) -> Iterator[HttpServer]:
    """The module's HTTP server. Its operator kubeconfig (KUBECONFIG, outside the allowed root)
    has tokenFile=/etc/passwd and points at a fake API: what the last test reads; the others
    name kubeconfigs in requests, which are refused before any is read."""
    with FakeKubeAPI(nodes=[node_object("worker-1")]) as api:
        kc = token_file_kubeconfig(kc_env.tmp / "operator-kubeconfig", api.url)
        srv = start_http_server({**kc_env.env, "KUBECONFIG": str(kc)}, kc_env.tmp)
        try:
            yield srv
        finally:
            stop_server(srv)


@pytest.fixture(scope="module")
async def mcp_http(server: HttpServer) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=AUTH, timeout=60) as hc:
        async with Client(streamable_http_client(server.base_url + "/mcp", http_client=hc)) as c:
            yield c


@pytest.mark.anyio
async def test_mcp_http_cannot_name_a_kubeconfig(mcp_http: Client, kc_env: KcEnv) -> None:
    await _call_all(mcp_http, kc_env)


def test_rest_cannot_name_a_kubeconfig(server: HttpServer, kc_env: KcEnv) -> None:
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as http:
        for kubeconfig in (str(kc_env.evil), str(kc_env.passwd)):
            for route, body in rest_calls(kubeconfig):
                r = http.post(route, json=body)
                assert r.status_code == 400, f"{route} {body}: {r.status_code} {r.text[:300]}"
                field = "kubeConfig" if "kubeConfig" in body else "kubeconfig"
                assert_refused(kc_env, r.text, field)
    assert PASSWD_MARK not in server.log() and not kc_env.canary.exists()


def test_cli_kubeconfig_is_the_terminal_users_setting_not_a_scanned_file(kc_env: KcEnv, tmp_path: Path) -> None:
    """The CLI's ``--kubeconfig`` is the person at the terminal choosing, like ``KUBECONFIG=``; a
    kubeconfig lying in the scanned tree is never picked up by a manifest scan."""
    from mcp_kscan import cli

    try:
        code = cli.main(["scan", str(kc_env.root), "--engine", "builtin", "--format", "json"])
    finally:
        mcp_kscan.settings.configure(None)
    assert code == 0
    assert not kc_env.canary.exists()


# --------------------------------------------------------------------------- the operator's own file


def test_token_file_contents_never_reach_errors_db_or_log(server: HttpServer, kc_env: KcEnv) -> None:
    """The operator's kubeconfig (the module server's) has tokenFile=/etc/passwd."""
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as http:
        r = http.post("/v1/scan?wait=true&keep=true", json={"engine": "builtin"})
        assert r.status_code == 500, r.text[:300]  # the scan failed: the token is not a valid header
        assert PASSWD_MARK not in r.text
        r = http.post("/api/tools/kube-bench", json={"executor": "job", "timeout_seconds": 30})
        assert r.status_code == 200, r.text[:300]
        answer = r.json()
        assert answer["success"] is False and PASSWD_MARK not in r.text
    db = b"".join(p.read_bytes() for p in kc_env.fake.data_dir.glob("scans.db*"))
    assert PASSWD_MARK.encode() not in db
    assert PASSWD_MARK not in server.log()
