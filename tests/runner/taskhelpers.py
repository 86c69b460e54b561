"""A minimal real-process ScanTask for exercising the manager without a scanner adapter."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mcp_kscan.runner.records import TaskContext, TaskOutcome, ScanTask, ScanState


class ScriptTask(ScanTask):
    """Runs ``python -c script``: exit 0 succeeds with stdout as the raw output, else fails with stderr's tail."""

    scanner = "kubescape"
    engine = "test-script"

    def __init__(
        self,
        script: str,
        timeout_s: float = 30,
        request: Mapping[str, Any] | None = None,
        secrets: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.script = script
        self.timeout_s = timeout_s
        self.request = dict(request or {"script": "test"})
        self.secrets = tuple(secrets)
        self.env = dict(env) if env else None

    async def run(self, ctx: TaskContext) -> TaskOutcome:
        result = await ctx.run_process([sys.executable, "-c", self.script], env=self.env, cwd=ctx.workdir)
        if result.timed_out:
            return TaskOutcome(
                status=ScanState.timed_out,
                error="timed out",
                raw_output=result.stdout,
                command=result.argv,
                return_code=result.return_code,
            )
        if result.return_code != 0:
            return TaskOutcome(
                status=ScanState.failed,
                error=f"exit {result.return_code}: {result.stderr_tail(300)}",
                command=result.argv,
                return_code=result.return_code,
            )
        return TaskOutcome(
            status=ScanState.succeeded, raw_output=result.stdout, command=result.argv, return_code=0
        )


def waits_for(release: Path) -> str:
    """A script that runs until ``release`` exists (a minute at most, then it fails): a scan that
    stays running while a test looks at it, with no fixed sleep to wait out."""
    return (f"import os, sys, time\nend = time.monotonic() + 60\nwhile not os.path.exists({str(release)!r}):\n"
            "    if time.monotonic() > end: sys.exit('never released')\n    time.sleep(0.02)\n")
