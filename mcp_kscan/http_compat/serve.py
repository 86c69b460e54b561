"""Run the HTTP app with uvicorn (``mcp-kscan serve --transport http``)."""

from __future__ import annotations

import uvicorn

from mcp_kscan.http_compat.app import build_app
from mcp_kscan.settings import Settings


def run_http(settings: Settings, host: str, port: int, allowed_hosts: list[str]) -> None:
    app = build_app(settings, host=host, allowed_hosts=allowed_hosts)
    # log_config=None keeps our stderr handler (with secret scrubbing) in charge of uvicorn's logs.
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5)
