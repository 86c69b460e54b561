"""``mcp-kscan doctor``: versions, kubeconfig, host, engine, data dir, settings; exit status; no secrets."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import InProcessCli

from mcp_kscan import doctor
from mcp_kscan.engine import fastyaml
from mcp_kscan.errors import BinaryNotFound
from mcp_kscan.scanners.binaries import find_binary
from mcp_kscan.settings import Settings

from .conftest import isolated_env, run_cli

TOKEN = "kubeconfig-bearer-token-9f8e7d6c"
CERT_DATA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmYWtlY2VydA=="
KEY_DATA = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUJmYWtla2V5"

KUBECONFIG = f"""\
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster:
    server: https://admin:hunter2pass@k8s.example.com:6443
    certificate-authority-data: {CERT_DATA}
- name: dev-cluster
  cluster:
    server: https://dev.example.com
contexts:
- name: prod
  context: {{cluster: prod-cluster, user: prod-admin, namespace: payments}}
- name: dev
  context: {{cluster: dev-cluster, user: dev-user}}
users:
- name: prod-admin
  user:
    token: {TOKEN}
- name: dev-user
  user:
    client-certificate-data: {CERT_DATA}
    client-key-data: {KEY_DATA}
"""

SECRETS = (TOKEN, CERT_DATA, KEY_DATA, "hunter2pass")


# Two tests run the real `mcp-kscan doctor` process (the exit status and stdout of a fresh process:
# 0 with --json, 1 in text); the others check the doctor's logic through cli.main in this process
# (cli_main), with the same isolated environment.


def _doctor_json(env: dict[str, str], run: InProcessCli = run_cli) -> tuple[int, dict]:
    proc = run("doctor", "--json", env=env)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_fakes_configured_exit_zero_with_versions(fake_bin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = isolated_env(tmp_path, **fake_bin.env)
    rc, report = _doctor_json(env)
    assert rc == 0, report
    assert report["ok"] is True and report["errors"] == 0
    kb, ks = _check(report, "kube-bench"), _check(report, "kubescape")
    assert kb["level"] == "ok" and kb["data"]["version"] == "0.15.6-fake"
    assert ks["level"] == "ok" and ks["data"]["version"] == "v3.0.99-fake"
    assert kb["data"]["path"] == str(fake_bin.kube_bench)
    engine = _check(report, "built-in engine")
    assert engine["level"] == "ok" and engine["data"]["controls"] > 0
    # The doctor's process reads manifests with the loader this installation has.
    loader = _check(report, "YAML loader")
    assert loader["data"]["loader"] == fastyaml.YAML_LOADER
    if fastyaml.YAML_LOADER == "libyaml":
        assert loader["level"] == "ok" and loader["data"]["libyaml"] == fastyaml.libyaml_version()
    else:
        assert loader["level"] == "info" and "libyaml-dev" in loader["fix"]
    assert _check(report, "data directory")["data"]["path"] == str(fake_bin.data_dir)
    assert report["settings"]["MCP_KSCAN_DATA_DIR"] == str(fake_bin.data_dir)


def test_text_output_is_the_default(fake_bin, tmp_path: Path, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    proc = cli_main("doctor", env=isolated_env(tmp_path, **fake_bin.env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("mcp-kscan ")
    for needle in ("[scanners]", "0.15.6-fake", "v3.0.99-fake", "built-in engine", "YAML loader", "[cluster]", "[storage]",
                   "[settings in effect]", "MCP_KSCAN_DATA_DIR"):
        assert needle in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_missing_scanners_are_warnings_not_errors(tmp_path: Path, cli_main: InProcessCli) -> None:
    env = isolated_env(tmp_path, PATH=str(Path(sys.executable).parent), MCP_KSCAN_DATA_DIR=str(tmp_path / "d"))
    rc, report = _doctor_json(env, cli_main)
    assert rc == 0
    for name, url in (("kube-bench", "aquasecurity/kube-bench/releases"), ("kubescape", "kubescape/kubescape/releases")):
        check = _check(report, name)
        assert check["level"] == "warn"
        assert url in check["fix"] and "MCP_KSCAN_" in check["fix"]
    assert "built-in engine" in _check(report, "kubescape")["message"]
    # No kubeconfig at the default place: a warning too (manifest scans still work).
    assert _check(report, "kubeconfig")["level"] == "warn"


def test_configured_binary_that_does_not_exist_is_an_error(fake_bin, tmp_path: Path, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    env = isolated_env(tmp_path, **{**fake_bin.env, "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no" / "kubescape")})
    rc, report = _doctor_json(env, cli_main)
    assert rc == 1 and report["ok"] is False
    check = _check(report, "kubescape")
    assert check["level"] == "error" and "MCP_KSCAN_KUBESCAPE_PATH" in check["message"]
    proc = run_cli("doctor", env=env)
    assert proc.returncode == 1 and "ERROR" in proc.stdout and "fix:" in proc.stdout


def test_configured_binary_not_executable_is_an_error(fake_bin, tmp_path: Path, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "kube-bench"
    plain.write_text("not a program\n")
    plain.chmod(stat.S_IRUSR | stat.S_IWUSR)
    rc, report = _doctor_json(isolated_env(tmp_path, **{**fake_bin.env, "MCP_KSCAN_KUBE_BENCH_PATH": str(plain)}), cli_main)
    assert rc == 1 and _check(report, "kube-bench")["level"] == "error"


def test_data_dir_that_cannot_be_created_is_an_error(fake_bin, tmp_path: Path, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    rc, report = _doctor_json(isolated_env(tmp_path, **{**fake_bin.env, "MCP_KSCAN_DATA_DIR": str(blocker / "data")}), cli_main)
    assert rc == 1 and _check(report, "data directory")["level"] == "error"
    rc, report = _doctor_json(isolated_env(tmp_path, **{**fake_bin.env, "MCP_KSCAN_DATA_DIR": str(blocker)}), cli_main)
    assert rc == 1 and "not a directory" in _check(report, "data directory")["message"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_data_dir_is_an_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        check = doctor.check_data_dir(Settings(data_dir=ro))
    finally:
        ro.chmod(0o700)
    assert check.level == "error"


def test_data_dir_size_and_stored_scans(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data"
    data.mkdir()
    conn = sqlite3.connect(data / "scans.db")
    conn.execute("CREATE TABLE scans (id TEXT)")
    conn.executemany("INSERT INTO scans VALUES (?)", [("a",), ("b",)])
    conn.commit()
    conn.close()
    check = doctor.check_data_dir(Settings(data_dir=data))
    assert check.level == "ok" and check.data["stored_scans"] == 2 and check.data["size_bytes"] > 0
    fresh = doctor.check_data_dir(Settings(data_dir=tmp_path / "new" / "dir"))
    assert fresh.level == "ok" and not (tmp_path / "new").exists()  # the doctor creates nothing


def test_kubeconfig_context_and_server_never_credentials(fake_bin, tmp_path: Path, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    kc = tmp_path / "kubeconfig"
    kc.write_text(KUBECONFIG)
    env = isolated_env(tmp_path, **fake_bin.env, KUBECONFIG=str(kc))
    rc, report = _doctor_json(env, cli_main)
    assert rc == 0
    check = _check(report, "kubeconfig")
    assert check["level"] == "ok"
    assert check["data"]["context"] == "prod" and check["data"]["context_source"] == "current-context"
    assert check["data"]["server"] == "https://k8s.example.com:6443"
    assert check["data"]["namespace"] == "payments"
    assert check["data"]["auth"] == "bearer token"
    text = cli_main("doctor", env=env).stdout
    for out in (json.dumps(report), text):
        for secret in SECRETS:
            assert secret not in out
    assert "https://k8s.example.com:6443" in text

    env["MCP_KSCAN_KUBE_CONTEXT"] = "dev"
    rc, report = _doctor_json(env, cli_main)
    assert rc == 0
    check = _check(report, "kubeconfig")
    assert check["data"]["server"] == "https://dev.example.com" and check["data"]["auth"] == "client certificate"
    assert not any(s in json.dumps(report) for s in SECRETS)


def test_kubeconfig_problems(fake_bin, tmp_path: Path, cli_main: InProcessCli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    kc = tmp_path / "kubeconfig"
    kc.write_text(KUBECONFIG)
    rc, report = _doctor_json(isolated_env(tmp_path, **fake_bin.env, KUBECONFIG=str(kc), MCP_KSCAN_KUBE_CONTEXT="nope"), cli_main)
    assert rc == 1 and "nope" in _check(report, "kubeconfig")["message"]
    rc, report = _doctor_json(isolated_env(tmp_path, **fake_bin.env, KUBECONFIG=str(tmp_path / "missing")), cli_main)
    assert rc == 1 and _check(report, "kubeconfig")["level"] == "error"
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed\n")
    rc, report = _doctor_json(isolated_env(tmp_path, **fake_bin.env, KUBECONFIG=str(bad)), cli_main)
    assert rc == 1 and "cannot read" in _check(report, "kubeconfig")["message"]
    # Nothing executes while parsing: a python/object tag is refused by the safe loader.
    evil = tmp_path / "evil"
    evil.write_text("current-context: !!python/object/apply:os.system ['touch pwned']\n")
    monkeypatch.chdir(tmp_path)  # where `touch pwned` would write, had it run
    rc, report = _doctor_json(isolated_env(tmp_path, **fake_bin.env, KUBECONFIG=str(evil)), cli_main)
    assert rc == 1 and not (tmp_path / "pwned").exists()


def test_kubeconfig_list_merges_like_kubectl(tmp_path: Path) -> None:
    first = tmp_path / "one"
    first.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    second = tmp_path / "two"
    second.write_text(KUBECONFIG)
    checks = doctor.check_kubeconfig(Settings(data_dir=tmp_path, kubeconfig=f"{first}{os.pathsep}{second}"))
    assert checks[-1].level == "ok" and checks[-1].data["context"] == "prod"


def test_secret_settings_are_masked(fake_bin, tmp_path: Path, cli_main: InProcessCli) -> None:  # type: ignore[no-untyped-def]
    env = isolated_env(tmp_path, **fake_bin.env, MCP_KSCAN_TOKEN="http-token-abcdef123", KS_ACCESS_KEY="access-key-xyz789",
                       MCP_KSCAN_DATABASE_URL="postgresql://kscan:db-pass-q1w2e3@db.internal:5432/kscan")
    rc, report = _doctor_json(env, cli_main)
    assert rc == 1  # db.internal does not resolve here: the results database is unreachable
    assert report["settings"]["MCP_KSCAN_TOKEN"] == "***" and report["settings"]["KS_ACCESS_KEY"] == "***"
    assert report["settings"]["MCP_KSCAN_DATABASE_URL"] == "postgresql://kscan@db.internal:5432/kscan"
    storage = _check(report, "results database")
    assert storage["level"] == "error" and storage["message"].startswith("postgresql://kscan@db.internal:5432/kscan: ")
    assert "scans.db" not in json.dumps(storage)
    text = cli_main("doctor", env=env).stdout
    for out in (json.dumps(report), text):
        assert "http-token-abcdef123" not in out and "access-key-xyz789" not in out and "db-pass-q1w2e3" not in out
    assert _check(report, "HTTP token")["level"] == "ok"


def test_every_setting_is_shown() -> None:
    assert set(doctor.SETTING_ENV) == {f.name for f in dataclasses.fields(Settings)}


def test_node_components_from_proc(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, comm, argv0 in (("1", "systemd", "/sbin/init"), ("42", "kubelet", "/usr/bin/kubelet"),
                             ("77", "python3", "/usr/local/bin/kube-apiserver"), ("self", "x", "x")):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "comm").write_text(comm + "\n")
        (proc / pid / "cmdline").write_bytes(argv0.encode() + b"\0--flag\0")
    check = doctor.check_host(proc)
    assert check.level == "ok" and check.data["running"] == ["kube-apiserver", "kubelet"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert doctor.check_host(empty).level == "info" and "kubelet" in doctor.check_host(empty).message
    assert doctor.check_host(tmp_path / "absent").level == "info"


def test_version_timeout_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = tmp_path / "kubescape"
    slow.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    slow.chmod(0o755)
    monkeypatch.setattr(doctor, "VERSION_TIMEOUT_S", 0.5)
    check = doctor.check_scanner("kubescape", Settings(data_dir=tmp_path, kubescape_path=str(slow)))
    assert check.level == "warn" and "did not answer" in check.message


def test_binary_not_found_points_to_doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mcp_kscan.settings as settings_module

    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("MCP_KSCAN_KUBE_BENCH_PATH", "MCP_KSCAN_KUBESCAPE_PATH"):
        monkeypatch.delenv(var, raising=False)
    settings_module.configure(None)
    try:
        for scanner in ("kube-bench", "kubescape"):
            with pytest.raises(BinaryNotFound) as exc:
                find_binary(scanner, settings_module.get_settings())  # type: ignore[arg-type]
            assert "mcp-kscan doctor" in str(exc.value)
    finally:
        settings_module.configure(None)


def test_doctor_restores_the_settings_in_effect(tmp_path: Path) -> None:
    import mcp_kscan.settings as settings_module

    before = settings_module.get_settings()
    doctor.check_scanner("kube-bench", Settings(data_dir=tmp_path, kube_bench_path=str(tmp_path / "x")))
    assert settings_module.get_settings() is before


def test_storage_describes_the_postgresql_database(tmp_path: Path, postgres_url: str) -> None:
    """With MCP_KSCAN_DATABASE_URL the storage check is about PostgreSQL, not scans.db."""
    from mcp_kscan.runner.db import PostgresDatabase

    before = doctor.check_data_dir(Settings(data_dir=tmp_path, database_url=postgres_url))
    assert before.level == "ok" and "no tables yet" in before.message and "scans.db" not in before.message
    db = PostgresDatabase(postgres_url)
    db.open()
    db.close()
    check = doctor.check_data_dir(Settings(data_dir=tmp_path, database_url=postgres_url))
    assert check.name == "results database" and check.level == "ok", check
    assert check.data["stored_scans"] == 0 and check.data["schema_version"] >= 1
    # Where the data is: the URL's user, database and socket directory, never a password.
    assert check.message.startswith(f"postgresql://postgres@/{postgres_url.split('/')[3].split('?')[0]}?host=/")
    assert "0 stored scan(s)" in check.message
