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
use crate::platform::file;

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
    let meta = std::fs::symlink_metadata(path).map_err(|source| LockError::Io {
        path: path.display().to_string(),
        source,
    })?;
    read_regular(path, &meta)
}

/// One lock file, as [`read`], and when it was last modified (Unix seconds),
/// from one `statx` of it while it stays as it was: the gateway writes its
/// lock once, at start (a new file each time), and every gateway's discovery
/// reads its locks every round. A lock read while it was being written is
/// read again ([`file::ByStamp`]).
pub fn read_with_modified(path: &Path) -> (Result<Lock, LockError>, Option<f64>) {
    static LOCKS: file::ByStamp<Lock> = file::ByStamp::new();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(source) => {
            let path = path.display().to_string();
            return (Err(LockError::Io { path, source }), None);
        }
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    if let Some(lock) = LOCKS.get(path, file::stamp(&meta)) {
        return (Ok(lock), modified);
    }
    let read_at = std::time::SystemTime::now();
    let lock = read_regular(path, &meta);
    if let Ok(lock) = &lock {
        LOCKS.put(path, &meta, read_at, lock.clone());
    }
    (lock, modified)
}

/// Read and parse the lock file at `path`, whose metadata (symlinks not
/// followed) is `meta`.
fn read_regular(path: &Path, meta: &std::fs::Metadata) -> Result<Lock, LockError> {
    let shown = || path.display().to_string();
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
        let Ok(files) = file::names(&dir) else {
            continue;
        };
        for n in files.iter() {
            let s = n.to_string_lossy();
            if s.starts_with("gateway.") && s.ends_with(".lock") {
                out.push(dir.join(n));
            }
        }
    }
    out.sort();
    out
}

/// The lock folders: `<state_dir>/tmp/openclaw-*/` and, from a gateway on
/// an OS without uids, `<state_dir>/tmp/openclaw/`; sorted.
pub fn dirs(state_dir: &Path) -> Vec<PathBuf> {
    let tmp = state_dir.join("tmp");
    let Ok(names) = file::names(&tmp) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = names
        .iter()
        .filter(|n| is_lock_dir_name(&n.to_string_lossy()))
        .map(|n| tmp.join(n))
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

    /// A lock read once is read again when it is rewritten, even in place
    /// with the same size and its old mtime given back (a lock taken over).
    #[cfg(unix)]
    #[test]
    fn a_rewritten_lock_is_read_again() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("gateway.a1b2c3d4.lock");
        let write = |pid: u32, mtime: Option<std::time::SystemTime>| {
            std::fs::write(&path, format!("{{\"pid\":{pid},\"port\":18789}}")).unwrap();
            if let Some(t) = mtime {
                std::fs::File::open(&path).unwrap().set_modified(t).unwrap();
            }
        };
        let pid = || read_with_modified(&path).0.map(|l| l.pid).ok();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        write(1, Some(old));
        assert_eq!(pid(), Some(1));
        // Settled: kept, and still right.
        std::thread::sleep(file::SETTLED + std::time::Duration::from_millis(100));
        assert_eq!(pid(), Some(1));
        assert_eq!(pid(), Some(1));
        write(2, Some(old));
        assert_eq!(pid(), Some(2));
        let modified = read_with_modified(&path).1.unwrap();
        assert!(
            (modified
                - old
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64())
            .abs()
                < 1.0
        );
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            read_with_modified(&path).0,
            Err(LockError::Invalid { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            read_with_modified(&path),
            (Err(LockError::Io { .. }), None)
        ));
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
