"""The engine's digest (summary and item rows, computed by the workers from what they write) is
exactly what the server would get by parsing the report: ``report_items(parse_report(report))``
and ``summarize_kubescape(parse_report(report))``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from mixed_corpus import mixed_corpus, workload

from mcp_kscan.engine.digest import (
    item_rows,
    read_file_hashes,
    read_summary,
    write_digest,
)
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.parallel import write_scan_json
from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.engine.scan import scan_objects
from mcp_kscan.fixes.hashes import file_hashes
from mcp_kscan.readers.kubescape_report import parse_report
from mcp_kscan.reports import summarize_kubescape
from mcp_kscan.runner.items import Run, report_items, spelled_out

def _corpus(root: Path) -> Path:
    """Failures, passes, accepted risk (current and expired), several namespaces and kinds, a
    non-ASCII name, a twice-written object, a broken file and a file without objects."""
    return mixed_corpus(root, files=12, kinds=["Deployment", "StatefulSet", "DaemonSet", "Pod"],
                        secure=lambda i: i % 3 == 0, exceptions_every=5, name=lambda i: f"app-{i}", broken=True)


def _rows(directory: Path) -> list[tuple[Any, ...]]:
    """The digest's rows with each run spelled out as the rows of its findings."""
    return list(spelled_out(item_rows(directory)))


def test_findings_travel_as_runs(tmp_path: Path) -> None:
    """The bulk of a scan, findings alike but for their resource (every object passing a
    control, or failing it on the same paths), is no row each: runs of resource numbers."""
    digest = tmp_path / "digest"
    digest.mkdir()
    write_scan_json(io.BytesIO(), [_corpus(tmp_path)], ["all"], workers=2, exceptions=Exceptions.build(),
                    digest_dir=digest)
    items = list(item_rows(digest))
    runs = [i for i in items if isinstance(i, Run)]
    assert not [i for i in items if isinstance(i, tuple)]
    assert {run.status for run in runs} >= {"failed", "passed"} and any(run.excepted for run in runs)
    findings = sum(len(run.members) for run in runs)
    assert findings == len(_rows(digest)) > 3 * len(runs)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("omit_raw", [False, True])
def test_file_scan_digest_equals_the_parsed_report(tmp_path: Path, workers: int, omit_raw: bool) -> None:
    folder = _corpus(tmp_path)
    digest = tmp_path / "digest"
    digest.mkdir()
    out = io.BytesIO()
    objects = write_scan_json(out, [folder], ["all"], workers=workers, omit_raw_resources=omit_raw,
                              exceptions=Exceptions.build(), digest_dir=digest)
    assert objects > 40
    parsed = parse_report(out.getvalue())
    statuses = {f.status for f in parsed.findings}
    assert {"failed", "passed"} <= statuses
    assert any(f.excepted for f in parsed.findings) and any(f.exception_expired for f in parsed.findings)
    assert len({f.resource.namespace for f in parsed.findings}) >= 4
    assert len({f.resource.kind for f in parsed.findings}) >= 5
    assert parsed.errors and parsed.warnings

    expected = list(report_items(parsed))
    got = _rows(digest)
    assert len(got) == len(expected) == len(parsed.findings)
    assert got == expected
    assert read_summary(digest) == summarize_kubescape(parsed)
    # Each file's digest as the workers read it: what the server took by reading every file again.
    assert read_file_hashes(digest) == file_hashes([str(folder)], ReadLimits())


def test_the_row_json_is_the_models_own(tmp_path: Path) -> None:
    """The store keeps the JSON text pages decode into ``KubescapeFinding``: the model's own dump."""
    out = io.BytesIO()
    write_scan_json(out, [_corpus(tmp_path)], ["all"], workers=1, exceptions=Exceptions.build())
    parsed = parse_report(out.getvalue())
    by_json = sorted(row[7] for row in report_items(parsed))
    assert by_json == sorted(f.model_dump_json() for f in parsed.findings)


def test_nothing_scanned_digest(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "values.yaml").write_text("a: 1\n")
    digest = tmp_path / "digest"
    digest.mkdir()
    out = io.BytesIO()
    write_scan_json(out, [folder], ["all"], workers=1, digest_dir=digest)
    parsed = parse_report(out.getvalue())
    assert parsed.nothing_scanned
    assert _rows(digest) == []
    assert read_summary(digest) == summarize_kubescape(parsed)


def test_a_report_dict_digest(tmp_path: Path) -> None:
    """Cluster and workload scans: the digest read from the report dict, never its text."""
    report = scan_objects([workload("Deployment", "web", "prod", secure=False),
                           workload("Pod", "ok", "dev", secure=True)], frameworks=["all"])
    write_digest(report, tmp_path)
    parsed = parse_report(orjson.dumps(report))
    assert _rows(tmp_path) == list(report_items(parsed)) and _rows(tmp_path)
    assert read_summary(tmp_path) == summarize_kubescape(parsed)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_report_is_announced_whole_before_the_items_are_written(tmp_path: Path, workers: int) -> None:
    """``on_report`` (the engine's "report ready" line): the report and the digest's head are
    complete, the items not yet begun; the server stores the result while they are written."""
    from mcp_kscan.engine.report_file import open_report

    folder = _corpus(tmp_path)
    digest = tmp_path / "digest"
    digest.mkdir()
    report = tmp_path / "report.json"
    seen: list[dict[str, Any]] = []

    def announced() -> None:
        seen.append({"report": orjson.loads(report.read_bytes()),
                     "files": sorted(p.name for p in digest.iterdir())})

    with open_report(str(report)) as out:
        write_scan_json(out, [folder], ["all"], workers=workers, exceptions=Exceptions.build(),
                        digest_dir=digest, on_report=announced)
    assert len(seen) == 1
    whole = orjson.loads(report.read_bytes())
    assert seen[0]["report"] == whole and whole["resources"] and whole["metadata"]
    assert seen[0]["files"] == ["hashes.json", "head.json"]
    assert read_summary(digest) == summarize_kubescape(parse_report(report.read_bytes()))
    assert _rows(digest) == list(report_items(parse_report(report.read_bytes())))
