//! The alert rules and the Alertmanager example, checked offline: real
//! promtool lints them and runs their unit tests (alerts/tests), real amtool
//! checks the Alertmanager config, and this test checks what the tools do not:
//! every alert carries a severity, a summary, a description with the value and
//! a runbook_url into docs/runbook.md; every alert (each tier) has a unit test;
//! the thresholds equal src/thresholds.rs; inhibit rules name real alerts.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use openclaw_gateway_exporter::thresholds::{self, Tier};
use regex::Regex;
use serde_yaml::Value;

use common::*;

const RULES: &str = "alerts/openclaw-gateway.rules.yml";
const ALERTMANAGER: &str = "alerts/alertmanager.example.yml";
const TESTS_DIR: &str = "alerts/tests";
const RUNBOOK: &str = "docs/runbook.md";

/// Alerts whose thresholds are the field report's tiers, and the tiers they
/// must have. AcceptQueueSaturating only pages (at LISTEN_QUEUE_RATIO.critical).
const THRESHOLDED: [(&str, Tier, &[&str]); 8] = [
    (
        "OpenClawGatewayResponseTimeHigh",
        thresholds::RESPONSE_TIME_SECONDS,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayMemoryHigh",
        thresholds::MEMORY_USAGE_RATIO,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayEventLoopDelayHigh",
        thresholds::EVENT_LOOP_DELAY_SECONDS,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayConnectionsHigh",
        thresholds::ACTIVE_CONNECTIONS,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayErrorRateHigh",
        thresholds::ERROR_RATIO,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayFdsNearLimit",
        thresholds::FD_USAGE_RATIO,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayCloseWaitBuildUp",
        thresholds::CLOSE_WAIT,
        &["warning", "critical"],
    ),
    (
        "OpenClawGatewayAcceptQueueSaturating",
        thresholds::LISTEN_QUEUE_RATIO,
        &["critical"],
    ),
];

/// Known rule problems, reported rather than fixed here (the rules file has
/// another owner). Remove an entry once the rule is fixed.
/// - CollectorFailing's description does not render `{{ $value }}`.

#[derive(Debug)]
struct Rule {
    alert: String,
    expr: String,
    severity: String,
    annotations: BTreeMap<String, String>,
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rules() -> Vec<Rule> {
    let doc = yaml(&repo().join(RULES));
    let groups = doc["groups"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{RULES}: no groups"));
    let mut out = Vec::new();
    for group in groups {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            let mut annotations = BTreeMap::new();
            if let Some(map) = rule["annotations"].as_mapping() {
                for (k, v) in map {
                    annotations.insert(
                        k.as_str().unwrap().to_string(),
                        v.as_str()
                            .unwrap_or_else(|| panic!("{alert}: annotation {k:?} not a string"))
                            .to_string(),
                    );
                }
            }
            out.push(Rule {
                alert: alert.to_string(),
                expr: rule["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{alert}: no expr"))
                    .to_string(),
                severity: rule["labels"]["severity"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                annotations,
            });
        }
    }
    assert!(
        out.len() >= 20,
        "{RULES}: only {} alerting rules found",
        out.len()
    );
    out
}

fn alertnames() -> BTreeSet<String> {
    rules().into_iter().map(|r| r.alert).collect()
}

fn run(tool: &Path, args: &[&str]) -> (Output, String) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn test_files() -> Vec<PathBuf> {
    let dir = repo().join(TESTS_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yml in {TESTS_DIR}");
    files
}

/// GitHub's anchor of a heading: lowercased, punctuation dropped, spaces to
/// hyphens.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Anchors of the `## ` headings of the runbook (outside code blocks), with
/// GitHub's `-1`, `-2` suffixes for repeated headings.
fn runbook_anchors() -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut fenced = false;
    for line in read(RUNBOOK).lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            let base = github_anchor(heading);
            let n = seen.entry(base.clone()).or_insert(0);
            anchors.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
    }
    anchors
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs promtool, a Linux program here"
)]
fn promtool_check_rules_is_clean() {
    let promtool = require_tool("promtool");
    let (out, text) = run(
        &promtool,
        &["check", "rules", "--lint=all", "--lint-fatal", RULES],
    );
    assert!(
        out.status.success(),
        "promtool check rules {RULES} failed:\n{text}"
    );
    let n = rules().len();
    assert!(
        text.contains(&format!("SUCCESS: {n} rules found")),
        "promtool did not find the {n} alerting rules:\n{text}"
    );
    assert!(
        !text.to_lowercase().contains("warn") && !text.to_lowercase().contains("lint"),
        "promtool check rules warns:\n{text}"
    );
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs promtool, a Linux program here"
)]
fn promtool_unit_tests_pass() {
    let promtool = require_tool("promtool");
    let files = test_files();
    let mut args = vec!["test".to_string(), "rules".to_string()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, text) = run(&promtool, &args);
    assert!(
        out.status.success() && !text.contains("FAILED"),
        "promtool test rules failed:\n{text}"
    );
    assert_eq!(
        text.matches("SUCCESS").count(),
        files.len(),
        "not every test file passed:\n{text}"
    );

    // The same invocation fails on a failing test, so the check above can fail.
    let dir = TempDir::new("alert-tests");
    std::fs::copy(repo().join(RULES), dir.path().join("rules.yml")).unwrap();
    let bad = dir.path().join("bad.test.yml");
    std::fs::write(
        &bad,
        r#"rule_files: [rules.yml]
evaluation_interval: 10s
tests:
  - interval: 10s
    input_series:
      - series: 'openclaw_gateway_hung{job="j", instance="i", gateway="g"}'
        values: "1x30"
    alert_rule_test:
      - eval_time: 4m
        alertname: OpenClawGatewayHung
        exp_alerts: []
"#,
    )
    .unwrap();
    let (out, text) = run(&promtool, &["test", "rules", bad.to_str().unwrap()]);
    assert!(
        !out.status.success() && text.contains("FAILED"),
        "promtool passes a failing test:\n{text}"
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "runs amtool, a Linux program here")]
fn amtool_accepts_the_alertmanager_example() {
    let amtool = require_tool("amtool");
    let (out, text) = run(&amtool, &["check-config", ALERTMANAGER]);
    assert!(
        out.status.success() && text.contains("SUCCESS"),
        "amtool check-config {ALERTMANAGER} failed:\n{text}"
    );

    // And it rejects a broken one.
    let dir = TempDir::new("am-config");
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "route:\n  receiver: nowhere\nreceivers:\n  - name: somewhere\n",
    )
    .unwrap();
    let (out, text) = run(&amtool, &["check-config", bad.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "amtool accepts a broken config:\n{text}"
    );
}

#[test]
fn github_anchors_are_computed_like_github() {
    assert_eq!(
        github_anchor("The standard recovery (field report, section 5.1)"),
        "the-standard-recovery-field-report-section-51"
    );
    assert_eq!(github_anchor("OpenClawGatewayHung"), "openclawgatewayhung");
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook() {
    let anchors = runbook_anchors();
    assert!(
        anchors.len() > 10,
        "{RUNBOOK}: only {} ## headings",
        anchors.len()
    );
    let url = Regex::new(r"^docs/runbook\.md#([A-Za-z0-9_-]+)$").unwrap();
    let mut problems = Vec::new();
    for r in rules() {
        let a = &r.alert;
        if !["warning", "critical"].contains(&r.severity.as_str()) {
            problems.push(format!(
                "{a}: severity {:?}, not warning or critical",
                r.severity
            ));
        }
        match r.annotations.get("summary") {
            Some(s) if !s.trim().is_empty() => {}
            _ => problems.push(format!("{a} ({}): no summary", r.severity)),
        }
        match r.annotations.get("description") {
            Some(d) if d.contains("{{ $value") => {}
            Some(d) => problems.push(format!(
                "{a} ({}): description does not render {{{{ $value }}}}: {d:?}",
                r.severity
            )),
            None => problems.push(format!("{a} ({}): no description", r.severity)),
        }
        match r.annotations.get("runbook_url") {
            Some(u) => match url.captures(u) {
                Some(c) => {
                    let anchor = &c[1];
                    if !anchors.contains(anchor) {
                        problems.push(format!(
                            "{a}: runbook_url {u}: no `## ` heading of {RUNBOOK} has anchor #{anchor}"
                        ));
                    }
                    if anchor != github_anchor(a) {
                        problems.push(format!(
                            "{a}: runbook_url {u} is not its own section #{}",
                            github_anchor(a)
                        ));
                    }
                }
                None => problems.push(format!(
                    "{a}: runbook_url {u:?} is not docs/runbook.md#<anchor>"
                )),
            },
            None => problems.push(format!("{a} ({}): no runbook_url", r.severity)),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The number after the last `>` of the expression: the alert's threshold
/// (what follows it, e.g. `unless ...`, is not part of the comparison).
fn threshold(r: &Rule) -> f64 {
    let expr = r.expr.trim();
    let at = expr
        .rfind('>')
        .unwrap_or_else(|| panic!("{} ({}): no `>` in {expr}", r.alert, r.severity));
    let rest = expr[at + 1..].trim_start();
    assert!(
        !rest.starts_with('='),
        "{} ({}): `>=` where the tiers mean strictly above: {expr}",
        r.alert,
        r.severity
    );
    let number = Regex::new(r"^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?").unwrap();
    let m = number.find(rest).unwrap_or_else(|| {
        panic!(
            "{} ({}): no number after the last `>`: {expr}",
            r.alert, r.severity
        )
    });
    m.as_str().parse().unwrap()
}

/// ResponseTimeHigh counts the probes slower than its tier exactly: the
/// `le` bucket bound its expression reads, once, and p99 above the tier is
/// more than 1% of the probes above it (the number after the last `>`).
fn slower_than(r: &Rule) -> f64 {
    let le = Regex::new(r#"le="([0-9.]+)""#).unwrap();
    let bounds: BTreeSet<&str> = le
        .captures_iter(&r.expr)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(
        bounds.len(),
        1,
        "{} ({}): one bucket bound, not {bounds:?}: {}",
        r.alert,
        r.severity,
        r.expr
    );
    assert_eq!(
        threshold(r),
        0.01,
        "{} ({}): p99 means over 1%",
        r.alert,
        r.severity
    );
    let bound: f64 = bounds.into_iter().next().unwrap().parse().unwrap();
    assert!(
        openclaw_gateway_exporter::probe::DURATION_BUCKETS.contains(&bound),
        "{} ({}): {bound} is not a bucket bound of the probe histogram",
        r.alert,
        r.severity
    );
    bound
}

#[test]
fn rule_thresholds_equal_src_thresholds() {
    let rules = rules();
    let mut checked = BTreeSet::new();
    let mut problems = Vec::new();
    for (alert, tier, severities) in THRESHOLDED {
        for r in rules.iter().filter(|r| r.alert == alert) {
            let want = match r.severity.as_str() {
                "warning" => tier.warning,
                "critical" => tier.critical,
                s => panic!("{alert}: severity {s:?}"),
            };
            let got = if alert == "OpenClawGatewayResponseTimeHigh" {
                slower_than(r)
            } else {
                threshold(r)
            };
            if got != want {
                problems.push(format!(
                    "{alert} ({}): threshold {got} in the rule, {want} in src/thresholds.rs",
                    r.severity
                ));
            }
            assert!(
                checked.insert((alert, r.severity.clone())),
                "{alert} ({}) twice",
                r.severity
            );
        }
        for s in severities {
            assert!(
                checked.contains(&(alert, s.to_string())),
                "{RULES}: no {s} tier of {alert}"
            );
        }
    }
    assert_eq!(
        checked.len(),
        15,
        "thresholds checked for {checked:?}, expected 7 two-tier alerts and AcceptQueueSaturating"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_and_tier_has_a_unit_test() {
    let rules = rules();
    let names = alertnames();
    let mut tested = BTreeSet::new(); // alertnames named by an alert_rule_test
    let mut fired = BTreeSet::new(); // (alertname, severity) expected to fire
    let mut quiet_everywhere = false; // one test expects every alert silent
    for file in test_files() {
        let doc = yaml(&file);
        let f = file.display();
        // The tests load the shipped rules, not a copy.
        let shipped = repo().join(RULES).canonicalize().unwrap();
        let rule_files = doc["rule_files"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{f}: no rule_files"));
        for rf in rule_files {
            let rf = file.parent().unwrap().join(rf.as_str().unwrap());
            assert_eq!(
                rf.canonicalize()
                    .unwrap_or_else(|e| panic!("{f}: {}: {e}", rf.display())),
                shipped,
                "{f} loads another rules file"
            );
        }
        for test in doc["tests"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{f}: no tests"))
        {
            let mut silent = BTreeSet::new();
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = case["alertname"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{f}: alert_rule_test without alertname"))
                    .to_string();
                // promtool passes `exp_alerts: []` for an alert that does not
                // exist: a misspelt name would test nothing.
                assert!(
                    names.contains(&name),
                    "{f}: tests {name}, which {RULES} does not define"
                );
                let exp = case["exp_alerts"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default();
                if exp.is_empty() {
                    silent.insert(name.clone());
                }
                for a in &exp {
                    let sev = a["exp_labels"]["severity"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{f}: {name}: expected alert without severity"));
                    fired.insert((name.clone(), sev.to_string()));
                }
                tested.insert(name);
            }
            quiet_everywhere |= names.iter().all(|n| silent.contains(n));
        }
    }
    let mut problems = Vec::new();
    for r in &rules {
        if !tested.contains(&r.alert) {
            problems.push(format!("{}: no alert_rule_test in {TESTS_DIR}", r.alert));
        }
        if !fired.contains(&(r.alert.clone(), r.severity.clone())) {
            problems.push(format!(
                "{} ({}): no test in {TESTS_DIR} expects this tier to fire",
                r.alert, r.severity
            ));
        }
    }
    if !quiet_everywhere {
        problems.push(format!(
            "no test in {TESTS_DIR} expects every alert of {RULES} to stay silent (the quiet gateway)"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `name op value` matchers of Alertmanager, e.g. `alertname=~"A|B"`.
fn matchers(rule: &Value, side: &str) -> Vec<(String, String, String)> {
    let re = Regex::new(r#"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$"#).unwrap();
    let mut out = Vec::new();
    for m in rule[format!("{side}_matchers").as_str()]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        let m = m.as_str().unwrap();
        let c = re
            .captures(m)
            .unwrap_or_else(|| panic!("{ALERTMANAGER}: cannot read matcher {m:?}"));
        out.push((c[1].to_string(), c[2].to_string(), c[3].to_string()));
    }
    // The deprecated forms.
    for (key, op) in [("match", "="), ("match_re", "=~")] {
        if let Some(map) = rule[format!("{side}_{key}").as_str()].as_mapping() {
            for (k, v) in map {
                out.push((
                    k.as_str().unwrap().to_string(),
                    op.to_string(),
                    v.as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn inhibit_rules_name_existing_alerts() {
    let names = alertnames();
    let doc = yaml(&repo().join(ALERTMANAGER));
    let inhibit = doc["inhibit_rules"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{ALERTMANAGER}: no inhibit_rules"));
    assert!(!inhibit.is_empty());
    let plain = Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").unwrap();
    let mut problems = Vec::new();
    let mut named = 0;
    for (i, rule) in inhibit.iter().enumerate() {
        for side in ["source", "target"] {
            let ms = matchers(rule, side);
            if ms.is_empty() {
                problems.push(format!("inhibit rule {i}: no {side} matchers"));
            }
            for (label, op, value) in ms {
                if label != "alertname" {
                    continue;
                }
                let alternatives: Vec<&str> = if op.contains('~') {
                    value.split('|').collect()
                } else {
                    vec![value.as_str()]
                };
                for a in alternatives {
                    named += 1;
                    if !plain.is_match(a) {
                        problems.push(format!(
                            "inhibit rule {i}: {side} alertname{op}{value:?}: {a:?} is not a plain alert name"
                        ));
                    } else if !names.contains(a) {
                        problems.push(format!(
                            "inhibit rule {i}: {side} names {a}, which {RULES} does not define"
                        ));
                    }
                }
            }
        }
    }
    assert!(named > 5, "only {named} alertnames in the inhibit rules");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
