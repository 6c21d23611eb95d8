//! The native Windows backend: the portable backend (sysinfo for the process
//! list, command lines, environments and descendants; netstat2's
//! `GetExtendedTcpTable` for sockets and their owners) with Win32 calls where
//! sysinfo falls short ([`win32`]):
//!
//! - identity: `GetProcessTimes` creation time in Unix milliseconds, the
//!   gateway's own lock `startTime` on Windows;
//! - vitals: working set as resident, private bytes as virtual
//!   (`GetProcessMemoryInfo`), kernel + user CPU (`GetProcessTimes`), threads
//!   (Toolhelp32 `cntThreads`), the handle count as open fds
//!   (`GetProcessHandleCount`, what the field report reads with
//!   `handle.exe`); no fd limit: Windows has none per process;
//! - the exit watch: `WaitForSingleObject` on a SYNCHRONIZE handle;
//! - the memory limit: a Job object's, when the gateway shares the exporter's
//!   job ([`WindowsPlatform::cgroup_memory_limit`]).
//!
//! The process title: Windows does not rename a process for
//! `process.title`, so [`Platform::title`] is the executable's name
//! (`node.exe`), as sysinfo gives it.
#![cfg(windows)]

pub mod win32;

use std::io;
use std::os::windows::io::OwnedHandle;
use std::time::Duration;

use super::portable::PortablePlatform;
use super::{
    Caps, ExitWatch, FdTypes, FileId, Identity, ListenCounters, Owned, PartialErrors, Pid,
    Platform, ProcError, SocketReader, Vitals,
};

/// FILETIME's epoch, 1601-01-01, before the Unix epoch, in milliseconds.
const FILETIME_UNIX_MS: u64 = 11_644_473_600_000;

/// A creation time (100 ns intervals since 1601) in Unix milliseconds, as the
/// gateway writes its lock's `startTime` on Windows: `Number(ticks / 10000n -
/// 11644473600000n)` (openclaw dist/pid-alive-CXdZEzr_.mjs,
/// `loadNativeProcessStartTime`). Its fallbacks (PowerShell's
/// `Process.StartTime`, wmic's `CreationDate`) cut to the millisecond too.
pub fn unix_millis(creation: u64) -> u64 {
    (creation / 10_000).saturating_sub(FILETIME_UNIX_MS)
}

/// A creation time in Unix seconds, to the 100 ns.
fn unix_seconds(creation: u64) -> f64 {
    creation as f64 / 1e7 - (FILETIME_UNIX_MS / 1000) as f64
}

fn denied(e: &io::Error) -> bool {
    e.raw_os_error() == Some(win32::ERROR_ACCESS_DENIED as i32)
}

/// Sort an error of `what` on `pid`: a pid that names no process is
/// `ERROR_INVALID_PARAMETER` to `OpenProcess`.
fn proc_error(pid: Pid, what: &'static str, e: io::Error) -> ProcError {
    match e.raw_os_error().map(|c| c as u32) {
        Some(win32::ERROR_INVALID_PARAMETER) => ProcError::Gone(pid),
        Some(win32::ERROR_ACCESS_DENIED) => ProcError::Denied { pid, what },
        _ => ProcError::Other {
            pid,
            what,
            reason: e.to_string(),
        },
    }
}

/// What the memory counters need besides the query right, by their docs
/// (in practice the query right does): asked for, and done without when
/// refused, as sysinfo does.
const MEMORY: u32 = win32::PROCESS_QUERY_LIMITED_INFORMATION | win32::PROCESS_VM_READ;

/// A handle to `pid` with `access` (PROCESS_QUERY_LIMITED_INFORMATION at
/// least), if it runs: an exited process stays openable while a handle to
/// it is held.
fn open(pid: Pid, access: u32) -> Result<(OwnedHandle, win32::Times), ProcError> {
    let upid = u32::try_from(pid).map_err(|_| ProcError::Gone(pid))?;
    let h = match win32::open_process(upid, access) {
        Err(e) if access & win32::PROCESS_VM_READ != 0 && denied(&e) => {
            win32::open_process(upid, access & !win32::PROCESS_VM_READ)
        }
        r => r,
    };
    let h = h.map_err(|e| proc_error(pid, "the process", e))?;
    if win32::exited(&h).map_err(|e| proc_error(pid, "the exit code", e))? {
        return Err(ProcError::Gone(pid));
    }
    let t = win32::times(&h).map_err(|e| proc_error(pid, "the process times", e))?;
    Ok((h, t))
}

/// A handle to `id`, `Gone` when its pid is another process now.
fn open_id(id: Identity, access: u32) -> Result<(OwnedHandle, win32::Times), ProcError> {
    let (h, t) = open(id.pid, access)?;
    if unix_millis(t.creation) != id.start {
        return Err(ProcError::Gone(id.pid));
    }
    Ok((h, t))
}

#[derive(Debug, Default)]
pub struct WindowsPlatform {
    portable: PortablePlatform,
}

impl WindowsPlatform {
    pub fn new() -> WindowsPlatform {
        WindowsPlatform {
            portable: PortablePlatform::new(),
        }
    }
}

/// A process watched through a SYNCHRONIZE handle, which names it and no
/// later process with its pid.
#[derive(Debug)]
struct Watched {
    id: Identity,
    handle: OwnedHandle,
}

impl ExitWatch for Watched {
    fn id(&self) -> Identity {
        self.id
    }
    fn alive(&mut self) -> bool {
        win32::wait(&self.handle, Duration::ZERO).is_ok_and(|exited| !exited)
    }
    fn wait_exit(&self, timeout: Duration) -> bool {
        win32::wait(&self.handle, timeout).unwrap_or(false)
    }
}

impl Platform for WindowsPlatform {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn caps(&self) -> Caps {
        Caps {
            threads: true,
            open_fds: true,
            max_fds: false,
            fd_types: false,
            exit_watch: true,
            cgroup_memory_limit: true,
            ..self.portable.caps()
        }
    }

    fn pids(&self) -> Vec<Pid> {
        self.portable.pids()
    }

    fn identity(&self, pid: Pid) -> Result<Identity, ProcError> {
        let (_, t) = open(pid, win32::PROCESS_QUERY_LIMITED_INFORMATION)?;
        Ok(Identity {
            pid,
            start: unix_millis(t.creation),
        })
    }

    fn title(&self, pid: Pid) -> Option<String> {
        self.portable.title(pid)
    }

    /// Both are Unix milliseconds cut from the same creation time; one
    /// millisecond either way is allowed for a fallback's rounding.
    fn lock_start_matches(&self, recorded: u64, id: &Identity) -> bool {
        recorded.abs_diff(id.start) <= 1
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
        let (h, t) = open_id(id, MEMORY)?;
        let (resident, private) =
            win32::memory(&h).map_err(|e| proc_error(id.pid, "the memory counters", e))?;
        let mut partial = |what, r: io::Result<Option<u32>>| match r {
            Ok(n) => n.map(u64::from),
            Err(e) => {
                errs.0.push(proc_error(id.pid, what, e));
                None
            }
        };
        // Every process holds handles: 0 is a count the OS does not keep
        // (Wine), not a count.
        let handles = win32::handle_count(&h).and_then(|n| match n {
            0 => Err(io::Error::other("the OS reports no handles")),
            n => Ok(Some(n)),
        });
        let open_fds = partial("the handle count", handles);
        let threads = partial("the thread count", win32::thread_count(id.pid as u32));
        Ok(Vitals {
            resident_bytes: resident,
            virtual_bytes: private,
            cpu_seconds: (t.kernel + t.user) as f64 / 1e7,
            start_time_seconds: unix_seconds(t.creation),
            threads,
            open_fds,
            max_fds: None,
        })
    }

    fn memory(&self, pid: Pid) -> Result<(u64, u64), ProcError> {
        let (h, _) = open(pid, MEMORY)?;
        win32::memory(&h).map_err(|e| proc_error(pid, "the memory counters", e))
    }

    fn watch(&self, id: Identity) -> Option<Box<dyn ExitWatch>> {
        let access = win32::PROCESS_QUERY_LIMITED_INFORMATION | win32::PROCESS_SYNCHRONIZE;
        let (handle, _) = open_id(id, access).ok()?;
        Some(Box::new(Watched { id, handle }))
    }

    fn socket_reader(&self) -> Box<dyn SocketReader> {
        self.portable.socket_reader()
    }

    fn scan_fds(&self, pid: Pid, owned: &mut Owned) -> Result<Option<FdTypes>, ProcError> {
        self.portable.scan_fds(pid, owned)
    }

    fn listening(&self, port: u16, pid: Option<Pid>) -> bool {
        self.portable.listening(port, pid)
    }

    fn holds_listener(&self, pid: Pid, port: u16) -> bool {
        self.portable.holds_listener(pid, port)
    }

    fn listen_owners(&self, port: u16, _known: &[Identity]) -> Vec<Identity> {
        let owners = super::portable::sockets::listeners(port).unwrap_or_default();
        owners
            .into_iter()
            .filter_map(|pid| self.identity(pid).ok())
            .collect()
    }

    fn host_listen_counters(&self) -> Result<ListenCounters, String> {
        Err("Windows has no host listen counters the exporter reads".to_string())
    }

    /// A Job object's memory limit. Another process's job cannot be opened,
    /// but the exporter can read its own (`QueryInformationJobObject` with
    /// no handle): when the gateway runs in that job too (`IsProcessInJob`,
    /// then the job's process list), as when both run in one Windows
    /// container or were started in one job, the job's per-process
    /// (`ProcessMemoryLimit`) or whole-job (`JobMemoryLimit`) limit applies
    /// to it, the smaller when both are set. Both limit committed memory
    /// (private bytes). A job of the gateway's that the exporter is not in,
    /// or a parent job's stricter limit, is not seen.
    fn cgroup_memory_limit(&self, pid: Pid) -> Option<u64> {
        let (h, _) = open(pid, win32::PROCESS_QUERY_LIMITED_INFORMATION).ok()?;
        // In no job at all: nothing to ask. (Wine refuses IsProcessInJob a
        // PROCESS_QUERY_LIMITED_INFORMATION handle; the list decides then.)
        if win32::in_a_job(&h).ok() == Some(false)
            || !win32::own_job_pids().ok()?.contains(&(pid as u32))
        {
            return None;
        }
        let (process, job) = win32::own_job_memory_limits().ok()?;
        process.into_iter().chain(job).filter(|&b| b > 0).min()
    }

    fn host_memory_bytes(&self) -> Option<u64> {
        self.portable.host_memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_limit::{self, Source};
    use std::process::{Child, Command, Stdio};
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    fn now_millis() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    /// `ping.exe` for about `seconds`, with `env` added.
    fn child(seconds: u32, env: &[(&str, &str)]) -> Child {
        Command::new("ping.exe")
            .args(["-n", &seconds.to_string(), "127.0.0.1"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Handles are counted, except under Wine, whose
    /// `GetProcessHandleCount` says 0: absent then, and the failure told.
    fn handles_or_wine(v: &Vitals, errs: &PartialErrors) {
        if win32::wine() {
            assert_eq!(v.open_fds, None);
            assert!(
                matches!(
                    &errs.0[..],
                    [ProcError::Other {
                        what: "the handle count",
                        ..
                    }]
                ),
                "{errs:?}"
            );
        } else {
            assert!(errs.0.is_empty(), "{errs:?}");
            assert!(v.open_fds.unwrap() > 0, "{v:?}");
        }
    }

    #[test]
    fn creation_time_in_the_gateways_unit() {
        // 2026-01-01T00:00:00.0009999Z: the gateway cuts to the millisecond.
        let ticks = (1_767_225_600_000 + FILETIME_UNIX_MS) * 10_000 + 9_999;
        assert_eq!(unix_millis(ticks), 1_767_225_600_000);
        assert!((unix_seconds(ticks) - 1_767_225_600.001).abs() < 1e-5);
        let p = WindowsPlatform::new();
        let id = Identity {
            pid: 1,
            start: 1_767_225_600_000,
        };
        assert!(p.lock_start_matches(1_767_225_600_000, &id));
        assert!(p.lock_start_matches(1_767_225_600_001, &id));
        assert!(!p.lock_start_matches(1_767_225_600_002, &id));
        // Unix seconds, as another OS's lock has, are not this process.
        assert!(!p.lock_start_matches(1_767_225_600, &id));
    }

    /// The test process against sysinfo (the portable backend) and against
    /// what the test itself does: threads it starts, handles it opens, CPU
    /// it spends.
    #[test]
    fn own_process() {
        let p = WindowsPlatform::new();
        let portable = PortablePlatform::new();
        let pid = std::process::id() as Pid;
        let id = p.identity(pid).unwrap();
        let pid_ = portable.identity(pid).unwrap();
        assert!(
            portable.lock_start_matches(id.start, &pid_),
            "{id:?} vs sysinfo {pid_:?}"
        );
        assert!(id.start <= now_millis() && now_millis() - id.start < 3_600_000);
        assert_eq!(p.identity(pid).unwrap(), id, "stable");
        assert!(p.lock_start_matches(id.start, &id));

        let sys = portable
            .vitals(pid_, &mut PartialErrors::default())
            .unwrap();
        let mut errs = PartialErrors::default();
        let before = p.vitals(id, &mut errs).unwrap();
        handles_or_wine(&before, &errs);
        assert_eq!(before.start_time_seconds.floor() as u64, id.start / 1000);
        assert_eq!(before.max_fds, None);
        let ws = before.resident_bytes;
        assert!(
            ws.abs_diff(sys.resident_bytes) < (32 << 20).max(ws / 4),
            "working set {ws} vs sysinfo {}",
            sys.resident_bytes
        );
        assert!(before.virtual_bytes > 0);
        assert!(before.cpu_seconds > 0.0);

        // Four threads more, 64 handles more, 0.2 s of CPU more.
        let gate = std::sync::Arc::new(std::sync::Barrier::new(5));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let gate = gate.clone();
                std::thread::spawn(move || {
                    gate.wait();
                    gate.wait();
                })
            })
            .collect();
        gate.wait();
        let exe = std::env::current_exe().unwrap();
        let files: Vec<_> = (0..64)
            .map(|_| std::fs::File::open(&exe).unwrap())
            .collect();
        // Spin until 0.2 s of CPU show (the cores are shared: wall time
        // says little), within 20 s.
        let spin = Instant::now();
        let mut x = 0u64;
        let mut after = before.clone();
        while after.cpu_seconds < before.cpu_seconds + 0.2 && spin.elapsed().as_secs() < 20 {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = p.vitals(id, &mut errs).unwrap();
        }
        let sys_after = portable
            .vitals(pid_, &mut PartialErrors::default())
            .unwrap();
        gate.wait();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(files);
        assert!(after.threads.unwrap() >= 5, "{after:?}");
        if let (Some(a), Some(b)) = (after.open_fds, before.open_fds) {
            let opened = a as i64 - b as i64;
            assert!(opened >= 48, "{opened} handles more, 64 opened");
        }
        let spent = after.cpu_seconds - before.cpu_seconds;
        assert!(spent >= 0.19, "{spent} s of CPU in {:?}", spin.elapsed());
        // sysinfo read before and after agrees (its milliseconds cut).
        assert!(before.cpu_seconds + 0.001 >= sys.cpu_seconds);
        assert!(
            sys_after.cpu_seconds + 0.001 >= after.cpu_seconds,
            "{} then sysinfo {}",
            after.cpu_seconds,
            sys_after.cpu_seconds
        );

        let (rss, private) = p.memory(pid).unwrap();
        assert!(rss > 0 && private > 0);
        assert!(p.pids().contains(&pid));
        assert!(p.cmdline(pid).is_some_and(|c| !c.is_empty()));
        assert_eq!(p.exe_id(pid), crate::platform::file::path_id(&exe).ok());
        assert!(p.exe_id(pid).is_some());
        for bad in [-1, 0] {
            assert!(matches!(p.identity(bad), Err(ProcError::Gone(_))), "{bad}");
        }
        let other = Identity {
            start: id.start + 1,
            ..id
        };
        assert!(matches!(
            p.vitals(other, &mut errs),
            Err(ProcError::Gone(_))
        ));
        assert!(p.watch(other).is_none());
    }

    /// A child: its identity, title, vitals, its `NODE_OPTIONS`, the exit
    /// watch, and `Gone` once it exited, before and after it is reaped.
    #[test]
    fn child_process() {
        let p = WindowsPlatform::new();
        let t0 = now_millis();
        // A name in another case: Windows' environment ignores case, Node's
        // `process.env` too.
        let mut c = child(30, &[("Node_Options", "--max-old-space-size=64")]);
        let t1 = now_millis();
        let pid = c.id() as Pid;
        let id = p.identity(pid).unwrap();
        assert!(
            id.start + 1000 >= t0 && id.start <= t1 + 1000,
            "{} not in [{t0}, {t1}]",
            id.start
        );
        assert!(p
            .title(pid)
            .is_some_and(|t| t.eq_ignore_ascii_case("ping.exe")));
        assert!(p.descendants(std::process::id() as Pid).contains(&pid));
        let mut errs = PartialErrors::default();
        let v = p.vitals(id, &mut errs).unwrap();
        handles_or_wine(&v, &errs);
        assert!(v.resident_bytes > 0 && v.virtual_bytes > 0);
        assert!(v.threads.unwrap() >= 1, "{v:?}");
        assert_eq!(v.start_time_seconds.floor() as u64, id.start / 1000);
        // From the environment, unless a job limit came first (a CI
        // runner's job; never under Wine).
        let limit = memory_limit::resolve(&p, None, pid).unwrap();
        if p.cgroup_memory_limit(pid).is_none() {
            assert_eq!(
                (limit.bytes, limit.source),
                (64 << 20, Source::MaxOldSpaceSize)
            );
        }

        let mut w = p.watch(id).unwrap();
        assert_eq!(w.id(), id);
        assert!(w.alive());
        assert!(!w.wait_exit(Duration::from_millis(50)));
        c.kill().unwrap();
        assert!(w.wait_exit(Duration::from_secs(10)));
        assert!(!w.alive());
        // Exited, its handle still held by `c`: not running.
        assert!(matches!(p.identity(pid), Err(ProcError::Gone(_))));
        assert!(matches!(p.vitals(id, &mut errs), Err(ProcError::Gone(_))));
        assert!(matches!(p.memory(pid), Err(ProcError::Gone(_))));
        assert!(p.watch(id).is_none());
        c.wait().unwrap();
        drop(c);
        drop(w);
        assert!(matches!(p.identity(pid), Err(ProcError::Gone(_))));
    }

    /// The job limit, in a copy of this test binary: joining a job is for
    /// good.
    #[test]
    fn job_memory_limit() {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "platform::windows::tests::in_a_limited_job",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run by job_memory_limit in a process of its own"]
    fn in_a_limited_job() {
        let p = WindowsPlatform::new();
        let mut outside = child(30, &[]);
        let limit: u64 = 3 << 40;
        let _job = win32::test_job::join_limited(limit).unwrap();
        let mut inside = child(30, &[]);
        let me = std::process::id() as Pid;
        if win32::wine() {
            // Wine answers QueryInformationJobObject without a job handle
            // with zeros or an invalid handle: no limit, and no failure.
            assert_eq!(p.cgroup_memory_limit(me), None);
            assert_eq!(p.cgroup_memory_limit(inside.id() as Pid), None);
            println!("Wine: no job limits to read");
            for c in [&mut outside, &mut inside] {
                c.kill().unwrap();
                c.wait().unwrap();
            }
            return;
        }
        assert_eq!(p.cgroup_memory_limit(me), Some(limit));
        assert_eq!(p.cgroup_memory_limit(inside.id() as Pid), Some(limit));
        assert_eq!(
            memory_limit::resolve(&p, None, inside.id() as Pid),
            Some(memory_limit::Limit {
                bytes: limit,
                source: Source::Cgroup
            })
        );
        // Started before: not in this job.
        assert_eq!(p.cgroup_memory_limit(outside.id() as Pid), None);
        assert!(win32::own_job_pids().unwrap().contains(&(me as u32)));
        for c in [&mut outside, &mut inside] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}
