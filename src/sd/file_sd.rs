//! The `file_sd` source: files of target groups, as Prometheus's
//! `file_sd_configs` reads them, that any orchestrator can write.
//!
//! ```yaml
//! - targets: ["127.0.0.1:19100", "http://127.0.0.1:19101"]
//!   labels: {state_dir: /srv/a/.openclaw}
//! - targets: ["10.0.0.7:18789"]
//!   labels: {gateway: lb-3, tenant: acme, pid_file: /run/oc.pid}
//! ```
//!
//! JSON is the same shape (YAML reads it). Each target is one gateway: its
//! URL (`host:port` means `http://host:port`), and its group's labels set
//! what a gateway in the config file would: `gateway` (the name; default
//! `tenant`, else `host:port`), `tenant`, `state_dir`, `pid_file`,
//! `log_path`, `token_file`, `process_title`, `memory_limit`, `listen_port`
//! (the port it listens on in its own network namespace, when the target is
//! a published one). Labels that
//! begin with `__` are ignored, as Prometheus drops them; any other is an
//! error, so that a typo is not silently lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use super::Found;
use crate::config::{self, GatewayFile};

#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
struct Groups(Vec<Group>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The labels a target group may carry.
pub const LABELS: [&str; 9] = [
    "gateway",
    "tenant",
    "state_dir",
    "pid_file",
    "log_path",
    "token_file",
    "process_title",
    "memory_limit",
    "listen_port",
];

/// The gateways of one file's text; `path` labels errors. A file with one
/// bad group or target fails whole.
pub fn parse(path: &str, text: &str) -> Result<Vec<Found>, String> {
    let groups: Groups = config::parse_yaml(path, text).map_err(|e| e.to_string())?;
    let mut out: Vec<Found> = Vec::new();
    for (i, group) in groups.0.into_iter().enumerate() {
        let at = |m: String| format!("{path}: group {}: {m}", i + 1);
        if let Some(l) = group
            .labels
            .keys()
            .find(|l| !l.starts_with("__") && !LABELS.contains(&l.as_str()))
        {
            return Err(at(format!(
                "unknown label {l:?}; the labels are {}",
                LABELS.join(", ")
            )));
        }
        let label = |k: &str| group.labels.get(k).filter(|v| !v.is_empty()).cloned();
        let path_label = |k: &str| label(k).map(PathBuf::from);
        for target in &group.targets {
            let url = match target.split_once("://") {
                Some(_) => target.clone(),
                None => match target.rsplit_once(':') {
                    Some((_, port))
                        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        format!("http://{target}")
                    }
                    _ => return Err(at(format!("target {target:?}: host:port or a URL"))),
                },
            };
            let listen_port = match label("listen_port") {
                None => None,
                Some(p) => Some(
                    p.parse::<u16>()
                        .map_err(|_| at(format!("listen_port {p:?}: a port number, 1-65535")))?,
                ),
            };
            let g = GatewayFile {
                name: label("gateway").or_else(|| label("tenant")),
                url: Some(url),
                listen_port,
                state_dir: path_label("state_dir"),
                pid_file: path_label("pid_file"),
                log_path: path_label("log_path"),
                token_file: path_label("token_file"),
                process_title: label("process_title"),
                memory_limit: label("memory_limit"),
                ..Default::default()
            };
            let spec = config::gateway_spec(g).map_err(|e| at(format!("{target:?}: {e}")))?;
            // The name also names the gateway's threads, where a NUL is refused.
            if spec.name.chars().any(char::is_control) {
                return Err(at(format!(
                    "gateway name {:?}: control characters",
                    spec.name
                )));
            }
            if out.iter().any(|f| f.spec.name == spec.name) {
                return Err(at(format!(
                    "gateway {:?} twice: give each target its own `gateway` label",
                    spec.name
                )));
            }
            out.push(Found {
                spec,
                tenant: label("tenant"),
            });
        }
    }
    Ok(out)
}

/// What a file looked like when it was last read: its size and
/// modification time, or `None` when it could not be seen.
pub type Stamp = Option<(u64, SystemTime)>;

pub fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// Read and parse one file.
pub fn read(path: &Path) -> Result<Vec<Found>, String> {
    let text = config::read_text(path).map_err(|e| e.to_string())?;
    parse(&path.display().to_string(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_json() {
        let yaml = "- targets: ['127.0.0.1:19100', 'http://[::1]:19101/']\n  labels: {state_dir: /srv/a}\n- targets: ['h:1']\n  labels: {gateway: lb-3, tenant: acme, pid_file: /run/oc.pid, __meta_x: y}\n";
        let found = parse("t.yml", yaml).unwrap();
        let names: Vec<&str> = found.iter().map(|f| f.spec.name.as_str()).collect();
        assert_eq!(names, ["127.0.0.1:19100", "[::1]:19101", "lb-3"]);
        assert_eq!(found[1].spec.url, "http://[::1]:19101");
        assert_eq!(found[0].spec.state_dir, Path::new("/srv/a"));
        assert_eq!(found[2].tenant.as_deref(), Some("acme"));
        assert_eq!(
            found[2].spec.pid_file.as_deref(),
            Some(Path::new("/run/oc.pid"))
        );

        let yaml = "- targets: ['127.0.0.1:19100']\n  labels: {listen_port: '18789'}\n";
        let found = parse("t.yml", yaml).unwrap();
        assert_eq!(found[0].spec.url, "http://127.0.0.1:19100");
        assert_eq!(found[0].spec.port, 18789);
        for bad in ["x", "0", "70000", "-1"] {
            let yaml = format!("- targets: ['h:1']\n  labels: {{listen_port: '{bad}'}}\n");
            assert!(parse("t.yml", &yaml).is_err(), "{bad}");
        }
        let json = r#"[{"targets": ["127.0.0.1:19100"], "labels": {"tenant": "acme"}}]"#;
        let found = parse("t.json", json).unwrap();
        assert_eq!(found[0].spec.name, "acme");
        assert!(parse("t.json", "[]").unwrap().is_empty());
        assert!(parse("t.yml", "# nothing yet\n").unwrap().is_empty());
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        for (text, want) in [
            ("{targets: [a:1]}", "t.yml"),
            ("- labels: {}\n", "missing field `targets`"),
            ("- targets: [a:1]\n  lables: {}\n", "unknown field `lables`"),
            (
                "- targets: [a:1]\n  labels: {job: x}\n",
                "unknown label \"job\"",
            ),
            (
                "- targets: [a:1]\n  labels: {statedir: x}\n",
                "unknown label",
            ),
            (
                "- targets: ['a:1', 'b:2']\n  labels: {gateway: x}\n",
                "gateway \"x\" twice",
            ),
            ("- targets: [a:1]\n- targets: [a:1]\n", "twice"),
            ("- targets: ['ftp://a:1']\n", "group 1"),
            ("- targets: ['a']\n", "group 1"),
            ("- targets: ['a:99999']\n", "group 1"),
            (
                "- targets: ['a:1']\n  labels: {memory_limit: lots}\n",
                "memory_limit",
            ),
            ("- targets: [[a]]\n", "t.yml"),
            ("- targets: 'a:1'\n", "t.yml"),
            (
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
                "nested",
            ),
            ("\u{0}", "t.yml"),
            (
                "- targets: ['a:1']\n  labels: {gateway: \"a\\0b\"}\n",
                "control characters",
            ),
            (
                "- targets: ['a:1']\n  labels: {tenant: \"t\\nx\"}\n",
                "control characters",
            ),
        ] {
            let err = parse("t.yml", text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
