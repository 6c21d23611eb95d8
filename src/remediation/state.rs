//! The watchdog's state file: per gateway, the times of its recent restarts
//! (so that the budget survives an exporter restart) and a short history of
//! remediations (which `diagnose` lists). Small JSON, written atomically:
//! a temporary file beside it, flushed, then renamed over it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::budget::Time;

/// Remediations kept per gateway in the history.
pub const HISTORY: usize = 20;

/// The largest state file read; anything larger is not ours.
pub const MAX_BYTES: u64 = 1 << 20;

const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub gateways: BTreeMap<String, GatewayState>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayState {
    /// Unix seconds of the restarts that spent budget.
    #[serde(default)]
    pub attempts: Vec<f64>,
    /// The newest last.
    #[serde(default)]
    pub history: Vec<Entry>,
}

/// One remediation (or one it would have made, or skipped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Unix seconds when it was decided.
    pub at: f64,
    /// `restart`.
    pub action: String,
    /// `hung` or `down`.
    pub cause: String,
    /// `success`, `failed`, `skipped_budget` or `dry_run`.
    pub result: String,
    /// From the hang (or down) detected to the gateway verified ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<PathBuf>,
    /// Why it failed, or what it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("remediation state file {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("remediation state file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl State {
    /// Read the state file. A missing file is an empty state; a corrupt or
    /// unreadable one is an error (the caller then assumes the budget spent).
    pub fn load(path: &Path) -> Result<State, StateError> {
        use std::io::Read;
        let io = |error| StateError::Io {
            path: path.to_path_buf(),
            error,
        };
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut bytes = Vec::new();
        match std::fs::File::open(path) {
            Ok(f) => f.take(MAX_BYTES + 1).read_to_end(&mut bytes).map_err(io)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::new()),
            Err(e) => return Err(io(e)),
        };
        if bytes.len() as u64 > MAX_BYTES {
            return Err(corrupt(format!("larger than {MAX_BYTES} bytes")));
        }
        let state: State = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if state.version != VERSION {
            return Err(corrupt(format!(
                "version {} (this exporter writes version {VERSION})",
                state.version
            )));
        }
        let bad_time = |t: &f64| !t.is_finite() || *t < 0.0;
        for (name, g) in &state.gateways {
            if g.attempts.iter().any(bad_time) || g.history.iter().any(|e| bad_time(&e.at)) {
                return Err(corrupt(format!(
                    "gateway {name:?}: a time that is not a Unix time"
                )));
            }
        }
        Ok(state)
    }

    pub fn new() -> State {
        State {
            version: VERSION,
            gateways: BTreeMap::new(),
        }
    }

    /// Write the whole state atomically: a reader sees the old file or the
    /// new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        use std::io::Write;
        let io = |error| StateError::Io {
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.sync_all())
            .map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn gateway(&mut self, name: &str) -> &mut GatewayState {
        self.gateways.entry(name.to_string()).or_default()
    }
}

impl GatewayState {
    pub fn attempt_times(&self) -> Vec<Time> {
        self.attempts.iter().map(|&t| from_unix(t)).collect()
    }

    pub fn set_attempts(&mut self, attempts: &[Time]) {
        self.attempts = attempts.iter().map(Duration::as_secs_f64).collect();
    }

    /// Append one remediation, keeping the newest [`HISTORY`].
    pub fn record(&mut self, entry: Entry) {
        self.history.push(entry);
        let excess = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..excess);
    }
}

pub fn from_unix(seconds: f64) -> Time {
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: f64, result: &str) -> Entry {
        Entry {
            at,
            action: "restart".into(),
            cause: "hung".into(),
            result: result.into(),
            recovery_seconds: Some(70.5),
            snapshot: None,
            detail: String::new(),
        }
    }

    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("ocgx-state-{}", std::process::id()));
        let path = dir.join("sub").join("remediation.json");
        assert_eq!(State::load(&path).unwrap(), State::new());
        let mut s = State::new();
        let g = s.gateway("a");
        g.set_attempts(&[Duration::from_secs(1_700_000_000)]);
        g.record(entry(1_700_000_000.0, "success"));
        s.save(&path).unwrap();
        let back = State::load(&path).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            back.gateways["a"].attempt_times(),
            vec![Duration::from_secs(1_700_000_000)]
        );
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let dir = std::env::temp_dir().join(format!("ocgx-state-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("remediation.json");
        for (bad, says) in [
            ("{not json", "corrupt"),
            ("", "corrupt"),
            (r#"{"version":2,"gateways":{}}"#, "version 2"),
            (
                r#"{"version":1,"gateways":{"a":{"attempts":[-5]}}}"#,
                "not a Unix time",
            ),
            (r#"{"version":1,"extra":1}"#, "unknown field"),
            (
                r#"{"version":1,"gateways":{"a":{"attempts":"x"}}}"#,
                "invalid type",
            ),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = State::load(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(err.contains("remediation.json"), "{err}");
        }
        std::fs::write(&path, vec![b' '; MAX_BYTES as usize + 1]).unwrap();
        assert!(State::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn history_keeps_the_newest() {
        let mut g = GatewayState::default();
        for i in 0..HISTORY + 5 {
            g.record(entry(i as f64, "failed"));
        }
        assert_eq!(g.history.len(), HISTORY);
        assert_eq!(g.history[0].at, 5.0);
    }
}
