"""A real PostgreSQL for the tests: a throw-away cluster in a temporary directory.

``initdb`` and ``pg_ctl`` run as the ``postgres`` user when the tests run as root (PostgreSQL
refuses to run as root), else as the current user. The server listens only on a Unix socket in
its own directory (no TCP: the cluster trusts every local connection), named for a free port.
Where the binaries are absent the tests that need it skip, unless ``MCP_KSCAN_REQUIRE_POSTGRES``
is set (CI sets it: there a skip would hide the PostgreSQL backend going untested).
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

PG_BIN = Path(os.environ.get("MCP_KSCAN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_parent() -> str | None:
    """/dev/shm where there is one (tmpfs), else the temporary directory.

    Every test's database is a copy of the template (~7.5 MB, ~300 files), and the whole cluster is
    removed after the run: on this machine's disk (ext4 with online discard) that took 8 s after a
    full -n 4 run's summary, before ``pytest -m solo`` could start. In memory it is well under a
    second, and nothing of it needs to survive the run (``fsync`` is off anyway)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


class PostgresCluster:
    """One running cluster; ``new_database()`` gives each test its own empty database."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kscan-pg-", dir=_cluster_parent()))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)

    def _run(self, *argv: str) -> None:
        proc = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

    def start(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")
        conf = (
            "listen_addresses = ''\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.root}'\n"
            # A test cluster: losing it in a power cut costs nothing, and fsync costs seconds per test.
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            "max_connections = 200\n"
        )
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(conf)
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "120", "start")

    def stop(self) -> None:
        try:
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def discard(self) -> None:
        """After a failed start: stop whatever did start, and remove the directory either way."""
        try:
            self.stop()
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    def attach(cls, root: Path, port: int) -> PostgresCluster:
        """The cluster another process started (``shared``), to use or, for its owner, to stop."""
        cluster = cls.__new__(cls)
        cluster.root, cluster.data, cluster.port = root, root / "data", port
        cluster._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return cluster

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _shared_state(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"kscan-pg-run-{run_id}.json"


def shared(run_id: str) -> PostgresCluster:
    """The one cluster of a pytest-xdist run, whichever worker asks first starting it (a cluster
    costs about a CPU second to create and start: once per run instead of once per worker).
    Every test has a database of its own, so the workers share nothing else. The controller
    stops it after the run (``stop_shared``)."""
    state = _shared_state(run_id)
    with open(state.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if state.exists():
            found = json.loads(state.read_text())
            return PostgresCluster.attach(Path(found["root"]), int(found["port"]))
        cluster = PostgresCluster()
        try:
            cluster.start()
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            cluster.discard()
            raise
        state.write_text(json.dumps({"root": str(cluster.root), "port": cluster.port}))
        return cluster


def stop_shared(run_id: str) -> None:
    """Stop the run's shared cluster, if a worker started one."""
    state = _shared_state(run_id)
    try:
        found = json.loads(state.read_text())
    except FileNotFoundError:
        return
    try:
        PostgresCluster.attach(Path(found["root"]), int(found["port"])).stop()
    finally:
        state.unlink(missing_ok=True)
        state.with_suffix(".lock").unlink(missing_ok=True)


def unavailable_reason() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL is not installed ({PG_BIN}/initdb absent; apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "PostgreSQL refuses to run as root and there is no postgres user to run it as"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("MCP_KSCAN_REQUIRE_POSTGRES"):
        pytest.fail(f"MCP_KSCAN_REQUIRE_POSTGRES is set but {reason}")
    pytest.skip(reason)
