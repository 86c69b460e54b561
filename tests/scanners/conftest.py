"""Fixtures for the scanner adapter tests: a TaskContext around the real process runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_kscan.runner.process import ProcessResult, run_process
from mcp_kscan.runner.records import TaskContext


class CtxRecorder:
    """A TaskContext the way the scan manager builds one, plus what the job told it."""

    def __init__(self, workdir: Path, timeout_s: float) -> None:
        self.phases: list[str] = []
        self.results: list[ProcessResult] = []
        self.extra_kwargs: dict[str, Any] = {}
        """Passed to run_process as the manager would (stdout_cap, ...)."""
        self.timeout_s = timeout_s
        workdir.mkdir(mode=0o700, exist_ok=True)
        self.ctx = TaskContext(
            scan_id="test-scan",
            workdir=workdir,
            deadline=anyio.current_time() + timeout_s if _in_loop() else 0.0,
            run_process=self._run,
            set_phase=self._phase,
            set_progress=self._progress,
        )

    async def _run(self, argv: list[str], **kwargs: Any) -> ProcessResult:
        kwargs.setdefault("timeout_s", self.timeout_s)
        kwargs.setdefault("kill_grace_s", 1.0)
        for key, value in self.extra_kwargs.items():
            kwargs.setdefault(key, value)
        result = await run_process(argv, **kwargs)
        self.results.append(result)
        return result

    async def _phase(self, phase: str) -> None:
        self.phases.append(phase)

    async def _progress(self, done: int, total: int) -> None:
        pass


def _in_loop() -> bool:
    try:
        anyio.current_time()
        return True
    except Exception:
        return False


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., CtxRecorder]:
    counter = iter(range(1000))

    def make(timeout_s: float = 30.0) -> CtxRecorder:
        return CtxRecorder(tmp_path / f"work{next(counter)}", timeout_s)

    return make
