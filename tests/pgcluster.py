"""A real PostgreSQL for the tests: a throw-away cluster in a temporary directory.

``initdb`` and ``pg_ctl`` run as the ``postgres`` user when the tests run as root (PostgreSQL
refuses to run as root), else as the current user. The server listens only on a Unix socket in
its own directory (no TCP: the cluster trusts every local connection), named for a free port.
Where the binaries are absent the tests that need it skip, unless ``MCP_KSCAN_REQUIRE_POSTGRES``
is set (CI sets it: there a skip would hide the PostgreSQL backend going untested).
"""

from __future__ import annotations

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


class PostgresCluster:
    """One running cluster; ``new_database()`` gives each test its own empty database."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="kscan-pg-"))
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

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.root}&port={self.port}"

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


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
