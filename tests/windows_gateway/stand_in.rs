//! A Windows stand-in for the OpenClaw gateway: this test binary, started
//! again as one by [`StandIn::start`]. The Node fixture
//! (tests/fixture/gateway.js) would need Node's Windows build; this needs
//! nothing but std, so it runs under Wine as on Windows.
//!
//! - Listens on 127.0.0.1, on a free port, and prints
//!   `{"event":"listening","port":P,"pid":PID}`, as the fixture does.
//! - `GET /healthz`: 200 `{"ok":true,"status":"live"}`; `GET /readyz`: 200
//!   `{"ready":true,"failing":[],"uptimeMs":N,"eventLoop":...}`, the fixture's
//!   answers to a loopback caller. Each answer closes its connection.
//! - Writes its lock as the gateway does on Windows ([`write_lock`]) and
//!   removes it when it exits.
//! - Connects to `--outbound` (if given) and holds that connection.
//! - A line `hang` on stdin: from then on it neither accepts nor answers,
//!   while its port still LISTENs, as a gateway whose event loop is blocked.
//!   Stdin closed: it exits.
//!
//! One thread serves every connection, with non-blocking sockets, and one
//! reads stdin: the thread count stays put while the test compares it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Set in the stand-in's environment: its state dir.
const STATE_DIR: &str = "OCGX_STAND_IN_STATE_DIR";
/// Set in the stand-in's environment: where to connect out, `host:port`.
const OUTBOUND: &str = "OCGX_STAND_IN_OUTBOUND";

/// The stand-in, from the test's side. Dropping it closes its stdin (it
/// exits, removing its lock) and then kills it.
pub struct StandIn {
    child: Child,
    stdin: Option<ChildStdin>,
    pub port: u16,
}

impl StandIn {
    /// Start it in `state_dir`, connecting out to `outbound`; return once it
    /// listens.
    pub fn start(state_dir: &Path, outbound: &str) -> StandIn {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "stand_in_gateway", "--nocapture"])
            .env(STATE_DIR, state_dir)
            .env(OUTBOUND, outbound)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        let listening = out
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(&l).ok()?;
                (v["event"] == "listening").then_some(v)
            })
            .expect("the stand-in did not start listening");
        assert_eq!(listening["pid"], child.id());
        StandIn {
            port: listening["port"].as_u64().unwrap() as u16,
            child,
            stdin,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stop answering, the port still LISTENing.
    pub fn hang(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"hang\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-in's `main`, when this binary was started as one; `false` when
/// it was not.
pub fn run_if_asked() -> bool {
    let Some(state_dir) = std::env::var_os(STATE_DIR) else {
        return false;
    };
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _outbound = std::env::var(OUTBOUND)
        .ok()
        .filter(|a| !a.is_empty())
        .map(|a| TcpStream::connect(a).unwrap());
    let lock = write_lock(Path::new(&state_dir), port);
    let hung = Arc::new(AtomicBool::new(false));
    let flag = hung.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref().map(str::trim) {
                Ok("hang") => flag.store(true, Ordering::SeqCst),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = std::fs::remove_file(&lock);
        std::process::exit(0);
    });
    let mut out = std::io::stdout().lock();
    let pid = std::process::id();
    writeln!(out, r#"{{"event":"listening","port":{port},"pid":{pid}}}"#).unwrap();
    out.flush().unwrap();
    serve(listener, started, &hung)
}

/// Accept and answer, one thread, until told to hang; then only sleep.
fn serve(listener: TcpListener, started: Instant, hung: &AtomicBool) -> ! {
    listener.set_nonblocking(true).unwrap();
    let mut open: Vec<(TcpStream, Vec<u8>)> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(5));
        if hung.load(Ordering::SeqCst) {
            continue;
        }
        while let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(true).unwrap();
            open.push((s, Vec::new()));
        }
        open.retain_mut(|(s, head)| !answered(s, head, started));
    }
}

/// Read what has come of a request; once its head is complete, answer and
/// close. `true` when the connection is done with (answered or gone).
fn answered(s: &mut TcpStream, head: &mut Vec<u8>, started: Instant) -> bool {
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => return true,
        Ok(n) => head.extend_from_slice(&buf[..n]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
        Err(_) => return true,
    }
    if !head.windows(4).any(|w| w == b"\r\n\r\n") {
        return head.len() > 16 * 1024;
    }
    let line = String::from_utf8_lossy(head);
    let path = line.split(' ').nth(1).unwrap_or("");
    let (status, body) = match path {
        "/healthz" => ("200 OK", r#"{"ok":true,"status":"live"}"#.to_string()),
        // An idle gateway's event loop: the 20 ms sampling period as delay.
        "/readyz" => (
            "200 OK",
            format!(
                r#"{{"ready":true,"failing":[],"uptimeMs":{},"eventLoop":{{"degraded":false,"degradedSinceMs":null,"reasons":[],"intervalMs":1000,"delayP99Ms":20.2,"delayMaxMs":20.5,"utilization":0.01,"cpuCoreRatio":0.0}}}}"#,
                started.elapsed().as_millis()
            ),
        ),
        _ => ("404 Not Found", r#"{"error":"not found"}"#.to_string()),
    };
    let _ = s.set_nonblocking(false);
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    true
}

/// The lock the gateway writes on Windows, in node_modules/openclaw/dist of
/// openclaw 2026.9.6: `<state dir>/tmp/openclaw` (no uid on Windows:
/// paths-DehQwyE0.mjs `resolveGatewayLockDir`), named
/// `gateway.<first 8 hex digits of sha256(configPath)>.lock`
/// (gateway-lock-CYjRlApN.mjs `resolveGatewayLockPaths`), holding
/// `buildPayload`'s fields (same file), `startTime` being the process's
/// creation time in Unix milliseconds (pid-alive-CXdZEzr_.mjs
/// `readWindowsProcessStartTimeSync`).
fn write_lock(state_dir: &Path, port: u16) -> PathBuf {
    let dir = state_dir.join("tmp").join("openclaw");
    std::fs::create_dir_all(&dir).unwrap();
    let config = state_dir.join("openclaw.json");
    let config = config.to_str().unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, config.as_bytes());
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let pid = std::process::id();
    let body = serde_json::json!({
        "pid": pid,
        "ownerId": format!("stand-in-{pid}"),
        "cronOwnerProjection": "dynamic-default-v1",
        "createdAt": iso_now(),
        "configPath": config,
        "stateDir": state_dir,
        "port": port,
        "startTime": super::winapi::creation_unix_millis(pid),
    });
    let path = dir.join(format!("gateway.{hash}.lock"));
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

/// Now as `Date.toISOString` writes it: `2026-11-29T11:30:00.000Z`.
fn iso_now() -> String {
    openclaw_gateway_exporter::incident::rfc3339(SystemTime::now())
}
