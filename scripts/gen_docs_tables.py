#!/usr/bin/env python3
"""Regenerate the generated tables in README.md and docs/engine-agreement.md.

- README.md, between the ``controls-table`` markers: every control of the catalogue that
  Kubescape can decide from files, with what the built-in engine does with it (from
  mcp_kscan/catalogue/controls.json and the engine's registry).
- docs/engine-agreement.md, between the ``rule-cases`` markers: the per-control agreement with
  regolibrary's own rule test cases (needs ../shared/reference/regolibrary-v2.0.33).

    python scripts/gen_docs_tables.py [--check]

tests/catalogue/test_docs_tables.py fails when a table is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mcp_kscan.catalogue import all_controls  # noqa: E402
from mcp_kscan.engine.frameworks import skip_reason  # noqa: E402

REFERENCE = REPO.parent / "shared" / "reference" / "regolibrary-v2.0.33"
NAMED = ("NSA", "MITRE", "security", "DevOpsBest", "ArmoBest", "WorkloadScan", "YAML-scanning")


def controls_table() -> str:
    rows = ["| control | name | severity | category | frameworks | built-in engine |", "|---|---|---|---|---|---|"]
    file_controls = [c for c in all_controls() if "file" in c.scanning_scope]
    for c in file_controls:
        frameworks = ", ".join(f for f in c.frameworks if f in NAMED) or "–"
        engine = "evaluates" if c.builtin else f"skipped: {skip_reason(c.control_id)}"
        rows.append(f"| {c.control_id} | {c.name} | {c.severity} | {c.category or '–'} | {frameworks} | {engine} |")
    done = sum(c.builtin for c in file_controls)
    rows.append("")
    rows.append(f"{done} of the {len(file_controls)} controls Kubescape can decide from files are evaluated by the "
                f"built-in engine. Frameworks column: the named frameworks that hold the control (all are in AllControls).")
    return "\n".join(rows)


def rule_cases_table() -> str:
    from mcp_kscan.engine.ruletests import run_all, table

    return table(run_all(REFERENCE))


def _replace(text: str, marker: str, body: str) -> str:
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"markers {start} ... {end} not found")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n\n{body}\n\n{end}{tail}"


def render() -> dict[Path, str]:
    out = {}
    readme = REPO / "README.md"
    out[readme] = _replace(readme.read_text(encoding="utf-8"), "controls-table", controls_table())
    if (REFERENCE / "rules").is_dir():
        doc = REPO / "docs" / "engine-agreement.md"
        out[doc] = _replace(doc.read_text(encoding="utf-8"), "rule-cases", rule_cases_table())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a table is out of date")
    args = parser.parse_args()
    stale = []
    for path, text in render().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(REPO)) for p in stale) + "; run scripts/gen_docs_tables.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
