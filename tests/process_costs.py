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

And one cost of a fresh checkout (CI's every run): no test module had its assertion-rewritten
bytecode yet, so each of the eight workers rewrote and compiled all of them, side by side, the
same work eight times (collection 3.7-3.9 CPU s a worker instead of 2.1-2.9). The controller
writes them once before it starts the workers (``pytest_sessionstart``: xdist starts them in its
own, later, one), with pytest's own rewriter, so a worker's import finds them as if it had
written them itself.
"""

from __future__ import annotations

import atexit
import compileall
import fnmatch
import gc
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
from _pytest.assertion import assertstate_key
from _pytest.assertion.rewrite import (
    PYC_TAIL,
    AssertionRewritingHook,
    _read_pyc,
    _rewrite_test,
    _write_pyc,
    get_cache_dir,
    try_makedirs,
)

TESTS = Path(__file__).resolve().parent

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


def pytest_sessionstart(session: pytest.Session) -> None:
    """The test modules' rewritten bytecode, and the helper modules' plain bytecode, written once.

    Rewriting all of them costs ~2.5 CPU s; a forked child does every other one, so the two
    cores share it before the workers start (the parent has no threads yet: xdist starts them later).
    """
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None) \
            or config.getoption("assertmode") != "rewrite":
        return  # a worker, or a run in one process: it writes them as it imports them
    patterns = [*config.getini("python_files"), "conftest.py"]
    todo = []
    for path in sorted(TESTS.rglob("*.py")):
        if not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns):
            compileall.compile_file(str(path), quiet=2)  # servers.py, fakes/kube_api.py, ...: plain imports
        elif _read_pyc(path, _rewritten_pyc(path)) is None:
            todo.append(path)
    # The plugins pytest rewrites too (xdist, anyio's, hypothesis'): every process imports them
    # before conftest.py lets it write bytecode, so none ever kept them (0.15 CPU s a process).
    for module in list(sys.modules.values()):
        spec = getattr(module, "__spec__", None)
        if isinstance(getattr(spec, "loader", None), AssertionRewritingHook) and module.__file__:
            path = Path(module.__file__)
            if not path.is_relative_to(TESTS) and _read_pyc(path, _rewritten_pyc(path)) is None:
                todo.append(path)
    if len(todo) < 8:
        _rewrite(config, todo)
        return
    child = os.fork()
    if child == 0:
        try:
            _rewrite(config, todo[1::2])
        finally:
            os._exit(0)
    _rewrite(config, todo[0::2])
    os.waitpid(child, 0)


def _rewritten_pyc(path: Path) -> Path:
    return get_cache_dir(path) / (path.name[:-3] + PYC_TAIL)


def _rewrite(config: pytest.Config, paths: list[Path]) -> None:
    """As the rewriting import hook does it; what it cannot do here is left to the workers' imports,
    which report it the usual way (a syntax error is that module's collection error)."""
    state = config.stash[assertstate_key]
    for path in paths:
        try:
            source_hash, code = _rewrite_test(path, config)
        except (SyntaxError, ValueError):
            continue
        pyc = _rewritten_pyc(path)
        if try_makedirs(pyc.parent):  # a read-only checkout: the workers rewrite in memory as before
            _write_pyc(state, code, source_hash, pyc)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A worker whose tests all passed removes its own temporary tree (its share of the run's).

    Under ``tmp_path_retention_policy = "failed"`` pytest removes a passing test's ``tmp_path`` as
    the test ends, but what module and session fixtures made with ``tmp_path_factory`` (servers'
    data, scanned corpora) waited for the controller, which removed it all alone, at the very end:
    1.9 s after 232 tests, 17.7 s after a whole -n 4 run on this disk. Each worker now removes its
    own as it finishes, while the others may still be testing. This runs after the session's
    fixtures are torn down (trylast) and before the worker reports that it has finished."""
    config = session.config
    basetemp = getattr(config.option, "basetemp", None)
    if (hasattr(config, "workerinput") and basetemp and exitstatus == 0
            and config.getini("tmp_path_retention_policy") == "failed"):
        shutil.rmtree(basetemp, ignore_errors=True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``pytest -m solo`` (CI's second command) imports only the test modules that name the mark.

    It selects one test or a few, but collecting the whole suite to find them cost ~3.3 CPU s and
    as many seconds of the run's wall time, which counts in the suite's time. A ``solo`` test's
    module says ``solo`` (``@pytest.mark.solo`` or a ``pytestmark``); any other expression
    (``-m 'solo and ...'``, ``-m 'not solo'``) collects everything as usual."""
    if config.getoption("markexpr", "") != "solo" or collection_path.suffix != ".py" \
            or not collection_path.name.startswith("test_"):
        return None
    return None if b"solo" in collection_path.read_bytes() else True
