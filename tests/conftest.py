"""Fixtures shared by every test: anyio backend, ../shared, the fake scanners, settings.

Keep this file small and general; put area-specific fixtures in a subdirectory's conftest.py.
"""

from __future__ import annotations

import compileall
import json
import logging
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import mcp_kscan.settings

# PYTHONDONTWRITEBYTECODE=1 (set on the machines this project is developed and checked on) also
# stops pytest from keeping its assertion-rewritten test modules, so every pytest process, each
# xdist worker included, parsed, rewrote and compiled all of them again: 3-5 s of CPU a process
# (collection 7-10 -> 4.3 CPU s once cached). This process may write them (tests/**/__pycache__,
# gitignored; pytest writes them atomically, so workers racing on a first run are safe). The
# processes the tests start still get the variable from the environment.
sys.dont_write_bytecode = False

# GC off while collecting, frozen after; xdist workers skip interpreter teardown (tests/process_costs.py).
pytest_plugins = ("process_costs",)

REPO_ROOT = Path(__file__).resolve().parents[1]
FAKES_DIR = Path(__file__).resolve().parent / "fakes"


def shared_dir_path() -> Path:
    """Where ../shared is: env MCP_KSCAN_SHARED_DIR, else beside the repo root."""
    env = os.environ.get("MCP_KSCAN_SHARED_DIR")
    return Path(env) if env else (REPO_ROOT / ".." / "shared").resolve()


def shared_fixture(*parts: str) -> Path:
    """A file under ../shared/fixtures, or skip the test (a user's clone has no ../shared)."""
    path = shared_dir_path().joinpath("fixtures", *parts)
    if not path.exists():
        pytest.skip(f"../shared/fixtures absent: {'/'.join(parts)}")
    return path


REGOLIBRARY = "regolibrary-v2.0.33"


def regolibrary_path() -> Path | None:
    """Kubescape's rule library release under ../shared/reference, or None when it is absent."""
    path = shared_dir_path() / "reference" / REGOLIBRARY
    return path if (path / "controls").is_dir() else None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Write mcp_kscan's bytecode before the tests start its servers, CLIs and engine processes.

    Under PYTHONDONTWRITEBYTECODE=1 (set on the machines this project is developed and checked
    on) no process writes it, so each of the hundreds of Python processes the suite starts would
    compile every mcp_kscan module it imports from source, as no installed copy does. compileall
    writes the caches whatever that variable says (once: it skips what is up to date), and
    Python still reads them. __pycache__ is gitignored. Under pytest-xdist only the controller
    does it, before it starts the workers (xdist starts them in its own, later, sessionstart):
    on a fresh clone nine processes each compiled all of mcp_kscan side by side.
    """
    if hasattr(session.config, "workerinput"):
        return
    compileall.compile_dir(str(REPO_ROOT / "mcp_kscan"), quiet=1)


# Tests that start real servers and scans run first, the `slow` ones before all: under
# pytest-xdist the long tests then start early, side by side, and the thousands of short
# in-process cases (tests/security, tests/scanners, ...) fill the end of the run evenly instead
# of a 30 s test starting last on one worker while the others sit idle.
_FIRST_DIRECTORIES = ("faults", "e2e", "install")


def _run_order(item: pytest.Item) -> tuple[int, int]:
    parts = Path(str(item.path)).relative_to(REPO_ROOT / "tests").parts
    directory = parts[0] if len(parts) > 1 else ""
    return (0 if item.get_closest_marker("slow") else 1, 0 if directory in _FIRST_DIRECTORIES else 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_run_order)  # stable: the order within each group is the collection order


SHARED_SERVER_MODULES = frozenset({
    "tests/e2e/test_conformance.py",
    "tests/e2e/test_mcp_http.py",
    "tests/e2e/test_rest_server.py",
    "tests/e2e/test_workers.py",
    "tests/faults/test_connections.py",
    "tests/faults/test_engine_process.py",
    "tests/faults/test_mcp_protocol.py",
    "tests/faults/test_mcp_sessions.py",
    "tests/faults/test_queue_cap.py",
    "tests/faults/test_server_faults.py",
    "tests/install/test_inspector.py",
    "tests/install/test_stdio_logging.py",
    "tests/security/test_browser.py",
    "tests/security/test_kubeconfig.py",
    "tests/security/test_redaction.py",
    "tests/tools/test_results.py",
})
"""Modules whose tests share a server or a scan made once (a module-scoped fixture): under pytest -n,
one worker runs all of a module's tests, else each worker that draws one starts its own copy
(-n 4 started 18 servers for the first six modules listed, not 8). Only small modules belong here: a
module's tests then run one after another. (xdist's own ``xdist_group`` mark does not work on
pytest 9: it renames ``item._nodeid``, which pytest no longer reads.)"""


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's ``load`` distribution, except that a module of SHARED_SERVER_MODULES is one unit.

    Every other test is a unit of its own, handed out as a worker frees up (two or three queued
    per worker), in the collection order (``_run_order``: slow tests first).
    """
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedServerScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_SERVER_MODULES else nodeid

    config.option.loadscopereorder = False  # keep the collection order
    return SharedServerScheduling(config, log)


@pytest.fixture
def regolibrary() -> Path:
    path = regolibrary_path()
    if path is None:
        pytest.skip(f"../shared/reference/{REGOLIBRARY} absent: nothing to compare with")
    return path


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short kill and shutdown graces for every server a test starts, in-process or as a child.

    With the defaults (5 s and 10 s), a test that ends with a scan still queued or running waits
    the whole shutdown grace before the scan is cancelled: 9 s of a 10 s test. A test about the
    graces sets its own values (the fixture only provides the starting environment).
    """
    monkeypatch.setenv("MCP_KSCAN_KILL_GRACE", "1")
    monkeypatch.setenv("MCP_KSCAN_SHUTDOWN_GRACE", "1")


@pytest.fixture
def shared_dir() -> Path:
    path = shared_dir_path()
    if not (path / "fixtures").is_dir():
        pytest.skip(f"../shared/fixtures absent: {path}")
    return path


@dataclass
class FakeBin:
    """Executable fakes on disk plus the env that points the server at them."""

    bin_dir: Path
    kube_bench: Path
    kubescape: Path
    record_file: Path
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    """MCP_KSCAN_*_PATH, FAKE_SCANNER_RECORD, MCP_KSCAN_DATA_DIR: merge into a subprocess env."""

    def configure(self, **knobs: str | int | float | Path | None) -> None:
        """Set fake knobs for every later start, even through a job's minimal child env.

        Keys are the env names without the prefix, lower-case: ``mode="hang"``,
        ``sleep=1``, ``huge_mb=5``, ``kube_bench_output=path``, ``kubescape_report=path``
        (→ FAKE_SCANNER_MODE, FAKE_SCANNER_SLEEP, FAKE_SCANNER_HUGE_MB, FAKE_KUBE_BENCH_OUTPUT,
        FAKE_KUBESCAPE_REPORT). ``None`` removes a knob. The record file is always set.
        """
        config_file = self.bin_dir / "fake-scanner.json"
        data: dict[str, Any] = json.loads(config_file.read_text()) if config_file.exists() else {}
        for key, value in knobs.items():
            name = _KNOB_NAMES.get(key, key.upper())
            if value is None:
                data.pop(name, None)
            else:
                data[name] = str(value)
        data["FAKE_SCANNER_RECORD"] = str(self.record_file)
        config_file.write_text(json.dumps(data))

    def records(self) -> list[dict[str, Any]]:
        """Every line the fakes recorded (events ``start`` and ``grandchild``), oldest first."""
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines() if line.strip()]

    def starts(self, scanner: str | None = None) -> list[dict[str, Any]]:
        """The ``start`` records: {scanner, argv, cwd, env, pid}."""
        return [
            r for r in self.records() if r.get("event") == "start" and (scanner is None or r["scanner"] == scanner)
        ]


_KNOB_NAMES = {
    "mode": "FAKE_SCANNER_MODE",
    "sleep": "FAKE_SCANNER_SLEEP",
    "huge_mb": "FAKE_SCANNER_HUGE_MB",
    "kube_bench_output": "FAKE_KUBE_BENCH_OUTPUT",
    "kubescape_report": "FAKE_KUBESCAPE_REPORT",
    "record": "FAKE_SCANNER_RECORD",
}


def _install_fake(src: Path, dest: Path, *, site: bool = True) -> None:
    # The fake's own shebang (/usr/bin/env python3) may find a python other than the venv's;
    # rewrite it to this interpreter so the fake runs with the same Python as the tests.
    # Without ``site`` (python -S) a start costs a quarter less CPU: no .pth files to process
    # (the editable install's finder among them). The scanner fakes, started hundreds of times
    # a run, need only the standard library.
    body = src.read_text().split("\n", 1)[1]
    dest.write_text(f"#!{sys.executable}{'' if site else ' -S'}\n{body}")
    dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def make_fake_bin(tmp: Path) -> FakeBin:
    """The fakes installed under ``tmp`` (fakebin/, data/, the start log); for fixtures of any scope."""
    bin_dir = tmp / "fakebin"
    bin_dir.mkdir()
    for name in ("kube-bench", "kubescape"):
        _install_fake(FAKES_DIR / name, bin_dir / name, site=False)
    record_file = tmp / "fake-scanner-records.jsonl"
    data_dir = tmp / "data"
    data_dir.mkdir()
    fb = FakeBin(
        bin_dir=bin_dir,
        kube_bench=bin_dir / "kube-bench",
        kubescape=bin_dir / "kubescape",
        record_file=record_file,
        data_dir=data_dir,
    )
    fb.env = {
        "MCP_KSCAN_KUBE_BENCH_PATH": str(fb.kube_bench),
        "MCP_KSCAN_KUBESCAPE_PATH": str(fb.kubescape),
        "FAKE_SCANNER_RECORD": str(record_file),
        "MCP_KSCAN_DATA_DIR": str(data_dir),
    }
    fb.configure()  # bakes the record file in, so starts are recorded whatever env the child gets
    return fb


@pytest.fixture
def fake_bin(tmp_path: Path) -> FakeBin:
    return make_fake_bin(tmp_path)


@pytest.fixture
def kscan_settings(fake_bin: FakeBin, monkeypatch: pytest.MonkeyPatch) -> Iterator[mcp_kscan.settings.Settings]:
    """Settings pointing at the fakes and a tmp data dir; re-read from the env, reset afterwards."""
    for key, value in fake_bin.env.items():
        monkeypatch.setenv(key, value)
    mcp_kscan.settings.configure(None)
    try:
        yield mcp_kscan.settings.get_settings()
    finally:
        mcp_kscan.settings.configure(None)


InProcessCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> InProcessCli:
    """``cli_main("doctor", "--json", env=...)``: what ``python -m mcp_kscan doctor --json`` answers,
    from ``cli.main`` in this process.

    For tests of a command's logic, not of the process (a CLI start is 0.3-0.6 CPU s): the
    environment is exactly ``env`` during the call, stdout and stderr are what the command
    printed, and an argparse exit is its status. The root logger and the settings global, which
    ``main`` sets up as a fresh process would, are restored afterwards.
    """
    from mcp_kscan import cli

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        capsys.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse's usage errors (2) and --help (0)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            mcp_kscan.settings.configure(None)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(["mcp-kscan", *args], code, out.out, out.err)

    return run


@dataclass
class FakeHelm:
    """The fake ``helm`` on disk (tests/fakes/helm) and what it recorded."""

    path: Path
    record_file: Path

    def configure(self, mode: str = "ok") -> None:
        """``ok`` | ``fail`` | ``hang`` | ``huge``, read by the fake beside itself (helm gets a minimal env)."""
        (self.path.parent / "fake-helm.json").write_text(
            json.dumps({"FAKE_HELM_MODE": mode, "FAKE_HELM_RECORD": str(self.record_file)}))

    def starts(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines() if line.strip()]


@pytest.fixture
def fake_helm(tmp_path: Path) -> FakeHelm:
    bin_dir = tmp_path / "fakehelm"
    bin_dir.mkdir()
    _install_fake(FAKES_DIR / "helm", bin_dir / "helm")
    fh = FakeHelm(bin_dir / "helm", tmp_path / "fake-helm-records.jsonl")
    fh.configure()
    return fh


def write_chart(folder: Path, *, privileged: bool = True) -> Path:
    """A small Helm chart (Chart.yaml, values.yaml, two templates and a helper) under ``folder``."""
    chart = folder / "web"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(f"image:\n  repository: nginx\n  tag: '1.25'\nprivileged: {str(privileged).lower()}\n")
    (chart / "templates" / "_helpers.tpl").write_text('{{- define "web.name" -}}web{{- end -}}\n')
    (chart / "templates" / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n"
        "      containers:\n      - name: web\n        image: {{ .Values.image.repository }}:{{ .Values.image.tag }}\n"
        "        securityContext:\n          privileged: {{ .Values.privileged }}\n")
    (chart / "templates" / "service.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n"
        "  selector: {app: web}\n  ports: [{port: 80}]\n")
    return chart


def write_kustomize(folder: Path) -> Path:
    """A Kustomize base and a ``prod`` overlay whose patch makes the container privileged."""
    base, overlay = folder / "base", folder / "overlays" / "prod"
    base.mkdir(parents=True)
    overlay.mkdir(parents=True)
    (base / "kustomization.yaml").write_text("resources:\n- deployment.yaml\n")
    (base / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n"
        "        image: nginx:1.25\n")
    (overlay / "kustomization.yaml").write_text("resources:\n- ../../base\nnamePrefix: prod-\npatches:\n- path: privileged.yaml\n")
    (overlay / "privileged.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: web\n        securityContext:\n          privileged: true\n")
    return folder


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """A real PostgreSQL for the session (tests/pgcluster.py); skips where it is not installed.
    Under pytest-xdist the workers share one (``pgcluster.shared``), which the controller stops."""
    from pgcluster import PostgresCluster, shared, skip_or_fail, unavailable_reason

    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id:
        try:
            cluster = shared(run_id)
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            skip_or_fail(f"a test PostgreSQL could not start: {exc}")
        yield cluster
        return
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (OSError, RuntimeError) as exc:
        cluster.discard()
        skip_or_fail(f"a test PostgreSQL could not start: {exc}")
    yield cluster
    cluster.stop()


def pytest_configure(config: pytest.Config) -> None:
    """The xdist controller names the run itself, to stop the workers' shared PostgreSQL after it."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput") \
            and getattr(config.option, "testrunuid", "") is None:
        config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    run_id = getattr(config.option, "testrunuid", None)
    if run_id and not hasattr(config, "workerinput"):
        from pgcluster import stop_shared

        stop_shared(run_id)


@pytest.fixture
def postgres_url(postgres_cluster: Any) -> str:
    """The URL of an empty database of its own for this test."""
    return str(postgres_cluster.new_database())
