//! The portable backend on `sysinfo`: what macOS runs, what the Windows
//! backend builds on, and on Linux `--platform.backend=portable`, so that the
//! real-gateway tests prove it here.
//!
//! One [`System`] holds the process table. A whole-table refresh (a scan, for
//! the process list, titles and descendants) runs at most once per
//! [`SCAN_FRESH`]; a read of one process (identity, vitals, memory, command
//! line, environment) refreshes that process alone, so a dead or reused pid
//! is seen at once. Only processes are refreshed, never the host's CPUs: that
//! aborts under Wine.
//!
//! What sysinfo does not give for the gateway itself is absent ([`Caps`]):
//! the fd limit (sysinfo's `open_files_limit()` reports the exporter's own on
//! macOS and a constant on Windows), fds by type, the accept queue, the host
//! listen counters, the cgroup limit, and an exit watch. Threads come from
//! the task list, which sysinfo has on Linux only.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sysinfo::{
    ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, ThreadKind, UpdateKind,
};

use super::{
    file, Caps, ExitWatch, FdTypes, FileId, Identity, ListenCounters, Owned, PartialErrors, Pid,
    Platform, ProcError, SocketReader, Vitals,
};

pub mod sockets;

/// How long one whole-table refresh serves the process list, titles and
/// descendants.
const SCAN_FRESH: Duration = Duration::from_millis(500);

/// The unit the gateway writes to its lock's `startTime` on this OS
/// (dist/pid-alive-CXdZEzr_.mjs `getFileLockProcessStartTime`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LockClock {
    /// Linux: field 22 of `/proc/<pid>/stat`, clock ticks after boot
    /// (`getProcessStartTime`).
    Ticks { per_second: u64, boot_time: u64 },
    /// macOS: `ps -o lstart=` in UTC, whole Unix seconds
    /// (`getDarwinProcessStartTime`).
    Seconds,
    /// Windows: `GetProcessTimes` creation time, Unix milliseconds
    /// (`ticks / 10000n - 11644473600000n`).
    Millis,
}

impl LockClock {
    /// The Unix time a recorded `startTime` names; `None` when it cannot be
    /// converted (no tick rate).
    pub fn unix_seconds(self, recorded: u64) -> Option<f64> {
        match self {
            LockClock::Ticks {
                per_second,
                boot_time,
            } => (per_second > 0).then(|| boot_time as f64 + recorded as f64 / per_second as f64),
            LockClock::Seconds => Some(recorded as f64),
            LockClock::Millis => Some(recorded as f64 / 1000.0),
        }
    }

    /// Whether a recorded `startTime` is the start, in whole Unix seconds as
    /// sysinfo gives it, of a process. sysinfo truncates to the second and
    /// each clock has its own rounding, so within one second either way.
    pub fn matches(self, recorded: u64, start_seconds: u64) -> bool {
        self.unix_seconds(recorded)
            .is_some_and(|t| (t - start_seconds as f64).abs() <= 1.0)
    }
}

/// The clock of this OS's locks.
fn lock_clock() -> LockClock {
    #[cfg(target_os = "linux")]
    return LockClock::Ticks {
        per_second: procfs::ticks_per_second(),
        boot_time: System::boot_time().unwrap_or(0),
    };
    #[cfg(windows)]
    return LockClock::Millis;
    #[cfg(not(any(target_os = "linux", windows)))]
    LockClock::Seconds
}

#[derive(Debug)]
struct Table {
    /// `Err` when sysinfo cannot read this OS: every read then fails, counted.
    sys: Result<System, String>,
    scanned: Option<Instant>,
}

#[derive(Debug)]
pub struct PortablePlatform {
    table: Mutex<Table>,
    clock: LockClock,
}

fn spid(pid: Pid) -> Option<sysinfo::Pid> {
    usize::try_from(pid).ok().map(sysinfo::Pid::from)
}

fn pid_of(p: sysinfo::Pid) -> Option<Pid> {
    Pid::try_from(p.as_u32()).ok()
}

/// A process, not a thread listed beside it (sysinfo lists Linux tasks).
fn is_process(p: &sysinfo::Process) -> bool {
    p.thread_kind() != Some(ThreadKind::Userland)
}

fn is_running(p: &sysinfo::Process) -> bool {
    !matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead)
}

/// The refresh of one process for its identity: its start time only.
fn bare() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing().without_tasks()
}

impl PortablePlatform {
    pub fn new() -> PortablePlatform {
        let sys = System::new().map_err(|e| format!("sysinfo cannot read processes here: {e}"));
        PortablePlatform {
            table: Mutex::new(Table { sys, scanned: None }),
            clock: lock_clock(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The table, refreshed whole unless a scan is younger than
    /// [`SCAN_FRESH`].
    fn scanned(&self) -> MutexGuard<'_, Table> {
        let mut t = self.lock();
        if t.scanned.is_none_or(|at| at.elapsed() >= SCAN_FRESH) {
            if let Ok(sys) = &mut t.sys {
                sys.refresh_processes_specifics(ProcessesToUpdate::All, true, bare());
            }
            t.scanned = Some(Instant::now());
        }
        t
    }

    /// The processes of the last scan, threads left out.
    fn processes(&self) -> Vec<(Pid, Option<Pid>)> {
        match &self.scanned().sys {
            Ok(sys) => sys
                .processes()
                .values()
                .filter(|p| is_process(p))
                .filter_map(|p| Some((pid_of(p.pid())?, p.parent().and_then(pid_of))))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Refresh `pid` alone with `kind` and read it; `Gone` when it does not
    /// run.
    fn read<T>(
        &self,
        pid: Pid,
        kind: ProcessRefreshKind,
        f: impl FnOnce(&sysinfo::Process) -> T,
    ) -> Result<T, ProcError> {
        let sp = spid(pid).ok_or(ProcError::Gone(pid))?;
        let mut t = self.lock();
        let sys = t.sys.as_mut().map_err(|e| ProcError::Other {
            pid,
            what: "the process",
            reason: e.clone(),
        })?;
        sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[sp]), true, kind);
        match sys.process(sp) {
            Some(p) if is_process(p) && is_running(p) => Ok(f(p)),
            _ => Err(ProcError::Gone(pid)),
        }
    }

    /// Read `id`, `Gone` when `id.pid` is another process now.
    fn read_id<T>(
        &self,
        id: Identity,
        kind: ProcessRefreshKind,
        f: impl FnOnce(&sysinfo::Process) -> T,
    ) -> Result<T, ProcError> {
        self.read(id.pid, kind, |p| (p.start_time() == id.start).then(|| f(p)))?
            .ok_or(ProcError::Gone(id.pid))
    }
}

impl Default for PortablePlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform for PortablePlatform {
    fn name(&self) -> &'static str {
        "portable"
    }

    fn caps(&self) -> Caps {
        Caps {
            threads: cfg!(target_os = "linux"),
            open_fds: true,
            max_fds: false,
            fd_types: false,
            outbound: sockets::OWNERS,
            listen_queue_length: false,
            listen_queue_capacity: false,
            host_listen_counters: false,
            exit_watch: false,
            cgroup_memory_limit: false,
            listeners: sockets::OWNERS,
        }
    }

    fn pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = self.processes().into_iter().map(|(p, _)| p).collect();
        pids.sort_unstable();
        pids
    }

    fn identity(&self, pid: Pid) -> Result<Identity, ProcError> {
        self.read(pid, bare(), |p| Identity {
            pid,
            start: p.start_time(),
        })
    }

    fn title(&self, pid: Pid) -> Option<String> {
        let sp = spid(pid)?;
        if let Ok(sys) = &self.scanned().sys {
            if let Some(p) = sys.process(sp).filter(|p| is_process(p)) {
                return Some(p.name().to_string_lossy().into_owned());
            }
        }
        self.read(pid, bare(), |p| p.name().to_string_lossy().into_owned())
            .ok()
    }

    fn lock_start_matches(&self, recorded: u64, id: &Identity) -> bool {
        self.clock.matches(recorded, id.start)
    }

    fn cmdline(&self, pid: Pid) -> Option<Vec<String>> {
        let kind = bare().with_cmd(UpdateKind::Always);
        self.read(pid, kind, |p| {
            p.cmd()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        })
        .ok()
    }

    fn environ(&self, pid: Pid) -> Option<Vec<(String, String)>> {
        let kind = bare().with_environ(UpdateKind::Always);
        let vars = self
            .read(pid, kind, |p| {
                p.environ()
                    .iter()
                    .map(|kv| kv.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .ok()?;
        Some(split_environ(vars))
    }

    fn exe_id(&self, pid: Pid) -> Option<FileId> {
        let kind = bare().with_exe(UpdateKind::Always);
        let exe = self
            .read(pid, kind, |p| p.exe().map(|e| e.to_path_buf()))
            .ok()??;
        file::path_id(&exe).ok()
    }

    fn descendants(&self, pid: Pid) -> Vec<Pid> {
        let links: Vec<(Pid, Pid)> = self
            .processes()
            .into_iter()
            .filter_map(|(p, parent)| Some((p, parent?)))
            .collect();
        descendants_of(pid, &links)
    }

    fn vitals(&self, id: Identity, errs: &mut PartialErrors) -> Result<Vitals, ProcError> {
        let kind = bare().with_memory().with_cpu();
        #[cfg(target_os = "linux")]
        let kind = kind.with_tasks();
        let v = self.read_id(id, kind, |p| Vitals {
            resident_bytes: p.memory(),
            virtual_bytes: p.virtual_memory(),
            cpu_seconds: p.accumulated_cpu_time() as f64 / 1000.0,
            start_time_seconds: p.start_time() as f64,
            threads: p.tasks().map(|t| t.len() as u64),
            // The gateway's own: /proc/<pid>/fd on Linux, PROC_PIDLISTFDS
            // on macOS, the handle count on Windows.
            open_fds: p.open_files().map(|n| n as u64),
            max_fds: None,
        })?;
        if v.open_fds.is_none() {
            errs.0.push(ProcError::Denied {
                pid: id.pid,
                what: "open fds",
            });
        }
        Ok(v)
    }

    fn memory(&self, pid: Pid) -> Result<(u64, u64), ProcError> {
        self.read(pid, bare().with_memory(), |p| {
            (p.memory(), p.virtual_memory())
        })
    }

    fn watch(&self, _id: Identity) -> Option<Box<dyn ExitWatch>> {
        None
    }

    fn socket_reader(&self) -> Box<dyn SocketReader> {
        Box::new(sockets::TableReader)
    }

    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError> {
        self.read(pid, bare(), |_| ())?;
        owned.pids.insert(pid);
        Ok(None)
    }

    fn listening(&self, port: u16, _pid: Option<Pid>) -> bool {
        sockets::listeners(port).is_ok_and(|l| !l.is_empty())
    }

    fn holds_listener(&self, pid: Pid, port: u16) -> bool {
        sockets::listeners(port).is_ok_and(|l| l.contains(&pid))
    }

    fn listen_owners(&self, port: u16, _known: &[Identity]) -> Vec<Identity> {
        let owners = sockets::listeners(port).unwrap_or_default();
        owners
            .into_iter()
            .filter_map(|pid| self.identity(pid).ok())
            .collect()
    }

    fn host_listen_counters(&self) -> Result<ListenCounters, String> {
        Err("the portable platform backend has no host listen counters".to_string())
    }

    fn cgroup_memory_limit(&self, _pid: Pid) -> Option<u64> {
        None
    }

    fn host_memory_bytes(&self) -> Option<u64> {
        let mut t = self.lock();
        let sys = t.sys.as_mut().ok()?;
        sys.refresh_memory_specifics(sysinfo::MemoryRefreshKind::nothing().with_ram());
        Some(sys.total_memory()).filter(|&b| b > 0)
    }
}

/// `NAME=value` strings as pairs, in their order; one without `=` is skipped.
fn split_environ(vars: Vec<String>) -> Vec<(String, String)> {
    vars.into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Every descendant of `root` by `(pid, parent)` links, children first
/// (breadth first); a loop in the links ends.
fn descendants_of(root: Pid, links: &[(Pid, Pid)]) -> Vec<Pid> {
    let mut found = vec![];
    let mut next = 0;
    let mut parent = root;
    loop {
        let mut children: Vec<Pid> = links
            .iter()
            .filter(|&&(pid, ppid)| ppid == parent && pid != root && !found.contains(&pid))
            .map(|&(pid, _)| pid)
            .collect();
        children.sort_unstable();
        found.extend(children);
        let Some(&p) = found.get(next) else {
            return found;
        };
        parent = p;
        next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_start_in_each_os_unit() {
        // Linux: 100 ticks/s, booted at 1_700_000_000; started 12345.67 s later.
        let linux = LockClock::Ticks {
            per_second: 100,
            boot_time: 1_700_000_000,
        };
        assert_eq!(linux.unix_seconds(1_234_567), Some(1_700_012_345.67));
        // sysinfo gives floor(ticks / hz) + boot.
        assert!(linux.matches(1_234_567, 1_700_012_345));
        assert!(linux.matches(1_234_567, 1_700_012_346));
        assert!(!linux.matches(1_234_567, 1_700_012_343));
        assert!(!linux.matches(1_234_567 + 300, 1_700_012_345));
        let no_rate = LockClock::Ticks {
            per_second: 0,
            boot_time: 1,
        };
        assert!(!no_rate.matches(5, 1));
        // macOS: whole Unix seconds.
        assert!(LockClock::Seconds.matches(1_764_400_000, 1_764_400_000));
        assert!(!LockClock::Seconds.matches(1_764_400_000, 1_764_400_002));
        // Windows: Unix milliseconds.
        assert_eq!(
            LockClock::Millis.unix_seconds(1_764_400_000_999),
            Some(1_764_400_000.999)
        );
        assert!(LockClock::Millis.matches(1_764_400_000_999, 1_764_400_000));
        assert!(!LockClock::Millis.matches(1_764_400_000_999, 1_764_400_002));
        // A Linux tick count read as milliseconds names 1970.
        assert!(!LockClock::Millis.matches(1_234_567, 1_700_012_345));
    }

    #[test]
    fn descendants_children_first() {
        let links = [(10, 1), (11, 10), (12, 10), (13, 11), (20, 1), (14, 13)];
        assert_eq!(descendants_of(10, &links), vec![11, 12, 13, 14]);
        assert_eq!(descendants_of(14, &links), Vec::<Pid>::new());
        // A loop does not hang.
        assert_eq!(descendants_of(1, &[(2, 1), (1, 2)]), vec![2]);
    }

    #[test]
    fn environ_pairs() {
        let vars = ["HOME=/h", "EMPTY=", "A=b=c", "junk"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            split_environ(vars),
            [("HOME", "/h"), ("EMPTY", ""), ("A", "b=c")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .to_vec()
        );
    }

    /// The test process itself on any OS (Windows: under Wine too): what
    /// sysinfo and the TCP table show of it.
    #[test]
    fn own_process_on_any_os() {
        let p = PortablePlatform::new();
        let pid = std::process::id() as Pid;
        let id = p.identity(pid).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(id.start <= now && now - id.start < 3600, "{id:?}");
        assert!(p.pids().contains(&pid));
        assert!(!p.title(pid).unwrap().is_empty());
        assert!(!p.cmdline(pid).unwrap().is_empty());
        let v = p.vitals(id, &mut PartialErrors::default()).unwrap();
        assert!(v.resident_bytes > 0 && v.cpu_seconds >= 0.0);
        assert_eq!(v.start_time_seconds, id.start as f64);
        let mut owned = Owned::default();
        assert_eq!(p.scan_fds(pid, &mut owned).unwrap(), None);
        assert!(owned.pids.contains(&pid));
        assert!(matches!(p.identity(-1), Err(ProcError::Gone(-1))));
        // Listening shows in the table; its owner is not asserted: Wine's
        // sockets belong to wineserver (pid 0).
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(p.listening(port, None), sockets::OWNERS);
    }

    /// The exporter's own test process, read through sysinfo, against
    /// `/proc/self`.
    #[cfg(target_os = "linux")]
    #[test]
    fn own_process_against_proc() {
        let p = PortablePlatform::new();
        let pid = std::process::id() as Pid;
        let native = crate::platform::linux::LinuxPlatform::new();
        let id = p.identity(pid).unwrap();
        let nid = native.identity(pid).unwrap();
        assert!(p.lock_start_matches(nid.start, &id), "{id:?} vs {nid:?}");
        assert!(p.pids().contains(&pid));
        let mut errs = PartialErrors::default();
        let v = p.vitals(id, &mut errs).unwrap();
        assert!(errs.0.is_empty(), "{errs:?}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let threads: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Test threads come and go; the count is near /proc's.
        let t = v.threads.unwrap();
        assert!(t.abs_diff(threads) <= 4, "{t} vs {threads}");
        assert!(v.resident_bytes > 1 << 20 && v.virtual_bytes > v.resident_bytes);
        assert!(v.open_fds.unwrap() >= 3);
        assert_eq!(v.max_fds, None);
        let gone = Identity {
            pid,
            start: id.start + 10,
        };
        assert!(matches!(p.vitals(gone, &mut errs), Err(ProcError::Gone(_))));
        assert_eq!(p.cmdline(pid), native.cmdline(pid));
        assert_eq!(p.title(pid), native.title(pid));
        assert_eq!(p.exe_id(pid), native.exe_id(pid));
        assert!(p.host_memory_bytes().unwrap() > 1 << 20);
    }
}
