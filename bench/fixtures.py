# bench/fixtures.py N WORK: start N fixture gateways (tests/fixture/gateway.js,
# one worker each, each with its own state dir under WORK), write a config
# listing them all to WORK/ours.yml, print "ready", and wait; SIGTERM or
# Ctrl-C stops them. For side-by-side measurements of two exporter binaries
# on the same gateways (docs/benchmarks.md, "Scale"):
#   python3 bench/fixtures.py 50 /tmp/w50 &
#   target/release/openclaw-gateway-exporter --config.file=/tmp/w50/ours.yml \
#     --web.listen-address=127.0.0.1:19901 &
#   bash bench/threads.sh <pid> 60
import json, os, subprocess, sys, time, signal
FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixture", "gateway.js")
n, work = int(sys.argv[1]), sys.argv[2]
os.makedirs(work, exist_ok=True)
procs, fx = [], []
for i in range(n):
    st = f"{work}/state-{i}"; os.makedirs(st, exist_ok=True)
    out = f"{work}/gw-{i}.out"
    procs.append(subprocess.Popen(["node", FIXTURE, "--port", "0", "--host", "127.0.0.1",
        "--children", "1", "--state-dir", st], stdout=open(out, "w"), stderr=subprocess.DEVNULL, start_new_session=True))
    fx.append((st, out))
gws = []
for i, (st, out) in enumerate(fx):
    while not open(out).readline().endswith("\n"): time.sleep(0.2)
    gws.append((f"gw-{i}", f"http://127.0.0.1:{json.loads(open(out).readline())['port']}", st))
with open(f"{work}/ours.yml", "w") as f:
    f.write("gateways:\n")
    for name, url, st in gws: f.write(f"  - name: {name}\n    url: {url}\n    state_dir: {st}\n")
print("ready", flush=True)
def stop(*_):
    for p in procs:
        try: os.killpg(p.pid, signal.SIGKILL)
        except Exception: pass
    sys.exit(0)
signal.signal(signal.SIGTERM, stop); signal.signal(signal.SIGINT, stop)
while True: time.sleep(3600)
