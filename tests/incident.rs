//! Incident snapshots against real processes: the real gateway stopped
//! under a running exporter (a folder appears that shows the stopped
//! threads and the filling accept queue, and holds the token nowhere), and
//! the `snapshot` command against the fixture gateway, with retention.
#![cfg(target_os = "linux")]

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

/// Long and distinctive: found by value wherever it could leak.
const TOKEN: &str = "incident-Zq8w3Kx1-token-7f3a9c0e5b2d4f6a";

/// The snapshot folders in `dir` whose name has `part`, oldest first.
fn folders(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(part))
        .collect();
    out.sort();
    out
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The manifest item `name`.
fn item(m: &serde_json::Value, name: &str) -> serde_json::Value {
    m["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no item {name} in {m:#}"))
}

/// Every file of a snapshot folder, none holding `secret`.
fn assert_secret_nowhere(dir: &Path, secret: &str) {
    let mut files = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the token is in {}",
            e.path().display()
        );
        files += 1;
    }
    assert!(files >= 5, "{files} files in {}", dir.display());
}

/// A log with the token in a WARN line, as a gateway could write it.
fn log_with_token(dir: &Path) -> PathBuf {
    let log = dir.join("gateway.log");
    let lines = [
        r#"{"time":"2026-11-29T10:00:00.000Z","message":"started","_meta":{"logLevelName":"INFO"}}"#.to_string(),
        format!(r#"{{"time":"2026-11-29T10:00:01.000Z","message":"rejected bearer {TOKEN} from 10.0.0.9","_meta":{{"logLevelName":"WARN"}}}}"#),
        r#"{"time":"2026-11-29T10:00:02.000Z","message":"event loop delay 900ms exceeds threshold","_meta":{"logLevelName":"ERROR"}}"#.to_string(),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    log
}

#[test]
fn stopped_real_gateway_leaves_a_snapshot_of_stopped_threads_and_a_full_queue() {
    let _one = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let setup = RealGatewaySetup::new();
    // A stability bundle of the gateway's, with the token in it
    // (<state dir>/logs/stability, docs/gateway/diagnostics.md).
    let bundles = setup.state_dir().join("logs/stability");
    std::fs::create_dir_all(&bundles).unwrap();
    std::fs::write(
        bundles.join("openclaw-stability-2026-11-29T10-00-00-000Z-1-fatal.json"),
        format!(r#"{{"version":1,"reason":"fatal","note":"token {TOKEN}"}}"#),
    )
    .unwrap();
    let gw = setup.start(&[("OPENCLAW_GATEWAY_TOKEN", TOKEN)]);
    let work = TempDir::new("incident-real");
    let token_file = work.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let log = log_with_token(work.path());
    let incidents = work.path().join("incidents");
    let exp = Harness::exporter()
        .real(&gw)
        .token_file(&token_file)
        .log_path(&log)
        .every("latency", "500ms")
        .args(&[
            "--probe.timeout",
            "1s",
            "--probe.readiness-interval",
            "500ms",
            "--incident.dir",
            dir_str(&incidents),
        ])
        .start();
    let g = [("gateway", "real")];
    exp.wait_eq(
        "liveness answered",
        names::PROBE_SUCCESS.name(),
        &[("gateway", "real"), ("endpoint", "live")],
        1.0,
    );
    exp.wait_eq(
        "readiness answered",
        names::PROBE_SUCCESS.name(),
        &[("gateway", "real"), ("endpoint", "ready")],
        1.0,
    );
    exp.wait_eq("not hung", names::HUNG.name(), &g, 0.0);
    // A gateway busy starting up can miss two 1 s probes and be judged
    // hung (and snapshotted) before this test stops it: only what comes
    // after the stop counts.
    let counted = |s: &Scrape| -> f64 {
        ["complete", "partial"]
            .iter()
            .filter_map(|r| {
                s.get(
                    names::INCIDENT_SNAPSHOTS_TOTAL.name(),
                    &[("gateway", "real"), ("reason", "hung"), ("result", r)],
                )
            })
            .sum()
    };
    let before = folders(&incidents, "-real-hung");
    let counted_before = counted(&exp.scrape());

    gw.proc.signal("STOP");
    // Connections the stopped gateway never accepts: the kernel completes
    // them into the listener's accept queue.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| {
            TcpStream::connect_timeout(&gw.addr().parse().unwrap(), Duration::from_secs(2)).unwrap()
        })
        .collect();
    let dir = wait_for(Duration::from_secs(60), "a hung snapshot", || {
        folders(&incidents, "-real-hung")
            .pop()
            .filter(|f| !before.contains(f))
    });
    eprintln!("snapshot {}", dir.display());
    let m = manifest(&dir);
    eprintln!("{m:#}");
    assert_eq!(m["gateway"], "real");
    assert_eq!(m["reason"], "hung");
    assert_eq!(m["pid"], gw.pid());

    // Every thread stopped: state T.
    let threads = std::fs::read_to_string(dir.join("threads.txt")).unwrap();
    let rows: Vec<&str> = threads
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(rows.len() >= 5, "{threads}");
    for row in &rows {
        let state = row.split_whitespace().nth(1).unwrap();
        assert_eq!(state, "T", "{row}");
    }
    // As root, the kernel stacks are there too.
    assert!(threads.contains("--- kernel stack of"), "{threads}");

    // The listener's accept queue holds our connections.
    let sockets = std::fs::read_to_string(dir.join("sockets.txt")).unwrap();
    let port = format!(":{}", gw.port);
    let queued: u64 = sockets
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("listen"))
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|a| a.ends_with(&port))
        })
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(queued >= 8, "Recv-Q {queued} of the listeners:\n{sockets}");

    // The scene around it.
    let series = std::fs::read_to_string(dir.join("series.prom")).unwrap();
    assert!(
        series.contains("openclaw_gateway_hung{gateway=\"real\"} 1"),
        "{series}"
    );
    assert!(
        series.contains("openclaw_gateway_process_up{gateway=\"real\"} 1"),
        "{series}"
    );
    let probes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("probes.json")).unwrap()).unwrap();
    let live = probes["live"].as_array().unwrap();
    assert!(live.iter().any(|p| p["success"] == true), "{probes:#}");
    assert!(live.iter().any(|p| p["reason"] == "timeout"), "{probes:#}");
    let ready = probes["ready"].as_array().unwrap();
    assert!(ready.iter().any(|p| p["body"].is_string()), "{probes:#}");
    let limits = std::fs::read_to_string(dir.join("limits.txt")).unwrap();
    assert!(limits.contains("Max open files"), "{limits}");
    let process = std::fs::read_to_string(dir.join("process.json")).unwrap();
    assert!(process.contains("\"State\": \"T (stopped)\""), "{process}");
    assert!(!process.to_lowercase().contains("environ"), "{process}");
    let fds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fds.json")).unwrap()).unwrap();
    assert!(
        fds[gw.pid().to_string()]["socket"].as_u64().unwrap() >= 2,
        "{fds:#}"
    );
    let warnings = std::fs::read_to_string(dir.join("log-warnings.json")).unwrap();
    assert!(
        warnings.contains("rejected bearer [REDACTED]"),
        "{warnings}"
    );
    assert!(warnings.contains("event loop delay 900ms"), "{warnings}");
    assert_eq!(item(&m, "stability_bundle")["status"], "ok");
    let bundle = std::fs::read_to_string(
        dir.join("stability-openclaw-stability-2026-11-29T10-00-00-000Z-1-fatal.json"),
    )
    .unwrap();
    assert!(bundle.contains("\"reason\":\"fatal\""), "{bundle}");

    // The token is in no file.
    assert_secret_nowhere(&dir, TOKEN);

    let taken = exp.wait("the snapshot counted", |s| {
        let n = counted(s) - counted_before;
        (n >= 1.0).then_some(n)
    });
    assert_eq!(taken, 1.0, "one transition, one snapshot");

    drop(held);
    gw.proc.signal("CONT");
    exp.wait_eq("hung 0 after SIGCONT", names::HUNG.name(), &g, 0.0);
}

/// `openclaw-gateway-exporter snapshot` with the exporter's flags.
fn snapshot(args: &[&str]) -> std::process::Output {
    Command::new(EXPORTER)
        .arg("snapshot")
        .args(args)
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn snapshot_command_on_the_fixture_with_retention() {
    let (state, fx) = Fixture::with_state(&[]);
    let work = TempDir::new("incident-cmd");
    let incidents = work.path().join("incidents");
    let log = log_with_token(work.path());
    let token_file = work.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let config = work.path().join("config.yml");
    std::fs::write(&config, "incident:\n  max_count: 3\n  max_size: 1MiB\n").unwrap();
    let gateway_in = |listen: &str, dir: &Path| -> Vec<String> {
        [
            "--config.file",
            dir_str(&config),
            "--web.listen-address",
            listen,
            "--gateway.name",
            "fx",
            "--gateway.url",
            &fx.url(),
            "--gateway.state-dir",
            dir_str(state.path()),
            "--gateway.log-path",
            dir_str(&log),
            "--gateway.token-file",
            dir_str(&token_file),
            "--incident.dir",
            dir_str(dir),
        ]
        .map(String::from)
        .to_vec()
    };
    let gateway = |listen: &str| gateway_in(listen, &incidents);
    let run = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = snapshot(&args);
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(out.status.success(), "{}", text(&out));
        PathBuf::from(path)
    };

    // With a running exporter: its series and probe history.
    let exp = Harness::exporter()
        .fixture(&state, &fx)
        .name("fx")
        .every("latency", "500ms")
        .args(&[
            "--probe.readiness-interval",
            "500ms",
            "--incident.dir",
            dir_str(&incidents),
        ])
        .start();
    exp.wait_eq(
        "readiness answered",
        names::PROBE_SUCCESS.name(),
        &[("gateway", "fx"), ("endpoint", "ready")],
        1.0,
    );
    std::thread::sleep(Duration::from_secs(2));
    let first = run(&gateway(&exp.addr));
    assert!(first.starts_with(&incidents), "{}", first.display());
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with("-fx-manual"), "{name}");
    let m = manifest(&first);
    let series = item(&m, "series");
    assert_eq!(series["status"], "ok", "{m:#}");
    assert!(
        series["detail"]
            .as_str()
            .unwrap()
            .contains("the running exporter at"),
        "{m:#}"
    );
    let probes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("probes.json")).unwrap()).unwrap();
    assert!(probes["ready"].as_array().unwrap().len() >= 3, "{probes:#}");
    for part in ["process", "limits", "threads", "fds", "sockets", "log_tail"] {
        assert_eq!(item(&m, part)["status"], "ok", "{part}: {m:#}");
    }
    let threads = std::fs::read_to_string(first.join("threads.txt")).unwrap();
    assert!(
        threads
            .lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("S")),
        "{threads}"
    );
    assert_secret_nowhere(&first, TOKEN);
    drop(exp);

    // Without one: a one-shot sample, said so.
    let lone = gateway(&format!("127.0.0.1:{}", free_port()));
    let second = run(&lone);
    let m = manifest(&second);
    assert!(
        item(&m, "series")["detail"]
            .as_str()
            .unwrap()
            .contains("one-shot sample"),
        "{m:#}"
    );
    let series = std::fs::read_to_string(second.join("series.prom")).unwrap();
    assert!(
        series.contains("openclaw_gateway_process_up{gateway=\"fx\"} 1"),
        "{series}"
    );
    assert_secret_nowhere(&second, TOKEN);

    // Retention by count: 3 kept, the newest.
    let third = run(&lone);
    let fourth = run(&lone);
    assert_eq!(
        folders(&incidents, "-fx-"),
        [second.clone(), third.clone(), fourth.clone()]
    );
    // By size: an old snapshot of 2 MiB goes at once (1 MiB kept at most).
    let old = incidents.join("20000101T000000.000Z-fx-manual");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("manifest.json"), vec![b' '; 2 << 20]).unwrap();
    // Not a snapshot: never touched.
    std::fs::create_dir_all(incidents.join("notes")).unwrap();
    let fifth = run(&lone);
    assert!(!old.exists());
    assert_eq!(folders(&incidents, "-fx-"), [third, fourth, fifth]);
    assert!(incidents.join("notes").is_dir());

    // Bad input: a clear message, exit 1.
    let mut nosuch = lone.clone();
    nosuch.extend(["--gateway".to_string(), "nosuch".to_string()]);
    let out = snapshot(&nosuch.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no configured gateway \"nosuch\""),
        "{}",
        text(&out)
    );
    let blocked = work.path().join("a-file");
    std::fs::write(&blocked, "").unwrap();
    let unwritable = gateway_in(&format!("127.0.0.1:{}", free_port()), &blocked.join("x"));
    let out = snapshot(&unwritable.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("incident snapshot not written"),
        "{}",
        text(&out)
    );
}
