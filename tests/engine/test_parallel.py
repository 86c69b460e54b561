"""The parallel scan's process plumbing: workers without cycle collection, fragments through pipes."""

from __future__ import annotations

import gc
import io
import json
import os
import select
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_kscan.engine import parallel, report_file
from mcp_kscan.engine.frameworks import resolve
from mcp_kscan.engine.loader import plan_files

from .conftest import shared_dir

HOSTILE = {
    "anchors.yaml": "a: &x {b: 1}\nc: *x\nkind: Pod\napiVersion: v1\nmetadata: {name: p}\n",
    "merge.yaml": "base: &b {x: 1}\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: m}\ndata:\n  <<: *b\n",
    "broken.yaml": "kind: Pod\n  bad: [\n",
    "bomb.yaml": "\n".join([
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")),
        "kind: ConfigMap", "apiVersion: v1", "metadata: {name: bomb}",
    ]) + "\n",
    "deep.yaml": "[" * 100_000 + "]" * 100_000 + "\n",
    "shape.yaml": "kind: Deployment\napiVersion: apps/v1\nmetadata: {name: d}\nspec: {template: {spec: {containers: 5}}}\n",
    "huge-int.yaml": "kind: ConfigMap\napiVersion: v1\nmetadata: {name: big}\ndata: {n: 1180591620717411303424}\n",
    "tabs.yaml": "kind: Pod\napiVersion: v1\nmetadata:\n\tname: t\n",
    "two.yaml": "kind: Pod\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Pod\napiVersion: v1\nmetadata: {name: b}\n",
}


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    for name, text in HOSTILE.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    return tmp_path


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The collector off, as in a worker (the shard's child inherits it); whatever was garbage before is gone first."""
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _cyclic_garbage_of_a_shard(paths: list[Path]) -> int:
    """Objects that only a cycle collection would free after one shard's whole work.

    The shard runs in a forked child, as in a real scan, after a collection there: the count is
    what the shard itself leaves, or what it lets go of. (It found a module-wide cache of control
    plans that kept an earlier test's objects and cleared itself during a later scan.)
    """
    files = plan_files(paths, [], None, [])
    assert files
    frameworks = resolve(None, None)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer on the pipe, then leave without pytest's exit handlers
        status = 1
        try:
            os.close(read_end)
            gc.disable()
            gc.collect()
            shard = parallel.Shard(files, frameworks, False)
            done = shard.finish(shard.load())
            answer = "no resources and no errors" if not (done["resources"] or done["errors"]) else ""
            del shard, done
            os.write(write_end, (answer or str(gc.collect())).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as answer_pipe:
            ready, _, _ = select.select([answer_pipe], [], [], 300)
            answer = answer_pipe.read().decode() if ready else "no answer in 300 s"
    finally:
        if not ready:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    assert answer.isdigit() and status == 0, (answer, status)
    return int(answer)


def test_a_shard_on_hostile_input_leaves_no_reference_cycles(hostile: Path, collector_off: None) -> None:
    """Why a worker may run without the cycle collector: nothing it builds, fails on or falls
    back for (PyYAML's full path, alias bombs, 100,000 levels of nesting, unencodable objects)
    needs one."""
    assert _cyclic_garbage_of_a_shard([hostile]) == 0


def test_a_shard_on_every_shared_manifest_leaves_no_reference_cycles(collector_off: None) -> None:
    root = shared_dir()
    if not (root / "fixtures").is_dir():
        pytest.skip(f"shared fixtures not found at {root}; they are never copied into the repo")
    assert _cyclic_garbage_of_a_shard([root]) == 0


def _many_files(root: Path, n: int = 40) -> Path:
    for i in range(n):
        (root / f"pod-{i:03}.yaml").write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: pod-{i}, namespace: ns}}\n"
            f"spec:\n  containers:\n  - name: c\n    image: nginx:1.{i}\n    securityContext: {{privileged: yes}}\n")
    return root


def test_workers_stream_the_same_report_as_one_process(tmp_path: Path) -> None:
    root = _many_files(tmp_path)
    one, two = (json.loads(parallel.scan_paths_json([root], workers=w)) for w in (1, 2))
    for key in ("summaryDetails", "resources", "results"):
        assert one[key] == two[key], key
    assert len(two["resources"]) == 40
    assert [r["source"]["relativePath"] for r in two["resources"]] == sorted(f"pod-{i:03}.yaml" for i in range(40))


def test_scores_do_not_depend_on_how_many_workers_scan(tmp_path: Path) -> None:
    """A replica weighs 1.1: summed as floats, a control's weights came out in other last digits
    when the resources were split between workers (C-0016 29.05788876276959 with one worker,
    ...593 with two, on the bench corpus): here 12 scores, the scan's among them, until the
    weights were counted in tenths. A baseline diff must not see a change there."""
    for i in range(40):
        (tmp_path / f"deploy-{i:03}.yaml").write_text(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d-{i}, namespace: ns}}\n"
            f"spec:\n  replicas: {2 + (4 * i + i // 3) % 9}\n  template:\n    spec:\n      containers:\n"
            f"      - name: c\n        image: nginx:1.{i}\n"
            f"        securityContext: {{privileged: {'yes' if i % 3 else 'no'}}}\n")
    summaries = [json.loads(parallel.scan_paths_json([tmp_path], workers=w))["summaryDetails"] for w in (1, 2, 3)]
    assert summaries[0] == summaries[1] == summaries[2]
    c57 = summaries[0]["controls"]["C-0057"]
    assert c57["ResourceCounters"]["failedResources"] == 26 and 0 < c57["score"] < 100


def test_a_worker_that_dies_while_sending_its_fragments_fails_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Half a fragment is never written out as if it were a report: the parent sees the pipe end early."""
    root = _many_files(tmp_path)

    def die_halfway(fd: int, fragment: list[bytes | memoryview]) -> None:  # runs in the forked worker
        data = b"".join(fragment)
        os.write(fd, data[:len(data) // 2])
        os._exit(1)

    monkeypatch.setattr(parallel, "_write_all", die_halfway)
    with pytest.raises(RuntimeError, match="scan worker failed"):
        parallel.write_scan_json(io.BytesIO(), [root], workers=2)


def test_the_context_exchange_through_memory_files_or_pipes_gives_one_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers pass their context objects through memory files where the system has them, else
    through the parent: either way (and in one process) the report is the same."""
    root = _many_files(tmp_path)
    (root / "sa.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: ns}\n"
                                  "automountServiceAccountToken: false\n")
    (root / "zz-pod.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: ns}\n"
                                      "spec:\n  serviceAccountName: sa\n  containers: [{name: c, image: x}]\n")
    if hasattr(os, "memfd_create"):
        files = parallel._exchange_files(2)
        assert len(files) == 2
        for fd in files:
            os.close(fd)
    reports = []
    for workers, memory_files in ((2, True), (1, True), (2, False)):
        if not memory_files:
            monkeypatch.setattr(parallel, "_exchange_files", lambda workers: [])
        report = json.loads(parallel.scan_paths_json([root], workers=workers))
        reports.append({key: report[key] for key in ("summaryDetails", "resources", "results")})
    assert reports[0] == reports[1] == reports[2]


def test_memory_files_refused_by_the_system_leave_the_pipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "memfd_create"):
        pytest.skip("no memory files on this system")
    made: list[int] = []

    def second_refused(name: str, flags: int = 0) -> int:
        if made:
            raise PermissionError(1, "Operation not permitted")
        made.append(fd := os.open(os.devnull, os.O_RDONLY))
        return fd

    monkeypatch.setattr(os, "memfd_create", second_refused)
    assert parallel._exchange_files(2) == []
    with pytest.raises(OSError):
        os.fstat(made[0])  # the first one was closed again
    root = _many_files(tmp_path)
    assert len(json.loads(parallel.scan_paths_json([root], workers=2))["resources"]) == 40


def test_a_worker_that_dies_during_the_context_exchange_fails_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "memfd_create"):
        pytest.skip("no memory files on this system: the context goes through the pipes")
    root = _many_files(tmp_path)

    def die(*args: object) -> None:  # runs in the forked worker
        os._exit(1)

    monkeypatch.setattr(parallel, "_write_file", die)
    monkeypatch.setattr(parallel, "_exchange_files", lambda workers: [os.memfd_create("t") for _ in range(workers)])
    with pytest.raises(RuntimeError, match="scan worker failed: it exited without an answer"):
        parallel.write_scan_json(io.BytesIO(), [root], workers=2)


def _masked(report: bytes) -> bytes:
    import re

    return re.sub(rb'"(generationTime|reportGUID)":"[^"]*"', rb'"\1":""', report)


def test_workers_write_their_fragments_to_a_report_file_themselves(tmp_path: Path) -> None:
    """To a plain file the workers share, each writes its own fragments in turn: the same report
    as through the pipes (an in-memory output), and the file object's position stays true."""
    (tmp_path / "in").mkdir()
    root = _many_files(tmp_path / "in")
    expected = io.BytesIO()
    parallel.write_scan_json(expected, [root], workers=2)
    path = tmp_path / "report.json"
    with open(path, "wb") as out:
        assert parallel._shared_fd(out) == out.fileno()
        parallel.write_scan_json(out, [root], workers=2)
        out.write(b"\n")
        assert out.tell() == len(expected.getvalue()) + 1
    assert _masked(path.read_bytes()) == _masked(expected.getvalue()) + b"\n"
    assert parallel._shared_fd(expected) is None


def _broken_write_all(fd: int, fragment: list[bytes | memoryview]) -> None:  # runs in a forked worker
    os._exit(3)


def test_workers_fill_a_read_write_report_file_through_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report file opened read-write (``report_file.open_report``) is filled by the workers
    through their own mappings, side by side, never by writing in turn (which is broken here):
    the same bytes as through the pipes, after a prefix that is not page-aligned, and the file
    object's position is the report's end."""
    (tmp_path / "in").mkdir()
    root = _many_files(tmp_path / "in")
    expected = io.BytesIO()
    parallel.write_scan_json(expected, [root], workers=2)
    monkeypatch.setattr(parallel, "_write_all", _broken_write_all)
    path = tmp_path / "report.json"
    with report_file.open_report(path) as out:
        assert report_file.mappable_fd(out.fileno())
        out.write(b"x" * 5000)
        parallel.write_scan_json(out, [root], workers=2)
        assert out.tell() == 5000 + len(expected.getvalue())
        out.write(b"\n")
    assert path.read_bytes()[:5000] == b"x" * 5000
    assert _masked(path.read_bytes()[5000:]) == _masked(expected.getvalue()) + b"\n"


def test_a_report_file_that_cannot_be_mapped_is_written_in_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the file cannot be mapped (``reserve`` says so before anything is written), the
    workers write their fragments in turn, as to a write-only file: the same report."""
    (tmp_path / "in").mkdir()
    root = _many_files(tmp_path / "in")
    expected = io.BytesIO()
    parallel.write_scan_json(expected, [root], workers=2)
    asked: list[int] = []

    def cannot(fd: int, start: int, length: int) -> bool:
        asked.append(length)
        return False

    monkeypatch.setattr(report_file, "reserve", cannot)
    path = tmp_path / "report.json"
    with report_file.open_report(path) as out:
        parallel.write_scan_json(out, [root], workers=2)
    assert asked == [len(expected.getvalue())]  # asked for exactly the report's size
    assert _masked(path.read_bytes()) == _masked(expected.getvalue())


def test_a_worker_that_dies_while_copying_into_the_report_file_fails_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    root = _many_files(tmp_path / "in")

    def die_halfway(fd: int, at: int, fragment: list[bytes | memoryview]) -> None:  # runs in the forked worker
        os.pwrite(fd, b"".join(fragment)[:10], at)
        os._exit(1)

    monkeypatch.setattr(report_file, "copy_mapped", die_halfway)
    with report_file.open_report(tmp_path / "report.json") as out, pytest.raises(RuntimeError, match="scan worker failed"):
        parallel.write_scan_json(out, [root], workers=2)


def test_open_report_opens_read_write_only_where_a_mapping_can_be_written(tmp_path: Path) -> None:
    """Read-write for a regular file, new (created) or old (truncated, as ``open(path, "wb")``
    does); a device as ``open`` would (write-only), and nothing but a regular file is mappable."""
    old = tmp_path / "old.json"
    old.write_bytes(b"previous report")
    for path in (tmp_path / "new.json", old):
        with report_file.open_report(path) as out:
            assert report_file.mappable_fd(out.fileno())
            out.write(b"{}")
        assert path.read_bytes() == b"{}"
    with report_file.open_report(os.devnull) as out:
        assert not report_file.mappable_fd(out.fileno())
    with open(tmp_path / "w.json", "wb") as out:  # write-only: a mapping needs read access
        assert not report_file.mappable_fd(out.fileno())
    with open(tmp_path / "a.json", "ab") as out:  # append mode puts every write at the end
        assert not report_file.mappable_fd(out.fileno())


def test_reserve_says_no_where_blocks_cannot_be_reserved_and_fails_on_a_full_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A C library that does not emulate ``posix_fallocate`` (EOPNOTSUPP): the report is written
    in turn, the file as it was; no room for it (ENOSPC): the error, whichever way it is written."""
    import errno

    def refuse(code: int) -> Any:
        def fallocate(fd: int, offset: int, length: int) -> None:
            os.ftruncate(fd, offset + length // 2)  # as if it had got half-way
            raise OSError(code, os.strerror(code))
        return fallocate

    with report_file.open_report(tmp_path / "out") as out:
        out.write(b"head")
        out.flush()
        monkeypatch.setattr(os, "posix_fallocate", refuse(errno.EOPNOTSUPP))
        assert report_file.reserve(out.fileno(), 4, 1 << 20) is False
        assert os.fstat(out.fileno()).st_size == 4
        monkeypatch.setattr(os, "posix_fallocate", refuse(errno.ENOSPC))
        with pytest.raises(OSError) as raised:
            report_file.reserve(out.fileno(), 4, 1 << 20)
        assert raised.value.errno == errno.ENOSPC


def test_copy_mapped_places_the_pieces_at_an_unaligned_offset(tmp_path: Path) -> None:
    pieces: list[bytes | memoryview] = [f"{i}:".encode() * (i % 7) for i in range(3 * report_file._JOIN + 5)]
    pieces[1] = memoryview(b"[view]")[1:-1]
    data = b"".join(pieces)
    path = tmp_path / "out"
    with report_file.open_report(path) as out:
        assert report_file.reserve(out.fileno(), 0, 4099 + len(data))
        report_file.copy_mapped(out.fileno(), 4099, pieces)
    assert path.read_bytes() == b"\0" * 4099 + data


def test_a_worker_that_dies_while_writing_to_the_report_file_fails_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    root = _many_files(tmp_path / "in")

    def die_halfway(fd: int, fragment: list[bytes | memoryview]) -> None:  # runs in the forked worker
        data = b"".join(fragment)
        os.write(fd, data[:len(data) // 2])
        os._exit(1)

    monkeypatch.setattr(parallel, "_write_all", die_halfway)
    with open(tmp_path / "report.json", "wb") as out, pytest.raises(RuntimeError, match="scan worker failed"):
        parallel.write_scan_json(out, [root], workers=2)


def test_a_fragment_is_written_whole_when_the_system_takes_less_per_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``writev`` may write fewer bytes than asked (a full pipe): every piece still goes out, in
    order, including a batch's piece cut in the middle, past ``_IOV_MAX`` pieces."""
    pieces: list[bytes | memoryview] = [f"{i}:".encode() * (i % 7) for i in range(3 * parallel._IOV_MAX + 5)]
    pieces[1] = memoryview(b"[view]")[1:-1]
    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[bytes | memoryview]) -> int:
        calls.append(len(buffers))
        data = b"".join(buffers)
        return real_writev(fd, [data[:13]])  # at most 13 bytes a call

    monkeypatch.setattr(os, "writev", short_writev)
    path = tmp_path / "out"
    with open(path, "wb") as out:
        parallel._write_all(out.fileno(), pieces)
    assert path.read_bytes() == b"".join(pieces)
    assert parallel._size(pieces) == len(b"".join(pieces))
    assert max(calls) <= parallel._IOV_MAX



def test_what_a_worker_prints_is_flushed_before_it_exits(tmp_path: Path) -> None:
    """A progress callback runs in the workers; what it prints (still in the buffer of a piped
    standard output) comes out when the worker leaves (os._exit skips the interpreter's flush)."""
    import subprocess
    import sys

    root = _many_files(tmp_path)
    script = ("import os, sys\n"
              "from mcp_kscan.engine import parallel\n"
              "parallel.scan_paths_json([sys.argv[1]], workers=2,\n"
              "                         on_progress=lambda p: print(f'pid {os.getpid()}', end=';'))\n"
              "print(f'parent {os.getpid()}', end=';')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a buffered standard output
    done = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=120,
                          check=True, env=env)
    printers = {part for part in done.stdout.split(";") if part.startswith("pid ")}
    assert len(printers) == 2 and "parent " in done.stdout, done.stdout
