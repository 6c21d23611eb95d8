//! The gateway's lock files: `<state dir>/tmp/openclaw-<uid>/gateway.*.lock`.
//!
//! Each holds JSON such as `{"pid":1,"port":18789,"startTime":123,...}` and
//! trailing whitespace. Lock files are untrusted input: size is capped,
//! symlinks are not followed, and any malformed content is an error value.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Lock files are a few hundred bytes; anything larger is not one.
pub const MAX_LOCK_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lock {
    pub pid: u32,
    #[serde(default)]
    pub port: Option<u16>,
    /// Clock ticks after boot, as field 22 of `/proc/<pid>/stat`.
    #[serde(rename = "startTime", default)]
    pub start_time: Option<u64>,
    #[serde(rename = "createdAt", default)]
    pub created_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    #[error("{path}: larger than {MAX_LOCK_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: invalid lock: {reason}")]
    Invalid { path: String, reason: String },
}

/// Parse a lock file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Lock, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    let lock: Lock = serde_json::from_value(value).map_err(|e| e.to_string())?;
    if lock.pid == 0 || lock.pid > i32::MAX as u32 {
        return Err(format!("pid {} out of range", lock.pid));
    }
    Ok(lock)
}

/// Read and parse one lock file without following symlinks.
pub fn read(path: &Path) -> Result<Lock, LockError> {
    let shown = || path.display().to_string();
    let meta = std::fs::symlink_metadata(path).map_err(|source| LockError::Io {
        path: shown(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(LockError::NotAFile { path: shown() });
    }
    if meta.len() > MAX_LOCK_BYTES {
        return Err(LockError::TooLarge { path: shown() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    open_regular(path, false)
        .and_then(|f| f.take(MAX_LOCK_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| LockError::Io {
            path: shown(),
            source,
        })?;
    if bytes.len() as u64 > MAX_LOCK_BYTES {
        return Err(LockError::TooLarge { path: shown() });
    }
    parse(&bytes).map_err(|reason| LockError::Invalid {
        path: shown(),
        reason,
    })
}

pub use crate::platform::file::open_regular;

/// Every `gateway.*.lock` under `<state_dir>/tmp/openclaw-*/`, sorted. The
/// uid in the folder name is not assumed: the exporter may run as another user.
pub fn find(state_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs(state_dir) {
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for file in files.flatten() {
            let n = file.file_name();
            let n = n.to_string_lossy();
            if n.starts_with("gateway.") && n.ends_with(".lock") {
                out.push(file.path());
            }
        }
    }
    out.sort();
    out
}

/// The lock folders: `<state_dir>/tmp/openclaw-*/`.
pub fn dirs(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("tmp")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("openclaw-"))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_shape_with_trailing_whitespace() {
        let text = b"{\"pid\":4242,\"port\":18789,\"startTime\":987654,\"configPath\":\"/h/.openclaw/openclaw.json\",\"createdAt\":\"2026-11-24T08:00:00.000Z\"}\n  \n";
        let lock = parse(text).unwrap();
        assert_eq!(lock.pid, 4242);
        assert_eq!(lock.port, Some(18789));
        assert_eq!(lock.start_time, Some(987654));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"\x00\xff\xfe",
            b"{}",
            b"{\"pid\":\"12\"}",
            b"{\"pid\":-1}",
            b"{\"pid\":0}",
            b"{\"pid\":1.5}",
            b"{\"pid\":4294967295}",
            b"[1,2]",
            b"{\"pid\":1,\"startTime\":NaN}",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
