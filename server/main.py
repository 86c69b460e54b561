"""MCP Bundle entry point: ``python3 server/main.py [serve|doctor|…]``.

Puts the bundled dependencies (``server/lib``, filled by ``scripts/build_bundle.sh``) and the
repository root on ``sys.path``, then runs the ``mcp-kscan`` command. Nothing is printed on
stdout: in stdio mode it belongs to the MCP protocol.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "lib")
ROOT = os.path.dirname(HERE)
USER_CONFIG_ENV = ("KUBECONFIG", "MCP_KSCAN_KUBE_BENCH_PATH", "MCP_KSCAN_KUBESCAPE_PATH", "MCP_KSCAN_DATA_DIR")


def _check_lib_python() -> None:
    """server/lib holds compiled wheels (pydantic-core) for one Python version: say so clearly."""
    marker = os.path.join(LIB, ".python-version")
    try:
        with open(marker, encoding="utf-8") as fh:
            built_for = fh.read().strip()
    except OSError:
        return
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if built_for and built_for != running:
        sys.stderr.write(
            f"mcp-kscan: this bundle's libraries were built for Python {built_for}, but it was started "
            f"with Python {running} ({sys.executable}). Rebuild the bundle with that Python "
            f"(PYTHON=python{running} scripts/build_bundle.sh) or install mcp-kscan with pip/uvx instead.\n"
        )
        raise SystemExit(1)


def main() -> int:
    if sys.version_info < (3, 11):
        sys.stderr.write(f"mcp-kscan needs Python 3.11 or newer; {sys.executable} is {sys.version.split()[0]}\n")
        return 1
    # A host that does not substitute a blank optional setting may pass the placeholder itself.
    for name in USER_CONFIG_ENV:
        if os.environ.get(name, "").startswith("${user_config."):
            del os.environ[name]
    if os.path.isdir(LIB):
        _check_lib_python()
        sys.path.insert(0, LIB)
    if ROOT not in sys.path:
        sys.path.insert(1 if os.path.isdir(LIB) else 0, ROOT)
    from mcp_kscan.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
