"""Versioned schema migrations for both backends.

``schema_migrations`` records which versions a database has. A server applies the ones it is
missing, in order, inside the transaction its backend opens for this (one server at a time:
SQLite's write lock, a PostgreSQL advisory lock), and refuses a database written by a newer
server instead of guessing at columns it does not know.

To change the schema, append a migration; never edit one that has shipped, since databases
already carry it. Each names its SQL per dialect: the differences are types (BLOB/BYTEA,
REAL/DOUBLE PRECISION), the scans' order key (AUTOINCREMENT/IDENTITY) and SQLite's WITHOUT ROWID.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_kscan.runner.db import Conn


class SchemaTooNew(Exception):
    """The database was migrated by a newer mcp-kscan than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    why: str
    sql: dict[str, str]
    """Statements per dialect, separated by ``;`` (none inside a statement)."""
    after: Callable[[Conn, str], None] | None = None
    """Work the SQL cannot say portably (adding columns only where missing)."""


_V1_SCANS = """
CREATE TABLE IF NOT EXISTS scans (
    n               {serial},
    scan_id         TEXT NOT NULL UNIQUE,
    scanner         TEXT NOT NULL,
    engine          TEXT NOT NULL,
    status          TEXT NOT NULL,
    origin          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    duration_s      {real},
    phase           TEXT,
    error           TEXT,
    request_json    TEXT NOT NULL,
    command_json    TEXT,
    return_code     INTEGER,
    stderr_tail     TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    summary_json    TEXT,
    has_report      INTEGER NOT NULL DEFAULT 0,
    progress_done   INTEGER,
    progress_total  INTEGER,
    pgid            INTEGER,
    pgid_ticks      BIGINT,
    server_pid      INTEGER,
    server_ticks    BIGINT
);
CREATE INDEX IF NOT EXISTS scans_status ON scans(status);
CREATE TABLE IF NOT EXISTS outputs (
    scan_id     TEXT PRIMARY KEY,
    media_type  TEXT NOT NULL,
    data        {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    scan_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    item_type   TEXT NOT NULL,
    status      TEXT,
    severity    TEXT,
    control_id  TEXT,
    namespace   TEXT,
    kind        TEXT,
    node        TEXT,
    data        TEXT NOT NULL,
    resource_key TEXT,
    excepted    INTEGER NOT NULL DEFAULT 0,
    risk_rank   INTEGER,
    PRIMARY KEY (scan_id, seq)
){without_rowid};
CREATE TABLE IF NOT EXISTS scan_files (
    scan_id     TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (scan_id, path)
){without_rowid}
"""

# Columns ``items`` gained before migrations were versioned: a SQLite file written by such an
# older server gets them here (old rows keep NULLs and page as before; only the newer views need them).
_V1_ITEM_COLUMNS = (
    ("resource_key", "TEXT"),
    ("excepted", "INTEGER NOT NULL DEFAULT 0"),
    ("risk_rank", "INTEGER"),
)


def _v1_missing_item_columns(conn: Conn, dialect: str) -> None:
    if dialect != "sqlite":
        return  # PostgreSQL support began with the full schema
    present = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
    for name, decl in _V1_ITEM_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE items ADD COLUMN {name} {decl}")


_V7_RUNS = """
CREATE TABLE IF NOT EXISTS item_runs (
    scan_id     TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    status      TEXT NOT NULL,
    severity    TEXT,
    control_id  TEXT NOT NULL,
    excepted    INTEGER NOT NULL DEFAULT 0,
    risk_rank   INTEGER,
    data        TEXT NOT NULL,
    members     TEXT NOT NULL,
    PRIMARY KEY (scan_id, seq)
);
CREATE TABLE IF NOT EXISTS item_resources (
    scan_id     TEXT NOT NULL,
    rno         INTEGER NOT NULL,
    kind        TEXT,
    namespace   TEXT,
    resource_key TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (scan_id, rno)
){without_rowid}
"""

def _v8_output_file_columns(conn: Conn, dialect: str) -> None:
    """SQLite has no ``ADD COLUMN IF NOT EXISTS``: a file brought back to an older version keeps them."""
    if dialect != "sqlite":
        return
    present = {row[1] for row in conn.execute("PRAGMA table_info(outputs)")}
    for name, decl in (("file_name", "TEXT"), ("file_bytes", "INTEGER")):
        if name not in present:
            conn.execute(f"ALTER TABLE outputs ADD COLUMN {name} {decl}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "scans, raw outputs, pageable items and scanned files' hashes (the schema before versioning,"
        " so old SQLite files adopt it)",
        {
            "sqlite": _V1_SCANS.format(
                serial="INTEGER PRIMARY KEY AUTOINCREMENT", real="REAL", blob="BLOB", without_rowid=" WITHOUT ROWID"
            ),
            "postgresql": _V1_SCANS.format(
                serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                real="DOUBLE PRECISION",
                blob="BYTEA",
                without_rowid="",
            ),
        },
        after=_v1_missing_item_columns,
    ),
    Migration(
        2,
        "leases: which host runs an active scan and until when it vouches for it, so replicas judge each other",
        {
            "sqlite": "ALTER TABLE scans ADD COLUMN server_host TEXT; ALTER TABLE scans ADD COLUMN lease_until REAL",
            "postgresql": "ALTER TABLE scans ADD COLUMN server_host TEXT;"
            " ALTER TABLE scans ADD COLUMN lease_until DOUBLE PRECISION",
        },
    ),
    Migration(
        3,
        "cancel requests: a replica asks the one running a scan to cancel it",
        {
            "sqlite": "ALTER TABLE scans ADD COLUMN cancel_reason TEXT",
            "postgresql": "ALTER TABLE scans ADD COLUMN cancel_reason TEXT",
        },
    ),
    Migration(
        4,
        "resource progress: the built-in engine reports resources checked of found next to files read",
        {
            "sqlite": "ALTER TABLE scans ADD COLUMN resources_done INTEGER;"
            " ALTER TABLE scans ADD COLUMN resources_total INTEGER",
            "postgresql": "ALTER TABLE scans ADD COLUMN resources_done INTEGER;"
            " ALTER TABLE scans ADD COLUMN resources_total INTEGER",
        },
    ),
    Migration(
        5,
        "scheduled scans: each (entry, slot) claimed once, so a schedule fires once across replicas",
        {
            dialect: "CREATE TABLE IF NOT EXISTS schedule_fires (entry TEXT NOT NULL, slot TEXT NOT NULL,"
            " claimed_at TEXT NOT NULL, server_host TEXT, scan_id TEXT, error TEXT, PRIMARY KEY (entry, slot))"
            for dialect in ("sqlite", "postgresql")
        },
    ),
    Migration(
        6,
        "portable queued scans: where a queued scan may run (anywhere, host:<name>, process) and the planner's"
        " inputs another server rebuilds its task from",
        {
            dialect: "ALTER TABLE scans ADD COLUMN runs_on TEXT; ALTER TABLE scans ADD COLUMN plan_json TEXT"
            for dialect in ("sqlite", "postgresql")
        },
    ),
    Migration(
        7,
        "runs of findings alike but for their resource (a big scan's passed verdicts): one row per run and"
        " one per resource, in place of a row per finding; scans stored before keep their rows",
        {
            "sqlite": _V7_RUNS.format(without_rowid=" WITHOUT ROWID"),
            "postgresql": _V7_RUNS.format(without_rowid=""),
        },
    ),
    Migration(
        8,
        "a raw output kept as a file beside the database (SQLite: a big built-in report is copied into"
        " place, not through the database's pages): the file's name and size; NULL for an output in data",
        {
            "sqlite": "",
            "postgresql": "ALTER TABLE outputs ADD COLUMN IF NOT EXISTS file_name TEXT;"
            " ALTER TABLE outputs ADD COLUMN IF NOT EXISTS file_bytes BIGINT",
        },
        after=_v8_output_file_columns,
    ),
    Migration(
        9,
        "findings indexed after the result: a built-in scan's record and report are stored as soon as the"
        " report is whole, its findings a moment later; a row here while they are on their way (error NULL),"
        " or why they never came",
        {
            dialect: "CREATE TABLE IF NOT EXISTS item_indexing (scan_id TEXT PRIMARY KEY, error TEXT)"
            for dialect in ("sqlite", "postgresql")
        },
    ),
)

LATEST = MIGRATIONS[-1].version


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def applied_version(conn: Conn) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: Conn, dialect: str) -> list[int]:
    """Apply the missing migrations; the caller holds the transaction. Returns the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL,"
        " why TEXT NOT NULL)"
    )
    current = applied_version(conn)
    if current > LATEST:
        raise SchemaTooNew(
            f"the results database has schema version {current}, newer than this mcp-kscan's {LATEST}:"
            " upgrade mcp-kscan (or point it at another database)"
        )
    done: list[int] = []
    for m in MIGRATIONS:
        if m.version <= current:
            continue
        for statement in _statements(m.sql[dialect]):
            conn.execute(statement)
        if m.after is not None:
            m.after(conn, dialect)
        args: list[Any] = [m.version, datetime.now(UTC).isoformat(), m.why]
        conn.execute("INSERT INTO schema_migrations (version, applied_at, why) VALUES (?,?,?)", args)
        done.append(m.version)
    return done
