"""A scan records each manifest's SHA-256, except for files that changed while it ran."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.fixes.hashes import file_hashes, scan_with_hashes
from mcp_kscan.runner.records import TaskOutcome, ScanState

pytestmark = pytest.mark.anyio


async def test_files_changed_during_the_scan_get_no_hash(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: A\n")
    (tmp_path / "b.yaml").write_text("kind: B\n")
    (tmp_path / "notes.txt").write_text("not a manifest\n")

    async def scan() -> TaskOutcome:
        (tmp_path / "b.yaml").write_text("kind: B2\n")
        return TaskOutcome(status=ScanState.succeeded)

    outcome = await scan_with_hashes([str(tmp_path)], ReadLimits(), scan)
    assert outcome.file_hashes == {str(tmp_path / "a.yaml"): hashlib.sha256(b"kind: A\n").hexdigest()}


async def test_failed_scans_and_cluster_scans_record_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: A\n")

    async def failed() -> TaskOutcome:
        return TaskOutcome(status=ScanState.failed, error="boom")

    assert (await scan_with_hashes([str(tmp_path)], ReadLimits(), failed)).file_hashes is None
    assert (await scan_with_hashes([], ReadLimits(), failed)).file_hashes is None


def test_hashes_follow_the_read_rules(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "x.yaml").write_text("kind: X\n")
    (inside / "link.yaml").symlink_to(outside / "x.yaml")
    (inside / "ok.yaml").write_text("kind: Y\n")
    hashes = file_hashes([str(inside)], ReadLimits.create(allowed_roots=[inside]))
    assert list(hashes) == [str(inside / "ok.yaml")]
