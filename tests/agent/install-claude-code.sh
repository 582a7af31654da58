#!/bin/sh
# Installs the pinned Claude Code CLI (package-lock.json) into tests/agent/claude-code/node_modules
# for the agent-harness tests. Idempotent: does nothing when the pinned version is already there.
set -eu
here=$(cd "$(dirname "$0")/claude-code" && pwd)
want=$(sed -n 's/.*"@anthropic-ai\/claude-code": "\([0-9.]*\)".*/\1/p' "$here/package.json" | head -n 1)
bin="$here/node_modules/.bin/claude"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^$want "; then
    exit 0
fi
npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
"$bin" --version
