"""``BuiltinScanJob``: the built-in engine as a scan the runner can queue, time out and store.

It takes plain keyword arguments (not the Kubescape request model) so the service layer can build
it from any front end's request. The scan runs in a worker thread: the event loop never parses
YAML or walks a cluster.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from mcp_kscan.engine.frameworks import UnknownSelection
from mcp_kscan.engine.inputs import ControlsConfigError
from mcp_kscan.reports import summarize_kubescape
from mcp_kscan.runner.records import JobContext, JobOutcome, ScanJob, ScanState
from mcp_kscan.scanners.kubescape import parse_report

if TYPE_CHECKING:
    from mcp_kscan.cluster import ClusterSource

log = logging.getLogger(__name__)


class BuiltinScanJob(ScanJob):
    """Scan ``paths`` (or, with none, the live cluster) with the built-in engine."""

    scanner = "kubescape"
    engine = "builtin"

    def __init__(
        self,
        *,
        paths: Sequence[str] = (),
        frameworks: Sequence[str] | None = None,
        controls: Sequence[str] | None = None,
        include_namespaces: Sequence[str] = (),
        exclude_namespaces: Sequence[str] = (),
        cluster: ClusterSource | None = None,
        timeout_s: float = 600.0,
        request: Mapping[str, Any] | None = None,
        omit_raw_resources: bool = False,
        controls_config: str | None = None,
    ) -> None:
        self.paths = list(paths)
        self.frameworks = list(frameworks) if frameworks else None
        self.controls = list(controls) if controls else None
        self.include_namespaces = list(include_namespaces)
        self.exclude_namespaces = list(exclude_namespaces)
        self.cluster = cluster
        """Where a cluster scan (no ``paths``) lists objects: chosen by ``mcp_kscan.cluster.resolve_cluster``."""
        self.timeout_s = timeout_s
        self.omit_raw_resources = omit_raw_resources
        self.controls_config = controls_config
        self.request = dict(request) if request is not None else {
            "paths": self.paths, "frameworks": self.frameworks, "controls": self.controls,
            "include_namespaces": self.include_namespaces, "exclude_namespaces": self.exclude_namespaces,
            "kube_context": cluster.context if cluster else None, "engine": "builtin",
        }

    def _scan(self) -> bytes:
        """The whole scan, synchronous (runs in a worker thread); returns the v2 JSON bytes."""
        from mcp_kscan.engine.inputs import load_controls_config

        # Read when the scan runs (the request validated it), so the scan uses the file as it is now.
        inputs = load_controls_config(self.controls_config) if self.controls_config else None
        if self.paths:
            from mcp_kscan.engine.parallel import scan_paths_json

            # One process: forking a server that runs threads (event loop, store) is not safe.
            return scan_paths_json(self.paths, self.frameworks, self.controls,
                                   omit_raw_resources=self.omit_raw_resources, workers=1, inputs=inputs)
        else:
            from mcp_kscan.engine.cluster import ClusterError, scan_cluster

            if self.cluster is None:
                raise ClusterError(
                    "no cluster configured: the server has no kubeconfig (KUBECONFIG, ~/.kube/config) and "
                    "no in-cluster service account; give paths to scan manifests"
                )
            report = scan_cluster(
                self.cluster, frameworks=self.frameworks, controls=self.controls, include_namespaces=self.include_namespaces,
                exclude_namespaces=self.exclude_namespaces, omit_raw_resources=self.omit_raw_resources,
                inputs=inputs,
            )
        return json.dumps(report, ensure_ascii=False).encode("utf-8")

    async def run(self, ctx: JobContext) -> JobOutcome:
        await ctx.set_phase("running")
        remaining = max(0.001, ctx.deadline - anyio.current_time())
        raw: bytes | None = None
        try:
            with anyio.move_on_after(remaining) as scope:
                # abandon_on_cancel: a cancelled or timed-out scan stops waiting for the thread at
                # once; the thread finishes its (bounded, in-memory) work and its result is dropped.
                raw = await anyio.to_thread.run_sync(self._scan, abandon_on_cancel=True)
        except UnknownSelection as exc:
            return JobOutcome(status=ScanState.failed, error=str(exc), engine=self.engine)
        except ControlsConfigError as exc:  # the file changed since the request was validated
            return JobOutcome(status=ScanState.failed, error=f"controls_config: {exc}", engine=self.engine)
        except Exception as exc:  # noqa: BLE001 - scan problems become a failed outcome, not a crash
            log.warning("built-in scan failed: %s", exc, exc_info=True)
            return JobOutcome(status=ScanState.failed, error=f"built-in engine: {_one_line(exc)}", engine=self.engine)
        if scope.cancelled_caught or raw is None:
            return JobOutcome(status=ScanState.timed_out, error=f"timed out after {remaining:.0f}s", engine=self.engine)
        await ctx.set_phase("parsing")
        report = await anyio.to_thread.run_sync(parse_report, raw)
        summary = summarize_kubescape(report)
        return JobOutcome(
            status=ScanState.succeeded, raw_output=raw, report=report, summary=summary,
            command=None, return_code=0, engine=self.engine,
        )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:300]
