"""The real stdio server (``python -m mcp_kscan``) driven by the SDK's client, old and new protocols.

An older client by hand (a 2025-06-18 initialize, tools/list, a kube-bench and a Kubescape scan,
every stdout line JSON-RPC, the server ending when stdin closes) is tests/install/test_stdio_logging.py:
its two sessions are that check, so no third server is started for it here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from .scan_loop import agent_loop

pytestmark = pytest.mark.anyio


def _params(fake_bin) -> StdioServerParameters:  # type: ignore[no-untyped-def]
    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_kscan"], env={**fake_bin.env, "PATH": os.environ["PATH"]})


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_agent_loop_over_stdio(fake_bin, shared_dir: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    fake_bin.configure(
        kubescape_report=shared_dir / "fixtures/kubescape/defectdojo/many_findings.json", sleep=1.2
    )
    manifests = str(shared_dir / "fixtures/manifests/kubescape-examples-2022")
    async with Client(_params(fake_bin), mode=mode) as client:  # type: ignore[arg-type]
        outcome = await agent_loop(client, manifests)
    assert outcome["findings"] > 100
