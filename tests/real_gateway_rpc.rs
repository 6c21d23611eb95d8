//! The RPC probe against the real OpenClaw gateway: it succeeds with the
//! gateway's token; a wrong token is an `auth` failure and never a hang; and
//! a fault injected through the Node inspector that keeps /healthz answering
//! but makes the RPC dispatcher swallow every request
//! (tests/support/rpc-fault.mjs) turns the control plane's verdict hung,
//! while /healthz stays green and the HTTP hang verdict stays 0 all along.
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "real")];
const LIVE: &[(&str, &str)] = &[("gateway", "real"), ("endpoint", "live")];

/// Turn the fault on or off through the inspector on `port`.
fn fault(port: u16, action: &str) {
    let out = Command::new(gateway_node())
        .arg(repo().join("tests/support/rpc-fault.mjs"))
        .args([&port.to_string(), action])
        .arg(openclaw_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "rpc-fault {action}: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), action);
}

/// An exporter for `gw` sending the token in `token`, probing its control
/// plane every second.
fn exporter(gw: &RealGateway, dir: &TempDir, token: &str) -> Exporter {
    let file = dir.path().join(format!("token-{token}"));
    std::fs::write(&file, format!("{token}\n")).unwrap();
    Harness::exporter()
        .real(gw)
        .token_file(&file)
        .every("latency", "1s")
        .args(&[
            "--probe.rpc-interval",
            "1s",
            "--probe.timeout",
            "3s",
            "--probe.hang-after",
            "2",
        ])
        .start()
}

fn failures(s: &Scrape, reason: &str) -> f64 {
    s.get(
        names::RPC_PROBE_FAILURES_TOTAL.name(),
        &[("gateway", "real"), ("reason", reason)],
    )
    .unwrap_or_else(|| panic!("no {reason} series"))
}

/// The HTTP layer is green: /healthz answered and no HTTP hang.
fn assert_http_green(s: &Scrape, when: &str) {
    assert_eq!(
        s.get(names::PROBE_SUCCESS.name(), LIVE),
        Some(1.0),
        "{when}: /healthz"
    );
    assert_eq!(s.get(names::HUNG.name(), G), Some(0.0), "{when}: hung");
}

#[test]
fn the_control_plane_answers_refuses_a_wrong_token_and_hangs_behind_a_green_healthz() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Our own inspector port: 9229, the default, may be another test's.
    let inspector = free_port();
    let gw = RealGateway::start(&[("NODE_OPTIONS", &format!("--inspect-port={inspector}"))]);
    let dir = TempDir::new("real-rpc");
    let right = exporter(&gw, &dir, "t");
    right.wait_eq(
        "an RPC probe answered",
        names::RPC_PROBE_SUCCESS.name(),
        G,
        1.0,
    );
    // From here on the gateway has finished starting (until then `connect`
    // may answer UNAVAILABLE, a `handshake` failure): no failure at all.
    let before = right.scrape();
    let wrong = exporter(&gw, &dir, "not-the-token");

    // The gateway holds a refused token's answer longer each time, up to 5 s
    // (dist/auth-rate-limit-*.mjs): still `auth`, never a timeout.
    let s = wrong.wait("six refused RPC probes", |s| {
        (failures(s, "auth") >= 6.0).then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    assert_eq!(s.get(names::RPC_PROBE_SUCCESS.name(), G), Some(0.0));
    assert_eq!(s.get(names::RPC_HUNG.name(), G), Some(0.0));
    for reason in ["timeout", "handshake", "rpc_error", "bad_frame"] {
        assert_eq!(failures(&s, reason), 0.0, "wrong token: {reason}");
    }
    let s = right.scrape();
    for reason in ["timeout", "handshake", "auth", "rpc_error", "bad_frame"] {
        assert_eq!(
            failures(&s, reason),
            failures(&before, reason),
            "right token: {reason}"
        );
    }
    assert!(
        s.get(names::RPC_PROBES_TOTAL.name(), G).unwrap()
            > before.get(names::RPC_PROBES_TOTAL.name(), G).unwrap()
    );
    assert_eq!(s.get(names::RPC_PROBE_SUCCESS.name(), G), Some(1.0));
    assert_eq!(s.get(names::RPC_HUNG.name(), G), Some(0.0));

    // Open the inspector (SIGUSR1; SIGUSR2 would restart the gateway) and
    // make the dispatcher swallow every request but `connect`.
    gw.proc.signal("USR1");
    wait_for(Duration::from_secs(10), "the gateway's inspector", || {
        std::net::TcpStream::connect(("127.0.0.1", inspector)).ok()
    });
    fault(inspector, "on");

    // Hung within 2 timed-out probes (2 × (1 s + 3 s timeout)) and a scrape;
    // /healthz green on every scrape along the way.
    let started = Instant::now();
    let s = loop {
        let s = right.scrape();
        assert_http_green(&s, "while the RPC hangs");
        if s.get(names::RPC_HUNG.name(), G) == Some(1.0) {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no rpc_hung after {:?}:\n{}",
            started.elapsed(),
            s.1
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(failures(&s, "timeout") >= 2.0);
    assert_eq!(s.get(names::RPC_PROBE_SUCCESS.name(), G), Some(0.0));
    // OpenClawGatewayControlPlaneHung's expression, `openclaw_gateway_rpc_hung
    // == 1`, holds for this gateway (alerts/tests/control-plane.test.yml
    // tests its `for:`).
    let line = format!("{}{{gateway=\"real\"}} 1", names::RPC_HUNG.name());
    assert!(s.1.contains(&line), "{line} not in\n{}", s.1);
    right.wait_log("gateway control plane hung");

    // It stays so, /healthz still green; the wrong token is still refused
    // at the handshake (which the fault lets through): never a hang.
    for _ in 0..8 {
        let s = right.scrape();
        assert_http_green(&s, "hung");
        assert_eq!(s.get(names::RPC_HUNG.name(), G), Some(1.0));
        let w = wrong.scrape();
        assert_eq!(w.get(names::RPC_HUNG.name(), G), Some(0.0));
        assert_eq!(failures(&w, "timeout"), 0.0);
        std::thread::sleep(Duration::from_millis(500));
    }

    // Healed: the next probe answers and the verdict clears.
    fault(inspector, "off");
    right.wait_eq("the verdict cleared", names::RPC_HUNG.name(), G, 0.0);
    right.wait_eq(
        "an RPC probe answered again",
        names::RPC_PROBE_SUCCESS.name(),
        G,
        1.0,
    );
    assert_http_green(&right.scrape(), "healed");
    right.wait_log("gateway control plane no longer hung");
}
