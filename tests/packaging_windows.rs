//! packaging/windows/ stays true to the binary: the config install.ps1
//! writes passes `--config.check`, and the service command lines of
//! install.ps1 and the README use only flags the binary has, on its default
//! port. No PowerShell runs here; the service itself is exercised under
//! Wine's service control manager by tests/windows_service.rs.

mod common;

use std::process::Command;

use common::*;

fn read(rel: &str) -> String {
    let path = repo().join("packaging/windows").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_config_install_ps1_writes_passes_config_check() {
    let sample = read("config.yml");
    for token in [r"'%USERPROFILE%\.openclaw'", r"'%TEMP%\openclaw'"] {
        assert!(sample.contains(token), "{token} in config.yml");
    }
    // As [Environment]::ExpandEnvironmentVariables leaves it, for a user
    // whose name has a space.
    let home = r"C:\Users\Ada Lovelace";
    let expanded = sample
        .replace("%USERPROFILE%", home)
        .replace("%TEMP%", &format!(r"{home}\AppData\Local\Temp"));
    let dir = TempDir::new("win-config");
    let file = dir.path().join("config.yml");
    std::fs::write(&file, expanded).unwrap();
    let out = Command::new(EXPORTER)
        .args(["--config.file", dir_str(&file), "--config.check"])
        .env_remove("OPENCLAW_EXPORTER_CONFIG_FILE")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            r"openclaw: url http://127.0.0.1:18789 state dir {home}\.openclaw"
        )),
        "{said}"
    );
}

#[test]
fn the_service_command_lines_use_the_binarys_flags_and_port() {
    let help = Command::new(EXPORTER).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let mut known = flags_in(&help);
    assert!(known.contains("--log.file"), "{help}");
    // Windows only, so not in this --help; src/service.rs's tests parse it.
    known.insert("--windows-service".to_string());
    assert!(
        help.contains("[default: :9789]"),
        "the default port: {help}"
    );

    for file in ["install.ps1", "README.md"] {
        let text = read(file);
        // Less the lines that tell how to build it with cargo.
        let exporter_lines: String = text
            .lines()
            .filter(|l| !l.contains("cargo "))
            .collect::<Vec<_>>()
            .join("\n");
        let used = flags_in(&exporter_lines);
        let unknown: Vec<_> = used.difference(&known).collect();
        assert!(unknown.is_empty(), "{file}: not the binary's: {unknown:?}");
        for flag in [
            "--windows-service",
            "--config.file",
            "--log.file",
            "--web.listen-address",
        ] {
            assert!(used.contains(flag), "{file} passes {flag}");
        }
        assert!(text.contains(":9789"), "{file}: the default port");
    }
    let install = read("install.ps1");
    assert!(install.contains("$ListenAddress = ':9789'"), "{install}");
    assert!(
        install.contains("sc.exe failure $Name"),
        "restart on failure"
    );
    assert!(install.contains("sc.exe failureflag $Name 1"));
}
