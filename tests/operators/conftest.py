"""Fixtures for the operator readers: the fake API serving the operators' groups, and server settings."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FAKES = Path(__file__).resolve().parents[1] / "fakes"
if str(FAKES) not in sys.path:
    sys.path.insert(0, str(FAKES))

from kube_api import KUBESCAPE_API, TRIVY_API, FakeKubeAPI  # noqa: E402
from operator_objects import (  # noqa: E402
    kubescape_samples,
    namespace_objects,
    sample_replica_sets,
    trivy_samples,
)

import mcp_kscan.settings  # noqa: E402
from conftest import shared_fixture  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def operators_dir() -> Path:
    """../shared/fixtures/operators (skipped when absent)."""
    return shared_fixture("operators")


_SAMPLES: list[list[dict[str, Any]]] = []


@pytest.fixture
def samples(operators_dir: Path) -> list[dict[str, Any]]:
    """Every real Kubescape and Trivy sample object, plus the ReplicaSets the Trivy ones name.

    Parsed once per session (one sample is 515 kB of YAML); the fake API copies what it stores.
    """
    if not _SAMPLES:
        objects = kubescape_samples(operators_dir) + trivy_samples(operators_dir) + sample_replica_sets()
        _SAMPLES.append(namespace_objects(objects) + objects)
    return _SAMPLES[0]


StartAPI = Callable[..., FakeKubeAPI]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartAPI]:
    """``cluster(objects, kubescape=True, trivy=True, forbidden=...)`` starts a fake API and points
    the server's own cluster configuration at it.

    KUBECONFIG names one file from the start (servers built before ``cluster()`` is called read
    their settings once); each start writes that file. Until then it does not exist: no cluster.
    """
    started: list[FakeKubeAPI] = []
    data = tmp_path / "data"
    data.mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setenv("MCP_KSCAN_DATA_DIR", str(data))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("MCP_KSCAN_KUBE_CONTEXT", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    mcp_kscan.settings.configure(None)

    def start(objects: list[dict[str, Any]] | None = None, *, kubescape: bool = True, trivy: bool = True,
              forbidden: set[tuple[str, str]] | None = None) -> FakeKubeAPI:
        groups = {**(KUBESCAPE_API if kubescape else {}), **(TRIVY_API if trivy else {})}
        api = FakeKubeAPI(objects=list(objects or []), api_groups=groups, forbidden=set(forbidden or ())).start()
        started.append(api)
        api.write_kubeconfig(kubeconfig)
        return api

    try:
        yield start
    finally:
        for api in started:
            api.stop()
        mcp_kscan.settings.configure(None)
