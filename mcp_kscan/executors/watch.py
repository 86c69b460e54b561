"""A watch of one kind of object (the Pods or the Jobs of a scan) in a worker thread.

The Kubernetes client's watch is blocking, so it runs in a thread and hands events to the scan's
event loop through an anyio memory stream; nothing polls.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectSendStream

log = logging.getLogger(__name__)

API_TIMEOUT_S = 30.0
"""Per API call: nothing may hang a scan forever."""
WATCH_WINDOW_S = 60
"""Server-side timeoutSeconds of one watch request; the watch then resumes from its resourceVersion."""


class WatchThread:
    """One watch (Pods or Jobs of a scan) in a worker thread, feeding an anyio memory stream.

    Resumes from the last resourceVersion when the server ends a watch window; restarts without
    one (getting ADDED for what exists) after a 410 Gone. ``stop()`` shuts the socket down, so a
    thread blocked reading the stream wakes at once when the scan ends or is cancelled.
    """

    def __init__(self, kind: str, fn: Callable[..., Any], namespace: str, selector: str, rv: str | None,
                 send: MemoryObjectSendStream[tuple[str, dict[str, Any]]]) -> None:
        self.kind, self.fn, self.namespace, self.selector, self.rv, self.send = kind, fn, namespace, selector, rv, send
        self._stop = threading.Event()
        self._resp: Any = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            resp = self._resp
        if resp is not None:
            for closer in ("shutdown", "close"):
                try:
                    getattr(resp, closer)()
                except Exception:
                    pass

    def run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    resp = self.fn(self.namespace, label_selector=self.selector, watch=True,
                                   resource_version=self.rv, timeout_seconds=WATCH_WINDOW_S,
                                   allow_watch_bookmarks=True, _preload_content=False,
                                   _request_timeout=(API_TIMEOUT_S, WATCH_WINDOW_S + 30))
                except Exception as exc:
                    if self._stop.is_set():
                        return
                    failures += 1
                    log.warning("%s watch failed (%d): %s", self.kind, failures, exc)
                    if failures >= 5:
                        return  # the per-node deadlines still end the scan
                    self._stop.wait(min(5.0, 0.5 * failures))
                    continue
                with self._lock:
                    self._resp = resp
                if self._stop.is_set():
                    resp.close()
                    return
                try:
                    for line in resp:
                        if self._stop.is_set():
                            return
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        etype = event.get("type")
                        obj = event.get("object") or {}
                        if etype == "ERROR":
                            if obj.get("code") == 410:
                                self.rv = None  # too old: restart and take the current state
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if rv:
                            self.rv = rv
                        if etype == "BOOKMARK":
                            continue
                        anyio.from_thread.run(self.send.send, (self.kind, event))
                    failures = 0
                except (ValueError, OSError, AttributeError) as exc:
                    if self._stop.is_set():
                        return
                    log.debug("%s watch stream ended: %s", self.kind, exc)
                except Exception as exc:  # urllib3 ProtocolError etc.
                    if self._stop.is_set() or type(exc).__name__ in ("BrokenResourceError", "ClosedResourceError",
                                                                     "RunFinishedError"):
                        return
                    log.debug("%s watch stream ended: %s", self.kind, exc)
                finally:
                    with self._lock:
                        self._resp = None
                    resp.release_conn()
        except Exception:
            # The event loop is gone or the stream closed: nobody is listening any more.
            return
        finally:
            try:
                anyio.from_thread.run_sync(self.send.close)
            except Exception:
                pass
