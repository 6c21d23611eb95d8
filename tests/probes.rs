//! Health probes against the fixture gateway and a hand-written HTTP server:
//! latency against injected delays, failure reasons against injected faults,
//! event-loop peaks against an injected stall, and the hang verdict against a
//! stopped process.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "fx")];

fn ep(endpoint: &'static str) -> [(&'static str, &'static str); 2] {
    [("gateway", "fx"), ("endpoint", endpoint)]
}

/// A fixture and an exporter watching it through its state dir.
fn watched(exporter_args: &[&str]) -> (TempDir, Fixture, Exporter) {
    let state = TempDir::new("probe-state");
    let fx = Fixture::start_in(&state, &[]);
    let exp = Harness::exporter()
        .fixture(&state, &fx)
        .name("fx")
        .every("connections", "500ms")
        .args(exporter_args)
        .start();
    exp.wait_eq("gateway found", names::PROCESS_UP.name(), G, 1.0);
    (state, fx, exp)
}

fn val(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.get(name, labels)
        .unwrap_or_else(|| panic!("{name} {labels:?} missing in\n{}", s.1))
}

fn failures(s: &Scrape, endpoint: &'static str, reason: &str) -> f64 {
    let [g, e] = ep(endpoint);
    val(
        s,
        names::PROBE_FAILURES_TOTAL.name(),
        &[g, e, ("reason", reason)],
    )
}

fn bucket(s: &Scrape, endpoint: &'static str, le: &str) -> f64 {
    let [g, e] = ep(endpoint);
    val(
        s,
        "openclaw_gateway_probe_duration_seconds_bucket",
        &[g, e, ("le", le)],
    )
}

fn observed(s: &Scrape, endpoint: &'static str) -> f64 {
    val(
        s,
        "openclaw_gateway_probe_duration_seconds_count",
        &ep(endpoint),
    )
}

fn stat(s: &Scrape, name: &str, stat: &str) -> Option<f64> {
    s.get(name, &[("gateway", "fx"), ("stat", stat)])
}

/// Scrape, and fail if the scrape itself was slow: the exporter must answer
/// quickly whatever the gateway does.
fn quick_scrape(exp: &Exporter) -> Scrape {
    let t = Instant::now();
    let s = exp.scrape();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
    s
}

#[test]
fn latency_tracks_injected_delays_in_the_right_buckets() {
    let (_state, fx, exp) = watched(&["--collect.latency.interval", "250ms"]);
    exp.wait("a first liveness probe", |s| {
        (observed(s, "live") >= 1.0).then_some(())
    });
    let s = exp.scrape();
    for le in [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
    ] {
        bucket(&s, "live", le);
    }

    // (injected delay, a bucket no probe can fall in, one every probe falls in)
    for (ms, below, within) in [(50u64, "0.025", "0.5"), (600, "0.5", "1.0")] {
        fx.cmd(&format!("delay?ms={ms}"));
        // A probe in flight during the change may not carry the delay: skip two.
        let n0 = observed(&exp.scrape(), "live");
        exp.wait("two probes after the change", |s| {
            (observed(s, "live") >= n0 + 2.0).then_some(())
        });
        let before = exp.scrape();
        let n1 = observed(&before, "live");
        let after = exp.wait("three more probes", |s| {
            (observed(s, "live") >= n1 + 3.0).then(|| Scrape(s.0.clone(), s.1.clone()))
        });
        let n = observed(&after, "live") - n1;
        let grew = |le| bucket(&after, "live", le) - bucket(&before, "live", le);
        assert_eq!(
            grew(below),
            0.0,
            "delay {ms} ms: nothing can be <= {below} s"
        );
        assert_eq!(
            grew(within),
            n,
            "delay {ms} ms: every probe is <= {within} s\n{}",
            after.1
        );
        let last = val(
            &after,
            names::PROBE_LAST_DURATION_SECONDS.name(),
            &ep("live"),
        );
        // Node may fire a timer up to a millisecond early.
        assert!(
            last >= (ms as f64 - 2.0) / 1000.0 && last < 5.0,
            "delay {ms} ms, last probe took {last} s"
        );
        assert_eq!(val(&after, names::PROBE_SUCCESS.name(), &ep("live")), 1.0);
    }
    fx.cmd("delay?ms=0");
}

#[test]
fn injected_500s_are_http_status_failures_and_set_the_error_ratio() {
    let (_state, fx, exp) = watched(&[
        "--collect.latency.interval",
        "250ms",
        "--probe.readiness-interval",
        "200ms",
        "--collect.errors.interval",
        "5s",
    ]);
    exp.wait_eq(
        "probes running",
        names::PROBE_SUCCESS.name(),
        &ep("ready"),
        1.0,
    );
    let s = exp.scrape();
    assert_eq!(failures(&s, "live", "http_status"), 0.0);
    assert_eq!(
        s.get(names::PROBE_ERROR_RATIO.name(), &ep("ready")),
        Some(0.0)
    );

    // Every liveness probe answered 500.
    fx.cmd("status?code=500&target=live");
    let s = exp.wait("three 500s counted", |s| {
        (failures(s, "live", "http_status") >= 3.0).then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    assert_eq!(
        val(&s, names::PROBE_HTTP_STATUS_CODE.name(), &ep("live")),
        500.0
    );
    assert_eq!(val(&s, names::PROBE_SUCCESS.name(), &ep("live")), 0.0);
    assert_eq!(failures(&s, "live", "timeout"), 0.0);
    assert_eq!(failures(&s, "live", "bad_body"), 0.0);
    assert_eq!(val(&s, names::HUNG.name(), G), 0.0, "a 500 is an answer");
    assert_eq!(
        failures(&s, "ready", "http_status"),
        0.0,
        "only /healthz was hit"
    );

    // Every 4th readiness probe answered 500 (and /healthz is fine again).
    fx.cmd("status?code=500&every=4&target=ready");
    let s = exp.scrape();
    let (f0, t0) = (
        failures(&s, "ready", "http_status"),
        val(&s, names::PROBES_TOTAL.name(), &ep("ready")),
    );
    // Let the 5 s error window fill with probes made under the new fault.
    std::thread::sleep(Duration::from_secs(6));
    let s = exp.scrape();
    let (f1, t1) = (
        failures(&s, "ready", "http_status"),
        val(&s, names::PROBES_TOTAL.name(), &ep("ready")),
    );
    assert!(
        t1 - t0 >= 12.0,
        "readiness polled every 200 ms: {t0} -> {t1}"
    );
    let counted = (f1 - f0) / (t1 - t0);
    assert!(
        (0.15..=0.35).contains(&counted),
        "every 4th probe failed, counters say {counted} ({f0}->{f1} of {t0}->{t1})"
    );
    let ratio = val(&s, names::PROBE_ERROR_RATIO.name(), &ep("ready"));
    assert!(
        (0.15..=0.35).contains(&ratio),
        "every 4th probe failed, the 5 s window says {ratio}"
    );
    assert_eq!(failures(&s, "ready", "bad_body"), 0.0);

    fx.cmd("status?code=200");
    exp.wait(
        "the live error ratio falls back to 0 once the window has passed",
        |s| (s.get(names::PROBE_ERROR_RATIO.name(), &ep("live")) == Some(0.0)).then_some(()),
    );
}

#[test]
fn an_event_loop_stall_stays_in_the_peak_for_a_window() {
    let (_state, fx, exp) = watched(&[
        "--probe.readiness-interval",
        "250ms",
        "--collect.event-loop.interval",
        "8s",
    ]);
    let s = exp.wait("event-loop figures", |s| {
        stat(s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "last")
            .map(|_| Scrape(s.0.clone(), s.1.clone()))
    });
    assert_eq!(
        val(&s, names::EVENTLOOP_DELAY_FLOOR_SECONDS.name(), G),
        0.02
    );
    // Idle: the fixture's monitor, like the real one, reports about its 20 ms period.
    exp.wait("an idle event loop", |s| {
        let p = stat(s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "peak")?;
        (p < 0.2).then_some(())
    });

    fx.cmd("block?ms=1500");
    let stalled = Instant::now();
    exp.wait("the 1.5 s stall in the peak", |s| {
        let p = stat(s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "peak")?;
        (p >= 1.4).then_some(())
    });
    let s = exp.scrape();
    assert!(stat(&s, names::EVENTLOOP_DELAY_P99_SECONDS.name(), "peak").unwrap() >= 1.4);
    assert_eq!(
        stat(&s, names::EVENTLOOP_DEGRADED.name(), "peak"),
        Some(1.0)
    );

    // The gateway's own window is ~1 s: "last" forgets the stall quickly...
    exp.wait("last back to idle", |s| {
        let l = stat(s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "last")?;
        (l < 0.2).then_some(())
    });
    // ...but a scrape seconds later still sees it in the peak.
    std::thread::sleep(Duration::from_secs(2));
    let s = exp.scrape();
    assert!(
        stalled.elapsed() < Duration::from_secs(8),
        "the machine is too slow to check the window: {:?}",
        stalled.elapsed()
    );
    let peak = stat(&s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "peak").unwrap();
    assert!(
        peak >= 1.4,
        "peak {peak} s, {:?} after the stall",
        stalled.elapsed()
    );
    assert!(stat(&s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "last").unwrap() < 1.4);

    // After a whole window it is gone.
    exp.wait("peak back to idle after the window", |s| {
        let p = stat(s, names::EVENTLOOP_DELAY_MAX_SECONDS.name(), "peak")?;
        (p < 0.2).then_some(())
    });
    assert!(stalled.elapsed() >= Duration::from_secs(8));
}

#[test]
fn a_stopped_gateway_is_hung_and_a_dead_one_is_not() {
    let (_state, fx, exp) = watched(&[
        "--collect.latency.interval",
        "500ms",
        "--probe.timeout",
        "1s",
    ]);
    exp.wait_eq(
        "a good liveness probe",
        names::PROBE_SUCCESS.name(),
        &ep("live"),
        1.0,
    );
    assert_eq!(val(&exp.scrape(), names::HUNG.name(), G), 0.0);

    fx.proc.signal("STOP");
    let stopped = Instant::now();
    wait_for(Duration::from_secs(30), "hung 1", || {
        (quick_scrape(&exp).get(names::HUNG.name(), G) == Some(1.0)).then_some(())
    });
    let took = stopped.elapsed();
    // "Within about 2 intervals plus the timeout": the next probe starts
    // within 0.5 s and times out 1 s later, the second one too: 3 s at most,
    // plus 2 s for a busy machine.
    eprintln!("hung after {took:?}");
    assert!(took < Duration::from_secs(5), "hung after {took:?}");
    let s = quick_scrape(&exp);
    assert!(failures(&s, "live", "timeout") >= 2.0);
    assert_eq!(val(&s, names::PROBE_SUCCESS.name(), &ep("live")), 0.0);
    assert_eq!(val(&s, names::PROCESS_UP.name(), G), 1.0);
    assert_eq!(val(&s, names::READY.name(), G), 0.0);

    fx.proc.signal("CONT");
    wait_for(Duration::from_secs(30), "hung 0 after SIGCONT", || {
        (quick_scrape(&exp).get(names::HUNG.name(), G) == Some(0.0)).then_some(())
    });
    assert_eq!(
        val(&exp.scrape(), names::PROBE_SUCCESS.name(), &ep("live")),
        1.0
    );

    // Simply down: refused, but nothing listens, so not hung.
    fx.proc.signal("KILL");
    let refused = exp.wait("refused probes", |s| {
        (failures(s, "live", "connect_refused") >= 3.0).then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    assert_eq!(val(&refused, names::HUNG.name(), G), 0.0);
    assert_eq!(
        val(&refused, names::PROBE_HTTP_STATUS_CODE.name(), &ep("live")),
        0.0
    );
    exp.wait_eq("down", names::PROCESS_UP.name(), G, 0.0);
    assert_eq!(val(&exp.scrape(), names::HUNG.name(), G), 0.0);
}

#[test]
fn hostile_bodies_are_counted_failures_and_the_exporter_keeps_serving() {
    let (_state, fx, exp) = watched(&[
        "--collect.latency.interval",
        "250ms",
        "--probe.readiness-interval",
        "250ms",
        "--probe.timeout",
        "1s",
    ]);
    exp.wait_eq(
        "probes running",
        names::PROBE_SUCCESS.name(),
        &ep("ready"),
        1.0,
    );
    for (target, mode, reason) in [
        ("live", "invalid", "bad_body"),
        ("live", "wrongtypes", "bad_body"),
        ("live", "nan", "bad_body"),
        ("live", "huge", "too_large"),
        ("live", "drip", "timeout"),
        ("live", "noheaders", "timeout"),
        ("live", "driphead", "timeout"),
        ("ready", "invalid", "bad_body"),
        ("ready", "wrongtypes", "bad_body"),
        ("ready", "nan", "bad_body"),
        ("ready", "huge", "too_large"),
        ("ready", "drip", "timeout"),
        ("ready", "noheaders", "timeout"),
        ("ready", "driphead", "timeout"),
    ] {
        let other = if target == "live" { "ready" } else { "live" };
        let before = quick_scrape(&exp);
        let (n0, other0) = (
            failures(&before, target, reason),
            failures(&before, other, reason),
        );
        fx.cmd(&format!("body?mode={mode}&target={target}"));
        wait_for(
            Duration::from_secs(30),
            &format!("{target} {mode}: two {reason} failures"),
            || (failures(&quick_scrape(&exp), target, reason) >= n0 + 2.0).then_some(()),
        );
        let s = quick_scrape(&exp);
        assert_eq!(
            failures(&s, other, reason),
            other0,
            "{target} {mode} left {other} alone"
        );
        fx.cmd(&format!("body?mode=normal&target={target}"));
        wait_for(Duration::from_secs(30), "a good probe again", || {
            (quick_scrape(&exp).get(names::PROBE_SUCCESS.name(), &ep(target)) == Some(1.0))
                .then_some(())
        });
    }
    // 100 MB bodies were cut off, never buffered.
    let rss = vm_rss(exp.proc.pid());
    assert!(rss < 64 << 20, "exporter RSS {rss} B after 100 MB bodies");
    let s = quick_scrape(&exp);
    for collector in ["liveness", "readiness", "process"] {
        assert_eq!(
            s.get(
                names::COLLECTOR_SUCCESS.name(),
                &[("gateway", "fx"), ("collector", collector)]
            ),
            Some(1.0)
        );
    }
}

#[test]
fn not_ready_is_a_parsed_answer_not_a_failure() {
    let (_state, fx, exp) = watched(&["--probe.readiness-interval", "200ms"]);
    exp.wait_eq("ready", names::READY.name(), G, 1.0);
    let s = exp.scrape();
    assert!(
        !s.1.contains("openclaw_gateway_readiness_failing{"),
        "no check has failed yet\n{}",
        s.1
    );
    let probes0 = val(&s, names::PROBES_TOTAL.name(), &ep("ready"));

    fx.cmd("ready?value=false&failing=db,cache%20pool");
    let s = exp.wait("not ready", |s| {
        (s.get(names::READY.name(), G) == Some(0.0)).then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    let failing = |s: &Scrape, check| {
        s.get(
            names::READINESS_FAILING.name(),
            &[("gateway", "fx"), ("check", check)],
        )
    };
    assert_eq!(failing(&s, "db"), Some(1.0));
    assert_eq!(failing(&s, "cache_pool"), Some(1.0), "sanitized\n{}", s.1);
    assert_eq!(val(&s, names::PROBE_SUCCESS.name(), &ep("ready")), 1.0);
    assert_eq!(
        val(&s, names::PROBE_HTTP_STATUS_CODE.name(), &ep("ready")),
        503.0
    );
    assert!(val(&s, names::PROBES_TOTAL.name(), &ep("ready")) > probes0);
    for reason in [
        "timeout",
        "connect_refused",
        "connect_error",
        "http_status",
        "bad_body",
        "too_large",
    ] {
        assert_eq!(failures(&s, "ready", reason), 0.0, "{reason}");
    }
    assert!(s.get(names::UPTIME_SECONDS.name(), G).is_some());

    fx.cmd("ready?value=true");
    let s = exp.wait("ready again", |s| {
        (s.get(names::READY.name(), G) == Some(1.0)).then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    assert_eq!(
        failing(&s, "db"),
        Some(0.0),
        "a check that passes again reads 0"
    );
    assert_eq!(failing(&s, "cache_pool"), Some(0.0));
    for field in ["failing", "uptimeMs", "eventLoop", "eventLoop.delayP99Ms"] {
        assert_eq!(
            s.get(
                names::READINESS_PARSE_ERRORS_TOTAL.name(),
                &[("gateway", "fx"), ("field", field)]
            ),
            Some(0.0),
            "{field}"
        );
    }
}

// ------------------------------------------------------------ probe hygiene

/// One request as a hand-written server saw it.
#[derive(Debug, Clone)]
struct Seen {
    connection: usize,
    path: String,
    headers: Vec<(String, String)>,
}

/// A loopback HTTP/1.1 server that records every request and keeps each
/// connection open for more (so a pooled client would reuse it). /healthz
/// answers a redirect, /readyz a real gateway's body.
fn recording_server() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || serve(connection, stream, log));
        }
    });
    (port, seen)
}

fn serve(connection: usize, stream: TcpStream, log: Arc<Mutex<Vec<Seen>>>) {
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        log.lock().unwrap().push(Seen {
            connection,
            path: path.clone(),
            headers,
        });
        let (status, extra, body) = match path.as_str() {
            "/healthz" => ("302 Found", "Location: /moved\r\n", String::new()),
            "/readyz" => (
                "200 OK",
                "",
                r#"{"ready":true,"failing":[],"uptimeMs":5000,"eventLoop":{"degraded":false,"intervalMs":1000,"delayP99Ms":20.5,"delayMaxMs":21,"utilization":0.02,"cpuCoreRatio":0.01}}"#.to_string(),
            ),
            _ => ("200 OK", "", r#"{"ok":true}"#.to_string()),
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The exporter binary with its whole stderr kept.
fn exporter_with_log(args: &[&str], env: &[(&str, &str)]) -> (Proc, String, Arc<Mutex<String>>) {
    let mut cmd = Command::new(EXPORTER);
    cmd.args([
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.level",
        "trace",
    ])
    .args(args)
    .env_remove("OPENCLAW_GATEWAY_TOKEN")
    .env_remove("OPENCLAW_EXPORTER_LOG_LEVEL")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let keep = log.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stderr);
        let mut sent = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            keep.lock().unwrap().push_str(&line);
            if !sent {
                if let Some(i) = line.find("listening on http://") {
                    let addr = line[i + "listening on http://".len()..]
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap()
                        .to_string();
                    let _ = tx.send(addr);
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("exporter did not start listening");
    (Proc { child }, addr, log)
}

fn scrape_at(addr: &str) -> Scrape {
    let (status, _, body) = http_get(addr, "/metrics", &[]).unwrap();
    assert_eq!(status, 200);
    Scrape(parse_exposition(&body), body)
}

#[test]
fn liveness_connects_afresh_readiness_keeps_its_connection_and_the_token_goes_only_to_readyz() {
    let (port, seen) = recording_server();
    let url = format!("http://127.0.0.1:{port}");
    let dir = TempDir::new("token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-secret-A7\n").unwrap();
    // Proxies in the environment must be ignored: nothing listens on port 9.
    let proxy = [
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
        ("ALL_PROXY", "http://127.0.0.1:9"),
    ];
    let common = [
        "--gateway.url",
        &url,
        "--gateway.name",
        "rec",
        "--collect.latency.interval",
        "200ms",
        "--probe.readiness-interval",
        "200ms",
    ];
    let mut with_file = common.to_vec();
    with_file.extend(["--gateway.token-file", token_file.to_str().unwrap()]);
    let (_a, addr_a, log_a) = exporter_with_log(&with_file, &proxy);
    let mut env_b = proxy.to_vec();
    env_b.push(("OPENCLAW_GATEWAY_TOKEN", "env-secret-B9"));
    let (_b, addr_b, log_b) = exporter_with_log(&common, &env_b);

    let g = [("gateway", "rec"), ("endpoint", "live")];
    for addr in [&addr_a, &addr_b] {
        wait_for(
            Duration::from_secs(30),
            "probes of the recording server",
            || {
                let s = scrape_at(addr);
                let redirects = s.get(
                    names::PROBE_FAILURES_TOTAL.name(),
                    &[g[0], g[1], ("reason", "http_status")],
                )?;
                let ready = s.get(names::READY.name(), &[("gateway", "rec")])?;
                (redirects >= 3.0 && ready == 1.0).then_some(())
            },
        );
        let s = scrape_at(addr);
        assert_eq!(
            s.get(names::PROBE_HTTP_STATUS_CODE.name(), &g),
            Some(302.0),
            "a redirect is not followed"
        );
        assert!(!s.1.contains("secret"), "{}", s.1);
    }

    // Enough requests to judge: on a loaded machine the waits above can
    // end with fewer (11 seen once); the probes keep coming every 200 ms.
    wait_for(
        Duration::from_secs(30),
        "12 requests at the recording server",
        || (seen.lock().unwrap().len() >= 12).then_some(()),
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 12, "{seen:?}");
    // The RPC probe's WebSocket upgrades, to "/": its token goes in the
    // `connect` frame over the WebSocket, never in a header. The rest are
    // the HTTP probes.
    let (upgrades, seen): (Vec<Seen>, Vec<Seen>) = seen.into_iter().partition(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "upgrade" && v == "websocket")
    });
    assert!(!upgrades.is_empty(), "the RPC probe ran");
    for r in &upgrades {
        assert_eq!(r.path, "/", "{r:?}");
        assert!(
            !r.headers.iter().any(|(k, _)| k == "authorization"),
            "{r:?}"
        );
    }
    assert!(
        seen.iter()
            .all(|r| r.path == "/healthz" || r.path == "/readyz"),
        "redirects are not followed: {seen:?}"
    );
    // Liveness connects afresh for every probe; readiness, polled well inside
    // the keep-alive timeout, reuses its connection.
    let mut per_connection = std::collections::HashMap::new();
    for r in &seen {
        per_connection
            .entry(r.connection)
            .or_insert_with(Vec::new)
            .push(r.path.as_str());
    }
    assert!(
        per_connection
            .values()
            .all(|paths| !paths.contains(&"/healthz") || paths.len() == 1),
        "every liveness probe opens a fresh connection: {per_connection:?}"
    );
    let ready_requests = seen.iter().filter(|r| r.path == "/readyz").count();
    let ready_connections = per_connection
        .values()
        .filter(|paths| paths.contains(&"/readyz"))
        .count();
    assert!(
        ready_connections < ready_requests,
        "readiness reuses its connection: {per_connection:?}"
    );
    let auth = |r: &Seen| {
        r.headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
    };
    for r in &seen {
        match r.path.as_str() {
            "/healthz" => assert_eq!(auth(r), None, "no token to /healthz"),
            _ => assert!(
                matches!(
                    auth(r).as_deref(),
                    Some("Bearer file-secret-A7") | Some("Bearer env-secret-B9")
                ),
                "{r:?}"
            ),
        }
        assert!(
            !r.headers.iter().any(|(k, _)| k == "x-forwarded-for"),
            "the real gateway answers 403 to forwarded requests"
        );
    }
    for token in ["Bearer file-secret-A7", "Bearer env-secret-B9"] {
        assert!(
            seen.iter().any(|r| auth(r).as_deref() == Some(token)),
            "{token} sent"
        );
    }
    // Even at trace level, the token is in no log line.
    std::thread::sleep(Duration::from_millis(300));
    for log in [log_a, log_b] {
        let log = log.lock().unwrap();
        assert!(log.contains("listening on"), "{log}");
        assert!(
            !log.contains("secret-"),
            "the token leaked into the log:\n{log}"
        );
    }

    // --config.check says a token is set, not what it is.
    let out = Command::new(EXPORTER)
        .args(["--config.check", "--gateway.url", &url])
        .env("OPENCLAW_GATEWAY_TOKEN", "env-secret-B9")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("token set") && !text.contains("secret"),
        "{text}"
    );

    // An unreadable token file is a configuration error naming the file.
    let out = Command::new(EXPORTER)
        .args([
            "--config.check",
            "--gateway.token-file",
            "/nonexistent/token",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/token"));
}

#[test]
fn a_silent_listener_times_out_and_the_scrape_stays_fast() {
    // A listener that accepts and never answers: every probe hits the timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            keep.lock().unwrap().push(s);
        }
    });
    let exp = Harness::exporter()
        .port(port)
        .name("fx")
        .every("latency", "200ms")
        .args(&["--probe.timeout", "500ms"])
        .every("connections", "500ms")
        .start();
    let t = Instant::now();
    wait_for(Duration::from_secs(30), "timeouts", || {
        let s = quick_scrape(&exp);
        (s.get(
            names::PROBE_FAILURES_TOTAL.name(),
            &[
                ("gateway", "fx"),
                ("endpoint", "live"),
                ("reason", "timeout"),
            ],
        )? >= 2.0)
            .then_some(())
    });
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "two 500 ms timeouts"
    );
    let s = quick_scrape(&exp);
    let last = val(
        &s,
        names::PROBE_LAST_DURATION_SECONDS.name(),
        &[("gateway", "fx"), ("endpoint", "live")],
    );
    assert!(
        (0.49..1.5).contains(&last),
        "a timed-out probe lasts the timeout: {last}"
    );
    // The listener's owner (this test process) is found by its LISTEN socket:
    // alive, listening, silent. That is a hang.
    exp.wait_eq("hung 1", names::HUNG.name(), G, 1.0);
    assert_eq!(
        exp.scrape().get(
            names::DISCOVERY_METHOD.name(),
            &[("gateway", "fx"), ("method", "listen_socket")]
        ),
        Some(1.0)
    );
    assert!(!held.lock().unwrap().is_empty());
}
