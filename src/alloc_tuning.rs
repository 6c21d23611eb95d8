//! glibc's allocator, tuned for a small long-running server. By default it
//! gives every thread that meets contention an arena of its own (up to 8 per
//! core) and keeps the freed pages of each, so RSS creeps up for hours while
//! the live heap stays under 1 MB (measured with heaptrack over a soak). Two
//! arenas are enough for a handful of threads, and a trim once a minute
//! hands freed pages back to the kernel. Elsewhere (musl, macOS, Windows)
//! both are no-ops.
//!
//! Part of the binary (`mod alloc_tuning` in main.rs), not the library: the
//! library forbids `unsafe`, and these two calls are the exporter's only
//! unsafe code.

use std::time::Duration;

/// How often [`trim`] runs.
pub const TRIM_EVERY: Duration = Duration::from_secs(60);

/// At most two malloc arenas. Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // the runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Hand the allocator's free pages back to the kernel.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
