"""``mcp-kscan fix PATH [--control ID…] [--write]``: Kubescape's ``fix``, with every fix re-scanned first.

Without ``--write`` it prints the diff each file would get and changes nothing; with it, the
verified fixes are written (one atomic write per file, only under PATH). The exit status is 1
while failed findings remain without a verified fix (a value only you can choose, no remedy, or a
fix the re-scan did not confirm), so a pipeline can gate on it; 2 is a usage or scan error.

Like every front end, it goes through the runner: the scan is stored and its findings are the
ones ``get_results`` would show.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from mcp_kscan.errors import KscanError
from mcp_kscan.settings import Settings

if TYPE_CHECKING:
    from mcp_kscan.fixes.models import ApplyResult

# Like kube_bench_cli: the parser is built for every command, so what only ``fix`` runs is
# imported when it runs.

EXIT_OK, EXIT_REMAINING, EXIT_ERROR = 0, 1, 2


def add_fix_parser(sub: Any) -> None:
    from mcp_kscan.cli import _add_common

    fix = sub.add_parser(
        "fix", help="fix the failed findings of a manifest scan (prints the diff; --write applies the verified fixes)")
    fix.add_argument("path", metavar="PATH", help="a manifest file or a directory of manifests")
    fix.add_argument("--control", action="append", default=[], metavar="ID",
                     help="only this control (C-0057); repeatable")
    fix.add_argument("--write", action="store_true", help="write the verified fixes into the files")
    _add_common(fix)


async def _run(settings: Settings, path: str, controls: list[str], write: bool) -> tuple[ApplyResult, int]:
    from mcp_kscan.runner.records import ScanState
    from mcp_kscan.scanners.kubescape_request import KubescapeRequest
    from mcp_kscan.service import ScanService, open_manager, validate_request

    fields: dict[str, Any] = {"paths": [path], "engine": "builtin"}
    if controls:
        fields.update(target_type="control", target_names=controls)
    req = validate_request(KubescapeRequest, fields, settings)
    async with open_manager(settings) as manager:
        service = ScanService(manager, settings)
        record = await service.start_kubescape(req, origin="cli")
        record = await service.wait(record.scan_id, settings.default_timeout_s + 3600)
        if record.status is not ScanState.succeeded:
            raise KscanError(f"the scan {record.status.value}: {record.error or 'no report'}")
        ids = await service.fixes.failed_ids(record.scan_id)
        if not ids:
            from mcp_kscan.fixes.models import ApplyResult

            return ApplyResult(scan_id=record.scan_id, results=[], files_written=[], applied=0, refused=0), 0
        return await service.fixes.apply(record.scan_id, ids, client_roots=[path], write=write), len(ids)


def run_fix_command(args: argparse.Namespace, settings: Settings) -> int:
    path = os.path.realpath(args.path)
    if not os.path.exists(path):
        print(f"mcp-kscan fix: no such file or directory: {args.path}", file=sys.stderr)
        return EXIT_ERROR
    try:
        import anyio

        result, failed = anyio.run(_run, settings, path, [c.upper() for c in args.control], args.write)
    except KscanError as exc:
        print(f"mcp-kscan fix: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for diff in result.diffs.values():
        sys.stdout.write(diff)
    verb = "applied" if args.write else "verified (run again with --write to apply)"
    print(f"{failed} failed finding(s): {result.applied} fix(es) {verb}, {result.refused} without a verified fix",
          file=sys.stderr)
    reasons: dict[str, int] = {}
    for r in result.results:
        if r.status == "refused":
            key = (r.reason or "").split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {count} × {reason}", file=sys.stderr)
    if args.write and result.files_written:
        print("written: " + ", ".join(result.files_written), file=sys.stderr)
    return EXIT_REMAINING if result.refused else EXIT_OK
