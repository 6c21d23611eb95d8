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

    pub fn id(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
        }
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

/// Until a Windows body reads the volume serial number and file index
/// (`GetFileInformationByHandle`; std's are unstable), the identity is the
/// creation time and the stamp has no inode or ctime. A FIFO cannot block an
/// open there, and a symlink is refused after the fact.
#[cfg(not(unix))]
mod imp {
    use super::{FileId, Path, Stamp};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn nanos(t: std::io::Result<SystemTime>) -> u128 {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    }

    pub fn id(m: &std::fs::Metadata) -> FileId {
        let created = nanos(m.created());
        FileId {
            dev: (created >> 64) as u64,
            ino: created as u64,
        }
    }

    pub fn stamp(m: &std::fs::Metadata) -> Stamp {
        let modified = nanos(m.modified());
        (
            id(m).ino,
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

/// The identity of a file, from its metadata.
pub fn id(m: &std::fs::Metadata) -> FileId {
    imp::id(m)
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
