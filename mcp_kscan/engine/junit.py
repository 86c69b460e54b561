"""JUnit XML from a Kubescape v2 report, for CI systems that show test results (Jenkins, GitLab, ...).

One ``testsuite`` per control and one ``testcase`` per (control, resource); a failed finding is a
``failure`` whose message names the file and line to edit and whose text adds the failing paths,
the fix paths and the control's remediation; an excepted one is ``skipped`` with its reason. The
element and attribute set is the one of the JUnit schema Jenkins' xunit plugin publishes (the
``junit-4.xsd`` the tests validate against): ``skipped`` carries text only, ``tests`` is required.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree as ET

from mcp_kscan.catalogue import get_control
from mcp_kscan.locations import locate
from mcp_kscan.readers import kubescape_v2 as v2
from mcp_kscan.readers.kubescape_report import parse_report

MAX_PATHS = 20


def _resource_name(res: Mapping[str, Any]) -> str:
    kind, ns, name = res.get("kind") or "?", res.get("namespace") or "", res.get("name") or "?"
    return f"{kind}/{ns}/{name}" if ns else f"{kind}/{name}"


def to_junit(report: Mapping[str, Any], roots: Sequence[str] = ()) -> str:
    """The report as JUnit XML text (UTF-8, with the XML declaration)."""
    parsed = parse_report(report)
    order = {cid: i for i, cid in enumerate(parsed.control_order)}
    by_control: dict[str, list[Any]] = {}
    for f in parsed.findings:
        if f.status == "skipped":
            continue
        by_control.setdefault(f.control_id, []).append(f)
    root = ET.Element("testsuites", name="mcp-kscan")
    total = failures = 0
    for cid in sorted(by_control, key=lambda c: (order.get(c, len(order)), c)):
        findings = by_control[cid]
        info = get_control(cid)
        name = findings[0].control_name or (info.name if info else "")
        suite = ET.SubElement(root, "testsuite", name=f"{cid} {name}".strip(), tests=str(len(findings)))
        failed = 0
        for f in findings:
            res = f.resource.model_dump()
            loc = locate(res.get("file"), roots, res.get("kind"), res.get("namespace"), res.get("name"),
                          [*f.failed_paths, *(p.path for p in f.fix_paths)])
            where = loc.file or "(cluster)"
            if loc.line:
                where += f":{loc.line}"
            case = ET.SubElement(suite, "testcase", classname=cid, name=f"{_resource_name(res)} ({where})")
            if f.status == "passed" and f.excepted:
                skipped = ET.SubElement(case, "skipped")
                why = f.exception or {}
                skipped.text = (f"excepted (accepted risk) by {why.get('source') or 'an exception'}: "
                                f"{why.get('reason') or 'no reason given'}")
            elif f.status == "failed":
                failed += 1
                failure = ET.SubElement(case, "failure", type=f.severity,
                                        message=f"{f.severity} {cid} {name}: {_resource_name(res)} at {where}")
                lines = [f"location: {where}" + (f" (document {loc.document})" if loc.document is not None else "")]
                lines += [f"failing: {p}" for p in f.failed_paths[:MAX_PATHS]]
                lines += [f"fix: {p.path}={p.value}" for p in f.fix_paths[:MAX_PATHS]]
                if info and info.remediation:
                    lines.append(f"remediation: {' '.join(info.remediation.split())}")
                if f.exception_expired:
                    lines.append(f"exception expired: {f.exception_expired.get('reason', '')}")
                lines.append(f"docs: {v2.control_url(cid)}")
                failure.text = "\n".join(lines)
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        total += len(findings)
        failures += failed
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
