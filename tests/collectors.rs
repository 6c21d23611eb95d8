//! node_exporter's conventions: `--collector.<name>` / `--no-collector.<name>`
//! (a collector that is off has no series and no job), and the exporter's
//! own `process_*` metrics, compared with /proc/<exporter pid>.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

/// Every family the connections collector writes.
const CONNECTIONS_SERIES: [&str; 11] = [
    names::TCP_CONNECTIONS.name(),
    names::LISTEN_QUEUE_LENGTH.name(),
    names::LISTEN_QUEUE_CAPACITY.name(),
    names::LISTEN_QUEUE_USAGE_RATIO.name(),
    names::OUTBOUND_WAITING_CONNECTIONS.name(),
    names::OUTBOUND_STALLED_CONNECTIONS.name(),
    names::OUTBOUND_OLDEST_WAIT_SECONDS.name(),
    names::PROCESS_OPEN_FDS_BY_TYPE.name(),
    names::CONNECTIONS_SOURCE.name(),
    names::HOST_LISTEN_OVERFLOWS_TOTAL.name(),
    names::HOST_LISTEN_DROPS_TOTAL.name(),
];

/// An exporter watching the fixture as gateway `fx`, every collector at
/// 200 ms, with `extra` flags.
fn exporter(state: &TempDir, fx: &Fixture, extra: &[&str]) -> Exporter {
    Harness::exporter()
        .fixture(state, fx)
        .name("fx")
        .fast()
        .every("latency", "200ms")
        .every("logs", "200ms")
        .args(extra)
        .start()
}

/// The `collector` labels of `openclaw_gateway_collector_success`.
fn collectors_reporting(s: &Scrape) -> BTreeSet<String> {
    s.0.iter()
        .filter(|x| x.name == names::COLLECTOR_SUCCESS.name())
        .filter_map(|x| x.labels.iter().find(|(k, _)| k == "collector"))
        .map(|(_, v)| v.clone())
        .collect()
}

/// A scrape taken once each of `collectors` has sampled at least once and
/// the gateway was found, as `expect` also demands.
fn settled(exp: &Exporter, collectors: &[&str], expect: &[&str]) -> Scrape {
    exp.wait("every collector sampled", |s| {
        let reporting = collectors_reporting(s);
        let all = collectors.iter().all(|c| reporting.contains(*c));
        let present = expect.iter().all(|n| s.0.iter().any(|x| x.name == *n));
        (all && present).then(|| Scrape(s.0.clone(), s.1.clone()))
    })
}

fn names(s: &Scrape) -> BTreeSet<String> {
    s.0.iter().map(|x| x.name.clone()).collect()
}

/// The names (`comm`) of the threads of `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect()
}

#[test]
fn no_collector_connections_removes_its_series_and_its_job() {
    let (state, fx) = Fixture::with_state(&[]);
    let all = exporter(&state, &fx, &[]);
    let without = exporter(&state, &fx, &["--no-collector.connections"]);
    let others = [
        "process",
        "identity",
        "memory",
        "lifecycle",
        "logs",
        "liveness",
        "readiness",
    ];
    let mut every = others.to_vec();
    every.push("connections");
    let up = names::PROCESS_UP.name();
    let with_scrape = settled(
        &all,
        &every,
        &[
            up,
            names::TCP_CONNECTIONS.name(),
            names::LISTEN_QUEUE_LENGTH.name(),
            names::PROCESS_RESIDENT_MEMORY_BYTES.name(),
            names::LOCK_FILES.name(),
            // Absent until the fixture's event-loop monitor's first window.
            names::EVENTLOOP_DELAY_P99_SECONDS.name(),
        ],
    );
    let without_scrape = settled(
        &without,
        &others,
        &[
            up,
            names::PROCESS_RESIDENT_MEMORY_BYTES.name(),
            names::LOCK_FILES.name(),
            names::EVENTLOOP_DELAY_P99_SECONDS.name(),
        ],
    );
    let g = [("gateway", "fx")];
    assert_eq!(with_scrape.get(up, &g), Some(1.0));
    assert_eq!(without_scrape.get(up, &g), Some(1.0));

    // The series: what the enabled exporter has and the other lacks is the
    // connections collector's, and the other has none of those.
    let (with_names, without_names) = (names(&with_scrape), names(&without_scrape));
    let gone: BTreeSet<&str> = with_names
        .difference(&without_names)
        .map(String::as_str)
        .collect();
    assert!(
        gone.contains(names::TCP_CONNECTIONS.name())
            && gone.contains(names::LISTEN_QUEUE_LENGTH.name()),
        "{gone:?}"
    );
    assert!(
        gone.iter().all(|n| CONNECTIONS_SERIES.contains(n)),
        "more than the connections series are gone: {gone:?}"
    );
    for n in CONNECTIONS_SERIES {
        assert!(!without_names.contains(n), "{n} is still exported");
    }
    assert!(
        without_names.is_subset(&with_names),
        "{:?}",
        without_names.difference(&with_names).collect::<Vec<_>>()
    );
    // Nor does it report on the collector: no collector_* rows.
    assert!(collectors_reporting(&with_scrape).contains("connections"));
    let rows: Vec<_> = without_scrape
        .0
        .iter()
        .filter(|x| x.labels.iter().any(|(_, v)| v == "connections"))
        .map(|x| &x.name)
        .collect();
    assert!(rows.is_empty(), "{rows:?}");

    // No thread of its own: every collector's job runs on the same few
    // samplers' threads, so both exporters have the same threads.
    let mut threads = thread_names(all.proc.pid());
    let mut without_threads = thread_names(without.proc.pid());
    threads.sort();
    without_threads.sort();
    assert_eq!(threads, without_threads);
    for t in ["samplers-0", "samplers-1", "samplers-watch", "probes"] {
        assert!(threads.iter().any(|n| n == t), "{t} missing: {threads:?}");
    }
    assert!(
        !threads.iter().any(|t| t.ends_with("-fx")),
        "a thread per collector: {threads:?}"
    );

    // And the startup log says so, in one line.
    let line = without.wait_log("collectors enabled:");
    assert!(
        line.contains(
            "collectors enabled: process, memory, lifecycle, logs, liveness, readiness; disabled: connections"
        ),
        "{line}"
    );
}

#[test]
fn flags_win_over_the_config_file_and_the_last_flag_wins() {
    let (state, fx) = Fixture::with_state(&[]);
    let dir = TempDir::new("cfg");
    let file = dir.path().join("c.yml");
    std::fs::write(&file, "collectors:\n  memory: false\n  logs: false\n").unwrap();
    let exp = exporter(
        &state,
        &fx,
        &[
            "--config.file",
            file.to_str().unwrap(),
            "--no-collector.logs",
            "--collector.logs",
            "--collector.readiness",
            "--no-collector.readiness",
        ],
    );
    let line = exp.wait_log("collectors enabled:");
    assert!(
        line.contains(
            "collectors enabled: process, connections, lifecycle, logs, liveness; disabled: memory, readiness"
        ),
        "{line}"
    );
    let s = settled(
        &exp,
        &["process", "logs", "liveness"],
        &[names::PROCESS_UP.name()],
    );
    let reporting = collectors_reporting(&s);
    assert!(
        !reporting.contains("memory") && !reporting.contains("readiness"),
        "{reporting:?}"
    );
    assert_eq!(
        s.get(
            names::PROCESS_RESIDENT_MEMORY_BYTES.name(),
            &[("gateway", "fx")]
        ),
        None
    );
    // The readiness probe's series are gone; the liveness probe's stay.
    assert!(s
        .get(
            names::PROBE_SUCCESS.name(),
            &[("gateway", "fx"), ("endpoint", "live")]
        )
        .is_some());
    assert_eq!(
        s.get(
            names::PROBE_SUCCESS.name(),
            &[("gateway", "fx"), ("endpoint", "ready")]
        ),
        None
    );
    assert!(!s.1.contains("openclaw_gateway_eventloop_"), "{}", s.1);
}

fn run(args: &[&str]) -> Output {
    Command::new(EXPORTER)
        .args(args)
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_EXPORTER_CONFIG_FILE")
        .output()
        .unwrap()
}

#[test]
fn an_unknown_collector_is_a_usage_error() {
    for args in [
        &["--collector.nope"][..],
        &["--no-collector.nope"],
        &["--no-collector.conections", "--config.check"],
        &["diagnose", "--collector.nope"],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let name = args.iter().find(|a| a.contains("collector.")).unwrap();
        let name = name.rsplit('.').next().unwrap();
        assert!(
            err.contains(&format!("unknown collector \"{name}\""))
                && err.contains(
                    "the collectors are process, memory, connections, lifecycle, logs, liveness, readiness"
                ),
            "{args:?}: {err}"
        );
    }
    // In the file: the line, and what is known.
    let dir = TempDir::new("cfg");
    let file = dir.path().join("c.yml");
    std::fs::write(&file, "collectors:\n  connections: false\n  nope: true\n").unwrap();
    let out = run(&["--config.file", file.to_str().unwrap(), "--config.check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("c.yml:3:") && err.contains("unknown field `nope`"),
        "{err}"
    );
    // Known collectors pass.
    let out = run(&[
        "--no-collector.connections",
        "--collector.logs",
        "--config.check",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn diagnose_and_check_work_with_collectors_off() {
    let (state, fx) = Fixture::with_state(&[]);
    // Let the fixture's event-loop monitor finish its first window.
    std::thread::sleep(Duration::from_millis(1500));
    let url = fx.url();
    let sd = state.path().to_str().unwrap();
    let gateway = ["--gateway.url", &url, "--gateway.state-dir", sd];
    let off = [
        "--no-collector.process",
        "--no-collector.memory",
        "--no-collector.connections",
        "--no-collector.lifecycle",
        "--no-collector.logs",
    ];
    let mut args = vec!["diagnose", "--json"];
    args.extend_from_slice(&gateway);
    args.extend_from_slice(&off);
    let out = run(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = v["gateways"][0]["checks"].as_array().unwrap();
    let check = |name: &str| checks.iter().find(|c| c["check"] == name);
    // The process is still looked for, and found.
    let process = check("process").unwrap();
    assert_eq!(process["status"], "OK", "{v}");
    assert_eq!(process["value"], fx.pid() as f64, "{v}");
    // Only the probes ran: the lines that need other collectors are skipped.
    for absent in ["locks", "memory", "fds", "connections", "port"] {
        assert!(check(absent).is_none(), "{absent}: {v}");
    }
    assert_eq!(check("liveness").unwrap()["status"], "OK", "{v}");
    assert_eq!(check("hung").unwrap()["status"], "OK", "{v}");
    assert!(v["gateways"][0]["recent_log_lines"]
        .as_array()
        .unwrap()
        .is_empty());
    // The verdict on what did run (a loaded machine may slow the fixture's
    // event loop: that line is not about collectors).
    let code = match v["status"].as_str() {
        Some("OK") => 0,
        Some("WARN") => 1,
        _ => 2,
    };
    assert_eq!(out.status.code(), Some(code), "{v}");

    // `check` is a probe of its own: collector flags do not change it.
    let mut args = vec!["check", "--no-collector.liveness", "--no-collector.process"];
    args.extend_from_slice(&gateway);
    let out = run(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------- process_*

#[test]
fn own_process_metrics_agree_with_proc() {
    let (state, fx) = Fixture::with_state(&[]);
    // The default intervals: the collectors' own reads open fds for a moment.
    let exp = Harness::exporter().fixture(&state, &fx).start();
    let pid = exp.proc.pid();
    let get = |s: &Scrape, name: &str| {
        s.get(name, &[])
            .unwrap_or_else(|| panic!("no {name}:\n{}", s.1))
    };

    // Resident and virtual memory, CPU: between what /proc says before and
    // after the scrape.
    let rss_before = vm_rss(pid);
    let vsize_before = stat_field(pid, 23);
    let cpu_before = cpu_seconds(pid);
    let s = exp.scrape();
    let rss_after = vm_rss(pid);
    let vsize_after = stat_field(pid, 23);
    let cpu_after = cpu_seconds(pid);
    let within = |v: f64, a: u64, b: u64, slack: u64| {
        v >= a.min(b).saturating_sub(slack) as f64 && v <= (a.max(b) + slack) as f64
    };
    let rss = get(&s, names::EXPORTER_PROCESS_RESIDENT_MEMORY_BYTES.name());
    assert!(
        within(rss, rss_before, rss_after, 1 << 20),
        "{rss} not within {rss_before}..{rss_after} (1 MiB slack)"
    );
    let vsize = get(&s, names::EXPORTER_PROCESS_VIRTUAL_MEMORY_BYTES.name());
    assert!(
        within(vsize, vsize_before, vsize_after, 1 << 20),
        "{vsize} not within {vsize_before}..{vsize_after}"
    );
    let cpu = get(&s, names::EXPORTER_PROCESS_CPU_SECONDS_TOTAL.name());
    assert!(
        cpu >= cpu_before - 1e-9 && cpu <= cpu_after + 1e-9,
        "{cpu} not within {cpu_before}..{cpu_after}"
    );

    // Limits and start time: exact, and within a second.
    assert_eq!(
        get(&s, names::EXPORTER_PROCESS_MAX_FDS.name()),
        max_open_files(pid) as f64
    );
    let start = start_time_seconds(pid);
    let scraped = get(&s, names::EXPORTER_PROCESS_START_TIME_SECONDS.name());
    assert!((scraped - start).abs() <= 1.0, "{scraped} vs {start}");
    let threads = get(&s, names::EXPORTER_PROCESS_THREADS.name());
    let now = stat_field(pid, 20) as f64;
    assert!((threads - now).abs() <= 1.0, "{threads} vs {now}");

    // Open fds: while it scrapes, the exporter also holds the scrape's
    // connection and its read of /proc/self/fd, and a collector or probe may
    // hold one for a moment: the count agrees within 3 once it is quiet.
    let agreeing_fds = || {
        wait_for(Duration::from_secs(10), "process_open_fds agrees", || {
            let fds = get(&exp.scrape(), names::EXPORTER_PROCESS_OPEN_FDS.name());
            let truth = fd_count(pid) as f64;
            ((fds - truth).abs() <= 3.0).then_some(fds)
        })
    };
    let fds = agreeing_fds();
    // 40 connections held open show as 40 more than the quiet count (the
    // least of a few reads: a closing scrape connection may still count).
    let before = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            fd_count(pid)
        })
        .min()
        .unwrap();
    let held: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(&exp.addr).unwrap())
        .collect();
    wait_for(Duration::from_secs(10), "40 connections accepted", || {
        (fd_count(pid) >= before + 40).then_some(())
    });
    let more = agreeing_fds();
    assert!((more - fds - 40.0).abs() <= 3.0, "{fds} then {more}");
    drop(held);

    // CPU time never goes back.
    assert!(
        get(
            &exp.scrape(),
            names::EXPORTER_PROCESS_CPU_SECONDS_TOTAL.name()
        ) >= cpu
    );

    // Named and typed as the Go and Python clients have them.
    for (name, kind) in [
        (names::EXPORTER_PROCESS_CPU_SECONDS_TOTAL.name(), "counter"),
        (names::EXPORTER_PROCESS_OPEN_FDS.name(), "gauge"),
        (names::EXPORTER_PROCESS_MAX_FDS.name(), "gauge"),
        (names::EXPORTER_PROCESS_VIRTUAL_MEMORY_BYTES.name(), "gauge"),
        (
            names::EXPORTER_PROCESS_RESIDENT_MEMORY_BYTES.name(),
            "gauge",
        ),
        (names::EXPORTER_PROCESS_START_TIME_SECONDS.name(), "gauge"),
        (names::EXPORTER_PROCESS_THREADS.name(), "gauge"),
    ] {
        assert!(
            s.1.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}:\n{}",
            s.1
        );
    }
}

#[test]
fn without_the_process_collector_there_is_no_hang_verdict_and_no_identity_watch() {
    let (state, fx) = Fixture::with_state(&[]);
    let exp = exporter(&state, &fx, &["--no-collector.process"]);
    let s = settled(
        &exp,
        &["liveness", "memory", "connections"],
        &[names::PROBE_SUCCESS.name()],
    );
    let g = [("gateway", "fx")];
    // The liveness probe runs; the verdict on the process it would judge does not.
    assert_eq!(
        s.get(
            names::PROBE_SUCCESS.name(),
            &[("gateway", "fx"), ("endpoint", "live")]
        ),
        Some(1.0)
    );
    for absent in [
        names::HUNG.name(),
        names::PROCESS_UP.name(),
        names::PROCESS_RESTARTS_TOTAL.name(),
    ] {
        assert_eq!(s.get(absent, &g), None, "{absent}:\n{}", s.1);
    }
    let reporting = collectors_reporting(&s);
    assert!(
        !reporting.contains("process") && !reporting.contains("identity"),
        "{reporting:?}"
    );
    let threads = thread_names(exp.proc.pid());
    assert!(
        !threads
            .iter()
            .any(|t| t.starts_with("process-") || t.starts_with("identity-")),
        "{threads:?}"
    );
}
