//! The exporter's own log: discovery's changes of state, each logged once
//! however many collectors resolve the gateway, the two `--log.format`s, and
//! `--log.file`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Collectors that resolve the gateway every 200 ms, besides the 1 s
/// identity watch: a line repeated per sample would show many times.
fn exporter_command(cmd: Command, port: &str, state_dir: &str, extra: &[&str]) -> Exporter {
    Harness::exporter_via(cmd)
        .name("fx")
        .url(&format!("http://127.0.0.1:{port}"))
        .state_dir(state_dir)
        .fast()
        .args(extra)
        .start()
}

fn exporter(port: &str, state_dir: &str, extra: &[&str]) -> Exporter {
    exporter_command(Command::new(EXPORTER), port, state_dir, extra)
}

fn lines_with(exp: &Exporter, needle: &str) -> Vec<String> {
    let logs = exp.logs.lock().unwrap();
    logs.iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

const NOT_FOUND: &str = "msg=\"gateway process not found\"";
const FOUND: &str = "msg=\"gateway process found\"";
const LOST: &str = "msg=\"gateway process lost\"";

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs node (the fixture gateway), a Linux program here"
)]
fn discovery_logs_not_found_found_lost_and_found_again_once_each() {
    let state = TempDir::new("state");
    let sd = state.path().to_str().unwrap();
    let pid_file = state.path().join("gateway.pid");
    let port = free_port().to_string();
    let exp = exporter(
        &port,
        sd,
        &["--gateway.pid-file", pid_file.to_str().unwrap()],
    );

    // What was tried, concretely.
    let line = exp.wait_log(NOT_FOUND);
    for want in [
        "level=warn".to_string(),
        "gateway=fx".to_string(),
        format!("pid_file={}", pid_file.display()),
        format!("lock_dir={sd}/tmp/openclaw-*"),
        "comm=openclaw-gatewa".to_string(),
        format!("listen_port={port}"),
    ] {
        assert!(line.contains(&want), "{want:?} in {line}");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines_with(&exp, NOT_FOUND).len(), 1, "logged once");

    // Without a lock file the fixture is found by its title, always the same
    // way (with one, a scan between its listen and its lock finds the title).
    let start = || Fixture::start(&["--port", &port, "--state-dir", sd, "--no-lock"]);
    let fx = start();
    let first = fx.pid();
    let line = exp.wait_log(&format!("pid={first}"));
    assert!(
        line.contains(&format!(
            "level=info {FOUND} gateway=fx method=process_title pid={first}"
        )),
        "{line}"
    );
    assert!(!line.contains("previous_pid"), "{line}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines_with(&exp, FOUND).len(), 1, "found is logged once");

    drop(fx);
    let line = exp.wait_log(LOST);
    assert!(
        line.contains(&format!(
            "level=warn {LOST} gateway=fx pid={first} method=process_title"
        )),
        "{line}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines_with(&exp, LOST).len(), 1, "lost is logged once");
    assert_eq!(
        lines_with(&exp, NOT_FOUND).len(),
        1,
        "not 'not found' again"
    );

    // A restart: found again, with the new pid and the one before.
    let fx = start();
    let second = fx.pid();
    assert_ne!(first, second);
    let line = exp.wait_log(&format!("pid={second}"));
    assert!(
        line.contains(&format!(
            "{FOUND} gateway=fx method=process_title pid={second} previous_pid={first}"
        )),
        "{line}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines_with(&exp, FOUND).len(), 2, "{:?}", exp.logs);
    assert_eq!(lines_with(&exp, LOST).len(), 1);
}

#[test]
fn logfmt_is_the_default_and_every_line_is_logfmt() {
    let state = TempDir::new("state");
    let port = free_port().to_string();
    let exp = exporter(&port, state.path().to_str().unwrap(), &[]);
    exp.wait_log(NOT_FOUND);
    let logs = exp.logs.lock().unwrap();
    assert!(logs.len() >= 2, "{logs:?}");
    for line in logs.iter() {
        let mut words = line.split(' ');
        let time = words.next().unwrap();
        assert!(time.starts_with("time=20") && time.ends_with('Z'), "{line}");
        let level = words.next().unwrap();
        assert!(
            ["error", "warn", "info", "debug", "trace"]
                .contains(&level.trim_start_matches("level=")),
            "{line}"
        );
        assert!(words.next().unwrap().starts_with("msg=\""), "{line}");
    }
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs node (the fixture gateway), a Linux program here"
)]
fn json_lines_have_time_level_msg_and_the_fields() {
    let state = TempDir::new("state");
    let port = free_port().to_string();
    let sd = state.path().to_str().unwrap();
    let check = |exp: &Exporter| {
        let line = exp.wait_log("gateway process not found");
        let logs = exp.logs.lock().unwrap();
        assert!(logs.len() >= 2, "{logs:?}");
        for line in logs.iter() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(v["time"].is_string(), "{line}");
            assert!(v["level"].is_string(), "{line}");
            assert!(v["msg"].is_string(), "{line}");
        }
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["gateway"], "fx");
        assert_eq!(v["lock_dir"], format!("{sd}/tmp/openclaw-*"));
        assert_eq!(v["listen_port"].as_u64(), port.parse().ok());
    };
    check(&exporter(&port, sd, &["--log.format", "json"]));

    let mut cmd = Command::new(EXPORTER);
    cmd.env("OPENCLAW_EXPORTER_LOG_FORMAT", "json");
    check(&exporter_command(cmd, &port, sd, &[]));
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let out = Command::new(EXPORTER)
        .args(["--log.format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--log.format") && err.contains("logfmt") && err.contains("json"),
        "{err}"
    );
}

/// `--log.file`, as the Windows service uses it (packaging/windows): the
/// folder is made, every line goes to the file and none to stderr, a second
/// run appends, and SIGTERM still stops it cleanly.
#[test]
#[cfg_attr(not(unix), ignore = "sends SIGTERM with kill(1): Windows has neither")]
fn log_file_gets_every_line_appended_and_stderr_none() {
    let dir = TempDir::new("logfile");
    let file = dir.path().join("made/by/the/exporter/exporter.log");
    let state = dir.path().join("state");
    let url = format!("http://127.0.0.1:{}", free_port());
    let listening = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split("msg=\"listening on http://").nth(1))
            .map(|rest| rest.split('"').next().unwrap().to_string())
            .collect()
    };
    for run in 1..=2 {
        let child = Command::new(EXPORTER)
            .args(["--web.listen-address", "127.0.0.1:0", "--gateway.url", &url])
            .args(["--gateway.state-dir", dir_str(&state)])
            .args(["--log.file", dir_str(&file)])
            .env_remove("OPENCLAW_STATE_DIR")
            .env_remove("OPENCLAW_EXPORTER_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut exp = Proc { child };
        let addr = wait_for(Duration::from_secs(20), "listening, in the file", || {
            let text = std::fs::read_to_string(&file).ok()?;
            listening(&text).get(run - 1).cloned()
        });
        let (status, _, body) = http_get(&addr, "/metrics", &[]).unwrap();
        assert_eq!(status, 200, "{body}");
        wait_for(Duration::from_secs(20), "not found, in the file", || {
            let text = std::fs::read_to_string(&file).ok()?;
            (text.matches(NOT_FOUND).count() == run).then_some(())
        });
        exp.signal("TERM");
        assert!(exp.child.wait().unwrap().success(), "SIGTERM: exit 0");
        let mut err = String::new();
        exp.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(err, "", "nothing on stderr");

        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(listening(&text).len(), run, "earlier runs kept: {text}");
        assert!(text.ends_with('\n'), "{text}");
        for line in text.lines() {
            assert!(line.starts_with("time=20"), "a logfmt line: {line}");
        }
    }
}

#[test]
fn a_log_file_that_cannot_be_opened_is_an_error_naming_it() {
    let dir = TempDir::new("logfile");
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let under_a_file = a_file.join("exporter.log");
    for (path, want) in [
        (
            dir.path().to_path_buf(),
            format!("error: cannot open --log.file {}: ", dir.path().display()),
        ),
        (
            under_a_file.clone(),
            format!(
                "error: cannot create the folder {} for --log.file: ",
                a_file.display()
            ),
        ),
    ] {
        // --config.check: were the file opened, it would exit 0, not serve.
        let out = Command::new(EXPORTER)
            .args(["--log.file", dir_str(&path), "--config.check"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.starts_with(&want), "{want:?} in {err}");
        assert!(out.stdout.is_empty(), "config not checked");
    }
    assert_eq!(std::fs::read_to_string(&a_file).unwrap(), "x", "untouched");
}

/// A service's stderr goes nowhere: a bad configuration is in the file too.
#[test]
fn with_a_log_file_a_config_error_is_logged_there_too() {
    let dir = TempDir::new("logfile");
    let file = dir.path().join("exporter.log");
    let web_config = dir.path().join("web.yml");
    std::fs::write(&web_config, "tls_server_config: [\n").unwrap();
    for (args, want) in [
        (
            vec!["--gateway.url", "ftp://127.0.0.1:1"],
            "scheme must be http or https",
        ),
        (vec!["--web.config.file", dir_str(&web_config)], "web.yml"),
    ] {
        let out = Command::new(EXPORTER)
            .args(&args)
            .args(["--log.file", dir_str(&file)])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.starts_with("error: ") && err.contains(want), "{err}");
        let text = std::fs::read_to_string(&file).unwrap();
        let line = text.lines().last().unwrap();
        assert!(
            line.contains("level=error") && line.contains(want),
            "{line}"
        );
    }
}
