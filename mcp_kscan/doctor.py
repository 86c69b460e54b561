"""``mcp-kscan doctor``: what the server would use, what is missing, and how to fix it.

Each check has a level:

- ``ok``: works as configured.
- ``info``: worth knowing, nothing to fix (e.g. this host runs no kubelet).
- ``warn``: one feature is unavailable, the server still works (a scanner that is not
  installed: the built-in engine still scans; no kubeconfig: manifest scans still work).
- ``error``: the configuration cannot work as set (the data directory is not writable, a
  configured binary path or kubeconfig does not exist, the configured context is not in the
  kubeconfig). Any error makes the exit status 1.

Nothing secret is printed: kubeconfig credentials are never read into the output (only which kind
of credential a user entry has), settings named like secrets show ``***``, and every string goes
through ``mcp_kscan.redact`` on the way out.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import anyio

from mcp_kscan import __version__
from mcp_kscan.cluster import kubeconfig_files, read_kubeconfig
from mcp_kscan.cluster.node_role import running_components
from mcp_kscan.errors import BinaryNotFound, KscanError
from mcp_kscan.redact import REDACTED, is_secret_key, redact_mapping, redact_text
from mcp_kscan.runner.db import redacted_url
from mcp_kscan.settings import SETTING_ENV, Settings

Level = Literal["ok", "info", "warn", "error"]

VERSION_TIMEOUT_S = 10.0


SCANNERS: dict[str, dict[str, str]] = {
    "kube-bench": {
        "field": "kube_bench_path",
        "env": "MCP_KSCAN_KUBE_BENCH_PATH",
        "url": "https://github.com/aquasecurity/kube-bench/releases",
        "without": "the kube_bench tool fails until it is installed",
    },
    "kubescape": {
        "field": "kubescape_path",
        "env": "MCP_KSCAN_KUBESCAPE_PATH",
        "url": "https://github.com/kubescape/kubescape/releases",
        "without": "kubescape_scan still works: engine=auto uses the built-in engine",
    },
}

# Processes whose presence means "this host is a Kubernetes node" (what kube-bench inspects).


@dataclass
class Check:
    section: str
    name: str
    level: Level
    message: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------- scanners


def _resolve_binary(scanner: str, settings: Settings) -> str:
    from mcp_kscan.scanners.binaries import find_binary

    return find_binary(scanner, settings)  # type: ignore[arg-type]


async def _scanner_version(binary: str, scanner: str) -> tuple[str | None, str | None]:
    """(version line, problem): runs ``<binary> version`` with a small environment and a timeout."""
    from mcp_kscan.runner.process import run_process

    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/"),
        # Kubescape otherwise asks GitHub for a newer release on every run.
        "KS_SKIP_UPDATE_CHECK": "true",
    }
    try:
        result = await run_process([binary, "version"], timeout_s=VERSION_TIMEOUT_S, env=env, kill_grace_s=1.0)
    except OSError as exc:
        return None, f"could not run it: {exc.strerror or exc}"
    if result.timed_out:
        return None, f"`{scanner} version` did not answer within {VERSION_TIMEOUT_S:.0f} s"
    text = (result.stdout or result.stderr).decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if result.return_code != 0:
        tail = lines[-1] if lines else "no output"
        return None, f"`{scanner} version` exited {result.return_code}: {tail[:200]}"
    line = next((ln for ln in lines if any(ch.isdigit() for ch in ln)), lines[0] if lines else "")
    for prefix in ("Your current version is:", "Version:"):
        if line.startswith(prefix):
            line = line[len(prefix) :].strip()
    return line[:200] or "unknown", None


def check_scanner(scanner: str, settings: Settings) -> Check:
    spec = SCANNERS[scanner]
    configured = getattr(settings, spec["field"])
    fix = f"install it from {spec['url']} and put it on PATH, or set {spec['env']} to its full path"
    try:
        path = _resolve_binary(scanner, settings)
    except BinaryNotFound as exc:
        if configured:
            return Check(
                "scanners", scanner, "error",
                f"{spec['env']}={configured} is not an executable file or a command on PATH",
                fix=f"fix {spec['env']} (or unset it to look on PATH); {fix}",
                data={"configured": configured, "error": str(exc)},
            )
        return Check(
            "scanners", scanner, "warn", f"not found (not on PATH, {spec['env']} not set); {spec['without']}",
            fix=fix, data={"configured": None, "error": str(exc)},
        )
    version, problem = anyio.run(_scanner_version, path, scanner)
    data = {"configured": configured, "path": path, "version": version}
    if problem:
        return Check("scanners", scanner, "warn", f"{path}: {problem}", fix=f"check that it is a working {scanner}; {fix}", data=data)
    return Check("scanners", scanner, "ok", f"{version} at {path}", data=data)


# ------------------------------------------------------------------------------------- kubeconfig


def _safe_url(url: Any) -> str | None:
    """The server URL without any user:password part, scrubbed of known secrets."""
    if not isinstance(url, str) or not url:
        return None
    try:
        parts = urlsplit(url)
        if parts.username or parts.password:
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            url = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    except ValueError:
        pass
    return redact_text(url)


def _credential_kind(user: dict[str, Any] | None) -> str:
    """Which kind of credential a kubeconfig user has: never the credential itself."""
    if not user or not isinstance(user.get("user"), dict):
        return "none"
    u = user["user"]
    if "exec" in u:
        command = u["exec"].get("command") if isinstance(u["exec"], dict) else None
        return f"exec plugin ({Path(str(command)).name})" if command else "exec plugin"
    if "auth-provider" in u:
        return "auth-provider"
    if "token" in u or "tokenFile" in u:
        return "bearer token"
    if "client-certificate" in u or "client-certificate-data" in u:
        return "client certificate"
    if "username" in u or "password" in u:
        return "basic auth"
    return "none"


def check_kubeconfig(settings: Settings) -> list[Check]:
    files, configured = kubeconfig_files(settings.kubeconfig)
    existing = [f for f in files if f.is_file()]
    shown = os.pathsep.join(str(f) for f in files)
    if not existing:
        if configured:
            return [Check(
                "cluster", "kubeconfig", "error", f"KUBECONFIG={shown}: no such file",
                fix="point KUBECONFIG at your kubeconfig file, or unset it to use ~/.kube/config",
                data={"files": [str(f) for f in files], "configured": True},
            )]
        return [Check(
            "cluster", "kubeconfig", "warn",
            f"no kubeconfig ({shown} does not exist): manifest scans work, cluster scans do not",
            fix="for cluster scans, set KUBECONFIG to a kubeconfig file (e.g. from your cloud's "
            "`get-credentials` command)",
            data={"files": [str(f) for f in files], "configured": False},
        )]

    merged = read_kubeconfig(existing)  # the cluster resolver's reading: no plugin runs, no file is opened
    problems = merged.problems
    checks: list[Check] = []
    if problems:
        checks.append(Check(
            "cluster", "kubeconfig", "error", "cannot read: " + "; ".join(redact_text(p) for p in problems),
            fix="fix the file (it must be YAML), or point KUBECONFIG elsewhere",
            data={"files": [str(f) for f in existing]},
        ))
        if len(problems) == len(existing):
            return checks
    context_names = merged.context_names
    context_name: str | None = settings.kube_context or merged.current_context
    source = "MCP_KSCAN_KUBE_CONTEXT" if settings.kube_context else "current-context"
    data: dict[str, Any] = {
        "files": [str(f) for f in existing],
        "contexts": context_names,
        "context": context_name,
        "context_source": source,
    }
    if not context_name:
        checks.append(Check(
            "cluster", "kubeconfig", "warn",
            f"{shown}: no current-context set ({len(context_names)} context(s) defined)",
            fix="`kubectl config use-context NAME`, or set MCP_KSCAN_KUBE_CONTEXT", data=data,
        ))
        return checks
    context = merged.named("contexts", context_name)
    if context is None:
        level: Level = "error" if settings.kube_context else "warn"
        checks.append(Check(
            "cluster", "kubeconfig", level,
            f"context {context_name!r} ({source}) is not in {shown}; contexts: {', '.join(map(str, context_names)) or 'none'}",
            fix="set MCP_KSCAN_KUBE_CONTEXT to one of the contexts listed", data=data,
        ))
        return checks
    raw_ctx = context.get("context")
    ctx: dict[str, Any] = raw_ctx if isinstance(raw_ctx, dict) else {}
    cluster = merged.named("clusters", ctx.get("cluster"))
    user = merged.named("users", ctx.get("user"))
    raw_body = cluster.get("cluster") if cluster else None
    cluster_body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
    server = _safe_url(cluster_body.get("server"))
    data.update({
        "cluster": ctx.get("cluster"),
        "server": server,
        "namespace": ctx.get("namespace") or "default",
        "user": ctx.get("user"),
        "auth": _credential_kind(user),
    })
    if cluster is None or not server:
        checks.append(Check(
            "cluster", "kubeconfig", "warn",
            f"context {context_name!r}: cluster {ctx.get('cluster')!r} has no server URL in {shown}",
            fix="repair the kubeconfig (`kubectl config view` shows what is defined)", data=data,
        ))
        return checks
    checks.append(Check(
        "cluster", "kubeconfig", "ok",
        f"context {context_name!r} ({source}) → {server} as {ctx.get('user')!r} ({data['auth']}); file {shown}",
        data=data,
    ))
    return checks


# ------------------------------------------------------------------------------------------ host


def check_operators(settings: Settings, kubeconfig: list[Check]) -> Check:
    """Which security operators the cluster serves (by API group), for the operator tools."""
    from mcp_kscan.cluster import resolve_cluster
    from mcp_kscan.operators.discovery import LOOKED_FOR
    from mcp_kscan.operators.service import OperatorService

    tools = "list_vulnerabilities, find_cve and get_workload_posture"
    if any(c.level == "error" for c in kubeconfig):
        return Check("cluster", "operators", "info", "not checked: fix the kubeconfig first")
    try:
        source = resolve_cluster(settings)
    except KscanError:
        return Check("cluster", "operators", "info", "not checked: fix the kubeconfig first")
    if source is None:
        return Check("cluster", "operators", "info", f"not checked: no cluster configuration ({tools} need one)")
    try:
        inventory = anyio.run(OperatorService(settings).inventory)
    except KscanError as exc:
        return Check("cluster", "operators", "warn", f"could not ask the cluster: {exc}",
                     fix="check the kubeconfig check above and that the API server is reachable")
    data = inventory.model_dump()
    found = [f"{name} ({len(served)} resources)" for name, served in data.items() if served]
    if not found:
        return Check("cluster", "operators", "info", f"none installed: looked for {LOOKED_FOR}; {tools} need one",
                     fix="install the Kubescape operator or the Trivy operator to read their results", data=data)
    missing = [name for name, served in data.items() if not served]
    message = "installed: " + ", ".join(found) + (f"; not installed: {', '.join(missing)}" if missing else "")
    return Check("cluster", "operators", "ok", message + " (RBAC for the reads: deploy/operator-reader-rbac.yaml)",
                 data=data)


def check_host(proc: Path = Path("/proc")) -> Check:
    if not proc.is_dir():
        return Check(
            "host", "node components", "info",
            f"cannot tell ({proc} absent on {platform.system()}): kube-bench is meant for Linux cluster nodes",
        )
    running = running_components(proc) or []
    if running:
        return Check("host", "node components", "ok", "running here: " + ", ".join(running) + " (kube-bench can check this node)",
                     data={"running": running})
    return Check(
        "host", "node components", "info",
        "no kubelet or kube-apiserver runs on this host: kube_bench finds nothing to check here "
        "(its result says so in warnings); run the server on a node for kube-bench",
        data={"running": []},
    )


# ---------------------------------------------------------------------------------------- engine


def check_engine() -> Check:
    try:
        from mcp_kscan.engine.frameworks import list_controls, list_frameworks

        controls = list_controls()
        frameworks = [f for f in list_frameworks() if f != "all"]
    except Exception as exc:  # a broken install: report it rather than crash the doctor
        return Check(
            "scanners", "built-in engine", "error", f"cannot load: {type(exc).__name__}: {redact_text(str(exc))[:200]}",
            fix="reinstall mcp-kscan (pip install --force-reinstall mcp-kscan)",
        )
    return Check(
        "scanners", "built-in engine", "ok",
        f"{len(controls)} controls, frameworks {', '.join(frameworks)} (no binary needed)",
        data={"controls": len(controls), "frameworks": frameworks},
    )


def check_yaml_loader() -> Check:
    """Which fast path reads manifests: the C extension over libyaml, or rapidyaml where it was not built."""
    from mcp_kscan.engine import fastyaml

    if fastyaml.YAML_LOADER == "libyaml":
        version = fastyaml.libyaml_version()
        return Check("scanners", "YAML loader", "ok", f"libyaml {version} events built in C (mcp_kscan.engine._cyaml)",
                     data={"loader": "libyaml", "libyaml": version})
    return Check(
        "scanners", "YAML loader", "info",
        "rapidyaml with a Python walk (the C loader over libyaml is not built; it reads manifests about 1.5x as fast)",
        fix="install libyaml's headers (Debian/Ubuntu: apt-get install libyaml-dev) and reinstall mcp-kscan",
        data={"loader": "rapidyaml"},
    )


def check_renderers(settings: Settings) -> Check:
    """kubectl and helm, which the built-in engine renders Kustomize directories and Helm charts with."""
    found: dict[str, str | None] = {}
    for tool in ("kubectl", "helm"):
        try:
            found[tool] = _resolve_binary(tool, settings)
        except BinaryNotFound:
            found[tool] = None
    missing = [t for t, p in found.items() if p is None]
    parts = [f"{t} at {p}" if p else f"{t} not found" for t, p in found.items()]
    if not missing:
        return Check("scanners", "chart renderers", "ok", ", ".join(parts), data=found)
    what = {"kubectl": "Kustomize directories", "helm": "Helm charts"}
    return Check(
        "scanners", "chart renderers", "info",
        f"{', '.join(parts)}: {' and '.join(what[t] for t in missing)} are reported as not rendered (not scanned)",
        fix=" ; ".join(f"install {t} or set MCP_KSCAN_{t.upper()}_PATH" for t in missing), data=found,
    )


# -------------------------------------------------------------------------------------- data dir


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _stored_scans(db: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            return int(conn.execute("SELECT count(*) FROM scans").fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, OSError, ValueError):
        return None


def check_database(url: str) -> Check:
    """The PostgreSQL results database (MCP_KSCAN_DATABASE_URL): reachable, which schema, how many
    scans. Named by its URL without the password, and any driver message is scrubbed of it too."""
    import psycopg

    from mcp_kscan.runner.migrations import LATEST

    target = redacted_url(url)
    data: dict[str, Any] = {"backend": "postgresql", "target": target}
    fix = ("check MCP_KSCAN_DATABASE_URL (host, port, user, password, sslmode) and that PostgreSQL"
           " accepts connections from this machine")
    try:
        with psycopg.connect(url, connect_timeout=5, application_name="mcp-kscan doctor", autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:  # type: ignore[index]
                return Check("storage", "results database", "ok",
                             f"{target}: reachable; no tables yet (the server creates them on its first start)",
                             data=data)
            version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]  # type: ignore[index]
            scans = conn.execute("SELECT COUNT(*) FROM scans").fetchone()[0]  # type: ignore[index]
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Check("storage", "results database", "error", f"{target}: {redact_text(first)}", fix=fix, data=data)
    data.update(schema_version=version, stored_scans=scans)
    if version is not None and version > LATEST:
        return Check("storage", "results database", "error",
                     f"{target}: schema version {version} is newer than this mcp-kscan's {LATEST}",
                     fix="upgrade mcp-kscan (a newer server migrated this database)", data=data)
    return Check("storage", "results database", "ok",
                 f"{target}: reachable, schema version {version}, {scans} stored scan(s)", data=data)


def check_data_dir(settings: Settings) -> Check:
    if settings.database_url:
        return check_database(settings.database_url)
    data_dir = settings.data_dir.expanduser()
    db = data_dir / "scans.db"
    fix_dir = "set MCP_KSCAN_DATA_DIR (or --data-dir) to a directory you can write"
    if data_dir.exists() and not data_dir.is_dir():
        return Check("storage", "data directory", "error", f"{data_dir} exists and is not a directory", fix=fix_dir)
    if not data_dir.exists():
        ancestor = data_dir.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
            return Check("storage", "data directory", "ok", f"{data_dir} (not created yet; the server creates it)",
                         data={"path": str(data_dir), "exists": False})
        return Check("storage", "data directory", "error",
                     f"{data_dir} does not exist and {ancestor} is not writable", fix=fix_dir,
                     data={"path": str(data_dir), "exists": False})
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return Check("storage", "data directory", "error", f"{data_dir} is not writable", fix=fix_dir,
                     data={"path": str(data_dir), "exists": True})
    size = _tree_size(data_dir)
    data: dict[str, Any] = {"path": str(data_dir), "exists": True, "size_bytes": size, "db": str(db)}
    if db.exists():
        if not os.access(db, os.R_OK | os.W_OK):
            return Check("storage", "data directory", "error", f"{db} is not writable", data=data,
                         fix=f"fix its permissions (chmod u+rw {db}) or choose another data directory")
        scans = _stored_scans(db)
        data["stored_scans"] = scans
        stored = f"{scans} stored scan(s)" if scans is not None else "not readable as a results database"
        level: Level = "ok" if scans is not None else "warn"
        return Check("storage", "data directory", level, f"{data_dir} ({_human(size)}); scans.db writable, {stored}", data=data,
                     fix=None if scans is not None else "move scans.db aside; the server creates a new one")
    return Check("storage", "data directory", "ok", f"{data_dir} ({_human(size)}); scans.db not created yet", data=data)


# -------------------------------------------------------------------------------------- settings


def settings_in_effect(settings: Settings) -> dict[str, Any]:
    """Every setting as {env name: value}, secrets as ``***``."""
    raw = settings.as_json()
    shown: dict[str, Any] = {}
    for key, value in raw.items():
        env = SETTING_ENV.get(key, (key,))[0]
        if key == "database_url" and value:
            shown[env] = redacted_url(value)  # where the data is, without the password
        elif (is_secret_key(key) or is_secret_key(env)) and value not in (None, "", False):
            shown[env] = REDACTED
        else:
            shown[env] = redact_mapping(value)
    return shown


def check_security(settings: Settings) -> Check:
    if settings.token:
        return Check("security", "HTTP token", "ok", "MCP_KSCAN_TOKEN is set: HTTP clients must send it as a Bearer token")
    return Check(
        "security", "HTTP token", "info",
        "MCP_KSCAN_TOKEN not set: fine for stdio, but with `serve --transport http` any local process "
        "(any user of this machine) can use the REST API and /mcp and start scans; a non-loopback bind "
        "is refused without it",
        fix="set MCP_KSCAN_TOKEN before serving HTTP on a machine you share",
    )


# ---------------------------------------------------------------------------------------- report


def collect(settings: Settings) -> dict[str, Any]:
    kubeconfig = check_kubeconfig(settings)
    checks: list[Check] = [
        check_scanner("kube-bench", settings),
        check_scanner("kubescape", settings),
        check_engine(),
        check_yaml_loader(),
        check_renderers(settings),
        *kubeconfig,
        check_operators(settings, kubeconfig),
        check_host(),
        check_data_dir(settings),
        check_security(settings),
    ]
    errors = sum(c.level == "error" for c in checks)
    warnings = sum(c.level == "warn" for c in checks)
    return {
        "mcp_kscan": __version__,
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": f"{platform.system()} {platform.machine()}",
        "ok": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "checks": [redact_mapping(asdict(c)) for c in checks],
        "settings": settings_in_effect(settings),
    }


_MARK = {"ok": "ok   ", "info": "info ", "warn": "WARN ", "error": "ERROR"}


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"mcp-kscan {report['mcp_kscan']} — Python {report['python']} on {report['platform']}",
        "",
    ]
    section = None
    for c in report["checks"]:
        if c["section"] != section:
            section = c["section"]
            lines.append(f"[{section}]")
        lines.append(f"  {_MARK[c['level']]} {c['name']}: {c['message']}")
        if c.get("fix") and c["level"] in ("warn", "error"):
            lines.append(f"        fix: {c['fix']}")
    lines.append("")
    lines.append("[settings in effect]")
    width = max(len(k) for k in report["settings"])
    for key, value in report["settings"].items():
        shown = "(unset)" if value in (None, [], "") else (",".join(map(str, value)) if isinstance(value, list) else value)
        lines.append(f"  {key.ljust(width)}  {shown}")
    lines.append("")
    if report["errors"]:
        lines.append(f"{report['errors']} error(s), {report['warnings']} warning(s): the server cannot work as configured; see the fixes above.")
    elif report["warnings"]:
        lines.append(f"0 errors, {report['warnings']} warning(s): the server works; some features need the fixes above.")
    else:
        lines.append("All checks passed.")
    return "\n".join(lines) + "\n"


def run_doctor(settings: Settings, as_json: bool = False) -> int:
    """Print the report (text, or JSON with ``as_json``) to stdout; 1 when any check is an error."""
    report = collect(settings)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        text = render_text(report)
        try:
            sys.stdout.write(text)
        except UnicodeEncodeError:  # a terminal that cannot show "→" or "—"
            sys.stdout.write(text.encode("ascii", "replace").decode("ascii"))
    sys.stdout.flush()
    return 0 if report["ok"] else 1


__all__ = ["run_doctor", "collect", "render_text", "check_yaml_loader", "Check", "SETTING_ENV"]
