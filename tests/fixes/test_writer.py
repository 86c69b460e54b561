"""Writes go only inside the roots, never through a symlink out of them, never over a change."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from mcp_kscan.fixes.writer import WriteRefused, real_roots, replace_file


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root, outside


def test_atomic_write_keeps_the_mode(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    f = root / "app.yaml"
    f.write_bytes(b"a: 1\n")
    os.chmod(f, 0o640)
    inode = f.stat().st_ino
    replace_file(str(f), b"a: 2\n", real_roots([root]), _sha(b"a: 1\n"))
    assert f.read_bytes() == b"a: 2\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert f.stat().st_ino != inode  # a new file renamed over the old one
    assert [p.name for p in root.iterdir()] == ["app.yaml"]  # no temporary file left


def test_refuses_a_file_changed_since_the_scan(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    f = root / "app.yaml"
    f.write_bytes(b"a: 1\n")
    with pytest.raises(WriteRefused, match="changed since the scan"):
        replace_file(str(f), b"a: 2\n", real_roots([root]), _sha(b"a: 0\n"))
    assert f.read_bytes() == b"a: 1\n"


def test_refuses_outside_the_roots_and_without_roots(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    f = outside / "app.yaml"
    f.write_bytes(b"a: 1\n")
    with pytest.raises(WriteRefused, match="outside the allowed roots"):
        replace_file(str(f), b"a: 2\n", real_roots([root]), _sha(b"a: 1\n"))
    with pytest.raises(WriteRefused, match="no allowed roots"):
        replace_file(str(f), b"a: 2\n", [], _sha(b"a: 1\n"))
    assert f.read_bytes() == b"a: 1\n"


def test_refuses_symlinks_leading_out(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    target = outside / "secret.yaml"
    target.write_bytes(b"a: 1\n")
    (root / "link.yaml").symlink_to(target)
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    for path in (root / "link.yaml", root / "linked-dir" / "secret.yaml"):
        with pytest.raises(WriteRefused):
            replace_file(str(path), b"a: 2\n", real_roots([root]), _sha(b"a: 1\n"))
    assert target.read_bytes() == b"a: 1\n"


def test_a_symlinked_file_inside_the_roots_is_not_replaced(tree: tuple[Path, Path]) -> None:
    """Replacing the link would cut it: the fix is for the file it points to, by its own path."""
    root, _ = tree
    real = root / "real.yaml"
    real.write_bytes(b"a: 1\n")
    (root / "alias.yaml").symlink_to(real)
    with pytest.raises(WriteRefused, match="symlink"):
        replace_file(str(root / "alias.yaml"), b"a: 2\n", real_roots([root]), _sha(b"a: 1\n"))
    assert (root / "alias.yaml").is_symlink()


def test_a_file_named_as_its_own_root(tree: tuple[Path, Path]) -> None:
    """``mcp-kscan fix FILE --write``: the file given is the only place written."""
    root, _ = tree
    f = root / "app.yaml"
    f.write_bytes(b"a: 1\n")
    replace_file(str(f), b"a: 2\n", real_roots([f]), _sha(b"a: 1\n"))
    assert f.read_bytes() == b"a: 2\n"
    sibling = root / "other.yaml"
    sibling.write_bytes(b"b: 1\n")
    with pytest.raises(WriteRefused, match="outside the allowed roots"):
        replace_file(str(sibling), b"b: 2\n", real_roots([f]), _sha(b"b: 1\n"))
