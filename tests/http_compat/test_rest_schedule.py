"""MCP_KSCAN_SCHEDULE in the HTTP app: the lifespan runs the scheduler, a slot submits the entry's
scan through the service (the fake scanners run as real processes), and /v1/metrics?source=latest
serves the scheduled framework scan. The test steps the scheduler to a slot instead of waiting for one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mcp_kscan.runner.records import ScanState
from mcp_kscan.runner.schedule import Scheduler

from .rest_helpers import RestFactory

pytestmark = pytest.mark.anyio


async def test_a_slot_runs_the_scheduled_scans_through_the_service(rest_factory: RestFactory, fake_bin) -> None:  # type: ignore[no-untyped-def]
    c = await rest_factory({"MCP_KSCAN_SCHEDULE": "0 */6 * * * framework=nsa; @daily kube-bench executor=local"})
    app = c._transport.app  # type: ignore[attr-defined]
    scheduler: Scheduler = app.state.scheduler
    manager = app.state.kscan_ref.state.manager
    assert [e.key for e in scheduler.entries] == ["0 */6 * * * framework=nsa", "0 0 * * * kube-bench executor=local"]
    assert (await c.get("/v1/metrics", params={"source": "latest", "frameworks": "nsa"})).status_code == 404

    await scheduler.start(datetime.now(UTC))  # where the server stands (its own loop does the same at start)
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    fired = await scheduler.tick(midnight + timedelta(seconds=3))
    assert sorted(entry.key for entry, _, _ in fired) == sorted(e.key for e in scheduler.entries)
    records = {}
    for entry, slot, scan_id in fired:
        assert slot == midnight and scan_id
        record = await manager.wait(scan_id, 60)
        assert record.status is ScanState.succeeded and record.origin == "schedule", record.error
        records[record.scanner] = record
    assert records["kubescape"].request["target_names"] == ["NSA"]
    assert fake_bin.starts("kubescape")[0]["argv"][1:4] == ["scan", "framework", "NSA"]
    assert len(fake_bin.starts("kube-bench")) == 1
    assert await scheduler.tick(midnight + timedelta(seconds=30)) == []  # fired once

    r = await c.get("/v1/metrics", params={"source": "latest", "frameworks": "nsa"})
    assert r.status_code == 200, r.text
    assert "kubescape_scan_age_seconds " in r.text and "kubescape_cluster_complianceScore" in r.text


async def test_an_entry_this_server_cannot_run_is_a_warning_at_start(
    rest_factory: RestFactory, tmp_path, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level("WARNING", logger="mcp_kscan.scheduled_scans")
    c = await rest_factory({
        "MCP_KSCAN_SCHEDULE": "@hourly framework=nsa engine=kubescape; @daily framework=mitre engine=builtin",
        "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-such-kubescape"),
        "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"),  # and not in a pod: no cluster
    })
    warnings = [r.getMessage() for r in caplog.records if r.name == "mcp_kscan.scheduled_scans"]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("MCP_KSCAN_SCHEDULE entry '0 * * * * framework=nsa engine=kubescape' cannot run")
    assert "kubescape" in warnings[0]
    assert warnings[1] == ("MCP_KSCAN_SCHEDULE entry '0 0 * * * framework=mitre engine=builtin' cannot run on this"
                           " server now: no cluster to scan: no kubeconfig (KUBECONFIG, ~/.kube/config) and not"
                           " running in a pod")
    assert (await c.get("/livez")).status_code == 200  # a warning, not a refusal: the binary may come later
