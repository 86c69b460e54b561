"""The ``mcp-kscan`` command: ``serve`` (the default), ``scan``, ``kube-bench``, ``fix``, ``doctor``, ``version``."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mcp_kscan import __version__
from mcp_kscan.logs import setup_logging
from mcp_kscan.settings import Settings, configure

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where scans.db lives (env MCP_KSCAN_DATA_DIR)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env MCP_KSCAN_LOG_LEVEL)")
    parser.add_argument("--log-format", choices=["text", "json"], default="text", help="stderr log format")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-kscan",
        description="Kubernetes security scans (kube-bench, Kubescape, built-in engine) for MCP agents and REST callers.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-kscan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default; --transport http adds the REST API)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="extra Host header value MCP accepts (DNS-rebinding protection); repeatable",
    )
    serve.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow a non-loopback bind without MCP_KSCAN_TOKEN (not recommended)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="HTTP only: N server processes on one port (1-64); needs MCP_KSCAN_DATABASE_URL (PostgreSQL)",
    )
    serve.add_argument("--max-concurrent-scans", type=int, help="env MCP_KSCAN_MAX_CONCURRENT_SCANS (default 2)")
    serve.add_argument("--queue-capacity", type=int, help="env MCP_KSCAN_QUEUE_CAPACITY (default 10)")
    _add_common(serve)

    from mcp_kscan.engine.cli import add_scan_parser
    from mcp_kscan.kube_bench_cli import add_kube_bench_parser

    from mcp_kscan.fixes.cli import add_fix_parser

    add_scan_parser(sub)
    add_kube_bench_parser(sub)
    add_fix_parser(sub)

    doctor = sub.add_parser("doctor", help="check the set-up: scanners, kubeconfig, data directory, settings")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_common(doctor)

    sub.add_parser("version", help="print the version")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment first, then whatever the command line overrides."""
    settings = Settings.from_env()
    updates: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        updates["data_dir"] = Path(args.data_dir).expanduser()
    if getattr(args, "log_level", None):
        updates["log_level"] = args.log_level.upper()
    if getattr(args, "max_concurrent_scans", None):
        updates["max_concurrent_scans"] = args.max_concurrent_scans
    if getattr(args, "queue_capacity", None) is not None:
        updates["queue_capacity"] = args.queue_capacity
    if getattr(args, "kubeconfig", None):
        # `scan`/`kube-bench --kubeconfig FILE`: the person at the terminal configures this run, as
        # with KUBECONFIG=FILE. It is a setting, never a request field (requests cannot name files).
        updates["kubeconfig"] = os.pathsep.join(
            str(Path(p).expanduser().resolve()) for p in args.kubeconfig.split(os.pathsep) if p
        )
    if updates:
        settings = settings.replace(**updates)
    configure(settings)
    return settings


def workers_problem(args: argparse.Namespace, settings: Settings) -> str | None:
    """Why ``--workers`` cannot be honoured, in one line; None when it can."""
    if not 1 <= args.workers <= 64:
        return f"--workers must be between 1 and 64, got {args.workers}"
    if args.workers == 1:
        return None
    if args.transport != "http":
        return "--workers needs --transport http (a stdio server has one client and one process)"
    if not settings.database_url:
        return (
            "--workers above 1 needs MCP_KSCAN_DATABASE_URL=postgresql://...: with SQLite one process owns"
            " scans.db and its queue"
        )
    return None


def database_problem(settings: Settings) -> str | None:
    """Why the PostgreSQL database cannot be used (unreachable, a wrong password, a schema too new),
    in one line; None when it opens. Checked before uvicorn starts: a lifespan that fails prints a
    traceback per process (one per worker), where an operator needs the one line that says why."""
    if not settings.database_url:
        return None  # SQLite: a file that cannot be written opens read-only and /readyz says so
    from mcp_kscan.errors import KscanError
    from mcp_kscan.runner.db import PostgresDatabase

    db = PostgresDatabase(settings.database_url)
    try:
        db.open()  # also brings the schema up to date, once: replicas starting together take its lock
    except KscanError as exc:
        return str(exc)  # the URL in it is redacted (Database.describe)
    finally:
        db.close()
    return None


def _serve(args: argparse.Namespace, settings: Settings, argv: Sequence[str]) -> int:
    problem = workers_problem(args, settings)
    if problem:
        print(f"mcp-kscan: {problem}", file=sys.stderr)
        return 2
    if args.transport == "stdio":
        from mcp_kscan.server import run_stdio

        run_stdio(settings)
        return 0
    if not is_loopback(args.host) and not settings.token and not args.allow_unauthenticated:
        print(
            f"mcp-kscan: refusing to listen on {args.host} without a token: set MCP_KSCAN_TOKEN "
            "(or pass --allow-unauthenticated, which lets anyone who can reach the port run scans)",
            file=sys.stderr,
        )
        return 2
    if not settings.token:
        who = "any local process" if is_loopback(args.host) else "anyone who can reach the port (and any local process)"
        logging.getLogger("mcp_kscan.http").warning(
            "no MCP_KSCAN_TOKEN is set: %s can use the REST API and /mcp and start scans; "
            "set MCP_KSCAN_TOKEN to require a bearer token", who,
        )
    problem = database_problem(settings)
    if problem:
        print(f"mcp-kscan: {problem}", file=sys.stderr)
        return 2
    if args.workers > 1:
        from mcp_kscan.http_compat.workers import supervise

        return supervise(argv, settings, host=args.host, port=args.port, workers=args.workers)
    from mcp_kscan.http_compat.serve import run_http

    run_http(settings, host=args.host, port=args.port, allowed_hosts=args.allowed_host)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Bare `mcp-kscan` is `mcp-kscan serve` (what MCP clients launch), options included:
    # `mcp-kscan --log-format json` means `mcp-kscan serve --log-format json`.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["serve", *argv]
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"mcp-kscan {__version__}")
        return 0
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"mcp-kscan: bad setting: {exc}", file=sys.stderr)
        return 2
    level = settings.log_level
    chosen = getattr(args, "log_level", None) or os.environ.get("MCP_KSCAN_LOG_LEVEL") or os.environ.get("KS_LOGGER_LEVEL")
    if args.command in ("scan", "kube-bench", "doctor", "fix") and not chosen:
        level = "WARNING"  # a terminal command prints its answer; the runner's INFO lines are noise there
    setup_logging(level, getattr(args, "log_format", "text"))
    if args.command == "serve":
        return _serve(args, settings, argv)
    if args.command == "doctor":
        from mcp_kscan.doctor import run_doctor

        return run_doctor(settings, as_json=args.json)
    if args.command == "scan":
        from mcp_kscan.engine.cli import run_scan_command

        return run_scan_command(args, settings)
    if args.command == "kube-bench":
        from mcp_kscan.kube_bench_cli import run_kube_bench_command

        return run_kube_bench_command(args)
    if args.command == "fix":
        from mcp_kscan.fixes.cli import run_fix_command

        return run_fix_command(args, settings)
    parser.print_help(sys.stderr)
    return 2
