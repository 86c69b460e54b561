"""Settings: checked when built, a bad value is one line naming its variable, and a terminal scan
does not pay for pydantic (every ``mcp-kscan`` command builds settings before anything else)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_kscan.settings import SETTING_ENV, Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("env", "message"), [
    ({"MCP_KSCAN_MAX_CONCURRENT_SCANS": "0"}, "MCP_KSCAN_MAX_CONCURRENT_SCANS: expected a value at least 1, got 0"),
    ({"MCP_KSCAN_MAX_CONCURRENT_SCANS": "65"}, "MCP_KSCAN_MAX_CONCURRENT_SCANS: expected a value at most 64, got 65"),
    ({"MCP_KSCAN_DEFAULT_TIMEOUT": "0"}, "MCP_KSCAN_DEFAULT_TIMEOUT: expected a value above 0, got 0.0"),
    ({"MCP_KSCAN_DB_MAX_PAGES": "15"}, "MCP_KSCAN_DB_MAX_PAGES: expected a value at least 16, got 15"),
    ({"MCP_KSCAN_QUEUE_CAPACITY": "-1"}, "MCP_KSCAN_QUEUE_CAPACITY: expected a value at least 0, got -1"),
    ({"MCP_KSCAN_MAX_FILE_BYTES": "2g"}, "MCP_KSCAN_MAX_FILE_BYTES: expected an integer, got '2g'"),
    # NaN passes every comparison, so a range alone would take it (a timeout that never ends)
    ({"MCP_KSCAN_DEFAULT_TIMEOUT": "nan"}, "MCP_KSCAN_DEFAULT_TIMEOUT: expected a finite number, got nan"),
    ({"KS_SCAN_QUEUE_CAPACITY": "x"}, "MCP_KSCAN_QUEUE_CAPACITY: expected an integer, got 'x'"),
])
def test_a_bad_value_is_one_line_naming_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


def test_settings_built_in_code_are_checked_and_converted_too() -> None:
    s = Settings(data_dir="/d", allowed_roots=["/a"], scan_lease_s=5)  # type: ignore[arg-type]
    assert s.data_dir == Path("/d") and s.allowed_roots == [Path("/a")]
    assert isinstance(s.scan_lease_s, float) and s.scan_lease_s == 5.0
    assert s.replace(max_results=7).max_results == 7 and s.max_results == 200
    with pytest.raises(ValueError, match=r"^MCP_KSCAN_MAX_RESULTS: expected a value at least 1, got 0$"):
        s.replace(max_results=0)
    with pytest.raises(ValueError, match=r"^MCP_KSCAN_TOKEN: expected a string, got \(hidden\)$"):
        s.replace(token=1234)
    assert "s3cret" not in repr(s.replace(token="s3cret", ks_access_key="s3cret",
                                          database_url="postgresql://u:s3cret@h/db"))


def test_every_setting_has_its_variable_and_a_json_value() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(SETTING_ENV) == names
    shown = Settings.from_env({"MCP_KSCAN_DATA_DIR": "/d", "MCP_KSCAN_ALLOWED_ROOTS": "/a"}).as_json()
    assert set(shown) == names and shown["data_dir"] == "/d" and shown["allowed_roots"] == ["/a"]
    json.dumps(shown)


_SCAN_MODULES = """
import json, sys
from mcp_kscan.cli import main
code = main(["scan", sys.argv[1], "--engine", "builtin", "--format", "json", "-o", sys.argv[2]])
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""


def test_a_terminal_scan_does_not_import_pydantic(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", _SCAN_MODULES, str(EXAMPLES), str(report)],
                          cwd=tmp_path, capture_output=True, timeout=120, check=True)
    ran = json.loads(done.stdout.splitlines()[-1])
    assert ran["exit"] in (0, 1) and json.loads(report.read_bytes())["resources"]
    assert not {name.split(".")[0] for name in ran["modules"]} & {"pydantic", "pydantic_core"}
