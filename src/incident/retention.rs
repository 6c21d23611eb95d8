//! Retention: the newest snapshots are kept while both the count and the
//! total size stay within their caps; older ones are removed. Only folders
//! named as snapshots are ever touched ([`is_snapshot_name`]).

use std::path::{Path, PathBuf};

/// Whether `name` is a snapshot folder's: `YYYYMMDDTHHMMSS.mmmZ-...`.
pub fn is_snapshot_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 20
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..19].iter().all(u8::is_ascii_digit)
        && b[19] == b'Z'
        && b[20] == b'-'
}

/// Bytes of the files in `dir` (snapshots hold no subfolders).
pub fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The snapshot folders in `dir`, newest first, with their sizes.
pub fn list(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            is_snapshot_name(&name).then(|| (name, e.path()))
        })
        .collect();
    // The names start with the time: they sort by it.
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found
        .into_iter()
        .map(|(_, p)| {
            let bytes = folder_bytes(&p);
            (p, bytes)
        })
        .collect()
}

/// Which of `snapshots` (newest first) to remove: the newest is always
/// kept; after it, each is kept while at most `max_count` are kept and
/// their total stays within `max_bytes`.
pub fn to_remove(snapshots: &[(PathBuf, u64)], max_count: usize, max_bytes: u64) -> Vec<PathBuf> {
    let mut kept = 0usize;
    let mut total = 0u64;
    let mut out = Vec::new();
    for (i, (path, bytes)) in snapshots.iter().enumerate() {
        let fits = kept < max_count.max(1) && total.saturating_add(*bytes) <= max_bytes;
        if i == 0 || fits {
            kept += 1;
            total = total.saturating_add(*bytes);
        } else {
            out.push(path.clone());
        }
    }
    out
}

/// Apply retention to `dir`. Returns the folders removed, and errors as
/// text.
pub fn prune(dir: &Path, max_count: usize, max_bytes: u64) -> (Vec<PathBuf>, Vec<String>) {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for path in to_remove(&list(dir), max_count, max_bytes) {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => errors.push(format!("removing {}: {e}", path.display())),
        }
    }
    (removed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        assert!(is_snapshot_name("20261129T140512.123Z-main-hung"));
        for not in [
            "20261129T140512.123Z",
            "notes",
            "2026-11-29-main",
            "20261129X140512.123Z-main-hung",
        ] {
            assert!(!is_snapshot_name(not), "{not}");
        }
    }

    #[test]
    fn keeps_the_newest_within_count_and_size() {
        let s = |n: &str, b: u64| (PathBuf::from(n), b);
        let snaps = [s("e", 10), s("d", 10), s("c", 10), s("b", 10), s("a", 10)];
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter().map(|p| p.display().to_string()).collect()
        };
        // By count.
        assert_eq!(names(to_remove(&snaps, 3, 1000)), ["b", "a"]);
        // By size: 25 bytes hold two of 10.
        assert_eq!(names(to_remove(&snaps, 100, 25)), ["c", "b", "a"]);
        // The newest stays even alone over the cap, and with a count of 0.
        assert_eq!(to_remove(&snaps[..1], 0, 1), Vec::<PathBuf>::new());
        assert_eq!(
            names(to_remove(&[s("big", 100), s("old", 1)], 5, 50)),
            ["old"]
        );
    }

    #[test]
    fn prune_touches_only_snapshot_folders() {
        let dir = std::env::temp_dir().join(format!("ocgx-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, bytes) in [
            ("20260101T000000.000Z-g-hung", 100),
            ("20260102T000000.000Z-g-hung", 100),
            ("20260103T000000.000Z-g-manual", 100),
            ("keep-me", 100),
        ] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("f"), vec![b'x'; bytes]).unwrap();
        }
        let (removed, errors) = prune(&dir, 2, 10_000);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(removed, [dir.join("20260101T000000.000Z-g-hung")]);
        let (removed, _) = prune(&dir, 10, 150);
        assert_eq!(removed, [dir.join("20260102T000000.000Z-g-hung")]);
        assert!(dir.join("keep-me").is_dir());
        assert!(dir.join("20260103T000000.000Z-g-manual").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
