//! The Grafana dashboard, validated offline: structure Grafana needs, every
//! PromQL expression parsed by real Prometheus (promtool), every metric found
//! in a real /metrics of the exporter, and thresholds equal to
//! src/thresholds.rs (which the alert rules are checked against too).

mod common;

use std::collections::{BTreeSet, HashSet};

use openclaw_gateway_exporter::thresholds::{self, Tier};
use serde_json::Value;

use common::*;
use openclaw_gateway_exporter::names;

const ROWS: [&str; 12] = [
    "Overview",
    "Latency",
    "Control plane (RPC probe)",
    "Event loop",
    "Memory",
    "Connections",
    "Dependencies",
    "Errors",
    "File descriptors",
    "Logs",
    "Watchdog",
    "Exporter health",
];

/// Panels whose thresholds are the field report's tiers.
const THRESHOLDED: [(&str, Tier); 9] = [
    (
        "Liveness probe latency p50 / p99",
        thresholds::RESPONSE_TIME_SECONDS,
    ),
    ("Last probe duration", thresholds::RESPONSE_TIME_SECONDS),
    (
        "Event-loop delay p99 above the sampling floor (peak)",
        thresholds::EVENT_LOOP_DELAY_SECONDS,
    ),
    ("Memory, percent of limit", thresholds::MEMORY_USAGE_RATIO),
    (
        "Active (established inbound) connections",
        thresholds::ACTIVE_CONNECTIONS,
    ),
    ("CLOSE_WAIT", thresholds::CLOSE_WAIT),
    (
        "Accept queue, fraction of capacity",
        thresholds::LISTEN_QUEUE_RATIO,
    ),
    ("Probe error ratio", thresholds::ERROR_RATIO),
    (
        "File descriptors, percent of limit",
        thresholds::FD_USAGE_RATIO,
    ),
];

fn dashboards() -> Vec<(String, Value)> {
    let dir = repo().join("dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let json: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.display().to_string(), json));
        }
    }
    assert!(!out.is_empty(), "no dashboards in {}", dir.display());
    out
}

fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// Every PromQL expression of the dashboard: panel targets and the selectors
/// inside `label_values(...)` variable queries.
fn expressions(d: &Value) -> Vec<String> {
    let mut out: Vec<String> = panels(d)
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(',').map(|(sel, _)| sel))
                .or_else(|| {
                    q.strip_prefix("label_values(")
                        .and_then(|r| r.strip_suffix(')'))
                })
                .unwrap_or(q);
            out.push(inner.to_string());
        }
    }
    out
}

#[test]
fn structure_grafana_needs() {
    let re = regex::Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    for (file, d) in dashboards() {
        let all = panels(&d);
        let mut ids = HashSet::new();
        for p in &all {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: panel without id: {}", p["title"]));
            assert!(ids.insert(id), "{file}: duplicate panel id {id}");
            let kind = p["type"].as_str().unwrap();
            assert!(
                ["row", "timeseries", "stat", "gauge"].contains(&kind),
                "{file}: panel {:?} has type {kind}: use timeseries, stat or gauge (no Angular panels)",
                p["title"]
            );
        }
        // gridPos: inside the 24-column grid, no two panels overlap.
        let rects: Vec<(i64, i64, i64, i64, &str)> = all
            .iter()
            .map(|p| {
                let g = &p["gridPos"];
                let r = (
                    g["x"].as_i64().unwrap(),
                    g["y"].as_i64().unwrap(),
                    g["w"].as_i64().unwrap(),
                    g["h"].as_i64().unwrap(),
                    p["title"].as_str().unwrap_or(""),
                );
                assert!(
                    r.0 >= 0 && r.2 > 0 && r.3 > 0 && r.0 + r.2 <= 24,
                    "{file}: {:?} out of the grid",
                    r.4
                );
                r
            })
            .collect();
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                let overlap =
                    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3;
                assert!(!overlap, "{file}: panels {:?} and {:?} overlap", a.4, b.4);
            }
        }
        // Rows in the order of the issue, top to bottom.
        let mut rows: Vec<(i64, &str)> = all
            .iter()
            .filter(|p| p["type"] == "row")
            .map(|p| {
                (
                    p["gridPos"]["y"].as_i64().unwrap(),
                    p["title"].as_str().unwrap(),
                )
            })
            .collect();
        rows.sort();
        let titles: Vec<&str> = rows.iter().map(|r| r.1).collect();
        assert_eq!(titles, ROWS, "{file}: rows");

        // Variables: a datasource one plus job, instance, gateway; every
        // variable used is defined.
        let defined: HashSet<String> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        for v in ["datasource", "job", "instance", "gateway"] {
            assert!(defined.contains(v), "{file}: variable {v} missing");
        }
        let ds = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap();
        assert_eq!(ds["type"], "datasource");
        assert_eq!(ds["query"], "prometheus");
        let text = d.to_string();
        for cap in re.captures_iter(&text) {
            let name = &cap[1];
            if !name.starts_with("__") {
                assert!(
                    defined.contains(name),
                    "{file}: ${name} is used but not defined"
                );
            }
        }
    }
}

/// Substitute the variables the way Grafana would for "All".
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("$gateway", ".*")
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs prometheus, a Linux program here"
)]
fn every_expression_parses_in_real_prometheus() {
    let promtool = require_tool("promtool");
    let dir = TempDir::new("dash-rules");
    for (file, d) in dashboards() {
        let exprs = expressions(&d);
        assert!(
            exprs.len() > 20,
            "{file}: only {} expressions found",
            exprs.len()
        );
        // promtool parses rule expressions: one recording rule per expression.
        let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
        for (i, e) in exprs.iter().enumerate() {
            let e = substitute(e);
            assert!(!e.contains('$'), "{file}: unsubstituted variable in {e}");
            rules.push_str(&format!(
                "      - record: dashboard:expr_{i}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
        let path = dir.path().join("dashboard.rules.yml");
        std::fs::write(&path, &rules).unwrap();
        let out = std::process::Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: promtool rejects an expression:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // And a broken expression is rejected, so the check can fail.
        std::fs::write(
            &path,
            "groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: 'rate(foo[5m]'\n",
        )
        .unwrap();
        let bad = std::process::Command::new(&promtool)
            .args(["check", "rules"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!bad.status.success());
    }
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs node (the fixture gateway), a Linux program here"
)]
fn every_metric_exists_in_a_real_scrape() {
    // A fixture gateway with everything the collectors look at.
    let LoggedFixture {
        state, logs, fx, ..
    } = LoggedFixture::start(&[]);
    // A token turns the RPC probe on, whose series the dashboard shows.
    let token = state.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    // Listed in a config file with a remediation block (a dry run that
    // never confirms), for the watchdog's series.
    let conf = state.path().join("exporter.yml");
    std::fs::write(
        &conf,
        format!(
            "remediation:\n  state_file: {}\ngateways:\n  - url: {}\n    state_dir: {}\n    log_path: {}\n    token_file: {}\n    remediation: {{method: {{kind: argv, argv: [\"true\"]}}, confirm: 1h, dry_run: true}}\n",
            state.path().join("remediation.json").display(),
            fx.url(),
            state.path().display(),
            logs.path().display(),
            token.display(),
        ),
    )
    .unwrap();
    let exp = Harness::exporter()
        .args(&["--config.file", dir_str(&conf)])
        .fast()
        .every("latency", "200ms")
        .every("event-loop", "1s")
        .every("logs", "200ms")
        .start();
    let scrape = exp.wait("every collector ran", |s| {
        let ready = s.0.iter()
                .any(|x| x.name == names::EVENTLOOP_DELAY_P99_SECONDS.name())
                && s.0
                    .iter()
                    .any(|x| x.name == "openclaw_gateway_probe_duration_seconds_bucket")
                && s.0
                    .iter()
                    .any(|x| x.name == names::PROCESS_RESIDENT_MEMORY_BYTES.name())
                && s.0
                    .iter()
                    .any(|x| x.name == names::LISTEN_QUEUE_USAGE_RATIO.name())
                // The connections and lifecycle samplers' first round, on
                // the samplers' pool after the process sampler's.
                && [names::TCP_CONNECTIONS, names::LOCK_FILES]
                    .iter()
                    .all(|f| s.0.iter().any(|x| x.name == f.name()));
        ready.then(|| {
            s.0.iter()
                .map(|x| x.name.clone())
                .collect::<BTreeSet<String>>()
        })
    });
    let re = regex::Regex::new(r"\b(openclaw_gateway_[a-z0-9_]+)").unwrap();
    for (file, d) in dashboards() {
        let mut named = BTreeSet::new();
        for e in expressions(&d) {
            for cap in re.captures_iter(&e) {
                named.insert(cap[1].to_string());
            }
        }
        assert!(
            named.len() > 20,
            "{file}: only {} metrics named",
            named.len()
        );
        let missing: Vec<&String> = named.iter().filter(|m| !scrape.contains(*m)).collect();
        assert!(
            missing.is_empty(),
            "{file}: metrics not in a real scrape: {missing:?}"
        );
    }
}

#[test]
fn thresholds_equal_the_alerts() {
    for (file, d) in dashboards() {
        let all = panels(&d);
        for (title, tier) in THRESHOLDED {
            let p = all
                .iter()
                .find(|p| p["title"] == title)
                .unwrap_or_else(|| panic!("{file}: no panel {title:?}"));
            let steps: Vec<f64> = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["value"].as_f64())
                .collect();
            assert_eq!(
                steps,
                [tier.warning, tier.critical],
                "{file}: {title:?} thresholds"
            );
            if p["type"] == "timeseries" {
                assert_eq!(
                    p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"], "line+area",
                    "{file}: {title:?} draws its thresholds"
                );
            }
        }
    }
}
