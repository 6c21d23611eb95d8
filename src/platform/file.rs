//! File identity, stamps and a non-blocking open, for the log follower, the
//! lock and pid files and the token file. Decided at compile time: one body
//! per OS family, no trait.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::FileId;

/// A file's metadata that changes when it is created, replaced or written:
/// inode, mtime, ctime (both with nanoseconds) and size.
pub type Stamp = (u64, i64, i64, i64, i64, u64);

#[cfg(unix)]
mod imp {
    use super::{FileId, Path, Stamp};
    use std::os::unix::fs::MetadataExt;

    fn id(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    pub fn file_id(f: &std::fs::File) -> std::io::Result<FileId> {
        f.metadata().map(|m| id(&m))
    }

    pub fn path_id(path: &Path) -> std::io::Result<FileId> {
        std::fs::metadata(path).map(|m| id(&m))
    }

    /// When the file last changed: its ctime.
    pub fn changed(m: &std::fs::Metadata) -> Option<std::time::SystemTime> {
        let since = std::time::Duration::new(
            u64::try_from(m.ctime()).ok()?,
            u32::try_from(m.ctime_nsec()).ok()?,
        );
        std::time::UNIX_EPOCH.checked_add(since)
    }

    pub fn stamp(m: &std::fs::Metadata) -> Stamp {
        (
            m.ino(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.size(),
        )
    }

    pub fn open(path: &Path, follow: bool) -> std::io::Result<std::fs::File> {
        use rustix::fs::OFlags;
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = OFlags::NONBLOCK;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
    }
}

/// Windows: the identity is the volume serial number and file index
/// (`GetFileInformationByHandle`; std's are unstable). The stamp has the
/// creation time for an inode and no ctime: it is taken from metadata alone.
/// A FIFO cannot block an open there, and a symlink is refused after the
/// fact.
#[cfg(windows)]
mod imp {
    use super::{FileId, Path, Stamp};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn nanos(t: std::io::Result<SystemTime>) -> u128 {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    }

    pub fn file_id(f: &std::fs::File) -> std::io::Result<FileId> {
        let (dev, ino) = crate::platform::windows::win32::file_id(f)?;
        Ok(FileId { dev, ino })
    }

    /// Opened for reading, sharing everything (std's default), so that the
    /// writer can still rename or delete it. (Not a folder: with
    /// FILE_FLAG_BACKUP_SEMANTICS, Wine gives the volume serial number as 0.)
    pub fn path_id(path: &Path) -> std::io::Result<FileId> {
        let f = std::fs::File::open(path)?;
        file_id(&f)
    }

    /// When the file last changed: its mtime (no ctime here).
    pub fn changed(m: &std::fs::Metadata) -> Option<SystemTime> {
        m.modified().ok()
    }

    pub fn stamp(m: &std::fs::Metadata) -> Stamp {
        let created = nanos(m.created());
        let modified = nanos(m.modified());
        (
            created as u64,
            (modified / 1_000_000_000) as i64,
            (modified % 1_000_000_000) as i64,
            0,
            0,
            m.len(),
        )
    }

    pub fn open(path: &Path, follow: bool) -> std::io::Result<std::fs::File> {
        if !follow && std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(std::io::Error::other("a symlink"));
        }
        std::fs::File::open(path)
    }
}

/// The identity of an open file.
pub fn file_id(f: &std::fs::File) -> std::io::Result<FileId> {
    imp::file_id(f)
}

/// The identity of the file at `path`, symlinks followed.
pub fn path_id(path: &Path) -> std::io::Result<FileId> {
    imp::path_id(path)
}

/// The stamp of a file's metadata. The caller chooses whether that follows
/// symlinks (`std::fs::metadata`) or not (`std::fs::symlink_metadata`).
pub fn stamp(m: &std::fs::Metadata) -> Stamp {
    imp::stamp(m)
}

/// Open a file for reading without ever blocking: a FIFO put where a lock,
/// pid or token file belongs would block a plain `open` until a writer came.
/// Refuses anything but a regular file, and a symlink unless `follow`.
pub fn open_regular(path: &Path, follow: bool) -> std::io::Result<std::fs::File> {
    let file = imp::open(path, follow)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// How long before a listing or a read of a folder or file its last change
/// must be for that read to be reused: file times are coarse (a clock tick),
/// so a change in the same tick as the read leaves them as they were. A
/// read taken longer than this after the last change is reused until the
/// metadata changes; one taken sooner is taken again ("racy" timestamps, as
/// git's index handles them).
pub const SETTLED: Duration = Duration::from_secs(2);

/// Whether what was read of a file or folder at `read_at`, when its metadata
/// was `meta`, still holds while the metadata stays the same: its last change
/// was [`SETTLED`] before the read. On Unix the change time (ctime), which
/// every change sets to now, a backdated mtime too; elsewhere the mtime.
pub fn settled(meta: &std::fs::Metadata, read_at: SystemTime) -> bool {
    imp::changed(meta).is_some_and(|c| c + SETTLED <= read_at)
}

/// What was read of files or folders, by path, each with the stamp the file
/// had then: reused while the stamp stays the same, kept only once the file
/// had [`settled`], dropped when not asked for in [`ByStamp::UNUSED`] (a
/// gateway that went away leaves nothing behind).
pub struct ByStamp<V>(Mutex<Option<Stamped<V>>>);

/// By path: the stamp, what was read, when it was last asked for.
type Stamped<V> = HashMap<PathBuf, (Stamp, V, Instant)>;

impl<V: Clone> Default for ByStamp<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> ByStamp<V> {
    const UNUSED: Duration = Duration::from_secs(600);

    pub const fn new() -> Self {
        ByStamp(Mutex::new(None))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, Option<Stamped<V>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was read of `path` when it had `stamp`.
    pub fn get(&self, path: &Path, stamp: Stamp) -> Option<V> {
        let mut map = self.map();
        let (s, v, used) = map.as_mut()?.get_mut(path)?;
        (*s == stamp).then(|| {
            *used = Instant::now();
            v.clone()
        })
    }

    /// Keep `v`, read of `path` from `read_at` on, when its metadata was
    /// `meta`, if the file had settled then.
    pub fn put(&self, path: &Path, meta: &std::fs::Metadata, read_at: SystemTime, v: V) {
        let mut map = self.map();
        let map = map.get_or_insert_with(HashMap::new);
        map.retain(|_, (_, _, used)| used.elapsed() < Self::UNUSED);
        if settled(meta, read_at) {
            map.insert(path.to_path_buf(), (stamp(meta), v, Instant::now()));
        } else {
            map.remove(path);
        }
    }
}

/// The names in the folder `dir`, listed now.
fn list(dir: &Path) -> std::io::Result<Arc<[OsString]>> {
    Ok(std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name())
        .collect())
}

/// The names in the folder `dir` (symlinks followed, as `read_dir`). On
/// Unix a listing is reused while the folder's stamp stays the same and it
/// had [`settled`]: creating, removing or renaming an entry changes the
/// folder's mtime and ctime. So the lock and log folders of many gateways
/// cost one `statx` a round each, not an open, two `getdents` and a close.
/// Elsewhere (NTFS may update a folder's times lazily) it is listed every
/// time.
pub fn names(dir: &Path) -> std::io::Result<Arc<[OsString]>> {
    if !cfg!(unix) {
        return list(dir);
    }
    names_of(dir, &std::fs::metadata(dir)?)
}

/// [`names`] of the folder `dir`, whose metadata (symlinks followed) is
/// `meta`.
pub fn names_of(dir: &Path, meta: &std::fs::Metadata) -> std::io::Result<Arc<[OsString]>> {
    static LISTINGS: ByStamp<Arc<[OsString]>> = ByStamp::new();
    if !cfg!(unix) {
        return list(dir);
    }
    if let Some(names) = LISTINGS.get(dir, stamp(meta)) {
        return Ok(names);
    }
    let read_at = SystemTime::now();
    let names = list(dir)?;
    LISTINGS.put(dir, meta, read_at, names.clone());
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file keeps its identity through a rename, open or not; a new file
    /// under the old name has another, even one made at once (NTFS carries a
    /// deleted name's creation time over to its successor: no identity).
    #[test]
    fn identity_follows_a_rename() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.log"), d.path().join("b.log"));
        std::fs::write(&a, "1").unwrap();
        let open = std::fs::File::open(&a).unwrap();
        let id = file_id(&open).unwrap();
        assert_eq!(path_id(&a).unwrap(), id);
        std::fs::rename(&a, &b).unwrap();
        assert_eq!(path_id(&b).unwrap(), id);
        let held = file_id(&open).unwrap();
        // Wine loses the volume of an open file renamed (serial number 0).
        if !crate::platform::under_wine() {
            assert_eq!(held, id);
        }
        assert_eq!(held.ino, id.ino);
        std::fs::write(&a, "2").unwrap();
        assert_ne!(path_id(&a).unwrap(), id);
        assert!(path_id(&d.path().join("none")).is_err());
    }

    /// Past the coarse clock tick of file times.
    #[cfg(unix)]
    fn next_tick() {
        std::thread::sleep(Duration::from_millis(50));
    }

    /// A folder's listing is reused only while the folder stays as it was
    /// and had settled; an entry that comes or goes is seen at the next
    /// listing, however soon.
    #[cfg(unix)]
    #[test]
    fn a_listing_is_reused_until_the_folder_changes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("locks");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a"), "").unwrap();
        let sorted = |names: &Arc<[OsString]>| {
            let mut v: Vec<String> = names.iter().map(|n| n.to_string_lossy().into()).collect();
            v.sort();
            v
        };
        // Just changed: listed every time.
        let first = names(&dir).unwrap();
        assert!(!Arc::ptr_eq(&first, &names(&dir).unwrap()));
        // Settled: the same listing again, until an entry comes.
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        let settled = names(&dir).unwrap();
        assert_eq!(sorted(&settled), ["a"]);
        assert!(Arc::ptr_eq(&settled, &names(&dir).unwrap()));
        std::fs::write(dir.join("b"), "").unwrap();
        assert_eq!(sorted(&names(&dir).unwrap()), ["a", "b"]);
        next_tick();
        std::fs::remove_file(dir.join("a")).unwrap();
        assert_eq!(sorted(&names(&dir).unwrap()), ["b"]);
        // A folder given back its old times still changed (its ctime).
        next_tick();
        let before = std::fs::metadata(&dir).unwrap().modified().unwrap();
        std::fs::write(dir.join("c"), "").unwrap();
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(before)
            .unwrap();
        assert_eq!(sorted(&names(&dir).unwrap()), ["b", "c"]);
        assert!(names(&d.path().join("none")).is_err());
    }
}
