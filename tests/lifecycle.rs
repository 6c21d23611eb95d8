//! Lifecycle faults against the fixture gateway: stale locks, duplicate
//! instances, port owner mismatch, restarts in a crash loop, the memory limit
//! and the log follower.
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "fx")];

/// An exporter watching gateway `fx`, sampling every 200 ms.
fn exporter(url: &str, state_dir: &str, extra: &[&str]) -> Exporter {
    exporter_command(std::process::Command::new(EXPORTER), url, state_dir, extra)
}

/// The same, run by `cmd` (the exporter binary, or a wrapper that runs it).
fn exporter_command(
    cmd: std::process::Command,
    url: &str,
    state_dir: &str,
    extra: &[&str],
) -> Exporter {
    Harness::exporter_via(cmd)
        .name("fx")
        .url(url)
        .state_dir(state_dir)
        .fast()
        .every("logs", "200ms")
        .args(extra)
        .start()
}

fn lock_files(s: &Scrape, state: &str) -> Option<f64> {
    s.get(
        names::LOCK_FILES.name(),
        &[("gateway", "fx"), ("state", state)],
    )
}

#[test]
fn kill_9_leaves_a_stale_lock_and_sigterm_does_not() {
    let (state, fx) = Fixture::with_state(&[]);
    let sd = dir_str(state.path());
    let url = fx.url();
    let exp = exporter(&url, sd, &[]);
    exp.wait("one live lock", |s| {
        (lock_files(s, "live") == Some(1.0)).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(lock_files(&s, "stale"), Some(0.0));
    assert_eq!(s.get(names::LOCK_STALE_AGE_SECONDS.name(), G), None);
    assert_eq!(s.get(names::INSTANCES.name(), G), Some(1.0));
    assert_eq!(s.get(names::PORT_OWNER_MISMATCH.name(), G), Some(0.0));

    fx.proc.signal("KILL");
    exp.wait("stale lock after kill -9", |s| {
        (lock_files(s, "stale") == Some(1.0)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1200));
    let s = exp.scrape();
    assert_eq!(lock_files(&s, "live"), Some(0.0));
    assert_eq!(s.get(names::INSTANCES.name(), G), Some(0.0));
    let age = s.get(names::LOCK_STALE_AGE_SECONDS.name(), G).unwrap();
    assert!(age >= 1.0, "the stale lock is older than a second: {age}");

    // A clean stop removes its lock.
    let port = fx.port.to_string();
    drop(fx);
    let fx2 = Fixture::start(&["--port", &port, "--state-dir", sd]);
    exp.wait("live again", |s| {
        (lock_files(s, "live") == Some(1.0)).then_some(())
    });
    fx2.proc.signal("TERM");
    exp.wait("no live lock after SIGTERM", |s| {
        (lock_files(s, "live") == Some(0.0)).then_some(())
    });
}

#[test]
fn unreadable_and_garbage_locks_are_invalid_not_fatal() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let dir = state.path().join("tmp/openclaw-0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gateway.empty.lock"), "").unwrap();
    std::fs::write(dir.join("gateway.binary.lock"), [0u8, 159, 146, 150, 255]).unwrap();
    std::fs::write(dir.join("gateway.huge.lock"), vec![b' '; 1 << 20]).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("gateway.link.lock")).unwrap();
    std::fs::create_dir(dir.join("gateway.dir.lock")).unwrap();
    mkfifo(&dir.join("gateway.fifo.lock"));
    let url = format!("http://127.0.0.1:{}", free_port());
    let exp = exporter(&url, sd, &[]);
    exp.wait("six invalid locks", |s| {
        (lock_files(s, "invalid") == Some(6.0)).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(0.0));
    assert_eq!(
        s.get(
            names::COLLECTOR_SUCCESS.name(),
            &[("gateway", "fx"), ("collector", "lifecycle")]
        ),
        Some(1.0)
    );
}

fn mkfifo(path: &std::path::Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// A FIFO where the pid file belongs would block a plain open() until a
/// writer came, and with it the sampler: it is skipped, and discovery goes on
/// to the lock file.
#[test]
fn a_fifo_for_a_pid_file_does_not_block_discovery() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let fifo = state.path().join("gateway.pid");
    mkfifo(&fifo);
    let fx = Fixture::start_in(&state, &[]);
    let url = fx.url();
    let exp = exporter(&url, sd, &["--gateway.pid-file", fifo.to_str().unwrap()]);
    exp.wait_eq(
        "found by its lock file",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "fx"), ("method", "lock_file")],
        1.0,
    );
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(1.0));
}

#[test]
fn a_second_instance_on_the_same_state_dir_is_counted() {
    let (state, fx) = Fixture::with_state(&["--children", "2"]);
    let sd = dir_str(state.path());
    let url = fx.url();
    let exp = exporter(&url, sd, &[]);
    exp.wait_eq(
        "one instance (workers are not instances)",
        names::INSTANCES.name(),
        G,
        1.0,
    );
    let dup = Fixture::start_in(&state, &[]);
    exp.wait_eq("two instances", names::INSTANCES.name(), G, 2.0);
    drop(dup);
    exp.wait_eq("one again", names::INSTANCES.name(), G, 1.0);
}

/// The exporter's binary name truncates to the gateway's `comm`
/// (`openclaw-gatewa`). Given the gateway's state dir in its environment, as
/// the Dockerfile suggests for `check`, neither it nor a `check` run is an
/// instance of the gateway.
#[test]
fn the_exporter_and_its_check_are_not_instances_of_the_gateway() {
    let (state, fx) = Fixture::with_state(&[]);
    let sd = dir_str(state.path());
    let url = fx.url();
    // The exporter binary with the gateway's state dir in its environment.
    let with_state_dir_env = || {
        let mut cmd = std::process::Command::new("env");
        cmd.arg(format!("OPENCLAW_STATE_DIR={sd}")).arg(EXPORTER);
        cmd
    };
    let exp = exporter_command(with_state_dir_env(), &url, sd, &[]);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{}/comm", exp.proc.pid())).unwrap(),
        "openclaw-gatewa\n",
        "the exporter shares the gateway's comm"
    );
    exp.wait("lifecycle sampled", |s| s.get(names::INSTANCES.name(), G));
    // Several lifecycle samples later, still one.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(exp.scrape().get(names::INSTANCES.name(), G), Some(1.0));

    // A `check` (a HEALTHCHECK) that stays alive while /healthz is slow.
    fx.cmd("delay?ms=3000");
    let mut check = with_state_dir_env()
        .args(["check", "--gateway.url", &url, "--probe.timeout", "10s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        check.try_wait().unwrap(),
        None,
        "the check is still waiting for /healthz"
    );
    assert_eq!(exp.scrape().get(names::INSTANCES.name(), G), Some(1.0));
    assert!(check.wait().unwrap().success());
    fx.cmd("delay?ms=0");
}

#[test]
fn a_port_held_by_another_process_than_the_lock_names_is_a_mismatch() {
    // The lock in our state dir names fixture A; fixture B (no lock) holds the port.
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let other = TempDir::new("other");
    let a = Fixture::start_in(&state, &[]);
    let b = Fixture::start(&[
        "--port",
        "0",
        "--state-dir",
        other.path().to_str().unwrap(),
        "--no-lock",
    ]);
    let url = b.url();
    let exp = exporter(&url, sd, &[]);
    exp.wait_eq("mismatch", names::PORT_OWNER_MISMATCH.name(), G, 1.0);
    assert_eq!(exp.scrape().get(names::INSTANCES.name(), G), Some(2.0));
    drop(a);
}

/// An exporter whose full samples run every 30 s: within a test, only the
/// 1 s identity watch can see restarts.
fn identity_watch_only(url: &str, state_dir: &str) -> Exporter {
    Harness::exporter()
        .name("fx")
        .url(url)
        .state_dir(state_dir)
        .every("connections", "30s")
        .every("memory", "30s")
        .start()
}

#[test]
fn restarts_are_counted_when_the_gateway_crash_loops_faster_than_the_interval() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let exp = identity_watch_only(&url, sd);
    let mut pids = Vec::new();
    for _ in 0..3 {
        let fx = Fixture::start(&["--port", &port, "--state-dir", sd]);
        pids.push(fx.pid());
        std::thread::sleep(Duration::from_millis(2500));
        fx.proc.signal("KILL");
    }
    assert_eq!(pids.len(), 3);
    exp.wait_eq(
        "2 restarts among 3 processes",
        names::PROCESS_RESTARTS_TOTAL.name(),
        G,
        2.0,
    );
}

/// The same for a gateway without lock files, found by its process title:
/// the identity watch looks for the successor the full way once the process
/// it knew is gone.
#[test]
fn restarts_are_counted_for_a_gateway_found_by_its_title() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    let start = || Fixture::start(&["--port", &port, "--state-dir", sd, "--no-lock"]);
    let mut fx = start();
    let exp = identity_watch_only(&url, sd);
    exp.wait_eq(
        "found by its title",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "fx"), ("method", "process_title")],
        1.0,
    );
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(2500));
        fx.proc.signal("KILL");
        fx = start();
    }
    exp.wait_eq(
        "2 restarts among 3 processes",
        names::PROCESS_RESTARTS_TOTAL.name(),
        G,
        2.0,
    );
}

#[test]
fn memory_limit_sources() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();

    // NODE_OPTIONS in the gateway's environment.
    let mut node = Fixture::command();
    node.args(["--port", "0", "--state-dir", sd])
        .env("NODE_OPTIONS", "--max-old-space-size=1024");
    let fx = Fixture::spawn(node);
    let url = fx.url();
    let exp = exporter(&url, sd, &[]);
    let limit = exp.wait("limit from max_old_space_size", |s| {
        s.get(
            names::MEMORY_LIMIT_BYTES.name(),
            &[("gateway", "fx"), ("source", "max_old_space_size")],
        )
    });
    assert_eq!(limit, 1073741824.0);
    let s = exp.scrape();
    let rss = s
        .get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)
        .unwrap();
    let ratio = s.get(names::MEMORY_USAGE_RATIO.name(), G).unwrap();
    assert!((ratio - rss / limit).abs() < 1e-9);
    drop(exp);

    // The configured limit wins.
    let exp = exporter(&url, sd, &["--gateway.memory-limit", "256MiB"]);
    let limit = exp.wait("configured limit", |s| {
        s.get(
            names::MEMORY_LIMIT_BYTES.name(),
            &[("gateway", "fx"), ("source", "config")],
        )
    });
    assert_eq!(limit, 268435456.0);
    drop(exp);

    // A real cgroup (v1 or v2) where this machine lets us make one.
    if let Some(cg) = Cgroup::create(512 << 20) {
        cg.add(fx.pid());
        let exp = exporter(&url, sd, &[]);
        let limit = exp.wait("limit from the cgroup", |s| {
            s.get(
                names::MEMORY_LIMIT_BYTES.name(),
                &[("gateway", "fx"), ("source", "cgroup")],
            )
        });
        assert_eq!(limit, 536870912.0);
        drop(exp);
        drop(fx);
        drop(cg);
    } else {
        eprintln!("no writable memory cgroup here: the real-cgroup case was not run");
    }

    // No limit anywhere: the host's memory.
    let plain = Fixture::start_in(&state, &[]);
    let exp = exporter(&plain.url(), sd, &[]);
    let limit = exp.wait("host limit", |s| {
        s.get(
            names::MEMORY_LIMIT_BYTES.name(),
            &[("gateway", "fx"), ("source", "host")],
        )
    });
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(limit, kb * 1024.0);
}

/// A memory cgroup made for one test, removed on drop.
struct Cgroup(std::path::PathBuf, &'static str);

impl Cgroup {
    fn create(limit: u64) -> Option<Cgroup> {
        let name = format!("ocgx-test-{}", std::process::id());
        for (base, file) in [
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes"),
            ("/sys/fs/cgroup", "memory.max"),
        ] {
            let dir = std::path::Path::new(base).join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                if std::fs::write(dir.join(file), limit.to_string()).is_ok() {
                    return Some(Cgroup(dir, file));
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        None
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
        let _ = self.1;
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn log_patterns_are_counted_across_a_rotation() {
    let LoggedFixture {
        state,
        logs,
        log,
        fx,
    } = LoggedFixture::start(&[]);
    let sd = dir_str(state.path());
    let url = fx.url();
    // A user's own pattern, next to the field report's three.
    let config = logs.path().join("exporter.yml");
    std::fs::write(
        &config,
        "log_patterns:\n  upstream_timeout: 'ETIMEDOUT|ConnectionTimeoutException'\n",
    )
    .unwrap();
    let exp = exporter(
        &url,
        sd,
        &[
            "--gateway.log-path",
            logs.path().to_str().unwrap(),
            "--config.file",
            config.to_str().unwrap(),
        ],
    );
    let pat = |s: &Scrape, p: &str| {
        s.get(
            names::LOG_PATTERN_MATCHES_TOTAL.name(),
            &[("gateway", "fx"), ("pattern", p)],
        )
    };
    let lvl = |s: &Scrape, l: &str| {
        s.get(
            names::LOG_MESSAGES_TOTAL.name(),
            &[("gateway", "fx"), ("level", l)],
        )
    };
    exp.wait_eq("log followed", names::LOG_FILE_PRESENT.name(), G, 1.0);
    let s = exp.scrape();
    assert_eq!(
        pat(&s, "event_loop_delay"),
        Some(0.0),
        "history before the exporter started is not counted"
    );
    assert_eq!(
        pat(&s, "upstream_timeout"),
        Some(0.0),
        "exported from the start"
    );

    fx.cmd("log?level=WARN&message=Event%20loop%20delay%20120ms%20exceeds%20threshold&n=3");
    fx.cmd("log?level=ERROR&message=Process%20memory%20950MB%20exceeds%20limit%201GB&n=2");
    fx.cmd("log?level=WARN&message=1500%20active%20connections%20detected&n=1");
    fx.cmd("log?level=INFO&message=hello&n=4");
    fx.cmd("log?level=ERROR&message=model%20call%20failed%3A%20connect%20ETIMEDOUT%2010.0.0.7%3A443&n=2");
    exp.wait("patterns counted", |s| {
        (pat(s, "active_connections") == Some(1.0) && pat(s, "upstream_timeout") == Some(2.0))
            .then_some(())
    });
    let s = exp.scrape();
    assert_eq!(pat(&s, "event_loop_delay"), Some(3.0));
    assert_eq!(pat(&s, "memory_limit"), Some(2.0));
    assert_eq!(
        pat(&s, "upstream_timeout"),
        Some(2.0),
        "a configured pattern"
    );
    assert_eq!(lvl(&s, "warn"), Some(4.0));
    assert_eq!(lvl(&s, "error"), Some(4.0));
    assert_eq!(lvl(&s, "info"), Some(4.0));

    // Rotation by rename, named as the real gateway names it; the gateway
    // keeps appending to the path.
    std::fs::rename(&log, logs.path().join("openclaw-2026-11-24.1.log")).unwrap();
    fx.cmd("log?level=WARN&message=Event%20loop%20delay%2077ms%20exceeds%20threshold&n=2");
    // And garbage, which is counted and skipped.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"not json\n{\"message\":1}\n")
        .unwrap();
    exp.wait("counted across the rotation", |s| {
        (pat(s, "event_loop_delay") == Some(5.0)).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(s.get(names::LOG_PARSE_ERRORS_TOTAL.name(), G), Some(1.0));
    assert_eq!(lvl(&s, "other"), Some(1.0), "a JSON line without a level");
}
