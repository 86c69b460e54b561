"""compare.compare_findings / compare_checks: matching rules on hand-made stored items."""

from __future__ import annotations

from typing import Any

from mcp_kscan.compare import compare_checks, compare_findings, file_identity, same_file


def finding(control: str, name: str, *, file: str | None = "apps/web.yaml", rel: str | None = None,
            paths: list[str] | None = None, status: str = "failed", excepted: bool = False,
            kind: str = "Deployment", ns: str = "shop", api: str = "apps/v1") -> dict[str, Any]:
    return {
        "control_id": control, "status": status, "severity": "High", "excepted": excepted,
        "resource": {"api_version": api, "kind": kind, "namespace": ns, "name": name, "file": file, "relative_path": rel},
        "failed_paths": paths or [], "fix_paths": [],
    }


def test_new_fixed_unchanged_and_rename() -> None:
    base = [finding("C-0057", "web"), finding("C-0017", "web"), finding("C-0017", "api")]
    head = [finding("C-0057", "web"), finding("C-0017", "web"), finding("C-0017", "api-v2"), finding("C-0013", "web")]
    c = compare_findings(base, head)
    assert [(x.item["control_id"], x.item["resource"]["name"]) for x in c.new] == [("C-0017", "api-v2"), ("C-0013", "web")]
    assert [(x.item["control_id"], x.item["resource"]["name"]) for x in c.fixed] == [("C-0017", "api")]
    assert len(c.unchanged) == 2
    assert c.counts() == {"new": 2, "new_evidence": 0, "fixed": 1, "unchanged": 2}


def test_new_failing_path_in_failing_control_is_new_evidence() -> None:
    one = "spec.template.spec.containers[0].securityContext.privileged"
    two = "spec.template.spec.containers[1].securityContext.privileged"
    c = compare_findings([finding("C-0057", "web", paths=[one])], [finding("C-0057", "web", paths=[one, two])])
    assert [x.change for x in c.new] == ["new_evidence"] and c.new[0].new_paths == [two]
    assert not c.fixed and not c.unchanged


def test_identity_parts_each_matter() -> None:
    base = [finding("C-0057", "web")]
    for changed in (finding("C-0057", "web", ns="prod"), finding("C-0057", "web", kind="StatefulSet"),
                    finding("C-0057", "web", api="apps/v1beta2"), finding("C-0057", "web", file="other/web.yaml"),
                    finding("C-0058", "web")):
        c = compare_findings(base, [changed])
        assert c.counts() == {"new": 1, "new_evidence": 0, "fixed": 1, "unchanged": 0}, changed


def test_relative_path_matches_across_checkouts_and_parent_folders() -> None:
    base = [finding("C-0057", "web", file="/home/ci/build/repo/apps/web.yaml", rel="apps/web.yaml")]
    head = [finding("C-0057", "web", file="/tmp/x/k8s/apps/web.yaml", rel="k8s/apps/web.yaml")]
    assert compare_findings(base, head).counts()["unchanged"] == 1
    assert same_file("examples/app/web.yaml", "app/web.yaml") and not same_file("a/web.yaml", "b/web.yaml")
    assert not same_file("app/xweb.yaml", "web.yaml")
    assert file_identity(finding("C-1", "x", file=None)) == ""


def test_exact_file_wins_over_suffix() -> None:
    base = [finding("C-0057", "web", file="a/web.yaml"), finding("C-0057", "web", file="web.yaml")]
    head = [finding("C-0057", "web", file="web.yaml")]
    c = compare_findings(base, head)
    assert len(c.unchanged) == 1 and [x.item["resource"]["file"] for x in c.fixed] == ["a/web.yaml"]


def test_passed_and_excepted_are_not_failures() -> None:
    base = [finding("C-0057", "web"), finding("C-0017", "web")]
    head = [finding("C-0057", "web", status="passed", excepted=True), finding("C-0017", "web", status="passed")]
    c = compare_findings(base, head)
    assert c.counts() == {"new": 0, "new_evidence": 0, "fixed": 2, "unchanged": 0}


def test_kube_bench_per_node_and_check() -> None:
    def check(cid: str, node: str | None, status: str = "FAIL") -> dict[str, Any]:
        return {"id": cid, "node": node, "status": status, "description": "d"}

    base = [check("1.1.1", "n1"), check("1.1.1", "n2"), check("4.2.1", "n1")]
    head = [check("1.1.1", "n1"), check("1.1.1", "n2", "PASS"), check("4.2.1", "n1"), check("4.2.1", "n2")]
    c = compare_checks(base, head)
    assert [(x.item["id"], x.item["node"]) for x in c.new] == [("4.2.1", "n2")]
    assert [(x.item["id"], x.item["node"]) for x in c.fixed] == [("1.1.1", "n2")]
    assert len(c.unchanged) == 2
