"""Prometheus text for ``/v1/metrics`` (Kubescape's families, from one report) and ``/metrics``
(this server's own counters).

Both go through prometheus-client with a registry per use: a fresh one per ``/v1/metrics``
answer (the families describe one scan, nothing accumulates) and one per app for ``/metrics``
(tests build several apps in one process; the global registry would mix them up).

Kubescape facts (core/pkg/resultshandling/printer/v2/prometheusutils.go): every value is an
integer gauge (scores through ``kubescape_v2.score_int``); the cluster and framework control
counters say ``control`` (singular), the per-resource ones ``controls``; a control's compliance
score is left out when the report has none; the link label is ``kubescape_v2.control_url``.
A scan that read no Kubernetes object (``kubescape_v2.nothing_scanned``) has no score families at
all: an empty cluster or a failed listing must not scrape as 100% (or 0%) compliant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.readers.kubescape_report import parse_report
from mcp_kscan.runner.manager import ScanManager
from mcp_kscan.runner.records import ScanRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _control_counts(controls: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"failed": 0, "skipped": 0, "passed": 0}
    for control in controls:
        counts[v2.control_status(control)] += 1
    return counts


class KubescapeReportCollector(Collector):
    """Kubescape's ``/v1/metrics`` families computed from one raw v2 JSON report."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        summary = self.report.get("summaryDetails")
        summary = summary if isinstance(summary, Mapping) else {}

        def family(name: str, labels: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, name, labels=labels)

        # Cluster. A scan that read no object has no score: the family is left out, never 0 or 100.
        empty = v2.nothing_scanned(self.report)
        score = v2.score_int(summary.get("complianceScore"))
        if not empty:
            cluster = family("kubescape_cluster_complianceScore")
            cluster.add_metric([], score if score is not None else 0)
            yield cluster
        tally = v2.resource_counts(summary)
        for suffix, value in (("failed", tally.failed), ("skipped", tally.skipped), ("passed", tally.passed)):
            fam = family(f"kubescape_cluster_count_resources_{suffix}")
            fam.add_metric([], value)
            yield fam
        counts = _control_counts(v2.summary_controls(summary).values())
        for suffix in ("failed", "skipped", "passed"):
            fam = family(f"kubescape_cluster_count_control_{suffix}")
            fam.add_metric([], counts[suffix])
            yield fam

        # Frameworks
        frameworks = [f for f in summary.get("frameworks") or [] if isinstance(f, Mapping)]
        fw_score = family("kubescape_framework_complianceScore", ["name"])
        fw_res = {s: family(f"kubescape_framework_count_resources_{s}", ["name"]) for s in ("failed", "skipped", "passed")}
        fw_ctl = {s: family(f"kubescape_framework_count_control_{s}", ["name"]) for s in ("failed", "skipped", "passed")}
        seen_fw: set[str] = set()
        for fw in frameworks:
            name = str(fw.get("name") or "")
            if name in seen_fw:
                continue
            seen_fw.add(name)
            if not empty:
                fw_score.add_metric([name], v2.score_int(fw.get("complianceScore")) or 0)
            tally = v2.resource_counts(fw)
            for suffix, value in (("failed", tally.failed), ("skipped", tally.skipped), ("passed", tally.passed)):
                fw_res[suffix].add_metric([name], value)
            counts = _control_counts(v2.summary_controls(fw).values())
            for suffix in ("failed", "skipped", "passed"):
                fw_ctl[suffix].add_metric([name], counts[suffix])
        if frameworks:
            if fw_score.samples:
                yield fw_score
            yield from fw_res.values()
            yield from fw_ctl.values()

        # Controls
        labels = ["name", "severity", "link"]
        ctl_score = family("kubescape_control_complianceScore", labels)
        ctl_res = {s: family(f"kubescape_control_count_resources_{s}", labels) for s in ("failed", "skipped", "passed")}
        seen_ctl: set[tuple[str, str, str]] = set()
        for cid, control in v2.summary_controls(summary).items():
            control_id = str(control.get("controlID") or cid)
            key = (str(control.get("name") or ""), v2.control_severity(control), v2.control_url(control_id))
            if key in seen_ctl:
                continue
            seen_ctl.add(key)
            score = None if empty else v2.score_int(control.get("complianceScore"))
            if score is not None and score >= 0:
                ctl_score.add_metric(list(key), score)
            tally = v2.resource_counts(control)
            for suffix, count in (("failed", tally.failed), ("skipped", tally.skipped), ("passed", tally.passed)):
                ctl_res[suffix].add_metric(list(key), count)
        if seen_ctl:
            if ctl_score.samples:
                yield ctl_score
            yield from ctl_res.values()

        # Resources: failed/skipped controls per object (same labels summed: one sample each).
        per_resource: dict[tuple[str, str, str, str], dict[str, int]] = defaultdict(lambda: {"failed": 0, "skipped": 0})
        if self.report.get("results"):
            try:
                findings = parse_report(self.report).findings
            except Exception:  # a malformed results section leaves the summary families intact
                findings = []
            for finding in findings:
                ref = finding.resource
                key4 = (ref.api_version or "", ref.kind or "", ref.namespace or "", ref.name or "")
                counts4 = per_resource[key4]
                if finding.status in counts4:
                    counts4[finding.status] += 1
        if per_resource:
            res_labels = ["apiVersion", "kind", "namespace", "name"]
            res = {s: family(f"kubescape_resource_count_controls_{s}", res_labels) for s in ("failed", "skipped")}
            for key4, counts4 in per_resource.items():
                for suffix in ("failed", "skipped"):
                    res[suffix].add_metric(list(key4), counts4[suffix])
            yield from res.values()


def kubescape_metrics_text(report: Mapping[str, Any]) -> bytes:
    """The Prometheus exposition of one Kubescape report."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KubescapeReportCollector(report))
    return generate_latest(registry)


AGE_HELP = "Seconds since the stored scan behind these kubescape_* families finished (/v1/metrics?source=latest)."


def scan_age_text(age: timedelta) -> bytes:
    """``kubescape_scan_age_seconds``: lets an alert tell a stale scan (a stopped schedule) from a fresh one."""
    registry = CollectorRegistry(auto_describe=False)
    gauge = GaugeMetricFamily("kubescape_scan_age_seconds", AGE_HELP)
    gauge.add_metric([], round(max(0.0, age.total_seconds()), 3))
    registry.register(_Fixed([gauge]))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self.families)


class StoredMetrics:
    """The families of the last stored scan served by ``source=latest``, one per app.

    A finished scan never changes, so its exposition is computed once; a newer scan replaces it.
    """

    def __init__(self) -> None:
        self._scan_id: str | None = None
        self._text = b""

    def text_for(self, scan_id: str) -> bytes | None:
        return self._text if scan_id == self._scan_id else None

    def keep(self, scan_id: str, text: bytes) -> None:
        self._scan_id, self._text = scan_id, text


# ---------------------------------------------------------------------------- the server's own


class _LiveGauges(Collector):
    """Queue depth and running scans, read from the manager at scrape time (never stale)."""

    def __init__(self, owner: ServerMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[GaugeMetricFamily]:
        manager = self.owner.manager
        queued = GaugeMetricFamily("mcp_kscan_queue_depth", "Scans waiting in the queue for a worker.")
        queued.add_metric([], manager.queued_count if manager else 0)
        yield queued
        running = GaugeMetricFamily("mcp_kscan_scans_running", "Scans running now.")
        running.add_metric([], manager.running_count if manager else 0)
        yield running
        accepting = GaugeMetricFamily("mcp_kscan_accepting", "1 while the runner accepts new scans.")
        accepting.add_metric([], 1 if manager is not None and manager.accepting else 0)
        yield accepting


class ServerMetrics:
    """This server's metrics, in a registry of its own (one per app)."""

    DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf"))

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.manager: ScanManager | None = None
        self.scans = Counter(
            "mcp_kscan_scans",
            "Scans that reached a final state, by scanner and state.",
            ["scanner", "state"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "mcp_kscan_scan_duration_seconds",
            "Run time of finished scans (start to end, queue wait excluded).",
            ["scanner"],
            buckets=self.DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_LiveGauges(self))

    def attach(self, manager: ScanManager) -> None:
        """Count every scan this manager finishes (called from the app's lifespan)."""
        self.manager = manager
        manager.add_finish_hook(self.on_finish)

    def on_finish(self, record: ScanRecord) -> None:
        self.scans.labels(record.scanner, record.status.value).inc()
        if record.duration_s is not None:
            self.duration.labels(record.scanner).observe(record.duration_s)

    def text(self) -> bytes:
        return generate_latest(self.registry)
