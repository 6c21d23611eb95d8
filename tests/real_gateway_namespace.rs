//! The real gateway in its own pid and network namespaces, as Docker or
//! Podman runs it, with its state dir shared with the host and the exporter
//! on the host, reached over a veth pair and through a port published on
//! the host's loopback. Its lock files record pid 1, its pid in its namespace.
#![cfg(target_os = "linux")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "ns")];

/// Run `cmd` (a shell command line), which must succeed.
fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", text(&out));
}

/// The real gateway under `unshare --pid --fork --mount-proc --net`, reached
/// from the host over a veth pair, as a container on a bridge network is.
struct Contained {
    /// `unshare`: its `--kill-child` takes the gateway with it.
    _unshare: Proc,
    /// The gateway's pid on the host (1 in its namespace).
    pid: u32,
    /// Its address on the veth pair: host:port.
    addr: String,
    home: TempDir,
}

impl Contained {
    fn start() -> Contained {
        let home = TempDir::new("openclaw-home");
        let port = free_port();
        // The namespace waits for its end of the veth pair, then runs the
        // gateway on every address (the host is not its loopback).
        let script = format!(
            "ip link set lo up && \
             until ip -4 -o addr show dev veth0 up | grep -q inet; do sleep 0.1; done && \
             exec bash {} {port} {}",
            repo().join("tests/support/run-openclaw.sh").display(),
            home.path().display()
        );
        let child = Command::new(require_tool("unshare"))
            .args(["--pid", "--fork", "--mount-proc", "--net", "--kill-child"])
            .args(["sh", "-c", &script])
            .env("RUN_OPENCLAW_BIND", "lan")
            .env_remove("OPENCLAW_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let unshare = Proc { child };
        let pid = wait_for(Duration::from_secs(10), "the namespace's pid 1", || {
            children(unshare.pid()).first().copied()
        });
        // A /30 of 198.18.0.0/15 (RFC 2544, benchmarking) per test process.
        let net = (std::process::id() % 16384) * 4;
        let (a, b) = (net >> 8, net & 255);
        let (host_ip, ns_ip) = (
            format!("198.18.{a}.{}", b + 1),
            format!("198.18.{a}.{}", b + 2),
        );
        let host_if = format!("ocgx{pid}");
        require_tool("ip");
        require_tool("nsenter");
        sh(&format!(
            "ip link add {host_if} type veth peer name veth0 netns {pid} && \
             ip addr add {host_ip}/30 dev {host_if} && ip link set {host_if} up && \
             nsenter -t {pid} -n sh -c 'ip link set veth0 up && ip addr add {ns_ip}/30 dev veth0'"
        ));
        let gw = Contained {
            _unshare: unshare,
            pid,
            addr: format!("{ns_ip}:{port}"),
            home,
        };
        wait_for(
            Duration::from_secs(90),
            "the contained gateway's /healthz (is it installed? run tests/support/install-openclaw.sh)",
            || match http_get(&gw.addr, "/healthz", &[]) {
                Ok((200, _, _)) => Some(()),
                _ => None,
            },
        );
        gw
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.home.path().join(".openclaw")
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `kill -SIG` the gateway itself (not `unshare`).
    fn signal(&self, sig: &str) {
        sh(&format!("kill -{sig} {}", self.pid));
    }
}

fn lock(s: &Scrape, state: &str) -> Option<f64> {
    s.get(
        names::LOCK_FILES.name(),
        &[("gateway", "ns"), ("state", state)],
    )
}

fn conns(s: &Scrape, direction: &str, state: &str) -> Option<f64> {
    s.get(
        names::TCP_CONNECTIONS.name(),
        &[
            ("gateway", "ns"),
            ("direction", direction),
            ("state", state),
        ],
    )
}

#[test]
fn a_gateway_in_its_own_pid_and_network_namespace() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = Contained::start();
    let pid = gw.pid;

    // The setup is the one of the field report: pid 1 in its namespace, in
    // the lock files too, and a network namespace of its own.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().collect::<Vec<_>>(),
        ["NSpid:", &pid.to_string(), "1"]
    );
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap()
    );
    let locks: Vec<serde_json::Value> = wait_for(Duration::from_secs(30), "two lock files", || {
        let dirs = std::fs::read_dir(gw.state_dir().join("tmp")).ok()?;
        let mut locks = Vec::new();
        for dir in dirs.flatten() {
            for f in std::fs::read_dir(dir.path()).ok()?.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with("gateway.") && name.ends_with(".lock") {
                    locks.push(serde_json::from_slice(&std::fs::read(f.path()).ok()?).ok()?);
                }
            }
        }
        (locks.len() == 2).then_some(locks)
    });
    for l in &locks {
        assert_eq!(l["pid"], 1, "{l}");
        assert_eq!(l["startTime"], start_ticks(pid), "{l}");
    }

    let exp = Harness::exporter()
        .name("ns")
        .url(&gw.url())
        .state_dir(gw.state_dir())
        .fast()
        .args(&["--probe.timeout", "1s"])
        .start();

    // Its locks name it: live, found by them, one instance.
    exp.wait("two live locks", |s| {
        (lock(s, "live") == Some(2.0)).then_some(())
    });
    exp.wait_eq(
        "found by its lock files",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "ns"), ("method", "lock_file")],
        1.0,
    );
    let s = exp.scrape();
    assert_eq!(lock(&s, "stale"), Some(0.0), "{}", s.1);
    assert_eq!(s.get(names::INSTANCES.name(), G), Some(1.0), "{}", s.1);
    assert_eq!(s.get(names::PORT_OWNER_MISMATCH.name(), G), Some(0.0));
    assert_eq!(s.get(names::PROCESS_UP.name(), G), Some(1.0));

    // Vitals of the host process.
    let start = s.get(names::PROCESS_START_TIME_SECONDS.name(), G).unwrap();
    assert!((start - start_time_seconds(pid)).abs() < 0.02, "{start}");
    assert_eq!(
        s.get(names::PROCESS_MAX_FDS.name(), G),
        Some(max_open_files(pid) as f64)
    );
    exp.wait("rss within 5% of VmRSS", |s| {
        let rss = s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)?;
        let truth = vm_rss(pid) as f64;
        ((rss - truth).abs() <= truth * 0.05).then_some(())
    });
    exp.wait("open fds within 3 of /proc", |s| {
        let fds = s.get(names::PROCESS_OPEN_FDS.name(), G)?;
        ((fds - fd_count(pid) as f64).abs() <= 3.0).then_some(())
    });
    exp.wait("children counted", |s| {
        let n = s.get(names::PROCESS_CHILDREN.name(), G)?;
        (n == children(pid).len() as f64 && n > 0.0).then_some(())
    });

    // Connections from its namespace: its listener, and held connections
    // from the host over the veth pair.
    exp.wait_eq(
        "connections read from its /proc/<pid>/net",
        names::CONNECTIONS_SOURCE.name(),
        &[("gateway", "ns"), ("source", "proc")],
        1.0,
    );
    let port = gw.addr.rsplit(':').next().unwrap();
    let ss = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "ss", "-Htln"])
        .arg(format!("sport = :{port}"))
        .output()
        .unwrap();
    let listeners = String::from_utf8_lossy(&ss.stdout).lines().count() as f64;
    assert!(listeners >= 1.0, "{}", text(&ss));
    exp.wait("its listeners, as ss in its namespace", |s| {
        (conns(s, "inbound", "listen") == Some(listeners)).then_some(())
    });
    let base = conns(&exp.scrape(), "inbound", "established").unwrap();
    let held: Vec<_> = (0..5)
        .map(|_| std::net::TcpStream::connect(&gw.addr).unwrap())
        .collect();
    exp.wait("5 more established", |s| {
        (conns(s, "inbound", "established") == Some(base + 5.0)).then_some(())
    });
    drop(held);

    // The probes reach it at the configured URL.
    let probe = |s: &Scrape| {
        s.get(
            names::PROBE_SUCCESS.name(),
            &[("gateway", "ns"), ("endpoint", "live")],
        )
    };
    exp.wait("liveness probe succeeds", |s| {
        (probe(s) == Some(1.0)).then_some(())
    });
    assert_eq!(exp.scrape().get(names::HUNG.name(), G), Some(0.0));

    // Its port published on the host's loopback, as `docker run -p
    // 127.0.0.1:P:<port>` does: probed there, its process found by its own
    // port (--gateway.listen-port) and its lock files.
    let (_proxy, published) = publish(pid, port.parse().unwrap());
    let on_host = Harness::exporter()
        .name("ns")
        .url(&format!("http://127.0.0.1:{published}"))
        .state_dir(gw.state_dir())
        .fast()
        .args(&["--probe.timeout", "1s", "--gateway.listen-port", port])
        .start();
    on_host.wait_eq(
        "published: found by its lock files",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "ns"), ("method", "lock_file")],
        1.0,
    );
    on_host.wait("published: its listeners, in its namespace", |s| {
        (conns(s, "inbound", "listen") == Some(listeners)).then_some(())
    });
    on_host.wait("published: liveness probe succeeds", |s| {
        (probe(s) == Some(1.0)).then_some(())
    });
    let s = on_host.scrape();
    assert_eq!(s.get(names::INSTANCES.name(), G), Some(1.0), "{}", s.1);
    assert_eq!(lock(&s, "live"), Some(2.0), "{}", s.1);
    assert_eq!(s.get(names::HUNG.name(), G), Some(0.0));

    // diagnose on the host calls its locks live, with nothing to remove.
    let url = gw.url();
    let diagnose = Command::new(EXPORTER)
        .args(["diagnose", "--gateway.url", &url, "--gateway.state-dir"])
        .arg(gw.state_dir())
        .args(["--probe.timeout", "2s"])
        .env_remove("OPENCLAW_STATE_DIR")
        .output()
        .unwrap();
    let out = text(&diagnose);
    assert!(out.contains("found by lock_file"), "{out}");
    assert!(
        out.contains("2 live, 0 stale, 0 invalid lock file(s)"),
        "{out}"
    );
    assert!(!out.to_lowercase().contains("stale lock"), "{out}");

    // Stopped: alive, listening, not answering.
    gw.signal("STOP");
    exp.wait_eq("hung after SIGSTOP", names::HUNG.name(), G, 1.0);
    on_host.wait_eq("published: hung after SIGSTOP", names::HUNG.name(), G, 1.0);
    gw.signal("CONT");
    exp.wait_eq("not hung after SIGCONT", names::HUNG.name(), G, 0.0);
    on_host.wait_eq(
        "published: not hung after SIGCONT",
        names::HUNG.name(),
        G,
        0.0,
    );

    // A crash leaves its locks behind: stale now, and no instance.
    gw.signal("KILL");
    exp.wait_eq("down after kill -9", names::PROCESS_UP.name(), G, 0.0);
    exp.wait("two stale locks", |s| {
        (lock(s, "stale") == Some(2.0)).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(lock(&s, "live"), Some(0.0));
    assert_eq!(s.get(names::INSTANCES.name(), G), Some(0.0));
}
