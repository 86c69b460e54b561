"""The one planner: what a Kubescape or kube-bench request from any front end runs, and how long for.

MCP tools and REST routes reach it through ``ScanService``; ``mcp-kscan scan`` and
``mcp-kscan kube-bench`` call it directly. Each decision is made here once, before anything is
queued, and nothing below re-decides it:

- the engine of a Kubescape scan (``choose_engine``): ``auto`` is the Kubescape binary when it is
  found, else the built-in engine; stdin can only be read by the built-in engine;
- where kube-bench runs (``executors.select.choose_executor``, called from ``kube_bench_task``);
- the cluster (``cluster_for``): the operator's kubeconfig with the request's context, else
  MCP_KSCAN_KUBE_CONTEXT/KS_CONTEXT, else in-cluster;
- the timeout (``Settings.scan_timeout``: the request's, else MCP_KSCAN_DEFAULT_TIMEOUT);
- what the built-in engine evaluates (``builtin_plan``: an ``EngineSpec``, plain data);
- where a queued scan may run when servers share a queue (``placement``), and how another
  server rebuilds its task (``task_from_plan``: the same validation and planning, its own settings).

The server runs a built-in plan in the engine's own process through the runner
(``engine.task.BuiltinScanTask``); ``mcp-kscan scan`` runs the same plan in its own process under
the plan's deadline (``runner.deadline``), with no store and no extra process, because a terminal
scan of 10,000 manifests should cost the scan and little else.

This module is imported on the CLI's built-in path, so it stays light: request models, the runner,
tasks and the cluster resolver are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from mcp_kscan.engine.entry import EngineSpec
from mcp_kscan.errors import BinaryNotFound, InvalidRequest
from mcp_kscan.settings import Settings

if TYPE_CHECKING:
    from mcp_kscan.cluster import ClusterSource
    from mcp_kscan.runner.records import Placement, ScanTask
    from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest

Engine = Literal["kubescape", "builtin"]
"""Which implementation evaluates a Kubescape scan: the binary or the built-in engine."""


def choose_engine(requested: str, settings: Settings, *, stdin: bool = False) -> Engine:
    """``auto`` → the Kubescape binary when it is found, else the built-in engine.

    ``kubescape`` asked for explicitly and not installed raises ``BinaryNotFound`` now, not after
    queueing. ``stdin`` (the CLI's '-') is readable by the built-in engine only.
    """
    from mcp_kscan.scanners.binaries import find_binary

    if requested == "builtin":
        return "builtin"
    if requested == "kubescape":
        if stdin:
            raise InvalidRequest("paths", "stdin ('-') is only supported by the built-in engine (engine=builtin)")
        find_binary("kubescape", settings)
        return "kubescape"
    if requested != "auto":
        raise InvalidRequest("engine", f"{requested[:20]!r} is not an engine; use auto, kubescape or builtin")
    if stdin:
        return "builtin"
    try:
        find_binary("kubescape", settings)
    except BinaryNotFound:
        return "builtin"
    return "kubescape"


def cluster_for(settings: Settings, kube_context: str | None) -> ClusterSource | None:
    """The cluster a scan uses: the operator's kubeconfig with the request's context (else
    MCP_KSCAN_KUBE_CONTEXT, else the current one), or in-cluster; None without either.

    A context that does not exist is refused here, at once (``InvalidRequest`` on ``kube_context``).
    """
    from mcp_kscan.cluster import ClusterConfigError, resolve_cluster

    try:
        return resolve_cluster(settings, kube_context)
    except ClusterConfigError as exc:
        raise InvalidRequest("kube_context", str(exc)) from None


@dataclass(frozen=True)
class BuiltinPlan:
    """A built-in engine scan: what it evaluates, and the deadline it runs under."""

    spec: EngineSpec
    timeout_s: float


def builtin_plan(
    settings: Settings,
    *,
    paths: Sequence[str] = (),
    frameworks: Sequence[str] | None = None,
    controls: Sequence[str] | None = None,
    include_namespaces: Sequence[str] = (),
    exclude_namespaces: Sequence[str] = (),
    cluster: ClusterSource | None = None,
    timeout_seconds: float | None = None,
    controls_config: str | None = None,
    exceptions: str | None = None,
    workload: tuple[str, str, str] | None = None,
    omit_raw_resources: bool = False,
    confined: bool = True,
    findings: bool = True,
) -> BuiltinPlan:
    """The built-in engine's spec for one scan.

    ``confined`` (the server): reads stay inside MCP_KSCAN_ALLOWED_ROOTS and the report is capped
    (MCP_KSCAN_ENGINE_REPORT_CAP_BYTES), because the caller is a remote agent. The CLI's user
    names their own files and reads the report from their own terminal: not confined. Charts and
    overlays among ``paths`` are rendered with the kubectl/helm found now; a cluster scan renders
    nothing.
    """
    from mcp_kscan.engine.render import Renderers
    from mcp_kscan.scanners.binaries import find_renderers

    renderers = find_renderers(settings) if paths else Renderers()
    spec = EngineSpec(
        paths=list(paths), frameworks=list(frameworks) if frameworks else None,
        controls=list(controls) if controls else None, omit_raw_resources=omit_raw_resources,
        max_file_bytes=settings.max_file_bytes,
        allowed_roots=[str(r) for r in settings.allowed_roots] if confined else [],
        report_cap_bytes=settings.engine_report_cap_bytes if confined else None,
        cluster=asdict(cluster) if cluster is not None and not paths else None,
        controls_config=controls_config, include_namespaces=list(include_namespaces),
        exclude_namespaces=list(exclude_namespaces), kubectl=renderers.kubectl, helm=renderers.helm,
        exceptions=exceptions, workload=list(workload) if workload else None, findings=findings,
    )
    return BuiltinPlan(spec=spec, timeout_s=settings.scan_timeout(timeout_seconds))


def kubescape_task(req: KubescapeRequest, settings: Settings, *, index_findings: bool = True) -> ScanTask:
    """The runnable task for a validated Kubescape request: the binary, or the built-in engine.

    A cluster scan (no ``paths``) gets its cluster from ``cluster_for``; a manifest scan needs
    none, but a ``kube_context`` it names must still exist. ``index_findings`` False: a result
    that is handed out once and deleted (REST's ``wait=true`` without ``keep``); the built-in
    engine then works out its summary only, not the findings the store pages (``findings_indexed``).
    """
    cluster = cluster_for(settings, req.kube_context) if not req.paths or req.kube_context else None
    task: ScanTask
    if choose_engine(req.engine, settings) == "kubescape":
        from mcp_kscan.scanners.tasks import KubescapeTask

        task = KubescapeTask(req, settings, cluster=None if req.paths else cluster)
    else:
        chosen = "engine=builtin" if req.engine == "builtin" else "engine=auto found no kubescape binary"
        task = _builtin_task(req, settings, cluster, chosen, index_findings)
    task.placement = _kubescape_placement(req, task.engine, index_findings)
    return task


def _kubescape_placement(req: KubescapeRequest, engine: str, index_findings: bool = True) -> Placement:
    """Where a queued Kubescape scan may run: its plan names the engine chosen here, so a server
    without that engine refuses the scan rather than run it on another one."""
    from mcp_kscan.runner.records import Placement

    if req.access_key is not None:
        return Placement("process", "it carries a Kubescape access key, which is never stored")
    request = req.model_dump(mode="json", exclude={"access_key"})
    request["engine"] = "builtin" if engine == "builtin" else "kubescape"
    plan: dict[str, Any] = {"scanner": "kubescape", "request": request, "bases": list(req.path_bases),
                            "server_defaults": sorted(req.server_defaults)}
    if not index_findings:  # a result answered once and deleted: the server that runs it skips the index too
        plan[_UNINDEXED] = False
    local = [name for name in ("paths", "controls_config", "exceptions") if getattr(req, name)]
    if engine != "builtin" and req.use_cached_artifacts:
        local.append("use_cached_artifacts (~/.kubescape)")
    if local:
        return Placement("host", f"it reads files of the host that admitted it ({', '.join(local)})", plan)
    return Placement("anywhere", "", plan)


def _builtin_task(req: KubescapeRequest, settings: Settings, cluster: ClusterSource | None, chosen: str,
                  index_findings: bool = True) -> ScanTask:
    """The built-in engine honours targets, paths, namespaces and cluster access.

    The Kubescape binary's cloud and cache fields (``BINARY_ONLY_FIELDS``) have no meaning for it:
    a caller who asks for one is refused (``chosen`` says why this scan is built-in), never
    silently ignored. Values the server filled itself (REST's KS_ACCOUNT default) are not the
    caller's ask and pass.
    """
    from mcp_kscan.engine.task import BuiltinScanTask
    from mcp_kscan.redact import redact_mapping

    asked = req.binary_only_asked()
    if asked:
        also = f" (also {', '.join(asked[1:])})" if asked[1:] else ""
        raise InvalidRequest(asked[0], f"only the Kubescape binary honours it (engine=kubescape), and this scan "
                                       f"would run on the built-in engine ({chosen}); leave it out{also}")

    names = [n for n in req.target_names if n.lower() != "all"]
    is_control = (req.target_type or "").lower() == "control"
    plan = builtin_plan(
        settings, paths=req.paths, frameworks=None if is_control or not names else names,
        controls=names if is_control and names else None, include_namespaces=req.include_namespaces,
        exclude_namespaces=req.exclude_namespaces, cluster=cluster, timeout_seconds=req.timeout_seconds,
        controls_config=req.controls_config, exceptions=req.exceptions, workload=req.workload_ref,
        findings=index_findings or not req.paths,  # a cluster's digest is small: always whole
    )
    request: dict[str, Any] = {**redact_mapping(req.model_dump(mode="json")), "engine": "builtin"}
    if not plan.spec.findings:
        request[_UNINDEXED] = False  # what the record says, for the views' refusal (findings_indexed)
    return BuiltinScanTask.from_plan(plan, request=request)


_UNINDEXED = "index_findings"


def findings_indexed(request: Mapping[str, Any]) -> bool:
    """Whether a scan's stored request had its findings indexed for paging (``kubescape_task``)."""
    return request.get(_UNINDEXED) is not False


def kube_bench_task(req: KubeBenchRequest, settings: Settings) -> ScanTask:
    """Where kube-bench runs: here (``local``) or as Jobs on the cluster's nodes (``job``).

    ``auto`` decides now, before queueing, so a caller with neither a node nor a cluster
    configuration gets the "how to choose" error at once (``executors.select``).
    """
    from mcp_kscan.executors.select import choose_executor

    cluster = cluster_for(settings, req.kube_context) if req.executor != "local" or req.kube_context else None
    if choose_executor(req, settings, cluster=cluster) == "job":
        from mcp_kscan.executors.k8s_jobs import KubeBenchJobsScan

        jobs = KubeBenchJobsScan(req, settings, source=cluster)
        jobs.placement = _kube_bench_placement(req, "job")
        return jobs
    asked = req.job_only_asked()
    if asked:
        chosen = "executor=local" if req.executor == "local" else "executor=auto chose to run here"
        raise InvalidRequest(asked[0], f"only kube-bench Jobs use it (executor=job), and this scan runs kube-bench "
                                       f"on this host ({chosen}); use executor=job or leave it out")
    from mcp_kscan.scanners.tasks import KubeBenchTask

    local = KubeBenchTask(req, settings)
    local.placement = _kube_bench_placement(req, "local")
    return local


def _kube_bench_placement(req: KubeBenchRequest, executor: str) -> Placement:
    """kube-bench on this host checks this node: only a server on the same host runs it in its stead.
    Jobs run on the cluster's nodes, whichever server creates them."""
    from mcp_kscan.runner.records import Placement

    request = {**req.model_dump(mode="json"), "executor": executor}
    plan = {"scanner": "kube-bench", "request": request, "bases": list(req.path_bases)}
    if executor == "local":
        return Placement("host", "kube-bench checks the node it runs on (executor=local)", plan)
    if req.config_dir:
        return Placement("host", "it reads config_dir on the host that admitted it", plan)
    return Placement("anywhere", "", plan)


def task_from_plan(plan: Mapping[str, Any], settings: Settings) -> ScanTask:
    """The task of a queued scan another server admitted, rebuilt with this server's settings.

    The request is validated again (the path rules, this server's allowed roots, with the roots
    that resolved it) and planned again: whatever this server cannot run (no such engine, no
    cluster configuration, a path outside its roots) raises here, and the runner settles the scan
    ``failed`` with the reason.
    """
    from mcp_kscan.client_roots import PATH_BASES_KEY
    from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import validate_request

    bases = plan.get("bases") or []
    context = {PATH_BASES_KEY: list(bases)} if bases else None
    if plan.get("scanner") == "kubescape":
        req = validate_request(KubescapeRequest, plan["request"], settings, context)
        return kubescape_task(req.with_server_defaults(set(plan.get("server_defaults") or ())), settings,
                              index_findings=findings_indexed(plan))
    if plan.get("scanner") == "kube-bench":
        return kube_bench_task(validate_request(KubeBenchRequest, plan["request"], settings, context), settings)
    raise InvalidRequest("scanner", f"{str(plan.get('scanner'))[:20]!r} is not a scanner this server runs")
