"""BuiltinScanTask runs the engine in its own process, through the runner, and hands back a complete outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from servers import group_members

from mcp_kscan.client_roots import ALLOWED_ROOTS_KEY
from mcp_kscan.engine.entry import EngineSpec, run_engine
from mcp_kscan.engine.progress import ScanProgress
from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.engine.task import BuiltinScanTask, ProgressLines, engine_env
from mcp_kscan.fixes.hashes import file_hashes
from mcp_kscan.readers.kubescape_report import parse_report
from mcp_kscan.runner.items import report_items, spelled_out
from mcp_kscan.runner.process import run_process
from mcp_kscan.runner.records import ScanState, TaskContext

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.anyio


class Ctx:
    """A TaskContext whose run_process is the real one, recording what the job reports."""

    def __init__(self, tmp_path: Path, seconds: float = 120) -> None:
        self.phases: list[str] = []
        self.progress: list[tuple[int, int]] = []
        self.resources: list[tuple[int, int] | None] = []
        self.pids: list[int] = []
        self.deadline = anyio.current_time() + seconds

    async def set_phase(self, p: str) -> None:
        self.phases.append(p)

    async def set_progress(self, done: int, total: int, resources: tuple[int, int] | None = None) -> None:
        self.progress.append((done, total))
        self.resources.append(resources)

    async def run(self, argv: list[str], **kwargs: Any) -> Any:
        async def started(pid: int, pgid: int, ticks: int | None) -> None:
            self.pids.append(pid)

        kwargs.setdefault("timeout_s", max(0.0, self.deadline - anyio.current_time()))
        return await run_process(argv, kill_grace_s=0.5, on_start=started, **kwargs)

    def context(self, tmp_path: Path) -> TaskContext:
        return TaskContext("s1", tmp_path, self.deadline, self.run, self.set_phase, self.set_progress)


async def test_job_succeeds_in_a_child_process(tmp_path: Path) -> None:
    job = BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"]), timeout_s=120)
    assert (job.scanner, job.engine) == ("kubescape", "builtin")
    ctx = Ctx(tmp_path)
    outcome = await job.run(ctx.context(tmp_path))
    assert outcome.status == ScanState.succeeded, outcome.error
    assert outcome.engine == "builtin" and ctx.pids and ctx.pids[0] != os.getpid()
    # The report is handed over as its file, never read into the server's memory.
    assert outcome.raw_output is None and outcome.raw_file is not None
    with outcome.raw_file as fh:
        raw_bytes = fh.read()
    raw = json.loads(raw_bytes)
    assert raw["metadata"]["engine"]["name"] == "mcp-kscan-builtin"
    assert ctx.phases[0] == "running"
    # The summary and the store's rows come from the engine's process, not from a report object here.
    assert outcome.report is None
    assert outcome.summary is not None and outcome.summary.failed_controls_total > 0
    rows = list(spelled_out(outcome.item_rows or ()))
    assert rows and all(row[0] == "finding" for row in rows)
    assert {row[1] for row in rows} >= {"failed", "passed"}
    assert rows == list(report_items(parse_report(raw_bytes)))
    # The files' digests as the engine read them, the same as reading them again here.
    assert outcome.file_hashes and outcome.file_hashes == file_hashes([str(EXAMPLES)], ReadLimits())
    files = len([p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml", ".json")])
    assert ctx.progress and ctx.progress[-1] == (files, files)
    # Resources checked of found: the last word is every resource of the report, all checked.
    assert ctx.resources[-1] == (len(raw["resources"]), len(raw["resources"])) and raw["resources"]
    # The same entry point as the CLI: the report is the one run_engine gives (ids and times aside).
    direct = json.loads(run_engine(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"])))
    assert direct["summaryDetails"] == raw["summaryDetails"]


# Run as ``python -m mcp_kscan.engine.entry SPEC REPORT``, then name the modules it had imported.
_MODULES_OF_A_RUN = """
import json, os, runpy, sys
sys.argv = ["entry", sys.argv[1], sys.argv[2]]
leave = os._exit
def _exit(code):  # the engine leaves with os._exit (process_exit.leave): say what it imported first
    print(json.dumps({"exit": code, "modules": sorted(sys.modules)}), flush=True)
    leave(code)
os._exit = _exit
runpy.run_module("mcp_kscan.engine.entry", run_name="__main__")
"""


def test_a_small_scan_process_imports_only_what_it_uses(tmp_path: Path) -> None:
    """Every built-in scan through the server is one engine process, and most are small: its
    start-up is most of their cost. The report models (pydantic: the summary is read from the
    digest's head by the server), the runner, and what only a big scan (forked workers) or a
    chart (rendering) needs stay out of it."""
    spec_path, report_path = tmp_path / "spec.json", tmp_path / "report.json"
    spec_path.write_bytes(EngineSpec(paths=[str(EXAMPLES)], allowed_roots=[str(EXAMPLES)],
                                     digest_dir=str(tmp_path), report_cap_bytes=1 << 30).to_json())
    done = subprocess.run([sys.executable, "-c", _MODULES_OF_A_RUN, str(spec_path), str(report_path)],
                          env=engine_env(), cwd=tmp_path, capture_output=True, timeout=120, check=True)
    ran = json.loads(done.stdout)
    assert ran["exit"] == 0 and report_path.is_file() and (tmp_path / "head.json").is_file()
    roots = {name.split(".")[0] for name in ran["modules"]}
    assert not roots & {"pydantic", "pydantic_core", "anyio", "multiprocessing", "subprocess", "tempfile"}
    assert not {"mcp_kscan.reports", "mcp_kscan.runner.records", "importlib.resources"} & set(ran["modules"])


async def test_a_waiting_engine_takes_the_scan(tmp_path: Path) -> None:
    """A standby engine (``entry --standby``, started ahead with its imports done) runs the scan:
    the same outcome as a fresh process's, and the next standby waits, started once the scan's
    process had ended (not beside it, where its imports would take the workers' CPU)."""
    from mcp_kscan.engine.task import standby_kind
    from mcp_kscan.runner.standby import StandbyPool

    async with anyio.create_task_group() as tg:
        standbys = StandbyPool()
        standbys.bind(tg)
        try:
            standbys.prime(standby_kind())
            with anyio.fail_after(60):
                while not standbys.waiting:
                    await anyio.sleep(0.01)
            warm = standbys.waiting[0]
            with anyio.fail_after(60):  # named once it has armed its death signal, before its imports
                while _process_name(warm.pid) != b"kscan-standby":
                    await anyio.sleep(0.01)
            ctx = Ctx(tmp_path)
            context = ctx.context(tmp_path / "work")
            (tmp_path / "work").mkdir()
            context.standbys = standbys
            beside: list[int] = []
            run = context.run_process

            async def run_and_look(argv: list[str], **kwargs: Any) -> Any:
                result = await run(argv, **kwargs)
                beside.extend(s.pid for s in standbys.waiting)  # the scan's process has ended
                return result

            context.run_process = run_and_look
            job = BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"]), timeout_s=120)
            outcome = await job.run(context)
            assert outcome.status == ScanState.succeeded, outcome.error
            assert ctx.pids == [warm.pid]
            assert beside == [], "the next standby is started after the scan, not beside it"
            assert outcome.command == ["python", "-m", "mcp_kscan.engine.entry", "engine-spec.json", "report.json"]
            assert outcome.raw_file is not None
            with outcome.raw_file as fh:
                warm_report = json.loads(fh.read())
            fresh = json.loads(run_engine(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"])))
            assert warm_report["summaryDetails"] == fresh["summaryDetails"]
            assert outcome.summary is not None and outcome.item_rows is not None
            with anyio.fail_after(60):
                while not standbys.waiting:
                    await anyio.sleep(0.01)
            assert standbys.waiting[0].pid != warm.pid
        finally:
            await standbys.close()


def _process_name(pid: int) -> bytes:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.index(b"(") + 1:stat.rindex(b")")]


def _standby(stdin: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "mcp_kscan.engine.entry", "--standby", str(os.getpid())],
                          input=stdin, env=engine_env(), cwd=tmp_path, capture_output=True, timeout=120)


def test_a_standby_engine_reads_one_order_or_leaves(tmp_path: Path) -> None:
    """Closed without an order: it leaves quietly. A bad order: one error line, exit 1. An order:
    the scan, in the order's directory, as ``SPEC REPORT`` would run it."""
    quiet = _standby(b"", tmp_path)
    assert (quiet.returncode, quiet.stderr) == (0, b"")
    for args in (["--standby", "12x"], ["--standby"], ["--standby", "1", "2"]):
        usage = subprocess.run([sys.executable, "-m", "mcp_kscan.engine.entry", *args], input=b"", env=engine_env(),
                               cwd=tmp_path, capture_output=True, timeout=120)
        assert usage.returncode == 1 and json.loads(usage.stderr)["error"].startswith("usage:"), usage.stderr
    for bad in (b"not json\n", b'{"spec": 1}\n', b'["spec"]\n', b"x" * 70_000):
        refused = _standby(bad, tmp_path)
        assert refused.returncode == 1 and refused.stderr.count(b"\n") == 1, bad[:20]
        assert json.loads(refused.stderr)["error"].startswith("bad order"), refused.stderr
    work = tmp_path / "work"
    work.mkdir()
    spec = work / "spec.json"
    spec.write_bytes(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"], server_pid=os.getpid()).to_json())
    order = json.dumps({"spec": str(spec), "report": "report.json", "cwd": str(work)}).encode() + b"\n"
    ran = _standby(order, tmp_path)
    assert ran.returncode == 0, ran.stderr
    report = json.loads((work / "report.json").read_bytes())  # a relative name: in the order's directory
    assert report["summaryDetails"] == json.loads(run_engine(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"])))[
        "summaryDetails"]


async def test_unknown_framework_fails_cleanly(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    outcome = await BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)], frameworks=["cis"])).run(ctx.context(tmp_path))
    assert outcome.status == ScanState.failed and "unknown framework" in (outcome.error or "")
    assert "Traceback" not in (outcome.error or "")


async def test_deadline_gives_timed_out_and_stops_the_process(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(400):  # enough files that the scan outlives a tiny deadline even on a fast machine
        (big / f"f{i}.yaml").write_text("".join(
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}-{j}}}\ndata: {{k: v}}\n" for j in range(200)))
    ctx = Ctx(tmp_path, seconds=0.3)
    outcome = await BuiltinScanTask(EngineSpec(paths=[str(big)]), timeout_s=0.3).run(ctx.context(tmp_path))
    assert outcome.status == ScanState.timed_out, outcome.error
    for pgid in ctx.pids:  # the engine and its forked workers: none left running (zombies wait for a reaper)
        deadline = time.monotonic() + 10
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_members(pgid)


async def test_a_killed_engine_is_a_failed_scan(tmp_path: Path) -> None:
    class Killing(Ctx):
        async def run(self, argv: list[str], **kwargs: Any) -> Any:
            async def kill_soon(pid: int, pgid: int, ticks: int | None) -> None:
                os.killpg(pgid, 9)

            return await run_process(argv, timeout_s=60, kill_grace_s=0.5, on_start=kill_soon, **kwargs)

    ctx = Killing(tmp_path)
    outcome = await BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)])).run(ctx.context(tmp_path))
    assert outcome.status == ScanState.failed
    assert "killed by SIGKILL" in (outcome.error or "")


async def test_a_report_over_the_engine_cap_fails_naming_the_setting(tmp_path: Path) -> None:
    ctx = Ctx(tmp_path)
    outcome = await BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)], report_cap_bytes=4096)).run(ctx.context(tmp_path))
    assert outcome.status == ScanState.failed
    assert "over the built-in engine's report cap of 4096 (MCP_KSCAN_ENGINE_REPORT_CAP_BYTES)" in (outcome.error or "")


def test_the_server_gives_builtin_scans_the_engine_report_cap(tmp_path: Path) -> None:
    """The engine's own report has its own cap, big enough by default for a 10,000-resource scan
    (about 85 MB with every object), while scanner binaries keep the smaller output cap."""
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService
    from mcp_kscan.settings import Settings

    defaults = Settings.from_env({"MCP_KSCAN_DATA_DIR": str(tmp_path)})
    assert defaults.engine_report_cap_bytes == 256 * 1024 * 1024 > 85_000_000 > defaults.output_cap_bytes
    settings = Settings.from_env({"MCP_KSCAN_DATA_DIR": str(tmp_path), "MCP_KSCAN_ENGINE_REPORT_CAP_BYTES": "5000000"})
    job = ScanService(None, settings).kubescape_task(  # type: ignore[arg-type]  # no manager: nothing is queued
        KubescapeRequest.model_validate({"engine": "builtin", "paths": [str(EXAMPLES)]}, context={ALLOWED_ROOTS_KEY: []}))
    assert isinstance(job, BuiltinScanTask) and job.spec().report_cap_bytes == 5_000_000


async def test_the_result_is_published_at_the_report_and_the_items_follow(tmp_path: Path) -> None:
    """Given a ``publish``, the task hands over the result (report file, summary) when the
    engine says its report is whole, and at the engine's end the items (the same as the
    report's) and the files' hashes."""
    published: list[Any] = []

    class Publishing(Ctx):
        async def publish(self, outcome: Any) -> bool:
            with outcome.raw_file as fh:
                published.append((outcome, fh.read()))
            return True

        def context(self, tmp_path: Path) -> TaskContext:
            return TaskContext("s1", tmp_path, self.deadline, self.run, self.set_phase, self.set_progress,
                               publish=self.publish)

    ctx = Publishing(tmp_path)
    outcome = await BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)], frameworks=["nsa"])).run(ctx.context(tmp_path))
    assert len(published) == 1
    result, raw_bytes = published[0]
    assert result.status == ScanState.succeeded and result.item_rows is None
    assert result.summary is not None and result.summary.failed_controls_total > 0
    assert result.file_hashes is None  # only a fix reads them: they come with the items
    assert outcome.status == ScanState.succeeded, outcome.error
    assert outcome.raw_file is None and outcome.summary is None
    assert outcome.file_hashes == file_hashes([str(EXAMPLES)], ReadLimits())
    assert list(spelled_out(outcome.item_rows or ())) == list(report_items(parse_report(raw_bytes)))
    assert "parsing" not in ctx.phases  # nothing is left to read at the end but the items


async def test_a_publish_refused_leaves_the_whole_result_for_the_end(tmp_path: Path) -> None:
    class Refusing(Ctx):
        async def publish(self, outcome: Any) -> bool:
            return False

        def context(self, tmp_path: Path) -> TaskContext:
            return TaskContext("s1", tmp_path, self.deadline, self.run, self.set_phase, self.set_progress,
                               publish=self.publish)

    outcome = await BuiltinScanTask(EngineSpec(paths=[str(EXAMPLES)])).run(Refusing(tmp_path).context(tmp_path))
    assert outcome.status == ScanState.succeeded and outcome.raw_file is not None and outcome.summary is not None
    with outcome.raw_file as fh:
        assert list(spelled_out(outcome.item_rows or ())) == list(report_items(parse_report(fh.read())))


def test_progress_lines_say_when_the_report_is_whole() -> None:
    calls: list[int] = []
    lines = ProgressLines(lambda: calls.append(1))
    lines.feed(b'{"progress": [1, 1]}\n{"report": "not yet"}\n{"report": "ready", "x": 1}\n{"rep')
    assert calls == []
    lines.feed(b'ort": "ready"}\n')
    assert calls == [1]


def test_progress_lines_are_read_across_chunks() -> None:
    lines = ProgressLines()
    for chunk in (b'{"progress": [1, 5], "resources": [0, 7]}\n{"prog',
                  b'ress": [5, 5], "resour', b'ces": [4, 9]}\nnoise\n', b'{"error": "bad thing"}\n'):
        lines.feed(chunk)
    assert lines.progress == ScanProgress(5, 5, 4, 9) and lines.error == "bad thing"
    # Malformed progress is ignored, never half-read: the last good one stays.
    lines.feed(b'[1, 2]\n{not json\n{"progress": [6, 5]}\n{"progress": [1, 5], "resources": [1]}\n{"progress": [true, 5]}\n')
    assert lines.progress == ScanProgress(5, 5, 4, 9)
    # An engine that reports files only (no "resources") still reads as files.
    lines.feed(b'{"progress": [2, 3]}\n')
    assert lines.progress == ScanProgress(2, 3, 0, 0)


async def test_a_scan_answered_once_indexes_no_findings_and_says_so(tmp_path: Path) -> None:
    """REST's ``wait=true`` without ``keep`` hands the report out and deletes the result, so the
    built-in engine works out its summary only (``index_findings=False``): the report and summary
    are the same as an indexed scan's, no finding is stored, and a view of its findings says why
    instead of answering an empty page."""
    from mcp_kscan.errors import InvalidRequest
    from mcp_kscan.runner.manager import ScanManager
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService
    from mcp_kscan.settings import Settings

    settings = Settings.from_env({"MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "MCP_KSCAN_ALLOWED_ROOTS": str(EXAMPLES)})
    req = KubescapeRequest.model_validate({"engine": "builtin", "paths": [str(EXAMPLES)]},
                                          context={ALLOWED_ROOTS_KEY: [str(EXAMPLES)]})
    async with ScanManager(settings) as manager:
        service = ScanService(manager, settings)
        done = {}
        for indexed in (True, False):
            record = await service.start_kubescape(req, index_findings=indexed)
            while record.status not in (ScanState.succeeded, ScanState.failed, ScanState.timed_out):
                record = await service.wait(record.scan_id, 30)
            assert record.status is ScanState.succeeded, record.error
            done[indexed] = record
        kept, once = done[True], done[False]
        assert once.summary == kept.summary and once.request["index_findings"] is False
        assert "index_findings" not in kept.request
        reports = [json.loads((await service.raw_report(r.scan_id))[0]) for r in (kept, once)]
        for report in reports:
            report.pop("generationTime"), report.pop("reportGUID")
        assert reports[0] == reports[1] and reports[0]["results"]
        page = await service.results_page(kept.scan_id, "findings")
        assert page.total_matching and page.findings
        with pytest.raises(InvalidRequest, match="its findings were not indexed; scan again with keep=true"):
            await service.results_page(once.scan_id, "findings")
        rows = manager.store._call(lambda c: [c.execute(f"SELECT COUNT(*) FROM {t} WHERE scan_id=?", (once.scan_id,))
                                              .fetchone()[0] for t in ("items", "item_runs", "item_resources",
                                                                        "scan_files")], write=False)
        assert rows == [0, 0, 0, 0]
