//! `recover`, the field report's standard recovery procedure (§5.1), on real
//! processes, through the exporter binary:
//!
//! - a `kill -9`-ed real gateway is started again (custom argv: the test's
//!   own script) and verified ready; only the stale locks are removed: the
//!   live lock of another running gateway in the same lock folder stays, and
//!   so does the live lock of a containerized gateway (`unshare --pid`: pid 1
//!   in its lock);
//! - `--dry-run` changes nothing;
//! - systemd, launchd, Windows' scheduled task and the OpenClaw CLI can't
//!   run here: stand-ins on PATH record the exact argv each method runs and
//!   answer as the tool does, and start the fixture gateway;
//! - it refuses a process no lock ties to the gateway, and a gateway whose
//!   process tree it runs in (upstream #41198).
//!
//! Linux only: the stand-ins are shell scripts, the containerized gateway
//! needs `unshare` (root).
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Run `recover` on the gateway at `url`, its incident snapshots in
/// `state_dir/incidents`.
fn recover(url: &str, state_dir: &Path, args: &[&str], path_prefix: Option<&Path>) -> Output {
    let mut cmd = Command::new(EXPORTER);
    cmd.arg("--incident.dir").arg(state_dir.join("incidents"));
    cmd.arg("recover")
        .args([
            "--gateway.url",
            url,
            "--gateway.state-dir",
            dir_str(state_dir),
        ])
        .args(args)
        .env_remove("OPENCLAW_STATE_DIR")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdin(Stdio::null());
    if let Some(dir) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", dir.display()));
    }
    let started = Instant::now();
    let out = cmd.output().unwrap();
    println!(
        "recover {args:?} took {:.1} s, {}:\n{}",
        started.elapsed().as_secs_f64(),
        out.status,
        text(&out)
    );
    out
}

fn lock_dir(state_dir: &Path) -> PathBuf {
    state_dir
        .join("tmp")
        .join(format!("openclaw-{}", rustix::process::getuid().as_raw()))
}

fn locks(state_dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(lock_dir(state_dir))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with("gateway.") && name.ends_with(".lock")
                })
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn lock_pid(text: &str) -> u32 {
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    v["pid"].as_u64().unwrap() as u32
}

/// A pid that has exited: a short-lived child's, reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A stale lock planted by hand: a dead pid, a start time no process has.
fn plant_stale(state_dir: &Path, name: &str, port: u16) -> PathBuf {
    std::fs::create_dir_all(lock_dir(state_dir)).unwrap();
    let path = lock_dir(state_dir).join(name);
    std::fs::write(
        &path,
        format!(
            "{{\"pid\":{},\"port\":{port},\"startTime\":1}}\n",
            dead_pid()
        ),
    )
    .unwrap();
    path
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rfind(')').is_some_and(|i| !s[i + 2..].starts_with('Z')))
}

/// Kills the pid in a file (written by a start command) on drop, and waits
/// for it to go.
struct PidFile(PathBuf);

impl PidFile {
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A fixture gateway whose lock folder is `shared`'s: its state dir's `tmp`
/// is a link to `shared`'s. Its lock has its own name (the hash of its own
/// config path). `wrap` runs it under another command (`unshare`).
fn fixture_sharing_locks(shared: &Path, wrap: &[&str]) -> (TempDir, Fixture) {
    let own = TempDir::new("fixture-state");
    std::fs::create_dir_all(shared.join("tmp")).unwrap();
    std::os::unix::fs::symlink(shared.join("tmp"), own.path().join("tmp")).unwrap();
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args)
                .arg("node")
                .arg(repo().join("tests/fixture/gateway.js"));
            c
        }
        None => Fixture::command(),
    };
    cmd.args(["--port", "0", "--state-dir", dir_str(own.path())]);
    (own, Fixture::spawn(cmd))
}

#[test]
fn recover_kill9_real_gateway_removes_only_stale_locks() {
    let _one = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[]);
    let state = gw.state_dir();
    let own_locks = wait_for(
        Duration::from_secs(30),
        "the real gateway's two locks",
        || {
            let l = locks(&state);
            (l.len() == 2).then_some(l)
        },
    );
    // Another gateway running with its lock in the same folder, and one in a
    // pid namespace of its own (its lock says pid 1).
    let (_other_state, other) = fixture_sharing_locks(&state, &[]);
    let unshare = require_tool("unshare");
    let (_contained_state, contained) = fixture_sharing_locks(
        &state,
        &[
            unshare.to_str().unwrap(),
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
        ],
    );
    let stale = plant_stale(&state, "gateway.0000dead.lock", gw.port);
    let live_before: Vec<(String, String)> = locks(&state)
        .into_iter()
        .filter(|(name, _)| !own_locks.iter().any(|(n, _)| n == name) && !name.contains("0000dead"))
        .collect();
    assert_eq!(live_before.len(), 2, "{live_before:?}");
    assert!(
        live_before.iter().any(|(_, text)| lock_pid(text) == 1),
        "the containerized gateway's lock names its pid 1: {live_before:?}"
    );
    assert!(live_before
        .iter()
        .any(|(_, text)| lock_pid(text) == other.pid()));

    let workers = children(gw.pid());
    gw.process().signal("KILL");
    wait_for(
        Duration::from_secs(10),
        "the killed gateway's port closed",
        || {
            std::net::TcpStream::connect(gw.addr())
                .is_err()
                .then_some(())
        },
    );

    // The test's own script starts it again, in the background, with the
    // same HOME and port.
    let pid_file = PidFile(gw.home.path().join("restarted.pid"));
    let script = format!(
        "bash {} {} {} >/dev/null 2>&1 & echo $! > {}",
        repo().join("tests/support/run-openclaw.sh").display(),
        gw.port,
        gw.home.path().display(),
        pid_file.0.display()
    );
    let out = recover(
        &gw.url(),
        &state,
        &["--method", "argv", "--", "bash", "-c", &script],
        None,
    );
    let said = text(&out);
    // Kill the workers the kill -9 orphaned, if any stayed.
    for w in workers {
        let _ = Command::new("kill")
            .args(["-KILL", &w.to_string()])
            .status();
    }
    assert!(out.status.success(), "{said}");
    for step in ["find", "locks", "start", "verify"] {
        assert!(
            said.contains(&format!("  {step} ")),
            "{step} is reported: {said}"
        );
    }
    assert!(
        said.contains("/readyz 200") && said.contains("recovered:"),
        "{said}"
    );

    // The stale locks went: the killed gateway's two (its new ones name the
    // new pid) and the planted one. The live ones stay, unchanged.
    assert!(!stale.exists(), "{said}");
    let new_pid = pid_file.pid().expect("the start command wrote the new pid");
    let after = locks(&state);
    for (name, _) in &own_locks {
        let (_, text) = after
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is written again: {after:?}"));
        assert_eq!(lock_pid(text), new_pid, "{name}");
        assert!(
            said.contains(&format!(
                "removed {}",
                lock_dir(&state).join(name).display()
            )),
            "{name}: {said}"
        );
    }
    for live in &live_before {
        assert!(
            after.contains(live),
            "the live lock {} stays: {after:?}",
            live.0
        );
        assert!(
            said.contains(&format!(
                "kept {} (live",
                lock_dir(&state).join(&live.0).display()
            )),
            "{said}"
        );
    }
    assert!(alive(other.pid()) && alive(contained.pid()));
    let (status, _, body) = http_get(&gw.addr(), "/readyz", &[]).unwrap();
    assert_eq!(status, 200, "{body}");
}

#[test]
fn dry_run_changes_nothing() {
    let (state, fx) = Fixture::with_state(&[]);
    let stale = plant_stale(state.path(), "gateway.0000dead.lock", fx.port);
    let before = locks(state.path());
    let start = format!("touch {}", state.path().join("started").display());
    let out = recover(
        &fx.url(),
        state.path(),
        &["--dry-run", "--method", "argv", "--", "sh", "-c", &start],
        None,
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("would kill pids {}", fx.pid())),
        "{said}"
    );
    assert!(
        said.contains("would remove") && said.contains("dry run: nothing was done"),
        "{said}"
    );
    assert_eq!(locks(state.path()), before);
    assert!(stale.exists() && alive(fx.pid()) && !state.path().join("started").exists());
    assert!(
        !state.path().join("incidents").exists(),
        "no snapshot in a dry run"
    );
    let (status, _, _) = http_get(&fx.addr(), "/healthz", &[]).unwrap();
    assert_eq!(status, 200);
}

/// A stand-in for a service tool: logs its argv as `[arg][arg]...`, one
/// line per run, then runs `body` (sh), which can start the fixture with
/// `start_fixture`.
fn stand_in(dir: &Path, name: &str, body: &str, port: u16, state_dir: &Path) {
    let script = format!(
        "#!/bin/sh\n\
         {{ for a in \"$@\"; do printf '[%s]' \"$a\"; done; echo; }} >> {log}\n\
         start_fixture() {{ node {fixture} --port {port} --state-dir {state} >/dev/null 2>&1 & echo $! > {pid}; }}\n\
         {body}\n",
        log = dir.join(format!("{name}.log")).display(),
        fixture = repo().join("tests/fixture/gateway.js").display(),
        state = state_dir.display(),
        pid = dir.join("fixture.pid").display(),
    );
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn logged(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A closed port and an empty state dir, for a method to start the fixture
/// gateway on.
fn down_gateway() -> (TempDir, TempDir, u16, String) {
    let bin = TempDir::new("stand-ins");
    let state = TempDir::new("state");
    let port = free_port();
    (bin, state, port, format!("http://127.0.0.1:{port}"))
}

#[test]
fn systemd_resets_failed_then_restarts_and_stops_through_systemctl() {
    let (bin, state, port, url) = down_gateway();
    let _started = PidFile(bin.path().join("fixture.pid"));
    stand_in(
        bin.path(),
        "systemctl",
        "case \"$*\" in *restart*) start_fixture;; esac",
        port,
        state.path(),
    );
    // Running: stopped with `systemctl --user stop` (the stand-in does not
    // stop it: the kill does, after --stop-timeout).
    let fx = Fixture::start(&[
        "--port",
        &port.to_string(),
        "--state-dir",
        dir_str(state.path()),
    ]);
    let out = recover(
        &url,
        state.path(),
        &["--method", "systemd", "--stop-timeout", "1s"],
        Some(bin.path()),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!alive(fx.pid()), "{said}");
    assert_eq!(
        logged(bin.path(), "systemctl"),
        [
            "[--user][stop][openclaw-gateway.service]",
            "[--user][reset-failed][openclaw-gateway.service]",
            "[--user][restart][openclaw-gateway.service]"
        ]
    );
    assert!(
        said.contains("still alive after 1s") && said.contains("killed pids"),
        "{said}"
    );
    // The snapshot was taken before the stop, into the incident folder.
    let incidents: Vec<_> = std::fs::read_dir(state.path().join("incidents"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(incidents.len(), 1, "{said}");
    assert!(
        said.contains(&format!("ok     {}", incidents[0].path().display())),
        "{said}"
    );
    assert!(
        incidents[0]
            .file_name()
            .to_string_lossy()
            .contains("recover"),
        "{:?}",
        incidents[0].file_name()
    );

    // A system unit of another name, and a restart that fails: exit 1, the
    // step and systemctl's own words named.
    std::fs::remove_file(bin.path().join("systemctl.log")).unwrap();
    kill_started(&_started, port);
    stand_in(
        bin.path(),
        "systemctl",
        "case \"$*\" in *restart*) echo 'Failed to restart gw.service: Unit gw.service not found.' >&2; exit 5;; esac",
        port,
        state.path(),
    );
    let out = recover(
        &url,
        state.path(),
        &["--method", "systemd", "--system", "--unit", "gw.service"],
        Some(bin.path()),
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("step start failed: systemctl failed (exit code 5): Failed to restart gw.service: Unit gw.service not found."), "{said}");
    assert_eq!(
        logged(bin.path(), "systemctl"),
        ["[reset-failed][gw.service]", "[restart][gw.service]"]
    );
}

#[test]
fn launchd_kickstarts_the_agent_in_the_users_gui_domain() {
    let (bin, state, port, url) = down_gateway();
    let _started = PidFile(bin.path().join("fixture.pid"));
    stand_in(bin.path(), "launchctl", "start_fixture", port, state.path());
    let out = recover(
        &url,
        state.path(),
        &["--method", "launchd"],
        Some(bin.path()),
    );
    assert!(out.status.success(), "{}", text(&out));
    let uid = rustix::process::getuid().as_raw();
    assert_eq!(
        logged(bin.path(), "launchctl"),
        [format!("[kickstart][-k][gui/{uid}/ai.openclaw.gateway]")]
    );
    let out = recover(
        &url,
        state.path(),
        &[
            "--method",
            "launchd",
            "--label",
            "x",
            "--uid",
            "501",
            "--dry-run",
        ],
        Some(bin.path()),
    );
    assert!(
        text(&out).contains(r#"would run ["launchctl", "kickstart", "-k", "gui/501/x"]"#),
        "{}",
        text(&out)
    );
}

#[test]
fn scheduled_task_waits_for_the_instance_to_end_then_runs() {
    let (bin, state, port, url) = down_gateway();
    let _started = PidFile(bin.path().join("fixture.pid"));
    // Running at the first query, Ready at the next: as an instance of an
    // IgnoreNew task that ends after its gateway was killed.
    let counter = bin.path().join("queries");
    let body = format!(
        "case \"$1\" in\n\
         /Query) n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}\n\
           if [ \"$n\" = 0 ]; then s=Running; else s=Ready; fi\n\
           echo '\"HostName\",\"TaskName\",\"Next Run Time\",\"Status\"'\n\
           echo \"\\\"PC\\\",\\\"\\\\OpenClaw Gateway\\\",\\\"N/A\\\",\\\"$s\\\"\";;\n\
         /Run) start_fixture; echo 'SUCCESS: Attempted to run the scheduled task \"OpenClaw Gateway\".';;\n\
         esac",
        c = counter.display()
    );
    stand_in(bin.path(), "schtasks", &body, port, state.path());
    let out = recover(
        &url,
        state.path(),
        &["--method", "scheduled-task"],
        Some(bin.path()),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let q = "[/Query][/TN][OpenClaw Gateway][/FO][CSV][/V]";
    assert_eq!(
        logged(bin.path(), "schtasks"),
        [q, q, "[/Run][/TN][OpenClaw Gateway]"]
    );
    assert!(said.contains("SUCCESS: Attempted to run"), "{said}");

    // An answer it cannot read is a failed step, and no run.
    kill_started(&_started, port);
    std::fs::remove_file(bin.path().join("schtasks.log")).unwrap();
    stand_in(
        bin.path(),
        "schtasks",
        "echo 'ERROR: Access is denied.'",
        port,
        state.path(),
    );
    let out = recover(
        &url,
        state.path(),
        &["--method", "scheduled-task", "--task", "Other"],
        Some(bin.path()),
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("step start failed: schtasks: no Status column"),
        "{said}"
    );
    assert_eq!(
        logged(bin.path(), "schtasks"),
        ["[/Query][/TN][Other][/FO][CSV][/V]"]
    );
}

/// Kill the gateway a stand-in started, and wait for its port to close.
fn kill_started(started: &PidFile, port: u16) {
    let pid = started.pid().expect("a stand-in started the fixture");
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    wait_for(Duration::from_secs(10), "the port closed", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
}

#[test]
fn openclaw_cli_restarts_with_force_and_json() {
    let (bin, state, port, url) = down_gateway();
    let _started = PidFile(bin.path().join("fixture.pid"));
    let ok = r#"start_fixture; printf '{\n  "action": "restart",\n  "ok": true,\n  "result": "restarted"\n}\n'"#;
    stand_in(bin.path(), "openclaw", ok, port, state.path());
    let out = recover(
        &url,
        state.path(),
        &["--method", "openclaw-cli"],
        Some(bin.path()),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("openclaw: restarted"), "{said}");
    assert_eq!(
        logged(bin.path(), "openclaw"),
        ["[gateway][restart][--force][--json]"]
    );

    // Its failure, and garbage, are a failed start naming why.
    kill_started(&_started, port);
    for (body, want) in [
        (
            r#"echo '{"ok":false,"error":"Gateway restart failed: boom","hints":["openclaw doctor"]}'; exit 1"#,
            "Gateway restart failed: boom (try: openclaw doctor)",
        ),
        (
            "printf '\\377\\000 not json'; exit 0",
            "gave no JSON answer",
        ),
    ] {
        stand_in(bin.path(), "openclaw", body, port, state.path());
        let out = recover(
            &url,
            state.path(),
            &["--method", "openclaw-cli"],
            Some(bin.path()),
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(want), "{}", text(&out));
    }
}

#[test]
fn refuses_a_process_no_lock_ties_to_the_gateway() {
    let state = TempDir::new("state");
    let fx = Fixture::start(&["--port", "0", "--no-lock"]);
    let out = recover(
        &fx.url(),
        state.path(),
        &["--method", "argv", "--", "true"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no lock ties it"), "{}", text(&out));
    assert!(alive(fx.pid()));
}

#[test]
fn refuses_from_inside_the_gateways_process_tree() {
    // `--gateway.pid` names a shell; the exporter runs as its child.
    let state = TempDir::new("state");
    let port = free_port();
    let out = Command::new("bash")
        .args(["-c", "\"$0\" recover --gateway.pid $$ --gateway.url \"$1\" --gateway.state-dir \"$2\" --method argv -- true; echo rc=$?"])
        .arg(EXPORTER)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(state.path())
        .output()
        .unwrap();
    let said = text(&out);
    assert!(
        said.contains("rc=2") && said.contains("upstream #41198"),
        "{said}"
    );
}

#[test]
fn the_method_and_timeouts_come_from_the_remediation_block() {
    let (bin, state, port, url) = down_gateway();
    let _started = PidFile(bin.path().join("fixture.pid"));
    stand_in(
        bin.path(),
        "systemctl",
        "case \"$*\" in *restart*) start_fixture;; esac",
        port,
        state.path(),
    );
    let config = bin.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "gateways:\n  - name: gw\n    url: {url}\n    state_dir: {}\n    remediation:\n      method: {{kind: systemd, unit: oc.service, user: false}}\n      stop_timeout: 7s\n",
            state.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let path = std::env::var("PATH").unwrap_or_default();
        let out = Command::new(EXPORTER)
            .args([
                "recover",
                "--config.file",
                dir_str(&config),
                "--incident.dir",
                dir_str(state.path()),
            ])
            .args(args)
            .env("PATH", format!("{}:{path}", bin.path().display()))
            .env_remove("OPENCLAW_STATE_DIR")
            .output()
            .unwrap();
        println!("{}", text(&out));
        out
    };
    let fx = Fixture::start(&[
        "--port",
        &port.to_string(),
        "--state-dir",
        dir_str(state.path()),
    ]);
    let out = run(&["--dry-run"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("recover gw: method systemd (dry run)")
            && said.contains(r#"with ["systemctl", "stop", "oc.service"], waiting up to 7s"#),
        "{said}"
    );
    let out = run(&["--gateway", "gw"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!alive(fx.pid()));
    assert_eq!(
        logged(bin.path(), "systemctl"),
        [
            "[stop][oc.service]",
            "[reset-failed][oc.service]",
            "[restart][oc.service]"
        ]
    );
    // A method's flag without --method is a usage error; so is an unknown gateway.
    assert_eq!(run(&["--unit", "x"]).status.code(), Some(2));
    assert_eq!(run(&["--gateway", "nope"]).status.code(), Some(2));
}
