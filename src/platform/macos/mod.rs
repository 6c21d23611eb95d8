//! The native macOS backend. The portable backend (sysinfo) serves command
//! lines, environments, descendants, memory and host memory; libproc adds
//! what sysinfo does not give for the gateway:
//!
//! - the process list: `proc_listallpids`;
//! - identity and start time: `PROC_PIDTBSDINFO`'s `pbi_start_tvsec`, the
//!   field `ps -o lstart=` prints, from which the gateway writes its lock's
//!   `startTime` in whole Unix seconds (dist/pid-alive-CXdZEzr_.mjs
//!   `getDarwinProcessStartTime`);
//! - vitals: `PROC_PIDTASKALLINFO` (memory, CPU in Mach time units, threads),
//!   `PROC_PIDLISTFDS` (open fds and their types), the fd limit of a gateway
//!   launchd started ([`limits`]);
//! - TCP by state, the listeners and the accept queue, from the gateway's own
//!   socket fds ([`sockets`]);
//! - the exit watch: a kqueue `EVFILT_PROC` `NOTE_EXIT`.
//!
//! Absent on macOS: the host listen counters, the cgroup limit, sockets no
//! process holds (TIME_WAIT).
//!
//! Only the OS calls ([`ffi`]) and [`MacPlatform`] build on macOS alone; the
//! decoding and the decisions build and are tested on every platform.

pub mod decode;
pub mod limits;
pub mod sockets;

#[cfg(target_os = "macos")]
mod backend;
#[cfg(target_os = "macos")]
mod ffi;

#[cfg(target_os = "macos")]
pub use backend::MacPlatform;

/// The title a process shows on macOS: Node's `process.title` is written
/// over the process's argument strings (libuv `uv_set_process_title`), so it
/// is the first argument `ps` and sysinfo read back (`KERN_PROCARGS2`); the
/// process name (`p_comm`, sysinfo's `name()`) stays the executable's, `node`.
/// The name when there are no arguments to read.
pub fn title_of(
    cmdline: Option<Vec<String>>,
    name: impl FnOnce() -> Option<String>,
) -> Option<String> {
    cmdline
        .and_then(|args| args.into_iter().next())
        .filter(|a| !a.is_empty())
        .or_else(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_from_the_first_argument() {
        let args = |a: &[&str]| Some(a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let node = || Some("node".to_string());
        // libuv zeroes the rest of the argument area: empty arguments follow.
        assert_eq!(
            title_of(args(&["openclaw-gateway", "", ""]), node).as_deref(),
            Some("openclaw-gateway")
        );
        assert_eq!(
            title_of(args(&["/usr/local/bin/node", "openclaw.mjs"]), node).as_deref(),
            Some("/usr/local/bin/node")
        );
        // Another user's process: no arguments, its name.
        assert_eq!(title_of(None, node), node());
        assert_eq!(title_of(args(&[]), node), node());
        assert_eq!(title_of(args(&[""]), || None), None);
    }
}
