"""``mcp-kscan kube-bench`` as a user runs it: the fake kube-bench, a real store.

test_table_and_exit_codes runs the real process for the gate (exit status 1, what CI sees); the
table (exit status 0) and the other checks are about the command's logic and run ``cli.main`` in
this process (``cli_main``: a CLI start is 0.3-0.6 CPU s), with the same environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import InProcessCli


def _run(fake_bin, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **fake_bin.env, **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mcp_kscan", "kube-bench", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _main(cli_main: InProcessCli, fake_bin, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return cli_main("kube-bench", *args, env={**os.environ, **fake_bin.env})


def test_table_and_exit_codes(fake_bin, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    done = _main(cli_main, fake_bin, "--targets", "master,node", "--benchmark", "cis-1.10", "--executor", "local")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "FAIL" in done.stdout
    argv = fake_bin.starts("kube-bench")[-1]["argv"][1:]
    assert argv[:3] == ["run", "--targets", "master,node"] and "--benchmark" in argv
    gated = _run(fake_bin, "--executor", "local", "--fail-on-findings")
    assert gated.returncode == 1  # the fake's default report has FAILs


def test_json_is_kube_bench_output(fake_bin, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    done = _main(cli_main, fake_bin, "--executor", "local", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "Controls" in report or isinstance(report, list)


@pytest.mark.parametrize(
    "args, field",
    [(["--targets", "master;id"], "targets"), (["--kube-version", "1.28", "--benchmark", "cis-1.10"], ""),
     (["--nodes=-evil"], "nodes")],
)
def test_bad_input_is_a_one_line_error_and_runs_nothing(fake_bin, cli_main: InProcessCli, args: list[str], field: str) -> None:  # type: ignore[no-untyped-def]
    done = _main(cli_main, fake_bin, *args)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("mcp-kscan kube-bench:")
    assert field in done.stderr
    assert not fake_bin.starts()


def test_scanner_failure_exits_2(fake_bin, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(mode="error")
    done = _main(cli_main, fake_bin, "--executor", "local")
    assert done.returncode == 2
    assert "failed" in done.stdout
