"""A long-running server's heap: what start-up built is left out of the collector's full passes.

The server imports its whole stack at start (pydantic and its models, starlette, the MCP SDK, the
readers): about 100,000 tracked objects that live as long as the process. Python's collector
walks every one of them on each full (generation 2) pass, and a full pass comes whenever the
objects that survived the younger generations reach a quarter of those it last kept: in a fresh
server, a 10,000-resource scan's first answer paid one (0.07-0.19 s of its request, measured
with a ``gc.callbacks`` timer at 10:08 UTC on 2026-12-02, 104,000 objects walked, none freed).
``gc.freeze`` moves them into a permanent generation that passes skip; everything made
afterwards is collected as before.

Only the serving entry points call this (``mcp-kscan serve``): a test process builds many apps
in turn, and what it froze would never be freed.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect start-up's garbage (frozen, it would stay forever), then freeze what is left."""
    gc.collect()
    gc.freeze()
