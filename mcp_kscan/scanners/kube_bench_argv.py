"""kube-bench's command line for a validated ``KubeBenchRun`` (what to check; where it runs is
``executors.placement``'s).

Facts this module relies on (kube-bench cmd/root.go, cmd/run.go):
- ``--targets`` exists only on the ``run`` subcommand; on the root command cobra rejects it
  with exit 255. Without targets we call the root command, which auto-detects what runs here.
- We never use ``--outputfile`` (a fixed file is a race and a leak; stdout is private to the scan).
- Exit 0 is a finished run even with FAILs; ``--exit-code N`` makes a run with FAILs exit N.
"""

from __future__ import annotations

from mcp_kscan.scanners.kube_bench_request import (
    KubeBenchRun,
    parse_additional_args,
)


def build_argv(req: KubeBenchRun, binary: str) -> list[str]:
    """The argv for ``req``: ``run --targets`` only when targets are given, always ``--json``."""
    argv = [binary]
    if req.targets:
        argv += ["run", "--targets", ",".join(req.targets)]
    argv.append("--json")
    if req.version:
        argv += ["--version", req.version]
    if req.benchmark:
        argv += ["--benchmark", req.benchmark]
    if req.config_dir:
        argv += ["--config-dir", req.config_dir]
    if req.check:
        argv += ["--check", ",".join(req.check)]
    if req.group:
        argv += ["--group", ",".join(req.group)]
    if req.skip:
        argv += ["--skip", ",".join(req.skip)]
    if req.scored is not None:
        argv.append(f"--scored={str(req.scored).lower()}")
    if req.unscored is not None:
        argv.append(f"--unscored={str(req.unscored).lower()}")
    if req.additional_args:
        # Re-emitted as single --flag=value tokens: no value can be mistaken for a flag.
        for flag, value in parse_additional_args(req.additional_args):
            argv.append(flag if value is None else f"{flag}={value}")
    return argv


def requested_exit_code(req: KubeBenchRun) -> int | None:
    """The ``--exit-code N`` the caller asked for, if any: exit N with a report is a finished scan."""
    if not req.additional_args:
        return None
    codes = [int(v) for f, v in parse_additional_args(req.additional_args) if f == "--exit-code" and v]
    return codes[-1] if codes else None
