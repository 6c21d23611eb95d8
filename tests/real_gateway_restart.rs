//! A normal restart of the real gateway, the field report's recovery
//! procedure ("restart, then verify"): SIGTERM, then the same command again
//! with the same HOME and port, under the exporter and Prometheus evaluating
//! the shipped rules (alerts/openclaw-gateway.rules.yml, as shipped: no
//! shortened `for:` or ranges).
//!
//! - `diagnose` right after /readyz turns 200 says *starting* and exits 1,
//!   and exits 0 once the startup grace (docs/startup.md) has passed.
//! - No alert fires across the restart, for 150 s after it: longer than every
//!   `for:` that startup load could run out (Hung 30 s, Down 1 m, NotReady
//!   and the critical tiers of event loop, response time and error rate 2 m;
//!   Restarted has none). The rules with a longer `for:` (10 m and more: the
//!   warning tiers) cannot fire either: none of their alerts stays pending
//!   for more than 60 s at a stretch, and an alert that leaves pending
//!   restarts its `for:` from zero. Without its startup guard, the
//!   error-rate rule would have fired: checked too.
//!
//! Linux only: it runs the real gateway, Prometheus and promtool, Linux programs here.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::thresholds::STARTUP_GRACE_SECONDS;

fn diagnose(url: &str, state_dir: &str, json: bool) -> Output {
    let mut cmd = Command::new(EXPORTER);
    cmd.arg("diagnose");
    if json {
        cmd.arg("--json");
    }
    cmd.args(["--gateway.url", url, "--gateway.state-dir", state_dir])
        .args(["--gateway.memory-limit", "4GiB"])
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap()
}

/// The gateway's /readyz: status and body, when it answers.
fn readyz(addr: &str) -> Option<(u16, serde_json::Value)> {
    let (status, _, body) = http_get(addr, "/readyz", &[]).ok()?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// Every alert state Prometheus reports, polled every second: per alert
/// (name and severity), the times it was seen pending and firing.
#[derive(Default)]
struct AlertLog {
    pending: BTreeMap<String, Vec<Instant>>,
    firing: BTreeMap<String, Vec<Instant>>,
}

impl AlertLog {
    /// The longest run of pending polls no more than 2.5 s apart.
    fn longest_pending(&self, alert: &str) -> Duration {
        let times = self.pending.get(alert).map(Vec::as_slice).unwrap_or(&[]);
        let mut longest = Duration::ZERO;
        let mut start = None;
        for (i, t) in times.iter().enumerate() {
            let s = match (start, i) {
                (Some(s), i) if t.duration_since(times[i - 1]) <= Duration::from_millis(2500) => s,
                _ => *t,
            };
            start = Some(s);
            longest = longest.max(t.duration_since(s));
        }
        longest
    }
}

fn watch_alerts(prom: String, stop: Arc<AtomicBool>) -> Arc<Mutex<AlertLog>> {
    let log = Arc::new(Mutex::new(AlertLog::default()));
    let out = log.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if let Ok((200, _, body)) = http_get(&prom, "/api/v1/alerts", &[]) {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let mut log = out.lock().unwrap();
                for a in v["data"]["alerts"].as_array().unwrap() {
                    let name = format!(
                        "{}/{}",
                        a["labels"]["alertname"].as_str().unwrap(),
                        a["labels"]["severity"].as_str().unwrap_or("")
                    );
                    let seen = match a["state"].as_str() {
                        Some("firing") => &mut log.firing,
                        _ => &mut log.pending,
                    };
                    if seen.get(&name).is_none_or(|t| t.is_empty()) {
                        eprintln!("[alerts] {name} {}", a["state"]);
                    }
                    seen.entry(name).or_default().push(now);
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    log
}

#[test]
fn a_restart_is_starting_then_ok_and_fires_no_alert() {
    let prometheus = require_tool("prometheus");
    let _one = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("restart");
    let setup = RealGatewaySetup::new();
    let url = setup.url();
    let state_dir = setup.state_dir();
    let sd = state_dir.to_str().unwrap();
    let gw = setup.start(&[]);
    let addr = gw.addr();

    // The exporter with its default intervals, scraped every second by
    // Prometheus evaluating the shipped rules every second.
    let exp = Harness::exporter()
        .url(&url)
        .state_dir(sd)
        .memory_limit("4GiB")
        .start();
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{rules}]\nscrape_configs:\n  - job_name: openclaw-gateway-exporter\n    static_configs:\n      - targets: ['{exp}']\n",
        rules = repo().join("alerts/openclaw-gateway.rules.yml").display(),
        exp = exp.addr,
    );
    let (_prom, prom_addr) = start_prometheus(&prometheus, dir.path(), &prom_cfg);
    wait_for(
        Duration::from_secs(60),
        "Prometheus to scrape the exporter and load the rules",
        || {
            let (_, _, up) = http_get(
                &prom_addr,
                "/api/v1/query?query=openclaw_gateway_process_up",
                &[],
            )
            .ok()?;
            let (_, _, rules) = http_get(&prom_addr, "/api/v1/rules", &[]).ok()?;
            (up.contains("\"1\"") && rules.contains("OpenClawGatewayHung")).then_some(())
        },
    );
    let stop = Arc::new(AtomicBool::new(false));
    let alerts = watch_alerts(prom_addr.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(10));

    // The restart: SIGTERM, wait for the exit, the same command again.
    let RealGateway {
        mut proc,
        port,
        home,
    } = gw;
    proc.signal("TERM");
    proc.child.wait().unwrap();
    drop(proc);
    let restarted = Instant::now();
    let gw = RealGatewaySetup { port, home }.start(&[]);
    wait_for(
        Duration::from_secs(60),
        "/readyz 200 after the restart",
        || (readyz(&addr)?.0 == 200).then_some(()),
    );
    let early = diagnose(&url, sd, false);
    let early_json = diagnose(&url, sd, true);
    eprintln!("{}", text(&early));
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(
        text(&early).contains("WARN  startup      starting: up "),
        "{}",
        text(&early)
    );
    assert!(
        !text(&early)
            .lines()
            .any(|l| l.trim_start().starts_with("CRIT")),
        "at most WARN while starting: {}",
        text(&early)
    );
    let v: serde_json::Value = serde_json::from_slice(&early_json.stdout).unwrap();
    assert_eq!(v["status"], "WARN", "{v}");
    assert_eq!(v["gateways"][0]["starting"], true, "{v}");
    assert!(v["gateways"][0]["uptime_seconds"].as_f64().unwrap() < STARTUP_GRACE_SECONDS);

    // Past the grace, by the gateway's own clock; and, as tests/real_gateway.rs
    // does, in a quiet second of a machine other tests share.
    let mut settled = 0;
    wait_for(
        Duration::from_secs_f64(STARTUP_GRACE_SECONDS + 90.0),
        "the startup grace to pass, the event loop settled",
        || {
            let (status, v) = readyz(&addr)?;
            let uptime = v["uptimeMs"].as_f64()? / 1000.0;
            let p99 = v["eventLoop"]["delayP99Ms"].as_f64()?;
            settled = if status == 200 && uptime > STARTUP_GRACE_SECONDS + 1.0 && p99 < 30.0 {
                settled + 1
            } else {
                0
            };
            std::thread::sleep(Duration::from_millis(500));
            (settled >= 4).then_some(())
        },
    );
    let late = diagnose(&url, sd, false);
    eprintln!("{}", text(&late));
    assert_eq!(late.status.code(), Some(0), "{}", text(&late));
    assert!(
        text(&late).contains("OK    startup      started: up "),
        "{}",
        text(&late)
    );

    // Prometheus: 150 s after the restart, nothing fired.
    let watch = Duration::from_secs(150);
    if let Some(left) = watch.checked_sub(restarted.elapsed()) {
        std::thread::sleep(left);
    }
    stop.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1500));
    let log = alerts.lock().unwrap();
    assert!(
        log.firing.is_empty(),
        "a normal restart fired {:?}",
        log.firing.keys().collect::<Vec<_>>()
    );
    for alert in log.pending.keys() {
        let longest = log.longest_pending(alert);
        eprintln!("[alerts] {alert} pending for at most {longest:?}");
        assert!(
            longest < Duration::from_secs(60),
            "{alert} stayed pending {longest:?} across a normal restart"
        );
    }

    // Not vacuous: the restart's refused probes are in the data the rules
    // read. Without its startup guard, the warning error-rate rule (a 5 m
    // window, 0.5%) held for the last 2 minutes. (The critical tier's 1 m
    // window lets the restart's burst go before its `for:` of 2 m.)
    let unguarded = unguarded_expr("OpenClawGatewayErrorRateHigh", "warning");
    let (_, _, body) = http_get(
        &prom_addr,
        &format!(
            "/api/v1/query?query={}",
            percent_encode(&format!("count_over_time(({unguarded})[2m:1s])"))
        ),
        &[],
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let held = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    eprintln!("[alerts] without its startup guard, {unguarded} held for {held} of the last 120 s");
    assert!(
        held >= 110.0,
        "the unguarded rule held for {held} of the last 120 s: {body}"
    );
    drop(gw);
}

/// The expression of a shipped rule without its startup guard.
fn unguarded_expr(alert: &str, severity: &str) -> String {
    let text = std::fs::read_to_string(repo().join("alerts/openclaw-gateway.rules.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let rule = doc["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .find(|r| r["alert"] == alert && r["labels"]["severity"] == severity)
        .unwrap();
    let expr = rule["expr"].as_str().unwrap();
    let guard = " unless on (job, instance, gateway) time() - openclaw_gateway_process_start_time_seconds < ";
    let (unguarded, _) = expr
        .split_once(guard)
        .expect("the rule has a startup guard");
    unguarded.to_string()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
