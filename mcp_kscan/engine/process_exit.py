"""How the engine's processes end: ``leave``, the one way out of the entry process and its workers."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def leave(code: int) -> NoReturn:
    """End this process with ``code`` at once, without the interpreter's clean-up.

    Why: by then everything the process owes is out (the report has its name, the JSON lines went
    out in single ``write`` calls, a worker's answers are in its pipe), and freeing a big scan's
    objects one by one only delays the server, which waits for the process to end: 0.017 s from
    the entry's ``main`` returning to the end of the process for a 10,000-resource scan, 0.003 s
    with this (docs/benchmarks-engine.md). A forked worker must also not run the exit handlers
    of the process it was forked from. What a progress callback may have printed is flushed first.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001,S110 - closed or gone: nothing to flush
            pass
    os._exit(code)
