//! End to end, for real: the fixture gateway, the exporter, Debian's
//! Prometheus (scraping every 1 s with our rules) and Alertmanager (with our
//! example routing and inhibition) paging a webhook receiver run by this test.
//!
//! The rules are generated from the shipped alerts/openclaw-gateway.rules.yml,
//! never copied: every `for:` and `keep_firing_for:` divided by 30 and every
//! range (and the startup guard that spans one) divided by 15, so the suite
//! runs in minutes. The second test runs the rules as shipped, at a 15 s
//! scrape.
//! promtool's unit tests cover the real durations.
//!
//! Linux only: it runs node, Prometheus and Alertmanager, Linux programs here.
#![cfg(target_os = "linux")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_yaml::Value;

use common::alerting::*;
use common::*;

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
            for key in ["for", "keep_firing_for"] {
                if let Some(f) = rule.get(key).and_then(|f| f.as_str()).map(str::to_string) {
                    rule[key] = Value::from(format!("{}s", (prom_seconds(&f) / 30).max(1)));
                }
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
    let prom_cfg = prometheus_config("1s", &dir.path().join("rules.yml"), am_port, &[&exp.addr]);
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
    let targets: Vec<&str> = gateways.iter().map(|g| g.3.addr.as_str()).collect();
    let prom_cfg = prometheus_config(
        "15s",
        &repo().join("alerts/openclaw-gateway.rules.yml"),
        am_port,
        &targets,
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
