#!/usr/bin/env bash
# Side-by-side benchmark: our exporter against the stack a user would assemble
# instead, on one host, in one run, against the same gateway:
#   - Debian's node_exporter with tcpstat (--collector.tcpstat, defaults on),
#   - process-exporter matching the gateway (comm "openclaw-gatewa"),
#   - blackbox_exporter probing the gateway's /healthz (module http_2xx).
#
#   bench/compare.sh [--real] [--idle SECONDS] [--wrk SECONDS] [--base REV]
#
#   --real     the real OpenClaw gateway (tests/support/run-openclaw.sh) instead
#              of the fixture (tests/fixture/gateway.js)
#   --idle S   idle period for the CPU measurement (default 300)
#   --wrk S    wrk duration per exporter (default 10)
#   --base REV an earlier revision of ours to measure in the same run (default
#              500c814, the head before the platform refactor of issue 14);
#              its release binary is built once in a temporary git worktree
#              into target/bench-base/ and reused while it exists
#
# For each exporter: CPU seconds per hour at default intervals (utime+stime
# from /proc/<pid>/stat over the idle period, one Prometheus-like scrape every
# 15 s, scaled to an hour; our background sampling counts), then wrk -t1 -c1
# on its scrape URL (p50/p99 latency as one scraper sees it: Prometheus sends
# one scrape at a time), then wrk -t2 -c8 (max requests/s, and p99 under that
# saturation), then VmRSS. Ours runs twice: with its defaults, and with
# --probe.readiness-interval=5s (readiness on the event-loop interval, as the
# peers' 15 s scrape would see it, instead of the 1 s poll). Two more rows of
# ours, with defaults: the --base revision ("ours @ REV") and this head over
# the portable platform backend (hidden --platform.backend=portable, "ours,
# portable"); plain "ours" is this head's native backend.
# Prints one Markdown table, a line against the issue's targets, a line
# comparing this head's native backend with the base revision, and ours by
# thread (defaults, base and portable): where the idle CPU goes.
# Needs node, wrk, curl, python3 and the Debian packages
# prometheus-node-exporter, prometheus-process-exporter and
# prometheus-blackbox-exporter. Loopback only; everything is stopped on exit.
# docs/benchmarks.md has the last table.
set -euo pipefail
cd "$(dirname "$0")/.."

REAL=0
IDLE=300
WRK_SECONDS=10
BASE=500c814
while [ "$#" -gt 0 ]; do
  case "$1" in
    --real) REAL=1 ;;
    --idle) IDLE="$2"; shift ;;
    --wrk) WRK_SECONDS="$2"; shift ;;
    --base) BASE="$2"; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "compare: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

BIN="target/release/openclaw-gateway-exporter"
NODE_EXPORTER=/usr/bin/prometheus-node-exporter
PROCESS_EXPORTER=/usr/bin/prometheus-process-exporter
BLACKBOX_EXPORTER=/usr/bin/prometheus-blackbox-exporter
SCRAPE_INTERVAL=15
CLK_TCK="$(getconf CLK_TCK)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ocgx-compare.XXXXXX")"
PIDS=()            # every process started here (gateway: its process group)
GATEWAY_PGID=""
BASE_WORKTREE=""   # the temporary git worktree of --base, while it builds

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$GATEWAY_PGID" ] && kill -TERM -- "-$GATEWAY_PGID" 2>/dev/null || true
  sleep 0.5
  [ -n "$GATEWAY_PGID" ] && kill -KILL -- "-$GATEWAY_PGID" 2>/dev/null || true
  [ -n "$BASE_WORKTREE" ] && git worktree remove --force "$BASE_WORKTREE" 2>/dev/null || true
  if [ "$rc" -ne 0 ] || [ "${COMPARE_KEEP:-0}" = 1 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # wait_http URL SECONDS: until URL answers 2xx
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  log "no answer from $1 after $2 s"; return 1
}

cpu_ticks() { # utime + stime of PID, in clock ticks
  awk '{print $14 + $15}' <(sed -E 's/^.*\) //; s/^/x x /' "/proc/$1/stat")
}

thread_cpu() { # thread_cpu PID: "name nanoseconds" per thread (schedstat), named by comm up to its first "-"
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(cut -d- -f1 "$t/comm" | tr ' ' _)" "$(cut -d' ' -f1 "$t/schedstat")"
  done
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------- the gateway ----------

for tool in node wrk curl python3 "$NODE_EXPORTER" "$PROCESS_EXPORTER" "$BLACKBOX_EXPORTER"; do
  command -v "$tool" >/dev/null || { echo "compare: $tool is not installed" >&2; exit 1; }
done
cargo build --release --locked --quiet  # a no-op when the binary is current

# The base revision's binary, built in its own worktree and target directory.
BASE_SHA="$(git rev-parse --verify --quiet "$BASE^{commit}")" ||
  { echo "compare: --base $BASE is not a revision here" >&2; exit 2; }
BASE_LABEL="$(git rev-parse --short "$BASE_SHA")"
BASE_BIN="target/bench-base/openclaw-gateway-exporter-$BASE_SHA"
if [ ! -x "$BASE_BIN" ]; then
  log "building $BASE_LABEL's release binary in a temporary worktree (target/bench-base/)"
  mkdir -p target/bench-base
  BASE_WORKTREE="$WORK/base-src"
  git worktree add --detach --quiet "$BASE_WORKTREE" "$BASE_SHA"
  CARGO_TARGET_DIR="$PWD/target/bench-base" bash -c 'cd "$1" && cargo build --release --locked --quiet' \
    _ "$BASE_WORKTREE"
  cp target/bench-base/release/openclaw-gateway-exporter "$BASE_BIN.tmp"
  mv "$BASE_BIN.tmp" "$BASE_BIN"
  git worktree remove --force "$BASE_WORKTREE"
  BASE_WORKTREE=""
fi

GATEWAY_PORT="$(free_port)"
if [ "$REAL" = 1 ]; then
  GATEWAY_KIND="real OpenClaw gateway ($(sed -n 's/^OPENCLAW_VERSION="${OPENCLAW_VERSION:-\(.*\)}"$/\1/p' tests/support/run-openclaw.sh))"
  export OPENCLAW_GATEWAY_TOKEN="${OPENCLAW_GATEWAY_TOKEN:-t}"
  setsid tests/support/run-openclaw.sh "$GATEWAY_PORT" "$WORK/home" >"$WORK/gateway.log" 2>&1 </dev/null &
  GATEWAY_PGID=$!
  STATE_DIR="$WORK/home/.openclaw"
  LOG_ARGS=()
  wait_http "http://127.0.0.1:$GATEWAY_PORT/healthz" 120
else
  GATEWAY_KIND="fixture gateway (tests/fixture/gateway.js)"
  STATE_DIR="$WORK/state"
  mkdir -p "$STATE_DIR"
  setsid node tests/fixture/gateway.js --port "$GATEWAY_PORT" --host 127.0.0.1 \
    --state-dir "$STATE_DIR" --log-file "$WORK/gateway-app.log" >"$WORK/gateway.log" 2>&1 </dev/null &
  GATEWAY_PGID=$!
  LOG_ARGS=(--gateway.log-path="$WORK/gateway-app.log")
  wait_http "http://127.0.0.1:$GATEWAY_PORT/healthz" 20
fi
log "$GATEWAY_KIND on 127.0.0.1:$GATEWAY_PORT"

# ---------- the exporters, each on its own loopback port, default intervals ----------

declare -A PID URL
start() { # start NAME SCRAPE_PATH COMMAND...: start an exporter, remember its pid and scrape URL
  local name="$1" path="$2" port="$3"; shift 3
  "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  PID[$name]=$!
  PIDS+=("$!")
  URL[$name]="http://127.0.0.1:$port$path"
}

P_NODE="$(free_port)"; P_PROC="$(free_port)"; P_BB="$(free_port)"

start_ours() { # start_ours NAME BINARY [FLAG...]: ours on its own port, watching the gateway
  local name="$1" bin="$2" port; shift 2
  port="$(free_port)"
  start "$name" /metrics "$port" "$bin" --web.listen-address="127.0.0.1:$port" \
    --gateway.url="http://127.0.0.1:$GATEWAY_PORT" --gateway.state-dir="$STATE_DIR" "${LOG_ARGS[@]}" "$@"
}
start_ours ours "$BIN"
start_ours ours-base "$BASE_BIN"
start_ours ours-portable "$BIN" --platform.backend=portable
start_ours ours-ready5s "$BIN" --probe.readiness-interval=5s

start node_exporter /metrics "$P_NODE" "$NODE_EXPORTER" \
  --web.listen-address="127.0.0.1:$P_NODE" --collector.tcpstat

cat >"$WORK/process-exporter.yml" <<'EOF'
process_names:
  - name: "{{.Comm}}"
    comm:
      - openclaw-gatewa
EOF
start process-exporter /metrics "$P_PROC" "$PROCESS_EXPORTER" \
  -web.listen-address="127.0.0.1:$P_PROC" -config.path="$WORK/process-exporter.yml"

cat >"$WORK/blackbox.yml" <<'EOF'
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
EOF
start blackbox_exporter "/probe?target=http://127.0.0.1:$GATEWAY_PORT/healthz&module=http_2xx" "$P_BB" \
  "$BLACKBOX_EXPORTER" --web.listen-address="127.0.0.1:$P_BB" --config.file="$WORK/blackbox.yml"

OURS=(ours ours-base ours-portable ours-ready5s)
NAMES=("${OURS[@]}" node_exporter process-exporter blackbox_exporter)
for n in "${NAMES[@]}"; do
  wait_http "${URL[$n]}" 20 || { log "$n did not start: $(tail -n 3 "$WORK/$n.log")"; exit 1; }
done
# Check each one sees the gateway before measuring anything.
sees() { # sees NAME REGEX: NAME's scrape has a line matching REGEX
  curl -fsS --max-time 10 "${URL[$1]}" >"$WORK/check-$1.txt" && grep -qE "$2" "$WORK/check-$1.txt"
}
for n in "${OURS[@]}"; do
  sees "$n" '^openclaw_gateway_process_up\{.*\} 1' || { log "$n does not see the gateway"; exit 1; }
done
sees process-exporter 'namedprocess_namegroup_num_procs\{groupname="openclaw-gatewa"\} [1-9]' ||
  { log "process-exporter does not match the gateway"; exit 1; }
sees blackbox_exporter '^probe_success 1' || { log "blackbox_exporter's probe of /healthz fails"; exit 1; }
sleep 5 # every collector of ours has sampled at least once

# ---------- CPU at default intervals: idle, one scrape per exporter every 15 s ----------

log "idle CPU: ${IDLE}s with a scrape of each exporter every ${SCRAPE_INTERVAL}s"
declare -A CPU0 CPU_H RSS P50 P99 P99_SAT RPS
for n in "${NAMES[@]}"; do CPU0[$n]="$(cpu_ticks "${PID[$n]}")"; done
for n in ours ours-base ours-portable; do thread_cpu "${PID[$n]}" >"$WORK/threads0-$n.txt"; done
t0="$(date +%s.%N)"
for ((s = 0; s < IDLE; s += SCRAPE_INTERVAL)); do
  for n in "${NAMES[@]}"; do curl -fsS --max-time 10 -o /dev/null "${URL[$n]}"; done
  sleep "$(( s + SCRAPE_INTERVAL <= IDLE ? SCRAPE_INTERVAL : IDLE - s ))"
done
t1="$(date +%s.%N)"
for n in ours ours-base ours-portable; do thread_cpu "${PID[$n]}" >"$WORK/threads1-$n.txt"; done
for n in "${NAMES[@]}"; do
  CPU_H[$n]="$(python3 -c "print(($(cpu_ticks "${PID[$n]}") - ${CPU0[$n]}) / $CLK_TCK * 3600 / ($t1 - $t0))")"
done

# ---------- latency and throughput: wrk on each scrape URL, one at a time ----------

unit_ms() { # "123.45us" -> milliseconds
  python3 -c "import re,sys; v,u=re.fullmatch(r'([\d.]+)(us|ms|s|m)','$1').groups(); print(float(v)*{'us':1e-3,'ms':1,'s':1e3,'m':6e4}[u])"
}
wrk_run() { # wrk_run NAME THREADS CONNECTIONS: wrk on NAME's scrape URL into $WORK/wrk-NAME-cC.txt
  local out="$WORK/wrk-$1-c$3.txt"
  log "wrk -t$2 -c$3 -d${WRK_SECONDS}s ${URL[$1]}"
  wrk -t"$2" -c"$3" -d"${WRK_SECONDS}s" --timeout 10s --latency "${URL[$1]}" >"$out"
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    log "$1: $(grep -E 'Non-2xx|Socket errors' "$out" | tr '\n' ' ')"
  fi
  sleep 2 # let the machine settle before the next run
}
pct() { unit_ms "$(awk -v p="$1" '$1 == p {print $2}' "$2")"; }
for n in "${NAMES[@]}"; do
  wrk_run "$n" 1 1
  P50[$n]="$(pct 50% "$WORK/wrk-$n-c1.txt")"
  P99[$n]="$(pct 99% "$WORK/wrk-$n-c1.txt")"
  wrk_run "$n" 2 8
  P99_SAT[$n]="$(pct 99% "$WORK/wrk-$n-c8.txt")"
  RPS[$n]="$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk-$n-c8.txt")"
  RSS[$n]="$(rss_kb "${PID[$n]}")"
done

# ---------- the table ----------

for n in "${NAMES[@]}"; do
  echo "$n ${P50[$n]} ${P99[$n]} ${P99_SAT[$n]} ${RPS[$n]} ${RSS[$n]} ${CPU_H[$n]}"
done >"$WORK/results.txt"
python3 - "$WORK" "$GATEWAY_KIND" "$IDLE" "$WRK_SECONDS" "$(python3 -c "print($t1 - $t0)")" "$BASE_LABEL" <<'EOF'
import sys
work, kind, idle, wrk_s, seconds, base = sys.argv[1:]
rows = {}
for line in open(f"{work}/results.txt"):
    n, p50, p99, p99s, rps, rss, cpu = line.split()
    rows[n] = dict(p50=float(p50), p99=float(p99), p99s=float(p99s), rps=float(rps),
                   rss=int(rss) / 1024, cpu=float(cpu))
peers = [rows[n] for n in ("node_exporter", "process-exporter", "blackbox_exporter")]
# A Prometheus scrape round of the three peers costs the sum of their latencies;
# rounds per second is the harmonic sum of their throughputs.
rows["peers sum"] = dict(p50=sum(p["p50"] for p in peers), p99=sum(p["p99"] for p in peers),
                         p99s=sum(p["p99s"] for p in peers),
                         rps=1 / sum(1 / p["rps"] for p in peers),
                         rss=sum(p["rss"] for p in peers), cpu=sum(p["cpu"] for p in peers))
labels = {"ours-base": f"ours @ {base}", "ours-portable": "ours, portable",
          "ours-ready5s": "ours, readiness every 5 s"}
def ms(v): return f"{v:.3f} ms" if v < 10 else f"{v:.1f} ms"
print(f"Against the {kind}; per exporter wrk -t1 -c1 -d{wrk_s}s (latency) and wrk -t2 -c8 "
      f"-d{wrk_s}s (max req/s, p99 under it); CPU over {idle} s idle with a scrape every 15 s, "
      f"scaled to an hour. \"ours\" is this head with its native backend.\n")
print("| exporter | /metrics p50 | /metrics p99 | max req/s (8 conns) | p99 at max req/s | RSS after wrk | CPU s/hour at default intervals |")
print("|---|---|---|---|---|---|---|")
for n in ("ours", "ours-base", "ours-portable", "ours-ready5s", "node_exporter", "process-exporter",
          "blackbox_exporter", "peers sum"):
    r = rows[n]
    print(f"| {labels.get(n, n)} | {ms(r['p50'])} | {ms(r['p99'])} | {r['rps']:,.0f} | {ms(r['p99s'])} | "
          f"{r['rss']:.1f} MB | {r['cpu']:.2f} |")
o, o5, s = rows["ours"], rows["ours-ready5s"], rows["peers sum"]
def mark(ok): return "met" if ok else "NOT met"
def ratio(a): return s["cpu"] / a["cpu"] if a["cpu"] > 0 else float("inf")
print()
print(f"Targets: /metrics p99 ≤ 1 ms: {ms(o['p99'])} ({mark(o['p99'] <= 1)}); "
      f"≥ 10k req/s: {o['rps']:,.0f} ({mark(o['rps'] >= 10000)}); "
      f"RSS ≤ 10 MB: {o['rss']:.1f} MB ({mark(o['rss'] <= 10)}); "
      f"≥ 10× lighter in CPU than the peer sum: {ratio(o):.1f}× with defaults "
      f"({mark(ratio(o) >= 10)}), {ratio(o5):.1f}× with readiness every 5 s "
      f"({mark(ratio(o5) >= 10)}).")

# Where ours spends its idle CPU: its threads are named after their collector
# (the probes share one), schedstat nanoseconds over the same idle period.
# A thread that exited during it is missing here (the main table counts it).
def by_thread(path):
    out = {}
    for line in open(path):
        name, ns = line.split()
        out[name] = out.get(name, 0) + int(ns)
    return out
threads = {}
for n in ("ours", "ours-base", "ours-portable"):
    before, after = by_thread(f"{work}/threads0-{n}.txt"), by_thread(f"{work}/threads1-{n}.txt")
    threads[n] = {t: (after[t] - before.get(t, 0)) / 1e9 * 3600 / float(seconds) for t in after}

# This head's native backend against the base revision, both with defaults,
# as head / base: above 1 is heavier or slower, except for req/s.
b = rows["ours-base"]
def vs(key, fmt):
    r = o[key] / b[key] if b[key] > 0 else float("inf")
    return f"{fmt(o[key])} vs {fmt(b[key])} ({r:.2f}×)"
tick = 0.01 * 3600 / float(seconds)  # one 10 ms clock tick over the idle period, per hour
print()
print(f"Native at this head vs {base}, same run (head vs base, head / base): "
      f"CPU s/hour {vs('cpu', lambda v: f'{v:.2f}')} (±{tick:.2f} a tick; by thread "
      f"{sum(threads['ours'].values()):.2f} vs {sum(threads['ours-base'].values()):.2f}); "
      f"RSS {vs('rss', lambda v: f'{v:.1f} MB')}; p50 {vs('p50', ms)}; p99 {vs('p99', ms)}; "
      f"max req/s {vs('rps', lambda v: f'{v:,.0f}')}.")

print()
print("Ours by thread (defaults), CPU s/hour over the same idle period:\n")
print(f"| thread | ours | ours @ {base} | ours, portable |")
print("|---|---|---|---|")
label = {"tokio": "server (runtime workers)", "openclaw": "main"}
names = sorted(set().union(*threads.values()), key=lambda t: -threads["ours"].get(t, 0))
def cell(n, t): return f"{threads[n][t]:.2f}" if t in threads[n] else "-"
for t in names:
    print(f"| {label.get(t, t)} | {cell('ours', t)} | {cell('ours-base', t)} | {cell('ours-portable', t)} |")
print("| all | " + " | ".join(f"{sum(threads[n].values()):.2f}" for n in threads) + " |")
EOF
