#!/usr/bin/env bash
# Soak: the release exporter against the fixture gateway for a fixed time,
# while wrk hammers /metrics and the fixture crashes, restarts, hangs, blocks
# its event loop and recovers on a fixed schedule.
#
#   bench/soak.sh [DURATION_SECONDS]      # default 1800 (30 minutes)
#
# Prints scrapes served, errors (wrk non-2xx + socket errors; must be 0),
# p50/p99 latency, the exporter's RSS at the start, after the first minute,
# at the end and its max, and RSS growth per 1M scrapes. Exits 1 if any scrape
# failed, RSS grew more than 10% after the first minute, or (runs of 20
# minutes or more) more than 2% over the second half.
#
# Needs node, wrk, curl, python3 (to pick free ports) and a release build
# (built here, a no-op when current). Loopback only; everything started is stopped on exit.
# docs/soak.md has the last 30-minute run.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${1:-1800}"
case "$DURATION" in ''|*[!0-9]*) echo "soak: bad duration '$DURATION'" >&2; exit 2 ;; esac
[ "$DURATION" -ge 30 ] || { echo "soak: duration must be at least 30 s" >&2; exit 2; }

BIN="target/release/openclaw-gateway-exporter"
FIXTURE="tests/fixture/gateway.js"
WRK_THREADS="${SOAK_WRK_THREADS:-2}"
WRK_CONNECTIONS="${SOAK_WRK_CONNECTIONS:-8}"
RSS_GROWTH_LIMIT_PCT=10
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"   # at the start
STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ocgx-soak.XXXXXX")"
STATE_DIR="$WORK/state"
mkdir -p "$STATE_DIR"
EXPORTER_PID=""
WRK_PID=""
CHAOS_PID=""

log() { printf '[soak %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---------- cleanup: stop everything this script started ----------

fixture_pid() { cat "$WORK/fixture.pid" 2>/dev/null || true; }

stop_fixture() {
  local pid
  pid="$(fixture_pid)"
  [ -n "$pid" ] || return 0
  # The fixture runs in its own session (setsid), so its pid is its process
  # group: the group signal reaches its worker child too. SIGCONT first in
  # case it is stopped by the hang step.
  kill -CONT -- "-$pid" 2>/dev/null || true
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$WORK/fixture.pid"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "$CHAOS_PID" "$WRK_PID" "$EXPORTER_PID"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "$CHAOS_PID" "$WRK_PID" "$EXPORTER_PID"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  stop_fixture
  if [ "${SOAK_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    log "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------- helpers ----------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# rss_kb PID: "VmRSS RssAnon" in kB (RssAnon: the heap and stacks, without the
# binary's file-backed pages, which page in as code paths are first used).
rss_kb() { awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} END {print r + 0, a + 0}' "/proc/$1/status" 2>/dev/null || echo 0 0; }

# start_fixture PORT: start the fixture on PORT (0 = any) with the shared state
# dir; waits for its "listening" line, records its pid, prints its port.
start_fixture() {
  local port="$1" out="$WORK/fixture.out" i line
  : >"$out"
  setsid node "$FIXTURE" --port "$port" --host 127.0.0.1 --state-dir "$STATE_DIR" \
    --log-file "$WORK/gateway.log" >"$out" 2>>"$WORK/fixture.err" </dev/null &
  for ((i = 0; i < 200; i++)); do
    line="$(grep -m1 '"event":"listening"' "$out" 2>/dev/null || true)"
    if [ -n "$line" ]; then
      sed -E 's/.*"pid":([0-9]+).*/\1/' <<<"$line" >"$WORK/fixture.pid"
      sed -E 's/.*"port":([0-9]+).*/\1/' <<<"$line"
      return 0
    fi
    sleep 0.05
  done
  log "fixture did not start on port $port"; cat "$WORK/fixture.err" >&2
  return 1
}

wait_gone() { # wait_gone PID: until PID has exited (at most 5 s)
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  return 1
}

metric() { # metric NAME: first sample of NAME from the exporter (empty if absent)
  { curl -fsS --max-time 2 "http://127.0.0.1:$EXPORTER_PORT/metrics" 2>/dev/null || true; } |
    awk -v m="$1" '!found && ($1 == m || index($1, m "{") == 1) {print $2; found = 1}'
}

fixture_ctl() { curl -fsS --max-time 3 "http://127.0.0.1:$GATEWAY_PORT/__fixture/$1" >/dev/null 2>&1 || true; }

# ---------- the fault schedule ----------
# One 60 s cycle, repeated until the soak ends:
#   t+0   crash:  SIGKILL the gateway (and its worker), start it again on the same port
#   t+10  hang:   SIGSTOP the gateway for 15 s (alive, port LISTENs, no answers), SIGCONT
#   t+30  block:  /__fixture/block?ms=8000 (event loop spins for 8 s)
#   t+45  exit:   clean /__fixture/exit (lock removed), start it again
#   t+50  recover: healthy until the next cycle
chaos_loop() {
  local t0 cycle=0 pid hung
  t0="$(date +%s)"
  at() { local target=$((t0 + cycle * 60 + $1)) now; now="$(date +%s)"; [ "$now" -ge "$target" ] || sleep $((target - now)); }
  while :; do
    at 0
    pid="$(fixture_pid)"; kill -KILL -- "-$pid" 2>/dev/null || true; wait_gone "$pid" || true
    start_fixture "$GATEWAY_PORT" >/dev/null && echo "cycle $cycle crash+restart ok"
    at 10
    pid="$(fixture_pid)"; kill -STOP "$pid"
    at 24
    hung="$(metric openclaw_gateway_hung)"
    kill -CONT "$pid"
    echo "cycle $cycle hang: openclaw_gateway_hung=${hung:-absent} after 14 s stopped"
    at 30
    fixture_ctl "block?ms=8000"
    at 45
    pid="$(fixture_pid)"; fixture_ctl exit; wait_gone "$pid" || kill -KILL -- "-$pid" 2>/dev/null || true
    start_fixture "$GATEWAY_PORT" >/dev/null && echo "cycle $cycle exit+restart ok"
    cycle=$((cycle + 1))
  done
}

# ---------- run ----------

cargo build --release --locked --quiet  # a no-op when the binary is current
for tool in node wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is not installed" >&2; exit 1; }
done

GATEWAY_PORT="$(start_fixture 0)"
EXPORTER_PORT="$(free_port)"
log "fixture on 127.0.0.1:$GATEWAY_PORT (pid $(fixture_pid)), work dir $WORK"

"$BIN" --web.listen-address="127.0.0.1:$EXPORTER_PORT" \
  --gateway.url="http://127.0.0.1:$GATEWAY_PORT" --gateway.state-dir="$STATE_DIR" \
  --gateway.log-path="$WORK/gateway.log" \
  --collect.memory.interval=1s --collect.connections.interval=1s \
  --collect.latency.interval=1s --collect.event-loop.interval=1s \
  --collect.errors.interval=10s --collect.logs.interval=1s \
  --probe.timeout=1s --log.level=warn >"$WORK/exporter.log" 2>&1 &
EXPORTER_PID=$!
for ((i = 0; i < 100; i++)); do
  curl -fsS --max-time 1 "http://127.0.0.1:$EXPORTER_PORT/metrics" >/dev/null 2>&1 && break
  sleep 0.1
done
kill -0 "$EXPORTER_PID" || { log "exporter died"; cat "$WORK/exporter.log" >&2; exit 1; }
sleep 2 # let every collector take a first sample
log "exporter on 127.0.0.1:$EXPORTER_PORT (pid $EXPORTER_PID); soaking for ${DURATION}s"

RSS_START="$(rss_kb "$EXPORTER_PID")"
START="$(date +%s)"
echo "0 $RSS_START" >"$WORK/rss.txt"

wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${DURATION}s" --timeout 2s --latency \
  "http://127.0.0.1:$EXPORTER_PORT/metrics" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
chaos_loop >"$WORK/chaos.txt" 2>&1 &
CHAOS_PID=$!

# Sample RSS every minute while wrk runs.
next=60
while kill -0 "$WRK_PID" 2>/dev/null; do
  sleep 1
  elapsed=$(($(date +%s) - START))
  if [ "$elapsed" -ge "$next" ]; then
    rss="$(rss_kb "$EXPORTER_PID")"
    echo "$elapsed $rss" >>"$WORK/rss.txt"
    log "t=${elapsed}s RSS ${rss% *} kB (anon ${rss#* } kB)"
    next=$((next + 60))
  fi
done
wait "$WRK_PID" || { log "wrk failed"; cat "$WORK/wrk.txt" >&2; exit 1; }
WRK_PID=""
kill "$CHAOS_PID" 2>/dev/null || true; wait "$CHAOS_PID" 2>/dev/null || true; CHAOS_PID=""
kill -CONT "$(fixture_pid)" 2>/dev/null || true
kill -0 "$EXPORTER_PID" || { log "exporter died during the soak"; exit 1; }
RSS_END="$(rss_kb "$EXPORTER_PID")"
elapsed=$(($(date +%s) - START))
[ "$elapsed" -lt $((next - 60 + 5)) ] || echo "$elapsed $RSS_END" >>"$WORK/rss.txt"
RESTARTS="$(metric openclaw_gateway_process_restarts_total)"
PROBE_FAILURES="$(metric openclaw_gateway_probe_failures_total)"

# ---------- report ----------

echo "soak: ${DURATION} s, wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} on /metrics, started ${STARTED_AT}, commit ${COMMIT}"

python3 - "$WORK/wrk.txt" "$WORK/rss.txt" "$DURATION" "$RSS_GROWTH_LIMIT_PCT" \
  "${RESTARTS:-absent}" "${PROBE_FAILURES:-absent}" "$WORK/chaos.txt" <<'EOF'
import re, sys
wrk_path, rss_path, duration, limit, restarts, probe_failures, chaos_path = sys.argv[1:]
duration, limit = int(duration), float(limit)
wrk = open(wrk_path).read()

def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[u]

requests = int(re.search(r"(\d+) requests in", wrk).group(1))
lat = {m.group(1): unit(m.group(2), m.group(3))
       for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", wrk, re.M)}
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk)
sock_errors = sum(map(int, sock.groups())) if sock else 0
non2xx_m = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
non2xx = int(non2xx_m.group(1)) if non2xx_m else 0
errors = sock_errors + non2xx

samples = [tuple(map(int, l.split())) for l in open(rss_path) if l.strip()]
rss = [(t, r) for t, r, _ in samples]
anon = [a for _, _, a in samples]
start_kb, end_kb = rss[0][1], rss[-1][1]
max_kb = max(r for _, r in rss)
# Baseline: the first-minute sample (allocators and caches settle in the first minute).
# A run of under two minutes has no such sample: its baseline is the start.
base_t, base_kb = next(((t, r) for t, r in rss[1:-1] if t >= 60), rss[0])
end_t = rss[-1][0]
scrapes_after_base = requests * max(end_t - base_t, 1) / max(end_t, 1)
growth_pct = 100.0 * (end_kb - base_kb) / base_kb
per_million = (end_kb - base_kb) / scrapes_after_base * 1e6 if scrapes_after_base else 0.0
chaos = open(chaos_path).read().splitlines()
hung_seen = sum(1 for l in chaos if "hung=1" in l)
hangs = sum(1 for l in chaos if " hang:" in l)
cycles = sum(1 for l in chaos if "crash+restart ok" in l)

print(f"scrapes served:      {requests} ({requests / duration:.0f}/s)")
print(f"errors:              {errors} (non-2xx {non2xx}, socket {sock_errors})")
print(f"latency p50 / p99:   {lat.get('50', float('nan')):.3f} ms / {lat.get('99', float('nan')):.3f} ms")
print(f"RSS start:           {start_kb} kB")
print(f"RSS at {base_t:>4} s:       {base_kb} kB (baseline)")
print(f"RSS end:             {end_kb} kB ({growth_pct:+.1f}% vs baseline)")
print(f"RSS max:             {max_kb} kB")
print(f"RssAnon start/end:   {anon[0]} kB / {anon[-1]} kB (max {max(anon)} kB)")
print(f"RSS growth / 1M scrapes: {per_million:+.0f} kB")
# Flat means flat at the end too: the second half of a run of 20 minutes or
# more may add at most 2% (allocator noise), whatever the first half did.
half_pct = None
if end_t >= 1200:
    mid_t, mid_kb = min(rss, key=lambda s: abs(s[0] - end_t / 2))
    half_pct = 100.0 * (end_kb - mid_kb) / mid_kb
    print(f"RSS second half:     {mid_kb} kB at {mid_t} s -> {end_kb} kB ({half_pct:+.1f}%, limit +2%)")
print(f"fault cycles:        {cycles} crash+restart, {hangs} hangs ({hung_seen} reported hung=1 while stopped)")
print(f"exporter counters:   openclaw_gateway_process_restarts_total {restarts}, "
      f"openclaw_gateway_probe_failures_total {probe_failures}")
print("RSS samples (s kB):  " + ", ".join(f"{t} {r}" for t, r in rss))
print("RssAnon samples (kB): " + ", ".join(str(a) for a in anon))
why = []
if errors:
    why.append("errors")
if growth_pct > limit:
    why.append("RSS grew more than %g%%" % limit)
if half_pct is not None and half_pct > 2.0:
    why.append("RSS still grew in the second half")
ok = not why
print("RESULT:              " + ("PASS" if ok else f"FAIL ({'; '.join(why)})"))
sys.exit(0 if ok else 1)
EOF
