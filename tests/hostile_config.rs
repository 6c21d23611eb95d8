//! Hostile config files: every one gets exit 2 and a message that names the
//! file and, where the YAML has one, the line and column, fast (no hang, no
//! crash). Cases already in tests/http.rs (an unknown gateway key, flags
//! against a file, a bad interval flag, a missing file) are not repeated.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Run `--config.check` on `content`; return the exit code, stderr and how
/// long it took (it is killed after 20 s).
fn check(dir: &TempDir, content: &[u8]) -> (Option<i32>, String, Duration) {
    let path = dir.path().join("config.yml");
    std::fs::write(&path, content).unwrap();
    check_path(&path)
}

fn check_path(path: &std::path::Path) -> (Option<i32>, String, Duration) {
    let start = Instant::now();
    let mut child = spawn_child(
        Command::new(EXPORTER)
            .arg("--config.file")
            .arg(path)
            .arg("--config.check")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("--config.check hung on {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err, elapsed)
}

/// Each case: the file, the `line:column` the message must start with
/// (after the path; None when the problem has no place in the YAML), and a
/// piece of the reason.
#[test]
fn bad_files_exit_2_with_their_location() {
    let dir = TempDir::new("hostile-cfg");
    let path = dir.path().join("config.yml").display().to_string();
    let cases: &[(&str, Option<&str>, &str)] = &[
        // Bad YAML.
        ("gateways:\n\t- name: a\n", Some("2:1"), "cannot start any token"),
        ("gateways: [\n", Some("2:1"), "did not find expected node content"),
        (
            "gateways:\n  - name: 'a\n",
            Some("3:1"),
            "while scanning a quoted scalar at line 2 column 11",
        ),
        // An unclosed flow map runs on into the next line.
        (
            "collect: {memory: 1s\nlogs: 2s\n",
            Some("1:19"),
            "invalid duration \"1s logs\"",
        ),
        (
            "collect:\n  memory: 1s: 2s\n",
            Some("2:13"),
            "mapping values are not allowed",
        ),
        ("collect:\n  memory: 1s\n logs: 2s\n", Some("3:2"), "did not find expected key"),
        ("gateways: *nowhere\n", Some("1:11"), "unknown anchor"),
        ("a\u{0}b: 1\n", Some("1:1"), "control characters are not allowed"),
        // Unknown keys, at each level.
        ("gatways: []\n", Some("1:1"), "unknown field `gatways`"),
        ("collect:\n  memroy: 1s\n", Some("2:3"), "unknown field `memroy`"),
        (
            "gateways:\n  - name: a\n  - name: b\n    statedir: /x\n",
            Some("4:5"),
            "unknown field `statedir`",
        ),
        // Wrong types and values.
        ("gateways:\n  name: a\n", Some("2:3"), "expected a list of gateways"),
        ("gateways:\n  - 5\n", Some("2:5"), "invalid type: integer `5`"),
        ("gateways:\n  - pid: -1\n", Some("2:10"), "invalid type: integer `-1`"),
        ("gateways:\n  - pid: 99999999999\n", Some("2:10"), "expected u32"),
        ("gateways:\n  - url: [a]\n", Some("2:10"), "invalid type: sequence"),
        (
            "gateways:\n  - name: a\n    name: b\n",
            Some("2:5"),
            "duplicate field `name`",
        ),
        (
            "gateways:\n  - name: a\n  - url: 'ftp://h:1'\n",
            Some("3:5"),
            "scheme must be http or https",
        ),
        (
            "gateways:\n  - url: 'http://h:1'\n    memory_limit: lots\n",
            Some("2:5"),
            "memory_limit: invalid size \"lots\"",
        ),
        // Bad durations.
        ("collect:\n  memory: 30 seconds\n", Some("2:11"), "invalid duration \"30 seconds\""),
        ("collect:\n  logs: 5s\n  memory: -1s\n", Some("3:11"), "invalid duration \"-1s\""),
        ("collect:\n  memory: 1.5s\n", Some("2:11"), "invalid duration \"1.5s\""),
        ("collect:\n  memory: 10\n", Some("2:11"), "missing unit"),
        ("collect:\n  memory: 1d\n", Some("2:11"), "unknown unit \"d\""),
        (
            "collect:\n  memory: 99999999999999999999s\n",
            Some("2:11"),
            "number too large",
        ),
        ("collect:\n  memory: 0s\n", Some("2:11"), "must be greater than zero"),
        ("collect:\n  memory: [1s]\n", Some("2:11"), "expected a duration"),
        // Duplicate gateway names, given or defaulted (host:port).
        (
            "gateways:\n  - name: gw\n    url: http://127.0.0.1:1\n  - name: other\n  - name: gw\n    url: http://127.0.0.1:2\n",
            Some("5:5"),
            "duplicate gateway name \"gw\"",
        ),
        (
            "gateways:\n  - url: http://10.0.0.1:18789\n  - url: http://10.0.0.1:18789/\n",
            Some("3:5"),
            "duplicate gateway name \"10.0.0.1:18789\"",
        ),
        (
            "gateways:\n  - {}\n  - {url: 'http://127.0.0.1:18789'}\n",
            Some("3:5"),
            "duplicate gateway name \"127.0.0.1:18789\"",
        ),
        // Hostile shapes.
        ("---\ncollect: {}\n---\ncollect: {}\n", None, "more than one document"),
        ("log_patterns:\n  x: '('\n", None, "log_patterns: x: regex parse error"),
        ("log_patterns:\n  Bad-Name: x\n", None, "lower-case letters"),
    ];
    for (text, at, reason) in cases {
        let (code, err, took) = check(&dir, text.as_bytes());
        assert_eq!(code, Some(2), "{text:?}: {err}");
        let want = match at {
            Some(at) => format!("error: {path}:{at}: "),
            None => "error: ".to_string(),
        };
        assert!(
            err.starts_with(&want),
            "{text:?}: want {want:?}, got: {err}"
        );
        assert!(
            err.contains(reason),
            "{text:?}: want {reason:?}, got: {err}"
        );
        assert!(took < Duration::from_secs(5), "{text:?} took {took:?}");
    }
}

#[test]
fn huge_deep_binary_and_odd_files_are_refused_fast() {
    let dir = TempDir::new("hostile-cfg-shapes");
    let path = dir.path().join("config.yml").display().to_string();
    let flow_bomb = format!("gateways: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    // A billion laughs: 9^9 expansions if aliases were expanded.
    let mut laughs = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    let mut prev = 'a';
    for name in "bcdefghi".chars() {
        laughs.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(", ")
        ));
        prev = name;
    }
    laughs.push_str("gateways: *i\n");
    let many_patterns: String = std::iter::once("log_patterns:\n".to_string())
        .chain((0..50_000).map(|i| format!("  p{i}: x\n")))
        .collect();
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            flow_bomb.into_bytes(),
            format!("{path}:1:75: brackets nested deeper than 64 levels"),
        ),
        (
            laughs.into_bytes(),
            format!("{path}:1:1: unknown field `a`"),
        ),
        (
            vec![b'#'; 2 << 20],
            format!("{path}: cannot read config file: larger than 1048576 bytes"),
        ),
        (
            b"\xff\xfe\x00gateways: []\n".to_vec(),
            format!("{path}: cannot read config file: not UTF-8 text"),
        ),
        (
            many_patterns.into_bytes(),
            "log_patterns: 50000 patterns; at most 100".to_string(),
        ),
    ];
    for (content, want) in cases {
        let (code, err, took) = check(&dir, &content);
        assert_eq!(code, Some(2), "{want}: {err}");
        assert!(err.contains(&want), "want {want:?}, got: {err}");
        assert!(
            !err.contains(": larger than 1048576 bytes: "),
            "said twice: {err}"
        );
        assert!(took < Duration::from_secs(5), "{want}: took {took:?}");
    }

    // A folder.
    let (code, err, _) = check_path(dir.path());
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read config file"), "{err}");

    // Empty and comment-only files are valid, empty configs.
    for text in ["", "\n\n", "# nothing here\n  # nor here\n"] {
        let (code, err, _) = check(&dir, text.as_bytes());
        assert_eq!(code, Some(0), "{text:?}: {err}");
    }
}

/// The server refuses a bad config the same way, before listening.
#[test]
fn the_server_exits_2_too() {
    let dir = TempDir::new("hostile-cfg-serve");
    let path = dir.path().join("config.yml");
    std::fs::write(&path, "gateways:\n  - name: a\n  - name: a\n").unwrap();
    let out = Command::new(EXPORTER)
        .args(["--web.listen-address", "127.0.0.1:0", "--config.file"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:5: ", path.display())) && !err.contains("listening"),
        "{err}"
    );
}
