"""MCP prompts: a whole-cluster audit recipe, and a control explained from a scan's own findings."""

from __future__ import annotations

import re

from mcp.server import MCPServer
from mcp.server.mcpserver import Context

from mcp_kscan.errors import KscanError
from mcp_kscan.tools.common import service_of

_CONTROL_RE = re.compile(r"^C-\d{4}$")
_FRAMEWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


AUDIT = """Audit the security of {target}.

1. Run kubescape_scan{args}. If it is still running, call scan_status(scan_id, wait_seconds=120) until it finishes.
2. If a kube-bench binary is available and this server runs on a cluster node, also run kube_bench (CIS benchmark).
3. How secure: the scan's summary (compliance score, failed controls). A scan that read no Kubernetes object proves nothing.
4. What first: get_results(scan_id, view="controls", status="failed"). Rows come most urgent first (severity, then
   attack-surface controls before availability and hygiene ones); take the top controls from there.
5. Exactly where: for each top control, get_results(scan_id, view="findings", control_id=…, status="failed"). Each finding
   names its file and line (location) and the fix (fix_paths, remediation); follow next_cursor until it is null.
   For kube-bench, get_results(scan_id, view="checks", status="FAIL").
6. Report: the score; then, most urgent first, each failed control with the resources it fails on (kind/namespace/name,
   file:line), why it matters and the concrete YAML change. Group resources that share a fix. End with the three
   changes that remove the most risk."""


def register(mcp: MCPServer) -> None:
    @mcp.prompt(title="Cluster security audit")
    def cluster_security_audit(paths: str = "", namespace: str = "", framework: str = "") -> str:
        """Run Kubescape (and kube-bench where possible), then triage: how secure, what first, exactly where.

        paths: manifest files/directories to scan (comma-separated); empty = the live cluster.
        namespace: limit a cluster scan to one namespace.
        framework: limit the scan to one framework (nsa, mitre, cis-v1.10.0, …; list_controls lists them)."""
        args = []
        if paths.strip():
            args.append(f"paths={[p.strip() for p in paths.split(',') if p.strip()]!r}")
        if namespace.strip():
            args.append(f"include_namespaces={[namespace.strip()]!r}")
        if framework.strip():
            if not _FRAMEWORK_RE.match(framework.strip()):
                return f"'{framework[:40]}' is not a framework name (like nsa or cis-v1.10.0): ask for one from list_controls."
            args.append(f"target_type='framework', target_names={[framework.strip()]!r}")
        target = f"the manifests in {paths}" if paths.strip() else "the Kubernetes cluster" + (
            f" (namespace {namespace})" if namespace.strip() else ""
        )
        return AUDIT.format(target=target, args=f"({', '.join(args)})" if args else "")

    @mcp.prompt(title="Explain a control")
    async def explain_control(control_id: str, ctx: Context, scan_id: str = "") -> str:
        """Explain a Kubescape control (e.g. C-0057): what it checks, why it matters, how to fix it — from a scan's own findings."""
        control_id = control_id.strip().upper()
        if not _CONTROL_RE.match(control_id):
            return f"'{control_id[:20]}' is not a Kubescape control id (they look like C-0057). Ask for a valid id."
        service = service_of(ctx)
        facts: list[str] = []
        try:
            page = await service.results_page(
                scan_id or None, "findings", control_id=control_id, status="failed", limit=10
            )
            findings = page.findings or []
            facts.append(f"Scan {page.scan_id}: {page.total_matching} resource(s) fail {control_id}.")
            for f in findings:
                res = f["resource"]
                loc = f.get("location") or {}
                where = f"{loc['file']}:{loc.get('line')}" if loc.get("file") else f"namespace {res.get('namespace') or '-'}"
                facts.append(
                    f"- {res.get('kind')}/{res.get('name')} ({where}), severity {f['severity']}: "
                    f"failed paths {f.get('failed_paths') or []}; fix paths {[fp['path'] + '=' + fp['value'] for fp in f.get('fix_paths') or []]}"
                )
            if findings:
                first = findings[0]
                facts.insert(0, f"Control {control_id}: {first['control_name']}.")
                if first.get("remediation"):
                    facts.insert(1, f"Remediation: {first['remediation']}")
        except KscanError as exc:
            facts.append(f"No scan data for {control_id} is available ({exc}). Run kubescape_scan first if needed.")
        return (
            f"Explain Kubescape control {control_id} to a Kubernetes engineer: what it checks, why it matters "
            "(the attack it enables, with MITRE/NSA context where relevant), and exactly how to fix each affected "
            "resource below (show the YAML change). Use these facts from the scan:\n" + "\n".join(facts)
        )
