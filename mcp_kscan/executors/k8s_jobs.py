"""kube-bench as Kubernetes Jobs: one Job per selected node, watched, read, parsed and merged.

Why Jobs: kube-bench checks the machine it runs on, so a server on a laptop learns nothing about
a cluster by running it locally. kube-bench's own answer is a Job on the node; this module runs
one per node, with Kubernetes doing the distribution (scheduling, pulling, running, TTL
clean-up). Nothing here polls: two watches (Pods and Jobs of this scan, by label) feed one
dispatcher that wakes the task waiting for each node.

Lifecycle of a scan (``KubeBenchJobsScan.run``):
1. client from the cluster resolver (mcp_kscan.cluster: the operator's kubeconfig and a context, or in-cluster);
2. API server version and nodes → node selection, managed-platform detection (EKS/GKE/AKS pick
   their benchmark and targets), per-node argv built by ``scanners.kube_bench_argv.build_argv``;
3. namespace (created when missing, labelled for privileged Pod Security);
4. per node, at most ``max_parallel_jobs`` at once: create the Job, wait for a verdict from the
   watches (done, non-zero exit, image pull failure, unschedulable) or the scan deadline, read
   the pod log (kube-bench's JSON), parse it, delete the Job (unless ``keep_jobs``);
5. one record: checks from every node (each naming its node), totals per node and overall.

Failures are per node and kept beside the other nodes' results. Cancellation (or any error)
deletes every Job of the scan in a shielded ``finally``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mcp_kscan.errors import InvalidRequest
from mcp_kscan.executors import job_manifest as jm
from mcp_kscan.cluster import ClusterConfigError, ClusterSource, new_api_client, resolve_cluster, safe_api_error
from mcp_kscan.executors.node_runs import NodeInfo, NodeRun, judge_pod, node_info
from mcp_kscan.executors.platform import Platform, detect_platform, plan_targets
from mcp_kscan.executors.pod_log import extract_report
from mcp_kscan.executors.watch import API_TIMEOUT_S, WatchThread
from mcp_kscan.redact import redact_mapping, redact_text
from mcp_kscan.reports import KubeBenchReport, KubeBenchTotals, NodeTotals, summarize_kube_bench
from mcp_kscan.runner.records import TaskContext, TaskOutcome, ScanTask, ScanState
from mcp_kscan.scanners import kube_bench_argv
from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
from mcp_kscan.scanners.common import ScanOutputError
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

ENGINE = "kube-bench-job"
CLEANUP_TIMEOUT_S = 20.0

# Every (API group, resource, verb) this module calls, cluster-wide or in the Jobs' namespace.
# deploy/kube-bench-rbac.yaml grants exactly these; a test keeps the two in step.
CLUSTER_PERMISSIONS = (("", "nodes", "list"), ("", "namespaces", "get"), ("", "namespaces", "create"))
NAMESPACE_PERMISSIONS = (
    ("batch", "jobs", "create"), ("batch", "jobs", "list"), ("batch", "jobs", "watch"),
    ("batch", "jobs", "delete"), ("batch", "jobs", "deletecollection"),
    ("", "pods", "list"), ("", "pods", "watch"), ("", "pods/log", "get"),
)



def _api_error(action: str, exc: BaseException) -> str:
    """One plain line for an API failure, with the RBAC hint for 401/403."""
    if isinstance(exc, ApiException):
        reason = exc.reason or ""
        message = ""
        try:
            body = json.loads(exc.body or b"{}")
            message = body.get("message") or ""
        except (ValueError, TypeError, AttributeError):
            pass
        text = f"{action}: the API server answered {exc.status} {reason}".rstrip()
        if message:
            text += f" ({message[:300]})"
        if exc.status in (401, 403):
            text += "; see docs/kube-bench-jobs.md for the RBAC this needs"
        return redact_text(text)
    return f"{action}: {safe_api_error(exc)}"


def _json(resp: Any) -> Any:
    data = resp.data if hasattr(resp, "data") else resp.read()
    return json.loads(data)


# --------------------------------------------------------------------------- the scan job


class KubeBenchJobsScan(ScanTask):
    """A kube-bench scan run as one Kubernetes Job per selected node."""

    scanner = "kube-bench"
    engine = ENGINE

    def __init__(
        self, req: KubeBenchRequest, settings: Settings, *, source: ClusterSource | None = None
    ) -> None:
        self.settings = settings
        self.req = req
        self.timeout_s = settings.scan_timeout(req.timeout_seconds)
        self.request = {**redact_mapping(req.model_dump(mode="json")), "executor": "job"}
        self.secrets = ()
        self.image = req.image or settings.kube_bench_image or jm.DEFAULT_IMAGE
        resolved = source or resolve_cluster(settings, req.kube_context)
        if resolved is None:
            raise InvalidRequest(
                "executor",
                "'job' needs a cluster: the operator sets KUBECONFIG (or ~/.kube/config), "
                "or runs the server in a pod with a service account",
            )
        self.source: ClusterSource = resolved
        self._runs: dict[str, NodeRun] = {}
        self._created: set[str] = set()
        self._deleted: set[str] = set()

    # ------------------------------------------------------------------ entry point

    async def run(self, ctx: TaskContext) -> TaskOutcome:
        pool = self.req.max_parallel_jobs + 6
        try:
            api = await anyio.to_thread.run_sync(new_api_client, self.source, pool)
        except ClusterConfigError as exc:
            return TaskOutcome(status=ScanState.failed, error=str(exc), engine=ENGINE)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.version_api = client.VersionApi(api)
        finished = False
        try:
            outcome = await self._run(ctx)
            finished = True
            return outcome
        finally:
            with anyio.CancelScope(shield=True):
                if not finished:
                    # Cancelled (or a bug): every Job of this scan goes, keep_jobs or not.
                    await self._delete_all(ctx.scan_id)
                await anyio.to_thread.run_sync(api.close)

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", API_TIMEOUT_S)
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    def _fail(self, error: str, status: ScanState = ScanState.failed) -> TaskOutcome:
        return TaskOutcome(status=status, error=error, engine=ENGINE)

    # ------------------------------------------------------------------ the scan

    async def _run(self, ctx: TaskContext) -> TaskOutcome:
        req = self.req
        try:
            version = await self._call(self.version_api.get_code)
            git_version = version.git_version or ""
            nodes_raw = _json(await self._call(
                self.core.list_node, label_selector=req.node_selector or None, _preload_content=False))["items"]
        except Exception as exc:  # ApiException, urllib3 errors (not OSErrors), bad JSON
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            return self._fail(_api_error("listing the cluster's nodes", exc))
        platform = detect_platform(git_version, nodes_raw)
        nodes = sorted((node_info(n) for n in nodes_raw), key=lambda n: (not n.control_plane, n.name))
        missing: list[str] = []
        if req.nodes:
            by_name = {n.name: n for n in nodes}
            missing = [n for n in req.nodes if n not in by_name]
            nodes = [by_name[n] for n in req.nodes if n in by_name]
        if not nodes and not missing:
            what = f"no node matches node_selector {req.node_selector!r}" if req.node_selector else "the cluster lists no nodes"
            return self._fail(what)

        plan = plan_targets(req, platform, [(n.name, n.control_plane) for n in nodes], git_version)
        if plan.error:
            return self._fail(plan.error)
        version_for_argv = None
        if not (req.version or req.benchmark or plan.benchmark):
            version_for_argv = _minor_version(git_version)
        runs: list[NodeRun] = []
        for i, node in enumerate(nodes):
            targets = plan.targets[node.name]
            node_req = req.model_copy(update={
                "targets": targets,
                "benchmark": plan.benchmark or req.benchmark,
                "version": req.version or version_for_argv,
            })
            runs.append(NodeRun(node=node, job_name=jm.job_name(ctx.scan_id, i), targets=targets,
                                argv=kube_bench_argv.build_argv(node_req, "kube-bench")))
        for j, name in enumerate(missing):
            runs.append(NodeRun(node=NodeInfo(name, False, False), job_name=jm.job_name(ctx.scan_id, len(nodes) + j),
                                targets=[], argv=[], status="failed", error=f"no node named {name!r} in the cluster"))
        self._runs = {r.job_name: r for r in runs}
        total = len(runs)
        done = sum(1 for r in runs if r.status == "failed")
        await ctx.set_progress(done, total)

        try:
            await self._ensure_namespace()
        except Exception as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            return self._fail(_api_error(f"preparing namespace {req.namespace!r}", exc))

        limiter = anyio.CapacityLimiter(req.max_parallel_jobs)
        counter = {"done": done}

        async def one(run: NodeRun) -> None:
            await self._node(ctx, run, limiter)
            counter["done"] += 1
            await ctx.set_progress(counter["done"], total)

        selector = jm.scan_selector(ctx.scan_id)
        async with anyio.create_task_group() as watchers:
            await self._start_watches(watchers, selector)
            async with anyio.create_task_group() as tg:
                for run in runs:
                    if run.status == "pending":
                        tg.start_soon(one, run)
            watchers.cancel_scope.cancel()
        await ctx.set_phase("parsing")
        return self._outcome(runs, platform, plan.notes, git_version)

    # ------------------------------------------------------------------ one node

    async def _node(self, ctx: TaskContext, run: NodeRun, limiter: anyio.CapacityLimiter) -> None:
        node = run.node
        if not node.ready:
            run.status, run.error = "failed", f"node is NotReady ({node.not_ready_reason}); no Job was created"
            return
        async with limiter:
            left = ctx.deadline - anyio.current_time()
            if left <= 1:
                run.status, run.error = "timed_out", "not started: the scan's time ran out while waiting for a free Job slot"
                return
            manifest = jm.build_job_manifest(
                name=run.job_name, namespace=self.req.namespace, scan_id=ctx.scan_id, node=node.name,
                command=run.argv, image=self.image, control_plane=node.control_plane,
                active_deadline_seconds=int(left) + 30,
            )
            try:
                await self._call(self.batch.create_namespaced_job, self.req.namespace, manifest,
                                 _preload_content=False)
            except Exception as exc:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    raise
                run.status, run.error = "failed", _api_error("creating the Job", exc)
                return
            self._created.add(run.job_name)
            run.status = "running"
            with anyio.move_on_after(max(0.0, ctx.deadline - anyio.current_time())):
                await run.changed.wait()
            stuck = False
            if run.verdict is None:
                run.status = "timed_out"
                run.error = (f"kube-bench did not finish within the scan's {self.timeout_s:g} s "
                             f"(pod {run.pod_name or 'not created'}); its Job was deleted")
                stuck = True
            elif run.verdict == "done":
                await self._read(run)
            elif run.verdict == "exit":
                await self._read_failure(run)
            elif run.verdict == "image":
                run.status, run.error = "failed", f"image pull failed for {self.image}: {run.detail}; its Job was deleted"
                stuck = True
            elif run.verdict == "unschedulable":
                run.status, run.error = "failed", f"the pod could not be scheduled: {run.detail}; its Job was deleted"
                stuck = True
            else:
                run.status, run.error = "failed", f"{run.detail}"
                stuck = run.verdict == "container"
            # Jobs are deleted once read; a stuck one (never finishing) goes even with keep_jobs.
            if stuck or not self.req.keep_jobs:
                await self._delete_job(run.job_name)

    async def _read_log(self, run: NodeRun) -> bytes:
        cap = self.settings.output_cap_bytes
        resp = await self._call(self.core.read_namespaced_pod_log, run.pod_name, self.req.namespace,
                                container="kube-bench", limit_bytes=cap + 1, _preload_content=False)
        return bytes(resp.data)

    async def _read(self, run: NodeRun) -> None:
        try:
            data = await self._read_log(run)
        except Exception as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            run.status, run.error = "failed", _api_error(f"reading the log of pod {run.pod_name}", exc)
            return
        if len(data) > self.settings.output_cap_bytes:
            run.status = "failed"
            run.error = "kube-bench output exceeds the output cap (MCP_KSCAN_OUTPUT_CAP_BYTES); narrow with targets/check/group"
            return
        try:
            run.output, run.report = extract_report(data, run.node.name)
        except ScanOutputError as exc:
            run.status, run.error = "failed", f"kube-bench succeeded but its log is not a report: {exc}"
            return
        run.status = "succeeded"

    async def _read_failure(self, run: NodeRun) -> None:
        tail = ""
        try:
            data = await self._read_log(run)
            lines = [ln.strip() for ln in data[-4000:].decode("utf-8", "replace").splitlines() if ln.strip()]
            if lines:
                tail = ": " + redact_text(" | ".join(lines[-3:])[:400])
        except Exception as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
        run.status = "failed"
        run.error = f"kube-bench exited {run.exit_code if run.exit_code is not None else '(unknown code)'}{tail}"

    # ------------------------------------------------------------------ API helpers

    async def _ensure_namespace(self) -> None:
        ns = self.req.namespace
        try:
            await self._call(self.core.read_namespace, ns, _preload_content=False)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": {
                    jm.MANAGED_BY_LABEL: "mcp-kscan",
                    # kube-bench needs hostPID and hostPath: the namespace must admit privileged pods.
                    "pod-security.kubernetes.io/enforce": "privileged",
                },
            },
        }
        try:
            await self._call(self.core.create_namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:  # created meanwhile
                raise

    async def _delete_job(self, name: str) -> None:
        if name in self._deleted:
            return
        try:
            await self._call(self.batch.delete_namespaced_job, name, self.req.namespace,
                             propagation_policy="Background", _preload_content=False)
            self._deleted.add(name)
        except ApiException as exc:
            if exc.status == 404:
                self._deleted.add(name)
            else:
                log.warning("could not delete Job %s/%s: %s", self.req.namespace, name, _api_error("delete", exc))
        except Exception as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            log.warning("could not delete Job %s/%s: %s", self.req.namespace, name, exc)

    async def _delete_all(self, scan_id: str) -> None:
        """Every Job (and, by propagation, Pod) of this scan. Used on cancel and on errors."""
        with anyio.move_on_after(CLEANUP_TIMEOUT_S):
            try:
                await self._call(self.batch.delete_collection_namespaced_job, self.req.namespace,
                                 label_selector=jm.scan_selector(scan_id), propagation_policy="Background",
                                 _preload_content=False)
                self._deleted |= self._created
            except Exception as exc:
                log.warning("could not delete the Jobs of scan %s: %s", scan_id, exc)

    # ------------------------------------------------------------------ watches

    async def _start_watches(self, tg: anyio.abc.TaskGroup, selector: str) -> None:
        """Start one Pod watch and one Job watch (each in a thread) and the dispatcher."""
        send, receive = anyio.create_memory_object_stream[tuple[str, dict[str, Any]]](max_buffer_size=256)
        ns = self.req.namespace
        streams: list[WatchThread] = []
        for kind, fn in (("pod", self.core.list_namespaced_pod), ("job", self.batch.list_namespaced_job)):
            rv = _json(await self._call(fn, ns, label_selector=selector, _preload_content=False))["metadata"].get(
                "resourceVersion")
            streams.append(WatchThread(kind, fn, ns, selector, rv, send.clone()))
        send.close()

        # Watch threads block for long: keep them off anyio's default thread limiter, which the
        # API calls use.
        watch_limiter = anyio.CapacityLimiter(len(streams))

        async def pump(w: WatchThread) -> None:
            try:
                await anyio.to_thread.run_sync(w.run, abandon_on_cancel=True, limiter=watch_limiter)
            finally:
                w.stop()

        async def dispatch() -> None:
            async with receive:
                async for kind, event in receive:
                    failed = self._dispatch(kind, event)
                    if failed is not None:
                        tg.start_soon(self._judge_failed_job, *failed)

        for w in streams:
            tg.start_soon(pump, w)
        tg.start_soon(dispatch)

    def _dispatch(self, kind: str, event: dict[str, Any]) -> tuple[NodeRun, str] | None:
        """Apply one watch event; a Job failed before any of its Pods was seen is returned, to be judged."""
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if kind == "pod":
            run = self._runs.get((meta.get("labels") or {}).get("job-name", ""))
            if run is None:
                return None
            run.pod_name = meta.get("name") or run.pod_name
            if event.get("type") != "DELETED":
                judge_pod(run, obj)
        else:
            run = self._runs.get(meta.get("name", ""))
            if run is None:
                return None
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if cond.get("status") != "True":
                    continue
                if cond.get("type") == "Failed" and run.pod_name is None and run.verdict is None:
                    return run, f"the Job failed ({cond.get('reason')}: {cond.get('message')})"
                if cond.get("type") == "Complete" and run.pod_name is not None:
                    run.set_verdict("done")
        return None

    async def _judge_failed_job(self, run: NodeRun, detail: str) -> None:
        """Ask for a failed Job's Pod before blaming the Job itself.

        The Pod and Job watches are separate streams with no order between them: a Pod that
        exited 1 can mark its Job Failed (BackoffLimitExceeded) and that event arrive first. The
        node's error is then kube-bench's own (its exit code and log), read from the Pod; only a
        Job that never had a Pod failed as a Job.
        """
        try:
            pods = _json(await self._call(self.core.list_namespaced_pod, self.req.namespace,
                                          label_selector=f"job-name={run.job_name}", _preload_content=False))
        except Exception as exc:  # the Job's verdict stands; why its Pod could not be read goes with it
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            run.set_verdict("job_failed", f"{detail}; {_api_error('listing its Pod', exc)}")
            return
        for pod in pods.get("items") or []:
            run.pod_name = (pod.get("metadata") or {}).get("name") or run.pod_name
            judge_pod(run, pod)
        run.set_verdict("job_failed", detail)  # kept only when no Pod gave a verdict

    # ------------------------------------------------------------------ the result

    def _outcome(self, runs: list[NodeRun], platform: Platform | None, notes: list[str], git_version: str) -> TaskOutcome:
        ok = [r for r in runs if r.status == "succeeded" and r.report is not None]
        bad = [r for r in runs if r not in ok]
        node_totals = [NodeTotals(node=r.node.name, totals=r.report.totals if r.report else None, error=r.error)
                       for r in runs]
        failures = [f"node {r.node.name}: {r.error}" for r in bad]
        raw = self._raw_output(runs, platform, git_version)
        if not ok:
            status = ScanState.timed_out if bad and all(r.status == "timed_out" for r in bad) else ScanState.failed
            head = f"kube-bench failed on every node ({len(bad)})" if len(bad) > 1 else "kube-bench failed"
            error = head + ": " + "; ".join(failures[:5]) + (f"; … {len(failures) - 5} more" if len(failures) > 5 else "")
            return TaskOutcome(status=status, error=error[:2000], engine=ENGINE, raw_output=raw,
                              command=ok[0].argv if ok else (runs[0].argv if runs else None))
        counts = {"pass_": 0, "fail": 0, "warn": 0, "info": 0}
        for r in ok:
            assert r.report is not None
            for k in counts:
                counts[k] += getattr(r.report.totals, k)
        warnings: list[str] = list(notes)
        for r in ok:
            assert r.report is not None
            for w in r.report.warnings:
                if w not in warnings:
                    warnings.append(w)
        if bad:
            warnings.append(f"{len(bad)} of {len(runs)} nodes have no result: " + "; ".join(failures[:10])
                            + (f"; … {len(failures) - 10} more (see summary.nodes)" if len(failures) > 10 else ""))
        first = ok[0].report
        assert first is not None
        report = KubeBenchReport(
            benchmark=next((r.report.benchmark for r in ok if r.report and r.report.benchmark), None),
            detected_version=first.detected_version,
            totals=KubeBenchTotals(**counts),
            controls=[c for r in ok if r.report for c in r.report.controls],
            checks=[c for r in ok if r.report for c in r.report.checks],
            warnings=warnings,
        )
        summary = summarize_kube_bench(report, nodes=node_totals)
        return TaskOutcome(status=ScanState.succeeded, engine=ENGINE, raw_output=raw, report=report,
                          summary=summary, command=ok[0].argv)

    def _raw_output(self, runs: list[NodeRun], platform: Platform | None, git_version: str) -> bytes:
        doc: dict[str, Any] = {
            "executor": "job",
            "server_version": git_version,
            "platform": platform.name if platform else None,
            "image": self.image,
            "namespace": self.req.namespace,
            "nodes": [
                {"node": r.node.name, "job": r.job_name, "targets": r.targets, "command": r.argv,
                 "status": r.status, "error": r.error, "output": r.output}
                for r in runs
            ],
        }
        raw = json.dumps(doc, allow_nan=False).encode()
        if len(raw) > self.settings.output_cap_bytes:
            for n in doc["nodes"]:
                n["output"] = None
            doc["note"] = "per-node outputs omitted: together they exceed MCP_KSCAN_OUTPUT_CAP_BYTES"
            raw = json.dumps(doc, allow_nan=False).encode()
        return raw


def _minor_version(git_version: str) -> str | None:
    """``v1.30.2-eks-…`` → ``1.30`` (kube-bench maps it to its benchmark; avoids its 1.18 fallback)."""
    import re

    m = re.match(r"^v?(\d+)\.(\d+)", git_version or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None




__all__ = ["KubeBenchJobsScan", "ENGINE"]
