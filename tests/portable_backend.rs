//! The portable platform backend (sysinfo and the TCP table, what macOS and
//! Windows run), proven on Linux with `--platform.backend=portable` against
//! the fixture and the real gateway, beside the native backend on the same
//! process: discovery by lock file (the lock's start time in Linux clock
//! ticks), vitals against /proc, restarts, instances, locks and connections;
//! and the series it cannot provide are absent, not zero.
//!
//! Where it differs from native: the start time has sysinfo's whole seconds
//! (so within 1 s of /proc), and the fd limit, fds by type, the accept queue
//! and the host listen counters are absent.
//!
//! Every other test file runs over the portable backend too with
//! `OPENCLAW_EXPORTER_PLATFORM_BACKEND=portable` (DEVELOPERS.md).
#![cfg(target_os = "linux")]

mod common;

use std::net::TcpStream;

use common::*;

const FAST: &[&str] = &[
    "--collect.connections.interval",
    "200ms",
    "--collect.memory.interval",
    "200ms",
];

/// An exporter on `backend` watching the gateway at `port` through its state
/// dir, as gateway `name`.
fn watch(backend: &str, port: u16, state_dir: &str, name: &str) -> Exporter {
    let url = format!("http://127.0.0.1:{port}");
    let flag = format!("--platform.backend={backend}");
    let mut args = vec![
        flag.as_str(),
        "--gateway.url",
        &url,
        "--gateway.state-dir",
        state_dir,
        "--gateway.name",
        name,
    ];
    args.extend_from_slice(FAST);
    Exporter::start(&args)
}

fn found_by_lock_file(exp: &Exporter, gw: &str) {
    exp.wait("found by its lock file", |s| {
        (s.get(
            "openclaw_gateway_discovery_method",
            &[("gateway", gw), ("method", "lock_file")],
        ) == Some(1.0))
        .then_some(())
    });
}

/// Whether any series named `name` is exposed.
fn has(s: &Scrape, name: &str) -> bool {
    s.0.iter().any(|x| x.name == name)
}

fn conns(s: &Scrape, gw: &str, direction: &str, state: &str) -> Option<f64> {
    s.get(
        "openclaw_gateway_tcp_connections",
        &[("gateway", gw), ("direction", direction), ("state", state)],
    )
}

/// The gateway's inbound established connections when none of the
/// exporters' own probes is open: the least of a few samples. A probe that
/// connects afresh (liveness, or readiness after the gateway closed its idle
/// kept connection) is counted while open, so a single sample can read one
/// more than the steady count, which the waits below then never see again.
fn steady_established(exp: &Exporter, gw: &str) -> f64 {
    let mut least = f64::MAX;
    for _ in 0..5 {
        let n = exp.wait("inbound established", |s| {
            conns(s, gw, "inbound", "established")
        });
        least = least.min(n);
        std::thread::sleep(std::time::Duration::from_millis(700));
    }
    least
}

fn wait_conns(exp: &Exporter, gw: &str, direction: &str, state: &str, want: f64) {
    exp.wait(&format!("{direction} {state} = {want}"), |s| {
        (conns(s, gw, direction, state) == Some(want)).then_some(())
    });
}

fn proc_threads(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count() as f64
}

/// The series the portable backend cannot provide on Linux: the native one
/// exposes them for the same process, the portable one does not.
const ABSENT_ON_PORTABLE: &[&str] = &[
    "openclaw_gateway_process_max_fds",
    "openclaw_gateway_process_open_fds_by_type",
    "openclaw_gateway_listen_queue_length",
    "openclaw_gateway_listen_queue_capacity",
    "openclaw_gateway_host_listen_overflows_total",
    "openclaw_gateway_host_listen_drops_total",
];

#[test]
fn fixture_found_by_lock_with_vitals_of_proc_and_absent_series() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let fx = Fixture::start(&["--port", "0", "--state-dir", sd, "--children", "2"]);
    let pid = fx.pid();
    let native = watch("native", fx.port, sd, "fx");
    let portable = watch("portable", fx.port, sd, "fx");
    // The lock's startTime is in clock ticks after boot: the portable backend
    // converts it to compare with sysinfo's start time.
    found_by_lock_file(&native, "fx");
    found_by_lock_file(&portable, "fx");
    let g = &[("gateway", "fx")];

    let s = portable.scrape();
    assert_eq!(s.get("openclaw_gateway_process_up", g), Some(1.0));
    let start = s
        .get("openclaw_gateway_process_start_time_seconds", g)
        .unwrap();
    let truth = start_time_seconds(pid);
    assert!(
        (start - truth).abs() <= 1.0,
        "start {start} vs /proc {truth}"
    );
    portable.wait("connections read from the TCP table", |s| {
        (s.get(
            "openclaw_gateway_connections_source",
            &[("gateway", "fx"), ("source", "tcp_table")],
        ) == Some(1.0))
        .then_some(())
    });
    // Samples move on their own: compare each with /proc read right after it.
    portable.wait("rss within 5% of VmRSS", |s| {
        let rss = s.get("openclaw_gateway_process_resident_memory_bytes", g)?;
        let truth = vm_rss(pid) as f64;
        ((rss - truth).abs() <= truth * 0.05).then_some(())
    });
    portable.wait("open fds within 3 of /proc", |s| {
        let fds = s.get("openclaw_gateway_process_open_fds", g)?;
        ((fds - fd_count(pid) as f64).abs() <= 3.0).then_some(())
    });
    portable.wait("threads within 2 of /proc", |s| {
        let t = s.get("openclaw_gateway_process_threads", g)?;
        ((t - proc_threads(pid)).abs() <= 2.0).then_some(())
    });
    portable.wait("two workers", |s| {
        (s.get("openclaw_gateway_process_children", g) == Some(2.0)).then_some(())
    });
    portable.wait("workers' rss within 5%", |s| {
        let got = s.get("openclaw_gateway_process_children_resident_memory_bytes", g)?;
        let truth = vm_rss_of_children(&children(pid)) as f64;
        ((got - truth).abs() <= truth * 0.05).then_some(())
    });
    let before = cpu_seconds(pid);
    fx.cmd("block?ms=1000");
    fx.cmd("stats");
    let truth = cpu_seconds(pid);
    // A loaded machine gives the spin less than a core; /proc is the truth.
    assert!(
        truth - before >= 0.05,
        "the spin burned CPU: {before} -> {truth}"
    );
    portable.wait("cpu to reach /proc's after the spin", |s| {
        let v = s.get("openclaw_gateway_process_cpu_seconds_total", g)?;
        (v >= truth - 0.011 && v <= cpu_seconds(pid) + 0.011).then_some(())
    });
    // One instance: its workers are not instances.
    portable.wait("one instance", |s| {
        (s.get("openclaw_gateway_instances", g) == Some(1.0)).then_some(())
    });

    // What the portable backend cannot read is absent, while native has it.
    native.wait("native's full set", |s| {
        ABSENT_ON_PORTABLE.iter().all(|n| has(s, n)).then_some(())
    });
    let s = portable.scrape();
    for name in ABSENT_ON_PORTABLE {
        assert!(!has(&s, name), "{name} is exposed on portable");
    }
}

#[test]
fn fixture_connections_from_the_tcp_table_agree_with_native() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let fx = Fixture::start(&["--port", "0", "--state-dir", sd, "--children", "1"]);
    let native = watch("native", fx.port, sd, "fx");
    let portable = watch("portable", fx.port, sd, "fx");
    found_by_lock_file(&portable, "fx");
    wait_conns(&portable, "fx", "inbound", "listen", 1.0);

    // N held connections on IPv4 move established by exactly N, as native.
    let base = steady_established(&portable, "fx");
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(("127.0.0.1", fx.port)).unwrap())
        .collect();
    wait_conns(&portable, "fx", "inbound", "established", base + 10.0);
    wait_conns(&native, "fx", "inbound", "established", base + 10.0);
    drop(held);
    wait_conns(&portable, "fx", "inbound", "established", base);

    // Outbound: the sockets whose owner pid is the gateway or its worker.
    let (deps, accepted) = holding_listeners();
    let p4 = deps[0].local_addr().unwrap().port();
    let p6 = deps[1].local_addr().unwrap().port();
    assert_eq!(
        fx.cmd(&format!("outbound?port={p4}&n=7&host=127.0.0.1"))["opened"],
        7
    );
    assert_eq!(
        fx.cmd(&format!("outbound?port={p6}&n=4&host=::1"))["opened"],
        4
    );
    wait_conns(&portable, "fx", "outbound", "established", 11.0);
    wait_conns(&native, "fx", "outbound", "established", 11.0);
    // The test's listeners and its accepted ends are not the gateway's.
    assert_eq!(
        conns(&portable.scrape(), "fx", "outbound", "listen"),
        Some(0.0)
    );
    assert_eq!(fx.cmd("close-outbound")["closed"], 11);
    wait_conns(&portable, "fx", "outbound", "established", 0.0);
    assert_eq!(
        conns(&portable.scrape(), "fx", "outbound", "time_wait"),
        Some(0.0)
    );
    drop(deps);
    drop(accepted);
}

#[test]
fn a_restart_is_counted_and_the_new_process_followed() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let fx = Fixture::start(&["--port", "0", "--state-dir", sd]);
    let port = fx.port.to_string();
    let exp = watch("portable", fx.port, sd, "fx");
    let g = &[("gateway", "fx")];
    found_by_lock_file(&exp, "fx");
    let first = fx.pid();
    fx.cmd("exit?code=0");
    drop(fx);
    exp.wait("down", |s| {
        (s.get("openclaw_gateway_process_up", g) == Some(0.0)).then_some(())
    });
    let fx2 = Fixture::start(&["--port", &port, "--state-dir", sd]);
    assert_ne!(fx2.pid(), first);
    let s = exp.wait("restart counted and the new process up", |s| {
        (s.get("openclaw_gateway_process_restarts_total", g) == Some(1.0)
            && s.get("openclaw_gateway_process_up", g) == Some(1.0))
        .then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    let start = s
        .get("openclaw_gateway_process_start_time_seconds", g)
        .unwrap();
    let truth = start_time_seconds(fx2.pid());
    assert!((start - truth).abs() <= 1.0, "{start} vs {truth}");
    exp.wait("fds of the new process", |s| {
        let fds = s.get("openclaw_gateway_process_open_fds", g)?;
        ((fds - fd_count(fx2.pid()) as f64).abs() <= 3.0).then_some(())
    });
}

#[test]
fn real_gateway_over_the_portable_backend() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[]);
    let pid = gw.pid();
    let sd = gw.state_dir();
    let sd = sd.to_str().unwrap();
    let exp = watch("portable", gw.port, sd, "real");
    let g = &[("gateway", "real")];
    found_by_lock_file(&exp, "real");

    // Vitals against /proc.
    let s = exp.scrape();
    let start = s
        .get("openclaw_gateway_process_start_time_seconds", g)
        .unwrap();
    assert!((start - start_time_seconds(pid)).abs() <= 1.0);
    exp.wait("rss within 5% of VmRSS", |s| {
        let rss = s.get("openclaw_gateway_process_resident_memory_bytes", g)?;
        let truth = vm_rss(pid) as f64;
        ((rss - truth).abs() <= truth * 0.05).then_some(())
    });
    exp.wait("open fds within 3 of /proc", |s| {
        let fds = s.get("openclaw_gateway_process_open_fds", g)?;
        ((fds - fd_count(pid) as f64).abs() <= 3.0).then_some(())
    });
    exp.wait("threads within 2 of /proc", |s| {
        let t = s.get("openclaw_gateway_process_threads", g)?;
        ((t - proc_threads(pid)).abs() <= 2.0).then_some(())
    });
    assert!(!children(pid).is_empty(), "the real gateway runs workers");
    exp.wait("workers counted", |s| {
        (s.get("openclaw_gateway_process_children", g) == Some(children(pid).len() as f64))
            .then_some(())
    });
    let cpu = s
        .get("openclaw_gateway_process_cpu_seconds_total", g)
        .unwrap();
    assert!(cpu > 1.0, "seconds of startup used CPU: {cpu}");
    assert_eq!(s.get("openclaw_gateway_process_max_fds", g), None);

    // Locks and instances.
    let lock = |s: &Scrape, state: &str| {
        s.get(
            "openclaw_gateway_lock_files",
            &[("gateway", "real"), ("state", state)],
        )
    };
    exp.wait("two live locks", |s| {
        (lock(s, "live") == Some(2.0)).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(lock(&s, "stale"), Some(0.0));
    assert_eq!(s.get("openclaw_gateway_instances", g), Some(1.0));
    assert_eq!(s.get("openclaw_gateway_port_owner_mismatch", g), Some(0.0));
    let dup = Fixture::start(&["--port", "0", "--state-dir", sd]);
    exp.wait("two instances", |s| {
        (s.get("openclaw_gateway_instances", g) == Some(2.0)).then_some(())
    });
    drop(dup);

    // Connections: its listeners, and N held connections on each family.
    exp.wait("listening", |s| {
        conns(s, "real", "inbound", "listen").filter(|n| *n >= 1.0)
    });
    let base = steady_established(&exp, "real");
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(("127.0.0.1", gw.port)).unwrap());
        held.push(TcpStream::connect(("::1", gw.port)).unwrap());
    }
    wait_conns(&exp, "real", "inbound", "established", base + 20.0);
    drop(held);
    wait_conns(&exp, "real", "inbound", "established", base);

    // A crash: down, and the locks it left are stale.
    gw.proc.signal("KILL");
    exp.wait("down after kill -9", |s| {
        (s.get("openclaw_gateway_process_up", g) == Some(0.0)).then_some(())
    });
    // Every lock stale, none live: one sample may judge the two locks on
    // either side of the process's end.
    exp.wait("stale locks, none live", |s| {
        (lock(s, "stale").unwrap_or(0.0) >= 1.0 && lock(s, "live") == Some(0.0)).then_some(())
    });
}
