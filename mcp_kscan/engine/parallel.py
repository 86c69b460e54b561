"""The fast path: scan many files on every CPU and write the report as JSON text.

YAML parsing is most of a scan's time and holds the GIL, so big scans fork one worker per CPU.
Each worker owns a contiguous slice of the (sorted) file list and keeps its objects to itself:

1. it parses its files and sends back only the objects other controls look up (service
   accounts, network policies, roles: a few per cent of a corpus);
2. it gets the merged lookup set, evaluates every control on its own objects, and sends back
   its tallies, then its slice of ``resources[]`` and ``results[]`` as ready-made JSON bytes,
   which wait in its pipe until the parent writes them out.

The parent only merges counters and copies bytes to the output, so no object crosses a process
boundary twice and the report order is the file order, as in a one-process scan.
"""

from __future__ import annotations

import gc
import importlib
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mcp_kscan.engine import report_file
from mcp_kscan.engine.context import ScanContext, context_object
from mcp_kscan.engine.controls import Control
from mcp_kscan.engine.exceptions import Exceptions
from mcp_kscan.engine.frameworks import Selection, resolve
from mcp_kscan.engine.inputs import ControlInputs
from mcp_kscan.engine.loader import (
    FileToRead,
    LoadError,
    expand_units,
    files_warning,
    load_file,
    plan_files,
)
from mcp_kscan.engine.model import Finding, Resource, make_resource
from mcp_kscan.engine.process_exit import leave
from mcp_kscan.engine.progress import (
    CHECK_BATCH,
    Counter,
    LocalCounter,
    ProgressFn,
    SharedCounter,
)
from mcp_kscan.engine.reading import ReadLimits
from mcp_kscan.engine.render import Renderers
from mcp_kscan.engine.report import (
    Accumulator,
    ResourceVerdicts,
    ScanTarget,
    build_metadata,
    build_summary,
    control_entry,
    entry_key,
    resource_entry,
)
from mcp_kscan.engine.scan import apply_exceptions, evaluate_one, target_for

MIN_FILES_PER_WORKER = 200
"""Below this many files per CPU, forking costs more than it saves."""


class Shard:
    """One worker's slice of a scan (also used in-process for small scans)."""

    def __init__(self, files: Sequence[FileToRead], selection: Selection, omit_raw: bool,
                 limits: ReadLimits | None = None, progress: Counter | None = None, digest: bool = False) -> None:
        self.files = files
        self.digest = digest
        """Also compute the store's rows of the slice's findings (``engine.digest``) and the digest
        of every file read (``fixes.hashes``): the server's case."""
        self.file_hashes: dict[str, str] = {}
        self.selection = selection
        self.omit_raw = omit_raw
        self.limits = limits or ReadLimits()
        self.progress = progress
        self.resources: list[Resource] = []
        self.errors: list[LoadError] = []
        self.without_objects: list[str] = []
        """Files read without a problem that hold no Kubernetes object (values.yaml, configs)."""
        self._encoded: tuple[list[tuple[Resource, dict[str, Any]]], Fragment, set[int], list[LoadError]] | None = None

    def load(self) -> list[tuple[dict[str, Any], str, str]]:
        """Parse the files; return the objects the context needs (obj, relative path, root)."""
        for job in self.files:
            before = len(self.resources)
            try:
                problems = len(self.errors)
                docs = load_file(job, self.errors, self.limits, self._hash if self.digest else None)
                if not docs and len(self.errors) == problems:
                    self.without_objects.append(job.relative_path)
                for doc in docs:
                    self.resources.append(make_resource(doc.obj, doc.relative_path, doc.root, document=doc.index,
                                                        origin=doc.origin))
            except Exception as exc:  # noqa: BLE001 - whatever one file does, it costs only that file
                self.errors.append(LoadError(job.relative_path, f"cannot read file ({exc.__class__.__name__}); skipped"))
            if self.progress is not None:
                self.progress.read(len(self.resources) - before)
        return [(o, r.relative_path, r.root) for r in self.resources if (o := context_object(r)) is not None]

    def _hash(self, path: str, data: bytes) -> None:
        """The digest of what the scan read, as ``fixes.hashes.file_hashes`` keys it."""
        from mcp_kscan.fixes.hashes import digest

        self.file_hashes[os.path.abspath(path)] = digest(data)

    def encode_resources(self) -> tuple[list[tuple[Resource, dict[str, Any]]], Fragment, set[int], list[LoadError]]:
        """The slice's ``resources[]`` entries and their JSON (no brackets), the objects that could
        not be written (by id) and the warnings about them; worked out once.

        They need no context: a worker encodes them while the others still read their files,
        before the context exchange waits for every worker (``_worker``)."""
        if self._encoded is None:
            before = len(self.errors)
            dropped: set[int] = set()
            items = [(res, resource_entry(res, self.omit_raw)) for res in self.resources]
            encoded = self._encode_all(items, dropped, lambda entry: entry)
            self._encoded = (items, encoded, dropped, self.errors[before:])
            del self.errors[before:]
        return self._encoded

    def finish(self, context_objects: Sequence[tuple[dict[str, Any], str, str]]) -> dict[str, Any]:
        """Evaluate with the whole scan's context; return JSON fragments and tallies.

        Every object is evaluated and encoded on its own terms: a control that raises, or an
        object that strict JSON cannot hold, costs that object (a warning naming its file and
        document), never the slice.
        """
        ctx = ScanContext() if self.selection.inputs is None else ScanContext(inputs=self.selection.inputs)
        for o, rel, root in context_objects:
            try:
                ctx.add(make_resource(o, rel, root))
            except Exception:  # noqa: BLE001,S112 - its own slice reports the object; the index goes without it
                continue
        by_kind = _controls_by_kind(self.selection)
        resource_items, resources_json, dropped, encoding_errors = self.encode_resources()
        evaluated = self._evaluate(ctx, by_kind)
        self.errors.extend(encoding_errors)  # after the evaluation's, as when encoded after it
        written = [entry for res, entry in resource_items if id(res) not in dropped] if self.digest else []
        # A passed control's entry is the same for every resource: encoded once per control.
        passed_entries = {c.id: control_entry(c, None, "") for c in self.selection.controls}
        passed = {cid: orjson.Fragment(orjson.dumps(entry)) for cid, entry in passed_entries.items()}
        decoded = {id(passed[cid]): entry for cid, entry in passed_entries.items()}

        def without_fragments(item: dict[str, Any]) -> dict[str, Any]:
            """A ``results[]`` item with the passed entries as dicts again (for the standard library)."""
            return {**item, "controls": [decoded.get(id(c), c) for c in item["controls"]]}

        def item(res: Resource, vs: ResourceVerdicts) -> dict[str, Any]:
            return {"resourceID": res.resource_id,
                    "controls": [passed[c.id] if f is None else control_entry(c, f, res.resource_id) for c, f in vs]}

        results_json = self._results_json(evaluated, dropped, {cid: b"," + orjson.dumps(entry)
                                                               for cid, entry in passed_entries.items()},
                                           lambda res, vs: self._encode_one(res, item(res, vs), dropped,
                                                                            without_fragments))
        acc = Accumulator(self.selection)
        for res, vs in evaluated:
            if id(res) not in dropped:
                acc.add(res, vs)
        findings: Callable[[], Any] | None = None
        if self.digest:
            from mcp_kscan.engine.digest import controls_info, slice_items

            def findings() -> Any:
                # From the verdicts, as the results were written: no entry built or read per finding.
                return slice_items(written, [(res.resource_id, vs) for res, vs in evaluated
                                             if vs and id(res) not in dropped],
                                   controls_info(self.selection.controls), passed_entries)
        return {
            # Encoded here, in the worker: the parent only writes these bytes out, never copies them.
            "resources": resources_json,
            "results": results_json,
            # Worked out when asked (``ShardOutputs.digest_rows``): after the report, which the
            # server stores meanwhile; a worker works them out after its copy.
            "findings": findings,
            "file_hashes": self.file_hashes,
            "tallies": acc.state(),
            "errors": [str(e) for e in self.errors],
            "without_objects": self.without_objects,
        }

    def _evaluate(self, ctx: ScanContext, by_kind: dict[str, list[Any]]) -> list[tuple[Resource, Any]]:
        """Every resource's verdicts, counted as checked in batches (``progress.CHECK_BATCH``)."""
        exceptions, errors, progress = self.selection.exceptions, self.errors, self.progress
        if progress is None:
            return [(res, apply_exceptions(res, evaluate_one(res, ctx, by_kind, errors), exceptions))
                    for res in self.resources]
        evaluated = []
        resources = self.resources
        for start in range(0, len(resources), CHECK_BATCH):
            batch = resources[start:start + CHECK_BATCH]
            evaluated += [(res, apply_exceptions(res, evaluate_one(res, ctx, by_kind, errors), exceptions))
                          for res in batch]
            progress.checked(len(batch))
        return evaluated

    def _encode_all(self, items: list[tuple[Resource, dict[str, Any]]], dropped: set[int],
                    plain: Callable[[dict[str, Any]], dict[str, Any]]) -> Fragment:
        """The items as a JSON array's elements (no brackets): one orjson call for the slice.

        When that call refuses (an integer past 64 bits, a non-string key, nesting past 255
        levels, a lone surrogate), each item is encoded alone, by orjson or else by the standard
        library (``plain(item)`` without orjson's fragments; ``allow_nan=False``), and an item
        neither can write is dropped with a warning (its object, by id, joins ``dropped``).
        """
        if not items:
            return []
        try:
            # A view without the brackets: slicing the bytes would copy the bulk of the report.
            return [memoryview(orjson.dumps([item for _, item in items]))[1:-1]]
        except (TypeError, ValueError):
            pass
        kept = [encoded for res, item in items if (encoded := self._encode_one(res, item, dropped, plain)) is not None]
        return [b",".join(kept)] if kept else []

    def _encode_one(self, res: Resource, item: dict[str, Any], dropped: set[int],
                    plain: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes | None:
        """One item by orjson, else by the standard library; None (and a warning, and its object
        in ``dropped``) when neither can write it."""
        try:
            return orjson.dumps(item)
        except (TypeError, ValueError):
            pass
        try:
            return _strict_dumps(plain(item)).encode("utf-8")
        except (ValueError, TypeError, RecursionError) as exc:
            self.errors.append(_unencodable(res, exc))
            dropped.add(id(res))
            return None

    def _results_json(self, evaluated: list[tuple[Resource, ResourceVerdicts]], dropped: set[int],
                      passed: dict[str, bytes],
                      encode_one: Callable[[Resource, ResourceVerdicts], bytes | None]) -> Fragment:
        """The ``results[]`` items as a JSON array's elements, put together from encoded pieces.

        What ``_encode_all`` would write, byte for byte, without building and encoding an entry
        per verdict: a passed control's entry (``passed``: after a comma) is the same bytes for
        every resource, and a failed
        one differs from others with the same ``report.entry_key`` only in its resource id, so
        it is encoded once per key around a placeholder (``_FailedEntries``) and the id's JSON
        is put in its place. An item with a piece orjson refuses (a lone surrogate) goes through
        ``encode_one``, the per-item path, which writes it or drops it with a warning as before.
        The pieces are never joined: they are written as they are (``_write_all``), which spares
        a copy of the slice's results (0.04 s of a 10k scan, and as many megabytes).
        """
        failed = _FailedEntries()
        out: list[bytes | memoryview] = []
        """Every item's pieces, each entry and item after its comma (a first one's is left out
        through a view)."""
        for res, vs in evaluated:
            if not vs or id(res) in dropped:
                continue
            try:
                rid = orjson.dumps(res.resource_id)
                entries: list[bytes | memoryview] = [passed[c.id] if f is None else failed.entry(c, f, rid)
                                                     for c, f in vs]
            except (TypeError, ValueError):
                encoded = encode_one(res, vs)
                if encoded is not None:
                    out += (b",", encoded)
                continue
            entries[0] = memoryview(entries[0])[1:]
            out += (b',{"resourceID":', rid, b',"controls":[')
            out += entries
            out.append(b"]}")
        if out:
            out[0] = memoryview(out[0])[1:]
        return out


_RID_PLACEHOLDER = "\x00rid\x00"
_RID_PLACEHOLDER_JSON = orjson.dumps(_RID_PLACEHOLDER)


class _FailedEntries:
    """A failed control's ``results[]`` entry as bytes around its resource id, once per
    ``report.entry_key`` (one slice holds few distinct ones: 41 in the 10k bench corpus's
    47,000 failed findings)."""

    def __init__(self) -> None:
        self._split: dict[tuple[Any, ...], tuple[bytes, ...] | None] = {}

    def entry(self, c: Control, f: Finding, rid: bytes) -> bytes:
        """A comma, then the entry's JSON with ``rid`` (the id's JSON); raises TypeError or
        ValueError where orjson cannot write the entry."""
        key = entry_key(c, f)
        pieces = self._split.get(key, _UNSPLIT)
        if pieces is _UNSPLIT:
            encoded = b"," + orjson.dumps(control_entry(c, f, _RID_PLACEHOLDER))
            split = tuple(encoded.split(_RID_PLACEHOLDER_JSON))
            # Each path names the resource once; a placeholder found elsewhere (a path or message
            # holding it) means the split cannot be trusted: that key is encoded per resource.
            pieces = self._split[key] = split if len(split) == _path_entries(f) + 1 else None
        if pieces is None:
            return b"," + orjson.dumps(control_entry(c, f, orjson.loads(rid)))
        return rid.join(pieces)  # type: ignore[arg-type]


_UNSPLIT: Any = object()


def _path_entries(f: Finding) -> int:
    """How many ``paths`` entries ``control_entry`` writes for ``f`` (each holds the resource id)."""
    return max(len(f.failed_paths), len(f.fix_paths))


Fragment = report_file.Fragment
"""A slice's ``resources[]`` or ``results[]`` JSON (no brackets), as the pieces written to the
report in this order (``_write_all``, ``report_file.copy_mapped``); empty when the slice has no item."""


def _strict_dumps(value: Any) -> str:
    """The standard library's JSON in orjson's compact form; ``allow_nan=False``: a report is always JSON."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _unencodable(res: Resource, exc: BaseException) -> LoadError:
    return LoadError(res.relative_path or res.resource_id,
                     f"{res.kind} {res.name!r} cannot be written as JSON ({exc.__class__.__name__}); skipped",
                     res.document if res.relative_path else None)


def _controls_by_kind(selection: Selection) -> dict[str, list[Any]]:
    by_kind: dict[str, list[Any]] = {}
    for c in selection.controls:
        for kind in c.kinds:
            by_kind.setdefault(kind, []).append(c)
    return by_kind


def _worker(conn: Any, shard: Shard, index: int, exchange: Sequence[int]) -> None:  # pragma: no cover - forked child
    # No cycle collection in a worker: it lives for one shard, and what a shard builds holds no
    # reference cycles (parsed objects, verdicts, report entries; tests/engine/test_parallel.py
    # checks it on every shared manifest and on hostile input), so every collection would walk
    # millions of objects to free nothing: about a tenth of a worker's CPU time even at
    # ``BATCH_GC_THRESHOLD``. Reference counting still frees everything as usual.
    gc.disable()
    import pickle  # imported by run_shards before the fork

    try:
        # The context objects travel pickled: each worker writes its pickle to its own memory
        # file (``exchange``, created before the fork) and tells the parent its length; once
        # every worker has, the parent sends every length to every worker, which reads the
        # others' pickles there. The parent never holds them, and no pickle crosses a pipe twice.
        # (Without memory files, the parent forwards every pickle through the pipes as it came.)
        own = shard.load()
        piece = pickle.dumps(own, protocol=pickle.HIGHEST_PROTOCOL)
        if exchange:
            _write_file(exchange[index], piece)
            conn.send(("context", len(piece)))
        else:
            conn.send(("context", piece))
        del piece
        shard.encode_resources()  # while the other workers still read
        pieces: list[bytes | int] = conn.recv()
        # In file order: the slices' objects in their workers' order, this worker's own as they are.
        context_objects = [o for i, piece in enumerate(pieces)
                           for o in (own if i == index else pickle.loads(_context_piece(piece, exchange, i)))]
        del pieces
        done = shard.finish(context_objects)
        findings = done.pop("findings")
        fragments = dict(zip(FRAGMENTS, [done[key] for key in FRAGMENTS], strict=True))
        # The tallies go pickled; the fragments (the bulk of the report) wait for the parent's
        # word: written straight to the report's file when their turn comes
        # (``ShardOutputs.write_fragments``), or else through the pipe, which the parent copies
        # to the output (``_copy_fragment``). The digest's findings come after them, when the
        # parent asks (``ShardOutputs.digest_rows``).
        conn.send(("done", {**done, **{key: _size(f) for key, f in fragments.items()}}))
        while fragments:
            order = conn.recv()
            if order[0] == "pipe":
                for fragment in fragments.values():
                    _write_all(conn.write_fd, fragment)
                break
            if order[0] == "map":  # every fragment at its place, beside the other workers
                _, fd, offsets = order
                for key, at in offsets.items():
                    report_file.copy_mapped(fd, at, fragments[key])
                conn.send(("written", None))
                break
            _, key, fd = order
            _write_all(fd, fragments.pop(key))
            conn.send(("written", None))
        del fragments, done
        if findings is not None and conn.recv()[0] == "findings":  # the report is out: the digest's rows now
            behind_the_server()
            conn.send(("findings", findings()))
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent, then exit
        conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
    finally:
        conn.close()


def behind_the_server() -> None:
    """This process at the lowest priority (nice 19) from now on: once a scan's report is out,
    the server stores the result (a tenth of a second, the scan's answer waiting for it) while
    the engine works out its items on the same CPUs; batch work alone (``entry.as_batch_work``)
    still took two thirds of them. Refused (not Linux, a seccomp profile): as it was."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except (OSError, AttributeError):
        pass


FRAGMENTS = ("resources", "results")
"""A shard's two JSON fragments, in the order a worker sends them."""


def _write_file(fd: int, data: bytes) -> None:
    report_file.pwrite_all(fd, data, 0)


def _context_piece(piece: bytes | int, exchange: Sequence[int], index: int) -> bytes:
    """Worker ``index``'s pickled context objects: as forwarded, or read from its memory file."""
    if isinstance(piece, bytes):
        return piece
    chunks, at = [], 0
    while at < piece:
        chunk = os.pread(exchange[index], piece - at, at)
        if not chunk:
            raise RuntimeError("scan worker failed: its context objects were cut short")
        chunks.append(chunk)
        at += len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _exchange_files(workers: int) -> list[int]:
    """One anonymous memory file per worker for its context objects (``_worker``); none where
    the system has no ``memfd_create`` (the pickles are then forwarded through the pipes)."""
    if not hasattr(os, "memfd_create"):
        return []
    files: list[int] = []
    try:
        for i in range(workers):
            files.append(os.memfd_create(f"mcp-kscan-context-{i}", os.MFD_CLOEXEC))
    except OSError:  # refused (a sandbox's seccomp filter, no memory left): the pipes still work
        for fd in files:
            os.close(fd)
        return []
    return files

def _size(fragment: Fragment) -> int:
    return sum(map(len, fragment))  # a view's len is its bytes: each one is of bytes, one-dimensional


_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") and "SC_IOV_MAX" in os.sysconf_names else 16


def _write_all(fd: int, fragment: Fragment) -> None:
    """Every piece of ``fragment`` to ``fd``, in order: ``writev`` takes up to ``_IOV_MAX`` pieces a
    call, so a slice's results (a quarter of a million pieces for 5,000 objects) are copied once,
    by the kernel, and never joined into one bytes object first."""
    for start in range(0, len(fragment), _IOV_MAX):
        batch = fragment[start:start + _IOV_MAX]
        left = _size(batch)
        while left:
            written = os.writev(fd, batch)
            left -= written
            if not left:
                break
            # A pipe may take less than the whole batch: skip what went, cut the piece it stopped
            # in (a loop over the pieces only then: it cost more than the writing itself).
            for i, piece in enumerate(batch):
                if written < len(piece):
                    batch = [memoryview(piece)[written:], *batch[i + 1:]]
                    break
                written -= len(piece)


def _split(files: Sequence[FileToRead], parts: int) -> list[Sequence[FileToRead]]:
    """Contiguous slices of about equal bytes (big files make a slice heavy)."""
    sizes = []
    for f in files:
        try:
            sizes.append(os.path.getsize(f.path) if f.path else len(f.data or b""))
        except OSError:
            sizes.append(0)
    total = sum(sizes) or 1
    out: list[Sequence[FileToRead]] = []
    start = acc = 0
    for i, size in enumerate(sizes):
        acc += size
        if len(out) < parts - 1 and acc >= total * (len(out) + 1) / parts:
            out.append(files[start:i + 1])
            start = i + 1
    out.append(files[start:])
    return [s for s in out if s]


@dataclass
class ShardOutputs:
    """What the shards of a scan produced, while their workers (if any) still hold the fragments.

    ``outputs[i]`` is shard i's ``Shard.finish`` answer; in a worker's answer each fragment is
    its length in bytes, and the bytes wait in that worker's pipe.
    """

    outputs: list[dict[str, Any]]
    pipes: list[Any] = field(default_factory=list)
    """The workers' connections, in shard order (none for an in-process scan)."""
    _direct: int | None = None
    """The output's file descriptor once the workers write their fragments to it themselves."""
    _decided: bool = False
    """Whether the workers were told how to send their fragments (at the first fragment)."""

    def write_fragments(self, out: BinaryIO, key: str) -> None:
        """Each shard's ``key`` fragment to ``out``, comma-separated, in shard order.

        Where ``out`` is a plain file object that the workers share (opened before they forked:
        a report file, standard output), each worker writes its fragment to it itself, in turn
        (``_shared_fd``): the bulk of the report is copied once, not through a pipe and the
        parent. Otherwise a worker's fragment is copied from its pipe in pieces through one
        buffer: the parent never holds a fragment whole. An in-process shard's fragment goes the
        same ways: its pieces to the file itself, or else joined into ``out``.
        """
        if self.pipes and not self._decided:
            self._decided = True
            self._direct = _shared_fd(out)
            if self._direct is None:
                for conn in self.pipes:
                    conn.send(("pipe",))  # the workers write all their fragments to their pipes
        first = True
        buffer = memoryview(bytearray(_COPY_CHUNK)) if self.pipes and self._direct is None else None
        for i, shard_out in enumerate(self.outputs):
            fragment: Fragment | int = shard_out.pop(key)
            if fragment and not first:
                out.write(b",")
            if fragment:
                first = False
            if self._direct is not None:
                out.flush()  # what the parent wrote goes first
                self.pipes[i].send(("fd", key, self._direct))
                _answer(self.pipes[i])
                _resync(out, self._direct)
            elif not fragment:
                continue
            elif isinstance(fragment, int):
                assert buffer is not None
                _copy_fragment(self.pipes[i].read_fd, fragment, out, buffer)
            elif (fd := _shared_fd(out)) is not None:
                out.flush()
                _write_all(fd, fragment)
                _resync(out, fd)
            else:
                out.write(b"".join(fragment))
            del fragment

    def write_report(self, out: BinaryIO, layout: Sequence[bytes | str],
                     meanwhile: Callable[[], None] | None = None) -> None:
        """The report to ``out``: ``layout``'s bytes as they are and, for each of its keys, every
        shard's fragment of that key (``write_fragments``); ``meanwhile`` is called once, while
        the workers copy where they can (below), else after the report.

        To a regular file open for reading and writing (``report_file.mappable_fd``), written by
        forked workers, every piece's place is worked out first, and the workers copy their
        fragments into their places at the same time (``report_file``: one after the other,
        ext4 let the report's 85 MB take a fifth of a 10,000-resource scan).
        """
        if self.pipes and not self._decided and (fd := _shared_fd(out)) is not None and report_file.mappable_fd(fd):
            out.flush()
            end = self._write_mapped(fd, os.lseek(fd, 0, os.SEEK_CUR), layout, meanwhile)
            if end is not None:
                out.seek(end)  # the output's position is the report's end, as if written through it
                return
        for part in layout:
            if isinstance(part, str):
                self.write_fragments(out, part)
            else:
                out.write(part)
        if meanwhile is not None:
            meanwhile()

    def _write_mapped(self, fd: int, start: int, layout: Sequence[bytes | str],
                      meanwhile: Callable[[], None] | None = None) -> int | None:
        """``write_report`` through the workers' mappings, from offset ``start``; returns where the
        report ends, or None, with nothing written nor called, where the file cannot be mapped
        (the caller writes it in turn). ``meanwhile`` runs while the workers copy: the parent
        only waits for them there."""
        own: list[tuple[int, bytes]] = []  # the parent's pieces: (offset, bytes)
        offsets: list[dict[str, int]] = [{} for _ in self.pipes]
        pos = start
        for part in layout:
            if not isinstance(part, str):
                own.append((pos, part))
                pos += len(part)
                continue
            first = True
            for i, shard_out in enumerate(self.outputs):
                size: int = shard_out[part]
                if not size:
                    continue
                if not first:
                    own.append((pos, b","))
                    pos += 1
                first = False
                offsets[i][part] = pos
                pos += size
        if not report_file.reserve(fd, start, pos - start):
            return None
        self._decided = True
        for conn, places in zip(self.pipes, offsets, strict=True):
            conn.send(("map", fd, places))  # all at once: they copy side by side
        for at, data in own:
            report_file.pwrite_all(fd, data, at)
        if meanwhile is not None:
            meanwhile()
        for conn in self.pipes:
            _answer(conn)
        for shard_out in self.outputs:
            for part in layout:
                if isinstance(part, str):
                    shard_out.pop(part, None)
        return pos

    def digest_rows(self) -> list[Any]:
        """Each shard's digest (``engine.digest.SliceDigest``), worked out now (``Shard.finish``):
        the workers work theirs out side by side, once the report is written."""
        if self.pipes:
            for conn in self.pipes:
                conn.send(("findings",))
            return [_answer(conn) for conn in self.pipes]
        return [shard_out.pop("findings")() for shard_out in self.outputs]


_COPY_CHUNK = 1 << 20


def _shared_fd(out: BinaryIO) -> int | None:
    """``out``'s file descriptor when the forked workers may write to it themselves: a plain
    buffered file (``open(path, "wb")``, standard output), never a wrapper that counts or
    transforms what it is given, nor an in-memory buffer."""
    if type(out) is not io.BufferedWriter:
        return None
    try:
        return out.fileno()
    except (OSError, ValueError):
        return None


def _resync(out: BinaryIO, fd: int) -> None:
    """After a worker wrote to ``fd``: ``out``'s idea of its position is the file's again (its
    ``tell()`` is what the engine's entry point checks the report cap with)."""
    try:
        out.seek(os.lseek(fd, 0, os.SEEK_CUR))
    except OSError:
        pass  # a pipe or a terminal: no position to keep


def _copy_fragment(fd: int, size: int, out: BinaryIO, buffer: memoryview) -> None:
    """``size`` bytes from the pipe ``fd`` to ``out``."""
    while size:
        got = os.readv(fd, [buffer[:min(size, len(buffer))]])
        if not got:
            raise RuntimeError("scan worker failed: it exited while sending its report")
        out.write(buffer[:got])
        size -= got


@contextmanager
def run_shards(files: Sequence[FileToRead], selection: Selection, omit_raw: bool, workers: int,
               limits: ReadLimits | None = None,
               on_progress: ProgressFn | None = None, digest: bool = False) -> Iterator[ShardOutputs]:
    """Scan ``files`` in ``workers`` forked processes (or in-process when 1); the workers live
    until the block ends, so that their fragments can be written (``ShardOutputs.write_fragments``).

    ``on_progress`` (see ``engine.progress``) is called as files are read and resources checked,
    from whichever process counted them (the workers share one counter), so it must be safe to
    call from a forked child.
    """
    total = len(files)
    if workers <= 1:
        shard = Shard(files, selection, omit_raw, limits,
                      LocalCounter(total, on_progress) if on_progress is not None else None, digest)
        yield ShardOutputs([shard.finish(shard.load())])
        return
    # Imported only here: most scans are small and fork no worker (``default_workers``).
    import pickle  # noqa: F401 - the channels and the workers' context objects (``_worker``)

    shared = SharedCounter(total, on_progress) if on_progress is not None else None
    pipes: list[_Channel] = []
    pids: list[int] = []
    parts = _split(files, workers)
    exchange = _exchange_files(len(parts))
    try:
        for index, part in enumerate(parts):
            shard = Shard(part, selection, omit_raw, limits, shared, digest)
            pids.append(_fork_worker(shard, index, exchange, pipes))
        pieces: list[bytes | int] = [_answer(conn) for conn in pipes]
        for conn in pipes:
            conn.send(pieces)
        del pieces
        outputs = [_answer(conn) for conn in pipes]
        yield ShardOutputs(outputs, pipes)
    except BaseException:
        for pid in pids:  # a timeout, a cancel or a failed worker: the others stop now, not in 5 s
            _kill(pid)
        raise
    finally:
        for conn in pipes:
            conn.close()
        for fd in exchange:
            os.close(fd)
        for pid in pids:
            _reap(pid)


class _Channel:
    """The parent's end of a worker's two pipes, or the worker's: pickled messages, each after its
    length, and nothing read past a message's end, so that raw bytes may follow one (a worker's
    fragments after its "done": written to ``write_fd``, copied from ``read_fd`` by the parent).

    Plain pipes and ``os.fork``, not multiprocessing: importing it (and its connections) cost the
    parent, serially before any worker starts, about as much CPU as planning 2,000 files."""

    __slots__ = ("read_fd", "write_fd")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, message: Any) -> None:
        import pickle

        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        for part in (len(data).to_bytes(8, "big"), data):
            view = memoryview(part)
            while view:
                view = view[os.write(self.write_fd, view):]

    def recv(self) -> Any:
        """The next message; EOFError when the other end is closed before a whole one came."""
        import pickle

        return pickle.loads(_read_exactly(self.read_fd, int.from_bytes(_read_exactly(self.read_fd, 8), "big")))

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass  # closed already


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _fork_worker(shard: Shard, index: int, exchange: Sequence[int], pipes: list[_Channel]) -> int:
    """Fork the worker of ``shard``; its channel joins ``pipes``. The child closes the parent's
    ends of the earlier workers' pipes (so a worker sees the parent go: end of file), runs
    ``_worker``, flushes what a progress callback may have printed (as multiprocessing's children
    did) and leaves with ``os._exit`` (``process_exit.leave``): no exit handlers of the parent's run twice."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        for fd in (down_r, down_w, up_r, up_w):
            os.close(fd)
        raise
    if pid == 0:  # pragma: no cover - the forked child
        status = 1
        try:
            for conn in pipes:
                conn.close()
            os.close(down_w)
            os.close(up_r)
            _worker(_Channel(down_r, up_w), shard, index, exchange)
            status = 0
        finally:
            leave(status)
    os.close(down_r)
    os.close(up_w)
    pipes.append(_Channel(up_r, down_w))
    return pid


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # gone already


def _reap(pid: int, timeout: float = 5.0) -> None:
    """Wait for a worker to exit (it does once its fragments are written), killing it after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() >= deadline:
                _kill(pid)
                os.waitpid(pid, 0)
                return
            time.sleep(0.001)
    except ChildProcessError:
        pass  # reaped elsewhere


def _answer(conn: Any) -> Any:
    """A worker's next answer; a worker that failed, or exited without a word, fails the scan."""
    try:
        kind, payload = conn.recv()
    except EOFError:
        raise RuntimeError("scan worker failed: it exited without an answer") from None
    if kind == "error":
        raise RuntimeError(f"scan worker failed: {payload}")
    return payload


BATCH_GC_THRESHOLD = 10_000
"""Allocations between young-generation collections during a scan (Python's default is 700)."""


@contextmanager
def batch_gc() -> Iterator[None]:
    """Fewer cycle collections while a scan builds its objects.

    A scan allocates millions of dicts and lists and frees almost none until it ends; with
    Python's default threshold the collector runs every 700 allocations and walks them again
    and again: a third of a scan's CPU time, to find no garbage (parsed manifests hold no
    cycles). The collector stays on, so anything cyclic is still reclaimed; the forked workers
    inherit the setting, and the caller's thresholds come back afterwards.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], BATCH_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def default_workers(n_files: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cpus, n_files // MIN_FILES_PER_WORKER))
    return workers if hasattr(os, "fork") else 1  # where multiprocessing offers "fork": not Windows


def scan_paths_json(
    paths: Sequence[str | os.PathLike[str]],
    frameworks: Sequence[str] | str | None = None,
    controls: Sequence[str] | str | None = None,
    *,
    omit_raw_resources: bool = False,
    workers: int | None = None,
    inputs: ControlInputs | None = None,
    limits: ReadLimits | None = None,
    on_progress: ProgressFn | None = None,
    renderers: Renderers | None = None,
    exceptions: Exceptions | None = None,
) -> bytes:
    """``scan_paths`` as UTF-8 JSON bytes, using every CPU for large inputs.

    Same report as ``json.dumps(scan_paths(...))`` (key order aside); raises UnknownSelection
    for unknown framework/control names before reading anything.
    """
    out = io.BytesIO()
    write_scan_json(out, paths, frameworks, controls, omit_raw_resources=omit_raw_resources, workers=workers,
                    inputs=inputs, limits=limits, on_progress=on_progress, renderers=renderers,
                    exceptions=exceptions)
    return out.getvalue()


def write_scan_json(
    out: BinaryIO,
    paths: Sequence[str | os.PathLike[str]],
    frameworks: Sequence[str] | str | None = None,
    controls: Sequence[str] | str | None = None,
    *,
    omit_raw_resources: bool = False,
    workers: int | None = None,
    inputs: ControlInputs | None = None,
    limits: ReadLimits | None = None,
    on_progress: ProgressFn | None = None,
    renderers: Renderers | None = None,
    exceptions: Exceptions | None = None,
    digest_dir: str | os.PathLike[str] | None = None,
    findings: bool = True,
    on_report: Callable[[], None] | None = None,
) -> int:
    """Write the report of ``scan_paths_json`` to ``out`` piece by piece; returns how many
    Kubernetes objects were read (0: the report has no score, see ``report.build_summary``).
    With ``digest_dir``, also write the server's digest there (``engine.digest``): the workers
    compute its rows from their slices once the report is written; ``findings`` False: the summary
    only, no findings nor file digests (a result handed out once, then deleted). ``on_report``
    is called once the report is whole, before the digest's items are written (``_write_report``).

    The workers' fragments are the bulk of a report (every scanned object); they are written as
    they came, so the parent never holds the report twice (a 50k-resource report is ~300 MB).
    Charts and overlays are rendered first, here, before any worker forks.
    """
    selection = replace(resolve(frameworks, controls, inputs), exceptions=exceptions)
    limits = limits.for_scan() if limits is not None else None  # folders' real paths, once per scan
    errors: list[LoadError] = []
    others: list[str] = []
    warnings: list[str] = []
    with batch_gc():
        files = expand_units(plan_files(paths, errors, limits, others), renderers, limits, warnings)
        n_workers = default_workers(len(files)) if workers is None else max(1, workers)
        if digest_dir is not None:
            for module in ("mcp_kscan.engine.digest", "mcp_kscan.fixes.hashes"):
                importlib.import_module(module)  # once, here: the forked workers inherit them
        with run_shards(files, selection, omit_raw_resources, n_workers, limits, on_progress,
                        digest=digest_dir is not None and findings) as shards:
            return _write_report(out, paths, selection, shards, errors, others, warnings, digest_dir, findings,
                                 on_report)


def _write_report(out: BinaryIO, paths: Sequence[str | os.PathLike[str]], selection: Selection,
                  shards: ShardOutputs, errors: list[LoadError], others: list[str], warnings: list[str],
                  digest_dir: str | os.PathLike[str] | None, findings: bool = True,
                  on_report: Callable[[], None] | None = None) -> int:
    """The report around the shards' fragments: head and summary first, metadata last; then the
    digest, when asked (``digest_dir``): its head beside the report, ``on_report`` once the report
    is whole, then its items; returns how many objects were read."""
    outputs = shards.outputs
    acc = Accumulator(selection)
    all_errors = [str(e) for e in errors]
    without_objects: list[str] = []
    for shard_out in outputs:
        acc.merge_state(shard_out["tallies"])
        all_errors.extend(shard_out["errors"])
        without_objects.extend(shard_out["without_objects"])
    if without_objects:
        warnings.append(files_warning("without a Kubernetes object (skipped)", without_objects))
    if others:
        warnings.append(files_warning("not YAML or JSON (not read)", others))
    target: ScanTarget = target_for(paths)
    target.errors = all_errors
    target.warnings = warnings
    report_head = {
        "generationTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "clusterAPIServerInfo": None,
        "clusterCloudProvider": "", "customerGUID": "", "clusterName": "", "reportGUID": str(uuid.uuid4()),
        "jobID": "",
    }

    summary = build_summary(acc)
    metadata = build_metadata(selection, target, nothing_read=acc.objects == 0)
    head = f'{_strict_dumps(report_head)[:-1]},"summaryDetails":{_strict_dumps(summary)},"resources":['

    def write_head() -> None:
        from mcp_kscan.engine.digest import write_file_head

        assert digest_dir is not None
        write_file_head(Path(digest_dir), summary, metadata, nothing_scanned=acc.objects == 0,
                        file_hashes={path: d for o in outputs for path, d in o.pop("file_hashes").items()})

    # The digest's head is written while the workers copy the report into place (the parent
    # would only wait for them); its items after the report is whole and announced
    # (``on_report``): the server stores the result meanwhile, and item reads wait for them.
    shards.write_report(out, [head.encode("utf-8"), "resources", b'],"attributes":null,"results":[', "results",
                              f'],"metadata":{_strict_dumps(metadata)}}}'.encode("utf-8")],
                        meanwhile=write_head if digest_dir is not None else None)
    if digest_dir is not None:
        from mcp_kscan.engine.digest import write_file_index

        if on_report is not None:
            out.flush()  # whole in the file, not only in its buffer
            on_report()
        write_file_index(Path(digest_dir), summary, shards.digest_rows() if findings else [])
    return acc.objects
