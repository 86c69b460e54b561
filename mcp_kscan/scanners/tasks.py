"""Scan tasks for the runner: kube-bench and the Kubescape binary.

A task never raises for a scanner problem (missing binary, bad exit code, garbage output): it
returns a ``failed`` outcome with a one- or two-line, redacted message. Only bugs escape.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.errors import BinaryNotFound
from mcp_kscan.fixes.hashes import scan_with_hashes
from mcp_kscan.redact import redact_mapping, redact_text
from mcp_kscan.reports import summarize_kube_bench, summarize_kubescape
from mcp_kscan.runner.process import ProcessResult
from mcp_kscan.runner.records import TaskContext, TaskOutcome, ScanTask, ScanState
from mcp_kscan.cluster.node_role import host_runs_kubernetes
from mcp_kscan.readers.kube_bench_json import NO_COMPONENTS_WARNING, parse_output
from mcp_kscan.readers.kubescape_report import parse_report
from mcp_kscan.scanners import kube_bench_argv, kubescape_argv
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.kubescape_request import KubescapeRequest
from mcp_kscan.scanners.binaries import find_binary
from mcp_kscan.scanners.common import ScanOutputError, minimal_env, stderr_tail
from mcp_kscan.settings import Settings

if TYPE_CHECKING:
    from mcp_kscan.cluster import ClusterSource

HOST_WARNING = (
    "No Kubernetes component (kubelet, kube-apiserver, etcd, k3s...) is running on this host, and "
    "kube-bench only checks the machine it runs on: treat these results as not describing a cluster."
)

_ERROR_LINE_RE = re.compile(r"^(Error:|error:|\[error\]|\[fatal\])", re.I)


def _describe_exit(tool: str, result: ProcessResult) -> str:
    """One or two lines: what happened and the line of stderr that says why."""
    rc = result.return_code
    lines = result.stderr[-8000:].decode("utf-8", "replace").splitlines()
    # cobra prints "Error: ..." then the whole usage text: quote the error, not the usage.
    errors = [ln.strip() for ln in lines if _ERROR_LINE_RE.match(ln.strip())]
    detail = redact_text(errors[-1][:300]) if errors else stderr_tail(result.stderr)
    if not detail and result.stdout:
        detail = stderr_tail(result.stdout[:2000])
    if rc is not None and rc < 0:
        what = f"{tool} was killed by signal {-rc}"
    elif tool == "kube-bench" and rc == 255:
        what = f"{tool} rejected its command line (exit 255)"
    else:
        what = f"{tool} failed (exit {rc})"
    return f"{what}: {detail}" if detail else what


def _timeout_message(tool: str, result: ProcessResult) -> str:
    return f"{tool} did not finish within {result.duration_s:g} s and was stopped"


class KubeBenchTask(ScanTask):
    """Runs ``kube-bench [run --targets …] --json`` locally and parses its stdout."""

    scanner = "kube-bench"
    engine = "kube-bench"

    def __init__(
        self, req: KubeBenchRequest, settings: Settings, *, check_host: bool = True,
        proc_root: Path = Path("/proc"),
    ) -> None:
        self.req = req
        self.settings = settings
        self.timeout_s = settings.scan_timeout(req.timeout_seconds)
        self.request = redact_mapping(req.model_dump(mode="json"))
        self.secrets = ()
        self.check_host = check_host
        """Also look in /proc for Kubernetes processes (off for runs that are not on this host)."""
        self.proc_root = proc_root

    async def run(self, ctx: TaskContext) -> TaskOutcome:
        try:
            binary = find_binary("kube-bench", self.settings)
        except BinaryNotFound as exc:
            return TaskOutcome(status=ScanState.failed, error=str(exc), engine=self.engine)
        argv = kube_bench_argv.build_argv(self.req, binary)
        kubeconfig = self.settings.kubeconfig
        env = minimal_env(extra={"KUBECONFIG": kubeconfig} if kubeconfig else None)
        result = await ctx.run_process(argv, env=env, cwd=ctx.workdir)
        if result.timed_out:
            return _outcome(
                self, result, ScanState.timed_out,
                error=_timeout_message("kube-bench", result), raw_output=result.stdout or None,
            )
        ok_codes = {0}
        requested = kube_bench_argv.requested_exit_code(self.req)
        if requested is not None:
            ok_codes.add(requested)  # `--exit-code N`: exit N with a report means FAILs were found
        if result.return_code not in ok_codes:
            return _outcome(self, result, ScanState.failed, error=_describe_exit("kube-bench", result))
        await ctx.set_phase("parsing")
        if result.stdout_truncated:
            return _outcome(
                self, result, ScanState.failed,
                error=f"kube-bench output ({result.stdout_bytes} bytes) exceeds the output cap "
                "(MCP_KSCAN_OUTPUT_CAP_BYTES); narrow the scan with targets/check/group",
            )
        try:
            report = parse_output(result.stdout)
        except ScanOutputError as exc:
            error = f"{exc} (exit {result.return_code})" + _tail_suffix(result)
            return _outcome(self, result, ScanState.failed, error=error)
        if (
            self.check_host
            and NO_COMPONENTS_WARNING not in report.warnings
            and host_runs_kubernetes(self.proc_root) is False
        ):
            report.warnings.append(HOST_WARNING)
        return _outcome(
            self, result, ScanState.succeeded,
            raw_output=result.stdout, report=report, summary=summarize_kube_bench(report),
        )


class KubescapeTask(ScanTask):
    """Runs ``kubescape scan … --format json --output <workdir>/report.json`` and parses the file."""

    scanner = "kubescape"
    engine = "kubescape"
    REPORT_NAME = "report.json"

    def __init__(
        self, req: KubescapeRequest, settings: Settings, *, cluster: ClusterSource | None = None
    ) -> None:
        self.req = req
        self.settings = settings
        self.cluster = cluster
        """The operator's kubeconfig and the chosen context (``cluster.resolve_cluster``); None for file scans."""
        self.timeout_s = settings.scan_timeout(req.timeout_seconds)
        key = kubescape_argv.access_key_of(req, settings)
        # This scan's secret only: the runner scrubs it from this scan's outputs and log lines.
        self.secrets = (key,) if key else ()
        self.request = redact_mapping(req.model_dump(mode="json"), self.secrets)

    async def run(self, ctx: TaskContext) -> TaskOutcome:
        limits = ReadLimits.create(self.settings.max_file_bytes, self.settings.allowed_roots)
        return await scan_with_hashes(list(self.req.paths), limits, lambda: self._run(ctx))

    async def _run(self, ctx: TaskContext) -> TaskOutcome:
        try:
            binary = find_binary("kubescape", self.settings)
        except BinaryNotFound as exc:
            return TaskOutcome(status=ScanState.failed, error=str(exc), engine=self.engine)
        output = Path(ctx.workdir) / self.REPORT_NAME
        context = self.cluster.context if self.cluster else None
        kubeconfig = self.cluster.kubeconfig if self.cluster else None
        argv = kubescape_argv.build_argv(self.req, binary, output, kube_context=context)
        env = kubescape_argv.build_env(self.req, self.settings, kubeconfig=kubeconfig)
        result = await ctx.run_process(argv, env=env, cwd=ctx.workdir)
        cap = self.settings.output_cap_bytes
        size = output.stat().st_size if output.is_file() else 0
        raw = output.read_bytes() if 0 < size <= cap else None
        if result.timed_out:
            return _outcome(
                self, result, ScanState.timed_out, error=_timeout_message("Kubescape", result), raw_output=raw
            )
        rc = result.return_code
        # Exit 1 also means "a threshold gate failed", and Kubescape writes the report first.
        if rc not in (0, 1) or (rc == 1 and not size):
            return _outcome(self, result, ScanState.failed, error=_describe_exit("Kubescape", result))
        if size > cap:
            return _outcome(
                self, result, ScanState.failed,
                error=f"Kubescape report ({size} bytes) exceeds the output cap (MCP_KSCAN_OUTPUT_CAP_BYTES); "
                "narrow the scan (namespaces, frameworks, paths)",
                output_truncated=True,
            )
        if not raw:
            error = f"Kubescape exited {rc} but wrote no report" + _tail_suffix(result)
            return _outcome(self, result, ScanState.failed, error=error)
        await ctx.set_phase("parsing")
        try:
            report = parse_report(raw)
        except ScanOutputError as exc:
            return _outcome(self, result, ScanState.failed, error=f"{exc} (exit {rc})" + _tail_suffix(result))
        if rc == 1:
            report.errors.append(
                "Kubescape exited 1 after writing the report (a compliance/severity threshold was not met)"
                + _tail_suffix(result)
            )
        return _outcome(
            self, result, ScanState.succeeded, raw_output=raw, report=report, summary=summarize_kubescape(report)
        )


def _outcome(task: ScanTask, result: ProcessResult, status: ScanState, **fields: Any) -> TaskOutcome:
    """An outcome carrying what every outcome of a run process carries: argv, exit code, engine."""
    fields.setdefault("output_truncated", result.truncated)
    fields.setdefault("stderr_tail", result.stderr_tail(4000) or None)
    return TaskOutcome(status=status, command=result.argv, return_code=result.return_code, engine=task.engine, **fields)


def _tail_suffix(result: ProcessResult) -> str:
    tail = stderr_tail(result.stderr, 200)
    return f"; stderr: {tail}" if tail else ""


__all__ = ["KubeBenchTask", "KubescapeTask", "HOST_WARNING"]
