"""BuiltinScanJob runs the engine off the event loop and hands the runner a complete outcome."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_kscan.engine.job import BuiltinScanJob
from mcp_kscan.runner.records import JobContext, ScanState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.anyio


def make_ctx(tmp_path: Path, seconds: float = 60) -> tuple[JobContext, list[str]]:
    phases: list[str] = []

    async def set_phase(p: str) -> None:
        phases.append(p)

    async def set_progress(done: int, total: int) -> None:
        pass

    async def no_process(*a: Any, **k: Any) -> Any:
        raise AssertionError("the built-in engine runs no process")

    return JobContext("s1", tmp_path, anyio.current_time() + seconds, no_process, set_phase, set_progress), phases


async def test_job_succeeds_with_raw_report_and_summary(tmp_path: Path) -> None:
    job = BuiltinScanJob(paths=[str(EXAMPLES)], frameworks=["nsa"], timeout_s=60)
    assert (job.scanner, job.engine) == ("kubescape", "builtin")
    ctx, phases = make_ctx(tmp_path)
    outcome = await job.run(ctx)
    assert outcome.status == ScanState.succeeded and outcome.engine == "builtin"
    raw = json.loads(outcome.raw_output)
    assert raw["metadata"]["engine"]["name"] == "mcp-kscan-builtin"
    assert phases[0] == "running"
    if outcome.report is not None:  # the project parser is present
        assert outcome.report.engine == "mcp-kscan-builtin"
        assert outcome.summary is not None and outcome.summary.failed_controls_total > 0


async def test_unknown_framework_fails_cleanly(tmp_path: Path) -> None:
    outcome = await BuiltinScanJob(paths=[str(EXAMPLES)], frameworks=["cis"]).run(make_ctx(tmp_path)[0])
    assert outcome.status == ScanState.failed and "unknown framework" in (outcome.error or "")


async def test_runs_off_the_event_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    job = BuiltinScanJob(paths=[str(EXAMPLES)])
    real = job._scan

    def spy() -> bytes:
        seen.append(threading.get_ident())
        return real()

    monkeypatch.setattr(job, "_scan", spy)
    outcome = await job.run(make_ctx(tmp_path)[0])
    assert outcome.status == ScanState.succeeded and seen and seen[0] != loop_thread


async def test_deadline_gives_timed_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    job = BuiltinScanJob(paths=[str(EXAMPLES)])
    monkeypatch.setattr(job, "_scan", lambda: (release.wait(5), b"{}")[1])
    try:
        outcome = await job.run(make_ctx(tmp_path, seconds=0.2)[0])
    finally:
        release.set()
    assert outcome.status == ScanState.timed_out
