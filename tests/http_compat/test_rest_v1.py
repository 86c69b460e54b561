"""Kubescape's /v1 API, in-process, with the fake kubescape: every path, query key and status."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from .rest_helpers import JSON, RestFactory, post_scan, wait_for, wait_not_busy

pytestmark = pytest.mark.anyio


def kubescape_argvs(fake_bin) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [r["argv"][1:] for r in fake_bin.starts("kubescape")]


# ---------------------------------------------------------------------------- async flow


async def test_status_without_id(rest_factory: RestFactory, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = await rest_factory()
    assert (await c.get("/v1/status")).json() == {"id": "", "type": "notBusy"}
    fake_bin.configure(mode="hang")
    scan_id = (await post_scan(c)).json()["id"]
    assert (await c.get("/v1/status")).json() == {"id": scan_id, "type": "busy", "response": scan_id}
    assert (await c.get("/v1/status", params={"id": scan_id})).json()["type"] == "busy"
    # Unknown and non-UUID ids are simply not busy.
    assert (await c.get("/v1/status", params={"id": str(uuid.uuid4())})).json() == {"id": "", "type": "notBusy"}
    assert (await c.get("/v1/status", params={"id": "nope"})).status_code == 200
    # results of a running scan: busy
    r = await c.get("/v1/results", params={"id": scan_id})
    assert r.status_code == 200 and r.json() == {"id": scan_id, "type": "busy", "response": f"scanning '{scan_id}' in progress"}
    cancelled = await c.delete("/v1/scan", params={"id": scan_id})
    assert cancelled.status_code == 200, cancelled.text
    assert (await c.get("/v1/status")).json() == {"id": "", "type": "notBusy"}


# Read-then-delete (issue 12): the runner publishes a final state only once it is stored, so a
# caller that sees notBusy can read and delete at once. In-process nothing delays the next
# request, which is where an unordered read and delete showed (the delete was refused as "still
# active" and the next read answered 500 instead of 204).


async def test_async_scan_status_results_keep_then_removed(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await post_scan(c)
    assert r.status_code == 200
    body = r.json()
    scan_id = body["id"]
    assert uuid.UUID(scan_id).version == 4
    assert body == {"id": scan_id, "type": "busy", "response": f"scanning '{scan_id}' is in progress"}
    await wait_not_busy(c, scan_id)
    assert (await c.get("/v1/status", params={"id": scan_id})).json() == {"id": "", "type": "notBusy"}

    kept = await c.get("/v1/results", params={"id": scan_id, "keep": "true"})
    assert kept.status_code == 200
    assert kept.json()["type"] == "v1results" and kept.json()["id"] == scan_id
    report = kept.json()["response"]
    assert isinstance(report, dict) and report["summaryDetails"]["complianceScore"] == 50.0

    read = await c.get("/v1/results", params={"id": scan_id})
    assert read.status_code == 200 and read.json()["response"] == report
    gone = await c.get("/v1/results", params={"id": scan_id})
    assert gone.status_code == 204 and gone.content == b""
    # {} is a scan with the defaults: every framework.
    assert kubescape_argvs(fake_bin)[0][:3] == ["scan", "framework", "all"]


@pytest.mark.parametrize("attempt", range(5))
async def test_failed_async_scan_results_500_then_removed(rest: httpx.AsyncClient, fake_bin, attempt: int) -> None:  # type: ignore[no-untyped-def]
    """Five runs: the race it guards against showed in about one run in several on a busy machine."""
    fake_bin.configure(mode="garbage")
    c = rest
    scan_id = (await post_scan(c)).json()["id"]
    await wait_not_busy(c, scan_id)
    r = await c.get("/v1/results", params={"id": scan_id, "keep": "1"})
    assert r.status_code == 500 and r.json()["type"] == "error" and r.json()["id"] == scan_id
    assert "not valid JSON" in r.json()["response"]
    assert (await c.get("/v1/results", params={"id": scan_id})).status_code == 500
    assert (await c.get("/v1/results", params={"id": scan_id})).status_code == 204


def _probe_before_answering(seen: list[tuple[str, int]]) -> Callable[[Any], Any]:
    """An ASGI middleware: when a ``/v1/results`` or ``/v1/scan?wait=true`` answer starts to go out, it asks
    the app, in between, whether the scan's result is still there (``/v1/results?keep=true``) and
    records (scan id, that status). What a client on another connection would see the moment the
    answer arrives, without a race to win (httpx's ASGI transport returns only after the app,
    background work included, is done)."""

    def wrap(app: Any) -> Any:
        async def probe(scope: dict[str, Any], scan_id: str) -> int:
            status: list[int] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            await app({**scope, "method": "GET", "path": "/v1/results", "raw_path": b"/v1/results",
                       "query_string": f"id={scan_id}&keep=true".encode(),
                       "headers": [*scope["headers"], (b"x-probe", b"1")]}, receive, send)
            return status[0]

        async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] not in ("/v1/results", "/v1/scan") \
                    or (b"x-probe", b"1") in scope["headers"]:
                return await app(scope, receive, send)
            query = dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)
            if scope["path"] == "/v1/scan" and query.get("wait") != "true":
                return await app(scope, receive, send)  # an async start: nothing is read or deleted
            started: list[dict[str, Any]] = []

            async def hooked(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    started.append(message)  # held until the body shows the scan id
                    return
                if started and message["type"] == "http.response.body":
                    found = query.get("id") or re.search(rb'"id": ?"([0-9a-f-]{36})"', message.get("body", b""))
                    if started[0]["status"] == 200 and found:
                        scan_id = found if isinstance(found, str) else found.group(1).decode()
                        seen.append((scan_id, await probe(scope, scan_id)))
                    await send(started.pop())
                await send(message)

            await app(scope, receive, hooked)

        return wrapped

    return wrap


async def test_a_deleting_read_deletes_before_it_answers(rest_factory: RestFactory) -> None:
    """Reading a result without ``keep`` deletes it, as Kubescape does: when the answer arrives,
    a read on another connection already finds nothing. The server frees the stored report after
    answering (the record goes first), so the caller does not wait for that."""
    seen: list[tuple[str, int]] = []
    c = await rest_factory(wrap=_probe_before_answering(seen))
    synced = await post_scan(c, wait="true")
    assert synced.status_code == 200 and synced.json()["type"] == "v1results", synced.text
    scan_id = (await post_scan(c)).json()["id"]
    await wait_not_busy(c, scan_id)
    assert (await c.get("/v1/results", params={"id": scan_id})).status_code == 200
    assert seen == [(synced.json()["id"], 204), (scan_id, 204)]
    kept = await post_scan(c, wait="true", keep="true")
    assert seen[-1] == (kept.json()["id"], 200)  # the probe sees a kept result: it can tell
    assert (await c.get("/v1/results", params={"id": scan_id})).status_code == 204


# ---------------------------------------------------------------------------- sync flow


async def test_sync_scan_returns_report_and_deletes_it(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    r = await post_scan(c, {"targetType": "framework", "targetNames": ["nsa"]}, wait="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "v1results" and uuid.UUID(body["id"])
    assert body["response"]["summaryDetails"]["frameworks"][0]["name"] == "NSA"
    assert (await c.get("/v1/results", params={"id": body["id"]})).status_code == 204
    assert kubescape_argvs(fake_bin)[0][:3] == ["scan", "framework", "nsa"]

    kept = await post_scan(c, {"targetType": "control", "targetNames": ["C-0016"]}, wait="true", keep="true")
    assert kept.status_code == 200
    again = await c.get("/v1/results", params={"id": kept.json()["id"]})
    assert again.status_code == 200 and again.json()["response"] == kept.json()["response"]
    assert kubescape_argvs(fake_bin)[1][:3] == ["scan", "control", "C-0016"]


async def test_sync_scan_failure_is_500(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    fake_bin.configure(mode="error")
    r = await post_scan(c, {}, wait="true")
    assert r.status_code == 500
    body = r.json()
    assert body["type"] == "error" and uuid.UUID(body["id"])
    assert "no configuration has been provided" in body["response"]
    assert (await c.get("/v1/results", params={"id": body["id"]})).status_code == 204


async def test_results_are_the_reports_own_bytes(rest: httpx.AsyncClient, fake_bin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """GET /v1/results splices the stored report into the envelope: byte for byte what Kubescape
    wrote (key order and spacing included), never parsed and re-encoded by the server."""
    report = tmp_path / "report.json"
    raw = b'{"summaryDetails": {"complianceScore": 87.5, "controls": {}},   "zeta": 1, "alpha": [1, 2]}'
    report.write_bytes(raw)
    fake_bin.configure(kubescape_report=report)
    scan_id = (await post_scan(rest, {}, wait="true", keep="true")).json()["id"]
    r = await rest.get("/v1/results", params={"id": scan_id, "keep": "true"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.content == b'{"id":"%s","type":"v1results","response":%s}' % (scan_id.encode(), raw)
    assert r.json()["response"]["zeta"] == 1


async def test_a_report_with_nan_is_a_failed_scan_not_a_500_later(rest: httpx.AsyncClient, fake_bin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """JSON has no NaN: such a report is refused when the scan ends, with the reason, so every
    stored report can be served to a strict JSON parser."""
    report = tmp_path / "report.json"
    report.write_bytes(b'{"summaryDetails": {"complianceScore": NaN, "controls": {}}}')
    fake_bin.configure(kubescape_report=report)
    r = await post_scan(rest, {}, wait="true", keep="true")
    assert r.status_code == 500, r.text
    body = r.json()
    assert "NaN is not valid JSON" in body["response"] and "\n" not in body["response"]
    status = await rest.get("/v1/results", params={"id": body["id"]})
    assert status.status_code == 500 and "NaN is not valid JSON" in status.json()["response"]


# ---------------------------------------------------------------------------- results without id


async def test_results_without_id_is_latest_and_kept(rest: httpx.AsyncClient) -> None:
    c = rest
    r = await c.get("/v1/results")
    assert r.status_code == 400 and r.json() == {"id": "", "type": "error", "response": "latest scan not found"}
    first = (await post_scan(c, wait="true", keep="true")).json()["id"]
    second = (await post_scan(c, {"targetNames": ["mitre"]})).json()["id"]
    await wait_not_busy(c, second)
    latest = await c.get("/v1/results")
    assert latest.status_code == 200 and latest.json()["id"] == second
    # The no-id fallback never deletes (like Kubescape's offline mode).
    assert (await c.get("/v1/results")).json()["id"] == second
    assert (await c.get("/v1/results", params={"id": first})).status_code == 200


async def test_results_unknown_or_bad_id_is_204(rest: httpx.AsyncClient) -> None:
    c = rest
    assert (await c.get("/v1/results", params={"id": str(uuid.uuid4())})).status_code == 204
    assert (await c.get("/v1/results", params={"id": "../../etc/passwd"})).status_code == 204


# ---------------------------------------------------------------------------- delete / cancel


async def test_delete_results_and_cancel(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    done = (await post_scan(c, wait="true", keep="true")).json()["id"]
    r = await c.delete("/v1/results", params={"id": done})
    assert r.status_code == 200 and r.content == b""
    assert (await c.get("/v1/results", params={"id": done})).status_code == 204
    assert (await c.delete("/v1/results", params={"id": str(uuid.uuid4())})).status_code == 200
    missing = await c.delete("/v1/results")
    assert missing.status_code == 400 and missing.json()["type"] == "error"

    fake_bin.configure(mode="hang")
    running = (await post_scan(c)).json()["id"]
    await wait_for(lambda: bool(fake_bin.starts("kubescape")[1:]))
    busy = await c.delete("/v1/results", params={"all": "true"})
    assert busy.status_code == 400
    assert busy.json()["response"] == "cannot delete all results while a scan is in progress"
    one = await c.delete("/v1/results", params={"id": running})
    assert one.status_code == 200 and one.json()["type"] == "busy"

    cancelled = await c.delete("/v1/scan", params={"id": running})
    assert cancelled.status_code == 200
    assert cancelled.json() == {"id": running, "type": "notBusy", "response": f"scan '{running}' cancelled"}
    again = await c.delete("/v1/scan", params={"id": running})
    assert again.status_code == 404 and again.json()["type"] == "error"
    assert (await c.delete("/v1/scan", params={"id": str(uuid.uuid4())})).status_code == 404
    assert (await c.delete("/v1/scan")).status_code == 404  # nothing in flight
    r = await c.get("/v1/results", params={"id": running, "keep": "true"})
    assert r.status_code == 500 and "cancelled" in r.json()["response"]

    assert (await c.delete("/v1/results", params={"all": "true"})).status_code == 200
    assert (await c.get("/v1/results", params={"id": running})).status_code == 204


async def test_cancel_without_id_cancels_latest_in_flight(rest: httpx.AsyncClient, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = rest
    fake_bin.configure(mode="hang")
    scan_id = (await post_scan(c)).json()["id"]
    r = await c.delete("/v1/scan")
    assert r.status_code == 200 and r.json()["id"] == scan_id


# ---------------------------------------------------------------------------- queue


async def test_queue_full_is_429(rest_factory: RestFactory, fake_bin) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="hang")
    c = await rest_factory({"MCP_KSCAN_MAX_CONCURRENT_SCANS": "1", "MCP_KSCAN_QUEUE_CAPACITY": "1"})
    first = await post_scan(c)
    assert first.status_code == 200
    await wait_for(lambda: len(fake_bin.starts("kubescape")) == 1)
    second = await post_scan(c)
    assert second.status_code == 200 and second.json()["type"] == "busy"
    third = await post_scan(c)
    assert third.status_code == 429
    assert third.headers["retry-after"] == "1"
    assert third.json()["type"] == "error" and "queue is full" in third.json()["response"]
    # The queued scan is busy from the moment it was accepted (FIFO behind the first).
    assert (await c.get("/v1/status", params={"id": second.json()["id"]})).json()["type"] == "busy"
    metrics = (await c.get("/metrics")).text
    assert "mcp_kscan_queue_depth 1.0" in metrics and "mcp_kscan_scans_running 1.0" in metrics
    sync_full = await post_scan(c, wait="true")
    assert sync_full.status_code == 429
    assert (await c.delete("/v1/scan", params={"id": second.json()["id"]})).status_code == 200
    assert (await c.delete("/v1/scan", params={"id": first.json()["id"]})).status_code == 200


# ---------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("content", "params", "needle"),
    [
        (b"", {}, "body is empty"),
        (b"{not json", {}, "invalid JSON"),
        (b"[1, 2]", {}, "expected a JSON object"),
        (b"{}", {"waitr": "true"}, "unknown key 'waitr'"),
        (b"{}", {"wait": "maybe"}, "wait: expected a boolean"),
        (b"{}", {"callback": "http://example.com/"}, "callback"),
        (b'{"targetType": "framework", "targetNames": ["nsa; rm -rf /"]}', {}, "targetNames"),
        (b'{"excludedNamespaces": ["Bad_NS"]}', {}, "excludedNamespaces"),
        (b'{"bogus": 1}', {}, "bogus"),
        (b'{"format": "docx"}', {}, "format: unknown format"),
        (b'{"paths": ["/definitely/not/here"]}', {}, "paths"),
    ],
)
async def test_bad_scan_requests_are_400(rest: httpx.AsyncClient, content: bytes, params: dict[str, str], needle: str) -> None:
    c = rest
    r = await c.post("/v1/scan", params=params, content=content, headers=JSON)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["id"] == "" and body["type"] == "error"
    assert needle in body["response"]


async def test_unknown_query_keys_elsewhere_are_400(rest: httpx.AsyncClient) -> None:
    c = rest
    for method, path in (("GET", "/v1/status"), ("GET", "/v1/results"), ("DELETE", "/v1/results"), ("DELETE", "/v1/scan"), ("GET", "/v1/metrics")):
        r = await c.request(method, path, params={"nope": "1"})
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["type"] == "error" and "unknown key 'nope'" in r.json()["response"]
    assert (await c.put("/v1/scan", content=b"{}")).status_code == 405


async def test_body_over_limit_is_413(rest_factory: RestFactory) -> None:
    c = await rest_factory({"KS_SCAN_REQUEST_MAX_BYTES": "1000"})
    big = json.dumps({"targetNames": ["nsa"], "format": "json" + " " * 2000}).encode()
    r = await c.post("/v1/scan", content=big, headers=JSON)
    assert r.status_code == 413 and r.json()["type"] == "error"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap must hold while reading
        yield b'{"targetNames": ["nsa"], "pad": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    r = await c.post("/v1/scan", content=chunks(), headers=JSON)
    assert r.status_code == 413
    assert (await post_scan(c, {"targetNames": ["nsa"]})).status_code == 200  # under the cap: fine


# ---------------------------------------------------------------------------- environment defaults


async def test_ks_environment_defaults_and_overrides(rest_factory: RestFactory, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = await rest_factory(
        {"KS_EXCLUDE_NAMESPACES": "kube-system,kube-public", "KS_INCLUDE_NAMESPACES": "", "KS_ACCOUNT": "acct-1", "KS_FORMAT": "json"}
    )
    assert (await post_scan(c, wait="true")).status_code == 200
    argv = kubescape_argvs(fake_bin)[0]
    assert argv[argv.index("--exclude-namespaces") + 1] == "kube-system,kube-public"
    assert argv[argv.index("--account") + 1] == "acct-1"

    r = await post_scan(c, {"excludedNamespaces": ["team-a"], "account": "other-2"}, wait="true")
    assert r.status_code == 200
    argv = kubescape_argvs(fake_bin)[1]
    assert argv[argv.index("--exclude-namespaces") + 1] == "team-a"
    assert argv[argv.index("--account") + 1] == "other-2"


async def test_access_key_never_on_the_command_line(rest: httpx.AsyncClient, fake_bin, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    c = rest
    caplog.set_level(logging.DEBUG)
    r = await post_scan(c, {"accessKey": "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40", "account": "acct-9"}, wait="true")
    assert r.status_code == 200
    start = fake_bin.starts("kubescape")[0]
    assert "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40" not in " ".join(start["argv"])
    assert start["env"].get("KS_ACCESS_KEY") == "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40"
    assert caplog.records and "5ec7e7a1-0b1c-4d2e-8f3a-9b8c7d6e5f40" not in caplog.text


async def test_local_paths_scan(rest_factory: RestFactory, fake_bin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    r = await post_scan(c, {"paths": [str(manifests)], "targetNames": ["nsa"], "targetType": "framework"}, wait="true")
    assert r.status_code == 200, r.text
    assert str(manifests) in kubescape_argvs(fake_bin)[0]
    outside = await post_scan(c, {"paths": ["/etc"]})
    assert outside.status_code == 400 and "allowed roots" in outside.json()["response"]


async def test_builtin_engine_without_binary(rest_factory: RestFactory, tmp_path) -> None:
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "deploy.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n"
        "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec:\n      containers:\n      - name: web\n        image: nginx\n        securityContext: {privileged: true}\n"
    )
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    r = await post_scan(c, {"paths": [str(manifests)], "engine": "builtin"}, wait="true")
    assert r.status_code == 200, r.text
    assert "summaryDetails" in r.json()["response"]


async def test_a_builtin_report_kept_as_a_file_is_streamed_whole_and_freed_after_the_read(
        rest_factory: RestFactory, fake_bin, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The SQLite store keeps the engine's report as a file beside scans.db (runner.report_files):
    ``wait=true`` and ``GET /v1/results`` stream it into the envelope (its declared length, the
    same bytes as the stored file), and a read that deletes the result removes the file after."""
    manifests = tmp_path / "m"
    manifests.mkdir()
    for i in range(3):
        (manifests / f"d{i}.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web{i}, namespace: default}}\n"
            "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx\n")
    reports = fake_bin.data_dir / "reports"
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    kept = await post_scan(c, {"paths": [str(manifests)], "engine": "builtin"}, wait="true", keep="true")
    assert kept.status_code == 200 and kept.headers["content-length"] == str(len(kept.content))
    scan_id = kept.json()["id"]
    (stored,) = reports.iterdir()
    assert stored.name.startswith(scan_id)
    assert kept.content == b'{"id":"%s","type":"v1results","response":%s}' % (scan_id.encode(), stored.read_bytes())
    assert len(kept.json()["response"]["resources"]) == 3
    read = await c.get("/v1/results", params={"id": scan_id})
    assert read.status_code == 200 and read.content == kept.content
    assert read.headers["content-length"] == str(len(read.content))
    await wait_for(lambda: not any(reports.iterdir()), timeout=30)  # freed once answered
    assert (await c.get("/v1/results", params={"id": scan_id})).status_code == 204

    once = await post_scan(c, {"paths": [str(manifests)], "engine": "builtin"}, wait="true")
    assert once.status_code == 200 and len(once.json()["response"]["resources"]) == 3
    await wait_for(lambda: not any(reports.iterdir()), timeout=30)


async def test_only_a_scan_answered_once_skips_indexing_its_findings(
        rest_factory: RestFactory, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """``wait=true`` without ``keep`` deletes the result once answered: the only case whose
    findings are not indexed (tests/engine/test_task.py shows what that changes); a kept result
    (``keep=true``) or one read later (``wait=false``) is indexed."""
    from mcp_kscan.service import ScanService

    asked: list[bool] = []
    start = ScanService.start_kubescape

    async def recorded(self: ScanService, req: Any, origin: str = "mcp", *, index_findings: bool = True) -> Any:
        asked.append(index_findings)
        return await start(self, req, origin, index_findings=index_findings)

    monkeypatch.setattr(ScanService, "start_kubescape", recorded)
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n"
                                        "spec:\n  containers:\n  - name: c\n    image: nginx\n")
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path)})
    body = {"paths": [str(manifests)], "engine": "builtin"}
    once = await post_scan(c, body, wait="true")
    kept = await post_scan(c, body, wait="true", keep="true")
    later = await post_scan(c, body)
    assert [r.status_code for r in (once, kept, later)] == [200, 200, 200] and asked == [False, True, True]
    assert once.json()["response"]["results"] == kept.json()["response"]["results"]
    await wait_not_busy(c, later.json()["id"])


async def test_builtin_scan_refuses_only_the_callers_binary_fields(rest_factory: RestFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """KS_ACCOUNT fills ``account`` as Kubescape's handler does; that is the server's own default, not the
    caller's ask, so a built-in scan runs. An account (or submit, keepLocal...) the caller sends is refused."""
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n")
    c = await rest_factory({"MCP_KSCAN_ALLOWED_ROOTS": str(tmp_path), "KS_ACCOUNT": "acct-1"})
    r = await post_scan(c, {"paths": [str(manifests)], "engine": "builtin"}, wait="true")
    assert r.status_code == 200, r.text
    for body, field in (({"account": "other-2"}, "account"), ({"keepLocal": True}, "keep_local"),
                        ({"submit": True, "useCachedArtifacts": True}, "submit")):
        r = await post_scan(c, {"paths": [str(manifests)], "engine": "builtin", **body})
        assert r.status_code == 400, r.text
        message = r.json()["response"]
        assert message.startswith(f"{field}: only the Kubescape binary honours it (engine=kubescape)"), message


# ---------------------------------------------------------------------------- health


async def test_livez_readyz(rest: httpx.AsyncClient) -> None:
    c = rest
    assert (await c.get("/livez")).status_code == 200
    assert (await c.get("/readyz")).status_code == 200
