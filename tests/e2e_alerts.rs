//! End to end, for real: the fixture gateway, the exporter, Debian's
//! Prometheus (scraping every 1 s with our rules) and Alertmanager (with our
//! example routing and inhibition) paging a webhook receiver run by this test.
//!
//! The rules are generated from the shipped alerts/openclaw-gateway.rules.yml,
//! never copied: every `for:` divided by 30 and every range (and the startup
//! guard that spans one) divided by 15, so the suite runs in minutes. The
//! second test runs the rules as shipped, at a 15 s scrape.
//! promtool's unit tests cover the real durations.
//!
//! Linux only: it runs node, Prometheus and Alertmanager, Linux programs here.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_yaml::Value;

use common::*;

/// One notification as Alertmanager sent it.
#[derive(Debug, Clone)]
struct Note {
    receiver: String,
    alertname: String,
    gateway: String,
    status: String,
    at: Instant,
}

/// A webhook receiver: records every alert of every notification.
struct Receiver {
    addr: String,
    notes: Arc<Mutex<Vec<Note>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let sink = notes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    continue;
                };
                let mut notes = sink.lock().unwrap();
                for a in v["alerts"].as_array().into_iter().flatten() {
                    let note = Note {
                        receiver: path.trim_start_matches('/').to_string(),
                        alertname: a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        gateway: a["labels"]["gateway"].as_str().unwrap_or("").to_string(),
                        status: a["status"].as_str().unwrap_or("").to_string(),
                        at: Instant::now(),
                    };
                    eprintln!(
                        "[receiver] {} {} {}",
                        note.receiver, note.status, note.alertname
                    );
                    notes.push(note);
                }
            }
        });
        Receiver { addr, notes }
    }

    fn since(&self, t: Instant) -> Vec<Note> {
        self.notes
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.at >= t)
            .cloned()
            .collect()
    }

    /// Wait until `receiver` got `alertname` with `status` after `t`.
    fn wait(&self, t: Instant, receiver: &str, alertname: &str, status: &str, timeout: Duration) {
        wait_for(
            timeout,
            &format!("{receiver} to get {alertname} {status}"),
            || {
                self.since(t)
                    .iter()
                    .any(|n| {
                        n.receiver == receiver && n.alertname == alertname && n.status == status
                    })
                    .then_some(())
            },
        );
    }

    /// Alerts that paged (firing on the pager receiver) after `t`.
    fn pages_since(&self, t: Instant) -> Vec<String> {
        let mut v: Vec<String> = self
            .since(t)
            .into_iter()
            .filter(|n| n.receiver == "pager" && n.status == "firing")
            .map(|n| n.alertname)
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Parse a Prometheus duration such as `30s`, `2m`, `1h`.
fn prom_seconds(d: &str) -> u64 {
    let (n, unit) = d.split_at(d.len() - 1);
    let n: u64 = n.parse().unwrap();
    match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        u => panic!("unit {u}"),
    }
}

/// The shipped rules with shorter `for:` and ranges.
fn fast_rules() -> String {
    let text = std::fs::read_to_string(repo().join("alerts/openclaw-gateway.rules.yml")).unwrap();
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    let range = regex::Regex::new(r"\[(\d+)([smh])\]").unwrap();
    let guard =
        regex::Regex::new(r"(openclaw_gateway_process_start_time_seconds < )(\d+)").unwrap();
    let mut rules = 0;
    let mut guards = 0;
    for group in doc["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rules += 1;
            if let Some(f) = rule.get("for").and_then(|f| f.as_str()).map(str::to_string) {
                rule["for"] = Value::from(format!("{}s", (prom_seconds(&f) / 30).max(1)));
            }
            let expr = rule["expr"].as_str().unwrap().to_string();
            // At least 10 s: the critical error rate's 1 m window would be
            // 4 s, shorter than its shortened 4 s `for:` can see a 5% rate
            // through (one failure every 20 s).
            let expr = range.replace_all(&expr, |c: &regex::Captures| {
                format!(
                    "[{}s]",
                    (prom_seconds(&format!("{}{}", &c[1], &c[2])) / 15).max(10)
                )
            });
            // The startup guard (seconds since the process started) spans
            // the ranges' window: it shrinks with them.
            guards += guard.find_iter(&expr).count();
            let expr = guard.replace_all(&expr, |c: &regex::Captures| {
                format!("{}{}", &c[1], c[2].parse::<u64>().unwrap() / 15)
            });
            rule["expr"] = Value::from(expr.into_owned());
        }
    }
    assert!(rules >= 25, "all rules loaded");
    assert!(guards >= 4, "the startup guards were found and shortened");
    serde_yaml::to_string(&doc).unwrap()
}

/// The example Alertmanager config, its receivers pointed at this test,
/// its waits shortened unless `as_shipped`.
fn alertmanager_config(receiver: &str, as_shipped: bool) -> String {
    let text = std::fs::read_to_string(repo().join("alerts/alertmanager.example.yml")).unwrap();
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    for r in doc["receivers"].as_sequence_mut().unwrap() {
        let name = r["name"].as_str().unwrap().to_string();
        let path = if name.contains("pager") {
            "pager"
        } else {
            "tickets"
        };
        r["webhook_configs"][0]["url"] = Value::from(format!("http://{receiver}/{path}"));
    }
    if as_shipped {
        return serde_yaml::to_string(&doc).unwrap();
    }
    let fast = |route: &mut Value| {
        for (k, v) in [
            ("group_wait", "1s"),
            ("group_interval", "1s"),
            ("repeat_interval", "1h"),
        ] {
            if route.get(k).is_some() || k != "repeat_interval" {
                route[k] = Value::from(v);
            }
        }
    };
    fast(&mut doc["route"]);
    for r in doc["route"]["routes"].as_sequence_mut().unwrap() {
        fast(r);
    }
    serde_yaml::to_string(&doc).unwrap()
}

/// Alertmanager on a free port, delivering to `receiver` with
/// [`alertmanager_config`], its files in `dir`; returns it and its port.
fn start_alertmanager(
    alertmanager: &Path,
    dir: &Path,
    receiver: &str,
    as_shipped: bool,
) -> (Proc, u16) {
    let am_port = free_port();
    std::fs::write(
        dir.join("am.yml"),
        alertmanager_config(receiver, as_shipped),
    )
    .unwrap();
    let am = spawn_logged(
        "alertmanager",
        Command::new(alertmanager)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
    );
    (am, am_port)
}

#[test]
fn faults_page_the_right_alert_and_nothing_else() {
    let prometheus = require_tool("prometheus");
    let alertmanager = require_tool("prometheus-alertmanager");
    let dir = TempDir::new("e2e");
    let state = dir.path().join("state");
    let sd = state.to_str().unwrap();
    let receiver = Receiver::start();

    let fx = Fixture::start(&["--port", "0", "--state-dir", sd]);
    let exp = Harness::exporter()
        .name("gw")
        .url(&fx.url())
        .state_dir(sd)
        .memory_limit("400MiB")
        .every("connections", "1s")
        .every("memory", "1s")
        .every("latency", "1s")
        .every("event-loop", "2s")
        .every("errors", "20s")
        .args(&["--probe.timeout", "1s"])
        .start();

    let (_am, am_port) = start_alertmanager(&alertmanager, dir.path(), &receiver.addr, false);
    std::fs::write(dir.path().join("rules.yml"), fast_rules()).unwrap();
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{rules}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: openclaw-gateway-exporter\n    static_configs:\n      - targets: ['{exp}']\n",
        rules = dir.path().join("rules.yml").display(),
        exp = exp.addr,
    );
    let (_prom, prom_addr) = start_prometheus(&prometheus, dir.path(), &prom_cfg);
    wait_for(
        Duration::from_secs(60),
        "Prometheus to scrape the exporter",
        || {
            let (_, _, body) = http_get(
                &prom_addr,
                "/api/v1/query?query=openclaw_gateway_process_up",
                &[],
            )
            .ok()?;
            body.contains("\"1\"").then_some(())
        },
    );

    // A healthy gateway pages nobody and tickets nobody: 40 s here is 20
    // minutes of `for:`, longer than any rule waits. Not even pending.
    let quiet = Instant::now();
    std::thread::sleep(Duration::from_secs(40));
    let noise = receiver.since(quiet);
    assert!(
        noise.is_empty(),
        "a healthy gateway raised alerts: {noise:?}"
    );
    let (_, _, alerts) = http_get(&prom_addr, "/api/v1/query?query=ALERTS", &[]).unwrap();
    assert!(
        alerts.contains("\"result\":[]"),
        "a healthy gateway has alerts pending or firing: {alerts}"
    );

    let phase = |name: &str, expected: &str, inject: &dyn Fn(), recover: &dyn Fn()| {
        eprintln!("=== phase {name}");
        let t = Instant::now();
        inject();
        receiver.wait(t, "pager", expected, "firing", Duration::from_secs(90));
        recover();
        receiver.wait(t, "pager", expected, "resolved", Duration::from_secs(120));
        let pages = receiver.pages_since(t);
        assert_eq!(
            pages,
            [expected.to_string()],
            "{name}: only {expected} may page"
        );
        // Let Prometheus forget the fault before the next one.
        std::thread::sleep(Duration::from_secs(5));
    };

    phase(
        "SIGSTOP",
        "OpenClawGatewayHung",
        &|| fx.proc.signal("STOP"),
        &|| fx.proc.signal("CONT"),
    );

    phase(
        "memory past 90% of the limit",
        "OpenClawGatewayMemoryHigh",
        &|| {
            fx.cmd("alloc?mb=380");
        },
        &|| {
            fx.cmd("free");
        },
    );

    // Short, frequent stalls: the loop's p99 exceeds 50 ms above the floor
    // while every probe still answers well under 100 ms.
    let stalls = Arc::new(Mutex::new(false));
    phase(
        "event-loop blocking",
        "OpenClawGatewayEventLoopDelayHigh",
        &|| {
            *stalls.lock().unwrap() = true;
            let stalls = stalls.clone();
            let addr = fx.addr();
            std::thread::spawn(move || {
                while *stalls.lock().unwrap() {
                    let _ = http_get(&addr, "/__fixture/block?ms=90", &[]);
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        },
        &|| *stalls.lock().unwrap() = false,
    );

    let held: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
    phase(
        "1600 connections",
        "OpenClawGatewayConnectionsHigh",
        &|| {
            // In batches: a burst of 1600 accepts would also stall the
            // gateway's event loop, a true page of its own.
            let mut held = held.lock().unwrap();
            for _ in 0..32 {
                for _ in 0..50 {
                    held.push(std::net::TcpStream::connect(fx.addr()).unwrap());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        },
        &|| held.lock().unwrap().clear(),
    );

    phase(
        "5% failing probes",
        "OpenClawGatewayErrorRateHigh",
        &|| {
            fx.cmd("status?code=500&every=20");
        },
        &|| {
            fx.cmd("status?code=200");
        },
    );

    // A crash: down (pages) and the stale lock it left (a ticket).
    eprintln!("=== phase kill -9");
    let t = Instant::now();
    fx.proc.signal("KILL");
    receiver.wait(
        t,
        "pager",
        "OpenClawGatewayDown",
        "firing",
        Duration::from_secs(90),
    );
    receiver.wait(
        t,
        "tickets",
        "OpenClawGatewayStaleLock",
        "firing",
        Duration::from_secs(90),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        receiver.pages_since(t),
        ["OpenClawGatewayDown"],
        "only Down pages after a crash"
    );
}

/// `query` percent-encoded for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query's first result; `None` when it has none.
fn prom_value(prom: &str, query: &str) -> Option<f64> {
    let (_, _, body) =
        http_get(prom, &format!("/api/v1/query?query={}", encode(query)), &[]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A duration as Prometheus's humanizeDuration writes one, e.g. `603.2ms` or
/// `1.2s`, in seconds.
fn humanized_seconds(text: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (text.strip_suffix('s')?, 1.0)
    };
    Some(n.parse::<f64>().ok()? * scale)
}

/// The rules exactly as shipped, scraped and evaluated every 15 s as in the
/// field, the example Alertmanager config as shipped (pager group_wait 10 s),
/// each fixture gateway watched by an exporter with its default intervals:
/// - err answers 500 to every 20th probe (5%) from 2 m of age (the critical
///   error rate's startup guard): ErrorRateHigh pages within its 2 m `for:`
///   + the 60 s error interval + the 15 s scrape + the 10 s group_wait;
/// - block's event loop is blocked for 60 s: every event-loop series is
///   absent meanwhile, and the stall counter shows the block in Prometheus
///   once the gateway answers again;
/// - slow answers every probe in 600 ms: ResponseTimeHigh, once its 6 m
///   startup guard has passed, quotes their true mean, not the ~1 s that
///   histogram_quantile interpolates.
///
/// About 7 minutes: the response-time rule's startup guard sets the length.
#[test]
fn shipped_rules_on_time_at_a_15s_scrape() {
    let prometheus = require_tool("prometheus");
    let alertmanager = require_tool("prometheus-alertmanager");
    let dir = TempDir::new("e2e-shipped");
    let receiver = Receiver::start();
    let gateways: Vec<(&str, TempDir, Fixture, Exporter)> = ["err", "block", "slow"]
        .into_iter()
        .map(|name| {
            let (state, fx) = Fixture::with_state(&[]);
            let exp = Harness::exporter().name(name).fixture(&state, &fx).start();
            (name, state, fx, exp)
        })
        .collect();
    let started = Instant::now();
    let fx = |name: &str| &gateways.iter().find(|g| g.0 == name).unwrap().2;
    fx("slow").cmd("delay?ms=600");

    let (_am, am_port) = start_alertmanager(&alertmanager, dir.path(), &receiver.addr, true);
    let targets: Vec<String> = gateways.iter().map(|g| format!("'{}'", g.3.addr)).collect();
    let prom_cfg = format!(
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files: [{rules}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: openclaw-gateway-exporter\n    static_configs:\n      - targets: [{targets}]\n",
        rules = repo().join("alerts/openclaw-gateway.rules.yml").display(),
        targets = targets.join(", "),
    );
    let (_prom, prom) = start_prometheus(&prometheus, dir.path(), &prom_cfg);

    // block: once Prometheus has its stall counter (0), 60 s of a blocked loop.
    let stall = "openclaw_gateway_eventloop_stall_seconds_total{gateway=\"block\"}";
    let before = wait_for(Duration::from_secs(60), "a first stall count", || {
        prom_value(&prom, stall)
    });
    fx("block").cmd("block?ms=60000");
    std::thread::sleep(Duration::from_secs(40));
    assert_eq!(
        prom_value(
            &prom,
            "openclaw_gateway_eventloop_delay_max_seconds{gateway=\"block\"}"
        ),
        None,
        "a blocked loop has no event-loop series"
    );
    let stalled = wait_for(
        Duration::from_secs(90),
        "the block in the stall counter",
        || prom_value(&prom, stall).filter(|v| *v > before),
    ) - before;
    eprintln!("block: {stalled:.1} s of stall counted");
    assert!(
        (55.0..=67.0).contains(&stalled),
        "a 60 s block counted as {stalled} s"
    );

    // err: 5% failing from 2 m of age.
    let guard = Duration::from_secs(125);
    std::thread::sleep(guard.saturating_sub(started.elapsed()));
    let fault = Instant::now();
    fx("err").cmd("status?code=500&every=20");
    let bound = Duration::from_secs(120 + 60 + 15 + 10);
    wait_for(
        bound + Duration::from_secs(60),
        "err's ErrorRateHigh page",
        || {
            receiver
                .since(fault)
                .into_iter()
                .find(|n| {
                    n.receiver == "pager"
                        && n.status == "firing"
                        && n.alertname == "OpenClawGatewayErrorRateHigh"
                        && n.gateway == "err"
                })
                .map(|n| n.at)
        },
    );
    let took = receiver
        .since(fault)
        .into_iter()
        .find(|n| n.alertname == "OpenClawGatewayErrorRateHigh" && n.gateway == "err")
        .unwrap()
        .at
        - fault;
    eprintln!(
        "err: ErrorRateHigh paged {:.0} s after 5% of probes began failing",
        took.as_secs_f64()
    );
    assert!(took <= bound, "paged after {took:?}, later than {bound:?}");

    // slow: the critical response-time alert, pending or firing, once the
    // guard's 6 m have passed, quotes the probes' true time.
    let description = wait_for(
        Duration::from_secs(480).saturating_sub(started.elapsed()),
        "slow's ResponseTimeHigh",
        || {
            let (_, _, body) = http_get(&prom, "/api/v1/alerts", &[]).ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "OpenClawGatewayResponseTimeHigh"
                        && a["labels"]["gateway"] == "slow"
                        && a["labels"]["severity"] == "critical"
                })
                .and_then(|a| a["annotations"]["description"].as_str().map(str::to_string))
        },
    );
    eprintln!("slow: {description}");
    assert!(
        description.starts_with("100% of /healthz probes"),
        "{description}"
    );
    let quoted = description
        .split("they took ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(humanized_seconds)
        .unwrap_or_else(|| panic!("no time quoted: {description}"));
    assert!(
        (0.54..=0.66).contains(&quoted),
        "600 ms answers quoted as {quoted} s: {description}"
    );
}
