//! packaging/macos/ stays true to launchd and to the binary: the LaunchAgent
//! plist parses as a property list (Python's plistlib, as `plutil -lint`
//! would on a Mac), has the keys the README relies on, and every argument it
//! passes is one the binary accepts.

mod common;

use std::process::Command;

use common::*;

/// The plist at `path` as JSON, through plistlib; `Err` with its message when
/// it does not parse.
fn plist_json(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let python = require_tool("python3");
    let out = Command::new(python)
        .args([
            "-c",
            "import json, plistlib, sys\n\
             print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs python3 (plistlib), a Linux program here"
)]
fn launch_agent_plist_is_valid_and_matches_the_binary() {
    let path = repo().join("packaging/macos/ai.openclaw.gateway-exporter.plist");
    let p = plist_json(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(p["Label"], "ai.openclaw.gateway-exporter");
    assert_eq!(p["KeepAlive"], true);
    assert_eq!(p["RunAtLoad"], true);
    let args: Vec<String> = serde_json::from_value(p["ProgramArguments"].clone()).unwrap();
    assert_eq!(args[0], "/usr/local/bin/openclaw-gateway-exporter");
    assert!(args.contains(&"--web.listen-address=:9789".to_string()));
    // Logs in the user's Library/Logs, which exists: launchd makes the file
    // only. USERNAME is what the README's sed replaces.
    for key in ["StandardOutPath", "StandardErrorPath"] {
        let log = p[key].as_str().unwrap();
        assert!(
            log.starts_with("/Users/USERNAME/Library/Logs/") && !log.contains('~'),
            "{key}: {log}"
        );
    }
    let readme = std::fs::read_to_string(repo().join("packaging/macos/README.md")).unwrap();
    assert!(
        readme.contains("s/USERNAME/"),
        "the README replaces USERNAME"
    );
    assert!(
        readme.contains("launchctl bootstrap gui/") && readme.contains("launchctl bootout gui/")
    );

    // The binary takes these arguments (parse and validate only).
    let out = Command::new(EXPORTER)
        .args(&args[1..])
        .arg("--config.check")
        .env_remove("OPENCLAW_EXPORTER_CONFIG_FILE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs python3 (plistlib), a Linux program here"
)]
fn a_broken_plist_is_caught() {
    let dir = TempDir::new("plist");
    let bad = dir.path().join("bad.plist");
    let good =
        std::fs::read_to_string(repo().join("packaging/macos/ai.openclaw.gateway-exporter.plist"))
            .unwrap();
    std::fs::write(&bad, good.replace("</array>", "")).unwrap();
    assert!(plist_json(&bad).is_err());
}
