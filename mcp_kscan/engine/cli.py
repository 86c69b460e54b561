"""``mcp-kscan scan``: scan manifests (or a live cluster) from a terminal or CI.

The planner (``mcp_kscan.scan_plan``) decides the engine (``--engine auto``, the default: the
Kubescape binary when one is installed, else the built-in engine), the timeout (``--timeout``, else
MCP_KSCAN_DEFAULT_TIMEOUT) and what the built-in engine evaluates, exactly as for a server scan.
The binary runs through the runner like a server scan (stored, origin ``cli``); the built-in
engine runs in this process under the plan's deadline (``runner.deadline``), not stored, so a
terminal scan pays for the scan only. The output always says which engine ran. Exit codes (``EXIT_CODES``): 0 done,
1 a threshold was not met (a failed control at or above ``--severity-threshold``, or a
compliance score below ``--compliance-threshold``), 2 a usage or scan error, 3 nothing was
scanned. An empty scan is never a pass: a folder of Markdown, a chart that could not be
rendered, or a wrong path has no compliance score, so it cannot meet a threshold or exit 0.
``--fail-on new|any`` exits 1 on a new (or any) failure; with ``--baseline`` every format shows only
the regressions (``mcp_kscan.baseline``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

from mcp_kscan.engine.entry import run_engine, write_engine
from mcp_kscan.errors import BinaryNotFound, KscanError
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.runner.deadline import Cancelled, DeadlinePassed, deadline
from mcp_kscan.scan_plan import BuiltinPlan, builtin_plan, choose_engine, cluster_for
from mcp_kscan.settings import Settings

THRESHOLDS = [s.lower() for s in v2.SEVERITIES if s != "Unknown"]
"""--severity-threshold values, most severe first (any case is accepted)."""
EXIT_OK, EXIT_THRESHOLD, EXIT_ERROR, EXIT_NOTHING_SCANNED = 0, 1, 2, 3
EXIT_CODES = ("exit codes: 0 done; 1 a threshold was not met (--severity-threshold, --compliance-threshold); "
              "2 a usage or scan error; 3 nothing was scanned (no Kubernetes object was read: no compliance "
              "score, so no threshold is met)")


def add_scan_parser(subparsers: Any) -> None:
    """Register ``scan`` on the top-level parser's subparsers."""
    p = subparsers.add_parser(
        "scan",
        help="scan Kubernetes manifests (or a live cluster) for misconfigurations",
        description="Evaluate Kubescape controls on YAML/JSON manifests (files, directories, '-' for stdin) "
        "or, with --cluster, on a live cluster through the Kubernetes API. Kustomize directories are rendered "
        "with `kubectl kustomize` and Helm charts with `helm template` (default values) when those are installed; "
        "otherwise they are reported as not rendered.",
        epilog=EXIT_CODES,
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (recursive); '-' reads stdin")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--framework", help="comma-separated frameworks (nsa, mitre, allcontrols, armobest, devopsbest, "
                     "security, workloadscan, yaml-scanning, cis-v1.10.0, ...; all: every one; "
                     "default: nsa,mitre,allcontrols); --list-frameworks lists them")
    sel.add_argument("--control", help="comma-separated control IDs, e.g. C-0057,C-0013")
    p.add_argument("--engine", choices=["auto", "kubescape", "builtin"], default="auto",
                   help="auto: the Kubescape binary when installed, else the built-in engine")
    p.add_argument("--format", choices=["table", "json", "sarif", "junit"], default=None,
                   help="table (default): summary and failed controls; json: Kubescape's v2 report; sarif: SARIF 2.1.0; "
                        "junit: JUnit XML, one testcase per (control, resource)")
    p.add_argument("-o", "--output", help="write the report to this file instead of stdout")
    p.add_argument("--severity-threshold", type=str.lower, choices=THRESHOLDS,
                   help="exit 1 when a control of this severity or higher fails")
    p.add_argument("--compliance-threshold", type=_percent, metavar="PERCENT",
                   help="exit 1 when the compliance score is below PERCENT (0-100); a scan with no score exits 3")
    p.add_argument("--baseline", metavar="BASE.json",
                   help="a previous --format json report (ours or Kubescape's v2 JSON): show only the failures it "
                        "does not have (new resources, new controls, new failing paths)")
    p.add_argument("--fail-on", choices=["new", "any"],
                   help="exit 1 when there is a new failure (new: all failures without --baseline) or any failure")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="stop the scan after this long, as a server scan's timeout_seconds (default: "
                        "MCP_KSCAN_DEFAULT_TIMEOUT, else 600); a scan that times out exits 2")
    p.add_argument("--omit-raw-resources", action="store_true",
                   help="leave the scanned objects out of the JSON report (smaller output)")
    p.add_argument("--list-controls", action="store_true", help="print the built-in engine's controls and exit")
    p.add_argument("--list-frameworks", action="store_true", help="print the frameworks --framework accepts and exit")
    p.add_argument("--controls-config", metavar="FILE",
                   help="control inputs, as Kubescape's --controls-config: a JSON file with "
                        "settings.postureControlInputs (keys it sets replace the defaults)")
    p.add_argument("--exceptions", metavar="FILE",
                   help="accepted risk, as Kubescape's --exceptions: a JSON list of postureExceptionPolicy entries; "
                        "excepted findings are reported passed (w/exceptions) with their reason. Kubescape's system "
                        "exceptions and the kubescape.io/skip-controls and kubescape.io/ignore annotations always apply")
    cl = p.add_argument_group("live cluster")
    cl.add_argument("--cluster", action="store_true", help="scan the cluster of the current kubeconfig context")
    cl.add_argument("--kubeconfig", help="the kubeconfig for this run, like KUBECONFIG=FILE (default: $KUBECONFIG "
                    "or ~/.kube/config)")
    cl.add_argument("--kube-context", help="a context of that kubeconfig (default: MCP_KSCAN_KUBE_CONTEXT, else current)")
    cl.add_argument("--include-namespaces", help="comma-separated namespaces to scan (default: all)")
    cl.add_argument("--exclude-namespaces", help="comma-separated namespaces to skip")


REQUEST_FIELDS: dict[str, str] = {
    "paths": "paths", "framework": "target_names", "control": "target_names", "engine": "engine",
    "kube_context": "kube_context", "include_namespaces": "include_namespaces",
    "exclude_namespaces": "exclude_namespaces", "controls_config": "controls_config", "exceptions": "exceptions",
    "timeout": "timeout_seconds", "severity_threshold": "severity_threshold",
    "compliance_threshold": "compliance_threshold",
}
"""Option dest → the KubescapeRequest field with the same meaning (``--engine kubescape`` sends them
through the model; the thresholds are the request's gates, applied here as exit codes).
tests/cli/test_options_match_models.py checks every option is here or in CLI_ONLY, with the model's choices."""
CLI_ONLY = frozenset({"format", "output", "baseline", "fail_on", "omit_raw_resources", "list_controls",
                      "list_frameworks", "cluster", "kubeconfig"})
"""The terminal's own options: output format and file, regression gates, listings, the engine's
--omit-raw-resources, --cluster (a request without paths) and the kubeconfig (a setting, never a request field)."""


def _percent(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r} (give 0-100)") from None
    if not 0 <= number <= 100:
        raise argparse.ArgumentTypeError(f"{value} is outside 0-100")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < number <= 24 * 3600:
        raise argparse.ArgumentTypeError(f"{value} is outside (0, 86400] seconds")
    return number


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _run_kubescape(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Run the real Kubescape binary as a stored scan, through the same service as the server."""
    import anyio

    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import run_scan_once, validate_request

    fields: dict[str, Any] = {"engine": "kubescape", "paths": [str(Path(p).resolve()) for p in args.paths if p != "-"]}
    if args.control:
        fields.update(target_type="control", target_names=_csv(args.control))
    elif args.framework:
        fields.update(target_type="framework", target_names=_csv(args.framework))
    if args.kube_context:
        fields["kube_context"] = args.kube_context
    if args.timeout:
        fields["timeout_seconds"] = args.timeout
    if args.include_namespaces:
        fields["include_namespaces"] = _csv(args.include_namespaces)
    if args.exclude_namespaces:
        fields["exclude_namespaces"] = _csv(args.exclude_namespaces)
    if args.controls_config:
        fields["controls_config"] = args.controls_config
    if args.exceptions:
        fields["exceptions"] = args.exceptions
    req = validate_request(KubescapeRequest, fields, settings)
    record, raw = anyio.run(run_scan_once, settings, lambda s: s.start_kubescape(req, origin="cli"))
    if raw is None:
        raise RuntimeError(f"kubescape scan {record.status.value}: {record.error or 'no report'}")
    report: dict[str, Any] = json.loads(raw)
    return report


def _checked_file(value: str | None, option: str, load: Callable[[str], object],
                  errors: tuple[type[Exception], ...], settings: Settings) -> str | None:
    """A file option (--controls-config, --exceptions), checked by the same path rules as a
    request's and read once now, so a bad file is a usage error naming the option before anything
    is scanned (the engine reads it again when it scans)."""
    if not value:
        return None
    from mcp_kscan.errors import InvalidRequest
    from mcp_kscan.scanners.paths import validate_path

    try:
        path = validate_path(value, allowed_roots=settings.allowed_roots, kind="file")
        load(path)
    except Exception as exc:
        if not isinstance(exc, (ValueError, *errors)):
            raise
        raise InvalidRequest(option, str(exc)) from None
    return path


def _controls_config(args: argparse.Namespace, settings: Settings) -> str | None:
    from mcp_kscan.engine.inputs import ControlsConfigError, load_controls_config

    return _checked_file(args.controls_config, "--controls-config", load_controls_config, (ControlsConfigError,), settings)


def _exceptions(args: argparse.Namespace, settings: Settings) -> str | None:
    from mcp_kscan.engine.exceptions import ExceptionsError, load_exceptions_file

    return _checked_file(args.exceptions, "--exceptions", load_exceptions_file, (ExceptionsError,), settings)


def _builtin_plan(args: argparse.Namespace, settings: Settings) -> BuiltinPlan:
    """The planner's built-in scan for these options. The CLI reads what its user names (no
    roots, no report cap) under the same file size cap and timeout rule as the server."""
    cluster = None
    if args.cluster:
        from mcp_kscan.engine.cluster import ClusterError

        cluster = cluster_for(settings, args.kube_context)
        if cluster is None:
            raise ClusterError("no cluster configured: set KUBECONFIG (or --kubeconfig), or create ~/.kube/config")
    return builtin_plan(
        settings, paths=[] if args.cluster else list(args.paths), frameworks=_csv(args.framework) or None,
        controls=_csv(args.control) or None, include_namespaces=_csv(args.include_namespaces),
        exclude_namespaces=_csv(args.exclude_namespaces), cluster=cluster, timeout_seconds=args.timeout,
        controls_config=_controls_config(args, settings), exceptions=_exceptions(args, settings),
        omit_raw_resources=args.omit_raw_resources, confined=False,
    )


def _run_builtin(plan: BuiltinPlan) -> dict[str, Any]:
    with deadline(plan.timeout_s):
        report: dict[str, Any] = json.loads(run_engine(plan.spec))
    return report


def _write_builtin_json(plan: BuiltinPlan, out: BinaryIO) -> int:
    """The JSON report straight from the engine's writer to ``out`` (no dict round trip, and the
    report is never held whole: the workers' fragments are written as they are); returns how
    many objects were read."""
    with deadline(plan.timeout_s):
        objects = write_engine(plan.spec, out)
    out.write(b"\n")
    return objects


def _nothing_scanned() -> int:
    print(f"mcp-kscan scan: {v2.NOTHING_SCANNED}; exit {EXIT_NOTHING_SCANNED}", file=sys.stderr)
    return EXIT_NOTHING_SCANNED


def compliance_below(report: dict[str, Any], threshold: float | None) -> bool:
    """Is the report's compliance score below ``threshold``? (A report without a score is handled
    before: it exits ``EXIT_NOTHING_SCANNED``.)"""
    if threshold is None:
        return False
    score = v2.score((report.get("summaryDetails") or {}).get("complianceScore"))
    return score is None or score < threshold


def threshold_met(report: dict[str, Any], threshold: str | None) -> bool:
    """Does any failed control have the threshold's severity or a higher one?"""
    if not threshold:
        return False
    limit = v2.severity_rank(threshold)
    for c in v2.summary_controls(report.get("summaryDetails") or {}).values():
        if v2.control_status(c) == "failed" and v2.severity_rank(v2.control_severity(c)) <= limit:
            return True
    return False


def render(report: dict[str, Any], fmt: str, *, color: bool = False) -> str:
    if fmt == "junit":
        from mcp_kscan.engine.junit import to_junit

        return to_junit(report)
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False)
    if fmt == "sarif":
        from mcp_kscan.engine.sarif import to_sarif

        return json.dumps(to_sarif(report), indent=2, ensure_ascii=False)
    from mcp_kscan.engine.table import render_table

    return render_table(report, color=color)


def run_scan_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``mcp-kscan scan`` with parsed ``args`` and the CLI's ``settings``; returns the exit code."""
    if getattr(args, "list_controls", False):
        from mcp_kscan.engine.controls import CONTROLS

        for c in CONTROLS:
            frameworks = ", ".join(f for f in c.frameworks if f != "AllControls")
            print(f"{c.id}  {c.severity:8}  {c.name}" + (f"  [{frameworks}]" if frameworks else ""))
        return EXIT_OK
    if getattr(args, "list_frameworks", False):
        from mcp_kscan.engine.frameworks import FRAMEWORK_NAMES, resolve

        for key in sorted(FRAMEWORK_NAMES):
            sel = resolve([key])
            print(f"{FRAMEWORK_NAMES[key]:16}  {len(sel.controls):3} controls decided, {len(sel.skipped):3} skipped")
        return EXIT_OK
    if not args.paths and not args.cluster:
        print("mcp-kscan scan: give one or more PATHs ('-' for stdin) or --cluster", file=sys.stderr)
        return EXIT_ERROR
    if args.paths and args.cluster:
        print("mcp-kscan scan: give PATHs or --cluster, not both", file=sys.stderr)
        return EXIT_ERROR
    fmt = args.format or "table"
    baseline = None
    try:
        engine = choose_engine(args.engine, settings, stdin="-" in args.paths)
    except BinaryNotFound as exc:
        print(f"mcp-kscan scan: {exc}; or use --engine builtin", file=sys.stderr)
        return EXIT_ERROR
    except KscanError as exc:
        print(f"mcp-kscan scan: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        if args.baseline:
            from mcp_kscan.baseline import load_baseline

            baseline = load_baseline(args.baseline)  # a bad baseline is a usage error before any scan
        if engine == "kubescape":
            report = _run_kubescape(args, settings)
        elif (fmt == "json" and not args.cluster and not args.severity_threshold and args.compliance_threshold is None
              and not args.baseline and not args.fail_on):
            from mcp_kscan.engine.frameworks import resolve

            resolve(_csv(args.framework) or None, _csv(args.control) or None)  # bad names: no file yet
            plan = _builtin_plan(args, settings)
            if args.output:
                try:
                    from mcp_kscan.engine.report_file import open_report

                    with open_report(args.output) as fh:
                        objects = _write_builtin_json(plan, fh)
                except BaseException:
                    if os.path.isfile(args.output):
                        os.unlink(args.output)  # no half-written report left behind
                    raise
            else:
                objects = _write_builtin_json(plan, sys.stdout.buffer)
                sys.stdout.flush()
            return EXIT_OK if objects else _nothing_scanned()
        else:
            report = _run_builtin(_builtin_plan(args, settings))
    except (ValueError, KscanError, DeadlinePassed, Cancelled) as exc:  # unknown framework/control, bad request field
        print(f"mcp-kscan scan: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - a CLI reports the failure in one line
        print(f"mcp-kscan scan: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    shown, new_failures = report, None
    if baseline is not None:
        from mcp_kscan.baseline import regression_table, regressions

        regs = regressions(report, baseline, args.baseline)
        shown, new_failures = regs.report, bool(regs.comparison.new)
    color = args.output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    if baseline is not None and fmt == "table":
        text = regression_table(regs, [str(p) for p in args.paths])
    else:
        text = render(shown, fmt, color=color)
    if args.output:
        Path(args.output).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    if v2.nothing_scanned(report):
        return _nothing_scanned()
    if gate_failed(args, report, shown, new_failures) or compliance_below(report, args.compliance_threshold):
        return EXIT_THRESHOLD
    return EXIT_OK


def gate_failed(args: argparse.Namespace, report: dict[str, Any], shown: dict[str, Any], new_failures: bool | None) -> bool:
    """--severity-threshold (on what is shown: the regressions with a baseline) and --fail-on."""
    from mcp_kscan.baseline import any_failure

    if args.severity_threshold:
        if new_failures is None and threshold_met(report, args.severity_threshold):
            return True
        if new_failures is not None and findings_at_or_above(shown, args.severity_threshold):
            return True
    if args.fail_on == "any":
        return any_failure(report)
    if args.fail_on == "new":
        return new_failures if new_failures is not None else any_failure(report)
    return False


def findings_at_or_above(report: dict[str, Any], threshold: str) -> bool:
    """Does any failed finding of ``report`` have the threshold's severity or a higher one?"""
    from mcp_kscan.readers.kubescape_report import parse_report

    limit = v2.severity_rank(threshold)
    return any(f.status == "failed" and v2.severity_rank(f.severity) <= limit for f in parse_report(report).findings)
