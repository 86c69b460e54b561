"""``mcp-kscan kube-bench``: the kube_bench operation from a terminal or a CI job.

It runs through the same ScanService as the MCP tool and the REST endpoint (so the same
validation, executors and stored results), then prints a table or the raw JSON.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mcp_kscan.errors import KscanError

if TYPE_CHECKING:
    from mcp_kscan.runner.records import ScanRecord
    from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
    from mcp_kscan.settings import Settings

# The parser is built for every ``mcp-kscan`` command (a built-in ``scan`` included, which should
# start in a blink): the service, the runner and the request models are imported when this
# command runs, not when its options are declared.

EXIT_FINDINGS = 1
EXIT_ERROR = 2


def add_kube_bench_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "kube-bench",
        help="run the CIS benchmark (kube-bench) here or as Jobs on the cluster's nodes",
        description="Run kube-bench through mcp-kscan: locally, or as one Kubernetes Job per node "
        "(--executor job). Results are stored like any other scan.",
    )
    p.add_argument("--targets", help="comma-separated: master,node,controlplane,etcd,policies,managedservices")
    p.add_argument("--kube-version", dest="version", help="Kubernetes version (kube-bench --version), e.g. 1.30")
    p.add_argument("--benchmark", help="benchmark, e.g. cis-1.10 or eks-1.5.0")
    p.add_argument("--config-dir", help="kube-bench cfg directory")
    p.add_argument("--check", help="comma-separated check ids")
    p.add_argument("--group", help="comma-separated group ids")
    p.add_argument("--skip", help="comma-separated check/group ids to skip")
    p.add_argument("--executor", choices=["auto", "local", "job"], default="auto",
                   help="where kube-bench runs: local (this host), job (one Kubernetes Job per node), "
                        "auto (local on a node, else Jobs when a cluster is configured)")
    p.add_argument("--nodes", help="executor=job: comma-separated node names")
    p.add_argument("--node-selector", help="executor=job: label selector")
    p.add_argument("--all-nodes", action="store_true", help="executor=job: every node")
    p.add_argument("--namespace", help="executor=job: namespace for the Jobs (default kube-bench)")
    p.add_argument("--image", help="executor=job: kube-bench image")
    p.add_argument("--max-parallel-jobs", type=int, help="executor=job: Jobs at once (default 10)")
    p.add_argument("--keep-jobs", action="store_true", help="executor=job: keep finished Jobs")
    p.add_argument("--kubeconfig", help="executor=job: the kubeconfig for this run, like KUBECONFIG=FILE")
    p.add_argument("--kube-context", help="executor=job: a context of that kubeconfig")
    p.add_argument("--timeout", type=float, dest="timeout_seconds", help="seconds (default MCP_KSCAN_DEFAULT_TIMEOUT)")
    p.add_argument("--format", choices=["table", "json"], default="table", help="table (default) or kube-bench's JSON")
    p.add_argument(
        "--fail-on-findings", action="store_true", help=f"exit {EXIT_FINDINGS} when any check FAILs (for CI)"
    )
    p.add_argument("--data-dir", help="where scans.db lives (env MCP_KSCAN_DATA_DIR)")
    p.add_argument("--log-level", help="stderr log level")
    p.add_argument("--log-format", choices=["text", "json"], default="text")


REQUEST_FIELDS: dict[str, str] = {
    name: name
    for name in ("targets", "version", "benchmark", "config_dir", "check", "group", "skip", "executor", "nodes",
                 "node_selector", "all_nodes", "namespace", "image", "max_parallel_jobs", "keep_jobs", "kube_context",
                 "timeout_seconds")
}
"""Option dest → the KubeBenchRequest field it fills (the model validates it, as for MCP and REST).
tests/cli/test_options_match_models.py checks every option is here or in CLI_ONLY, with the model's choices."""
CLI_ONLY = frozenset({"format", "fail_on_findings", "data_dir", "log_level", "log_format", "kubeconfig"})
"""The terminal's own options: output, exit code, logging, and the kubeconfig (a setting, never a request field)."""


def request_from_args(args: argparse.Namespace, settings: Settings) -> KubeBenchRequest:
    from mcp_kscan.scanners.kube_bench_request import KubeBenchRequest
    from mcp_kscan.service import validate_request

    data: dict[str, Any] = {}
    for dest, field in REQUEST_FIELDS.items():
        value = getattr(args, dest, None)
        if value not in (None, "", False):
            data[field] = value
    return validate_request(KubeBenchRequest, data, settings)  # type: ignore[no-any-return]


def render_table(record: ScanRecord) -> str:
    lines = [f"kube-bench scan {record.scan_id} ({record.engine}): {record.status.value}"]
    if record.error:
        lines.append(f"error: {record.error}")
    from mcp_kscan.reports import KubeBenchSummary

    summary = record.summary if isinstance(record.summary, KubeBenchSummary) else None
    if summary is not None:
        t = summary.totals
        lines.append(
            f"benchmark {summary.benchmark or 'auto-detected'}: {t.pass_} PASS, {t.fail} FAIL, {t.warn} WARN, {t.info} INFO"
        )
        for node in summary.nodes or []:
            nt = node.totals
            counts = f"{nt.pass_} PASS, {nt.fail} FAIL, {nt.warn} WARN" if nt else "0 PASS, 0 FAIL, 0 WARN"
            lines.append(f"  node {node.node}: {node.error or counts}")
        if summary.failed_checks:
            lines.append("")
            lines.append(f"Worst checks ({summary.failed_checks_total} FAIL/WARN in all):")
            for c in summary.failed_checks:
                on_node = f" [{c.node}]" if c.node else ""
                lines.append(f"  {c.status:4} {c.id:8}{on_node} {c.description}")
        for warning in summary.warnings:
            lines.append(f"warning: {warning}")
    lines.append("")
    lines.append(f"Every check: mcp-kscan serve, then get_results(scan_id='{record.scan_id}', view='checks').")
    return "\n".join(lines)


def run_kube_bench_command(args: argparse.Namespace) -> int:
    import anyio

    from mcp_kscan.reports import KubeBenchSummary
    from mcp_kscan.runner.records import ScanState
    from mcp_kscan.service import run_scan_once
    from mcp_kscan.settings import get_settings

    try:
        settings = get_settings()
        req = request_from_args(args, settings)
        record, raw = anyio.run(run_scan_once, settings, lambda s: s.start_kube_bench(req, origin="cli"))
    except KscanError as exc:
        print(f"mcp-kscan kube-bench: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        if raw:
            sys.stdout.write(raw.decode("utf-8", "replace"))
            if not raw.endswith(b"\n"):
                sys.stdout.write("\n")
    else:
        print(render_table(record))
    if record.status is not ScanState.succeeded:
        if args.format == "json":
            print(f"mcp-kscan kube-bench: {record.status.value}: {record.error or ''}", file=sys.stderr)
        return EXIT_ERROR
    fails = record.summary.totals.fail if isinstance(record.summary, KubeBenchSummary) else 0
    return EXIT_FINDINGS if args.fail_on_findings and fails else 0
