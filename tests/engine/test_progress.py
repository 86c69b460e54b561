"""The engine process reports files read and resources checked, as JSON lines on stderr (engine.progress)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_kscan.engine.entry import EngineSpec
from mcp_kscan.engine.progress import ScanProgress
from mcp_kscan.engine.task import engine_env

POD = """---
apiVersion: v1
kind: Pod
metadata: {{name: p-{i}-{j}, namespace: ns-{i}}}
spec:
  containers: [{{name: c, image: nginx, securityContext: {{privileged: true}}}}]
"""


def _corpus(folder: Path, files: int, per_file: int) -> None:
    folder.mkdir()
    for i in range(files):
        (folder / f"f{i:03d}.yaml").write_text("".join(POD.format(i=i, j=j) for j in range(per_file)))
    (folder / "values.yaml").write_text("replicas: 3\n")  # a file without objects: read, counted, no resource


def _run_engine(tmp_path: Path, spec: EngineSpec) -> tuple[list[ScanProgress], dict]:  # type: ignore[type-arg]
    spec_path, report_path = tmp_path / "spec.json", tmp_path / "report.json"
    spec_path.write_bytes(spec.to_json())
    proc = subprocess.run([sys.executable, "-m", "mcp_kscan.engine.entry", str(spec_path), str(report_path)],
                          capture_output=True, env=engine_env(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = [ScanProgress.from_message(json.loads(line)) for line in proc.stderr.splitlines() if line.startswith(b"{")]
    assert None not in seen, proc.stderr
    return [p for p in seen if p is not None], json.loads(report_path.read_bytes())


@pytest.mark.parametrize("workers", [1, 2])
def test_the_engine_process_reports_files_and_resources(tmp_path: Path, workers: int) -> None:
    folder = tmp_path / "corpus"
    _corpus(folder, files=40, per_file=30)
    seen, report = _run_engine(tmp_path, EngineSpec(paths=[str(folder)], workers=workers))
    resources = len(report["resources"])
    assert resources == 40 * 30
    files = 41
    # Reading ends and checking ends are always reported, whatever the throttle dropped between.
    assert ScanProgress(files, files, 0, resources) in seen
    assert seen[-1] == ScanProgress(files, files, resources, resources)
    for before, after in itertools.pairwise(seen):  # every count only grows (one shared counter across workers)
        assert after.files_done >= before.files_done and after.resources_total >= before.resources_total
        assert after.resources_done >= before.resources_done
    for p in seen:
        assert p.files_total == files
        # Checking starts after all reading: a resource checked means the total is final.
        if p.resources_done:
            assert p.files_done == files and p.resources_total == resources


def test_a_scan_of_no_objects_reports_reading_done_and_no_resources(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "values.yaml").write_text("a: 1\n")
    seen, _ = _run_engine(tmp_path, EngineSpec(paths=[str(folder)], workers=1))
    assert seen[-1] == ScanProgress(1, 1, 0, 0)


def test_progress_messages_round_trip_and_refuse_nonsense() -> None:
    p = ScanProgress(3, 4, 0, 120)
    assert ScanProgress.from_message(json.loads(json.dumps(p.to_message()))) == p
    for bad in ({"progress": [5, 4]}, {"progress": [1, 4], "resources": [9, 3]}, {"progress": ["1", 4]},
                {"progress": [1, 4], "resources": None}, {"error": "x"}, {"progress": [-1, 4]}):
        assert ScanProgress.from_message(bad) is None, bad
    # Milestones (reported even when throttled): reading just ended, checking just ended.
    assert ScanProgress(4, 4, 0, 120).milestone and ScanProgress(4, 4, 120, 120).milestone
    assert not ScanProgress(3, 4, 0, 100).milestone and not ScanProgress(4, 4, 60, 120).milestone
