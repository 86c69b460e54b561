"""Jobs left on the cluster by a kube-bench Job scan whose server died.

A server killed mid-scan cannot delete its Jobs; at the next start the scan is marked
``interrupted`` and this deletes the Jobs that carry its scan-id label (their TTL and deadline
would end them eventually, but a node keeps running a privileged-adjacent pod until then).
Best effort: no cluster access, or an error, is logged and start-up goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio
import anyio.to_thread
from kubernetes import client

from mcp_kscan.cluster import resolve_cluster
from mcp_kscan.cluster.source import new_api_client
from mcp_kscan.executors import job_manifest as jm
from mcp_kscan.runner.records import ScanRecord
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

ENGINE = "kube-bench-job"
TIMEOUT_S = 20.0


def _delete_sync(record: ScanRecord, settings: Settings) -> bool:
    request = record.request
    # Only the context is taken from the stored request: a kubeconfig path stored by an older
    # version is request data, and request data never chooses the file whose plugins run.
    context = request.get("kube_context")
    source = resolve_cluster(settings, context if isinstance(context, str) else None)
    if source is None:
        log.warning("scan %s was interrupted, but no cluster configuration is left to delete its Jobs", record.scan_id)
        return False
    api = new_api_client(source, pool_size=1)
    try:
        client.BatchV1Api(api).delete_collection_namespaced_job(
            request.get("namespace") or "kube-bench",
            label_selector=jm.scan_selector(record.scan_id),
            propagation_policy="Background",
            _preload_content=False,
            _request_timeout=TIMEOUT_S,
        )
    finally:
        api.close()
    return True


async def delete_orphaned_jobs(records: Sequence[ScanRecord], settings: Settings) -> int:
    """Delete the Jobs of each interrupted Job scan in ``records``; returns how many scans were cleaned."""
    cleaned = 0
    for record in records:
        if record.engine != ENGINE:
            continue
        try:
            with anyio.fail_after(TIMEOUT_S + 5):
                if await anyio.to_thread.run_sync(_delete_sync, record, settings, abandon_on_cancel=True):
                    cleaned += 1
                    log.warning("deleted the Jobs left by interrupted scan %s", record.scan_id)
        except Exception as exc:  # best effort: start-up must not fail on a cluster problem
            log.warning("could not delete the Jobs of interrupted scan %s: %s", record.scan_id, exc)
    return cleaned
