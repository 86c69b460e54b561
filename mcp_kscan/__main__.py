"""``python -m mcp_kscan``: the same as the ``mcp-kscan`` command."""

from mcp_kscan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
