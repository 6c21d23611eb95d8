//! The native Linux backend: procfs, netlink sock_diag, the `/proc/net/tcp`
//! streamer and pidfd.
#![cfg(target_os = "linux")]

pub mod cgroup;
pub mod proc;
pub mod proc_net;
pub mod scene;
pub mod sock_diag;
pub mod sockets;

use super::{
    Caps, ExitWatch, FdTypes, FileId, Identity, ListenCounters, Owned, PartialErrors, Pid,
    Platform, ProcError, ResourceLimit, SocketReader, SocketRow, ThreadInfo, Vitals,
};
use crate::tcp;
use cgroup::CgroupMounts;
use proc::Host;
use sockets::Sockets;
use std::collections::HashSet;
use std::time::Duration;

/// The `comm` the kernel shows for a process titled `title`: its first 15
/// bytes (`TASK_COMM_LEN` less the NUL), cut back to a character boundary.
pub fn comm_of_title(title: &str) -> &str {
    let mut end = title.len().min(15);
    while !title.is_char_boundary(end) {
        end -= 1;
    }
    &title[..end]
}

#[derive(Debug)]
pub struct LinuxPlatform {
    host: Host,
    mounts: CgroupMounts,
    /// The socket tables its readers share.
    tables: std::sync::Arc<sockets::Tables>,
    /// Descendants read in the last [`proc::SHARED`], by pid: the
    /// collectors of a gateway that tick together (process, memory,
    /// connections, lifecycle) each ask for its workers.
    descendants: proc::Recent<Pid, Vec<Pid>>,
    /// Fd tables read in the last [`proc::SHARED`], by pid: the
    /// connections sample and the lifecycle sample's LISTEN owners of a
    /// gateway read it one after the other.
    fds: proc::Recent<Pid, FdTable>,
}

/// A process's fds by type and its socket inodes.
type FdTable = std::sync::Arc<(FdTypes, HashSet<u64>)>;

/// How old a socket table of a connections sample may be to tell the
/// lifecycle sample's LISTEN owners ([`Platform::listen_owners`]): both ride
/// the connections interval, and every gateway's samples of a round run
/// within it, so N gateways cost no dump of their own. Without one (the
/// connections collector off) the listeners are dumped for the port alone.
const SHARED_LISTENERS: Duration = Duration::from_secs(1);

impl LinuxPlatform {
    pub fn new() -> LinuxPlatform {
        LinuxPlatform {
            host: Host::read(),
            mounts: CgroupMounts::read(),
            tables: Default::default(),
            descendants: proc::Recent::new(),
            fds: proc::Recent::new(),
        }
    }
}

impl LinuxPlatform {
    /// The fd table of `pid`, read now unless read in the last
    /// [`proc::SHARED`].
    fn fd_table(&self, pid: Pid) -> Result<FdTable, ProcError> {
        self.fds.get_or_read(pid, || {
            let mut inodes = HashSet::new();
            let types = proc::scan_fds(pid, &mut inodes)?;
            Ok(std::sync::Arc::new((types, inodes)))
        })
    }

    /// Inodes of the sockets that LISTEN on `port` in the network namespace
    /// of `pid` (the exporter's for `None`): from this round's socket table
    /// of that namespace where there is one, else read now.
    fn listen_inodes(&self, port: u16, pid: Option<Pid>) -> Vec<u64> {
        let netns = match pid {
            Some(p) => proc::net_namespace(p).ok(),
            None => proc::own_net_namespace(),
        };
        netns
            .and_then(|ns| self.tables.listening(&ns, port, SHARED_LISTENERS))
            .unwrap_or_else(|| tcp::listen_inodes(port, pid))
    }
}

impl Default for LinuxPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl ExitWatch for proc::Watched {
    fn id(&self) -> Identity {
        proc::Watched::id(self)
    }
    fn alive(&mut self) -> bool {
        proc::Watched::alive(self)
    }
    fn wait_exit(&self, timeout: std::time::Duration) -> bool {
        proc::Watched::wait_exit(self, timeout)
    }
    fn signal(&self) -> Option<ExitSignal> {
        proc::Watched::signal(self)
    }
}

/// A pidfd: readable once its process has exited.
#[derive(Debug)]
pub struct ExitSignal(pub(crate) std::os::fd::OwnedFd);

/// One `poll` over every signal's pidfd, for at most `timeout`: the indices
/// of the processes that exited.
pub fn wait_exits(signals: &[&ExitSignal], timeout: Duration) -> Vec<usize> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    if signals.is_empty() {
        std::thread::sleep(timeout);
        return Vec::new();
    }
    let mut fds: Vec<PollFd> = signals
        .iter()
        .map(|s| PollFd::new(&s.0, PollFlags::IN))
        .collect();
    let ts = Timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match poll(&mut fds, Some(&ts)) {
        Ok(_) => {}
        // Interrupted: the caller's next wait decides.
        Err(rustix::io::Errno::INTR) => return Vec::new(),
        // Not pollable after all (fd limit): sleep rather than spin.
        Err(_) => {
            std::thread::sleep(timeout);
            return Vec::new();
        }
    }
    fds.iter()
        .enumerate()
        .filter(|(_, f)| !f.revents().is_empty())
        .map(|(i, _)| i)
        .collect()
}

/// NUL-separated `/proc/<pid>/{cmdline,environ}` content, lossily decoded.
/// Kept by hand: procfs's `cmdline` fails on bytes that are not UTF-8, and its
/// `environ` is a map (order lost; a repeated name keeps its last value, where
/// getenv and [`Platform::environ`]'s callers take the first).
fn nul_separated(pid: Pid, file: &str) -> Option<Vec<String>> {
    let bytes = proc::read_file(Some(pid), file).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

impl Platform for LinuxPlatform {
    fn name(&self) -> &'static str {
        "linux"
    }

    fn caps(&self) -> Caps {
        Caps::ALL
    }

    fn pids(&self) -> Vec<Pid> {
        proc::all_pids()
    }

    fn identity(&self, pid: Pid) -> Result<Identity, ProcError> {
        proc::identity(pid)
    }

    fn title(&self, pid: Pid) -> Option<String> {
        proc::comm(pid)
    }

    fn title_and_parent(&self, pid: Pid) -> (Option<String>, Option<Pid>) {
        proc::comm_and_parent(pid)
    }

    fn namespaced_pid(&self, pid: Pid) -> Option<Pid> {
        proc::namespaced_pid(pid)
    }

    fn cmdline(&self, pid: Pid) -> Option<Vec<String>> {
        nul_separated(pid, "cmdline")
    }

    fn environ(&self, pid: Pid) -> Option<Vec<(String, String)>> {
        let vars = nul_separated(pid, "environ")?;
        Some(
            vars.into_iter()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect(),
        )
    }

    fn exe_id(&self, pid: Pid) -> Option<FileId> {
        proc::exe_id(pid).map(|(dev, ino)| FileId { dev, ino })
    }

    fn descendants(&self, pid: Pid) -> Vec<Pid> {
        let read = || Ok::<_, std::convert::Infallible>(proc::descendants(pid));
        self.descendants.get_or_read(pid, read).unwrap_or_default()
    }

    fn vitals(&self, id: Identity, errs: &mut PartialErrors) -> Result<Vitals, ProcError> {
        proc::vitals(&self.host, id, errs)
    }

    fn memory(&self, pid: Pid) -> Result<(u64, u64), ProcError> {
        proc::memory_bytes(&self.host, pid)
    }

    fn watch(&self, id: Identity) -> Option<Box<dyn ExitWatch>> {
        proc::Watched::open(id).map(|w| Box::new(w) as Box<dyn ExitWatch>)
    }

    fn socket_reader(&self) -> Box<dyn SocketReader> {
        Box::new(Sockets::new(self.tables.clone()))
    }

    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError> {
        let table = self.fd_table(pid)?;
        owned.inodes.extend(&table.1);
        Ok(Some(table.0))
    }

    fn listening(&self, port: u16, pid: Option<Pid>) -> bool {
        !tcp::listen_inodes(port, pid).is_empty()
    }

    fn holds_listener(&self, pid: Pid, port: u16) -> bool {
        let listen = tcp::listen_inodes(port, Some(pid));
        !listen.is_empty()
            && proc::socket_inodes(pid).is_ok_and(|own| listen.iter().any(|i| own.contains(i)))
    }

    fn listen_owners(&self, port: u16, known: &[Identity]) -> Vec<Identity> {
        sockets::listen_owners(known, &|pid| self.listen_inodes(port, pid), &|pid| {
            self.fd_table(pid).map(|table| table.1.clone())
        })
    }

    fn host_listen_counters(&self) -> Result<ListenCounters, String> {
        match std::fs::read_to_string("/proc/net/netstat") {
            Ok(text) => proc_net::parse_listen_counters(&text).ok_or_else(|| {
                "/proc/net/netstat has no TcpExt ListenOverflows/ListenDrops; host listen counters are skipped".to_string()
            }),
            Err(e) => Err(format!(
                "cannot read /proc/net/netstat ({e}); host listen counters are skipped"
            )),
        }
    }

    fn cgroup_memory_limit(&self, pid: Pid) -> Option<u64> {
        cgroup::pid_limit(pid, &self.mounts)
    }

    fn host_memory_bytes(&self) -> Option<u64> {
        cgroup::mem_total()
    }

    fn status(&self, pid: Pid) -> Result<Vec<(String, String)>, ProcError> {
        scene::status(pid)
    }

    fn limits(&self, pid: Pid) -> Result<Vec<ResourceLimit>, ProcError> {
        scene::limits(pid)
    }

    fn threads(&self, pid: Pid, max: usize) -> Result<Vec<ThreadInfo>, ProcError> {
        scene::threads(pid, max)
    }

    fn socket_table(
        &self,
        port: u16,
        pid: Pid,
        owned: &Owned,
        max: usize,
    ) -> Result<Vec<SocketRow>, ProcError> {
        scene::socket_table(port, pid, owned, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The process view's workers, from the parents it lists, are the ones
    /// the kernel's children files give, for a real tree: a shell child of
    /// this test with two children of its own. When the shell exits its
    /// children go to a subreaper or init, and the next listing shows them
    /// gone from this process's tree.
    #[test]
    fn listed_parents_give_the_kernels_tree() {
        use crate::process_view::ProcessView;
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & read _"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let platform: std::sync::Arc<dyn Platform> = std::sync::Arc::new(LinuxPlatform::new());
        let me = std::process::id() as Pid;
        let sh = shell.id() as Pid;
        let sorted = |mut v: Vec<Pid>| {
            v.sort_unstable();
            v
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while platform.descendants(sh).len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the shell's two sleeps did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let view = ProcessView::new(platform.clone(), Duration::ZERO);
        let snap = view.snapshot();
        let tree = sorted(snap.descendants(&*platform, me));
        assert!(tree.contains(&sh), "{tree:?}");
        let kernel = sorted(platform.descendants(me));
        assert_eq!(
            sorted(snap.descendants(&*platform, sh)),
            sorted(platform.descendants(sh))
        );
        // The rest of this test binary's tree can change between the two
        // reads (other tests' children): only the shell's part is compared.
        for pid in std::iter::once(sh).chain(platform.descendants(sh)) {
            assert!(
                kernel.contains(&pid) && tree.contains(&pid),
                "{pid}: {tree:?} / {kernel:?}"
            );
        }
        let sleeps = platform.descendants(sh);
        // The shell exits: its sleeps are orphans, no longer in this tree.
        drop(shell.stdin.take());
        shell.wait().unwrap();
        let tree = view.snapshot().descendants(&*platform, me);
        for pid in &sleeps {
            assert!(!tree.contains(pid), "orphan {pid} still in {tree:?}");
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(*pid).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
    }

    #[test]
    fn comm_keeps_15_bytes_on_a_char_boundary() {
        assert_eq!(comm_of_title("openclaw-gateway"), "openclaw-gatewa");
        assert_eq!(comm_of_title("short"), "short");
        // 14 ASCII bytes, then a two-byte character across the 15th byte.
        assert_eq!(comm_of_title("abcdefghijklmné"), "abcdefghijklmn");
    }
}
