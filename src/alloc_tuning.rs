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

/// Blocks of this size and more are mapped on their own and unmapped when
/// freed: the scrape's render buffer (about 16 KiB per gateway) and the
/// buffers of large answers. glibc's default threshold moves up to the
/// largest such block freed (up to 32 MiB), after which every later render
/// is carved from the heap and its pages stay resident until the next trim;
/// setting it fixes it here. The trim threshold, the free memory at the top
/// of a heap kept before giving it back, is fixed to the same.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// At most two malloc arenas, and big blocks mapped on their own
/// (at `MMAP_THRESHOLD` and more). Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // the runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
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
