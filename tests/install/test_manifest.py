"""manifest.json, the MCP Bundle manifest: schema, official validator, tools vs tools/list, entry point.

``mcpb-manifest-v0.3.schema.json`` is a verbatim copy of the JSON schema shipped in npm
``@anthropic-ai/mcpb`` 2.1.2 (``dist/mcpb-manifest-v0.3.schema.json``, MIT licence), so the schema
is checked without Node; the official CLI runs too when it is installed (``bash .ci/npm-tools.sh``).

Tool descriptions: the manifest's ``tools[].description`` is a one-line summary, and it must be
exactly the first line of the description the server gives in ``tools/list`` (the docstring's
summary line). Names must match ``tools/list`` exactly, as a set and with no duplicates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
from mcp import Client

import mcp_kscan
from mcp_kscan.server import build_server
from mcp_kscan.tools import TOOL_NAMES

from .conftest import REPO_ROOT, isolated_env, node_tool

MANIFEST_PATH = REPO_ROOT / "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("mcpb-manifest-v0.3.schema.json")
USER_CONFIG_ENV = {
    "KUBECONFIG": "kubeconfig",
    "MCP_KSCAN_KUBE_BENCH_PATH": "kube_bench_path",
    "MCP_KSCAN_KUBESCAPE_PATH": "kubescape_path",
    "MCP_KSCAN_DATA_DIR": "data_dir",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST_PATH.read_text())


def test_manifest_matches_the_official_json_schema(manifest: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(manifest, schema)  # additionalProperties: false everywhere: no stray keys


def test_schema_check_catches_stray_keys(manifest: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    bad = json.loads(json.dumps(manifest))
    bad["tools"][0]["annotations"] = {"readOnlyHint": True}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_required_keys_and_package_facts(manifest: dict) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["manifest_version"] == "0.3"
    assert manifest["name"] == pyproject["name"] == "mcp-kscan"
    assert manifest["display_name"]
    assert manifest["version"] == mcp_kscan.__version__ == pyproject["version"]
    assert manifest["description"] and "\n" not in manifest["description"]
    assert manifest["author"]["name"] == pyproject["authors"][0]["name"]
    assert manifest["license"] == pyproject["license"]["text"] == "Apache-2.0"
    compat = manifest["compatibility"]
    assert set(compat["platforms"]) <= {"darwin", "linux", "win32"} and compat["platforms"]
    assert compat["runtimes"]["python"] == pyproject["requires-python"]


def test_server_entry_point_and_env_wiring(manifest: dict) -> None:
    server = manifest["server"]
    assert server["type"] == "python"
    assert (REPO_ROOT / server["entry_point"]).is_file()
    config = server["mcp_config"]
    assert config["command"].startswith("python")
    assert config["args"][0] == "${__dirname}/" + server["entry_point"]
    assert config["env"] == {env: f"${{user_config.{key}}}" for env, key in USER_CONFIG_ENV.items()}
    user_config = manifest["user_config"]
    assert set(user_config) == set(USER_CONFIG_ENV.values())
    for key, spec in user_config.items():
        assert spec["type"] in ("string", "number", "boolean", "directory", "file"), key
        assert spec["title"] and spec["description"] and spec.get("required") is False, key
        assert not spec.get("sensitive"), key
    assert user_config["data_dir"]["type"] == "directory"
    # Every ${user_config.X} anywhere in the manifest names a declared field.
    for ref in re.findall(r"\$\{user_config\.([A-Za-z0-9_]+)\}", MANIFEST_PATH.read_text()):
        assert ref in user_config


def test_env_names_are_settings_the_server_reads() -> None:
    source = (REPO_ROOT / "mcp_kscan" / "settings.py").read_text()
    for env in USER_CONFIG_ENV:
        assert f'"{env}"' in source


async def _listed_tools() -> list:
    async with Client(build_server()) as client:
        return list((await client.list_tools()).tools)


@pytest.mark.anyio
async def test_tools_match_tools_list(manifest: dict, kscan_settings) -> None:  # type: ignore[no-untyped-def]
    listed = await _listed_tools()
    served = {t.name: t.description or "" for t in listed}
    names = [t["name"] for t in manifest["tools"]]
    assert len(names) == len(set(names))
    assert set(names) == set(served) == set(TOOL_NAMES)
    for tool in manifest["tools"]:
        summary = served[tool["name"]].strip().splitlines()[0].strip()
        assert tool["description"] == summary, tool["name"]
    assert manifest["tools_generated"] is False


def test_official_validator_accepts_the_manifest() -> None:
    mcpb = node_tool("mcpb", "@anthropic-ai/mcpb@2.1.2")
    proc = subprocess.run([*mcpb, "validate", str(MANIFEST_PATH)], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Manifest schema validation passes!" in proc.stdout


def test_official_validator_rejects_a_broken_manifest(tmp_path: Path, manifest: dict) -> None:
    mcpb = node_tool("mcpb", "@anthropic-ai/mcpb@2.1.2")
    bad = {k: v for k, v in manifest.items() if k != "author"}
    (tmp_path / "manifest.json").write_text(json.dumps(bad))
    proc = subprocess.run([*mcpb, "validate", str(tmp_path / "manifest.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "author" in proc.stdout + proc.stderr


def test_entry_point_shim_runs_the_cli(tmp_path: Path) -> None:
    env = isolated_env(tmp_path, PYTHONPATH="")
    proc = subprocess.run([sys.executable, "server/main.py", "version"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"mcp-kscan {mcp_kscan.__version__}"
    # From another directory too (hosts start it with an absolute path, cwd anywhere).
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "server" / "main.py"), "version"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_entry_point_drops_unsubstituted_placeholders(tmp_path: Path) -> None:
    """A host that leaves ``${user_config.x}`` in place must not make it a path."""
    env = isolated_env(tmp_path, **{name: f"${{user_config.{key}}}" for name, key in USER_CONFIG_ENV.items()})
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "server" / "main.py"), "doctor", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    for name in USER_CONFIG_ENV:
        if name != "MCP_KSCAN_DATA_DIR":
            assert report["settings"][name] is None, name
    assert "user_config" not in report["settings"]["MCP_KSCAN_DATA_DIR"]
    assert proc.returncode == 0, proc.stdout


def test_entry_point_refuses_a_lib_built_for_another_python(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "server" / "lib").mkdir(parents=True)
    (bundle / "server" / "main.py").write_text((REPO_ROOT / "server" / "main.py").read_text())
    (bundle / "server" / "lib" / ".python-version").write_text("2.7\n")
    proc = subprocess.run([sys.executable, str(bundle / "server" / "main.py"), "version"],
                          env=isolated_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "built for Python 2.7" in proc.stderr and proc.stdout == ""


def test_mcpbignore_keeps_what_the_bundle_needs() -> None:
    patterns = [ln.strip() for ln in (REPO_ROOT / ".mcpbignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for pattern in patterns:
        # Unanchored directory names would also drop server/lib/<package>/<name>/ (gitignore rules).
        if pattern not in ("__pycache__/", "*.pyc"):
            assert pattern.startswith("/"), pattern
        assert not pattern.startswith(("/server/main.py", "/manifest.json", "/server/lib/mcp_kscan"))


def test_build_script_is_executable_and_uses_pip_target() -> None:
    script = REPO_ROOT / "scripts" / "build_bundle.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "--target server/lib" in text and "pack" in text
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
