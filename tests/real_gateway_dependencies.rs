//! Dependency faults injected into the real OpenClaw gateway: JavaScript
//! evaluated inside it through the Node inspector (tests/support/inspect.mjs)
//! opens outbound connections from the gateway's own process to an upstream
//! that accepts and never answers, and to one whose accept queue is full,
//! and calls the gateway's own model-fetch code against a refused port and
//! the silent upstream. The exporter's series reach the thresholds of the
//! rules in the `openclaw-gateway.dependencies` group, and a real Prometheus
//! running the shipped rules file unchanged (`for:` as shipped, scraping and
//! evaluating every 2 s) fires UpstreamUnreachable and UpstreamStalled
//! within their bounds, and resolves them once the sockets are closed
//! (promtool tests at the shipped 15 s: alerts/tests/dependencies.test.yml).
//! Ground truth: `ss -tin`, which reads the kernel on its own.
#![cfg(target_os = "linux")]

mod common;

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;

const R: &str = "real";
const G: &[(&str, &str)] = &[("gateway", R)];

/// A `require` for the gateway's own compiled modules, inside it: the same
/// module instances (and loggers) the gateway runs.
fn dist_require() -> String {
    let dist = openclaw_dir().join("node_modules/openclaw/dist/");
    format!(
        "process.getBuiltinModule('module').createRequire({:?})",
        dist.to_str().unwrap()
    )
}

/// The gateway's sockets to `port` by `ss -tin` (state, waiting for an
/// answer by the rule of src/outbound.rs: `lastsnd` below `lastrcv`, or
/// data segments out and none in; ss leaves out a value of 0).
fn ss_to(port: u16) -> Vec<(String, bool)> {
    let out = Command::new("ss")
        .args(["-tinH", "state", "all", "dport", "=", &format!(":{port}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut socks: Vec<(String, bool)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            let state = line.split_whitespace().next().unwrap_or("").to_string();
            socks.push((state, false));
        } else if let Some(last) = socks.last_mut() {
            let field = |name: &str| -> u64 {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.parse().ok())
                    .unwrap_or(0)
            };
            last.1 = field("lastsnd:") < field("lastrcv:")
                || (field("data_segs_out:") > 0 && field("data_segs_in:") == 0);
        }
    }
    socks
}

fn outbound(s: &Scrape, state: &str) -> Option<f64> {
    s.get(
        names::TCP_CONNECTIONS.name(),
        &[("gateway", R), ("direction", "outbound"), ("state", state)],
    )
}

fn pattern(s: &Scrape, name: &str) -> Option<f64> {
    s.get(
        names::LOG_PATTERN_MATCHES_TOTAL.name(),
        &[("gateway", R), ("pattern", name)],
    )
}

/// A listener with an accept queue of one that never accepts: connections
/// past the first stay in SYN_SENT, their SYNs dropped.
fn full_listener() -> (OwnedFd, u16) {
    use rustix::net::{AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    rustix::net::bind(&fd, &any).unwrap();
    rustix::net::listen(&fd, 0).unwrap();
    let port = TcpListener::from(fd.try_clone().unwrap())
        .local_addr()
        .unwrap()
        .port();
    (fd, port)
}

/// The alerts of gateway `real` Prometheus at `addr` holds: (name, state).
fn alerts(addr: &str) -> Vec<(String, String)> {
    let (_, _, body) = http_get(addr, "/api/v1/alerts", &[]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["gateway"] == R)
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn firing(addr: &str, name: &str) -> bool {
    alerts(addr)
        .iter()
        .any(|(n, state)| n == name && state == "firing")
}

#[test]
fn real_gateway_dependency_faults() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let logs = TempDir::new("deps-logs");
    let setup = RealGatewaySetup::new();
    let config = serde_json::json!({
        "logging": { "file": logs.path().join("openclaw-YYYY-MM-DD.log") }
    });
    setup.write_config(&config.to_string());
    // Its own inspector port: SIGUSR1 opens it there, not on a shared 9229.
    let inspector = free_port();
    let inspect_port = format!("--inspect-port=127.0.0.1:{inspector}");
    let url = setup.url();
    let gw = setup.start(&[("NODE_OPTIONS", &inspect_port)]);
    let exp = Harness::exporter()
        .name(R)
        .url(&url)
        .state_dir(gw.state_dir())
        .log_path(logs.path())
        .fast()
        .every("logs", "200ms")
        .start();
    // Prometheus with the shipped rules, unchanged.
    let prometheus = require_tool("prometheus");
    let prom_dir = TempDir::new("deps-prom");
    let prom_cfg = format!(
        "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nrule_files: [{rules}]\nscrape_configs:\n  - job_name: openclaw-gateway-exporter\n    static_configs:\n      - targets: ['{exp}']\n",
        rules = repo().join("alerts/openclaw-gateway.rules.yml").display(),
        exp = exp.addr,
    );
    let (_prom, prom) = start_prometheus(&prometheus, prom_dir.path(), &prom_cfg);

    // Idle: what a quiet gateway holds (the rules' thresholds stand well
    // above it; docs/runbook.md#dependencies).
    let idle = exp.wait("an idle sample with waits", |s| {
        let w = s.get(names::OUTBOUND_WAITING_CONNECTIONS.name(), G)?;
        Some((outbound(s, "established")?, outbound(s, "syn_sent")?, w))
    });
    let s = exp.scrape();
    eprintln!("idle: outbound established, syn_sent, waiting = {idle:?}");
    assert_eq!(idle.1, 0.0);
    assert!(idle.0 < 10.0, "{idle:?}");
    assert_eq!(
        s.get(names::OUTBOUND_STALLED_CONNECTIONS.name(), G),
        Some(0.0)
    );
    assert_eq!(pattern(&s, "dependency_timeout"), Some(0.0));
    assert_eq!(pattern(&s, "dependency_connect_error"), Some(0.0));

    // The upstreams: one accepts and never answers, one is full.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let keep = accepted.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let (_full, full_port) = full_listener();

    gw.proc.signal("USR1");
    let held = inspect(
        inspector,
        &format!(
            r#"(() => {{
  const net = process.getBuiltinModule('net');
  const g = globalThis.__deps = {{ held: [], stop: false }};
  for (let i = 0; i < 200; i++) {{
    const s = net.connect({silent_port}, '127.0.0.1');
    s.on('error', () => {{}});
    s.on('connect', () => s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: upstream\r\nContent-Length: 2\r\n\r\n{{}}'));
    g.held.push(s);
  }}
  // The kernel gives up a SYN after ~2 min: connect again, as a client
  // retrying would, until told to stop.
  const stuck = () => {{
    if (g.stop) return;
    const s = net.connect({full_port}, '127.0.0.1');
    s.on('error', () => {{ s.destroy(); setTimeout(stuck, 100); }});
    g.held.push(s);
  }};
  for (let i = 0; i < 48; i++) stuck();
  return g.held.length;
}})()"#
        ),
    );
    assert_eq!(held, 248);
    let started = Instant::now();
    // Nothing of the group before the fault.
    let before = alerts(&prom);
    assert!(
        !before
            .iter()
            .any(|(n, _)| n.starts_with("OpenClawGatewayUpstream")),
        "{before:?}"
    );

    // The exporter agrees with ss on both.
    let (syn_sent, waiting) = exp.wait("SYN_SENT and waiting as ss sees them", |s| {
        let full = ss_to(full_port);
        let syn = full.iter().filter(|(st, _)| st == "SYN-SENT").count() as f64;
        let quiet = ss_to(silent_port);
        let waits = quiet.iter().filter(|(st, w)| st == "ESTAB" && *w).count() as f64;
        (outbound(s, "syn_sent")? == syn
            && syn >= 40.0
            && s.get(names::OUTBOUND_WAITING_CONNECTIONS.name(), G)? == waits
            && waits == 200.0)
            .then_some((syn, waits))
    });
    eprintln!("fault: syn_sent {syn_sent}, waiting {waiting}");
    let s = exp.scrape();
    assert!(outbound(&s, "established").unwrap() >= idle.0 + 200.0);

    // The gateway's own model fetch, against a refused port and the silent
    // upstream: its real log lines, each counted once.
    let refused = free_port();
    let calls = inspect(
        inspector,
        &format!(
            r#"(async () => {{
  const m = {req}('./provider-transport-fetch-DnNw-XtJ.mjs');
  const out = [];
  for (const [port, timeoutMs] of [[{refused}, 5000], [{silent_port}, 1000]]) {{
    const base = `http://127.0.0.1:${{port}}/v1`;
    const f = m.t({{ provider: 'deps-test', api: 'openai-completions', id: 'm', baseUrl: base }}, timeoutMs);
    try {{ await f(`${{base}}/chat/completions`, {{ method: 'POST', body: '{{}}' }}); out.push('answered'); }}
    catch (e) {{ out.push(e.cause?.code ?? e.name); }}
  }}
  return out;
}})()"#,
            req = dist_require()
        ),
    );
    eprintln!("model fetches: {calls}");
    exp.wait("each failure counted once", |s| {
        (pattern(s, "dependency_connect_error")? == 1.0 && pattern(s, "dependency_timeout")? == 1.0)
            .then_some(())
    });

    // Within its `for:` (1m) + the connections interval + 60 s.
    wait_for(
        Duration::from_secs(150),
        "UpstreamUnreachable fires",
        || firing(&prom, "OpenClawGatewayUpstreamUnreachable").then_some(()),
    );
    let unreachable_after = started.elapsed();
    eprintln!("UpstreamUnreachable fired {unreachable_after:?} after the fault");
    assert!(unreachable_after >= Duration::from_secs(60));

    // A minute on, every request to the silent upstream has stalled.
    let left = Duration::from_secs(62).saturating_sub(started.elapsed());
    std::thread::sleep(left);
    let stalled = exp.wait("200 stalled", |s| {
        let n = s.get(names::OUTBOUND_STALLED_CONNECTIONS.name(), G)?;
        let oldest = s.get(names::OUTBOUND_OLDEST_WAIT_SECONDS.name(), G)?;
        // 200, and the model fetch's own connection while it lingers.
        (n >= 200.0 && oldest >= 60.0).then_some(oldest)
    });
    assert!(
        stalled <= started.elapsed().as_secs_f64() + 1.0,
        "{stalled} s"
    );

    // Stalled 60 s, then its `for:` (30 s), within 60 s more.
    wait_for(Duration::from_secs(90), "UpstreamStalled fires", || {
        firing(&prom, "OpenClawGatewayUpstreamStalled").then_some(())
    });
    let stalled_after = started.elapsed();
    eprintln!("UpstreamStalled fired {stalled_after:?} after the fault");
    assert!(stalled_after >= Duration::from_secs(90));

    // Removed from inside the gateway: every series falls back.
    let closed = inspect(
        inspector,
        "(() => { const g = globalThis.__deps; g.stop = true; for (const s of g.held) s.destroy(); return g.held.length; })()",
    );
    assert!(closed.as_u64().unwrap() >= 248, "{closed}");
    exp.wait("the fault is gone", |s| {
        (outbound(s, "syn_sent")? == 0.0
            && s.get(names::OUTBOUND_STALLED_CONNECTIONS.name(), G)? == 0.0
            && s.get(names::OUTBOUND_WAITING_CONNECTIONS.name(), G)? == idle.2
            && outbound(s, "established")? <= idle.0 + 2.0)
            .then_some(())
    });
    assert_eq!(
        exp.scrape()
            .get(names::OUTBOUND_OLDEST_WAIT_SECONDS.name(), G)
            .map(|v| v < 60.0),
        Some(true)
    );
    wait_for(
        Duration::from_secs(30),
        "the dependency alerts resolve",
        || {
            let left = alerts(&prom);
            (!left
                .iter()
                .any(|(n, _)| n.starts_with("OpenClawGatewayUpstream")))
            .then_some(())
        },
    );
    drop(accepted);
}
