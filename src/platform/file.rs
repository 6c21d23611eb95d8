//! File identity, stamps and a non-blocking open, for the log follower, the
//! lock and pid files and the token file. Decided at compile time: one body
//! per OS family, no trait.

use std::path::Path;

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
}
