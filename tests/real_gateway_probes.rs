//! The health probes against the real OpenClaw gateway: readiness and its
//! event-loop figures, and the hang verdict following SIGSTOP and SIGCONT.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "real")];

fn ep(endpoint: &'static str) -> [(&'static str, &'static str); 2] {
    [("gateway", "real"), ("endpoint", endpoint)]
}

fn last(s: &Scrape, name: &str) -> Option<f64> {
    s.get(name, &[("gateway", "real"), ("stat", "last")])
}

/// Seconds since the process started, from /proc.
fn process_age_seconds(pid: u32) -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    let hz: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    uptime - start_ticks(pid) as f64 / hz
}

/// An exporter for the real gateway at `url`, named "real", sending the
/// token in `token_file`.
fn exporter(url: &str, state_dir: &Path, token_file: &Path, flags: &[&str]) -> Exporter {
    Harness::exporter()
        .name("real")
        .url(url)
        .state_dir(state_dir)
        .token_file(token_file)
        .args(flags)
        .start()
}

#[test]
fn real_gateway_readiness_event_loop_and_hang() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[]);
    let url = gw.url();
    let state_dir = gw.state_dir();
    // run-openclaw.sh starts the gateway with OPENCLAW_GATEWAY_TOKEN=t.
    let secrets = TempDir::new("real-token");
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "t\n").unwrap();
    let exp = exporter(
        &url,
        &state_dir,
        &token_file,
        &[
            "--collect.connections.interval",
            "500ms",
            "--collect.latency.interval",
            "500ms",
            "--probe.readiness-interval",
            "500ms",
            "--probe.timeout",
            "1s",
        ],
    );

    // /readyz says 503 startup-sidecars for a few seconds after /healthz.
    wait_for(Duration::from_secs(90), "ready 1", || {
        (exp.scrape().get(names::READY.name(), G) == Some(1.0)).then_some(())
    });
    // Startup loads the event loop; wait for it to settle below 1 s.
    let s = wait_for(
        Duration::from_secs(90),
        "a plausible event-loop p99",
        || {
            let s = exp.scrape();
            let p99 = last(&s, names::EVENTLOOP_DELAY_P99_SECONDS.name())?;
            (p99 > 0.001 && p99 < 1.0).then_some(s)
        },
    );
    let p99 = last(&s, names::EVENTLOOP_DELAY_P99_SECONDS.name()).unwrap();
    let max = last(&s, names::EVENTLOOP_DELAY_MAX_SECONDS.name()).unwrap();
    assert!(
        p99 >= 0.019,
        "the gateway's monitor samples every 20 ms, so p99 includes that floor: {p99}"
    );
    assert!(max >= p99, "max {max} < p99 {p99}");
    let util = last(&s, names::EVENTLOOP_UTILIZATION_RATIO.name()).unwrap();
    assert!((0.0..=1.0).contains(&util), "utilization {util}");
    let cpu = last(&s, names::CPU_CORE_RATIO.name()).unwrap();
    assert!(
        (0.0..=2.0).contains(&cpu),
        "cpu cores {cpu} on a 2-core machine"
    );
    let degraded = last(&s, names::EVENTLOOP_DEGRADED.name()).unwrap();
    assert!(degraded == 0.0 || degraded == 1.0);
    let peak = s
        .get(
            names::EVENTLOOP_DELAY_MAX_SECONDS.name(),
            &[("gateway", "real"), ("stat", "peak")],
        )
        .unwrap();
    assert!(peak >= max, "peak {peak} < last {max}");
    let uptime = s.get(names::UPTIME_SECONDS.name(), G).unwrap();
    let age = process_age_seconds(gw.pid());
    assert!(
        uptime > 0.0 && uptime <= age + 2.0,
        "uptime {uptime} s, process age {age} s"
    );
    // Every field the exporter reads is in the real answer.
    for sample in
        s.0.iter()
            .filter(|x| x.name == names::READINESS_PARSE_ERRORS_TOTAL.name())
    {
        assert_eq!(sample.value, 0.0, "{sample:?}");
    }
    // Checks seen failing during startup (startup-sidecars) read 0 now.
    for sample in
        s.0.iter()
            .filter(|x| x.name == names::READINESS_FAILING.name())
    {
        assert_eq!(sample.value, 0.0, "{sample:?}");
    }
    for endpoint in ["live", "ready"] {
        assert_eq!(s.get(names::PROBE_SUCCESS.name(), &ep(endpoint)), Some(1.0));
        assert_eq!(
            s.get(names::PROBE_HTTP_STATUS_CODE.name(), &ep(endpoint)),
            Some(200.0)
        );
    }
    assert_eq!(s.get(names::HUNG.name(), G), Some(0.0));
    let stall_before = s
        .get(names::EVENTLOOP_STALL_SECONDS_TOTAL.name(), G)
        .unwrap();

    // Stopped: alive, listening, silent.
    gw.proc.signal("STOP");
    let stopped = Instant::now();
    wait_for(Duration::from_secs(60), "hung 1", || {
        (exp.scrape().get(names::HUNG.name(), G) == Some(1.0)).then_some(())
    });
    let took = stopped.elapsed();
    eprintln!("hung after {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "hung after {took:?}; two probes of 0.5 s + 1 s: 3 s at most, plus 2 s for a busy machine"
    );
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(1.0));
    assert_eq!(s.get(names::READY.name(), G), Some(0.0));
    assert!(
        s.get(
            names::PROBE_FAILURES_TOTAL.name(),
            &[
                ("gateway", "real"),
                ("endpoint", "live"),
                ("reason", "timeout")
            ]
        )
        .unwrap()
            >= 2.0
    );

    // 10 s stopped in all, then the stall counter holds them.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed()));
    gw.proc.signal("CONT");
    let stopped_for = stopped.elapsed().as_secs_f64();
    let stall = wait_for(
        Duration::from_secs(60),
        "the stop in the stall counter",
        || {
            let v = exp
                .scrape()
                .get(names::EVENTLOOP_STALL_SECONDS_TOTAL.name(), G)?;
            (v > stall_before).then_some(v - stall_before)
        },
    );
    eprintln!("stopped {stopped_for:.1} s, stall counted {stall:.1} s");
    // From the first probe that timed out (sent up to a poll, 0.5 s, after
    // the stop) to the first answer. Resumed, the real gateway first works
    // off what queued up: its own next window reported a 1.7 s stall, and
    // the first answer came 1.6-3 s after SIGCONT in three runs. Counted
    // twice (from outside and inside), it would be 20 s.
    assert!(
        stall >= stopped_for - 1.0 && stall <= stopped_for + 5.0,
        "stopped {stopped_for} s, counted {stall} s"
    );
    wait_for(Duration::from_secs(60), "hung 0 after SIGCONT", || {
        (exp.scrape().get(names::HUNG.name(), G) == Some(0.0)).then_some(())
    });
    wait_for(Duration::from_secs(60), "ready again after SIGCONT", || {
        (exp.scrape().get(names::READY.name(), G) == Some(1.0)).then_some(())
    });
}

/// This machine's first IPv4 address off loopback. A caller that reaches the
/// gateway through it is not on loopback, so the gateway wants its token.
fn non_loopback_ipv4() -> String {
    let out = std::process::Command::new(require_tool("ip"))
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let cidr = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
            Some(cidr.split('/').next()?.to_string())
        })
        .expect("this test needs an IPv4 address off loopback (ip -4 addr show scope global)")
}

/// A rotated token reaches the exporter through its token file, without a
/// restart. The gateway listens on every address and the exporter calls it
/// off loopback, where only the right token gets the full /readyz answer.
#[test]
fn real_gateway_token_rotation_through_the_token_file() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[
        ("RUN_OPENCLAW_BIND", "lan"),
        ("OPENCLAW_GATEWAY_TOKEN", "rotated-R2"),
    ]);
    let url = format!("http://{}:{}", non_loopback_ipv4(), gw.port);
    let secrets = TempDir::new("rotating-token");
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "stale-S1\n").unwrap();
    let exp = exporter(
        &url,
        &gw.state_dir(),
        &token_file,
        &["--probe.readiness-interval", "500ms"],
    );
    let uptime_errors = |s: &Scrape| {
        s.get(
            names::READINESS_PARSE_ERRORS_TOTAL.name(),
            &[("gateway", "real"), ("field", "uptimeMs")],
        )
    };

    // The stale token gets only {ready}: no uptime, and the missing fields
    // are counted.
    let s = wait_for(Duration::from_secs(90), "{ready} answers counted", || {
        let s = exp.scrape();
        (uptime_errors(&s)? >= 2.0).then_some(s)
    });
    assert_eq!(s.get(names::UPTIME_SECONDS.name(), G), None);
    assert!(s.get(names::READY.name(), G).is_some());

    // Rotate: the new token replaces the file by a rename, as a mounted
    // Kubernetes secret is updated.
    let next = secrets.path().join("token.new");
    std::fs::write(&next, "rotated-R2\n").unwrap();
    std::fs::rename(&next, &token_file).unwrap();
    exp.wait_log("the token file changed");
    let before = wait_for(Duration::from_secs(30), "the full answer", || {
        let s = exp.scrape();
        s.get(names::UPTIME_SECONDS.name(), G)?;
        uptime_errors(&s)
    });
    // Several polls later: still full answers, nothing more counted.
    std::thread::sleep(Duration::from_secs(2));
    let s = exp.scrape();
    assert!(s.get(names::UPTIME_SECONDS.name(), G).is_some());
    assert_eq!(uptime_errors(&s), Some(before));
    assert!(
        s.get(
            names::PROBES_TOTAL.name(),
            &[("gateway", "real"), ("endpoint", "ready")]
        )
        .unwrap()
            >= 6.0
    );

    // The file goes away: the last token stays in use, and is never logged.
    std::fs::remove_file(&token_file).unwrap();
    exp.wait_log("still sending the last token");
    std::thread::sleep(Duration::from_secs(2));
    let s = exp.scrape();
    assert_eq!(uptime_errors(&s), Some(before));
    let logs = exp.logs.lock().unwrap().join("\n");
    assert!(
        !logs.contains("-S1") && !logs.contains("-R2"),
        "a token leaked into the log:\n{logs}"
    );
}
