"""``BuiltinScanTask``: the built-in engine as a scan the runner can queue, time out and store.

It takes plain keyword arguments (not the Kubescape request model) so the service layer can build
it from any front end's request. The scan runs in its own process (``engine.entry``), started by
``ctx.run_process`` exactly like a scanner binary: its own process group, the scan's deadline,
the output cap, SIGTERM→SIGKILL on timeout or cancel, the group recorded for clean-up after a
server crash. The server only reads the progress lines and, at the end, the report file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

import mcp_kscan
from mcp_kscan.engine.digest import item_rows, read_file_hashes, read_summary
from mcp_kscan.engine.entry import EXIT_BAD_SELECTION, REPORT_READY, EngineSpec
from mcp_kscan.engine.progress import ScanProgress
from mcp_kscan.runner.process import ProcessResult
from mcp_kscan.runner.records import ScanState, ScanTask, TaskContext, TaskOutcome
from mcp_kscan.runner.standby import StandbyKind
from mcp_kscan.scanners.common import ScanOutputError, minimal_env

if TYPE_CHECKING:
    from mcp_kscan.scan_plan import BuiltinPlan

log = logging.getLogger(__name__)

SPEC_NAME, REPORT_NAME = "engine-spec.json", "report.json"
_PROGRESS_SAVE_S = 0.5
"""How often progress is written to the record (the child reports more often)."""


class ProgressLines:
    """Reads the child's JSON lines from stderr chunks: the latest progress and the last error;
    ``on_report`` is called when the engine says its report is whole (``entry.REPORT_READY``)."""

    def __init__(self, on_report: Callable[[], None] | None = None) -> None:
        self._partial = b""
        self.progress: ScanProgress | None = None
        self.error: str | None = None
        self.on_report = on_report

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[-4096:]  # an unterminated line is kept, within reason
        for line in lines:
            if not line.startswith(b"{"):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            progress = ScanProgress.from_message(message)
            if progress is not None:
                self.progress = progress
            if isinstance(message.get("error"), str):
                self.error = message["error"]
            if message == REPORT_READY and self.on_report is not None:
                self.on_report()


def engine_argv(spec_path: Path, report_path: Path) -> list[str]:
    """The same interpreter as the server, so the child runs the same code and dependencies."""
    return [sys.executable, "-m", "mcp_kscan.engine.entry", str(spec_path), str(report_path)]


def standby_kind(server_pid: int | None = None) -> StandbyKind:
    """The engine started ahead of its scan (``entry --standby``, ``runner.standby``): the same
    interpreter and environment as ``engine_argv``'s, told which server to die with; it enters
    the scan's directory when its order comes."""
    pid = os.getpid() if server_pid is None else server_pid
    return StandbyKind.of([sys.executable, "-m", "mcp_kscan.engine.entry", "--standby", str(pid)],
                          engine_env(), tempfile.gettempdir())


def engine_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment (never the server's token), plus where this very package is imported from."""
    base = os.environ if base is None else base
    package_parent = str(Path(mcp_kscan.__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (package_parent, base.get("PYTHONPATH", "")) if p)
    return minimal_env(base, {"PYTHONPATH": python_path, "PYTHONDONTWRITEBYTECODE": "1"})


class BuiltinScanTask(ScanTask):
    """Scan ``paths`` (or, with none, the live cluster) with the built-in engine."""

    scanner = "kubescape"
    engine = "builtin"

    def __init__(self, spec: EngineSpec, timeout_s: float = 600.0, request: Mapping[str, Any] | None = None) -> None:
        """A task for ``spec``; the server's and the CLI's specs come from the one planner
        (``scan_plan.builtin_plan``, through ``from_plan``), tests write theirs out."""
        self._plan(spec, timeout_s, request)

    @classmethod
    def from_plan(cls, plan: BuiltinPlan, *, request: Mapping[str, Any]) -> BuiltinScanTask:
        """The task for a plan of ``scan_plan.builtin_plan`` (the one planner), stored with ``request``."""
        return cls(plan.spec, plan.timeout_s, request)

    def _plan(self, spec: EngineSpec, timeout_s: float, request: Mapping[str, Any] | None) -> None:
        self.base_spec = spec
        """What the engine process evaluates; ``spec()`` adds the scan's private directory."""
        self.timeout_s = timeout_s
        self.paths = list(spec.paths)
        self.read_limits = spec.limits()
        cluster = spec.cluster or {}
        self.request = dict(request) if request is not None else {
            "paths": spec.paths, "frameworks": spec.frameworks, "controls": spec.controls,
            "include_namespaces": spec.include_namespaces, "exclude_namespaces": spec.exclude_namespaces,
            "kube_context": cluster.get("context"), "engine": "builtin",
        }

    def spec(self, digest_dir: Path | None = None, server_pid: int | None = None) -> EngineSpec:
        return replace(self.base_spec, digest_dir=str(digest_dir) if digest_dir else None, server_pid=server_pid)

    async def run(self, ctx: TaskContext) -> TaskOutcome:
        await ctx.set_phase("running")
        workdir = Path(ctx.workdir)
        spec_path, report_path = workdir / SPEC_NAME, workdir / REPORT_NAME
        spec_path.write_bytes(self.spec(digest_dir=workdir, server_pid=os.getpid()).to_json())
        report_ready = anyio.Event()
        lines = ProgressLines(report_ready.set)
        saved: list[ScanProgress | None] = [None]
        published = False
        waiting = anyio.CancelScope()

        async def publish_when_ready() -> None:
            # The result is stored as soon as the report is whole, the items when the engine
            # ends: the caller sees the scan done a third of a second sooner (a 10,000-resource
            # scan on a 2 vCPU machine: the items are worked out and copied after the report).
            nonlocal published
            with waiting:
                await report_ready.wait()
            if ctx.publish is None or not report_ready.is_set():  # the engine ended without the line
                return
            outcome = await self._result(ctx, report_path, self._common(), with_items=False)
            if outcome.status is ScanState.succeeded:
                if lines.progress is not None and lines.progress != saved[0]:
                    await save(lines.progress)  # the last word (every file read) goes with the result
                published = await ctx.publish(outcome)
            if not published and outcome.raw_file is not None:
                outcome.raw_file.close()  # read again at the end, as a scan that published nothing

        async def save(progress: ScanProgress) -> None:
            saved[0] = progress
            await ctx.set_progress(progress.files_done, progress.files_total,
                                   resources=(progress.resources_done, progress.resources_total))

        saving = anyio.CancelScope()

        async def save_progress() -> None:
            with saving:
                while True:
                    await anyio.sleep(_PROGRESS_SAVE_S)
                    if lines.progress is not None and lines.progress != saved[0]:
                        await save(lines.progress)

        # A standby engine (started ahead, its imports done) takes the scan when one waits.
        warm: dict[str, Any] = {}
        if ctx.standbys is not None:
            standby = ctx.standbys.take(standby_kind())
            if standby is not None:
                order = {"spec": str(spec_path), "report": str(report_path), "cwd": str(workdir)}
                warm = {"standby": standby, "order": (json.dumps(order) + "\n").encode("utf-8")}
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(save_progress)
                tg.start_soon(publish_when_ready)
                result = await ctx.run_process(engine_argv(spec_path, report_path), env=engine_env(), cwd=workdir,
                                               on_stderr=lines.feed, arms_death_signal=True, **warm)
                waiting.cancel()  # a publication under way is let finish: the group waits for it
                saving.cancel()
        finally:
            if ctx.standbys is not None:  # the next scan's, now that this one's workers are done
                ctx.standbys.prime(standby_kind())
        if not published and lines.progress is not None and lines.progress != saved[0]:
            await save(lines.progress)
        return await self._outcome(ctx, result, lines, report_path, published)

    def _common(self, return_code: int | None = None) -> dict[str, Any]:
        # The argv without the server's paths (interpreter, private directory): what ran, readably.
        shown = ["python", "-m", "mcp_kscan.engine.entry", SPEC_NAME, REPORT_NAME]
        return {"engine": self.engine, "command": shown, "return_code": return_code}

    async def _outcome(self, ctx: TaskContext, result: ProcessResult, lines: ProgressLines,
                       report_path: Path, published: bool = False) -> TaskOutcome:
        """The task's outcome from the engine's end; after ``published``, only its items matter
        (a failure here means they never come: the runner records why)."""
        common = self._common(result.return_code)
        if result.timed_out:
            return TaskOutcome(status=ScanState.timed_out, error=f"timed out after {self.timeout_s:g}s; "
                              "the engine's processes were stopped", **common)
        if result.return_code != 0:
            if result.return_code == EXIT_BAD_SELECTION and lines.error:
                return TaskOutcome(status=ScanState.failed, error=lines.error, **common)
            if result.return_code is not None and result.return_code < 0:
                why = f"the engine process was killed by {signal.Signals(-result.return_code).name}"
            else:
                why = lines.error or result.stderr_tail(300) or f"exit status {result.return_code}"
            return TaskOutcome(status=ScanState.failed, error=f"built-in engine: {why}",
                              stderr_tail=result.stderr_tail(), **common)
        if published:  # the items, and the files' hashes (only a fix reads them: stored with the items)
            try:
                return TaskOutcome(status=ScanState.succeeded, item_rows=item_rows(Path(ctx.workdir)),
                                   file_hashes=await anyio.to_thread.run_sync(read_file_hashes, Path(ctx.workdir)),
                                   **common)
            except (OSError, ValueError) as exc:
                return TaskOutcome(status=ScanState.failed, error=f"built-in engine: no items ({exc.__class__.__name__})",
                                  **common)
        await ctx.set_phase("parsing")
        return await self._result(ctx, report_path, common, with_items=True)

    async def _result(self, ctx: TaskContext, report_path: Path, common: dict[str, Any], *,
                      with_items: bool) -> TaskOutcome:
        """The scan's result from the engine's files: its summary and report, and with
        ``with_items`` its items and file hashes (else they come later: ``TaskContext.publish``)."""
        try:
            summary = await anyio.to_thread.run_sync(read_summary, Path(ctx.workdir))
            # The digest of each file as the engine read it (never a second read here, before or
            # after the scan, as for a scanner binary: fixes.hashes.scan_with_hashes).
            hashes = await anyio.to_thread.run_sync(read_file_hashes, Path(ctx.workdir)) if with_items else None
        except (OSError, ValueError, ScanOutputError) as exc:
            return TaskOutcome(status=ScanState.failed, error=f"built-in engine: no summary ({exc.__class__.__name__})",
                              **common)
        try:
            # Opened here, read by the store (the manager removes the scan's directory only after it).
            report = await anyio.to_thread.run_sync(report_path.open, "rb")  # the manager closes it
        except OSError:
            return TaskOutcome(status=ScanState.failed, error="built-in engine: it wrote no report", **common)
        try:
            rows = item_rows(Path(ctx.workdir)) if with_items else None
        except OSError as exc:
            report.close()
            return TaskOutcome(status=ScanState.failed, error=f"built-in engine: no items ({exc.__class__.__name__})",
                              **common)
        # No report object, no report bytes: the engine process computed the item rows and wrote
        # the report's head, read here into the summary (engine.digest); the store copies the
        # report from its file.
        return TaskOutcome(status=ScanState.succeeded, raw_file=report, summary=summary, item_rows=rows,
                           file_hashes=hashes, **common)
