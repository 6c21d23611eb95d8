//! Reads of `/proc/<pid>`: identity, vitals and the process tree.
//!
//! Every read is blocking and belongs in `spawn_blocking`. A process can vanish
//! between any two reads; callers get an error, never a panic.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procfs::process::{LimitValue, Limits, Stat};
use procfs::{FromBufRead, FromRead};

pub use crate::platform::{FdTypes, Identity, PartialErrors, ProcError, Vitals};

fn classify(pid: i32, what: &'static str, e: procfs::ProcError) -> ProcError {
    match e {
        procfs::ProcError::NotFound(_) => ProcError::Gone(pid),
        procfs::ProcError::PermissionDenied(_) => ProcError::Denied { pid, what },
        procfs::ProcError::Io(ref io, _) if io.kind() == std::io::ErrorKind::NotFound => {
            ProcError::Gone(pid)
        }
        procfs::ProcError::Io(ref io, _) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            ProcError::Denied { pid, what }
        }
        other => ProcError::Other {
            pid,
            what,
            reason: other.to_string(),
        },
    }
}

/// `/proc/<pid>/<file>` (or `/proc/<file>` for `None`) whole, in one
/// `open`, one `read` and a `close`. `std::fs::read` also `stat`s and
/// `seek`s the file, begins with a 32-byte probe `read`, as a `/proc` file
/// has no size, and reads again for the end: three times the syscalls, on
/// the samplers' hottest path.
///
/// For the files read here a short read is the end: `stat`, `status`,
/// `comm` and `limits` are one record of a seq file (the kernel grows its
/// buffer until the record fits, then copies as much as asked), and
/// `environ` and `cmdline` fill the buffer while there is more.
pub fn read_file(pid: Option<i32>, file: &str) -> std::io::Result<Vec<u8>> {
    use rustix::fs::{Mode, OFlags};
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/{file}"),
    };
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            // The process went while its file was read.
            Err(rustix::io::Errno::SRCH) => return Err(std::io::ErrorKind::NotFound.into()),
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// How long what one read of a process's `/proc` files told serves the
/// samples that ask for it again: the collectors of a gateway that tick
/// together (discovery, process, memory, connections, lifecycle) read the
/// same files one after the other. Well below the shortest collector
/// interval the tests use (200 ms).
pub const SHARED: Duration = Duration::from_millis(100);

/// Values read in the last [`SHARED`], by key.
#[derive(Debug)]
pub struct Recent<K, V>(Mutex<Option<HashMap<K, (Instant, V)>>>);

impl<K: Eq + std::hash::Hash + Clone, V: Clone> Default for Recent<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + std::hash::Hash + Clone, V: Clone> Recent<K, V> {
    pub const fn new() -> Self {
        Recent(Mutex::new(None))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, Option<HashMap<K, (Instant, V)>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key` read in the last [`SHARED`].
    pub fn get(&self, key: &K) -> Option<V> {
        let map = self.map();
        let (at, v) = map.as_ref()?.get(key)?;
        (at.elapsed() < SHARED).then(|| v.clone())
    }

    /// Keep `v`, read now, for `key`; drops what is older than [`SHARED`].
    pub fn put(&self, key: K, v: V) {
        let mut map = self.map();
        let map = map.get_or_insert_with(HashMap::new);
        map.retain(|_, (at, _)| at.elapsed() < SHARED);
        map.insert(key, (Instant::now(), v));
    }

    /// The value of `key` read in the last [`SHARED`], else `read` now.
    pub fn get_or_read<E>(&self, key: K, read: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        if let Some(v) = self.get(&key) {
            return Ok(v);
        }
        let v = read()?;
        self.put(key, v.clone());
        Ok(v)
    }
}

/// Every `stat` read, for [`sampled_stat`].
static STATS: Recent<i32, Arc<Stat>> = Recent::new();

/// `/proc/<pid>/stat`, parsed, read now; `Gone` when the process is.
fn stat(pid: i32) -> Result<Arc<Stat>, ProcError> {
    let bytes = read_file(Some(pid), "stat").map_err(|e| io_error(pid, "stat", e))?;
    if bytes.is_empty() {
        return Err(ProcError::Gone(pid));
    }
    let stat = Arc::new(Stat::from_read(bytes.as_slice()).map_err(|e| classify(pid, "stat", e))?);
    STATS.put(pid, stat.clone());
    Ok(stat)
}

/// `/proc/<pid>/stat` for a sample (vitals, memory): as read in the last
/// [`SHARED`], by the check that found the process alive a moment ago, else
/// now. Whether a process is alive is always read now ([`identity`]).
fn sampled_stat(pid: i32) -> Result<Arc<Stat>, ProcError> {
    match STATS.get(&pid) {
        Some(stat) => Ok(stat),
        None => stat(pid),
    }
}

/// The number of fds of `pid`: the size of its `fd` folder (Linux 6.2),
/// else its entries counted.
fn fd_count(pid: i32) -> Result<u64, ProcError> {
    let err = |e: rustix::io::Errno| io_error(pid, "fd", e.into());
    let path = format!("/proc/{pid}/fd");
    let st = rustix::fs::stat(path.as_str()).map_err(err)?;
    if st.st_size > 0 {
        return Ok(st.st_size as u64);
    }
    use rustix::fs::{Mode, OFlags};
    let dir = rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut n = 0;
    for entry in rustix::fs::Dir::read_from(&dir).map_err(err)? {
        if entry.map_err(err)?.file_name().to_bytes().first() != Some(&b'.') {
            n += 1;
        }
    }
    Ok(n)
}

/// The start time of `pid`, or `Gone`.
pub fn identity(pid: i32) -> Result<Identity, ProcError> {
    let stat = stat(pid)?;
    // A zombie has exited: its gateway is gone even though the pid lingers.
    if stat.state == 'Z' || stat.state == 'X' {
        return Err(ProcError::Gone(pid));
    }
    Ok(Identity {
        pid,
        start: stat.starttime,
    })
}

/// An open `/proc/<pid>/stat` of one process, re-read in place: one `pread`
/// tells whether that process still runs. A reused pid is another process;
/// the old file then reads as an error. Where the kernel has pidfds (Linux
/// 5.3), also a pidfd of it, to sleep until it exits.
#[derive(Debug)]
pub struct Watched {
    id: Identity,
    file: std::fs::File,
    buf: Vec<u8>,
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Watched {
    /// Open the stat file of `id`, if it is that process that runs now.
    pub fn open(id: Identity) -> Option<Watched> {
        // The pidfd first: once `id` is verified below, it names that process
        // and no later one with the same pid.
        let pidfd = rustix::process::Pid::from_raw(id.pid).and_then(|pid| {
            rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
        });
        let file = std::fs::File::open(format!("/proc/{}/stat", id.pid)).ok()?;
        let mut w = Watched {
            id,
            file,
            buf: vec![0; 1024],
            pidfd,
        };
        (identity(id.pid).ok() == Some(id) && w.alive()).then_some(w)
    }

    pub fn id(&self) -> Identity {
        self.id
    }

    /// Whether the process runs still (a zombie has exited): one `poll` of
    /// its pidfd, else one `pread` of its stat file.
    pub fn alive(&mut self) -> bool {
        use std::os::unix::fs::FileExt;
        if let Some(fd) = &self.pidfd {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if let Ok(ready) = poll(&mut fds, Some(&now)) {
                return ready == 0;
            }
        }
        let Ok(n) = self.file.read_at(&mut self.buf, 0) else {
            return false;
        };
        let stat = &self.buf[..n];
        let state = stat
            .iter()
            .rposition(|&b| b == b')')
            .and_then(|i| stat.get(i + 2));
        matches!(state, Some(s) if !matches!(s, b'Z' | b'X'))
    }

    /// Its pidfd again, to sleep on with others'; `None` without one.
    pub fn signal(&self) -> Option<super::ExitSignal> {
        let fd = self.pidfd.as_ref()?.try_clone().ok()?;
        Some(super::ExitSignal(fd))
    }

    /// Sleep until the process exits or `timeout` passes. `false` at once
    /// without a pidfd (a kernel before 5.3): the caller then has to poll.
    pub fn wait_exit(&self, timeout: std::time::Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let Some(fd) = &self.pidfd else {
            return false;
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        // Interrupted or failed: the caller's next check decides.
        let _ = poll(&mut fds, Some(&timeout));
        true
    }
}

/// The executable file `pid` runs, as (device, inode); `None` when unreadable
/// (another user's process without CAP_SYS_PTRACE, or gone).
pub fn exe_id(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// `/proc/<pid>/comm`, without the newline: one read (procfs has it only in
/// the whole `stat`).
pub fn comm(pid: i32) -> Option<String> {
    let s = read_file(Some(pid), "comm").ok()?;
    let s = String::from_utf8_lossy(&s);
    Some(s.trim_end_matches('\n').to_string())
}

/// `comm` and the parent's pid from `/proc/<pid>/stat`, in one read: its
/// `comm` field is the same bytes as the `comm` file (fs/proc/array.c,
/// unescaped in both), between the first `(` and the last `)`, as a name may
/// hold both. `(None, None)` for a process gone or unreadable.
pub fn comm_and_parent(pid: i32) -> (Option<String>, Option<i32>) {
    match read_file(Some(pid), "stat") {
        Ok(stat) => parse_comm_and_parent(&stat),
        Err(_) => (None, None),
    }
}

fn parse_comm_and_parent(stat: &[u8]) -> (Option<String>, Option<i32>) {
    let (Some(open), Some(close)) = (
        stat.iter().position(|&b| b == b'('),
        stat.iter().rposition(|&b| b == b')'),
    ) else {
        return (None, None);
    };
    if close < open {
        return (None, None);
    }
    let comm = String::from_utf8_lossy(&stat[open + 1..close]).into_owned();
    // After the name: " <state> <ppid> ...".
    let parent = std::str::from_utf8(&stat[close + 1..])
        .ok()
        .and_then(|rest| rest.split_ascii_whitespace().nth(1)?.parse().ok());
    (Some(comm), parent)
}

/// The pid of `pid` in the innermost pid namespace it runs in, when that is
/// not the namespace of this `/proc` ([`namespaced_pid_of`]).
pub fn namespaced_pid(pid: i32) -> Option<i32> {
    // A process of the exporter's own pid namespace has no other pid: one
    // `readlink` tells, where its status would be a read of 1.5 KB.
    if let Some(own) = own_pid_namespace() {
        if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .as_ref()
            == Some(own)
        {
            return None;
        }
    }
    let status = read_file(Some(pid), "status").ok()?;
    namespaced_pid_of(&String::from_utf8_lossy(&status))
}

/// The exporter's own pid namespace, as `pid:[4026531836]`, where this
/// `/proc` numbers it (its status lists one pid): read once.
fn own_pid_namespace() -> Option<&'static std::path::PathBuf> {
    static OWN: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        let status = read_file(None, "self/status").ok()?;
        if namespaced_pid_of(&String::from_utf8_lossy(&status)).is_some() {
            return None;
        }
        std::fs::read_link("/proc/self/ns/pid").ok()
    })
    .as_ref()
}

/// From `/proc/<pid>/status`: the last pid of its `NSpid:` line, which lists
/// the process's pid in each pid namespace it is in, this `/proc`'s first and
/// the innermost last (proc(5), Linux 4.1). `None` with a single pid (a process
/// of this namespace), without the line (an older kernel), or when the line
/// is not pids.
pub fn namespaced_pid_of(status: &str) -> Option<i32> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match pids.as_slice() {
        [_, .., inner] if *inner > 0 => Some(*inner),
        _ => None,
    }
}

/// The numeric pids under `/proc`. By hand: one `readdir`, where procfs's
/// `all_processes` opens every process's directory, on the process view's path.
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Socket inodes among the fds of `pid` (`socket:[N]` links). Unreadable fd
/// tables yield an error so the caller can tell "none" from "denied".
pub fn socket_inodes(pid: i32) -> Result<HashSet<u64>, ProcError> {
    let mut inodes = HashSet::new();
    scan_fds(pid, &mut inodes)?;
    Ok(inodes)
}

/// Read the link of every fd of `pid` once: count the fds by type and add the
/// inodes of its sockets to `sockets`. An fd closed while it is read is
/// skipped. This is one `readlinkat` per fd, the cost of the whole
/// connections sample for a process with tens of thousands of fds.
pub fn scan_fds(pid: i32, sockets: &mut HashSet<u64>) -> Result<FdTypes, ProcError> {
    use rustix::fs::{Mode, OFlags};
    let err = |e: rustix::io::Errno| io_error(pid, "fd", e.into());
    let dir = rustix::fs::open(
        format!("/proc/{pid}/fd"),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    // Read straight from `dir` into this buffer: `Dir` would reopen it and
    // check its flags first, three more syscalls a process a round.
    let mut names = [std::mem::MaybeUninit::uninit(); 4096];
    let mut entries = rustix::fs::RawDir::new(&dir, &mut names);
    let mut types = FdTypes::default();
    let mut buf = Vec::with_capacity(256);
    while let Some(entry) = entries.next() {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        if name.to_bytes().first() == Some(&b'.') {
            continue;
        }
        let Ok(target) = rustix::fs::readlinkat(&dir, name, std::mem::take(&mut buf)) else {
            continue;
        };
        let link = target.as_bytes();
        if let Some(rest) = link.strip_prefix(b"socket:[") {
            types.socket += 1;
            if let Some(inode) = rest
                .strip_suffix(b"]")
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse().ok())
            {
                sockets.insert(inode);
            }
        } else if link.starts_with(b"pipe:") {
            types.pipe += 1;
        } else if link.starts_with(b"anon_inode:") {
            types.anon_inode += 1;
        } else if link.starts_with(b"/") {
            types.file += 1;
        } else {
            types.other += 1;
        }
        buf = target.into_bytes();
    }
    Ok(types)
}

/// The network namespace of `pid`, as `net:[4026531840]`.
/// Read at most once per [`SHARED`]: a round of a gateway's samples asks
/// three times (its connections, its LISTEN owners, its socket table).
pub fn net_namespace(pid: i32) -> Result<std::path::PathBuf, ProcError> {
    static NETNS: Recent<i32, std::path::PathBuf> = Recent::new();
    NETNS.get_or_read(pid, || {
        std::fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| io_error(pid, "ns/net", e))
    })
}

/// The exporter's own network namespace, read once: it never changes it.
pub fn own_net_namespace() -> Option<std::path::PathBuf> {
    static OWN: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| std::fs::read_link("/proc/self/ns/net").ok())
        .clone()
}

fn io_error(pid: i32, what: &'static str, e: std::io::Error) -> ProcError {
    ProcError::from_io(pid, what, e)
}

/// All descendants of `pid`, children first. Uses the kernel's per-thread
/// `children` lists; falls back to a scan of every process's parent pid.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut queue = vec![pid];
    let mut seen = HashSet::from([pid]);
    while let Some(p) = queue.pop() {
        let kids = children_of(p).unwrap_or_else(|| children_by_scan(p));
        for k in kids {
            if seen.insert(k) {
                out.push(k);
                queue.push(k);
            }
        }
    }
    out
}

/// Children from `/proc/<pid>/task/*/children`; `None` when the kernel lacks
/// it. By hand: one `openat` and `read` a thread, where procfs opens each
/// thread's folder and stats the file too (every collector of every gateway
/// asks for the workers a round).
fn children_of(pid: i32) -> Option<Vec<i32>> {
    use rustix::fs::{Mode, OFlags};
    let tasks = rustix::fs::open(
        format!("/proc/{pid}/task"),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    );
    let tasks = match tasks {
        Ok(dir) => dir,
        // Gone: it has no children (a scan would find none either).
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::SRCH) => return Some(Vec::new()),
        Err(_) => return None,
    };
    let mut kids = Vec::new();
    let mut buf = vec![0u8; 256];
    for entry in rustix::fs::Dir::read_from(&tasks).ok()? {
        let Ok(entry) = entry else { break };
        let tid = entry.file_name().to_bytes();
        if tid.first() == Some(&b'.') {
            continue;
        }
        let mut path = tid.to_vec();
        path.extend_from_slice(b"/children");
        match rustix::fs::openat(
            &tasks,
            path.as_slice(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(file) => {
                let mut len = 0;
                loop {
                    if len == buf.len() {
                        buf.resize(buf.len() * 2, 0);
                    }
                    let asked = buf.len() - len;
                    match rustix::io::read(&file, &mut buf[len..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    // A seq file, one child a record: less than asked, and
                    // less than the page the kernel fills, is the end.
                    if len < buf.len() && asked < 4096 {
                        break;
                    }
                }
                let list = std::str::from_utf8(&buf[..len]).unwrap_or("");
                kids.extend(
                    list.split_ascii_whitespace()
                        .filter_map(|k| k.parse::<i32>().ok()),
                );
            }
            // The thread exited, or the kernel has no children files at all
            // (CONFIG_PROC_CHILDREN).
            Err(rustix::io::Errno::NOENT)
                if !std::path::Path::new("/proc/thread-self/children").exists() =>
            {
                return None
            }
            Err(_) => {}
        }
    }
    Some(kids)
}

fn children_by_scan(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat(p).is_ok_and(|s| s.ppid == pid))
        .collect()
}

/// Constants of this host, read once.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub ticks_per_second: u64,
    pub page_size: u64,
    pub boot_time_seconds: u64,
}

impl Host {
    pub fn read() -> Host {
        Host {
            ticks_per_second: procfs::ticks_per_second().max(1),
            page_size: procfs::page_size(),
            boot_time_seconds: procfs::boot_time_secs().unwrap_or(0),
        }
    }
}

/// Read the vitals of the process `id`. Fails only when the process is gone or
/// no longer the same process; unreadable fds or limits are reported in `errs`.
pub fn vitals(host: &Host, id: Identity, errs: &mut PartialErrors) -> Result<Vitals, ProcError> {
    let pid = id.pid;
    let stat = sampled_stat(pid)?;
    if stat.starttime != id.start {
        return Err(ProcError::Gone(pid));
    }
    let open_fds = match fd_count(pid) {
        Ok(n) => Some(n),
        Err(e) => {
            errs.0.push(e);
            None
        }
    };
    let limits = read_file(Some(pid), "limits")
        .map_err(|e| io_error(pid, "limits", e))
        .and_then(|b| Limits::from_buf_read(b.as_slice()).map_err(|e| classify(pid, "limits", e)));
    let max_fds = match limits {
        Ok(l) => match l.max_open_files.soft_limit {
            LimitValue::Value(v) => Some(v),
            LimitValue::Unlimited => None,
        },
        Err(e) => {
            errs.0.push(e);
            None
        }
    };
    let ticks = host.ticks_per_second as f64;
    Ok(Vitals {
        resident_bytes: stat.rss.saturating_mul(host.page_size),
        virtual_bytes: stat.vsize,
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        threads: Some(stat.num_threads.max(0) as u64),
        start_time_seconds: host.boot_time_seconds as f64 + stat.starttime as f64 / ticks,
        open_fds,
        max_fds,
    })
}

/// Resident and virtual memory of one process in bytes, from one read of
/// `/proc/<pid>/stat`.
pub fn memory_bytes(host: &Host, pid: i32) -> Result<(u64, u64), ProcError> {
    let stat = sampled_stat(pid)?;
    Ok((stat.rss.saturating_mul(host.page_size), stat.vsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of `/proc/<pid>/status` of the real gateway started under
    /// `unshare --pid --fork --mount-proc`, as the host reads it (recorded).
    const GATEWAY_IN_A_PID_NAMESPACE: &str = "Name:\topenclaw-gatewa\nUmask:\t0022\n\
        State:\tR (running)\nTgid:\t5583\nNgid:\t0\nPid:\t5583\nPPid:\t5581\n\
        TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t256\nGroups:\t \n\
        NStgid:\t5583\t1\nNSpid:\t5583\t1\nNSpgid:\t5576\t0\nNSsid:\t2048\t0\n\
        Kthread:\t0\nVmPeak:\t 5672300 kB\n";

    #[test]
    fn comm_and_parent_come_from_one_stat() {
        // A name may hold spaces and parentheses: it ends at the last `)`.
        let stat = b"5583 (openclaw) (x y) S 5581 5576 2048 0 -1 4194560 1";
        assert_eq!(
            parse_comm_and_parent(stat),
            (Some("openclaw) (x y".to_string()), Some(5581))
        );
        assert_eq!(
            parse_comm_and_parent(b"1 (init) S 0 1 1"),
            (Some("init".into()), Some(0))
        );
        // Cut or garbled: no parent, never a panic.
        assert_eq!(
            parse_comm_and_parent(b"12 (node) S"),
            (Some("node".into()), None)
        );
        assert_eq!(parse_comm_and_parent(b"12 (node"), (None, None));
        assert_eq!(parse_comm_and_parent(b") 12 ("), (None, None));
        assert_eq!(parse_comm_and_parent(b""), (None, None));
        // This process: the same name as its comm file, and its real parent.
        let me = std::process::id() as i32;
        assert_eq!(
            comm_and_parent(me),
            (comm(me), Some(std::os::unix::process::parent_id() as i32))
        );
    }

    #[test]
    fn the_nested_pid_is_the_last_of_nspid() {
        assert_eq!(namespaced_pid_of(GATEWAY_IN_A_PID_NAMESPACE), Some(1));
        // Its worker, two levels down, and a process of the host's namespace.
        assert_eq!(namespaced_pid_of("NSpid:\t5717\t302\t25\n"), Some(25));
        let host = GATEWAY_IN_A_PID_NAMESPACE
            .replace("NStgid:\t5583\t1", "NStgid:\t5583")
            .replace("NSpid:\t5583\t1", "NSpid:\t5583");
        assert_eq!(namespaced_pid_of(&host), None);
        // A kernel before 4.1 has no NSpid; garbage is no pid.
        for bad in [
            "Name:\tx\nPid:\t7\n",
            "NSpid:\n",
            "NSpid:\t5583\tx\n",
            "NSpid:\t5583\t-1\n",
            "NSpid:\t5583\t0\n",
        ] {
            assert_eq!(namespaced_pid_of(bad), None, "{bad:?}");
        }
        // This test runs in the pid namespace its /proc numbers.
        let me = std::process::id() as i32;
        assert_eq!(namespaced_pid(me), None);
    }

    #[test]
    fn a_watched_process_is_alive_until_it_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = identity(child.id() as i32).unwrap();
        let mut w = Watched::open(id).unwrap();
        assert!(w.alive() && w.alive(), "re-read in place");
        // Another start time is another process: not opened.
        let other = Identity {
            start: id.start + 1,
            ..id
        };
        assert!(Watched::open(other).is_none());
        child.kill().unwrap();
        // A zombie is not alive either, before and after it is reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while w.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!w.alive());
        child.wait().unwrap();
        assert!(!w.alive());
    }

    #[test]
    fn own_identity_and_vitals() {
        let me = std::process::id() as i32;
        let id = identity(me).unwrap();
        let host = Host::read();
        let mut errs = PartialErrors::default();
        let v = vitals(&host, id, &mut errs).unwrap();
        assert!(errs.0.is_empty(), "{errs:?}");
        assert!(v.resident_bytes > 0 && v.threads >= Some(1));
        assert!(v.open_fds.unwrap() >= 3);
        // A different start time is a different process.
        let other = Identity {
            pid: me,
            start: id.start + 1,
        };
        assert!(matches!(
            vitals(&host, other, &mut errs),
            Err(ProcError::Gone(_))
        ));
    }

    /// Processes that exit while they are read, hundreds of times over, at
    /// every step of a sample: each read answers or says the process is gone
    /// (or, for a half-read fd table, skips it); nothing panics or hangs.
    #[test]
    fn processes_vanishing_mid_read_are_gone_not_errors() {
        let host = Host::read();
        let mut gone = 0;
        for _ in 0..200 {
            // A shell with a child, both exiting within a few ms.
            let mut child = std::process::Command::new("sh")
                .args(["-c", "sleep 0.002 & exec sleep 0.004"])
                .spawn()
                .unwrap();
            let pid = child.id() as i32;
            // Reaped as soon as it exits, so that its /proc entries vanish
            // in the middle of the reads below.
            let reaper = std::thread::spawn(move || child.wait().unwrap());
            let Ok(id) = identity(pid) else {
                gone += 1;
                reaper.join().unwrap();
                continue;
            };
            loop {
                let mut errs = PartialErrors::default();
                let v = vitals(&host, id, &mut errs);
                for e in &errs.0 {
                    assert!(!matches!(e, ProcError::Denied { .. }), "our own child: {e}");
                }
                let mut sockets = HashSet::new();
                let fds = scan_fds(pid, &mut sockets);
                let _ = descendants(pid);
                let _ = comm(pid);
                let _ = socket_inodes(pid);
                let _ = memory_bytes(&host, pid);
                if let Err(e) = &v {
                    assert!(matches!(e, ProcError::Gone(_)), "vitals: {e}");
                    gone += 1;
                    break;
                }
                if let Err(e) = &fds {
                    assert!(!matches!(e, ProcError::Denied { .. }), "scan_fds: {e}");
                }
            }
            reaper.join().unwrap();
            // Reaped: gone (or a new process reusing the pid).
            assert!(identity(pid).map_or(true, |i| i != id));
        }
        assert_eq!(gone, 200);
    }

    #[test]
    fn missing_process_is_gone() {
        // pid_max is at most 2^22, so this pid never exists.
        assert!(matches!(identity(i32::MAX), Err(ProcError::Gone(_))));
    }

    #[test]
    fn fds_by_type_and_socket_inodes() {
        let me = std::process::id() as i32;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _file = std::fs::File::open("/proc/self/stat").unwrap();
        let mut child = std::process::Command::new("true")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut sockets = HashSet::new();
        let types = scan_fds(me, &mut sockets).unwrap();
        assert!(
            types.socket >= 1 && types.file >= 1 && types.pipe >= 1,
            "{types:?}"
        );
        child.wait().unwrap();
        assert_eq!(sockets, socket_inodes(me).unwrap());
        let inode = crate::platform::linux::proc_net::listen_inodes(
            std::path::Path::new("/proc/net"),
            l.local_addr().unwrap().port(),
        );
        assert!(sockets.contains(&inode[0]));
        assert!(matches!(
            scan_fds(i32::MAX, &mut sockets),
            Err(ProcError::Gone(_))
        ));
        assert_eq!(net_namespace(me).ok(), own_net_namespace());
    }

    #[test]
    fn children_are_found() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = descendants(std::process::id() as i32);
        assert!(kids.contains(&(child.id() as i32)), "{kids:?}");
        assert!(children_by_scan(std::process::id() as i32).contains(&(child.id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
