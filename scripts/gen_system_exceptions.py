#!/usr/bin/env python3
"""Write mcp_kscan/engine/system_exceptions.json from Kubescape's regolibrary release.

Kubescape applies these postureExceptionPolicy entries by default (its own components, the cloud
providers' kube-system objects, the default namespace's service account): they fail by design.
The engine reads the committed data file at run time and never the reference itself:

    python scripts/gen_system_exceptions.py [../shared/reference/regolibrary-v2.0.33]

Each entry is kept as regolibrary writes it, plus ``file`` (which exceptions file it came from,
for the finding's source). Output is deterministic: files in name order, entries in file order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference" / "regolibrary-v2.0.33"
OUTPUT = REPO / "mcp_kscan" / "engine" / "system_exceptions.json"
KEPT = ("name", "policyType", "actions", "attributes", "resources", "posturePolicies", "reason")


def collect(reference: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted((reference / "exceptions").glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            entries.append({**{k: entry[k] for k in KEPT if k in entry}, "file": path.name})
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", nargs="?", type=Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args(argv)
    if not (args.reference / "exceptions").is_dir():
        print(f"no exceptions/ folder under {args.reference}", file=sys.stderr)
        return 2
    entries = collect(args.reference)
    sys.path.insert(0, str(REPO))
    from mcp_kscan.engine.exceptions import compile_patterns, parse_policies

    compile_patterns(parse_policies(entries, OUTPUT.name, system=True))  # what the engine will load must load
    OUTPUT.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(entries)} system exceptions to {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
