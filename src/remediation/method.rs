//! The ways to start a gateway again, each as the exact argv it runs.

use serde::Deserialize;

/// How the gateway is restarted, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Method {
    /// `openclaw gateway restart --force --json`.
    OpenclawCli {
        #[serde(default = "default_openclaw")]
        binary: String,
    },
    /// `systemctl [--user] reset-failed <unit>`, then `restart <unit>`.
    Systemd {
        #[serde(default = "default_unit")]
        unit: String,
        #[serde(default = "default_true")]
        user: bool,
    },
    /// `launchctl kickstart -k gui/<uid>/<label>`.
    Launchd {
        #[serde(default = "default_label")]
        label: String,
        #[serde(default)]
        uid: Option<u32>,
    },
    /// Kill the tree, wait for the task instance to end, `schtasks /Run`.
    ScheduledTask {
        #[serde(default = "default_task")]
        name: String,
    },
    /// Any command, run without a shell.
    Argv { argv: Vec<String> },
}

fn default_openclaw() -> String {
    "openclaw".into()
}
fn default_unit() -> String {
    "openclaw-gateway.service".into()
}
fn default_true() -> bool {
    true
}
fn default_label() -> String {
    "ai.openclaw.gateway".into()
}
fn default_task() -> String {
    "OpenClaw Gateway".into()
}
