"""The built-in engine reads files inside MCP_KSCAN_ALLOWED_ROOTS only, at the moment of reading.

Symlinks out of a root, and a scanned folder swapped for a symlink after the request was checked
(time of check to time of use), must cost the file, never leak it. The outside file carries a
canary that must appear in no answer.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

import mcp_kscan.settings
from mcp_kscan.engine.loader import LoadError, load_file, plan_files
from mcp_kscan.engine.parallel import scan_paths_json
from mcp_kscan.engine.reading import ReadLimits, UnreadableFile, read_manifest

CANARY = "canary-outside-the-roots-5c1e"
SECRET = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {CANARY}}}\ndata: {{k: {CANARY}}}\n"
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s}\nspec: {containers: [{name: c, image: nginx}]}\n"


def _layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "m").mkdir(parents=True)
    (root / "elsewhere").mkdir()
    outside.mkdir()
    (outside / "secret.yaml").write_text(SECRET)
    (root / "m" / "good.yaml").write_text(POD % "good")
    (root / "elsewhere" / "inside.yaml").write_text(POD % "inside")
    (root / "m" / "link-out.yaml").symlink_to(outside / "secret.yaml")
    (root / "m" / "link-in.yaml").symlink_to(root / "elsewhere" / "inside.yaml")
    return root, outside, root / "m"


@pytest.mark.anyio
async def test_symlinks_out_of_the_root_are_refused_over_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the REST app in-process (its lifespan, httpx's ASGI transport); the engine reads in
    its own process, as under a server."""
    from mcp_kscan.http_compat.app import build_app

    root, outside, folder = _layout(tmp_path)
    env = {"MCP_KSCAN_DATA_DIR": str(tmp_path / "data"), "MCP_KSCAN_ALLOWED_ROOTS": str(root),
           "MCP_KSCAN_KUBESCAPE_PATH": str(tmp_path / "no-kubescape")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("MCP_KSCAN_TOKEN", "KS_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    mcp_kscan.settings.configure(None)
    try:
        app = build_app(mcp_kscan.settings.get_settings())
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", timeout=120) as client:
            r = await client.post("/v1/scan", params={"wait": "true", "keep": "true"},
                                  json={"paths": [str(folder)], "engine": "builtin"})
            assert r.status_code == 200, r.text[:500]
            results = await client.get("/v1/results", params={"id": r.json()["id"]})
    finally:
        mcp_kscan.settings.configure(None)
    for text in (r.text, results.text):
        assert CANARY not in text and str(outside) not in text
    report = r.json()["response"]
    names = {x["resourceID"].rsplit("/", 1)[1] for x in report["resources"]}
    assert names == {"good", "inside"}  # a symlink that stays inside the root is read
    assert any(w.startswith("link-out.yaml") and "outside the allowed roots" in w
               for w in report["metadata"]["engine"]["errors"])


def test_a_folder_swapped_for_a_symlink_after_planning_fails_its_files(tmp_path: Path) -> None:
    root, outside, folder = _layout(tmp_path)
    (outside / "good.yaml").write_text(SECRET)  # same name as the planned file
    limits = ReadLimits.create(allowed_roots=[root])
    errors: list[LoadError] = []
    jobs = [j for j in plan_files([folder], errors, limits) if j.relative_path == "good.yaml"]
    os.rename(folder, root / "m-old")
    folder.symlink_to(outside, target_is_directory=True)
    assert load_file(jobs[0], errors, limits) == []
    assert [str(e) for e in errors] == ["good.yaml: outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS); skipped"]


def test_the_swap_race_never_leaks(tmp_path: Path) -> None:
    """A thread flips the scanned name between a folder inside the root and one outside, as fast
    as it can, while scans read it: whichever way each file's read falls, nothing leaks."""
    root, outside, folder = _layout(tmp_path)
    (outside / "good.yaml").write_text(SECRET)
    real = root / "m-real"
    os.rename(folder, real)
    folder.symlink_to(real, target_is_directory=True)
    stop = threading.Event()

    def swap() -> None:
        spare = root / "m-spare"
        targets = (outside, real)
        i = 0
        while not stop.is_set():
            spare.symlink_to(targets[i % 2], target_is_directory=True)
            os.replace(spare, folder)  # atomic: the name always exists, pointing one way or the other
            i += 1

    limits = ReadLimits.create(allowed_roots=[root])
    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    refused = 0
    try:
        for _ in range(200):
            out = scan_paths_json([folder], limits=limits, workers=1)
            assert CANARY.encode() not in out
            refused += out.count(b"outside the allowed roots")
    finally:
        stop.set()
        thread.join(10)
    assert refused > 0  # the race did happen: some reads met the outside folder and were refused


def test_a_scans_folder_cache_decides_as_realpath(tmp_path: Path) -> None:
    """``ReadLimits.for_scan`` keeps each folder's real path for one scan's reads: every file is
    read or refused as with a realpath per file (a symlinked file in a known folder is still
    followed and judged), and a folder swapped for a symlink out of the root after the scan's
    first read there leaks nothing: the cached name now leads through the symlink, and the
    check of the opened file (/proc/self/fd) refuses it."""
    root, outside, folder = _layout(tmp_path)
    (outside / "good.yaml").write_text(SECRET)
    limits = ReadLimits.create(allowed_roots=[root])
    scan = limits.for_scan()
    assert scan.real_folders == {} and limits.real_folders is None and scan == limits
    for name in ("good.yaml", "link-out.yaml", "link-in.yaml"):
        decided: list[object] = []
        for chosen in (limits, scan):
            try:
                decided.append(read_manifest(str(folder / name), chosen))
            except UnreadableFile as exc:
                decided.append(str(exc))
        assert decided[0] == decided[1], name
    assert scan.real_folders[str(folder)] == os.path.realpath(folder)
    os.rename(folder, root / "m-old")
    folder.symlink_to(outside, target_is_directory=True)
    for chosen in (scan, limits.for_scan(), limits):
        with pytest.raises(UnreadableFile, match="outside the allowed roots"):
            read_manifest(str(folder / "good.yaml"), chosen)
