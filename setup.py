"""The one thing pyproject.toml cannot say: the optional C extension (mcp_kscan/engine/_cyaml.c).

It links libyaml (Debian/Ubuntu: libyaml-dev; Fedora: libyaml-devel; macOS: brew install libyaml)
and makes the built-in engine's YAML step about three times faster. ``optional=True``: where
libyaml's headers or a C compiler are missing the build goes on without it, and the engine reads
YAML with rapidyaml (``mcp-kscan doctor`` says which loader is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mcp_kscan.engine._cyaml",
            ["mcp_kscan/engine/_cyaml.c"],
            libraries=["yaml"],
            optional=True,
        )
    ]
)
