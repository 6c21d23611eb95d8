//! Process vitals against the fixture gateway, compared with /proc itself.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use openclaw_gateway_exporter::names;

/// An exporter watching gateway `fx` with its state dir, sampling every 200 ms.
fn exporter(url: &str, state_dir: &str) -> Harness {
    Harness::exporter()
        .url(url)
        .state_dir(state_dir)
        .name("fx")
        .fast()
}

/// A fixture and an exporter watching it through its state dir.
fn watched(fixture_args: &[&str]) -> (TempDir, Fixture, Exporter, String) {
    let (state, fx) = Fixture::with_state(fixture_args);
    let url = fx.url();
    let exp = exporter(&url, dir_str(state.path())).start();
    exp.wait_eq("gateway found", names::PROCESS_UP.name(), G, 1.0);
    (state, fx, exp, url)
}

const G: &[(&str, &str)] = &[("gateway", "fx")];

#[test]
fn up_is_zero_before_the_gateway_exists_then_found_by_lock_file() {
    let state = TempDir::new("state");
    let state_dir = state.path().to_str().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let exp = exporter(&url, state_dir).start();

    // Before the gateway exists: up 0 from the start, vitals absent, never missing.
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(0.0), "{}", s.1);
    exp.wait("first samples", |s| {
        s.get(
            names::COLLECTOR_SUCCESS.name(),
            &[("gateway", "fx"), ("collector", "process")],
        )
    });
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(0.0));
    assert_eq!(s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G), None);
    assert_eq!(s.get(names::PROCESS_OPEN_FDS.name(), G), None);
    assert_eq!(s.get(names::PROCESS_RESTARTS_TOTAL.name(), G), Some(0.0));

    let port_s = port.to_string();
    let fx = Fixture::start(&["--port", &port_s, "--state-dir", state_dir]);
    // The gateway listens a moment before it writes its lock, so the first
    // sample may find it by title; the lock file wins once it exists.
    exp.wait_eq(
        "found by its lock file",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "fx"), ("method", "lock_file")],
        1.0,
    );
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(1.0));
    assert_eq!(
        s.get(
            names::DISCOVERY_METHOD.name(),
            &[("gateway", "fx"), ("method", "listen_socket")]
        ),
        Some(0.0)
    );
    // The start time is the fixture's, from its own /proc/<pid>/stat.
    let expected = start_time_seconds(fx.pid());
    let got = s.get(names::PROCESS_START_TIME_SECONDS.name(), G).unwrap();
    assert!(
        (got - expected).abs() < 0.02,
        "start time {got} vs {expected}"
    );
    // Finding it the first time is not a restart.
    assert_eq!(s.get(names::PROCESS_RESTARTS_TOTAL.name(), G), Some(0.0));
}

#[test]
fn resident_memory_tracks_vmrss_and_moves_with_allocations() {
    let (_state, fx, exp, _) = watched(&["--children", "0"]);
    let close = |a: f64, b: f64, pct: f64| (a - b).abs() <= b * pct / 100.0;

    let rss = exp.wait("rss", |s| {
        s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)
    });
    let truth = vm_rss(fx.pid()) as f64;
    assert!(close(rss, truth, 5.0), "rss {rss} vs VmRSS {truth}");

    fx.cmd("alloc?mb=200");
    let truth_after = vm_rss(fx.pid()) as f64;
    assert!(
        truth_after - truth > 190e6,
        "the fixture did not grow: {truth} -> {truth_after}"
    );
    // A sample may land while the 64 MB chunks are still being touched:
    // compare each sample with VmRSS read right after it.
    let rss_after = exp.wait("rss to grow, within 5% of VmRSS", |s| {
        s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)
            .filter(|v| v - rss > 190e6 && close(*v, vm_rss(fx.pid()) as f64, 5.0))
    });
    let vms = exp
        .scrape()
        .get(names::PROCESS_VIRTUAL_MEMORY_BYTES.name(), G)
        .unwrap();
    assert!(vms >= rss_after, "virtual {vms} < resident {rss_after}");
}

#[test]
fn open_fds_track_proc_and_move_by_n() {
    let (_state, fx, exp, _) = watched(&[]);
    let fds = exp.wait("fds", |s| s.get(names::PROCESS_OPEN_FDS.name(), G));
    let truth = fd_count(fx.pid()) as f64;
    assert!((fds - truth).abs() <= 3.0, "fds {fds} vs /proc {truth}");

    let opened = fx.cmd("open-fds?n=500");
    assert!(opened.to_string().contains("500"), "{opened}");
    let after = exp.wait("fds to move", |s| {
        s.get(names::PROCESS_OPEN_FDS.name(), G)
            .filter(|v| v - fds >= 497.0)
    });
    assert!(
        (after - fds - 500.0).abs() <= 3.0,
        "moved by {} instead of 500",
        after - fds
    );
    let truth = fd_count(fx.pid()) as f64;
    assert!((after - truth).abs() <= 3.0, "fds {after} vs /proc {truth}");

    let max = exp.scrape().get(names::PROCESS_MAX_FDS.name(), G).unwrap();
    assert_eq!(max, max_open_files(fx.pid()) as f64);
}

#[test]
fn workers_threads_and_cpu() {
    let (_state, fx, exp, _) = watched(&["--children", "2"]);
    let kids = wait_for(
        std::time::Duration::from_secs(10),
        "fixture workers",
        || {
            let k = children(fx.pid());
            (k.len() == 2).then_some(k)
        },
    );
    exp.wait_eq("children", names::PROCESS_CHILDREN.name(), G, 2.0);
    // Workers grow while they start; compare each sample with /proc read right after it.
    exp.wait("children rss close to the workers' VmRSS", |s| {
        let got = s.get(names::PROCESS_CHILDREN_RESIDENT_MEMORY_BYTES.name(), G)?;
        let truth: f64 = kids.iter().map(|&k| vm_rss(k) as f64).sum();
        ((got - truth).abs() <= truth * 0.05).then_some(())
    });

    let s = exp.scrape();
    let threads = s.get(names::PROCESS_THREADS.name(), G).unwrap();
    let truth = std::fs::read_dir(format!("/proc/{}/task", fx.pid()))
        .unwrap()
        .count() as f64;
    assert!(
        (threads - truth).abs() <= 2.0,
        "threads {threads} vs {truth}"
    );

    // Burn CPU in the fixture's event loop: a 1 s spin. On a busy machine the
    // spin gets less than a whole core, so the truth is /proc, read after it.
    let before = cpu_seconds(fx.pid());
    fx.cmd("block?ms=1000");
    fx.cmd("stats"); // answered once the spin is over
    let truth = cpu_seconds(fx.pid());
    assert!(
        truth - before >= 0.2,
        "the spin burned CPU: {before} -> {truth}"
    );
    exp.wait("cpu to reach /proc's after the spin", |s| {
        let v = s.get(names::PROCESS_CPU_SECONDS_TOTAL.name(), G)?;
        (v >= truth - 0.011 && v <= cpu_seconds(fx.pid()) + 0.011).then_some(())
    });
}

#[test]
fn a_restart_is_counted_and_the_new_pid_followed() {
    let (state, fx, exp, _) = watched(&[]);
    let state_dir = state.path().to_str().unwrap().to_string();
    let port = fx.port.to_string();
    let first = fx.pid();
    fx.cmd("exit?code=0");
    drop(fx);
    exp.wait_eq("down", names::PROCESS_UP.name(), G, 0.0);

    let fx2 = Fixture::start(&["--port", &port, "--state-dir", &state_dir]);
    assert_ne!(fx2.pid(), first);
    // Every collector resolves the process on its own tick, so the restart
    // may be counted a tick before the process collector reports it up.
    exp.wait("restart counted and the new process up", |s| {
        (s.get(names::PROCESS_RESTARTS_TOTAL.name(), G) == Some(1.0)
            && s.get(names::PROCESS_UP.name(), G) == Some(1.0))
        .then_some(())
    });
    // Any collector may count the restart first; the process collector's
    // own sample may come a tick later.
    let s = exp.wait("up again", |s| {
        (s.get(names::PROCESS_UP.name(), G) == Some(1.0)).then(|| Scrape(s.0.clone(), s.1.clone()))
    });
    assert_eq!(s.get(names::PROCESS_RESTARTS_TOTAL.name(), G), Some(1.0));
    let expected = start_time_seconds(fx2.pid());
    let got = s.get(names::PROCESS_START_TIME_SECONDS.name(), G).unwrap();
    assert!(
        (got - expected).abs() < 0.02,
        "follows the new process: {got} vs {expected}"
    );
    let fds = s.get(names::PROCESS_OPEN_FDS.name(), G).unwrap();
    assert!((fds - fd_count(fx2.pid()) as f64).abs() <= 3.0);
}

#[test]
fn found_by_title_without_a_lock_and_by_listen_socket_without_a_title() {
    // No lock file: the title and the listening port identify it.
    let (_s1, _fx1, exp1, _) = watched(&["--no-lock"]);
    let s = exp1.scrape();
    assert_eq!(
        s.get(
            names::DISCOVERY_METHOD.name(),
            &[("gateway", "fx"), ("method", "process_title")]
        ),
        Some(1.0)
    );

    // Neither lock nor title: the owner of the LISTEN socket.
    let (_s2, _fx2, exp2, _) = watched(&["--no-lock", "--title", "some-other-name"]);
    let s = exp2.scrape();
    assert_eq!(
        s.get(
            names::DISCOVERY_METHOD.name(),
            &[("gateway", "fx"), ("method", "listen_socket")]
        ),
        Some(1.0)
    );
}

#[test]
fn an_explicit_pid_wins_and_a_stale_lock_is_not_trusted() {
    let (state, fx) = Fixture::with_state(&["--no-lock"]);
    let state_dir = dir_str(state.path());
    // A lock naming a live pid with the wrong start time (pid reuse) must be ignored.
    let lock_dir = state.path().join("tmp/openclaw-0");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let me = std::process::id();
    std::fs::write(
        lock_dir.join("gateway.deadbeef.lock"),
        format!(
            "{{\"pid\":{me},\"port\":{},\"startTime\":1}}\n  \n",
            fx.port
        ),
    )
    .unwrap();
    let url = fx.url();
    let pid = fx.pid().to_string();
    let exp = exporter(&url, state_dir).start();
    exp.wait_eq(
        "found by title, not by the stale lock",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "fx"), ("method", "process_title")],
        1.0,
    );
    drop(exp);

    let exp = exporter(&url, state_dir)
        .args(&["--gateway.pid", &pid])
        .start();
    exp.wait_eq(
        "found by pid",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "fx"), ("method", "pid")],
        1.0,
    );
}
