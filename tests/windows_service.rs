//! The exporter as a Windows service (`--windows-service`, src/service.rs)
//! under a real service control manager: `sc.exe` registers this build's
//! binary as a service, starts it (Running, serving /metrics, logging to
//! `--log.file`), stops it (the SCM's Stop reaches the server as Ctrl+C does:
//! Stopped with exit code 0, and the log says so), and starts it on a port
//! already taken (Stopped with service-specific exit code 1, the reason in
//! the log); a second service has a bad config (Stopped with exit code 2).
//! Those exit codes are what install.ps1's `sc.exe failureflag 1` turns into
//! a restart.
//!
//! Under Wine 8 (tests/support/cross-check.sh) the SCM is Wine's services.exe,
//! which runs services as Windows does for these calls; on Windows the test
//! needs an elevated prompt, as creating a service does.
#![cfg(windows)]

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::*;

/// `sc.exe` with `args`: its exit code and output.
fn sc(args: &[&str]) -> (i32, String) {
    let out = Command::new("sc.exe").args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), text(&out))
}

/// A service registered for this test; stopped and deleted on drop.
struct Service {
    name: String,
}

impl Service {
    fn create(tag: &str, command_line: &str) -> Service {
        let name = format!("ocgx-test-{tag}-{}", std::process::id());
        let (code, out) = sc(&[
            "create",
            &name,
            "binPath=",
            command_line,
            "start=",
            "demand",
        ]);
        assert_eq!(
            code, 0,
            "sc.exe create (on Windows, from an elevated prompt): {out}"
        );
        Service { name }
    }

    fn start(&self) {
        let (code, out) = sc(&["start", &self.name]);
        assert_eq!(code, 0, "sc.exe start: {out}");
    }

    fn stop(&self) {
        let (code, out) = sc(&["stop", &self.name]);
        assert_eq!(code, 0, "sc.exe stop: {out}");
    }

    /// `sc.exe query`: STATE's name, WIN32_EXIT_CODE and SERVICE_EXIT_CODE.
    fn query(&self) -> (String, u32, u32) {
        let (code, out) = sc(&["query", &self.name]);
        assert_eq!(code, 0, "sc.exe query: {out}");
        let field = |key: &str| -> Vec<String> {
            let line = out
                .lines()
                .find(|l| l.trim_start().starts_with(key))
                .unwrap_or_else(|| panic!("{key} in {out}"));
            let value = line.split_once(':').unwrap().1;
            value.split_whitespace().map(str::to_string).collect()
        };
        let number = |key: &str| field(key)[0].parse().unwrap();
        (
            field("STATE")[1].clone(),
            number("WIN32_EXIT_CODE"),
            number("SERVICE_EXIT_CODE"),
        )
    }

    /// Wait for `state` with these exit codes (WIN32_EXIT_CODE,
    /// SERVICE_EXIT_CODE).
    fn wait(&self, state: &str, codes: (u32, u32)) {
        let want = (state.to_string(), codes.0, codes.1);
        let mut last = None;
        let what = format!("{want:?}");
        wait_for(Duration::from_secs(30), &what, || {
            let now = self.query();
            let done = now == want;
            if last.as_ref() != Some(&now) {
                eprintln!("{}: {now:?}", self.name);
                last = Some(now);
            }
            done.then_some(())
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = sc(&["stop", &self.name]);
        wait_for_quiet(|| self.query().0 == "STOPPED");
        let _ = sc(&["delete", &self.name]);
    }
}

/// Like [`wait_for`], for a drop: gives up after 10 s without panicking.
fn wait_for_quiet(mut done: impl FnMut() -> bool) -> bool {
    (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        done()
    })
}

/// A Windows path of `p`. Cargo names the binary with the build host's
/// path; under Wine a Unix path is on drive Z:.
fn windows_path(p: &str) -> String {
    match p.strip_prefix('/') {
        Some(rest) => format!(r"Z:\{}", rest.replace('/', r"\")),
        None => p.to_string(),
    }
}

#[test]
fn the_scm_starts_and_stops_the_service_and_sees_it_fail() {
    let dir = TempDir::new("win-service");
    let log = dir.path().join("logs").join("exporter.log");
    let port = free_port();
    let command_line = format!(
        r#""{}" --windows-service --web.listen-address 127.0.0.1:{port} --gateway.url http://127.0.0.1:{} --gateway.state-dir "{}" --log.file "{}""#,
        windows_path(EXPORTER),
        free_port(),
        dir.path().display(),
        log.display(),
    );
    let service = Service::create("ok", &command_line);
    let logged = |needle: &str| {
        wait_for(Duration::from_secs(30), needle, || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .rfind(|l| l.contains(needle))
                .map(str::to_string)
        })
    };

    service.start();
    service.wait("RUNNING", (0, 0));
    let line = logged("listening on");
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    let (status, _, body) = http_get(&format!("127.0.0.1:{port}"), "/metrics", &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("openclaw_gateway_process_up{gateway="),
        "{body}"
    );

    service.stop();
    service.wait("STOPPED", (0, 0)); // a clean stop
    logged("stop requested by the service control manager");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server is gone"
    );

    // The port taken: the server cannot start, the service says so.
    let _taken = TcpListener::bind(("127.0.0.1", port)).unwrap();
    service.start();
    // ERROR_SERVICE_SPECIFIC_ERROR, and the exporter's own code.
    service.wait("STOPPED", (1066, 1));
    let line = logged("cannot listen on");
    assert!(
        line.contains("level=error") && line.contains(&format!("127.0.0.1:{port}")),
        "{line}"
    );

    // A bad config: read after the service connects to the SCM, so the SCM
    // sees exit code 2 (the console's exit status for it), the log why.
    let bad = Service::create(
        "bad-config",
        &command_line.replace("--gateway.url http://", "--gateway.url ftp://"),
    );
    bad.start();
    bad.wait("STOPPED", (1066, 2));
    let line = logged("scheme must be http or https");
    assert!(line.contains("level=error"), "{line}");
}
