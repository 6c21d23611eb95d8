//! `discovery:` in the config file: where the exporter learns of gateways
//! while it runs, besides the ones it is configured with. Both sources are
//! off unless given; [`crate::sd`] runs them.
//!
//! ```yaml
//! discovery:
//!   fleet:                      # `openclaw fleet list --json`, one gateway per cell
//!     command: [openclaw, fleet, list, --json]
//!     interval: 60s
//!     timeout: 30s
//!     state_dir: /home/ops/.openclaw
//!   file_sd:                    # Prometheus file_sd-like target files
//!     files: [/etc/openclaw-exporter/gateways.yml]
//!     refresh_interval: 10s
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::de_interval;
use super::ConfigError;

/// The `discovery:` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryFile {
    pub fleet: Option<FleetFile>,
    pub file_sd: Option<FileSdFile>,
}

/// `discovery.fleet` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_some_interval")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_some_interval")]
    pub timeout: Option<Duration>,
    pub state_dir: Option<PathBuf>,
    pub gateway_port: Option<u16>,
}

/// `discovery.file_sd` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdFile {
    #[serde(default)]
    pub files: Vec<PathBuf>,
    #[serde(default, deserialize_with = "de_some_interval")]
    pub refresh_interval: Option<Duration>,
}

fn de_some_interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_interval(d).map(Some)
}

/// The discovery sources that run; `None` is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub fleet: Option<Fleet>,
    pub file_sd: Option<FileSd>,
}

impl Discovery {
    pub fn is_on(&self) -> bool {
        self.fleet.is_some() || self.file_sd.is_some()
    }
}

/// The `openclaw fleet list --json` source, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// The program and its arguments; its standard output is the cell list.
    pub command: Vec<String>,
    /// How often the cells are listed.
    pub interval: Duration,
    /// How long one listing may take before it is killed and counted failed.
    pub timeout: Duration,
    /// The OpenClaw state dir Fleet keeps its cells under: a cell's state
    /// (and lock files) is `<state_dir>/fleet/cells/<tenant>`.
    pub state_dir: PathBuf,
    /// The port a cell's gateway listens on inside its container, which
    /// Fleet publishes on the cell's loopback host port.
    pub gateway_port: u16,
}

/// The file_sd source, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSd {
    pub files: Vec<PathBuf>,
    /// How often each file's size and modification time are checked; a
    /// file is read again when either changed.
    pub refresh_interval: Duration,
}

/// What `fleet.command` runs when none is given.
pub const FLEET_COMMAND: [&str; 4] = ["openclaw", "fleet", "list", "--json"];
pub const FLEET_INTERVAL: Duration = Duration::from_secs(60);
pub const FLEET_TIMEOUT: Duration = Duration::from_secs(30);
/// The port a Fleet cell's gateway listens on in its container: Fleet
/// publishes `18789` on `127.0.0.1:<port>` (the package's
/// `docs/gateway/multi-tenant-hosting.md`, "Architecture").
pub const FLEET_GATEWAY_PORT: u16 = crate::config::DEFAULT_GATEWAY_PORT;
pub const FILE_SD_REFRESH: Duration = Duration::from_secs(10);

/// Validate the `discovery:` block.
pub fn discovery(file: DiscoveryFile) -> Result<Discovery, ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(format!("discovery.{m}")));
    let fleet = match file.fleet {
        None => None,
        Some(f) => {
            let command = f
                .command
                .unwrap_or_else(|| FLEET_COMMAND.map(String::from).to_vec());
            if command.first().is_none_or(|p| p.trim().is_empty()) {
                return invalid(
                    "fleet.command must name a program, e.g. [openclaw, fleet, list, --json]"
                        .into(),
                );
            }
            let interval = f.interval.unwrap_or(FLEET_INTERVAL);
            let timeout = f.timeout.unwrap_or(FLEET_TIMEOUT.min(interval));
            if timeout > interval {
                return invalid(format!(
                    "fleet.timeout ({timeout:?}) must not be longer than fleet.interval ({interval:?})"
                ));
            }
            if f.gateway_port == Some(0) {
                return invalid("fleet.gateway_port must be 1-65535".into());
            }
            Some(Fleet {
                command,
                interval,
                timeout,
                state_dir: f.state_dir.unwrap_or_else(super::default_state_dir),
                gateway_port: f.gateway_port.unwrap_or(FLEET_GATEWAY_PORT),
            })
        }
    };
    let file_sd = match file.file_sd {
        None => None,
        Some(f) => {
            if f.files.is_empty() {
                return invalid("file_sd.files must list at least one file".into());
            }
            if let Some(p) = f.files.iter().find(|p| p.as_os_str().is_empty()) {
                return invalid(format!("file_sd.files: empty path {p:?}"));
            }
            Some(FileSd {
                files: f.files,
                refresh_interval: f.refresh_interval.unwrap_or(FILE_SD_REFRESH),
            })
        }
    };
    Ok(Discovery { fleet, file_sd })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_file;

    fn parsed(text: &str) -> Result<Discovery, String> {
        let f = parse_file("c.yml", text).map_err(|e| e.to_string())?;
        discovery(f.discovery).map_err(|e| e.to_string())
    }

    #[test]
    fn off_unless_given() {
        assert!(!parsed("").unwrap().is_on());
        assert!(!parsed("discovery: {}\n").unwrap().is_on());
    }

    #[test]
    fn defaults() {
        let d = parsed("discovery:\n  fleet: {}\n").unwrap();
        let f = d.fleet.unwrap();
        assert_eq!(f.command, ["openclaw", "fleet", "list", "--json"]);
        assert_eq!((f.interval, f.timeout), (FLEET_INTERVAL, FLEET_TIMEOUT));
        let d =
            parsed("discovery:\n  fleet: {interval: 5s}\n  file_sd: {files: [a.yml]}\n").unwrap();
        assert_eq!(d.fleet.unwrap().timeout, Duration::from_secs(5));
        assert_eq!(d.file_sd.unwrap().refresh_interval, FILE_SD_REFRESH);
    }

    #[test]
    fn clear_errors() {
        for (text, want) in [
            (
                "discovery:\n  flet: {}\n",
                "c.yml:2:3: discovery: unknown field `flet`",
            ),
            (
                "discovery:\n  fleet: {comand: [x]}\n",
                "unknown field `comand`",
            ),
            (
                "discovery:\n  fleet: {command: []}\n",
                "must name a program",
            ),
            (
                "discovery:\n  fleet: {command: ['']}\n",
                "must name a program",
            ),
            ("discovery:\n  fleet: {interval: 0s}\n", "greater than zero"),
            (
                "discovery:\n  fleet: {interval: 10s, timeout: 20s}\n",
                "must not be longer than fleet.interval",
            ),
            ("discovery:\n  file_sd: {}\n", "at least one file"),
            ("discovery:\n  file_sd: {files: ['']}\n", "empty path"),
            (
                "discovery:\n  file_sd: {files: [a], refresh_interval: soon}\n",
                "invalid duration",
            ),
        ] {
            let err = parsed(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
