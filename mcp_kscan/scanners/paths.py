"""The path rules for every path a caller may hand to a scanner (paths, config_dir).

Why so strict: a path ends up in a scanner's argv and is read with the server's privileges. A
leading ``-`` would turn it into a flag, a control character into a forged log line, and a
symlink could lead outside the directories the operator allowed (MCP_KSCAN_ALLOWED_ROOTS).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import ValidationInfo

from mcp_kscan.client_roots import ABSOLUTE_PATH_ADVICE, bases_in, relative_base, roots_in
from mcp_kscan.scanners.common import has_control_chars, shown

MAX_PATH_CHARS = 4096

PathKind = Literal["any", "file", "dir"]


SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))
"""Never scan targets: pseudo-filesystems whose walk never ends or blocks on device files."""


def scan_path(value: object, info: ValidationInfo) -> str:
    """A path field of a request: relative values start at the bases of the validation context
    (an MCP client's roots, see ``mcp_kscan.client_roots``), else at the server's working directory."""
    return validate_path(value, allowed_roots=roots_in(info), bases=bases_in(info))


def _within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def validate_path(
    value: object,
    *,
    allowed_roots: Sequence[Path],
    kind: PathKind = "any",
    base: Path | None = None,
    bases: Sequence[Path] | None = None,
) -> str:
    """Check ``value`` against the path rules and return it absolute, symlinks resolved.

    Raises ``ValueError`` with a short reason (pydantic adds the field name). Messages quote at
    most a cut piece of the caller's value, never the resolved path (which could reveal where a
    symlink points). ``allowed_roots`` are the operator's (empty: anywhere). A relative path starts at
    ``base``, else where ``client_roots.relative_base`` says (the client's roots ``bases``, else
    the server's working directory unless that is ``/``). ``/`` itself and the system trees
    (/proc, /sys, /dev) are refused.
    """
    if not isinstance(value, str):
        raise ValueError("must be a string path")
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"path longer than {MAX_PATH_CHARS} characters")
    if has_control_chars(value):
        raise ValueError("path contains control characters")
    if value.startswith("-"):
        raise ValueError(f"path must not start with '-': {shown(value)}")
    roots = allowed_roots
    raw = Path(value)
    if not raw.is_absolute():
        raw = (base or relative_base(value, bases)) / raw
    # resolve() follows every symlink (strict=False: a missing file is reported below, after
    # the root check, so nobody can probe for files outside the roots).
    resolved = raw.resolve()
    if roots:
        real_roots = [Path(r).expanduser().resolve() for r in roots]
        if not any(_within(resolved, r) for r in real_roots):
            raise ValueError(f"path is outside the allowed roots (MCP_KSCAN_ALLOWED_ROOTS): {shown(value)}")
    # After the roots check: a symlink under the roots that leads here is refused as well.
    if resolved == Path("/") or any(_within(resolved, t) for t in SYSTEM_TREES):
        raise ValueError(
            f"refused: {shown(value)} is / or a system tree (/proc, /sys, /dev), not a folder of manifests; "
            f"{ABSOLUTE_PATH_ADVICE} to the manifests"
        )
    if not resolved.exists():
        raise ValueError(f"no such file or directory: {shown(value)}")
    if kind == "dir" and not resolved.is_dir():
        raise ValueError(f"not a directory: {shown(value)}")
    if kind == "file" and not resolved.is_file():
        raise ValueError(f"not a regular file: {shown(value)}")
    mode = os.R_OK | (os.X_OK if resolved.is_dir() else 0)
    if not os.access(resolved, mode):
        raise ValueError(f"not readable by the server: {shown(value)}")
    return str(resolved)
