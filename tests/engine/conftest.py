"""Fixtures for the built-in engine's tests: where the shared real-world fixtures live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """``../shared`` beside the repo, or ``$MCP_KSCAN_SHARED_DIR``."""
    env = os.environ.get("MCP_KSCAN_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if not (path / "fixtures").is_dir():
        pytest.skip(f"shared fixtures not found at {path} (set MCP_KSCAN_SHARED_DIR); they are never copied into the repo")
    return path


@pytest.fixture
def examples_2022(shared: Path) -> Path:
    path = shared / "fixtures" / "manifests" / "kubescape-examples-2022"
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture
def many_findings(shared: Path) -> Path:
    path = shared / "fixtures" / "kubescape" / "defectdojo" / "many_findings.json"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path
