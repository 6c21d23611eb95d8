//! The gateway's lock files: `<state dir>/tmp/openclaw-<uid>/gateway.*.lock`,
//! or `<state dir>/tmp/openclaw/` where the OS has no uid (Windows): the
//! gateway's `resolveGatewayLockDir` (dist/paths-DehQwyE0.mjs;
//! docs/gateway/gateway-lock.md).
//!
//! Each holds JSON such as `{"pid":1,"port":18789,"startTime":123,...}` and
//! trailing whitespace. Lock files are untrusted input: size is capped,
//! symlinks are not followed, and any malformed content is an error value.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::os::Os;

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

/// Every `gateway.*.lock` in the lock folders ([`dirs`]), sorted. The uid in
/// the folder name is not assumed: the exporter may run as another user.
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

/// The lock folders: `<state_dir>/tmp/openclaw-*/` and, from a gateway on
/// an OS without uids, `<state_dir>/tmp/openclaw/`; sorted.
pub fn dirs(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("tmp")) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| is_lock_dir_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// `openclaw-<anything>` or `openclaw`.
fn is_lock_dir_name(name: &str) -> bool {
    name == "openclaw" || name.starts_with("openclaw-")
}

/// The lock folders as a person would look for them on `os`, for messages
/// and advice: `<state_dir>/tmp/openclaw-*` (any uid), or
/// `<state_dir>\tmp\openclaw` on Windows.
pub fn dir_pattern(os: Os, state_dir: &Path) -> String {
    let leaf = match os {
        Os::Windows => "openclaw",
        Os::Linux | Os::Macos => "openclaw-*",
    };
    os.join(&state_dir.display().to_string(), &["tmp", leaf])
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
    fn lock_dirs_with_and_without_a_uid() {
        let state = tempfile::tempdir().unwrap();
        let tmp = state.path().join("tmp");
        for dir in [
            "openclaw-501",
            "openclaw",
            "openclaw-0",
            "other",
            "openclawx",
        ] {
            std::fs::create_dir_all(tmp.join(dir)).unwrap();
            std::fs::write(tmp.join(dir).join("gateway.a1b2c3d4.lock"), "{}").unwrap();
        }
        std::fs::write(tmp.join("openclaw").join("gateway.state.lock"), "{}").unwrap();
        std::fs::write(tmp.join("openclaw").join("notes.txt"), "").unwrap();
        let names = |paths: Vec<PathBuf>| -> Vec<String> {
            paths
                .iter()
                .map(|p| {
                    let rel = p.strip_prefix(&tmp).unwrap();
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect()
        };
        assert_eq!(
            names(dirs(state.path())),
            ["openclaw", "openclaw-0", "openclaw-501"]
        );
        assert_eq!(
            names(find(state.path())),
            [
                "openclaw/gateway.a1b2c3d4.lock",
                "openclaw/gateway.state.lock",
                "openclaw-0/gateway.a1b2c3d4.lock",
                "openclaw-501/gateway.a1b2c3d4.lock",
            ]
        );
        assert!(dirs(&state.path().join("missing")).is_empty());
    }

    #[test]
    fn lock_dir_pattern_per_os() {
        assert_eq!(
            dir_pattern(Os::Linux, Path::new("/home/a/.openclaw")),
            "/home/a/.openclaw/tmp/openclaw-*"
        );
        assert_eq!(
            dir_pattern(Os::Macos, Path::new("/Users/a/.openclaw")),
            "/Users/a/.openclaw/tmp/openclaw-*"
        );
        assert_eq!(
            dir_pattern(Os::Windows, Path::new(r"C:\Users\a\.openclaw")),
            r"C:\Users\a\.openclaw\tmp\openclaw"
        );
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
