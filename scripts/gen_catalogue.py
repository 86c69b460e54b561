#!/usr/bin/env python3
"""Write mcp_kscan/catalogue/controls.json from Kubescape's regolibrary release.

The engine reads the committed data file at run time and never the reference itself, so the
catalogue (names, baseScore, descriptions, remediation, categories, tags, attack tracks,
frameworks, scanning scopes, rules and the default control inputs) is regenerated here whenever
the reference moves:

    python scripts/gen_catalogue.py [../shared/reference/regolibrary-v2.0.33]

Output is deterministic (sorted, stable), so a regeneration without a reference change leaves
no diff.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference" / "regolibrary-v2.0.33"
OUTPUT = REPO / "mcp_kscan" / "catalogue" / "controls.json"


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _rules(reference: Path) -> dict[str, dict[str, Any]]:
    """Rule name -> what the engine needs from its metadata (directory names differ from names)."""
    out: dict[str, dict[str, Any]] = {}
    for meta_path in sorted((reference / "rules").glob("*/rule.metadata.json")):
        meta = _load(meta_path)
        kinds = sorted({str(r) for m in meta.get("match") or [] for r in m.get("resources") or []})
        out[str(meta["name"])] = {
            "directory": meta_path.parent.name,
            "kinds": kinds,
            "dependencies": sorted(
                {str(r) for m in meta.get("ruleDependencies") or [] for r in ([m.get("packageName")] if isinstance(m, dict) else [m]) if r}
            ),
            "config_inputs": [str(p) for p in meta.get("configInputs") or []],
        }
    return out


def _old_names(reference: Path) -> dict[str, str]:
    """Control name -> ID from FWName_CID_CName.csv, which still carries pre-rename names."""
    out: dict[str, str] = {}
    with (reference / "FWName_CID_CName.csv").open(encoding="utf-8") as f:
        for row in csv.reader(f):
            if len(row) >= 3 and row[1].startswith("C-"):
                out.setdefault(row[2], row[1])
    return out


def _frameworks(reference: Path, name_to_id: dict[str, str]) -> list[dict[str, Any]]:
    old_names = _old_names(reference)
    out = []
    for path in sorted((reference / "frameworks").glob("*.json")):
        fw = _load(path)
        if "activeControls" in fw:
            ids = [str(c["controlID"]) for c in fw["activeControls"]]
        else:
            # YAML-scanning lists control names, some of them older names of renamed controls
            # (FWName_CID_CName.csv keeps those); a name matching no control at all is a control
            # the release no longer has, and is dropped as Kubescape's export drops it.
            ids = []
            for name in fw.get("controlsNames") or []:
                cid = name_to_id.get(name) or old_names.get(name)
                if cid is None:
                    print(f"note: {fw['name']}: {name!r} names no control in this release; left out", file=sys.stderr)
                    continue
                ids.append(cid)
        scope = (fw.get("scanningScope") or {}).get("matches")
        out.append({
            "name": str(fw["name"]),
            "description": str(fw.get("description") or ""),
            # None: the framework declares no scope (Kubescape applies it to any target).
            "scanning_scope": [str(s) for s in scope] if scope is not None else None,
            "type_tags": [str(t) for t in fw.get("typeTags") or []],
            "controls": list(dict.fromkeys(ids)),
        })
    return sorted(out, key=lambda f: f["name"].lower())


def build(reference: Path) -> dict[str, Any]:
    controls_raw = [_load(p) for p in sorted((reference / "controls").glob("C-*.json"))]
    name_to_id = {str(c["name"]): str(c["controlID"]) for c in controls_raw}
    categories = _load(reference / "categories" / "mapCategoryNameToID.json")
    frameworks = _frameworks(reference, name_to_id)
    in_frameworks: dict[str, list[str]] = {}
    for fw in frameworks:
        for cid in fw["controls"]:
            in_frameworks.setdefault(cid, []).append(fw["name"])
    attack_track_names = sorted(
        str(_load(p)["metadata"]["name"]) for p in (reference / "attack-tracks").glob("*.json")
    )
    rules = _rules(reference)
    controls = []
    for c in sorted(controls_raw, key=lambda c: str(c["controlID"])):
        attrs = c.get("attributes") or {}
        tracks = sorted({str(t["attackTrack"]) for t in attrs.get("attackTracks") or []})
        category = c.get("category") or None
        rule_names = [str(r) for r in c.get("rulesNames") or []]
        for r in rule_names:
            if r not in rules:
                raise SystemExit(f"{c['controlID']}: rule {r!r} has no metadata in the reference")
        controls.append({
            "id": str(c["controlID"]),
            "name": str(c["name"]),
            "base_score": float(c.get("baseScore") or 0),
            "description": str(c.get("description") or ""),
            "remediation": str(c.get("remediation") or ""),
            "category": str(category["name"]) if category else None,
            "category_id": categories.get(category["name"]) if category else None,
            "subcategory": str((category.get("subCategory") or {}).get("name")) if category and category.get("subCategory") else None,
            "control_type_tags": [str(t) for t in attrs.get("controlTypeTags") or []],
            "attack_tracks": tracks,
            "frameworks": in_frameworks.get(str(c["controlID"]), []),
            "scanning_scope": [str(s) for s in (c.get("scanningScope") or {}).get("matches") or []],
            "rules": rule_names,
        })
    used_rules = {r for c in controls for r in c["rules"]}
    return {
        "source": f"kubescape/regolibrary {reference.name.removeprefix('regolibrary-')}",
        "generated_by": "scripts/gen_catalogue.py",
        "attack_tracks": attack_track_names,
        "categories": categories,
        "frameworks": frameworks,
        "controls": controls,
        "rules": {name: rules[name] for name in sorted(used_rules)},
        "default_control_inputs": _load(reference / "default-config-inputs.json")["settings"]["postureControlInputs"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", nargs="?", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when the data file is out of date")
    args = parser.parse_args(argv)
    if not (args.reference / "controls").is_dir():
        print(f"error: {args.reference} is not a regolibrary release (no controls/)", file=sys.stderr)
        return 2
    text = json.dumps(build(args.reference), indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run scripts/gen_catalogue.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
