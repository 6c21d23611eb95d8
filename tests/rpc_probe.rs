//! The RPC probe's failure reasons that the real gateway cannot easily be
//! made to produce, against a stand-in control plane
//! (tests/support/ws-standin.py: one port per way of failing, each answering
//! /healthz), and the probe off without a token. The real gateway's own
//! answers (success, a wrong token, a swallowed RPC) are in
//! tests/real_gateway_rpc.rs.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

const REASONS: [&str; 5] = ["timeout", "handshake", "auth", "rpc_error", "bad_frame"];

/// Each stand-in mode and the one reason its probes must fail with (None:
/// they succeed).
const MODES: [(&str, Option<&str>); 11] = [
    ("ok", None),
    ("auth", Some("auth")),
    ("rpc_error", Some("rpc_error")),
    ("bad_json", Some("bad_frame")),
    ("binary", Some("bad_frame")),
    ("oversized", Some("bad_frame")),
    ("silent", Some("timeout")),
    ("no_upgrade", Some("timeout")),
    ("drip", Some("timeout")),
    ("drip_rpc", Some("timeout")),
    ("refuse", Some("handshake")),
];

/// The stand-in, serving `modes`; their ports in order.
fn standin(modes: &[&str]) -> (Proc, Vec<u16>) {
    let python = require_tool("python3");
    let mut child = spawn_child(
        Command::new(python)
            .arg(repo().join("tests/support/ws-standin.py"))
            .args(modes)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut ports = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "ready" {
            break;
        }
        let (_, port) = line.split_once(' ').unwrap();
        ports.push(port.parse().unwrap());
    }
    assert_eq!(ports.len(), modes.len());
    (Proc { child }, ports)
}

fn failures(s: &Scrape, gateway: &str, reason: &str) -> Option<f64> {
    s.get(
        names::RPC_PROBE_FAILURES_TOTAL.name(),
        &[("gateway", gateway), ("reason", reason)],
    )
}

#[test]
fn every_failure_has_its_reason_and_only_silence_is_a_hang() {
    let modes: Vec<&str> = MODES.iter().map(|(m, _)| *m).collect();
    let (_standin, ports) = standin(&modes);
    let dir = TempDir::new("rpc-standin");
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    let mut config = String::from("gateways:\n");
    for (mode, port) in modes.iter().zip(&ports) {
        let state = dir.path().join(mode);
        std::fs::create_dir_all(&state).unwrap();
        config += &format!(
            "  - name: {mode}\n    url: http://127.0.0.1:{port}\n    state_dir: {}\n    token_file: {}\n",
            state.display(),
            token.display()
        );
    }
    let file = dir.path().join("config.yml");
    std::fs::write(&file, config).unwrap();
    let exp = Exporter::start(&[
        "--config.file",
        dir_str(&file),
        "--probe.rpc-interval",
        "300ms",
        "--probe.timeout",
        "2s",
        "--probe.hang-after",
        "2",
        "--collect.latency.interval",
        "300ms",
    ]);

    // Three probes of every gateway: at most 2 s each, 7.5 s for a wait
    // on the answer to `connect` (timeout + REFUSAL_PENALTY).
    let s = wait_for(
        Duration::from_secs(60),
        "three RPC probes of every stand-in",
        || {
            let s = exp.scrape();
            modes
                .iter()
                .all(|m| {
                    s.get(names::RPC_PROBES_TOTAL.name(), &[("gateway", m)])
                        .is_some_and(|n| n >= 3.0)
                })
                .then_some(s)
        },
    );
    for (mode, want) in MODES {
        let g = [("gateway", mode)];
        for reason in REASONS {
            let n =
                failures(&s, mode, reason).unwrap_or_else(|| panic!("{mode}: no {reason} series"));
            match want == Some(reason) {
                true => assert!(n >= 2.0, "{mode}: {reason} = {n}, want failures"),
                false => assert_eq!(n, 0.0, "{mode}: {reason} = {n}, want none"),
            }
        }
        let success = s.get(names::RPC_PROBE_SUCCESS.name(), &g);
        assert_eq!(success, Some(f64::from(want.is_none())), "{mode}: success");
        // /healthz answers on every port: only silence makes the verdict.
        assert_eq!(
            s.get(
                names::PROBE_SUCCESS.name(),
                &[("gateway", mode), ("endpoint", "live")]
            ),
            Some(1.0),
            "{mode}: /healthz"
        );
        let hung = s.get(names::RPC_HUNG.name(), &g);
        assert_eq!(
            hung,
            Some(f64::from(want == Some("timeout"))),
            "{mode}: rpc_hung"
        );
        // Refused handshakes and tokens are left out of the histogram.
        let observed = s
            .get(
                &format!("{}_count", names::RPC_PROBE_DURATION_SECONDS.name()),
                &g,
            )
            .unwrap();
        let total = s.get(names::RPC_PROBES_TOTAL.name(), &g).unwrap();
        match want {
            Some("handshake" | "auth") => assert_eq!(observed, 0.0, "{mode}"),
            _ => assert_eq!(observed, total, "{mode}"),
        }
    }
    // A dripping control plane costs one deadline per probe, never more:
    // the timeout (2 s), and while the answer to `connect` is awaited, the
    // gateway's longest hold of a refused token (5.5 s) on top.
    let per_probe = |g: &str| {
        let get = |suffix: &str| {
            let name = format!("{}_{suffix}", names::RPC_PROBE_DURATION_SECONDS.name());
            s.get(&name, &[("gateway", g)]).unwrap()
        };
        get("sum") / get("count")
    };
    let drip_rpc = per_probe("drip_rpc");
    assert!(
        (1.9..2.8).contains(&drip_rpc),
        "drip_rpc: {drip_rpc} s per probe"
    );
    let drip = per_probe("drip");
    assert!((7.4..8.3).contains(&drip), "drip: {drip} s per probe");
    exp.wait_log("gateway control plane hung");
}

#[test]
fn without_a_token_the_rpc_probe_is_off_and_says_so_once() {
    let (_standin, ports) = standin(&["ok"]);
    let state = TempDir::new("rpc-no-token");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openclaw-gateway-exporter"));
    cmd.env_remove("OPENCLAW_GATEWAY_TOKEN");
    let exp = Harness::exporter_via(cmd)
        .url(&format!("http://127.0.0.1:{}", ports[0]))
        .state_dir(state.path())
        .every("latency", "300ms")
        .args(&["--probe.rpc-interval", "300ms"])
        .start();
    exp.wait_log("RPC probe off: no gateway token");
    exp.wait_eq(
        "a liveness probe",
        names::PROBE_SUCCESS.name(),
        &[
            ("gateway", &format!("127.0.0.1:{}", ports[0])),
            ("endpoint", "live"),
        ],
        1.0,
    );
    std::thread::sleep(Duration::from_secs(1));
    let s = exp.scrape();
    assert!(!s.1.contains("openclaw_gateway_rpc_"), "{}", s.1);
    assert!(!s.1.contains(r#"collector="rpc""#), "{}", s.1);
    let said = exp
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("RPC probe off"))
        .count();
    assert_eq!(said, 1);
}
