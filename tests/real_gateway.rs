//! The exporter against the real OpenClaw gateway, the thing our users run.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use openclaw_gateway_exporter::discovery::is_gateway_command;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "real")];

/// An exporter watching `gw` as gateway `real`, sampling every 250 ms.
fn exporter(gw: &RealGateway) -> Exporter {
    Harness::exporter()
        .real(gw)
        .every("connections", "250ms")
        .every("memory", "250ms")
        .start()
}

#[test]
fn real_gateway_vitals_match_proc() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[]);
    let exp = exporter(&gw);
    exp.wait_eq(
        "real gateway found by its lock file",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "real"), ("method", "lock_file")],
        1.0,
    );
    let pid = gw.pid();
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim(),
        "openclaw-gatewa"
    );

    // RSS, fds and workers move on their own; compare each sample with /proc right after it.
    exp.wait("rss within 5% of VmRSS", |s| {
        let rss = s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)?;
        let truth = vm_rss(pid) as f64;
        ((rss - truth).abs() <= truth * 0.05).then_some(())
    });
    exp.wait("open fds within 3 of /proc", |s| {
        let fds = s.get(names::PROCESS_OPEN_FDS.name(), G)?;
        ((fds - fd_count(pid) as f64).abs() <= 3.0).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(
        s.get(names::PROCESS_MAX_FDS.name(), G),
        Some(max_open_files(pid) as f64)
    );
    let workers = children(pid);
    assert!(!workers.is_empty(), "the real gateway runs worker children");
    // Its command line, as discovery reads it where the OS shows no title
    // (macOS, Windows): the title, over the arguments; its workers' are not
    // a gateway's.
    let cmdline = |pid| -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let title = openclaw_gateway_exporter::config::DEFAULT_PROCESS_TITLE;
    assert!(
        is_gateway_command(&cmdline(pid), title),
        "{:?}",
        cmdline(pid)
    );
    for w in &workers {
        assert!(
            !is_gateway_command(&cmdline(*w), title),
            "{:?}",
            cmdline(*w)
        );
    }
    exp.wait("children counted", |s| {
        (s.get(names::PROCESS_CHILDREN.name(), G) == Some(children(pid).len() as f64)).then_some(())
    });
    exp.wait("children rss within 5%", |s| {
        let got = s.get(names::PROCESS_CHILDREN_RESIDENT_MEMORY_BYTES.name(), G)?;
        let truth = vm_rss_of_children(&children(pid)) as f64;
        ((got - truth).abs() <= truth * 0.05).then_some(())
    });
    let cpu = s.get(names::PROCESS_CPU_SECONDS_TOTAL.name(), G).unwrap();
    assert!(
        cpu > 1.0,
        "a gateway that took seconds to start has used CPU: {cpu}"
    );

    // Healthy: two live locks (gateway.state.lock and gateway.<hash>.lock), one instance.
    let lock = |s: &Scrape, state: &str| {
        s.get(
            names::LOCK_FILES.name(),
            &[("gateway", "real"), ("state", state)],
        )
    };
    exp.wait("live locks", |s| {
        (lock(s, "live") == Some(2.0)).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(lock(&s, "stale"), Some(0.0));
    assert_eq!(s.get(names::INSTANCES.name(), G), Some(1.0));
    assert_eq!(s.get(names::PORT_OWNER_MISMATCH.name(), G), Some(0.0));
    let limit = s
        .get(
            names::MEMORY_LIMIT_BYTES.name(),
            &[("gateway", "real"), ("source", "host")],
        )
        .expect("no limit configured: the host's memory");
    assert!(limit > 1e9);

    // A second process titled openclaw-gateway on the same state dir.
    let dup = Fixture::start(&["--port", "0", "--state-dir", dir_str(&gw.state_dir())]);
    exp.wait_eq("two instances", names::INSTANCES.name(), G, 2.0);
    drop(dup);

    // A crash: the exporter reports it down, the locks stay behind as stale.
    gw.proc.signal("KILL");
    exp.wait_eq("down after kill -9", names::PROCESS_UP.name(), G, 0.0);
    exp.wait("stale locks after kill -9", |s| {
        (lock(s, "stale").unwrap_or(0.0) >= 1.0).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G), None);
    assert_eq!(lock(&s, "live"), Some(0.0));
}

#[test]
fn real_gateway_limit_diagnose_and_check() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[("NODE_OPTIONS", "--max-old-space-size=1024")]);
    let url = gw.url();
    let state_dir = gw.state_dir();
    let sd = state_dir.to_str().unwrap();
    let exp = exporter(&gw);
    let limit = exp.wait("limit from NODE_OPTIONS", |s| {
        s.get(
            names::MEMORY_LIMIT_BYTES.name(),
            &[("gateway", "real"), ("source", "max_old_space_size")],
        )
    });
    assert_eq!(limit, 1073741824.0);

    // Wait until /readyz is past its startup checks and the gateway's own
    // event-loop figure has settled (startup work keeps it busy for a while).
    let mut settled = 0;
    wait_for(
        std::time::Duration::from_secs(90),
        "readyz 200 with a settled event loop",
        || {
            let (status, _, body) = http_get(&gw.addr(), "/readyz", &[]).ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let p99 = v["eventLoop"]["delayP99Ms"].as_f64()?;
            settled = if status == 200 && p99 < 30.0 {
                settled + 1
            } else {
                0
            };
            std::thread::sleep(std::time::Duration::from_millis(500));
            (settled >= 4).then_some(())
        },
    );
    let cmd = |sub: &str| {
        std::process::Command::new(EXPORTER)
            .args([
                sub,
                "--gateway.url",
                &url,
                "--gateway.state-dir",
                sd,
                "--gateway.memory-limit",
                "4GiB",
                "--probe.timeout",
                "2s",
            ])
            .env_remove("OPENCLAW_STATE_DIR")
            .output()
            .unwrap()
    };
    let show = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    // Healthy and settled, but younger than the startup grace: starting, at
    // most WARN (tests/real_gateway_restart.rs waits out the grace for OK).
    let healthy = cmd("diagnose");
    assert_eq!(
        healthy.status.code(),
        Some(1),
        "a young real gateway diagnoses as starting:\n{}",
        show(&healthy)
    );
    assert!(
        show(&healthy).contains("WARN  startup      starting: up "),
        "{}",
        show(&healthy)
    );
    let ok = cmd("check");
    assert_eq!(ok.status.code(), Some(0), "{}", show(&ok));

    gw.proc.signal("STOP");
    let hung = cmd("diagnose");
    let failing = cmd("check");
    gw.proc.signal("CONT");
    assert_eq!(hung.status.code(), Some(2), "{}", show(&hung));
    assert!(show(&hung).contains("HUNG"), "{}", show(&hung));
    assert_eq!(failing.status.code(), Some(1), "{}", show(&failing));
    assert!(show(&failing).contains("HUNG"), "{}", show(&failing));
}
