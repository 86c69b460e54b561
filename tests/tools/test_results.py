"""get_results as an agent meets it (issue 14): one test per problem that was found.

The scans run the built-in engine over tests/corpus (real-world-style manifests) through the
SDK's in-process client; nothing is faked.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import make_fake_bin
from mcp import Client

import mcp_kscan.settings
from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
RESOURCE_LIMIT_CONTROLS = {"C-0004", "C-0009", "C-0050", "C-0270", "C-0271"}
HOST_ACCESS_CONTROLS = {"C-0057", "C-0038", "C-0041", "C-0045", "C-0048", "C-0046"}


async def _scan(client: Client, paths: list[str], **extra: Any) -> dict[str, Any]:
    result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": paths, "wait_seconds": 120, **extra})
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "succeeded", result.structured_content
    return result.structured_content


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope, for the shared scan below


@pytest.fixture(scope="module")
async def corpus_scan(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Client, dict[str, Any]]]:
    """One built-in scan of tests/corpus and the in-process client that made it, shared by the
    tests that only read its results (one engine run instead of one per test). Nothing else
    scans on this server, so "the latest scan" is this one too."""
    fake = make_fake_bin(tmp_path_factory.mktemp("corpus-scan"))
    env = pytest.MonkeyPatch()
    for key, value in fake.env.items():
        env.setenv(key, value)
    mcp_kscan.settings.configure(None)
    try:
        async with Client(build_server()) as client:
            yield client, await _scan(client, [str(CORPUS)])
    finally:
        env.undo()
        mcp_kscan.settings.configure(None)


async def _call(client: Client, tool: str, **args: Any) -> Any:
    return await client.call_tool(tool, args)


def _error(result: Any) -> str:
    assert result.is_error, result.structured_content
    text = result.content[0].text
    assert "\n" not in text and "errors.pydantic.dev" not in text and "validation error for" not in text, text
    return text


async def test_findings_carry_the_whole_file_and_the_failing_line(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A path long enough that the old page cut it ("…[truncated]").
    deep = tmp_path / ("very-long-directory-name-" * 4) / ("nested-" * 10) / "badPods-everything-allowed-exec-cronjob"
    deep.mkdir(parents=True)
    manifest = deep / "everything-allowed-exec-pod-with-a-descriptive-file-name.yaml"
    shutil.copy(CORPUS / "badpods/everything-allowed/pod.yaml", manifest)
    async with Client(build_server()) as client:
        await _scan(client, [str(tmp_path)])
        page = (await _call(client, "get_results", view="findings", status="failed", control_id="C-0057", limit=200)).structured_content
    (finding,) = page["findings"]
    loc = finding["location"]
    assert loc["file"] == str(manifest) and loc["document"] == 0
    assert manifest.read_text().splitlines()[loc["line"] - 1].strip() == "privileged: true"
    assert finding["finding_id"].startswith("f-")
    # The catalogue's facts travel with the finding: no second call to learn what C-0057 is.
    assert finding["severity"] == "High" and finding["base_score"] > 0 and finding["category"]
    assert finding["description"] and finding["remediation"] and "\n" not in finding["description"]


async def test_limit_is_honoured_up_to_the_budget_and_says_why(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, scan = corpus_scan
    first = await _call(client, "get_results", scan_id=scan["scan_id"], view="findings", limit=200)
    data = first.structured_content
    assert data["asked"] == 200 and data["returned"] == len(data["findings"]) < 200
    assert data["note"].startswith(f"{data['returned']} of 200 asked: page budget")
    assert len(json.dumps(data)) < 16_500
    small = (await _call(client, "get_results", scan_id=scan["scan_id"], view="findings", limit=3)).structured_content
    assert small["returned"] == 3 and small["note"] is None


async def test_pages_after_the_first_carry_items_and_cursor_only(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, scan = corpus_scan
    first = (await _call(client, "get_results", scan_id=scan["scan_id"], view="findings", limit=10)).structured_content
    assert first["scan"]["summary"]["kind"] == "kubescape"
    second = (await _call(client, "get_results", scan_id=scan["scan_id"], view="findings", limit=10,
                          cursor=first["next_cursor"])).structured_content
    assert second["scan"] is None and second["returned"] == 10
    assert {f["finding_id"] for f in first["findings"]}.isdisjoint(f["finding_id"] for f in second["findings"])
    assert len(json.dumps(second)) < len(json.dumps(first))


async def test_text_content_lists_each_item_on_one_line(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, scan = corpus_scan
    page = await _call(client, "get_results", scan_id=scan["scan_id"], view="findings", status="failed",
                       control_id="C-0057", limit=5)
    text = page.content[0].text
    findings = page.structured_content["findings"]
    for f in findings:
        loc = f["location"]
        res = f["resource"]
        line = f"{f['severity']} C-0057 {res['kind']}/{res['namespace']}/{res['name']} {loc['file']}:{loc['line']}"
        assert line in text.splitlines(), (line, text)
    assert text.splitlines()[-1] == "(last page)"


async def test_status_filters_are_checked_per_view_in_any_case(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, scan = corpus_scan
    sid = scan["scan_id"]
    wrong = _error(await _call(client, "get_results", scan_id=sid, view="findings", status="FAIL"))
    assert "status" in wrong and "failed, passed, skipped" in wrong
    upper = (await _call(client, "get_results", scan_id=sid, view="findings", status="FAILED")).structured_content
    assert upper["total_matching"] > 0 and all(f["status"] == "failed" for f in upper["findings"])
    res = _error(await _call(client, "get_results", scan_id=sid, view="resources", status="skipped"))
    assert "failed, passed" in res
    node = _error(await _call(client, "get_results", scan_id=sid, view="findings", node="worker-1"))
    assert node.startswith("Error executing tool get_results: node:") and "checks" in node


async def test_severity_any_case_and_min_severity(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        scan = await _scan(client, [str(CORPUS)], severity_threshold="HIGH")
        sid = scan["scan_id"]
        high = (await _call(client, "get_results", scan_id=sid, view="findings", severity="high", limit=50)).structured_content
        assert high["total_matching"] > 0 and {f["severity"] for f in high["findings"]} == {"High"}
        at_least = (await _call(client, "get_results", scan_id=sid, view="controls", min_severity="MEDIUM", limit=100)).structured_content
        assert {r["severity"] for r in at_least["controls"]} <= {"Critical", "High", "Medium"}
        assert "Medium" in {r["severity"] for r in at_least["controls"]}
        bad = _error(await _call(client, "get_results", scan_id=sid, view="findings", min_severity="severe"))
        assert "Critical, High, Medium, Low" in bad


async def test_reading_a_running_scan_says_how_to_wait(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="hang")
    async with Client(build_server()) as client:
        started = await client.call_tool("kubescape_scan", {"engine": "kubescape", "wait_seconds": 0, "timeout_seconds": 60})
        sid = started.structured_content["scan_id"]
        text = _error(await _call(client, "get_results", scan_id=sid, view="findings"))
        assert "still" in text and f'scan_status(scan_id="{sid}", wait_seconds=' in text
        await client.call_tool("cancel_scan", {"scan_id": sid})


async def test_argument_errors_are_one_line(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        view = _error(await _call(client, "get_results", view="everything"))
        assert "view:" in view and "'controls'" in view
        limit = _error(await _call(client, "get_results", limit=0))
        assert "limit:" in limit
        extra = _error(await _call(client, "get_results", severty="High"))
        assert "severty:" in extra
        bad_path = _error(await client.call_tool("kubescape_scan", {"paths": ["/no/such/dir"], "engine": "builtin"}))
        assert "paths[0]:" in bad_path








async def test_finding_ids_are_stable_across_rescans(corpus_scan: tuple[Client, dict[str, Any]], kscan_settings) -> None:  # type: ignore[no-untyped-def]
    """The shared corpus scan, then the same corpus scanned again (by another server: ids come
    from what was found, not from the scan or the server that found it)."""

    async def high_findings(client: Client, scan_id: str) -> dict[str, tuple[str, str]]:
        page = (await _call(client, "get_results", scan_id=scan_id, view="findings", status="failed",
                            min_severity="High", limit=200)).structured_content
        return {f["finding_id"]: (f["control_id"], f["resource"]["name"]) for f in page["findings"]}

    shared, scan = corpus_scan
    ids = [await high_findings(shared, scan["scan_id"])]
    async with Client(build_server()) as client:
        ids.append(await high_findings(client, (await _scan(client, [str(CORPUS)]))["scan_id"]))
    assert ids[0] == ids[1] and len(ids[0]) == len(set(ids[0].values()))


async def test_an_empty_scan_is_not_shown_as_compliant(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "README.md").write_text("# not a manifest\n")
    (tmp_path / "values.yaml").write_text("replicas: 3\n")
    async with Client(build_server()) as client:
        await _scan(client, [str(tmp_path)])
        page = (await _call(client, "get_results", view="controls")).structured_content
    assert page["total_matching"] == 0
    assert "read no Kubernetes object" in page["note"]


async def test_scan_status_waits_for_the_end(kscan_settings, fake_bin) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(sleep=1.5)
    async with Client(build_server()) as client:
        started = await client.call_tool("kubescape_scan", {"engine": "kubescape", "wait_seconds": 0})
        sid = started.structured_content["scan_id"]
        assert started.structured_content["status"] in ("queued", "running")
        with anyio.fail_after(90):
            waited = await client.call_tool("scan_status", {"scan_id": sid, "wait_seconds": 60})
    assert waited.structured_content["status"] == "succeeded"


async def test_controls_view_puts_security_before_resource_limits(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, scan = corpus_scan
    page = (await _call(client, "get_results", scan_id=scan["scan_id"], view="controls", status="failed", limit=50)).structured_content
    rows = page["controls"]
    ids = [r["control_id"] for r in rows]
    assert all(r["security"] for r in rows[:3]), rows[:3]
    first_limit = min(ids.index(c) for c in RESOURCE_LIMIT_CONTROLS if c in ids)
    last_host = max(ids.index(c) for c in HOST_ACCESS_CONTROLS if c in ids)
    assert last_host < first_limit, ids
    # The summary's top list follows the same order.
    assert [c["control_id"] for c in scan["summary"]["failed_controls"]] == ids[: len(scan["summary"]["failed_controls"])]
    top = rows[0]
    for key in ("name", "severity", "failed", "passed", "excepted", "category", "base_score", "description", "remediation"):
        assert top.get(key) is not None, key


async def test_control_ids_are_checked_against_the_catalogue(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, scan = corpus_scan
    sid = scan["scan_id"]
    short = _error(await _call(client, "get_results", scan_id=sid, view="findings", control_id="C-57"))
    assert "C-0057" in short and "list_controls" in short
    unknown = _error(await _call(client, "get_results", scan_id=sid, view="findings", control_id="C-9999"))
    assert "catalogue" in unknown
    lower = (await _call(client, "get_results", scan_id=sid, view="findings", control_id="c-0057")).structured_content
    assert lower["total_matching"] > 0 and {f["control_id"] for f in lower["findings"]} == {"C-0057"}
    # A catalogue control this scan has no finding for is a real, empty answer.
    # (C-0005, API server insecure port: the built-in engine does not evaluate it.)
    absent = (await _call(client, "get_results", scan_id=sid, view="findings", control_id="C-0005",
                          status="failed")).structured_content
    assert absent["total_matching"] == 0


async def test_compliance_threshold_and_severity_threshold_have_an_effect(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        props = tools["kubescape_scan"].input_schema["properties"]
        assert "format" not in props and "host_scanner" not in props
        strict = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(CORPUS)],
                                                           "compliance_threshold": 99, "wait_seconds": 120})
        gate = strict.structured_content["gate"]
        assert gate["passed"] is False and "below the threshold 99%" in gate["reason"]
        assert "threshold gate FAILED" in strict.content[0].text
        lenient = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(CORPUS)],
                                                            "compliance_threshold": 1, "wait_seconds": 120})
        assert lenient.structured_content["gate"]["passed"] is True
        sev = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(CORPUS)],
                                                        "severity_threshold": "High", "wait_seconds": 120})
        assert sev.structured_content["gate"]["passed"] is False


async def test_every_parameter_is_described_and_tools_list_is_small(kscan_settings) -> None:  # type: ignore[no-untyped-def]
    async with Client(build_server()) as client:
        tools = (await client.list_tools()).tools
    size = len(json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]))
    assert size < 24_000, size  # other tools are coming: compare_scans, propose_fix, apply_fix
    for tool in tools:
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    # Outline output schemas still type every published field truly (an enum is a string, not an object).
    by_name = {t.name: t for t in tools}
    record = by_name["scan_status"].output_schema["properties"]
    assert record["status"] == {"type": "string"} and record["summary"] == {"type": ["null", "object"]}
    assert by_name["get_results"].output_schema["properties"]["view"] == {"type": "string"}


async def test_resources_view_lists_each_resource_with_its_failed_controls(corpus_scan: tuple[Client, dict[str, Any]]) -> None:
    client, _ = corpus_scan
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        args: dict[str, Any] = {"view": "resources", "status": "failed", "limit": 50}
        if cursor:
            args["cursor"] = cursor
        page = (await _call(client, "get_results", **args)).structured_content
        rows += page["resources"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    names = [r["resource"]["name"] for r in rows]
    assert len(names) == len(set(names)) == page["total_matching"] >= 8
    first = rows[0]
    assert first["resource"]["name"] in {"everything-allowed-exec-pod", "priv-and-hostpid"}
    assert {c["control_id"] for c in first["failed_controls"]} >= {"C-0057"}
    loc = first["location"]
    assert Path(loc["file"]).is_file() and loc["line"] >= 1


async def test_builtin_engine_progress_reaches_the_record_and_the_waiting_client(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = (CORPUS / "badpods/everything-allowed/pod.yaml").read_text()
    folder = tmp_path / "manifests"
    folder.mkdir()
    for i in range(60):
        (folder / f"pod-{i:02d}.yaml").write_text(source.replace("name: everything-allowed-exec-pod", f"name: pod-{i}"))
    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    async with Client(build_server()) as client:
        started = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(folder)], "wait_seconds": 0})
        sid = started.structured_content["scan_id"]
        waited = await client.call_tool("scan_status", {"scan_id": sid, "wait_seconds": 120}, progress_callback=on_progress)
    record = waited.structured_content
    assert record["status"] == "succeeded", record
    assert (record["progress_done"], record["progress_total"]) == (60, 60)  # files read, of the total
    assert (record["resources_done"], record["resources_total"]) == (60, 60)  # resources checked, of those found
    progresses = [p for p, _ in updates]
    assert progresses == sorted(progresses)
    # Whatever the machine's speed, every notification names the scan's state.
    assert all(m and ("running" in m or "queued" in m) for _, m in updates), updates


async def test_progress_notifications_count_resources(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A waiting client is told files read and resources found, then checked, of the total.

    The engine's last progress reaches the record before the scan ends (``engine.task``), so the
    waiting tool sees it whatever the machine's speed: the resource counts are always in a message.
    50 files of 10 documents: resources are counted apart from files, and 500 is more than one
    batch of checked resources (engine.progress.CHECK_BATCH, 256). 200 files (2,000 resources)
    cost 2.5x the CPU for the same checks.
    """
    source = (CORPUS / "badpods/everything-allowed/pod.yaml").read_text()
    folder = tmp_path / "manifests"
    folder.mkdir()
    for i in range(50):
        (folder / f"pods-{i:03d}.yaml").write_text("".join(
            "---\n" + source.replace("name: everything-allowed-exec-pod", f"name: pod-{i}-{j}") for j in range(10)))
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(build_server()) as client:
        result = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(folder)],
                                                           "wait_seconds": 300}, progress_callback=on_progress)
    record = result.structured_content
    assert record["status"] == "succeeded", record
    assert (record["progress_done"], record["progress_total"]) == (50, 50)
    assert (record["resources_done"], record["resources_total"]) == (500, 500)
    assert "50/50 files read, 500/500 resources checked" in "\n".join(messages), messages
    for message in messages:  # while reading, the total is what was found so far, and says so
        if "files read" in message and "50/50 files read" not in message:
            assert "resources found so far" in message, message



async def test_the_first_page_after_a_scan_is_done_holds_all_its_findings(kscan_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A built-in scan is done once its report is whole, and its findings are indexed just after
    (the engine's forked workers work them out then): a page asked for at once waits for them,
    and counts exactly the report's failures, never fewer."""
    source = (CORPUS / "badpods/everything-allowed/pod.yaml").read_text()
    folder = tmp_path / "manifests"
    folder.mkdir()
    for i in range(450):  # past MIN_FILES_PER_WORKER for two CPUs: the forked workers' path
        (folder / f"pod-{i:03d}.yaml").write_text(source.replace("name: everything-allowed-exec-pod", f"name: pod-{i}"))
    async with Client(build_server()) as client:
        started = await client.call_tool("kubescape_scan", {"engine": "builtin", "paths": [str(folder)], "wait_seconds": 0})
        sid = started.structured_content["scan_id"]
        record = (await client.call_tool("scan_status", {"scan_id": sid, "wait_seconds": 120})).structured_content
        assert record["status"] == "succeeded", record
        page = (await _call(client, "get_results", scan_id=sid, view="findings", status="failed")).structured_content
        raw = await client.read_resource(f"kscan://scans/{sid}/report")
    report = json.loads(raw.contents[0].text)  # type: ignore[union-attr]
    failed = sum(1 for result in report["results"] for control in result["controls"]
                 if control["status"]["status"] == "failed")
    assert failed >= 450 * 5 and page["total_matching"] == failed
