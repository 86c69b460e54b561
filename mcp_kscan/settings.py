"""One settings object, read from the environment and overridable from the CLI.

Empty strings count as unset: MCP Bundle hosts substitute ``""`` for user_config fields the
user left blank, and that must not mean "the current directory".
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mcp_kscan.redact import register_secret


def _default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mcp-kscan"


def _database_url(raw: str | None) -> str | None:
    """The PostgreSQL URL, checked; its password becomes a secret that no log or response shows."""
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("postgresql", "postgres"):
        # The value itself is never echoed: it may hold a password.
        raise ValueError(
            f"MCP_KSCAN_DATABASE_URL: expected a postgresql:// URL, got scheme {parts.scheme or '(none)'!r}"
            " (leave it unset to use the SQLite file in MCP_KSCAN_DATA_DIR)"
        )
    register_secret(parts.password)
    for key, value in parse_qsl(parts.query):
        if key == "password":
            register_secret(value)
    return raw


def _schedule(raw: str | None) -> str | None:
    """``MCP_KSCAN_SCHEDULE``, checked now: a bad entry stops the server at start with one line."""
    if raw is None:
        return None
    # Imported here: the entries are checked by the scanners' request models, which import this module.
    from mcp_kscan.scheduled_scans import parse_schedule

    parse_schedule(raw)
    return raw


# Each setting's environment variable(s), the first one its main name (doctor shows them; a bad
# value's message names it).
SETTING_ENV: dict[str, tuple[str, ...]] = {
    "data_dir": ("MCP_KSCAN_DATA_DIR",),
    "max_concurrent_scans": ("MCP_KSCAN_MAX_CONCURRENT_SCANS",),
    "queue_capacity": ("MCP_KSCAN_QUEUE_CAPACITY", "KS_SCAN_QUEUE_CAPACITY"),
    "max_results": ("MCP_KSCAN_MAX_RESULTS",),
    "db_max_pages": ("MCP_KSCAN_DB_MAX_PAGES",),
    "database_url": ("MCP_KSCAN_DATABASE_URL",),
    "schedule": ("MCP_KSCAN_SCHEDULE",),
    "scan_lease_s": ("MCP_KSCAN_SCAN_LEASE",),
    "output_cap_bytes": ("MCP_KSCAN_OUTPUT_CAP_BYTES",),
    "engine_report_cap_bytes": ("MCP_KSCAN_ENGINE_REPORT_CAP_BYTES",),
    "max_file_bytes": ("MCP_KSCAN_MAX_FILE_BYTES",),
    "default_timeout_s": ("MCP_KSCAN_DEFAULT_TIMEOUT",),
    "kill_grace_s": ("MCP_KSCAN_KILL_GRACE",),
    "shutdown_grace_s": ("MCP_KSCAN_SHUTDOWN_GRACE",),
    "kube_bench_path": ("MCP_KSCAN_KUBE_BENCH_PATH",),
    "kubescape_path": ("MCP_KSCAN_KUBESCAPE_PATH",),
    "kubectl_path": ("MCP_KSCAN_KUBECTL_PATH",),
    "helm_path": ("MCP_KSCAN_HELM_PATH",),
    "kube_bench_image": ("MCP_KSCAN_KUBE_BENCH_IMAGE",),
    "allowed_roots": ("MCP_KSCAN_ALLOWED_ROOTS",),
    "token": ("MCP_KSCAN_TOKEN", "KS_API_TOKEN"),
    "kubeconfig": ("KUBECONFIG",),
    "kube_context": ("MCP_KSCAN_KUBE_CONTEXT", "KS_CONTEXT"),
    "log_level": ("MCP_KSCAN_LOG_LEVEL", "KS_LOGGER_LEVEL"),
    "ks_exclude_namespaces": ("KS_EXCLUDE_NAMESPACES",),
    "ks_include_namespaces": ("KS_INCLUDE_NAMESPACES",),
    "ks_format": ("KS_FORMAT",),
    "ks_account": ("KS_ACCOUNT", "KS_ACCOUNT_ID"),
    "ks_access_key": ("KS_ACCESS_KEY",),
    "ks_download_artifacts": ("KS_DOWNLOAD_ARTIFACTS",),
    "ks_scan_request_max_bytes": ("KS_SCAN_REQUEST_MAX_BYTES",),
    "http_max_header_bytes": ("MCP_KSCAN_HTTP_MAX_HEADER_BYTES",),
    "http_header_timeout_s": ("MCP_KSCAN_HTTP_HEADER_TIMEOUT",),
    "http_body_timeout_s": ("MCP_KSCAN_HTTP_BODY_TIMEOUT",),
    "http_keepalive_timeout_s": ("MCP_KSCAN_HTTP_KEEPALIVE_TIMEOUT",),
    "http_max_connections": ("MCP_KSCAN_HTTP_MAX_CONNECTIONS",),
    "mcp_session_idle_timeout_s": ("MCP_KSCAN_MCP_SESSION_IDLE_TIMEOUT",),
    "mcp_max_sessions": ("MCP_KSCAN_MCP_MAX_SESSIONS",),
}

_GE, _GT = True, False


@dataclass(frozen=True)
class _Bound:
    """A number setting's range: ``low`` inclusive (``_GE``) or not (``_GT``), ``high`` inclusive."""

    low: float
    low_inclusive: bool = _GE
    high: float | None = None

    def problem(self, value: float) -> str | None:
        if (value < self.low) if self.low_inclusive else (value <= self.low):
            return f"{'at least' if self.low_inclusive else 'above'} {self.low:g}"
        if self.high is not None and value > self.high:
            return f"at most {self.high:g}"
        return None


# The number settings' types and ranges (None: no range), checked for every Settings built.
_INTS: dict[str, _Bound | None] = {
    "max_concurrent_scans": _Bound(1, _GE, 64),
    "queue_capacity": _Bound(0, _GE, 10_000),
    "max_results": _Bound(1, _GE, 100_000),
    "output_cap_bytes": _Bound(1024),
    "engine_report_cap_bytes": _Bound(1024),
    "max_file_bytes": _Bound(1024, _GE, 1024 * 1024 * 1024),
    "ks_scan_request_max_bytes": _Bound(1),
    "http_max_header_bytes": _Bound(1024, _GE, 16 * 1024 * 1024),
    "http_max_connections": _Bound(1, _GE, 1_000_000),
    "mcp_max_sessions": _Bound(1, _GE, 1_000_000),
}
_FLOATS: dict[str, _Bound] = {
    "scan_lease_s": _Bound(1, _GE, 3600),
    "default_timeout_s": _Bound(0, _GT, 24 * 3600),
    "kill_grace_s": _Bound(0, _GE, 120),
    "shutdown_grace_s": _Bound(0, _GE, 3600),
    "http_header_timeout_s": _Bound(0, _GT, 3600),
    "http_body_timeout_s": _Bound(0, _GT, 3600),
    "http_keepalive_timeout_s": _Bound(0, _GT, 3600),
    "mcp_session_idle_timeout_s": _Bound(0, _GT, 7 * 24 * 3600),
}
_OPTIONAL_STRS = ("database_url", "schedule", "kube_bench_path", "kubescape_path", "kubectl_path", "helm_path",
                  "kube_bench_image", "token", "kubeconfig", "kube_context", "ks_account", "ks_access_key")


@dataclass
class Settings:
    """Everything the server reads from its environment. See README, "Configuration".

    A plain dataclass, checked in ``__post_init__`` (types and ranges: ``_INTS``, ``_FLOATS``):
    every ``mcp-kscan`` command builds one, and pydantic's import and model build cost a terminal
    scan ~0.15-0.2 CPU s before it read a file. A bad value raises ValueError in one line that
    names the setting's environment variable.
    """

    data_dir: Path
    max_concurrent_scans: int = 2
    queue_capacity: int = 10
    max_results: int = 200
    db_max_pages: int | None = None
    """Cap on scans.db in SQLite pages (4 KiB each): past it, writes fail as on a full disk."""
    database_url: str | None = field(default=None, repr=False)
    """``postgresql://…``: keep scans in PostgreSQL (shared by replicas) instead of scans.db."""
    schedule: str | None = None
    """``MCP_KSCAN_SCHEDULE``: cron entries of scans to run (``scheduled_scans``), in HTTP mode."""
    scan_lease_s: float = 30.0
    """How long a server vouches for its active scans between heartbeats (a third of it apart);
    past it, a replica on another machine marks them interrupted. Clocks must agree within it."""
    output_cap_bytes: int = 32 * 1024 * 1024
    engine_report_cap_bytes: int = 256 * 1024 * 1024
    """Largest report the built-in engine may write (its own strict JSON, summarized in its own
    process and stored without parsing): 10,000 resources make about 85 MB, over the scanner
    output cap meant for binaries' stdout, which the server reads and parses itself."""
    max_file_bytes: int = 16 * 1024 * 1024
    """Largest manifest file the built-in engine reads; bigger ones are skipped with a warning."""
    default_timeout_s: float = 600.0
    kill_grace_s: float = 5.0
    shutdown_grace_s: float = 10.0
    kube_bench_path: str | None = None
    kubescape_path: str | None = None
    kubectl_path: str | None = None
    """``kubectl`` for rendering Kustomize directories (``kubectl kustomize``); else PATH."""
    helm_path: str | None = None
    """``helm`` for rendering Helm charts (``helm template``); else PATH."""
    kube_bench_image: str | None = None
    allowed_roots: list[Path] = field(default_factory=list)
    token: str | None = field(default=None, repr=False)
    kubeconfig: str | None = None
    kube_context: str | None = None
    log_level: str = "INFO"
    # Kubescape HTTP handler defaults (KS_*), applied when a request leaves a field out.
    ks_exclude_namespaces: list[str] = field(default_factory=list)
    ks_include_namespaces: list[str] = field(default_factory=list)
    ks_format: str = "json"
    ks_account: str | None = None
    ks_access_key: str | None = field(default=None, repr=False)
    ks_download_artifacts: bool = False
    ks_scan_request_max_bytes: int = 1024 * 1024
    # HTTP connection bounds (http_compat/connections.py): slow, idle or oversized clients cost a
    # bounded amount of memory and file descriptors.
    http_max_header_bytes: int = 64 * 1024
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 30.0
    http_keepalive_timeout_s: float = 5.0
    http_max_connections: int = 1000
    # MCP streamable-HTTP sessions: idle ones expire, and at most this many are open at once.
    mcp_session_idle_timeout_s: float = 3600.0
    mcp_max_sessions: int = 1000

    def __post_init__(self) -> None:
        _require(isinstance(self.data_dir, str | os.PathLike), "data_dir", "a path", self.data_dir)
        self.data_dir = Path(self.data_dir)
        _require(isinstance(self.allowed_roots, list | tuple)
                 and all(isinstance(p, str | os.PathLike) for p in self.allowed_roots),
                 "allowed_roots", "a list of paths", self.allowed_roots)
        self.allowed_roots = [Path(p) for p in self.allowed_roots]
        for name, int_bound in _INTS.items():
            setattr(self, name, _checked_int(name, getattr(self, name), int_bound))
        if self.db_max_pages is not None:
            self.db_max_pages = _checked_int("db_max_pages", self.db_max_pages, _Bound(16))
        for name, float_bound in _FLOATS.items():
            value = getattr(self, name)
            _require(not isinstance(value, bool) and isinstance(value, int | float), name, "a number", value)
            setattr(self, name, _checked(name, float(value), float_bound))
        for name in _OPTIONAL_STRS:
            value = getattr(self, name)
            _require(value is None or isinstance(value, str), name, "a string", value)
        for name in ("log_level", "ks_format"):
            _require(isinstance(getattr(self, name), str), name, "a string", getattr(self, name))
        for name in ("ks_exclude_namespaces", "ks_include_namespaces"):
            value = getattr(self, name)
            _require(isinstance(value, list | tuple) and all(isinstance(v, str) for v in value),
                     name, "a list of strings", value)
            setattr(self, name, list(value))
        _require(isinstance(self.ks_download_artifacts, bool), "ks_download_artifacts", "true or false",
                 self.ks_download_artifacts)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked as a new one is."""
        return dataclasses.replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        """Every setting as JSON values (paths as strings), by field name."""
        return {f.name: _json_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @property
    def db_path(self) -> Path:
        return self.data_dir / "scans.db"

    def scan_timeout(self, requested_s: float | None) -> float:
        """A scan's timeout: the request's (``timeout_seconds``, the CLI's ``--timeout``), else
        MCP_KSCAN_DEFAULT_TIMEOUT. The one rule, for every scanner, engine and front end."""
        return requested_s or self.default_timeout_s

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings an environment sets; an unset (or blank) variable leaves the field's default.

        Names come from ``SETTING_ENV`` and defaults from the fields: each lives in one place."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            for variable in SETTING_ENV[name]:
                value = env.get(variable)
                if value is not None and value.strip() != "":
                    return value.strip()
            return None

        def number(name: str, raw: str, kind: type[int | float]) -> int | float:
            try:
                return kind(raw)
            except ValueError:
                expected = "an integer" if kind is int else "a number"
                raise ValueError(f"{SETTING_ENV[name][0]}: expected {expected}, got {raw!r}") from None

        def as_list(raw: str) -> list[str]:
            return [p.strip() for p in raw.split(",") if p.strip()]

        special: dict[str, Any] = {
            "data_dir": lambda raw: Path(raw).expanduser(),
            "allowed_roots": lambda raw: [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()],
            "db_max_pages": lambda raw: number("db_max_pages", raw, int) or None,  # 0: no cap
            "database_url": _database_url,
            "schedule": _schedule,
            "log_level": str.upper,
            "ks_exclude_namespaces": as_list,
            "ks_include_namespaces": as_list,
            "ks_download_artifacts": lambda raw: raw.lower() in ("1", "true", "yes"),
        }
        values: dict[str, Any] = {}
        for name in SETTING_ENV:
            raw = get(name)
            if raw is None:
                continue
            if name in special:
                values[name] = special[name](raw)
            elif name in _INTS:
                values[name] = number(name, raw, int)
            elif name in _FLOATS:
                values[name] = number(name, raw, float)
            else:
                values[name] = raw
        values.setdefault("data_dir", _default_data_dir(env))
        settings = cls(**values)
        register_secret(settings.token)
        register_secret(settings.ks_access_key)
        return settings


def _bad(name: str, expected: str, value: Any) -> str:
    """One line naming the setting's environment variable (secrets' values are never shown)."""
    shown = "(hidden)" if name in ("token", "ks_access_key", "database_url") else repr(value)
    return f"{SETTING_ENV[name][0]}: expected {expected}, got {shown}"


def _require(ok: bool, name: str, expected: str, value: Any) -> None:
    """A ValueError (what the CLI reports as a bad setting, as it did pydantic's) unless ``ok``."""
    if not ok:
        raise ValueError(_bad(name, expected, value))


def _checked(name: str, value: float, bound: _Bound) -> float:
    _require(math.isfinite(value), name, "a finite number", value)  # NaN passes every comparison
    problem = bound.problem(value)
    _require(problem is None, name, f"a value {problem}", value)
    return value


def _checked_int(name: str, value: Any, bound: _Bound | None) -> int:
    _require(not isinstance(value, bool) and isinstance(value, int), name, "an integer", value)
    if bound is not None:
        _checked(name, value, bound)
    return int(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


_current: Settings | None = None


def get_settings() -> Settings:
    """The settings in effect (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = Settings.from_env()
    return _current


def configure(settings: Settings | None) -> None:
    """Install ``settings`` as the ones in effect (CLI overrides, tests); None re-reads the env."""
    global _current
    _current = settings
