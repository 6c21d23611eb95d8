//! The native Linux backend: procfs, netlink sock_diag, the `/proc/net/tcp`
//! streamer and pidfd.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{
    Caps, ExitWatch, FdTypes, FileId, Identity, ListenCounters, Owned, PartialErrors, Pid,
    Platform, ProcError, SocketReader, Tally, Vitals,
};
use crate::memory_limit::CgroupMounts;
use crate::proc::{self, Host};
use crate::sock_diag::{DiagError, SockDiag};
use crate::{proc_net, tcp};

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
}

impl LinuxPlatform {
    pub fn new() -> LinuxPlatform {
        LinuxPlatform {
            host: Host::read(),
            mounts: CgroupMounts::read(),
        }
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
}

/// NUL-separated `/proc/<pid>/{cmdline,environ}` content, lossily decoded.
fn nul_separated(pid: Pid, file: &str) -> Option<Vec<String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/{file}")).ok()?;
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
        Caps {
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
        }
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
        proc::descendants(pid)
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
        Box::new(Sockets::new())
    }

    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError> {
        proc::scan_fds(pid, &mut owned.inodes).map(Some)
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
        listen_owners(port, known)
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
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|c| crate::memory_limit::cgroup_limit(&c, &self.mounts))
    }

    fn host_memory_bytes(&self) -> Option<u64> {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| crate::memory_limit::mem_total(&m))
    }
}

/// Processes holding a LISTEN socket on `port`. The usual case (the gateway
/// itself holds them all) costs one fd-table read; only a socket nobody known
/// holds triggers a scan of every process.
fn listen_owners(port: u16, known: &[Identity]) -> Vec<Identity> {
    let mut listen: HashSet<u64> = tcp::listen_inodes(port, None).into_iter().collect();
    for id in known.iter().filter(|id| tcp::in_other_namespace(id.pid)) {
        listen.extend(tcp::listen_inodes(port, Some(id.pid)));
    }
    if listen.is_empty() {
        return Vec::new();
    }
    let mut owners = Vec::new();
    let holds = |pid: i32, listen: &HashSet<u64>| {
        proc::socket_inodes(pid)
            .map(|own| {
                listen
                    .iter()
                    .filter(|i| own.contains(i))
                    .copied()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    for id in known {
        let held = holds(id.pid, &listen);
        if !held.is_empty() {
            owners.push(*id);
            for i in held {
                listen.remove(&i);
            }
        }
    }
    if listen.is_empty() {
        return owners;
    }
    for pid in proc::all_pids() {
        if owners.iter().any(|o| o.pid == pid) {
            continue;
        }
        if !holds(pid, &listen).is_empty() {
            if let Ok(id) = proc::identity(pid) {
                owners.push(id);
            }
        }
    }
    owners
}

/// Counts through netlink sock_diag; a gateway in another network namespace
/// than the exporter (a container), or a host without sock_diag, is read from
/// `/proc/<pid>/net/tcp{,6}` instead.
struct Sockets {
    diag: Option<SockDiag>,
    /// Set once sock_diag proved unavailable (no permission, not built in).
    netlink_unavailable: bool,
    own_netns: Option<PathBuf>,
    notices: Vec<(&'static str, String)>,
}

impl Sockets {
    fn new() -> Sockets {
        Sockets {
            diag: None,
            netlink_unavailable: false,
            own_netns: proc::own_net_namespace(),
            notices: Vec::new(),
        }
    }

    /// Whether `pid` runs in another network namespace than the exporter, or
    /// that cannot be told: then only `/proc/<pid>/net` is sure to be its own.
    fn other_netns(&self, pid: Pid) -> bool {
        match (&self.own_netns, proc::net_namespace(pid)) {
            (Some(own), Ok(theirs)) => *own != theirs,
            _ => true,
        }
    }

    fn netlink(&mut self) -> Option<&mut SockDiag> {
        if self.diag.is_none() && !self.netlink_unavailable {
            match SockDiag::open() {
                Ok(d) => self.diag = Some(d),
                Err(e) => self.netlink_failed(e),
            }
        }
        self.diag.as_mut()
    }

    fn netlink_failed(&mut self, e: DiagError) {
        self.diag = None;
        if matches!(e, DiagError::Unavailable(_)) {
            self.netlink_unavailable = true;
        }
        self.notices.push((
            "netlink",
            format!("{e}; reading /proc/<pid>/net/tcp instead"),
        ));
    }
}

impl SocketReader for Sockets {
    fn count(
        &mut self,
        port: u16,
        pid: Option<Pid>,
        owned: Option<&Owned>,
    ) -> Result<Tally, String> {
        let owned = owned.map(|o| &o.inodes);
        if !pid.is_some_and(|p| self.other_netns(p)) {
            if let Some(diag) = self.netlink() {
                match tcp::count_netlink(diag, port, owned) {
                    Ok(t) => return Ok(t),
                    Err(e) => self.netlink_failed(e),
                }
            }
        }
        let net_dir = match pid {
            Some(p) => Path::new("/proc").join(p.to_string()).join("net"),
            None => PathBuf::from("/proc/self/net"),
        };
        tcp::count_proc(&net_dir, port, owned)
            .map_err(|e| format!("reading {}: {e}", net_dir.display()))
    }

    fn take_notices(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.notices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_keeps_15_bytes_on_a_char_boundary() {
        assert_eq!(comm_of_title("openclaw-gateway"), "openclaw-gatewa");
        assert_eq!(comm_of_title("short"), "short");
        // 14 ASCII bytes, then a two-byte character across the 15th byte.
        assert_eq!(comm_of_title("abcdefghijklmné"), "abcdefghijklmn");
    }
}
