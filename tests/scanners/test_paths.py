"""The path rules shared by paths, config_dir and kubeconfig."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcp_kscan.scanners.paths import MAX_PATH_CHARS, validate_path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "root" / "a.yaml").write_text("kind: Pod\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "b.yaml").write_text("kind: Secret\n")
    (tmp_path / "root" / "link-out").symlink_to(tmp_path / "outside" / "b.yaml")
    (tmp_path / "root" / "link-in").symlink_to(tmp_path / "root" / "a.yaml")
    return tmp_path


def test_accepts_and_absolutizes(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "root")
    assert validate_path("a.yaml", allowed_roots=[]) == str((tree / "root" / "a.yaml").resolve())
    assert validate_path("sub", kind="dir", allowed_roots=[]) == str((tree / "root" / "sub").resolve())
    assert validate_path("./sub/../a.yaml", kind="file", allowed_roots=[tree / "root"]).endswith("a.yaml")
    # a symlink inside the roots to a file inside the roots is fine; passed on resolved
    assert validate_path("link-in", allowed_roots=[tree / "root"]) == str((tree / "root" / "a.yaml").resolve())


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "empty"),
        ("-rf", "start with '-'"),
        ("--output=/etc/x", "start with '-'"),
        ("a\nb", "control characters"),
        ("a\x00b", "control characters"),
        ("a\x1b[31mred", "control characters"),
        ("x" * (MAX_PATH_CHARS + 1), "longer than"),
        ("does-not-exist.yaml", "no such file"),
        ("ａ.yaml", "no such file"),  # fullwidth lookalike of a.yaml
    ],
)
def test_rejects(value: str, words: str, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "root")
    with pytest.raises(ValueError) as info:
        validate_path(value, allowed_roots=[])
    assert words in str(info.value)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


def test_kind_mismatch(tree: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        validate_path(str(tree / "root" / "a.yaml"), kind="dir", allowed_roots=[])
    with pytest.raises(ValueError, match="not a regular file"):
        validate_path(str(tree / "root"), kind="file", allowed_roots=[])


@pytest.mark.parametrize("value", ["link-out", "../outside/b.yaml", "../../../../../etc/passwd", "/etc"])
def test_allowed_roots(value: str, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "root")
    with pytest.raises(ValueError) as info:
        validate_path(value, allowed_roots=[tree / "root"])
    assert "allowed roots" in str(info.value)
    assert str(tree / "outside") not in str(info.value)  # the symlink target is never revealed


def test_missing_outside_roots_says_outside_not_missing(tree: Path) -> None:
    # Existence is only checked inside the roots: no probing for files elsewhere.
    with pytest.raises(ValueError, match="allowed roots"):
        validate_path("/nonexistent/secret", allowed_roots=[tree / "root"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable(tree: Path) -> None:
    target = tree / "root" / "a.yaml"
    target.chmod(0)
    try:
        with pytest.raises(ValueError, match="not readable"):
            validate_path(str(target), allowed_roots=[])
    finally:
        target.chmod(0o644)
