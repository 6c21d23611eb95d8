//! [`MacPlatform`]: the portable backend, plus libproc for the gateway.

use std::os::fd::OwnedFd;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::limits::{self, LaunchdLimits};
use super::{decode, ffi, sockets, title_of};
use crate::platform::portable::PortablePlatform;
use crate::platform::{
    Caps, ExitWatch, FdTypes, FileId, Identity, ListenCounters, Owned, PartialErrors, Pid,
    Platform, ProcError, SocketReader, Vitals,
};

/// `p_stat` of a process that exited and was not reaped (`SZOMB`).
const SZOMB: u32 = 5;

#[derive(Debug)]
pub struct MacPlatform {
    portable: PortablePlatform,
    /// Mach time units to ns, `(numer, denom)`.
    timebase: (u32, u32),
    launchd: Mutex<LaunchdLimits>,
}

impl MacPlatform {
    pub fn new() -> MacPlatform {
        MacPlatform {
            portable: PortablePlatform::new(),
            timebase: ffi::timebase(),
            launchd: Mutex::new(LaunchdLimits::default()),
        }
    }

    /// The fd limit of gateway `pid` whose parent is `parent` ([`limits`]);
    /// an unreadable `launchctl` is a partial error.
    fn fd_limit(&self, pid: Pid, parent: u32, errs: &mut PartialErrors) -> Option<u64> {
        if parent != 1 || !limits::started_by_launchd(parent, self.environ(pid).as_deref()) {
            return None;
        }
        let launchd = self
            .launchd
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(Instant::now(), launchctl_maxfiles);
        match launchd {
            Ok(l) => limits::gateway_fd_limit(true, Some(l), ffi::max_files_per_proc()),
            Err(reason) => {
                errs.0.push(ProcError::Other {
                    pid,
                    what: "the fd limit",
                    reason,
                });
                None
            }
        }
    }
}

/// The start identity of `pid`; `Gone` for a zombie.
fn identity(pid: Pid) -> Result<Identity, ProcError> {
    let info = ffi::bsd_info(pid)?;
    if info.pbi_status == SZOMB {
        return Err(ProcError::Gone(pid));
    }
    Ok(Identity {
        pid,
        start: info.pbi_start_tvsec,
    })
}

/// A process watched for its exit through a kqueue.
#[derive(Debug)]
struct Watched {
    id: Identity,
    kq: OwnedFd,
}

impl ExitWatch for Watched {
    fn id(&self) -> Identity {
        self.id
    }
    fn alive(&mut self) -> bool {
        identity(self.id.pid).ok() == Some(self.id)
    }
    fn wait_exit(&self, timeout: std::time::Duration) -> bool {
        ffi::wait_exit(&self.kq, timeout);
        true
    }
}

impl Default for MacPlatform {
    fn default() -> Self {
        Self::new()
    }
}

/// `launchctl limit maxfiles`: launchd's limits for the jobs it starts.
fn launchctl_maxfiles() -> Result<String, String> {
    let out = std::process::Command::new("/bin/launchctl")
        .args(["limit", "maxfiles"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run launchctl limit maxfiles: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "launchctl limit maxfiles: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Platform for MacPlatform {
    fn name(&self) -> &'static str {
        "macos"
    }

    fn caps(&self) -> Caps {
        Caps {
            threads: true,
            open_fds: true,
            max_fds: true,
            fd_types: true,
            outbound: true,
            listen_queue_length: true,
            listen_queue_capacity: true,
            host_listen_counters: false,
            exit_watch: true,
            cgroup_memory_limit: false,
            listeners: true,
        }
    }

    /// One `proc_listallpids`, not a refresh of sysinfo's whole table.
    fn pids(&self) -> Vec<Pid> {
        let mut pids = ffi::all_pids();
        pids.sort_unstable();
        pids
    }

    fn identity(&self, pid: Pid) -> Result<Identity, ProcError> {
        identity(pid)
    }

    fn title(&self, pid: Pid) -> Option<String> {
        title_of(self.portable.cmdline(pid), || self.portable.title(pid))
    }

    /// The lock's whole Unix seconds against `pbi_start_tvsec`: the same
    /// kernel field, truncated alike by `ps` and the gateway's `Math.floor`.
    fn lock_start_matches(&self, recorded: u64, id: &Identity) -> bool {
        self.portable.lock_start_matches(recorded, id)
    }

    fn cmdline(&self, pid: Pid) -> Option<Vec<String>> {
        self.portable.cmdline(pid)
    }

    fn environ(&self, pid: Pid) -> Option<Vec<(String, String)>> {
        self.portable.environ(pid)
    }

    fn exe_id(&self, pid: Pid) -> Option<FileId> {
        self.portable.exe_id(pid)
    }

    fn descendants(&self, pid: Pid) -> Vec<Pid> {
        self.portable.descendants(pid)
    }

    fn vitals(&self, id: Identity, errs: &mut PartialErrors) -> Result<Vitals, ProcError> {
        let all = ffi::task_all_info(id.pid)?;
        let (bsd, task) = (&all.pbsd, &all.ptinfo);
        if bsd.pbi_start_tvsec != id.start || bsd.pbi_status == SZOMB {
            return Err(ProcError::Gone(id.pid));
        }
        let open_fds = match ffi::list_fds(id.pid) {
            Ok(fds) => Some(fds.len() as u64),
            Err(ProcError::Gone(p)) => return Err(ProcError::Gone(p)),
            Err(e) => {
                errs.0.push(e);
                None
            }
        };
        let (numer, denom) = self.timebase;
        Ok(Vitals {
            resident_bytes: task.pti_resident_size,
            virtual_bytes: task.pti_virtual_size,
            cpu_seconds: decode::cpu_seconds(
                task.pti_total_user.saturating_add(task.pti_total_system),
                numer,
                denom,
            ),
            start_time_seconds: bsd.pbi_start_tvsec as f64 + bsd.pbi_start_tvusec as f64 / 1e6,
            threads: u64::try_from(task.pti_threadnum).ok(),
            open_fds,
            max_fds: self.fd_limit(id.pid, bsd.pbi_ppid, errs),
        })
    }

    fn memory(&self, pid: Pid) -> Result<(u64, u64), ProcError> {
        self.portable.memory(pid)
    }

    fn watch(&self, id: Identity) -> Option<Box<dyn ExitWatch>> {
        // Registered first: once `id` is verified below, the kqueue watches
        // that process and no later one with the same pid.
        let kq = ffi::exit_queue(id.pid)?;
        (identity(id.pid).ok() == Some(id))
            .then(|| Box::new(Watched { id, kq }) as Box<dyn ExitWatch>)
    }

    fn socket_reader(&self) -> Box<dyn SocketReader> {
        Box::new(sockets::FdReader)
    }

    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError> {
        let fds = ffi::list_fds(pid)?;
        owned.pids.insert(pid);
        Ok(Some(decode::fd_types(fds.into_iter().map(|(_, ty)| ty))))
    }

    fn listening(&self, port: u16, pid: Option<Pid>) -> bool {
        pid.is_some_and(|p| sockets::holds_listener(p, port))
            || ffi::all_pids()
                .into_iter()
                .filter(|&p| Some(p) != pid)
                .any(|p| sockets::holds_listener(p, port))
    }

    fn holds_listener(&self, pid: Pid, port: u16) -> bool {
        sockets::holds_listener(pid, port)
    }

    fn listen_owners(&self, port: u16, known: &[Identity]) -> Vec<Identity> {
        let known_pids: Vec<Pid> = known.iter().map(|id| id.pid).collect();
        sockets::owners(&known_pids, ffi::all_pids, |p| {
            sockets::holds_listener(p, port)
        })
        .into_iter()
        .filter_map(|pid| self.identity(pid).ok())
        .collect()
    }

    fn host_listen_counters(&self) -> Result<ListenCounters, String> {
        Err("the macOS platform backend has no host listen counters".to_string())
    }

    fn cgroup_memory_limit(&self, _pid: Pid) -> Option<u64> {
        None
    }

    fn host_memory_bytes(&self) -> Option<u64> {
        self.portable.host_memory_bytes()
    }
}

/// On a Mac: the test process itself, read through libproc, against what
/// std and the process itself know.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::TcpState;

    #[test]
    fn own_process() {
        let p = MacPlatform::new();
        let me = std::process::id() as Pid;
        let id = p.identity(me).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(id.start <= now && now - id.start < 3600, "{id:?}");
        assert!(p.lock_start_matches(id.start, &id));
        assert!(p.pids().contains(&me));
        assert!(matches!(p.identity(-1), Err(ProcError::Gone(-1))));

        let file = std::fs::File::open("/dev/null").unwrap();
        let (_r, _w) = std::io::pipe().unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();

        let mut errs = PartialErrors::default();
        let v = p.vitals(id, &mut errs).unwrap();
        assert!(errs.0.is_empty(), "{errs:?}");
        assert!(v.resident_bytes > 1 << 20 && v.virtual_bytes > v.resident_bytes);
        assert!(v.threads.unwrap() >= 1 && v.open_fds.unwrap() >= 6);
        assert_eq!(v.start_time_seconds.floor(), id.start as f64);
        // The test runner's parent is a shell, not launchd.
        assert_eq!(v.max_fds, None);
        // CPU in seconds, not Mach units (41.67 ns each on Apple silicon):
        // 0.3 s of spinning shows as about 0.3 s.
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(300) {
            std::hint::black_box(spin.elapsed());
        }
        let spun = p.vitals(id, &mut errs).unwrap().cpu_seconds - v.cpu_seconds;
        assert!((0.15..1.5).contains(&spun), "{spun}");
        let gone = Identity {
            pid: me,
            start: id.start + 10,
        };
        assert!(matches!(p.vitals(gone, &mut errs), Err(ProcError::Gone(_))));

        let mut owned = Owned::default();
        let t = p.scan_fds(me, &mut owned).unwrap().unwrap();
        assert!(t.socket >= 2 && t.pipe >= 2 && t.file >= 1, "{t:?}");
        assert!(owned.pids.contains(&me));

        // The listener, its queued connection, the client end.
        let held = sockets::held_by(me).unwrap();
        assert!(held
            .iter()
            .any(|s| s.state == TcpState::Listen && s.local_port == port));
        assert!(p.holds_listener(me, port) && p.listening(port, Some(me)));
        assert_eq!(p.listen_owners(port, &[id]), [id]);
        let t = p
            .socket_reader()
            .count(port, Some(me), Some(&owned))
            .unwrap();
        assert_eq!(t.inbound.get("listen"), Some(1));
        // Not accepted yet: counted from the accept queue.
        assert_eq!(t.inbound.get("established"), Some(1));
        assert_eq!(t.listen_queue_length, 1);
        // The client end goes to the port over loopback: not outbound.
        assert_eq!(t.outbound.unwrap().total(), 0);
        drop((file, c, l));
    }

    #[test]
    fn exit_watch_wakes_on_exit() {
        let p = MacPlatform::new();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("0.5")
            .spawn()
            .unwrap();
        let id = p.identity(child.id() as Pid).unwrap();
        let mut w = p.watch(id).unwrap();
        assert!(w.alive());
        let t = std::time::Instant::now();
        assert!(w.wait_exit(std::time::Duration::from_secs(10)));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        // A zombie until reaped: exited all the same.
        assert!(!w.alive());
        child.wait().unwrap();
        assert!(p.watch(id).is_none());
    }
}
