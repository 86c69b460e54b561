#!/usr/bin/env bash
# Build the MCP Bundle (.mcpb) for Claude Desktop and other MCPB hosts.
#
#   scripts/build_bundle.sh [OUTPUT.mcpb]        (default: dist/mcp-kscan-<version>.mcpb)
#
# 1. installs mcp-kscan and every dependency into server/lib with pip (`pip install --target`),
#    using $PYTHON (default python3); server/main.py puts server/lib on sys.path at start;
# 2. validates manifest.json and packs the bundle with the official CLI, `mcpb pack`
#    (from .ci/node_tools when `bash .ci/npm-tools.sh` installed it, else `npx @anthropic-ai/mcpb`).
#
# The bundle contains compiled wheels (pydantic-core, PyYAML), so it runs only on the same OS,
# CPU architecture and Python minor version as the $PYTHON that built it: build one bundle per
# target (e.g. PYTHON=python3.12 on an arm64 Mac for Apple-silicon users of Python 3.12).
# server/lib is removed after packing (KEEP_LIB=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VERSION=$("$PYTHON" -c 'import re; print(re.search(r"__version__ = \"([^\"]+)\"", open("mcp_kscan/__init__.py").read()).group(1))')
OUT=${1:-dist/mcp-kscan-$VERSION.mcpb}
PYVER=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

"$PYTHON" - <<'PY'
import json, re, sys
manifest = json.load(open("manifest.json"))
version = re.search(r'__version__ = "([^"]+)"', open("mcp_kscan/__init__.py").read()).group(1)
if manifest["version"] != version:
    sys.exit(f"manifest.json version {manifest['version']} != mcp_kscan.__version__ {version}")
PY

echo "build_bundle: installing mcp-kscan $VERSION and its dependencies into server/lib (Python $PYVER)" >&2
rm -rf server/lib
# Build from a copy of the sources, so pip's build/ and egg-info never touch the checkout.
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
cp -R pyproject.toml README.md mcp_kscan "$SRC"/
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$SRC"/mcp_kscan.egg-info
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --target server/lib "$SRC"
rm -rf server/lib/bin
echo "$PYVER" > server/lib/.python-version

if [ -x .ci/node_tools/node_modules/.bin/mcpb ]; then
  MCPB=(.ci/node_tools/node_modules/.bin/mcpb)
else
  MCPB=(npx --yes @anthropic-ai/mcpb@2.1.2)
fi
mkdir -p "$(dirname "$OUT")"
"${MCPB[@]}" validate manifest.json
"${MCPB[@]}" pack . "$OUT"
# A leftover server/lib would shadow the checkout's mcp_kscan when server/main.py runs from it.
[ "${KEEP_LIB:-0}" = 1 ] || rm -rf server/lib
echo "build_bundle: wrote $OUT (Python $PYVER, $(uname -s) $(uname -m))" >&2
