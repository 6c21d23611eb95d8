//! Whether a file changed since it was last read, without reading it. Moved
//! to [`crate::platform::file`]; kept for the old paths.

pub use crate::platform::file::Stamp;

/// The stamp of a file's metadata: [`crate::platform::file::stamp`].
pub fn of(m: &std::fs::Metadata) -> Stamp {
    crate::platform::file::stamp(m)
}
