//! The one way the exporter reaches the operating system.
//!
//! Collectors, discovery and the commands read processes, sockets, the memory
//! limit and exits through a [`Platform`], never through `/proc` or a `cfg`.
//! Each backend lives in its own module behind `cfg` (as sysinfo's
//! `src/unix/linux` or node_exporter's `meminfo_linux.go`): `linux` (procfs,
//! netlink sock_diag, pidfd), `windows` (Win32 beside sysinfo), `macos`
//! (libproc beside sysinfo), and `portable` (sysinfo and the TCP table), the
//! base of the last two.
//! What a backend cannot read is `None` in the types below or `false` in its
//! [`Caps`], and the series it feeds is absent, never zero.
//!
//! Every method may block (it reads the OS): call it from `spawn_blocking` or
//! a blocking sampler. A process can vanish between any two calls; callers
//! get an error or `None`, never a panic.

use std::collections::HashSet;
use std::sync::Arc;

#[doc(hidden)]
pub mod fake;
pub mod file;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod macos;
pub mod portable;
#[cfg(windows)]
pub mod windows;

pub use crate::memory_limit::Limit;
pub use crate::tcp::Tally;

/// A process id as the OS numbers it (the lock file's `pid`).
pub type Pid = i32;

/// A process as it was when it started: the pid alone can be reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    pub pid: Pid,
    /// When the process started, in the unit its platform keeps and the
    /// gateway writes to its lock's `startTime` on that OS (Linux: clock
    /// ticks after boot, field 22 of `/proc/<pid>/stat`; Windows: Unix
    /// milliseconds of the creation time). Only compared for
    /// equality and order, and through [`Platform::lock_start_matches`].
    pub start: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("process {0} does not exist")]
    Gone(Pid),
    #[error("permission denied reading {what} of process {pid}")]
    Denied { pid: Pid, what: &'static str },
    #[error("reading {what} of process {pid}: {reason}")]
    Other {
        pid: Pid,
        what: &'static str,
        reason: String,
    },
}

impl ProcError {
    /// Sort an I/O error on a read of `what` of `pid`.
    pub fn from_io(pid: Pid, what: &'static str, e: std::io::Error) -> ProcError {
        match e.kind() {
            std::io::ErrorKind::NotFound => ProcError::Gone(pid),
            std::io::ErrorKind::PermissionDenied => ProcError::Denied { pid, what },
            _ => ProcError::Other {
                pid,
                what,
                reason: e.to_string(),
            },
        }
    }
}

impl ProcError {
    /// A read this OS's backend does not have.
    pub fn unavailable(pid: Pid, what: &'static str) -> ProcError {
        ProcError::Other {
            pid,
            what,
            reason: "not available on this OS".to_string(),
        }
    }
}

/// One thread of a process, for an incident snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    pub tid: Pid,
    pub name: String,
    /// The scheduler state as the OS shows it (Linux: `R`, `S`, `D`, `T`, ...).
    pub state: String,
    /// What the thread sleeps in (Linux: `wchan`); `None` when unreadable.
    pub wchan: Option<String>,
    /// The kernel stack, where readable (Linux: root only).
    pub kernel_stack: Option<String>,
}

/// One resource limit of a process, as the OS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLimit {
    pub name: String,
    pub soft: String,
    pub hard: String,
    pub unit: String,
}

/// One row of a socket table, for an incident snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRow {
    pub proto: &'static str,
    pub local: String,
    pub remote: String,
    pub state: String,
    /// A listener's accept queue; else bytes not yet read.
    pub recv_q: u64,
    pub send_q: u64,
    pub inode: Option<u64>,
    /// Held by the gateway's process tree.
    pub owned: bool,
}

/// What failed, besides the process being gone, while reading vitals.
#[derive(Debug, Default)]
pub struct PartialErrors(pub Vec<ProcError>);

/// The vitals of one process. `None` fields could not be read (another
/// user's fd table) or do not exist on the platform; their series are absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vitals {
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub cpu_seconds: f64,
    /// Unix time the process started.
    pub start_time_seconds: f64,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    /// The soft limit on open fds; `None` also when unlimited.
    pub max_fds: Option<u64>,
}

/// Open fds of one process by what they point to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdTypes {
    pub socket: u64,
    pub pipe: u64,
    /// Paths: regular files, devices, directories, memfds.
    pub file: u64,
    /// `anon_inode:[eventpoll]`, `anon_inode:[eventfd]`, timerfds, ...
    pub anon_inode: u64,
    pub other: u64,
}

impl FdTypes {
    pub const NAMES: [&'static str; 5] = ["socket", "pipe", "file", "anon_inode", "other"];

    /// Counts in the order of [`FdTypes::NAMES`].
    pub fn values(&self) -> [u64; 5] {
        [
            self.socket,
            self.pipe,
            self.file,
            self.anon_inode,
            self.other,
        ]
    }
}

/// The TCP states, numbered as Linux numbers them (`include/net/tcp_states.h`);
/// other platforms map theirs onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    Established = 1,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
}

impl TcpState {
    /// The state by its Linux number.
    pub fn from_linux(n: u8) -> Option<TcpState> {
        use TcpState::*;
        [
            Established,
            SynSent,
            SynRecv,
            FinWait1,
            FinWait2,
            TimeWait,
            Close,
            CloseWait,
            LastAck,
            Listen,
            Closing,
        ]
        .get(usize::from(n).wrapping_sub(1))
        .copied()
    }

    /// The label value: lower snake case, as [`crate::tcp::STATES`].
    pub fn as_str(self) -> &'static str {
        crate::tcp::STATES[self as usize - 1]
    }
}

/// The host's counts of connections dropped at a listener (Linux: TcpExt in
/// `/proc/net/netstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenCounters {
    /// `ListenOverflows`: the accept queue was full.
    pub overflows: u64,
    /// `ListenDrops`: any drop at a listener, overflows included.
    pub drops: u64,
}

/// The sockets a process tree holds, as its backend tells them apart: socket
/// inodes on Linux, owner pids where the socket table names the owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub inodes: HashSet<u64>,
    pub pids: HashSet<Pid>,
}

/// A file's identity across renames: (device, inode) on unix, (volume
/// serial number, file index) on Windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// Which series a backend can provide. A `false` here makes the series
/// absent, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub threads: bool,
    pub open_fds: bool,
    pub max_fds: bool,
    /// Fds by type ([`FdTypes`]).
    pub fd_types: bool,
    /// Outbound connections (which sockets the gateway tree owns).
    pub outbound: bool,
    pub listen_queue_length: bool,
    /// The accept backlog limit (netlink only on Linux).
    pub listen_queue_capacity: bool,
    /// [`Platform::host_listen_counters`].
    pub host_listen_counters: bool,
    /// [`Platform::watch`] sleeps until an exit (pidfd); else callers poll.
    pub exit_watch: bool,
    /// [`Platform::cgroup_memory_limit`].
    pub cgroup_memory_limit: bool,
    /// Which process LISTENs on a port ([`Platform::listening`],
    /// [`Platform::listen_owners`]). Without it the hang verdict and the
    /// port-owner check are absent, not 0.
    pub listeners: bool,
}

impl Caps {
    /// Every series.
    pub const ALL: Caps = Caps {
        threads: true,
        open_fds: true,
        max_fds: true,
        fd_types: true,
        outbound: true,
        listen_queue_length: true,
        listen_queue_capacity: true,
        host_listen_counters: true,
        exit_watch: true,
        cgroup_memory_limit: true,
        listeners: true,
    };
}

/// A process being watched for its exit.
pub trait ExitWatch: Send + std::fmt::Debug {
    fn id(&self) -> Identity;
    /// Whether the process still runs (a zombie has exited).
    fn alive(&mut self) -> bool;
    /// Sleep until the process exits or `timeout` passes. `false` at once
    /// when the platform cannot sleep on an exit: the caller then polls.
    fn wait_exit(&self, timeout: std::time::Duration) -> bool;
    /// The process's exit as a signal [`wait_exits`] sleeps on together with
    /// others; `None` where the platform has none (the caller polls).
    fn signal(&self) -> Option<ExitSignal> {
        None
    }
}

/// A process's exit, to sleep on many at once ([`wait_exits`]): a pidfd on
/// Linux (5.3 and later). Other platforms have none.
#[cfg(target_os = "linux")]
pub use linux::ExitSignal;
#[cfg(not(target_os = "linux"))]
#[derive(Debug)]
pub enum ExitSignal {}

/// Sleep until one of `signals` fires (its process exited) or `timeout`
/// passes; the indices of those that fired.
#[cfg(target_os = "linux")]
pub use linux::wait_exits;
#[cfg(not(target_os = "linux"))]
pub fn wait_exits(signals: &[&ExitSignal], timeout: std::time::Duration) -> Vec<usize> {
    // No signal exists here: just the sleep.
    debug_assert!(signals.is_empty());
    std::thread::sleep(timeout);
    Vec::new()
}

/// Counts the sockets of a port, for one sampler: it keeps what it opened
/// (the netlink socket) and what it learnt (netlink unavailable) between
/// samples.
pub trait SocketReader: Send {
    /// Count the sockets of `port` by the rules of [`crate::tcp`]. `pid` is
    /// the gateway (for its network namespace), `owned` its tree's sockets,
    /// `None` when only inbound can be counted.
    fn count(
        &mut self,
        port: u16,
        pid: Option<Pid>,
        owned: Option<&Owned>,
    ) -> Result<Tally, String>;
    /// Messages to log once each, by key (a fallback taken), drained.
    fn take_notices(&mut self) -> Vec<(&'static str, String)>;
    /// Let [`SocketReader::count`] reuse a socket table another reader of
    /// the same platform read in the same network namespace less than
    /// `max_age` ago: the gateways of one exporter sample together, and one
    /// dump a round serves them all. A backend that reads per port ignores it.
    fn share(&mut self, _max_age: std::time::Duration) {}
}

/// The operating system as the exporter sees it.
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// `linux`, `macos`, `windows`, `portable`, `fake`.
    fn name(&self) -> &'static str;
    fn caps(&self) -> Caps;

    // The process table.
    /// Every process id.
    fn pids(&self) -> Vec<Pid>;
    /// The start identity of `pid`; `Gone` for a zombie.
    fn identity(&self, pid: Pid) -> Result<Identity, ProcError>;
    /// The short name the OS shows for `pid` (Linux: `comm`), compared with
    /// [`title_key`] of a configured process title.
    fn title(&self, pid: Pid) -> Option<String>;
    /// [`Platform::title`] and the parent of `pid`, where one read gives
    /// both (Linux: `stat`): the process view lists parents with titles, so
    /// the workers of every gateway come from its listing. `None` for the
    /// parent where the platform does not read it that way; the view then
    /// asks [`Platform::descendants`].
    fn title_and_parent(&self, pid: Pid) -> (Option<String>, Option<Pid>) {
        (self.title(pid), None)
    }
    /// Whether a lock's recorded `startTime` is that of `id`.
    fn lock_start_matches(&self, recorded: u64, id: &Identity) -> bool {
        recorded == id.start
    }
    /// The pid `pid` has in the innermost pid namespace it runs in (a
    /// container's own numbering, where the gateway is often 1), when that
    /// namespace is nested in the exporter's; `None` for a process of the
    /// exporter's own namespace, and where the OS has no pid namespaces.
    /// A gateway records this pid in its lock files.
    fn namespaced_pid(&self, _pid: Pid) -> Option<Pid> {
        None
    }
    /// The arguments of `pid`, lossily decoded.
    fn cmdline(&self, pid: Pid) -> Option<Vec<String>>;
    /// The environment of `pid`, lossily decoded, in its order.
    fn environ(&self, pid: Pid) -> Option<Vec<(String, String)>>;
    /// The executable file `pid` runs; `None` when unreadable.
    fn exe_id(&self, pid: Pid) -> Option<FileId>;
    /// All descendants of `pid`, children first.
    fn descendants(&self, pid: Pid) -> Vec<Pid>;
    /// Vitals of `id`. Fails only when it is gone or another process; reads
    /// that failed otherwise are in `errs` and their fields `None`.
    fn vitals(&self, id: Identity, errs: &mut PartialErrors) -> Result<Vitals, ProcError>;
    /// Resident and virtual bytes of `pid`.
    fn memory(&self, pid: Pid) -> Result<(u64, u64), ProcError>;
    /// Watch `id` for its exit; `None` when it is not the process that runs.
    fn watch(&self, id: Identity) -> Option<Box<dyn ExitWatch>>;

    // Sockets.
    /// A counter for one sampler.
    fn socket_reader(&self) -> Box<dyn SocketReader>;
    /// One pass over the fds of `pid`: add the sockets it holds to `owned`,
    /// and its fds by type where the platform has them.
    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError>;
    /// Whether anything listens on `port`, in the network namespace of `pid`
    /// (the exporter's own for `None`).
    fn listening(&self, port: u16, pid: Option<Pid>) -> bool;
    /// Whether `pid` itself holds a LISTEN socket on `port`.
    fn holds_listener(&self, pid: Pid, port: u16) -> bool;
    /// The processes holding a LISTEN socket on `port`. The `known` ones are
    /// asked first; only a socket none of them holds costs a search of every
    /// process.
    fn listen_owners(&self, port: u16, known: &[Identity]) -> Vec<Identity>;
    /// Host-wide listen overflows and drops; `Err` is the message to log.
    fn host_listen_counters(&self) -> Result<ListenCounters, String>;

    // Memory.
    /// The memory limit of the control group `pid` runs in.
    fn cgroup_memory_limit(&self, pid: Pid) -> Option<u64>;
    /// The host's memory.
    fn host_memory_bytes(&self) -> Option<u64>;

    // The scene of an incident (`crate::incident`): read once per snapshot,
    // never signalling or tracing the process. A backend without one says
    // so with [`ProcError::unavailable`].
    /// The OS's status lines of `pid` (Linux: `/proc/<pid>/status`).
    fn status(&self, pid: Pid) -> Result<Vec<(String, String)>, ProcError> {
        Err(ProcError::unavailable(pid, "status"))
    }
    /// The resource limits of `pid`.
    fn limits(&self, pid: Pid) -> Result<Vec<ResourceLimit>, ProcError> {
        Err(ProcError::unavailable(pid, "limits"))
    }
    /// Every thread of `pid`, at most `max`, with its state and wait channel.
    fn threads(&self, pid: Pid, _max: usize) -> Result<Vec<ThreadInfo>, ProcError> {
        Err(ProcError::unavailable(pid, "threads"))
    }
    /// The TCP sockets on `port` (either end) and those in `owned`, in the
    /// network namespace of `pid`, at most `max`.
    fn socket_table(
        &self,
        _port: u16,
        pid: Pid,
        _owned: &Owned,
        _max: usize,
    ) -> Result<Vec<SocketRow>, ProcError> {
        Err(ProcError::unavailable(pid, "socket table"))
    }
}

/// Whether the name the OS shows for a process ([`Platform::title`]) is the
/// title the process gave itself, as the gateway's `process.title`. Linux:
/// yes, `comm` takes it. macOS: no, `comm` stays the executable's name
/// (`node`); libuv writes the title over the argument area, so it shows as
/// the command line's first argument (as `ps -o command=`, which the gateway
/// itself reads there: `readDarwinCmdline`, dist/gateway-lock-CYjRlApN.mjs).
/// Windows: no, the image name (`node.exe`) stays and `process.title` sets
/// the console title only; the gateway is a `node.exe` running its entry
/// with `gateway`. Where it is false, processes are also known by their
/// command line: [`crate::discovery::is_gateway_command`].
pub const TITLE_IS_NAME: bool = cfg!(target_os = "linux");

/// The name the OS shows for a process with `title` ([`Platform::title`]).
/// Linux keeps the first 15 bytes (`TASK_COMM_LEN`).
#[cfg(target_os = "linux")]
pub fn title_key(title: &str) -> &str {
    linux::comm_of_title(title)
}

/// What a process with `title` is known by: the whole title, never cut.
/// The OS's name for the process is its executable's ([`TITLE_IS_NAME`]);
/// the title is matched against the command line instead, where macOS
/// shows it whole (libuv's argument area is the original arguments, longer
/// than the gateway's title) and Windows not at all.
#[cfg(not(target_os = "linux"))]
pub fn title_key(title: &str) -> &str {
    title
}

/// Whether the tests run under Wine, which lacks some of what Windows
/// gives (`src/platform/windows`).
#[cfg(test)]
pub fn under_wine() -> bool {
    #[cfg(windows)]
    return windows::win32::wine();
    #[cfg(not(windows))]
    false
}

/// Which backend to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// The platform's own: procfs, sock_diag and pidfd on Linux; Win32
    /// calls beside sysinfo on Windows; libproc beside sysinfo on macOS.
    #[default]
    Native,
    /// sysinfo and the OS's TCP table alone: the base of the Windows and
    /// macOS backends, what any other OS runs, and with
    /// `--platform.backend=portable` anywhere.
    Portable,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "native" => Ok(Backend::Native),
            "portable" => Ok(Backend::Portable),
            _ => Err(format!(
                "unknown platform backend {s:?}: native or portable"
            )),
        }
    }
}

/// The backend to run.
pub fn select(backend: Backend) -> Arc<dyn Platform> {
    match backend {
        #[cfg(target_os = "linux")]
        Backend::Native => Arc::new(linux::LinuxPlatform::new()),
        #[cfg(target_os = "macos")]
        Backend::Native => Arc::new(macos::MacPlatform::new()),
        #[cfg(windows)]
        Backend::Native => Arc::new(windows::WindowsPlatform::new()),
        // Any other OS (the BSDs): the portable one.
        #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
        Backend::Native => Arc::new(portable::PortablePlatform::new()),
        Backend::Portable => Arc::new(portable::PortablePlatform::new()),
    }
}
