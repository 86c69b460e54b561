"""The hostile manifest folder shared by the hostile-input fault tests, and a memory-capped runner.

Each case is one file next to a good one, so every test can check both halves of the promise:
the bad file becomes a warning naming it, and the good file is still scanned.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

MEMORY_CAP = 1536 * 1024 * 1024
"""Address-space cap for every child that reads hostile input: a regression fails, not the machine."""

POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec:\n  containers: [{name: c, image: nginx}]\n"

# go-yaml's own test of excessive aliasing, a billion laughs of 547 bytes.
ALIAS_BOMB = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n"
    '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))
)

# file name -> words its warning must contain
EXPECTED_WARNINGS: dict[str, tuple[str, ...]] = {
    "bomb.yaml": ("excessive aliasing",),
    "fifo.yaml": ("FIFO", "not a regular file"),
    "zero.yaml": ("character device", "not a regular file"),
    "big.yaml": ("MCP_KSCAN_MAX_FILE_BYTES",),
    "selfalias.yaml": ("contains itself",),
    "nan.yaml": (".nan",),
    "volumes.yaml": ("spec.volumes", "expected a list"),
    "namespace.yaml": ("metadata.namespace", "expected a string"),
    "deep.yaml": ("nesting depth",),
}
GOOD_NAMES = ("good", "binary", "set", "after-nan")
"""Pods that must be in every report: the good file, and the documents next to the odd ones."""


def make_hostile_tree(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.yaml").write_text(POD % "good")
    (folder / "bomb.yaml").write_text(ALIAS_BOMB)
    os.mkfifo(folder / "fifo.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    with open(folder / "big.yaml", "wb") as fh:  # 500 MB, sparse: costs no disk
        fh.truncate(500 * 1024 * 1024)
    (folder / "selfalias.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: s}\nspec: &x {containers: [*x]}\n")
    (folder / "nan.yaml").write_text(POD % "nan" + "  terminationGracePeriodSeconds: .nan\n---\n" + POD % "after-nan")
    (folder / "volumes.yaml").write_text(POD % "v5" + "  volumes: 5\n")
    (folder / "namespace.yaml").write_text((POD % "ns").replace("{name: ns}", "{name: ns, namespace: [a]}"))
    (folder / "types.yaml").write_text(
        (POD % "binary").replace("image: nginx", "image: !!binary aGVsbG8=") + "---\n"
        + POD % "set" + "  nodeSelector: !!set {a, b}\n"
    )
    (folder / "deep.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: "
                                      + "[" * 100_000 + "]" * 100_000 + "\n")
    return folder


def _cap_memory() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(argv: list[str], timeout: float = 180, env: dict[str, str] | None = None,
               stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` under the memory cap; a hang is a test failure (TimeoutExpired), not a stuck suite."""
    return subprocess.run(argv, capture_output=True, timeout=timeout, preexec_fn=_cap_memory,
                          env={**os.environ, **(env or {})}, stdin=stdin)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mcp_kscan", "scan", *args]


def strict_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity, as every JSON parser outside Python does."""
    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def check_report(report: dict[str, Any], folder: Path) -> None:
    """Every hostile file is a named warning; every good object is in the report."""
    warnings = report["metadata"]["engine"]["errors"]
    for name, words in EXPECTED_WARNINGS.items():
        mine = [w for w in warnings if w.startswith(name)]
        assert mine, f"no warning for {name}: {warnings}"
        assert all(word in mine[0] for word in words), (name, mine)
    names = {r["resourceID"].rsplit("/", 1)[1] for r in report["resources"]}
    assert set(GOOD_NAMES) <= names, names
    assert not names & {"bomb", "s", "nan", "v5", "ns", "deep"}, names
