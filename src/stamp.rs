//! Whether a file changed since it was last read, without reading it.

use std::os::unix::fs::MetadataExt;

/// A file's metadata that changes when it is created, replaced or written:
/// inode, mtime, ctime (both with nanoseconds) and size.
pub type Stamp = (u64, i64, i64, i64, i64, u64);

/// The stamp of a file's metadata. The caller chooses whether that follows
/// symlinks (`std::fs::metadata`) or not (`std::fs::symlink_metadata`).
pub fn of(m: &std::fs::Metadata) -> Stamp {
    (
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.size(),
    )
}
