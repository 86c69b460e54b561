"""What runs on this host: the one /proc scan behind kube-bench's node checks and ``doctor``."""

from __future__ import annotations

import os
from pathlib import Path


def running_process_names(proc: Path = Path("/proc")) -> set[str] | None:
    """Names of the processes we can see: each one's ``comm`` and its argv[0] basename.

    ``comm`` is cut to 15 characters by the kernel ("kube-controller" for kube-controller-manager),
    so the argv[0] basename is added for the full name. None when ``proc`` cannot be read (not
    Linux, or a sandbox without /proc), which callers report as "cannot tell".
    """
    try:
        entries = list(proc.iterdir())
    except OSError:
        return None
    names: set[str] = set()
    seen_any = False
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:  # the process ended, or is not ours to read
            continue
        seen_any = True
        names.add(comm)
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode("utf-8", "replace")
        except OSError:
            argv0 = ""
        if argv0:
            names.add(os.path.basename(argv0))
    return names if seen_any else None
