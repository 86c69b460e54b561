"""A web page cannot drive the HTTP API (issue 20, hole 3).

What a page the user opens can send to a loopback server: a foreign ``Host`` (DNS rebinding), its
own ``Origin``, ``Sec-Fetch-Site: cross-site``, and a ``Content-Type: text/plain`` POST, which a
browser sends without a CORS preflight. Every route must refuse each of them before a scan can
start; health probes keep working; an allowed ``--allowed-host`` name works for every route.
Default set-up (loopback, no token), against a real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import LOOPBACK, HttpServer, start_http_server, stop_server

from conftest import FakeBin

from .conftest import make_fake_bin

ROUTES = [
    ("POST", "/v1/scan"),
    ("GET", "/v1/status"),
    ("GET", "/v1/results"),
    ("DELETE", "/v1/results"),
    ("GET", "/v1/metrics"),
    ("POST", "/api/tools/kube-bench"),
    ("GET", "/api/v1/contexts"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/mcp"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, FakeBin, Path]]:
    tmp = tmp_path_factory.mktemp("browser")
    fake = make_fake_bin(tmp)
    root = tmp / "root"
    root.mkdir()
    (root / "deploy.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    env = {**fake.env, "HOME": str(tmp / "home")}
    server = start_http_server(env, tmp, "--allowed-host", "scanner.internal",
                               drop_env=("MCP_KSCAN_TOKEN", "KS_API_TOKEN", "KUBECONFIG", "MCP_KSCAN_ALLOWED_ROOTS"))
    try:
        yield server, fake, root
    finally:
        stop_server(server)


def _request(server: HttpServer, method: str, path: str, headers: dict[str, str], body: bytes | None = b"{}") -> httpx.Response:
    content = body if method in ("POST", "PUT", "PATCH") else None
    return LOOPBACK.request(method, server.base_url + path, headers=headers, content=content, timeout=30)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_foreign_host_is_421_on_every_route(setup: tuple[HttpServer, FakeBin, Path], method: str, path: str) -> None:
    server, fake, _ = setup
    before = len(fake.starts())
    for host in ("evil.example", f"evil.example:{server.port}", "127.0.0.1.evil.example", "localhost.", ""):
        r = _request(server, method, path, {**JSON, "Host": host})
        assert r.status_code == 421, (host, r.status_code, r.text[:200])
    assert len(fake.starts()) == before


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_foreign_origin_and_cross_site_are_403(setup: tuple[HttpServer, FakeBin, Path], method: str, path: str) -> None:
    server, fake, _ = setup
    before = len(fake.starts())
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://evil.example:{server.port}"}, {"Origin": "https://localhost.evil.example"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"}):
        r = _request(server, method, path, {**JSON, **headers})
        assert r.status_code == 403, (headers, r.status_code, r.text[:200])
    assert len(fake.starts()) == before


def test_text_plain_post_is_415_and_starts_nothing(setup: tuple[HttpServer, FakeBin, Path]) -> None:
    """The preflight-free request a page can send with fetch(..., {mode: "no-cors"})."""
    server, fake, root = setup
    before = len(fake.starts())
    body = b'{"paths": ["%s"], "engine": "kubescape"}' % str(root).encode()
    for path in ("/v1/scan?wait=true", "/api/tools/kube-bench"):
        for ctype in ("text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                      "multipart/form-data; boundary=x", "application/jsonp", ""):
            headers = {"Content-Type": ctype} if ctype else {}
            r = LOOPBACK.post(server.base_url + path, content=body, headers=headers, timeout=30)
            assert r.status_code == 415, (path, ctype, r.status_code, r.text[:200])
        # The same request as a cross-origin page sends it: refused for its Origin first.
        r = LOOPBACK.post(server.base_url + path, content=body, timeout=30,
                       headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
        assert r.status_code == 403
    assert len(fake.starts()) == before


def test_allowed_requests_still_work(setup: tuple[HttpServer, FakeBin, Path]) -> None:
    """The positive controls: same-origin pages, --allowed-host, probes without a body."""
    server, fake, root = setup
    before = len(fake.starts())
    r = LOOPBACK.post(server.base_url + "/v1/scan?wait=true", json={"paths": [str(root)], "engine": "kubescape"},
                   headers={"Origin": f"http://127.0.0.1:{server.port}", "Sec-Fetch-Site": "same-origin"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert len(fake.starts()) == before + 1
    r = LOOPBACK.post(server.base_url + "/v1/scan?wait=true", json={"paths": [str(root)], "engine": "kubescape"},
                   headers={"Content-Type": "application/json; charset=utf-8", "Host": "scanner.internal:8443",
                            "Origin": "https://scanner.internal"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    for probe in ("/livez", "/readyz"):
        for method in ("GET", "HEAD", "POST"):
            r = LOOPBACK.request(method, server.base_url + probe, timeout=10)  # no body, no Content-Type
            assert r.status_code == 200, (probe, method, r.status_code)
    r = LOOPBACK.get(server.base_url + "/v1/status", headers={"Host": "localhost", "Sec-Fetch-Site": "none"}, timeout=10)
    assert r.status_code == 200


def test_startup_log_says_the_api_is_open_without_a_token(setup: tuple[HttpServer, FakeBin, Path]) -> None:
    server, _, _ = setup
    log = server.log()
    assert "any local process" in log and "MCP_KSCAN_TOKEN" in log
