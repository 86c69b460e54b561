"""Two fixed costs of every pytest process that no test asks for (a plugin: tests/conftest.py loads it).

Under ``pytest -n 8`` there are nine such processes on two cores, and both costs were paid by each.

- The cyclic garbage collector during collection. Importing every test module builds hundreds of
  thousands of long-lived objects (the MCP SDK's and our pydantic models, the engine's tables), and
  the collector walked them again and again as they were made: 0.4-0.7 of a worker's 3.5-4.5 CPU s
  of collection. It is off until the tests start; what exists then is frozen (``gc.freeze``), so
  the collections during the tests no longer walk the imported modules either (0.9 -> 0.3 s of
  collector time over tests/scanners, tests/readers and tests/http_compat).
- An xdist worker's interpreter finalization. At the end of the run the controller asks every
  worker to exit at once, and each then took ~1 CPU s tearing down its modules and heap (on a loaded
  machine, several seconds of wall each) before the run could end. Nothing that finalization does
  is observable: a worker's results, reports and logs are all sent or flushed by then. The exit
  handlers still run (the others first: this one is registered before them, and they run in
  reverse order); only the teardown after them is skipped.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys

import pytest

gc.disable()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    gc.collect()  # the collection's garbage goes now, or freeze() would keep it for the whole run
    gc.freeze()
    gc.enable()


def _exit_without_finalizing() -> None:
    """The last exit handler of a worker: what Python's own shutdown still needs, then ``os._exit``."""
    multiprocessing_util = sys.modules.get("multiprocessing.util")
    if multiprocessing_util is not None:  # registered before this module was imported: run it here
        multiprocessing_util._exit_function()  # type: ignore[attr-defined]
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    atexit.register(_exit_without_finalizing)
