//! One exporter, 100 fixture gateways: every gateway is found and read as
//! itself, and the exporter's threads stay within the bound whatever their
//! number (issue 16: constant overhead in the number of gateways).
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;

const GATEWAYS: usize = 100;
/// The exporter's threads at most, at any number of gateways.
const MAX_THREADS: u64 = 12;

/// The `Threads:` line of /proc/<pid>/status.
fn threads(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Gateway `i`'s own soft fd limit: a value only its process has, so a
/// gateway read as another shows the wrong one.
fn fd_limit(i: usize) -> usize {
    4096 + i
}

#[test]
fn a_hundred_gateways_are_each_found_on_a_bounded_set_of_threads() {
    let started = Instant::now();
    let states: Vec<TempDir> = (0..GATEWAYS).map(|_| TempDir::new("scale")).collect();
    // Start every fixture first, then read their "listening" lines: they
    // start side by side.
    let mut children: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let script = repo().join("tests/fixture/gateway.js");
            Command::new("sh")
                .arg("-c")
                .arg(format!("ulimit -n {} && exec node \"$@\"", fd_limit(i)))
                .arg("sh")
                .arg(&script)
                .args(["--port", "0", "--children", "0", "--state-dir"])
                .arg(state.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let fixtures: Vec<Fixture> = children
        .drain(..)
        .map(|mut child| {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("fixture said {line:?}: {e}"));
            Fixture {
                port: v["port"].as_u64().unwrap() as u16,
                proc: Proc { child },
            }
        })
        .collect();
    eprintln!("{GATEWAYS} fixtures up in {:?}", started.elapsed());

    let dir = TempDir::new("scale-config");
    let mut config = String::from("gateways:\n");
    for (i, (fx, state)) in fixtures.iter().zip(&states).enumerate() {
        config.push_str(&format!(
            "  - name: gw-{i}\n    url: {}\n    state_dir: {}\n",
            fx.url(),
            dir_str(state.path())
        ));
    }
    let file = dir.path().join("config.yml");
    std::fs::write(&file, config).unwrap();
    let exporter = Harness::exporter()
        .args(&["--config.file", dir_str(&file)])
        .every("connections", "2s")
        .every("memory", "2s")
        .start();
    let pid = exporter.proc.pid();
    let mut most = threads(pid);

    // Every gateway up, found by its lock file, as its own process.
    let check = |s: &Scrape| -> Result<(), String> {
        for (i, fx) in fixtures.iter().enumerate() {
            let g = format!("gw-{i}");
            let g = [("gateway", g.as_str())];
            let want = |name: &str, labels: &[(&str, &str)], v: f64| {
                let all: Vec<_> = g.iter().chain(labels).copied().collect();
                match s.get(name, &all) {
                    Some(got) if got == v => Ok(()),
                    got => Err(format!("{name} {all:?}: {got:?}, want {v}")),
                }
            };
            want(names::PROCESS_UP.name(), &[], 1.0)?;
            want(
                names::DISCOVERY_METHOD.name(),
                &[("method", "lock_file")],
                1.0,
            )?;
            want(names::PROCESS_MAX_FDS.name(), &[], fd_limit(i) as f64)?;
            let start = start_time_seconds(fx.proc.pid());
            match s.get(names::PROCESS_START_TIME_SECONDS.name(), &g) {
                Some(t) if (t - start).abs() < 0.02 => {}
                t => return Err(format!("gw-{i} start time {t:?}, want {start}")),
            }
            want(names::INSTANCES.name(), &[], 1.0)?;
            want(names::LOCK_FILES.name(), &[("state", "live")], 1.0)?;
            // Its listener, counted from the one dump of the namespace.
            let listen = [("direction", "inbound"), ("state", "listen")];
            match s.get(names::TCP_CONNECTIONS.name(), &[g[0], listen[0], listen[1]]) {
                Some(n) if n >= 1.0 => {}
                n => return Err(format!("gw-{i} listen sockets {n:?}")),
            }
            want(names::PROBE_SUCCESS.name(), &[("endpoint", "live")], 1.0)?;
        }
        Ok(())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        most = most.max(threads(pid));
        match check(&exporter.scrape()) {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => panic!("after 30 s: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    // A few more rounds of every collector: the threads stay bounded.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        most = most.max(threads(pid));
    }
    check(&exporter.scrape()).unwrap();
    assert!(
        most <= MAX_THREADS,
        "{most} threads for {GATEWAYS} gateways"
    );
    eprintln!(
        "{GATEWAYS} gateways: at most {most} threads, done in {:?}",
        started.elapsed()
    );
}
