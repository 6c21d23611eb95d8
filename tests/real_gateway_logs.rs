//! The log collector against the real OpenClaw gateway: every line the gateway
//! writes is counted once, across rotations the gateway makes itself.
//!
//! The gateway logs JSON lines to `<dir>/openclaw-<date>.log` (its config's
//! `logging.file`, here the literal `openclaw-YYYY-MM-DD.log`: "rolling,
//! today's date"). Once a file would pass `logging.maxFileBytes` it renames
//! `openclaw-D.log` to `openclaw-D.1.log` (`.1` to `.2`, ..., keeping 5, so
//! the 6th rotation deletes a file) and starts a new `openclaw-D.log`.
//!
//! The exporter starts first, on an empty folder, so every file the gateway
//! creates appears after its first poll and is read from its start: the
//! exporter must count exactly the lines of all `openclaw-*.log` files, live
//! and rotated, which is the ground truth read here.
//!
//! Measured on 2026.9.6 at `logging.level: debug` (the `debug` level is
//! exercised too): startup writes ~70 lines, 42.6 KB, partly in bursts of
//! 12-14 KB within one write batch; a WebSocket upgrade closed before the
//! connect frame logs one WARN line of ~955 bytes ("closed before connect").
//!
//! The gateway batches startup lines, so a small `maxFileBytes` rotates
//! several times within one batch, in well under a millisecond: files are
//! created and rotated away again between two polls of the exporter. At
//! 10 000 bytes the startup rotates 4 times (none deleted); before the
//! follower read the files rotated since its last poll, the exporter counted
//! 53 of the 68 startup lines here. The lines written afterwards, ~955 bytes
//! every ~100 ms, make one more rotation: 5 in all, so the gateway deletes
//! nothing (its 6th rotation would).
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "real")];
const MAX_FILE_BYTES: u64 = 10_000;
/// As `collector::logs::LEVELS`.
const LEVELS: [&str; 7] = ["trace", "debug", "info", "warn", "error", "fatal", "other"];
/// As `config::BUILTIN_LOG_PATTERNS`.
const PATTERNS: [(&str, &str); 5] = [
    (
        "event_loop_delay",
        r"(?i)event loop delay \d+(\.\d+)?\s*ms exceeds threshold",
    ),
    ("memory_limit", r"(?i)process memory \S+ exceeds limit"),
    ("active_connections", r"(?i)\d+ active connections detected"),
    (
        "dependency_timeout",
        r"fetch timeout reached; aborting operation|\[model-fetch\] error .*causeCode=(ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT)\b",
    ),
    (
        "dependency_connect_error",
        r"\[model-fetch\] error .*causeCode=(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_SOCKET)\b|channel startup failed: .*(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|fetch failed)",
    ),
];

/// What the files hold, counted as the exporter counts.
#[derive(Debug, Clone, PartialEq, Default)]
struct Truth {
    levels: BTreeMap<&'static str, u64>,
    patterns: BTreeMap<&'static str, u64>,
    parse_errors: u64,
    /// Name, complete lines, bytes.
    files: Vec<(String, u64, u64)>,
}

impl Truth {
    fn lines(&self) -> u64 {
        self.levels.values().sum::<u64>() + self.parse_errors
    }
    fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.2).sum()
    }
    /// Rotated files: `openclaw-D.N.log`.
    fn rotated(&self) -> usize {
        self.files.iter().filter(|f| !is_live(&f.0)).count()
    }
}

/// `openclaw-D.log`, not a rotated `openclaw-D.N.log`.
fn is_live(name: &str) -> bool {
    !name
        .trim_start_matches("openclaw-")
        .trim_end_matches(".log")
        .contains('.')
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("openclaw-") && name.ends_with(".log")
        })
        .collect();
    files.sort();
    files
}

/// Read every `openclaw-*.log` in `dir`, live and rotated, and count its
/// complete lines by `_meta.logLevelName`, the built-in patterns on
/// `message`, and the lines that are not JSON objects.
fn truth(dir: &Path, regexes: &[(&'static str, regex::Regex)]) -> Truth {
    let mut t = Truth::default();
    for l in LEVELS {
        t.levels.insert(l, 0);
    }
    for (name, _) in regexes {
        t.patterns.insert(name, 0);
    }
    for path in log_files(dir) {
        // Rotated or renamed under our feet: the caller reads again.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let mut lines = 0;
        let mut parts: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        parts.pop(); // after the last newline: empty, or a line being written
        for line in parts {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            lines += 1;
            let v: serde_json::Value = match serde_json::from_slice(line) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                _ => {
                    t.parse_errors += 1;
                    continue;
                }
            };
            let level = v["_meta"]["logLevelName"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .and_then(|l| LEVELS.into_iter().find(|k| *k == l))
                .unwrap_or("other");
            *t.levels.get_mut(level).unwrap() += 1;
            let message = match &v["message"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            for (name, re) in regexes {
                if re.is_match(&message) {
                    *t.patterns.get_mut(name).unwrap() += 1;
                }
            }
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        t.files.push((name, lines, bytes.len() as u64));
    }
    t
}

/// The exporter's counters, in the shape of [`Truth`] (files left empty).
fn exported(s: &Scrape) -> Truth {
    let mut t = Truth::default();
    for l in LEVELS {
        let v = s.get(
            names::LOG_MESSAGES_TOTAL.name(),
            &[("gateway", "real"), ("level", l)],
        );
        t.levels.insert(l, v.map_or(u64::MAX, |v| v as u64));
    }
    for (p, _) in PATTERNS {
        let v = s.get(
            names::LOG_PATTERN_MATCHES_TOTAL.name(),
            &[("gateway", "real"), ("pattern", p)],
        );
        t.patterns.insert(p, v.map_or(u64::MAX, |v| v as u64));
    }
    t.parse_errors = s
        .get(names::LOG_PARSE_ERRORS_TOTAL.name(), G)
        .map_or(u64::MAX, |v| v as u64);
    t
}

/// Wait until the exporter's counters equal the files' lines exactly, with
/// the files unchanged around the scrape. Returns the truth.
fn wait_counted(exp: &Exporter, dir: &Path, regexes: &[(&'static str, regex::Regex)]) -> Truth {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let before = truth(dir, regexes);
        let got = exported(&exp.scrape());
        let after = truth(dir, regexes);
        if before == after {
            let want = Truth {
                files: Vec::new(),
                ..before.clone()
            };
            if got == want {
                return before;
            }
            last = format!("files: {before:#?}\nexporter: {got:#?}");
        }
        if start.elapsed() > Duration::from_secs(60) {
            panic!("the exporter's log counters never matched the files\n{last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names, inodes and sizes of the log files: unchanged means quiet.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    log_files(dir)
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some((p, m.ino(), m.len()))
        })
        .collect()
}

/// A WebSocket upgrade closed before the gateway's connect frame: the gateway
/// logs one WARN line, "closed before connect ...".
fn ws_closed_before_connect(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the gateway closed the upgrade");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn real_gateway_log_lines_are_counted_across_its_rotations() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let regexes: Vec<(&'static str, regex::Regex)> = PATTERNS
        .iter()
        .map(|(n, r)| (*n, regex::Regex::new(r).unwrap()))
        .collect();
    let logs = TempDir::new("real-logs");
    let dir = logs.path();
    let setup = RealGatewaySetup::new();
    let config = serde_json::json!({
        "logging": {
            "file": dir.join("openclaw-YYYY-MM-DD.log"),
            "level": "debug",
            "maxFileBytes": MAX_FILE_BYTES,
        }
    });
    setup.write_config(&config.to_string());

    // The exporter first, on the empty folder.
    let exp = Harness::exporter()
        .name("real")
        .url(&setup.url())
        .state_dir(setup.state_dir())
        .log_path(dir)
        .every("logs", "200ms")
        .start();
    exp.wait("the log collector's first poll, on an empty folder", |s| {
        let polled = s.get(
            names::COLLECTOR_LAST_SAMPLE_TIMESTAMP_SECONDS.name(),
            &[("gateway", "real"), ("collector", "logs")],
        )?;
        (polled > 0.0 && s.get(names::LOG_FILE_PRESENT.name(), G) == Some(0.0)).then_some(())
    });
    assert!(log_files(dir).is_empty());

    // Then the gateway; start() waits for /healthz 200, so the config is accepted.
    let gw = setup.start(&[]);
    let port = gw.port;
    let t0 = Instant::now();
    // Startup logging goes on for ~6 s after /healthz, with pauses of up to
    // ~3 s: wait for /readyz 200 (sidecars started), then until the files
    // have not changed for 5 s.
    wait_for(
        Duration::from_secs(120),
        "the gateway's /readyz 200",
        || matches!(http_get(&gw.addr(), "/readyz", &[]), Ok((200, _, _))).then_some(()),
    );
    let mut quiet_since = (Instant::now(), snapshot(dir));
    wait_for(
        Duration::from_secs(120),
        "the gateway's startup logging to end",
        || {
            let now = snapshot(dir);
            if now != quiet_since.1 {
                quiet_since = (Instant::now(), now);
                return None;
            }
            (!now.is_empty() && quiet_since.0.elapsed() > Duration::from_secs(5)).then_some(())
        },
    );
    let startup = wait_counted(&exp, dir, &regexes);
    eprintln!(
        "startup ({:.1}s after /healthz): {} lines, {} bytes, {} rotation(s), files {:?}, levels {:?}",
        t0.elapsed().as_secs_f64(),
        startup.lines(),
        startup.bytes(),
        startup.rotated(),
        startup.files,
        startup.levels
    );
    assert!(
        (2..=4).contains(&startup.rotated()),
        "the gateway's startup log (~42.6 KB measured) should rotate several times at maxFileBytes {MAX_FILE_BYTES}: {:?}",
        startup.files
    );
    assert!(startup.levels["debug"] > 0 && startup.levels["info"] > 0);

    // The field report's lines, appended as the gateway appends (O_APPEND,
    // whole lines), to the live file, which later rotations rename.
    let live = log_files(dir)
        .into_iter()
        .find(|p| is_live(&p.file_name().unwrap().to_string_lossy()))
        .expect("a live log file");
    let time = std::fs::read_to_string(&live)
        .unwrap()
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v["time"].as_str().map(String::from))
        .expect("the gateway's last line has a time");
    let field_report = [
        ("WARN", "Event loop delay 120ms exceeds threshold", 3),
        ("ERROR", "Process memory 950MB exceeds limit 1GB", 2),
        ("WARN", "1500 active connections detected", 1),
    ];
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    for (level, message, n) in field_report {
        let line = serde_json::json!({
            "time": time,
            "message": message,
            "_meta": {"logLevelName": level},
        });
        for _ in 0..n {
            f.write_all(format!("{line}\n").as_bytes()).unwrap();
        }
    }
    drop(f);

    // More gateway lines, one every ~100 ms, until it has rotated once more.
    let mut written = 0;
    let mut after_last = 0;
    while truth(dir, &regexes).rotated() < startup.rotated() + 1 || after_last < 5 {
        assert!(written < 150, "no rotation after {written} more lines");
        let rotated = log_files(dir).len();
        ws_closed_before_connect(port);
        written += 1;
        std::thread::sleep(Duration::from_millis(100));
        after_last = if log_files(dir).len() > rotated {
            0
        } else {
            after_last + 1
        };
    }

    let end = wait_counted(&exp, dir, &regexes);
    eprintln!(
        "end: {} lines ({} after startup, {written} WebSocket closes), {} bytes, {} rotation(s), files {:?}, levels {:?}, patterns {:?}",
        end.lines(),
        end.lines() - startup.lines(),
        end.bytes(),
        end.rotated(),
        end.files,
        end.levels,
        end.patterns
    );
    assert_eq!(
        end.rotated(),
        startup.rotated() + 1,
        "one more rotation, at most 5 in all (the 6th deletes a file): {:?}",
        end.files
    );
    assert!(
        end.files.iter().all(|f| f.1 > 0),
        "every file holds lines: {:?}",
        end.files
    );
    assert!(end.levels["warn"] >= startup.levels["warn"] + 4 + written);
    assert!(end.levels["error"] >= startup.levels["error"] + 2);
    for ((name, _), (_, _, n)) in PATTERNS.iter().zip(field_report) {
        assert!(end.patterns[name] >= n, "{name}: {:?}", end.patterns);
    }
    assert_eq!(end.parse_errors, 0, "the gateway writes JSON lines");
    let s = exp.scrape();
    assert_eq!(s.get(names::LOG_FILE_PRESENT.name(), G), Some(1.0));
    drop(gw);
}
