"""propose_fix and apply_fix through a real MCP client: propose, check, write, scan again."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

import mcp_kscan.settings
from mcp_kscan.server import build_server

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "examples/insecure.yaml", root / "insecure.yaml")
    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(root))
    mcp_kscan.settings.configure(None)
    yield root
    mcp_kscan.settings.configure(None)


async def _call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def _scan(client: Client, root: Path) -> str:
    record = await _call(client, "kubescape_scan", {"engine": "builtin", "paths": [str(root)], "wait_seconds": 120})
    assert record["status"] == "succeeded"
    return str(record["scan_id"])


async def _failed(client: Client, scan_id: str, control_id: str) -> list[dict[str, Any]]:
    page = await _call(client, "get_results", {"scan_id": scan_id, "view": "findings", "status": "failed",
                                               "control_id": control_id, "limit": 50})
    return list(page["findings"])


async def test_propose_then_apply_then_the_rescan_passes(project: Path) -> None:
    manifest = project / "insecure.yaml"
    original = manifest.read_text()
    async with Client(build_server()) as client:
        scan_id = await _scan(client, project)
        (privileged,) = [f for f in await _failed(client, scan_id, "C-0057") if f["resource"]["kind"] == "Deployment"]
        page = await _call(client, "propose_fix", {"scan_id": scan_id, "finding_ids": [privileged["finding_id"]]})
        (fix,) = page["fixes"]
        assert fix["verified"] is True and fix["needs_user_value"] == []
        assert fix["file"] == str(manifest) and fix["document_index"] == privileged["location"]["document"]
        assert fix["json_patch"] == [{"op": "replace", "path": "/spec/template/spec/containers/0/securityContext/privileged",
                                      "value": False}]
        assert "-            privileged: yes" in fix["diff"] and "+            privileged: false" in fix["diff"]
        assert manifest.read_text() == original  # proposing writes nothing

        memory = next(f for f in await _failed(client, scan_id, "C-0271") if f["resource"]["name"] == "legacy-agent")
        result = await _call(client, "apply_fix", {"scan_id": scan_id,
                                                   "finding_ids": [privileged["finding_id"], memory["finding_id"],
                                                                   "f-0123456789abcdef"]})
        by_id = {r["finding_id"]: r for r in result["results"]}
        assert by_id[privileged["finding_id"]]["status"] == "applied"
        assert by_id[memory["finding_id"]]["status"] == "refused"
        assert "only you can choose" in by_id[memory["finding_id"]]["reason"]
        assert by_id["f-0123456789abcdef"] == {"finding_id": "f-0123456789abcdef", "status": "refused",
                                               "reason": f"not a failed finding of scan {scan_id}", "file": None}
        assert result["files_written"] == [str(manifest)] and result["applied"] == 1
        text = manifest.read_text()
        assert text.count("\n") == original.count("\n") and "privileged: false       # bad" in text

        again = await _scan(client, project)
        assert not [f for f in await _failed(client, again, "C-0057") if f["resource"]["kind"] == "Deployment"]
        # The first scan's fixes are now stale: the file changed since that scan.
        (hostpid,) = [f for f in await _failed(client, scan_id, "C-0038")]
        stale = await _call(client, "apply_fix", {"scan_id": scan_id, "finding_ids": [hostpid["finding_id"]]})
        assert stale["results"][0]["status"] == "refused" and "changed since the scan" in stale["results"][0]["reason"]


async def test_pages_filters_and_errors(project: Path) -> None:
    async with Client(build_server()) as client:
        scan_id = await _scan(client, project)
        first = await _call(client, "propose_fix", {"scan_id": scan_id, "limit": 5})
        assert first["returned"] == 5 and first["next_cursor"] and first["total_matching"] > 5
        second = await _call(client, "propose_fix", {"scan_id": scan_id, "limit": 5, "cursor": first["next_cursor"]})
        ids = [f["finding_id"] for f in first["fixes"] + first["without_fix"]]
        assert not set(ids) & {f["finding_id"] for f in second["fixes"] + second["without_fix"]}
        only = await _call(client, "propose_fix", {"scan_id": scan_id, "control_id": "c-0041"})
        assert {f["control_id"] for f in only["fixes"]} == {"C-0041"} and only["fixes"][0]["verified"]
        bad = await client.call_tool("propose_fix", {"scan_id": scan_id, "finding_ids": ["f-0123456789abcdef"]})
        assert bad.is_error and "finding_ids: f-0123456789abcdef is not a failed finding" in bad.content[0].text
        assert "\n" not in bad.content[0].text
        malformed = await client.call_tool("apply_fix", {"scan_id": scan_id, "finding_ids": ["../../etc/passwd"]})
        assert malformed.is_error and "finding_ids: '../../etc/passwd' is not a finding id" in malformed.content[0].text
        unknown = await client.call_tool("propose_fix", {"scan_id": scan_id, "control_id": "C-9999"})
        assert unknown.is_error and "control_id: C-9999 is not" in unknown.content[0].text
        extra = await client.call_tool("apply_fix", {"scan_id": scan_id, "finding_ids": [], "force": True})
        assert extra.is_error


async def test_apply_refuses_outside_the_roots(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose roots no longer hold the scanned file writes nothing there."""
    async with Client(build_server()) as client:
        scan_id = await _scan(client, project)
        (host_network,) = await _failed(client, scan_id, "C-0041")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("MCP_KSCAN_ALLOWED_ROOTS", str(elsewhere))
    mcp_kscan.settings.configure(None)
    before = (project / "insecure.yaml").read_bytes()
    async with Client(build_server()) as client:
        result = await _call(client, "apply_fix", {"scan_id": scan_id, "finding_ids": [host_network["finding_id"]]})
    assert result["results"][0]["status"] == "refused"
    assert "outside the allowed roots" in result["results"][0]["reason"] or "cannot read" in result["results"][0]["reason"]
    assert (project / "insecure.yaml").read_bytes() == before


async def test_client_roots_narrow_where_fixes_are_written(project: Path, tmp_path: Path) -> None:
    """A client whose MCP roots do not hold the file gets a refusal; its own project is written."""
    from mcp.types import ListRootsResult, Root

    def roots_of(*dirs: Path) -> Any:
        async def roots(_ctx: Any) -> ListRootsResult:
            return ListRootsResult(roots=[Root(uri=d.as_uri(), name=d.name) for d in dirs])

        return roots

    other = project / "other-project"
    other.mkdir()
    before = (project / "insecure.yaml").read_bytes()
    async with Client(build_server(), mode="legacy", list_roots_callback=roots_of(other)) as client:
        scan_id = await _scan(client, project)
        (host_pid,) = await _failed(client, scan_id, "C-0038")
        result = await _call(client, "apply_fix", {"scan_id": scan_id, "finding_ids": [host_pid["finding_id"]]})
        assert result["results"][0]["status"] == "refused"
        assert "outside the allowed roots" in result["results"][0]["reason"]
        assert (project / "insecure.yaml").read_bytes() == before
    async with Client(build_server(), mode="legacy", list_roots_callback=roots_of(project)) as client:
        result = await _call(client, "apply_fix", {"scan_id": scan_id, "finding_ids": [host_pid["finding_id"]]})
        assert result["results"][0]["status"] == "applied"
    assert "hostPID" not in (project / "insecure.yaml").read_text()


async def test_apply_refuses_paths_through_symlinks(project: Path, tmp_path: Path) -> None:
    """A folder swapped for a symlink that leads out of the roots after the scan is never written through."""
    real = project / "real"
    real.mkdir()
    (project / "insecure.yaml").rename(real / "insecure.yaml")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(real / "insecure.yaml", outside / "insecure.yaml")
    async with Client(build_server()) as client:
        scan_id = await _scan(client, project)
        (host_pid,) = await _failed(client, scan_id, "C-0038")
        assert host_pid["location"]["file"] == str(real / "insecure.yaml")
        real.rename(project / "moved")
        real.symlink_to(outside, target_is_directory=True)  # same path, now leading out of the roots
        result = await _call(client, "apply_fix", {"scan_id": scan_id, "finding_ids": [host_pid["finding_id"]]})
    assert result["results"][0]["status"] == "refused"
    assert "outside the allowed roots" in result["results"][0]["reason"]
    assert (outside / "insecure.yaml").read_bytes() == (project / "moved" / "insecure.yaml").read_bytes()


async def test_rendered_findings_get_hints_never_edits(project: Path, tmp_path: Path, fake_helm: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart's finding names the values.yaml key; an overlay's says where to change it; nothing is written."""
    import shutil as sh

    from conftest import write_chart, write_kustomize

    write_chart(project / "charts")
    kubectl = sh.which("kubectl")
    if kubectl:
        write_kustomize(project / "deploy")
        monkeypatch.setenv("MCP_KSCAN_KUBECTL_PATH", kubectl)
    monkeypatch.setenv("MCP_KSCAN_HELM_PATH", str(fake_helm.path))
    mcp_kscan.settings.configure(None)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    async with Client(build_server()) as client:
        record = await _call(client, "kubescape_scan", {"engine": "builtin", "paths": [str(project)], "wait_seconds": 120,
                                                        "target_type": "control", "target_names": ["C-0057"]})
        scan_id = record["scan_id"]
        page = await _call(client, "propose_fix", {"scan_id": scan_id, "limit": 50})
        by_name = {f["resource"]["name"]: f for f in page["fixes"]}
        chart = by_name["release-name-web"]
        assert chart["helm_values"] == [{"values_key": "privileged",
                                         "field": "spec.template.spec.containers[0].securityContext.privileged"}]
        assert chart["diff"] is None and chart["verified"] is False
        applied = await _call(client, "apply_fix", {"scan_id": scan_id, "finding_ids": [chart["finding_id"]]})
        assert applied["results"][0]["status"] == "refused" and "values.yaml" in applied["results"][0]["reason"]
        if kubectl:
            (overlay,) = [n for n in page["without_fix"] if n["reason"].startswith("rendered by kubectl kustomize")]
            assert "patch to the overlay" in overlay["reason"]
    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
