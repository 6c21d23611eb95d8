//! `incident:`: where incident snapshots go and how many are kept
//! ([`crate::incident`]).

use std::path::PathBuf;

use serde::Deserialize;

use super::paths::exporter_state_dir;
use super::ConfigError;

/// `incident:` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentFile {
    pub dir: Option<PathBuf>,
    pub max_count: Option<usize>,
    /// The total size of the kept snapshots, e.g. `100MiB`.
    pub max_size: Option<String>,
    /// Take one on every transition of a gateway to hung.
    pub on_hung: Option<bool>,
}

/// Incident snapshot settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub dir: PathBuf,
    /// Snapshots kept at most (the newest is always kept).
    pub max_count: usize,
    /// Total bytes of the kept snapshots at most (the newest is always kept).
    pub max_bytes: u64,
    pub on_hung: bool,
}

pub const DEFAULT_MAX_COUNT: usize = 20;
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// The default `incident.dir`: `incidents` in the exporter's state dir
/// ([`super::paths::exporter_state_dir_with`]).
pub fn default_incident_dir() -> PathBuf {
    exporter_state_dir().join("incidents")
}

impl Default for Incident {
    fn default() -> Self {
        Incident {
            dir: default_incident_dir(),
            max_count: DEFAULT_MAX_COUNT,
            max_bytes: DEFAULT_MAX_BYTES,
            on_hung: true,
        }
    }
}

/// Validate `incident:`; `dir_flag` (`--incident.dir`) wins over the file.
pub fn incident(file: IncidentFile, dir_flag: Option<PathBuf>) -> Result<Incident, ConfigError> {
    let invalid = |m: String| ConfigError::Invalid(format!("incident: {m}"));
    let max_count = file.max_count.unwrap_or(DEFAULT_MAX_COUNT);
    if max_count == 0 {
        return Err(invalid("max_count must be at least 1".into()));
    }
    let max_bytes = match &file.max_size {
        Some(s) => {
            crate::memory_limit::parse_size(s).map_err(|e| invalid(format!("max_size: {e}")))?
        }
        None => DEFAULT_MAX_BYTES,
    };
    if max_bytes == 0 {
        return Err(invalid("max_size must be greater than zero".into()));
    }
    let dir = dir_flag.or(file.dir).unwrap_or_else(default_incident_dir);
    if dir.as_os_str().is_empty() {
        return Err(invalid("dir must not be empty".into()));
    }
    Ok(Incident {
        dir,
        max_count,
        max_bytes,
        on_hung: file.on_hung.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Incident, ConfigError> {
        let file: IncidentFile =
            serde_yaml::from_str(yaml).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        incident(file, None)
    }

    #[test]
    fn incident_settings() {
        let i = parse("dir: /x\nmax_count: 3\nmax_size: 1MiB\non_hung: false\n").unwrap();
        assert_eq!(
            i,
            Incident {
                dir: "/x".into(),
                max_count: 3,
                max_bytes: 1 << 20,
                on_hung: false
            }
        );
        assert_eq!(parse("{}").unwrap().max_count, DEFAULT_MAX_COUNT);
        assert!(parse("{}").unwrap().dir.ends_with("incidents"));
        for bad in [
            "max_count: 0",
            "max_size: nope",
            "max_size: 0",
            "dir: ''",
            "color: red",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let flag = incident(IncidentFile::default(), Some("/flag".into())).unwrap();
        assert_eq!(flag.dir, PathBuf::from("/flag"));
    }
}
