//! packaging/ stays true to the binary: the Dockerfile passes hadolint, the
//! systemd unit passes `systemd-analyze verify`, the Kubernetes example
//! parses, and every exporter flag they use is one the binary has (and
//! parses), on port 9789, with the HEALTHCHECK on `check`. No Docker engine
//! or cluster runs here, so these are the checks there are.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::*;

fn packaging(rel: &str) -> PathBuf {
    repo().join("packaging").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(packaging(rel)).unwrap_or_else(|e| panic!("packaging/{rel}: {e}"))
}

/// The long flags `openclaw-gateway-exporter --help` lists.
fn help_flags() -> BTreeSet<String> {
    let out = Command::new(EXPORTER).arg("--help").output().unwrap();
    assert!(out.status.success());
    let flags = flags_in(&String::from_utf8_lossy(&out.stdout));
    assert!(flags.contains("--web.listen-address") && flags.contains("--web.config.file"));
    flags
}

fn assert_known(what: &str, used: &BTreeSet<String>, known: &BTreeSet<String>) {
    let unknown: Vec<_> = used.difference(known).collect();
    assert!(
        unknown.is_empty(),
        "{what} uses flags the binary does not have: {unknown:?}"
    );
}

/// The binary accepts `args` (with `--config.check`: parse and validate only).
fn assert_parses(what: &str, args: &[String]) {
    let out = Command::new(EXPORTER)
        .args(args)
        .arg("--config.check")
        .env_remove("OPENCLAW_EXPORTER_CONFIG_FILE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- Dockerfile

/// Dockerfile instructions with continuation lines joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

/// The JSON array of an exec-form instruction such as `CMD ["a", "b"]`.
fn exec_form(instruction: &str) -> Vec<String> {
    let start = instruction.find('[').expect("exec form");
    serde_json::from_str(&instruction[start..]).expect("exec form is a JSON array")
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs hadolint, a Linux program here"
)]
fn dockerfile_passes_hadolint() {
    let hadolint = require_tool("hadolint");
    let out = Command::new(&hadolint)
        .arg(packaging("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And hadolint does find faults.
    let dir = TempDir::new("hadolint");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian:latest\nRUN apt-get install curl\n").unwrap();
    let out = Command::new(&hadolint).arg(&bad).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn dockerfile_matches_the_binary() {
    let text = read("Dockerfile");
    let ins = instructions(&text);
    let find = |op: &str| -> Vec<&String> {
        ins.iter()
            .filter(|i| i.split_whitespace().next() == Some(op))
            .collect()
    };

    // Multi-stage, a static final stage, the MSRV as the build image.
    let froms = find("FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap();
    assert!(
        froms[0].contains(&format!("rust:{msrv}-")),
        "build stage should be the MSRV {msrv}: {}",
        froms[0]
    );
    assert!(text.contains("musl"), "a static (musl) binary");

    // The binary's path, the entry point and the health check agree.
    let entry = exec_form(find("ENTRYPOINT")[0]);
    let binary = entry[0].clone();
    assert!(binary.ends_with("/openclaw-gateway-exporter"), "{binary}");
    assert!(
        find("COPY")
            .iter()
            .any(|c| c.contains("--from=") && c.trim_end().ends_with(&binary)),
        "the final stage copies the binary to {binary}"
    );
    let health = find("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    let health_cmd = exec_form(health[0]);
    assert_eq!(health_cmd, [binary.as_str(), "check"], "{}", health[0]);
    let help = Command::new(EXPORTER).arg("--help").output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout)
            .lines()
            .any(|l| l.trim_start().starts_with("check ")),
        "`check` is a subcommand of the binary"
    );

    // Flags and port.
    let cmd = exec_form(find("CMD")[0]);
    let used = flags_in(&cmd.join(" "));
    assert_known("Dockerfile CMD", &used, &help_flags());
    assert!(
        cmd.contains(&"--web.listen-address=:9789".to_string()),
        "{cmd:?}"
    );
    assert_parses("Dockerfile CMD", &cmd);
    assert_eq!(
        find("EXPOSE")
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        ["EXPOSE 9789"]
    );
    assert!(
        find("USER")
            .iter()
            .any(|u| !u.contains("root") && !u.contains(" 0")),
        "runs as a non-root user"
    );

    // Build output stays out of the build context.
    let ignore = read("Dockerfile.dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"), "{ignore}");
}

// ---------------------------------------------------------------- systemd

/// `Key=value` settings of a unit file (all of them, in order).
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn systemd_unit_matches_the_binary_and_is_hardened() {
    let unit = read("systemd/openclaw-gateway-exporter.service");
    let settings = unit_settings(&unit);
    let get = |k: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };

    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1);
    let words: Vec<&str> = exec[0].split_whitespace().collect();
    assert!(
        words[0].ends_with("/openclaw-gateway-exporter"),
        "{}",
        exec[0]
    );
    assert!(words.contains(&"--web.listen-address=:9789"), "{}", exec[0]);
    let known = help_flags();
    assert_known("ExecStart", &flags_in(exec[0]), &known);

    // The flags in the environment file, examples included.
    let default = read("systemd/openclaw-gateway-exporter.default");
    assert_known("the default file", &flags_in(&default), &known);
    let active = default
        .lines()
        .find_map(|l| l.strip_prefix("OPENCLAW_EXPORTER_ARGS="))
        .expect("OPENCLAW_EXPORTER_ARGS");
    let mut args: Vec<String> = words[1..]
        .iter()
        .filter(|w| !w.starts_with('$'))
        .map(|w| w.to_string())
        .collect();
    args.extend(
        active
            .trim_matches('"')
            .split_whitespace()
            .map(String::from),
    );
    assert_parses("ExecStart with the default file", &args);
    assert!(exec[0].contains("$OPENCLAW_EXPORTER_ARGS"));
    assert!(get("EnvironmentFile")[0].ends_with("/etc/default/openclaw-gateway-exporter"));

    // Reload is the web config's SIGHUP.
    assert_eq!(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);

    // Its own user; /tmp shared (the gateway's log) but read-only; the two
    // capabilities that read another user's /proc/<pid>/fd and 0700 folders,
    // with the home folders hidden but for the state dir it is told about.
    for (key, want) in [
        ("User", "openclaw-exporter"),
        ("PrivateTmp", "no"),
        ("AmbientCapabilities", "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"),
        (
            "CapabilityBoundingSet",
            "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH",
        ),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        // The one writable folder: incident snapshots.
        ("StateDirectory", "openclaw-gateway-exporter"),
        ("ProtectHome", "tmpfs"),
        ("ProtectProc", "default"),
        ("PrivateUsers", "no"),
    ] {
        assert_eq!(get(key), [want], "{key}");
    }
    let state_dir = active
        .split_whitespace()
        .find_map(|a| a.trim_matches('"').strip_prefix("--gateway.state-dir="))
        .expect("--gateway.state-dir in the default file");
    assert_eq!(get("BindReadOnlyPaths"), [format!("-{state_dir}").as_str()]);
    assert!(
        get("DynamicUser").is_empty(),
        "DynamicUser forces PrivateTmp"
    );
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs systemd-analyze, a Linux program here"
)]
fn systemd_unit_passes_systemd_analyze_verify() {
    let analyze = require_tool("systemd-analyze");
    let dir = TempDir::new("unit");
    // verify wants the ExecStart binary to exist: point it at the one built.
    let unit = read("systemd/openclaw-gateway-exporter.service")
        .replace("/usr/local/bin/openclaw-gateway-exporter", EXPORTER);
    let path = dir.path().join("openclaw-gateway-exporter.service");
    std::fs::write(&path, &unit).unwrap();
    let verify = |p: &std::path::Path| {
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(p)
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let said = verify(&path);
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
    // And it does complain about a bad unit.
    std::fs::write(&path, format!("{unit}\nProtectSystm=strict\n")).unwrap();
    assert!(verify(&path).contains("ProtectSystm"));
}

// ---------------------------------------------------------------- Kubernetes

#[test]
fn kubernetes_example_parses_and_matches_the_binary() {
    let text = read("kubernetes/openclaw-gateway.yaml");
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect();
    let kind = |k: &str| -> &serde_yaml::Value {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service", "ServiceMonitor"]);

    let deploy = kind("Deployment");
    let pod = &deploy["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["shareProcessNamespace"], true);
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deploy["spec"]["selector"]["matchLabels"], labels);
    let notes = &pod["metadata"]["annotations"];
    assert_eq!(notes["prometheus.io/scrape"], "true");
    assert_eq!(notes["prometheus.io/port"], "9789");
    assert_eq!(notes["prometheus.io/path"], "/metrics");

    let containers = spec["containers"].as_sequence().unwrap();
    let exporter = containers
        .iter()
        .find(|c| c["name"] == "exporter")
        .expect("an exporter container");
    let args: Vec<String> = exporter["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_known(
        "the exporter container",
        &flags_in(&args.join(" ")),
        &help_flags(),
    );
    assert!(
        args.contains(&"--web.listen-address=:9789".to_string()),
        "{args:?}"
    );
    assert_parses("the exporter container's args", &args);
    let port = &exporter["ports"][0];
    assert_eq!(port["containerPort"], 9789);
    assert_eq!(port["name"], "metrics");
    assert_eq!(exporter["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(exporter["readinessProbe"]["httpGet"]["path"], "/-/ready");

    // The state dir and log dir it is pointed at are mounted, read-only.
    let mounts = exporter["volumeMounts"].as_sequence().unwrap();
    for flag in ["--gateway.state-dir=", "--gateway.log-path="] {
        let dir = args
            .iter()
            .find_map(|a| a.strip_prefix(flag))
            .unwrap_or_else(|| panic!("{flag}"));
        let mount = mounts
            .iter()
            .find(|m| m["mountPath"] == dir)
            .unwrap_or_else(|| panic!("{dir} is not mounted in the exporter"));
        assert_eq!(mount["readOnly"], true, "{dir}");
        let gateway_mounts = containers.iter().find(|c| c["name"] == "gateway").unwrap()
            ["volumeMounts"]
            .as_sequence()
            .unwrap();
        assert!(
            gateway_mounts
                .iter()
                .any(|m| m["name"] == mount["name"] && m["mountPath"] == dir),
            "{dir}: the gateway must write where the exporter reads"
        );
    }

    let svc = kind("Service");
    assert_eq!(&svc["spec"]["selector"], labels);
    assert_eq!(svc["spec"]["ports"][0]["port"], 9789);
    assert_eq!(svc["spec"]["ports"][0]["name"], "metrics");
    let sm = kind("ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        &sm["spec"]["selector"]["matchLabels"],
        &svc["metadata"]["labels"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
}
