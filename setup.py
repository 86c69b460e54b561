"""The one thing pyproject.toml cannot say: the optional C extension (mcp_kscan/engine/_cyaml.c).

It links libyaml (Debian/Ubuntu: libyaml-dev; Fedora: libyaml-devel; macOS: brew install libyaml)
and makes the built-in engine's YAML step about 1.5x faster. ``optional=True``: where libyaml's
headers or a C compiler are missing the build goes on without it, and the engine reads YAML with
rapidyaml (``mcp-kscan doctor`` says which loader is in use).
"""

import subprocess
from pathlib import Path

from setuptools import Extension, setup


def _libyaml() -> dict[str, list[str]]:
    """libyaml's static archive where pkg-config shows one (Debian's libyaml-dev ships it): a wheel
    or bundle built here then also runs where libyaml itself is not installed. Else ``-lyaml``."""
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "yaml-0.1"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        libdir = ""
    archive = Path(libdir, "libyaml.a")
    if libdir and archive.is_file():
        return {"extra_objects": [str(archive)]}
    return {"libraries": ["yaml"]}


setup(
    ext_modules=[
        Extension(
            "mcp_kscan.engine._cyaml",
            ["mcp_kscan/engine/_cyaml.c"],
            optional=True,
            **_libyaml(),
        )
    ]
)
