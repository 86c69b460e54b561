#!/usr/bin/env bash
# Optional Node tools for the install tests, into a scratch prefix (.ci/node_tools, gitignored):
#   @anthropic-ai/mcpb@2.1.2              -> tests/install/test_manifest.py (mcpb validate)
#   @modelcontextprotocol/inspector@0.15.0 -> tests/install/test_inspector.py (last release for Node 20)
# Quiet and bounded: never fatal for CI (.ci/run continues either way); tests skip when absent.
set -u
cd "$(dirname "$0")/.."
PREFIX=.ci/node_tools
MCPB=@anthropic-ai/mcpb@2.1.2
INSPECTOR=@modelcontextprotocol/inspector@0.15.0

command -v npm >/dev/null 2>&1 || { echo "npm-tools: npm not found; skipping"; exit 0; }

# Already installed at the pinned versions: nothing to do (works offline).
have() { [ -f "$PREFIX/node_modules/$1/package.json" ] && grep -q "\"version\": \"$2\"" "$PREFIX/node_modules/$1/package.json"; }
if have @anthropic-ai/mcpb 2.1.2 && have @modelcontextprotocol/inspector 0.15.0; then
  echo "npm-tools: $MCPB and $INSPECTOR present in $PREFIX"
  exit 0
fi

mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || echo '{"name":"mcp-kscan-ci-node-tools","private":true}' >"$PREFIX/package.json"
TIMEOUT=""
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 300"
if $TIMEOUT npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "$MCPB" "$INSPECTOR" >"$PREFIX/install.log" 2>&1; then
  echo "npm-tools: installed $MCPB and $INSPECTOR into $PREFIX"
  exit 0
fi
echo "npm-tools: install failed (see $PREFIX/install.log); the Node-based tests will skip"
exit 1
