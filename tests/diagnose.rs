//! `diagnose` and `check` as an operator runs them, against the fixture.
//!
//! Linux only: it runs the fixture gateway on node, a Linux program here.
#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Output};

use common::*;

fn run(args: &[&str]) -> Output {
    Command::new(EXPORTER)
        .args(args)
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn diagnose_and_check_follow_a_healthy_stopped_and_crashed_gateway() {
    // A gateway up for 10 minutes, past the startup grace.
    let LoggedFixture {
        state, logs, fx, ..
    } = LoggedFixture::start(&["--uptime-ms", "600000"]);
    let sd = dir_str(state.path());
    // Let the fixture's event-loop monitor finish its first window.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let url = fx.url();
    let lp = logs.path().to_str().unwrap();
    let args = [
        "--gateway.url",
        &url,
        "--gateway.state-dir",
        sd,
        "--gateway.log-path",
        lp,
        "--probe.timeout",
        "2s",
    ];
    let with = |sub: &[&str]| {
        let mut a: Vec<&str> = sub.to_vec();
        a.extend_from_slice(&args);
        run(&a)
    };

    let healthy = with(&["diagnose"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy));
    let out = text(&healthy);
    assert!(
        out.contains("OK    process") && out.contains("found by lock_file"),
        "{out}"
    );
    assert!(out.contains("overall: OK"), "{out}");
    assert!(
        out.contains("OK    hung") && out.contains("not hung"),
        "{out}"
    );
    assert!(
        out.contains("OK    startup      started: up 60"),
        "its own uptime: {out}"
    );

    let json = with(&["diagnose", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["status"], "OK");
    assert_eq!(v["gateways"][0]["checks"][0]["check"], "process");

    let ok = with(&["check"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("GET /healthz 200"), "{}", text(&ok));

    // A WARN line in the log shows up in the report.
    fx.cmd("log?level=ERROR&message=Process%20memory%20950MB%20exceeds%20limit%201GB");

    // The field report's hang: alive, listening, not answering.
    fx.proc.signal("STOP");
    let started = std::time::Instant::now();
    let hung = with(&["diagnose"]);
    let took = started.elapsed();
    fx.proc.signal("CONT");
    assert_eq!(hung.status.code(), Some(2), "{}", text(&hung));
    let out = text(&hung);
    assert!(out.contains("CRIT  hung") && out.contains("HUNG"), "{out}");
    assert!(
        out.contains("Process memory 950MB exceeds limit 1GB"),
        "recent log lines: {out}"
    );
    assert!(
        out.contains("openclaw gateway stop --force"),
        "what to do: {out}"
    );
    assert!(
        took.as_secs_f64() < 2.0 * 2.0 + 2.0,
        "probes run concurrently: {took:?}"
    );

    fx.proc.signal("STOP");
    let failing = with(&["check"]);
    fx.proc.signal("CONT");
    assert_eq!(failing.status.code(), Some(1));
    assert!(text(&failing).contains("HUNG"), "{}", text(&failing));

    // A crash: down, and the stale lock it left is named.
    fx.proc.signal("KILL");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let down = with(&["diagnose"]);
    assert_eq!(down.status.code(), Some(2));
    let out = text(&down);
    assert!(
        out.contains("CRIT  process") && out.contains("1 stale"),
        "{out}"
    );
    assert!(out.contains("rm -f"), "clear the stale lock: {out}");
    let gone = with(&["check"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone).contains("no gateway process"),
        "{}",
        text(&gone)
    );
}

/// A gateway younger than the startup grace is *starting*: what would be
/// CRIT (here /readyz 503 `startup-sidecars`, as the real gateway answers for
/// its first seconds) is WARN, the exit code 1; the same answer from a
/// gateway up for 10 minutes is CRIT, 2. `check` keeps its meaning: the
/// gateway answers /healthz, so it passes either way. A stopped gateway is
/// hung, not starting, however young.
#[test]
fn a_young_gateway_is_starting_at_most_warn() {
    let grace = openclaw_gateway_exporter::thresholds::STARTUP_GRACE_SECONDS;
    for (uptime_ms, code) in [("0", 1), ("600000", 2)] {
        let (state, fx) = Fixture::with_state(&["--uptime-ms", uptime_ms]);
        let sd = dir_str(state.path());
        fx.cmd("ready?value=false&failing=startup-sidecars");
        let url = fx.url();
        let with = |sub: &[&str]| {
            let mut a: Vec<&str> = sub.to_vec();
            a.extend_from_slice(&["--gateway.url", &url, "--gateway.state-dir", sd]);
            a.extend_from_slice(&["--probe.timeout", "2s"]);
            run(&a)
        };
        let d = with(&["diagnose"]);
        let out = text(&d);
        assert_eq!(d.status.code(), Some(code), "uptime {uptime_ms} ms: {out}");
        if code == 1 {
            let startup = out
                .lines()
                .find(|l| l.starts_with("  WARN  startup      starting: up "))
                .unwrap_or_else(|| panic!("no starting line: {out}"));
            assert!(
                startup.contains(&format!(
                    " s of the {grace:.0} s startup grace (from its /readyz uptimeMs)"
                )),
                "{out}"
            );
            assert!(
                out.contains("WARN  readiness    not ready (503), failing: startup-sidecars (CRIT once past the startup grace)"),
                "{out}"
            );
            assert!(out.contains("run diagnose again in"), "{out}");
            let json = with(&["diagnose", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
            assert_eq!(v["gateways"][0]["starting"], true, "{v}");
            assert_eq!(v["gateways"][0]["checks"][1]["check"], "startup", "{v}");
            assert_eq!(v["gateways"][0]["checks"][1]["status"], "WARN", "{v}");
        } else {
            assert!(out.contains("OK    startup      started: up 60"), "{out}");
            assert!(
                out.contains("CRIT  readiness    not ready (503), failing: startup-sidecars\n"),
                "{out}"
            );
        }
        let c = with(&["check"]);
        assert_eq!(c.status.code(), Some(0), "check: {}", text(&c));

        if code == 1 {
            fx.proc.signal("STOP");
            let hung = with(&["diagnose"]);
            fx.proc.signal("CONT");
            let out = text(&hung);
            assert_eq!(hung.status.code(), Some(2), "{out}");
            assert!(
                out.contains("CRIT  hung") && out.contains("but hung: not starting"),
                "{out}"
            );
        }
    }
}

/// The gateway token goes to /readyz and nowhere else: not in what
/// `diagnose` (text or JSON) or `check` print, at trace level, healthy or hung.
#[test]
fn diagnose_and_check_never_print_the_token() {
    let (state, fx) = Fixture::with_state(&[]);
    let sd = dir_str(state.path());
    let url = fx.url();
    let dir = TempDir::new("token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-secret-Q4\n").unwrap();
    let secrets = ["file-secret-Q4", "env-secret-W8"];
    let runs = |label: &str| {
        for sub in [&["diagnose"][..], &["diagnose", "--json"], &["check"]] {
            for by_file in [true, false] {
                let mut cmd = Command::new(EXPORTER);
                cmd.args(sub)
                    .args(["--gateway.url", &url, "--gateway.state-dir", sd])
                    .args(["--probe.timeout", "1s"])
                    .env_remove("OPENCLAW_STATE_DIR")
                    .env("OPENCLAW_EXPORTER_LOG_LEVEL", "trace")
                    .env("OPENCLAW_GATEWAY_TOKEN", "env-secret-W8");
                if by_file {
                    cmd.args(["--gateway.token-file", token_file.to_str().unwrap()]);
                }
                let out = text(&cmd.output().unwrap());
                // diagnose reports readiness, the hang or OK; check prints its
                // /healthz probe ("ok <gateway>: ... GET /healthz 200 in ...").
                assert!(
                    out.contains("ready")
                        || out.contains("hung")
                        || out.contains("OK")
                        || out.contains("GET /healthz"),
                    "{label} {sub:?}: ran and said something: {out}"
                );
                for s in secrets {
                    assert!(!out.contains(s), "{label} {sub:?} printed the token: {out}");
                }
            }
        }
    };
    runs("healthy");
    fx.proc.signal("STOP");
    runs("hung");
    fx.proc.signal("CONT");
}
