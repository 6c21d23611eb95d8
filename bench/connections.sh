#!/usr/bin/env bash
# Connections benchmark: counting a gateway's connections at 10k and 50k
# loopback connections, against /proc/net/tcp and node_exporter's tcpstat.
# Prints a Markdown table (docs/benchmarks.md has the last one and the method).
#
# Needs python3 (bench/hold_connections.py holds the connections) and, for the
# comparison, Debian's prometheus-node-exporter. Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# 50k connections are 100k sockets on this host, spread over several
# processes; each needs a soft fd limit near the hard one.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 16000 ]; then
  echo "fd limit $(ulimit -n) is too low: each of the 4 listener and 4 client processes holds ~12.5k sockets" >&2
  exit 1
fi
command -v prometheus-node-exporter >/dev/null ||
  echo "note: prometheus-node-exporter is not installed; its columns stay empty" >&2

cargo bench --locked --bench connections
