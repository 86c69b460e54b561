"""The scan context: what controls see of other objects, in one process and across workers."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_kscan.engine.context import context_object
from mcp_kscan.engine.model import make_resource
from mcp_kscan.engine.parallel import scan_paths_json
from mcp_kscan.engine.scan import scan_paths

REPO = Path(__file__).resolve().parents[2]


def _verdicts(report: dict) -> list[tuple[str, str, str]]:  # type: ignore[type-arg]
    return sorted((r["resourceID"], c["controlID"], c["status"]["status"]) for r in report["results"] for c in r["controls"])


def test_workload_stubs_keep_what_other_objects_match() -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "c"}},
                                                           "spec": {"containers": [{"name": "x", "image": "i"}]}}}}}}
    stub = context_object(make_resource(cron))
    assert stub is not None and "containers" not in json.dumps(stub)
    assert make_resource(stub).pod_labels == {"app": "c"}
    pod = make_resource({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {}})
    assert make_resource(context_object(pod) or {}).pod_labels == {"a": "b"}
    assert context_object(make_resource({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}})) is None


def test_workers_see_the_same_context_as_one_process(tmp_path: Path) -> None:
    """Services, policies and bindings in one worker's files, workloads in another's."""
    (tmp_path / "a-workloads").mkdir()
    (tmp_path / "b-others").mkdir()
    for path in (REPO / "examples").glob("*.yaml"):
        docs = path.read_text().split("\n---\n")
        for i, doc in enumerate(docs):
            target = "a-workloads" if "\nkind: Deployment" in "\n" + doc or "kind: Pod" in doc else "b-others"
            (tmp_path / target / f"{path.stem}-{i}.yaml").write_text(doc)
    one = scan_paths([str(tmp_path)], frameworks=["all"])
    many = json.loads(scan_paths_json([str(tmp_path)], frameworks=["all"], workers=2))
    assert _verdicts(one) == _verdicts(many)
    assert any(cid == "C-0293" for _, cid, _ in _verdicts(many))


def test_stubs_leave_out_what_no_control_reads_in_the_context() -> None:
    """ConfigMaps and Secrets travel as their names and the one key a control reads; no stub
    carries annotations (kubectl's last-applied-configuration is often most of an object)."""
    applied = {"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 1000 + "}"}
    cm = make_resource({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}, "annotations": applied},
                        "data": {"allow-snippet-annotations": "false", "big.conf": "v" * 1000}})
    assert context_object(cm) == {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "c", "namespace": "n", "labels": {"a": "b"}},
                                  "data": {"allow-snippet-annotations": "false"}}
    secret = make_resource({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}})
    assert context_object(secret) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {}}
    pod = make_resource({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "p", "labels": {"a": "b"}, "annotations": applied}, "spec": {}})
    stub = context_object(pod)
    assert stub is not None and "annotations" not in stub["metadata"]
    assert make_resource(stub).pod_labels == {"a": "b"}
    sa = make_resource({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "annotations": applied}})
    assert context_object(sa) is sa.obj  # read whole by the controls: shipped whole
