"""The control catalogue: the data file matches the regolibrary release it was generated from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mcp_kscan.catalogue import (
    all_controls,
    framework_controls,
    framework_names,
    get_control,
    severity_for,
)
from mcp_kscan.engine.controls import CONTROLS
from conftest import REPO_ROOT


def test_data_file_loads_from_the_package_alone() -> None:
    """The engine never reads ../shared: a fresh interpreter with no shared dir still has the data."""
    code = (
        "from mcp_kscan.catalogue import all_controls, get_control;"
        "c = get_control('C-0057'); print(len(all_controls()), c.name, c.severity, c.builtin)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd="/", env={"MCP_KSCAN_SHARED_DIR": "/nonexistent", "PATH": "/usr/bin:/bin"})
    count, rest = out.stdout.strip().split(" ", 1)
    assert int(count) > 250
    assert rest == "Privileged container High True"


def test_control_fields() -> None:
    c = get_control("c-0057")
    assert c is not None
    assert c.control_id == "C-0057"
    assert c.base_score == 8.0 and c.severity == "High"
    assert c.category == "Workload"
    assert c.control_type_tags == ("security", "smartRemediation")
    assert "NSA" in c.frameworks and "MITRE" in c.frameworks and "AllControls" in c.frameworks
    assert c.scanning_scope == ("cluster", "file")
    assert c.rules == ("rule-privilege-escalation",)
    assert "privileged" in c.description and c.remediation
    assert get_control("C-9999") is None


def test_attack_tracks_come_from_the_control_metadata() -> None:
    c = get_control("C-0266")
    assert c is not None and "service-destruction" in c.attack_tracks
    assert get_control("C-0057").attack_tracks == ()  # type: ignore[union-attr]


def test_attack_tracks_match_the_reference(regolibrary: Path) -> None:
    for path in (regolibrary / "controls").glob("C-*.json"):
        raw = json.loads(path.read_text())
        info = get_control(raw["controlID"])
        assert info is not None
        wanted = {t["attackTrack"] for t in raw.get("attributes", {}).get("attackTracks") or []}
        assert set(info.attack_tracks) == wanted, raw["controlID"]
        assert info.control_type_tags == tuple(raw.get("attributes", {}).get("controlTypeTags") or [])


def test_builtin_flag_is_the_engine_registry() -> None:
    assert {c.control_id for c in all_controls() if c.builtin} == {c.id for c in CONTROLS}


def test_engine_controls_take_their_text_from_the_catalogue() -> None:
    for control in CONTROLS:
        info = get_control(control.id)
        assert info is not None
        assert (control.name, control.score_factor, control.severity, control.remediation) == (
            info.name, info.base_score, info.severity, info.remediation)
        assert control.frameworks == info.frameworks
        assert (control.category[0] if control.category else None) == info.category


def test_frameworks() -> None:
    names = framework_names()
    assert {"NSA", "MITRE", "AllControls", "ArmoBest", "DevOpsBest", "security", "WorkloadScan",
            "YAML-scanning", "cis-v1.10.0"} <= set(names)
    assert framework_controls("nsa") == framework_controls("NSA")
    assert "C-0057" in framework_controls("NSA")
    assert framework_controls("no-such-framework") == ()
    # YAML-scanning lists names, some of them pre-rename names: they resolve to IDs.
    assert "C-0002" in framework_controls("YAML-scanning")


def test_severity_mapping_is_kubescapes() -> None:
    assert [severity_for(s) for s in (10, 9, 8.9, 7, 6.9, 4, 3.9, 1, 0.5)] == [
        "Critical", "Critical", "High", "High", "Medium", "Medium", "Low", "Low", "Unknown"]


def test_counts_match_the_reference(regolibrary: Path) -> None:
    controls = list((regolibrary / "controls").glob("C-*.json"))
    assert len(all_controls()) == len(controls)
    file_scope = [p for p in controls if "file" in json.loads(p.read_text())["scanningScope"]["matches"]]
    assert sum("file" in c.scanning_scope for c in all_controls()) == len(file_scope)
    assert len(framework_names()) == len(list((regolibrary / "frameworks").glob("*.json")))
    for path in (regolibrary / "frameworks").glob("*.json"):
        fw = json.loads(path.read_text())
        if "activeControls" in fw:
            assert framework_controls(fw["name"]) == tuple(c["controlID"] for c in fw["activeControls"])


def test_data_file_is_up_to_date(regolibrary: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gen_catalogue.py"), str(regolibrary), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
