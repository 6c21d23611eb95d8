#!/usr/bin/env bash
# Scale: one exporter watching 1, 10 and 100 fixture gateways, against the
# stack a user would assemble instead for the same N gateways:
#   - Debian's node_exporter with tcpstat (--collector.tcpstat, defaults on),
#   - process-exporter matching the gateways (comm "openclaw-gatewa"), one
#     group per gateway process ("{{.Comm}}:{{.PID}}"), as per-gateway alerts need,
#   - blackbox_exporter probing every gateway's /healthz (module http_2xx).
#
#   bench/scale.sh [--window SECONDS] [--gateways "1 10 100"] [--children N] [--together]
#
#   --window S     measured period per N and stack (default 120)
#   --gateways L   the numbers of gateways, in order (default "1 10 100")
#   --children N   workers of each fixture gateway (default 1; the real
#                  gateway has two)
#   --together     run every exporter at once instead of one stack at a time
#                  (the method of the runs before 2026-11-30 03:40 UTC)
#
# For each N: N fixture gateways (tests/fixture/gateway.js, each with its own
# state dir and port), then three stacks beside them, one at a time, each
# stopped before the next: ours with a config file listing all N at default
# intervals; ours again with --probe.readiness-interval=5s (readiness on the
# event-loop interval instead of a poll every second); the peers together.
# One at a time because a user runs one stack or the other, and on a small
# host each exporter's load raises the others' CPU figures (preemption,
# caches): with every exporter at once, the 2-core VM ran at load 2.5 in the
# 100 row. For each stack, after every exporter sees every gateway and a
# warm-up (15 s; for ours at least 75 s from its start: past its first
# minute, when every process is new to it), the window starts: one
# Prometheus-like scrape of each exporter every 15 s (blackbox_exporter: one
# /probe per gateway, as Prometheus would send), CPU as utime+stime from
# /proc/<pid>/stat scaled to an hour, threads (the most seen,
# /proc/<pid>/status at every scrape) and VmRSS at the end.
# Prints one Markdown table and a line against issue 16's targets: at most 12
# threads at any N, at most 0.3 CPU s/hour per added gateway ((CPU at the
# largest N - CPU at the smallest) / (largest - smallest)), RSS at most
# 10 MB + 50 KB per gateway. Also the load average over each window: CPU
# figures of a loaded machine are high. About 30 minutes (17 with --together).
# Needs node, curl, python3 and the Debian packages prometheus-node-exporter,
# prometheus-process-exporter and prometheus-blackbox-exporter (installed with
# apt-get when missing and run as root). Loopback only. docs/benchmarks.md
# ("Scale") has the last table.
set -euo pipefail
cd "$(dirname "$0")/.."

WINDOW=120
GATEWAYS="1 10 100"
CHILDREN=1
TOGETHER=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --window) WINDOW="$2"; shift ;;
    --gateways) GATEWAYS="$2"; shift ;;
    --children) CHILDREN="$2"; shift ;;
    --together) TOGETHER=1 ;;
    -h|--help) sed -n '2,41p' "$0"; exit 0 ;;
    *) echo "scale: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

NODE_EXPORTER=/usr/bin/prometheus-node-exporter
PROCESS_EXPORTER=/usr/bin/prometheus-process-exporter
BLACKBOX_EXPORTER=/usr/bin/prometheus-blackbox-exporter
if [ ! -x "$NODE_EXPORTER" ] || [ ! -x "$PROCESS_EXPORTER" ] || [ ! -x "$BLACKBOX_EXPORTER" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq prometheus-node-exporter prometheus-process-exporter \
      prometheus-blackbox-exporter >/dev/null
  else
    echo "scale: install prometheus-node-exporter, prometheus-process-exporter and prometheus-blackbox-exporter" >&2
    exit 1
  fi
fi
for tool in node curl python3; do
  command -v "$tool" >/dev/null || { echo "scale: $tool is not installed" >&2; exit 1; }
done
cargo build --release --locked --quiet  # a no-op when the binary is current

exec python3 - "$WINDOW" "$CHILDREN" "$TOGETHER" "$NODE_EXPORTER" "$PROCESS_EXPORTER" "$BLACKBOX_EXPORTER" \
  $GATEWAYS <<'EOF'
import json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request

window, children, together = float(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
node_exporter, process_exporter, blackbox_exporter = sys.argv[4:7]
counts = [int(n) for n in sys.argv[7:]]
BIN = "target/release/openclaw-gateway-exporter"
SCRAPE_EVERY = 15
WARM_UP = float(os.environ.get("SCALE_WARM_UP", 75))  # seconds from the exporters' start to the window, at least (SCALE_WARM_UP: shorter, to check the script)
TICK = os.sysconf("SC_CLK_TCK")
peers = ("node_exporter", "process-exporter", "blackbox_exporter")

def log(msg):
    print(f"[scale {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()

def cpu_seconds(pid):
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK

def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)

def wait(what, f, seconds):
    deadline = time.time() + seconds
    last = None
    while True:
        try:
            if f():
                return
        except OSError as e:
            last = e
        if time.time() > deadline:
            raise SystemExit(f"scale: {what} after {seconds} s" + (f": {last}" if last else ""))
        time.sleep(0.5)

def measure(n, work):
    started = []  # (Popen, in its own process group)
    def spawn(name, cmd, **kw):
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=open(f"{work}/{name}.log", "w"),
                             start_new_session=True, **kw)
        started.append(p)
        return p
    def stop(ps):
        for p in ps:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in ps:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    try:
        log(f"{n} gateways: starting the fixtures")
        fixtures = []
        for i in range(n):
            state = f"{work}/state-{i}"
            os.makedirs(state)
            out = f"{work}/gateway-{i}.out"
            spawn(f"gateway-{i}", ["node", "tests/fixture/gateway.js", "--port", "0", "--host", "127.0.0.1",
                  "--children", children, "--state-dir", state], stdout=open(out, "w"))
            fixtures.append((state, out))
        gateways = []
        for i, (state, out) in enumerate(fixtures):
            wait(f"gateway {i} did not start", lambda: open(out).readline().endswith("\n"), 120)
            line = json.loads(open(out).readline())
            assert line["event"] == "listening", line
            gateways.append((f"gw-{i}", f"http://127.0.0.1:{line['port']}", state))
        with open(f"{work}/ours.yml", "w") as f:
            f.write("gateways:\n")
            for name, url, state in gateways:
                f.write(f"  - name: {name}\n    url: {url}\n    state_dir: {state}\n")
        with open(f"{work}/process-exporter.yml", "w") as f:
            f.write('process_names:\n  - name: "{{.Comm}}:{{.PID}}"\n    comm:\n      - openclaw-gatewa\n')
        with open(f"{work}/blackbox.yml", "w") as f:
            f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
                    "    http:\n      preferred_ip_protocol: ip4\n")
        ports = {k: free_port() for k in ("ours", "ours-ready5s", "node_exporter", "process-exporter",
                                          "blackbox_exporter")}
        commands = {
            "ours": [BIN, f"--web.listen-address=127.0.0.1:{ports['ours']}", f"--config.file={work}/ours.yml"],
            "ours-ready5s": [BIN, f"--web.listen-address=127.0.0.1:{ports['ours-ready5s']}",
                             f"--config.file={work}/ours.yml", "--probe.readiness-interval=5s"],
            "node_exporter": [node_exporter, f"--web.listen-address=127.0.0.1:{ports['node_exporter']}",
                              "--collector.tcpstat"],
            "process-exporter": [process_exporter, f"-web.listen-address=127.0.0.1:{ports['process-exporter']}",
                                 f"-config.path={work}/process-exporter.yml"],
            "blackbox_exporter": [blackbox_exporter, f"--web.listen-address=127.0.0.1:{ports['blackbox_exporter']}",
                                  f"--config.file={work}/blackbox.yml"],
        }
        base = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        urls = {k: [f"{u}/metrics"] for k, u in base.items()}
        urls["blackbox_exporter"] = [f"{base['blackbox_exporter']}/probe?module=http_2xx&target={url}/healthz"
                                     for _, url, _ in gateways]
        # Each stack alone beside the gateways (a user runs one or the
        # other), or with --together all at once, as before 2026-11-30.
        stacks = [list(commands)] if together else [["ours"], ["ours-ready5s"], list(peers)]
        row = {"load": {}}
        for stack in stacks:
            row.update(measure_stack(n, work, stack, commands, urls, spawn, stop, row["load"]))
        return row
    finally:
        stop(started)

def measure_stack(n, work, stack, commands, urls, spawn, stop, loads):
    """Start the exporters of `stack`, wait until each sees every gateway,
    warm up, measure one window, stop them."""
    name = "all" if len(stack) > 3 else "peers" if stack[0] in peers else stack[0]
    procs = {k: spawn(k, commands[k], stdout=subprocess.DEVNULL) for k in stack}
    try:
        started_at = time.time()
        def sees_all():
            ok = True
            parts = []
            for k in (k for k in ("ours", "ours-ready5s") if k in procs):
                up = sum(1 for l in get(urls[k][0]).splitlines()
                         if l.startswith("openclaw_gateway_process_up{") and float(l.split()[-1]) == 1)
                parts.append(f"{k} {up}")
                ok &= up == n
            if "process-exporter" in procs:
                # A group per gateway process, its workers counted in it (and
                # those of any other gateway on the host, which it matches too).
                groups = sum(1 for l in get(urls["process-exporter"][0]).splitlines()
                             if l.startswith("namedprocess_namegroup_num_procs{") and float(l.split()[-1]) >= 1)
                parts.append(f"process-exporter {groups}")
                ok &= groups >= n
            if "blackbox_exporter" in procs:
                probe = "probe_success 1" in get(urls["blackbox_exporter"][0])
                parts.append(f"blackbox {probe}")
                ok &= probe
            if "node_exporter" in procs:
                get(urls["node_exporter"][0])
            seen[:] = [", ".join(parts)]
            return ok
        seen = ["nothing yet"]
        try:
            wait(f"not every exporter sees every {n} gateways", sees_all, 60)
        except SystemExit:
            log(f"seen: {seen[0]}")
            for k, p in procs.items():
                log(f"{k}: {'exited ' + str(p.poll()) if p.poll() is not None else 'runs'}; "
                    + open(f"{work}/{k}.log").read()[-300:])
            raise
        # Every collector has sampled and the peers have warmed up (15 s),
        # and ours is past its first minute: its process view reads the
        # title and parent of each process listed less than a minute ago at
        # every listing (ProcessView::YOUNG), which at exporter start is
        # every process of the host. The window measures the steady state.
        ours = any(k.startswith("ours") for k in procs)
        time.sleep(max(15, started_at + WARM_UP - time.time()) if ours else 15)

        log(f"{n} gateways, {name}: measuring {window:.0f} s, a scrape of each exporter every {SCRAPE_EVERY} s")
        cpu0 = {k: cpu_seconds(p.pid) for k, p in procs.items()}
        threads = {k: status(p.pid, "Threads") for k, p in procs.items()}
        load0 = os.getloadavg()[0]
        t0 = time.time()
        while True:
            for k in procs:
                for u in urls[k]:
                    get(u)
            for k, p in procs.items():
                threads[k] = max(threads[k], status(p.pid, "Threads"))
            left = t0 + window - time.time()
            if left <= 0:
                break
            time.sleep(min(SCRAPE_EVERY, left))
        t1 = time.time()
        row = {}
        for k, p in procs.items():
            row[k] = dict(cpu=(cpu_seconds(p.pid) - cpu0[k]) * 3600 / (t1 - t0),
                          threads=max(threads[k], status(p.pid, "Threads")),
                          rss=status(p.pid, "VmRSS") / 1024)
        loads[name] = (load0 + os.getloadavg()[0]) / 2
        return row
    finally:
        stop(list(procs.values()))

rows = {}
for n in counts:
    with tempfile.TemporaryDirectory(prefix=f"ocgx-scale-{n}-") as work:
        rows[n] = measure(n, work)

print(("Every exporter at once beside the gateways (--together). " if together else
       "Each stack alone beside the gateways: ours, ours with readiness every 5 s, then the peers. ") +
      f"CPU s/hour over {window:.0f} s per N, a scrape of each exporter every {SCRAPE_EVERY} s "
      f"(blackbox_exporter: one probe per gateway), default intervals; threads: the most seen; "
      f"RSS at the end. Fixture gateways with {children} worker(s) each.\n")
print("| gateways | ours CPU s/hour | ours threads | ours RSS | ours, readiness every 5 s, CPU s/hour | "
      "node_exporter CPU s/hour | process-exporter CPU s/hour | blackbox_exporter CPU s/hour | "
      "peers sum CPU s/hour | peers sum threads | peers sum RSS | load average " +
      ("|" if together else "(ours / ours 5 s / peers) |"))
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for n, r in rows.items():
    o = r["ours"]
    cells = [f"{r[p]['cpu']:.2f}" for p in peers]
    print(f"| {n} | {o['cpu']:.2f} | {o['threads']} | {o['rss']:.1f} MB | {r['ours-ready5s']['cpu']:.2f} | "
          + " | ".join(cells) +
          f" | {sum(r[p]['cpu'] for p in peers):.2f} | {sum(r[p]['threads'] for p in peers)} | "
          f"{sum(r[p]['rss'] for p in peers):.1f} MB | "
          + " / ".join(f"{l:.1f}" for l in r["load"].values()) + " |")

def mark(ok):
    return "met" if ok else "NOT met"
most = max(r[k]["threads"] for r in rows.values() for k in ("ours", "ours-ready5s"))
rss_ok = all(r["ours"]["rss"] <= 10 + 0.05 * n for n, r in rows.items())
rss = ", ".join(f"{r['ours']['rss']:.1f} MB at {n} (limit {10 + 0.05 * n:.1f})" for n, r in rows.items())
line = f"\nTargets: at most 12 threads: {most} ({mark(most <= 12)}); RSS ≤ 10 MB + 50 KB/gateway: {rss} ({mark(rss_ok)})"
lo, hi = min(rows), max(rows)
if hi > lo:
    def per(k):
        return (rows[hi][k]["cpu"] - rows[lo][k]["cpu"]) / (hi - lo)
    peers_per = sum(per(p) for p in peers)
    line += (f"; ≤ 0.3 CPU s/hour per added gateway: {per('ours'):.3f} ({mark(per('ours') <= 0.3)}), "
             f"{per('ours-ready5s'):.3f} with readiness every 5 s ({mark(per('ours-ready5s') <= 0.3)}); "
             f"peers sum {peers_per:.3f}")
print(line + ".")
EOF
