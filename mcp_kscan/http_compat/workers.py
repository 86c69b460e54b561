"""``mcp-kscan serve --transport http --workers N``: N server processes on one port and one PostgreSQL.

One event loop serves a few thousand light calls a second; past that, more processes. The parent
binds the port once and starts N workers (``multiprocessing``'s spawn: a fresh interpreter each,
nothing inherited from the parent's threads) that accept on that socket. Each worker is a whole
server: it re-reads the settings from the same command line and environment, runs the app's
lifespan (its own ``ScanManager``), and claims scans from the queue in the database
(``runner.queue``). Nothing is shared in memory, so any worker answers any call: scans, results
and cancels go through PostgreSQL, and MCP runs stateless (``app.build_app``).

The parent only supervises:

- SIGTERM or SIGINT: passed to every worker, which drains like a single server (running scans
  get MCP_KSCAN_SHUTDOWN_GRACE, then are cancelled and recorded); the parent exits 0 once all
  have, or kills what is left after the grace and the kill grace.
- a worker that dies is started again; one that dies within ``STARTUP_S`` of its start (the
  database unreachable, the port's app failing to build) stops the server with exit status 1,
  since a new one would fail the same way. The dead worker's scans are settled ``interrupted`` by
  the others' lease sweep (its pid is gone), and its scanners died with it (``runner.deathsig``).
- a worker dies with the parent (a parent-death signal, SIGTERM, on Linux), so a ``kill -9`` of
  the parent leaves no server behind.

Why not uvicorn's ``--workers``: it ships the app to each worker by pickling its configuration,
which needs an import string and cannot carry this server's connection-limits protocol class;
this supervisor is the same pattern in a page, with the worker built here.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from types import FrameType

from mcp_kscan.runner.deathsig import die_with_parent
from mcp_kscan.settings import Settings

log = logging.getLogger(__name__)

STARTUP_S = 10.0
"""A worker that exits sooner than this after its start failed to start: no restart."""
_POLL_S = 0.2


def worker_main(argv: Sequence[str], sock: socket.socket, parent_pid: int) -> None:
    """One worker: the same command line, settings and logging as the parent, serving on ``sock``."""
    die_with_parent(signal.SIGTERM, parent_pid)
    from mcp_kscan.cli import build_parser, settings_from_args
    from mcp_kscan.http_compat.serve import serve_on
    from mcp_kscan.logs import setup_logging

    args = build_parser().parse_args(list(argv))
    settings = settings_from_args(args)
    setup_logging(settings.log_level, args.log_format)
    serve_on(settings, host=args.host, allowed_hosts=args.allowed_host, sock=sock)


def supervise(argv: Sequence[str], settings: Settings, host: str, port: int, workers: int) -> int:
    """Bind ``host:port``, run ``workers`` processes on it until SIGTERM/SIGINT; the exit status."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    spawn = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start() -> tuple[BaseProcess, float]:
        process = spawn.Process(target=worker_main, args=(list(argv), sock, os.getpid()), daemon=False)
        process.start()
        log.info("worker %s started", process.pid)
        return process, time.monotonic()

    running = [start() for _ in range(workers)]
    status = 0
    while not stopping:
        time.sleep(_POLL_S)
        for i, (process, started) in enumerate(running):
            if process.is_alive():
                continue
            if time.monotonic() - started < STARTUP_S:
                log.error("worker %s exited with status %s while starting; stopping", process.pid, process.exitcode)
                status = 1
                stopping.append(signal.SIGTERM)
                break
            log.error("worker %s exited with status %s; starting another", process.pid, process.exitcode)
            running[i] = start()
    log.info("stopping %d workers", len(running))
    for process, _ in running:
        if process.is_alive() and process.pid is not None:
            process.terminate()  # SIGTERM: each drains its scans like a single server
    deadline = time.monotonic() + settings.shutdown_grace_s + settings.kill_grace_s + 35
    for process, _ in running:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error("worker %s did not stop in time; killing it", process.pid)
            process.kill()
            process.join(5)
    sock.close()
    sys.stdout.flush()
    return status
