"""The generated tables in README.md and docs/engine-agreement.md match the data they come from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_readme_controls_table_matches_the_data_file() -> None:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import gen_docs_tables
    finally:
        sys.path.pop(0)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = gen_docs_tables.controls_table()
    assert table in readme, "README's controls table is stale: run scripts/gen_docs_tables.py"
    assert table.count("\n| C-") == 122 and "| C-0057 | Privileged container | High | Workload |" in table


def test_every_generated_table_is_fresh(regolibrary: Path) -> None:
    """With the reference present, the rule-case table in docs/engine-agreement.md is current too."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "gen_docs_tables.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
