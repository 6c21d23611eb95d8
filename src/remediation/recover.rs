//! The field report's standard recovery procedure (§5.1, 标准恢复流程) as one
//! function: take a snapshot, stop the gateway gracefully (its supervisor or
//! SIGTERM) within a timeout, kill what is left of its process tree, remove
//! the lock files no live process owns, start it with the configured
//! [`Method`], and verify it ready.
//!
//! A restart is a loaded gun, so [`recover`] refuses before acting when:
//! - the gateway's process is found, but not through its lock (or a
//!   configured pid): nothing ties that pid to the gateway;
//! - no gateway process is seen, yet something accepts connections on its
//!   port: it runs where this process cannot see (another host, another
//!   pid namespace), and starting a second one would only fight it;
//! - this process runs inside the gateway's process tree (upstream #41198:
//!   restarting from inside kills the restarter).
//!
//! Each process is signalled only while it is still the one found (pid and
//! start time: [`super::kill`]); each lock is judged stale again just
//! before it is removed ([`remove_if_stale`]).
//!
//! Verified ready means `/readyz` 200 with `ready: true` *and* the event
//! loop out of its startup load ([`settled`]), not an open port: upstream
//! #76518 reports restarts that claimed success while the gateway was down.
//!
//! Blocking: call it from a thread of its own or `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::collector::readiness::{self, EventLoop};
use crate::config::GatewaySpec;
use crate::discovery::{self, LockState};
use crate::lockfile;
use crate::platform::{Identity, Pid, Platform};
use crate::probe::Prober;
use crate::process_view::ProcessView;

use super::kill::{self, Signal};
use super::method::{self, Method};

/// How [`recover`] runs.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    /// How long a graceful stop may take before the force kill: the field
    /// report's 30 s.
    pub stop_timeout: Duration,
    /// How long the start command may run.
    pub start_timeout: Duration,
    /// How long the started gateway has to be verified ready.
    pub verify_timeout: Duration,
    /// Say what would be done, do nothing.
    pub dry_run: bool,
    /// Time allowed for one /readyz probe while verifying.
    pub probe_timeout: Duration,
    /// How the processes and locks are read.
    pub platform: Arc<dyn Platform>,
}

impl Default for RecoverOptions {
    fn default() -> Self {
        RecoverOptions {
            stop_timeout: Duration::from_secs(30),
            // `openclaw gateway restart` waits for its own health checks,
            // up to a few minutes while startup progresses
            // (docs/cli/gateway/restart-and-supervision.md).
            start_timeout: Duration::from_secs(180),
            verify_timeout: Duration::from_secs(120),
            dry_run: false,
            probe_timeout: Duration::from_secs(5),
            platform: crate::platform::select(crate::platform::Backend::Native),
        }
    }
}

/// One step of the procedure, as it went.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub took: Duration,
    pub outcome: String,
    pub ok: bool,
}

/// A verified-ready gateway (or, in a dry run, the plan).
#[derive(Debug, Clone)]
pub struct Recovered {
    pub steps: Vec<Step>,
    /// The whole procedure, from its start to verified ready.
    pub took: Duration,
    pub snapshot: Option<PathBuf>,
    /// The pid of the gateway verified ready, when it can be seen.
    pub pid: Option<Pid>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Refused before acting: nothing was done.
    #[error("refused: {0}")]
    Refused(String),
    /// A step failed.
    #[error("step {step} failed: {reason}")]
    Step { step: &'static str, reason: String },
}

/// The event-loop delay, in the gateway's own figures, below which its
/// startup load is over: the field report's danger line (50 ms) above the
/// monitor's 20 ms sampling floor ([`crate::thresholds::EVENT_LOOP_DELAY_SECONDS`]).
/// Settled, the real gateway's p99 is at most 70 ms; during the startup load
/// ~1500 ms (DEVELOPERS.md, docs/startup.md).
pub const SETTLED_DELAY_MS: f64 =
    20.0 + crate::thresholds::EVENT_LOOP_DELAY_SECONDS.critical * 1000.0;

/// How often /readyz is asked while verifying.
const VERIFY_POLL: Duration = Duration::from_millis(500);
/// How long a killed tree has to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Run §5.1 on `gateway`: snapshot, stop, force kill, clean stale locks,
/// start with `method`, verify ready. `on_step` hears each step as it ends.
pub fn recover(
    gateway: &GatewaySpec,
    method: &Method,
    opts: &RecoverOptions,
    snapshot: &dyn Fn() -> Option<PathBuf>,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Recovered, RecoverError> {
    let started = Instant::now();
    let mut steps = Steps {
        done: Vec::new(),
        on_step,
    };
    let plan = method.plan().map_err(RecoverError::Refused)?;
    let p = &*opts.platform;
    let dry = opts.dry_run;

    let tree = steps.run("find", || find(&opts.platform, gateway))?;

    let snapshot = steps.run("snapshot", || {
        if dry {
            return Ok((None, "would take a snapshot".into()));
        }
        Ok(match snapshot() {
            Some(path) => (Some(path.clone()), path.display().to_string()),
            None => (None, "none taken".into()),
        })
    })?;

    if let Some(tree) = &tree {
        steps.run("stop", || stop(p, tree, method, opts.stop_timeout, dry))?;
        steps.run("kill", || kill_tree(p, tree, dry))?;
    }

    steps.run("locks", || clean_locks(&opts.platform, gateway, dry))?;

    steps.run("start", || {
        if dry {
            let shown: Vec<String> = plan.iter().map(|argv| format!("{argv:?}")).collect();
            return Ok(((), format!("would run {}", shown.join(", then "))));
        }
        method
            .start(opts.start_timeout)
            .map(|said| ((), said))
            .map_err(|reason| RecoverError::Step {
                step: "start",
                reason,
            })
    })?;

    let pid = steps.run("verify", || {
        if dry {
            return Ok((
                None,
                format!(
                    "would wait up to {:?} for /readyz 200 with the event loop settled",
                    opts.verify_timeout
                ),
            ));
        }
        let said = verify(gateway, opts).map_err(|reason| RecoverError::Step {
            step: "verify",
            reason,
        })?;
        let view = ProcessView::new(opts.platform.clone(), Duration::ZERO);
        let pid = discovery::discover(&view, gateway).map(|f| f.id.pid);
        let who = pid.map_or("the gateway".to_string(), |pid| format!("pid {pid}"));
        Ok((pid, format!("{who} {said}")))
    })?;

    Ok(Recovered {
        steps: steps.done,
        took: started.elapsed(),
        snapshot,
        pid,
    })
}

struct Steps<'a> {
    done: Vec<Step>,
    on_step: &'a mut dyn FnMut(&Step),
}

impl Steps<'_> {
    /// Run one step, timed; its failure ends the procedure.
    fn run<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> Result<(T, String), RecoverError>,
    ) -> Result<T, RecoverError> {
        let started = Instant::now();
        let result = f();
        let (ok, outcome) = match &result {
            Ok((_, said)) => (true, said.clone()),
            Err(e) => (false, e.to_string()),
        };
        let step = Step {
            name,
            took: started.elapsed(),
            outcome,
            ok,
        };
        (self.on_step)(&step);
        self.done.push(step);
        result.map(|(v, _)| v)
    }
}

/// The gateway's process and its descendants, as found.
#[derive(Debug, Clone)]
struct Tree {
    main: Identity,
    children: Vec<Identity>,
}

/// The gateway's process tree, `None` when it does not run; refused when a
/// process is there but cannot be tied to the gateway or acted on.
fn find(
    platform: &Arc<dyn Platform>,
    spec: &GatewaySpec,
) -> Result<(Option<Tree>, String), RecoverError> {
    let p = &**platform;
    let view = ProcessView::new(platform.clone(), Duration::ZERO);
    let refuse = |why: String| Err(RecoverError::Refused(why));
    let Some(found) = discovery::discover(&view, spec) else {
        if let Some(addr) = port_answers(spec) {
            return refuse(format!(
                "{addr} accepts connections, but no process of gateway {:?} can be seen (no live lock in {}): it runs where this process cannot see or signal it (another host, pid namespace or user)",
                spec.name,
                lockfile::dir_pattern(crate::os::Os::CURRENT, &spec.state_dir)
            ));
        }
        return Ok((
            None,
            "no gateway process runs and its port is closed".into(),
        ));
    };
    let main = found.id;
    if !matches!(
        found.method,
        discovery::Method::LockFile | discovery::Method::Pid | discovery::Method::PidFile
    ) {
        return refuse(format!(
            "pid {} was found by its {}, and no lock ties it to gateway {:?}; stop it by hand",
            main.pid,
            found.method.as_str(),
            spec.name
        ));
    }
    let me = std::process::id() as Pid;
    let children = p.descendants(main.pid);
    if main.pid == me || children.contains(&me) {
        return refuse(format!(
            "this process (pid {me}) runs inside the gateway's process tree (pid {}): restarting it would kill the restarter (upstream #41198)",
            main.pid
        ));
    }
    let children: Vec<Identity> = children
        .into_iter()
        .filter_map(|pid| p.identity(pid).ok())
        .collect();
    let said = format!(
        "pid {} (by {}), {} descendant(s)",
        main.pid,
        found.method.as_str(),
        children.len()
    );
    Ok((Some(Tree { main, children }), said))
}

/// The gateway's address, if something accepts a connection there.
fn port_answers(spec: &GatewaySpec) -> Option<String> {
    use std::net::ToSocketAddrs;
    let addrs = (spec.host.as_str(), spec.port).to_socket_addrs().ok()?;
    addrs
        .into_iter()
        .find(|a| std::net::TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
        .map(|a| a.to_string())
}

/// Ask the gateway to stop: through systemd when that is its method, else
/// SIGTERM; wait up to `timeout` for it to exit.
fn stop(
    p: &dyn Platform,
    tree: &Tree,
    method: &Method,
    timeout: Duration,
    dry: bool,
) -> Result<((), String), RecoverError> {
    let pid = tree.main.pid;
    let supervisor = method.stop_plan();
    if dry {
        let how = supervisor.map_or("SIGTERM".to_string(), |argv| format!("{argv:?}"));
        return Ok((
            (),
            format!("would stop pid {pid} with {how}, waiting up to {timeout:?}"),
        ));
    }
    let deadline = Instant::now() + timeout;
    let (mut how, asked) = match supervisor
        .map(|argv| method::run(&argv, timeout).and_then(|r| method::parse_plain(&r)))
    {
        Some(Ok(said)) => (said, true),
        Some(Err(e)) => {
            let (said, sent) = term(p, tree.main);
            (format!("{e}; SIGTERM instead: {said}"), sent)
        }
        None => term(p, tree.main),
    };
    // Nothing asked it to stop (no SIGTERM on Windows): no use waiting.
    while asked && kill::alive(p, tree.main) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !kill::alive(p, tree.main) {
        how += "; exited";
    } else if asked {
        how += &format!("; still alive after {timeout:?}");
    }
    Ok(((), format!("pid {pid}: {how}")))
}

/// SIGTERM `id`: what happened, and whether it was sent.
fn term(p: &dyn Platform, id: Identity) -> (String, bool) {
    match kill::send(p, id, Signal::Term) {
        Ok(kill::Sent::Sent) => ("SIGTERM sent".into(), true),
        Ok(kill::Sent::Gone) => ("already gone".into(), false),
        Err(e) => (format!("no SIGTERM ({e})"), false),
    }
}

/// Kill whatever of the tree still runs, its descendants as they are now
/// included; fail if any survives.
fn kill_tree(p: &dyn Platform, tree: &Tree, dry: bool) -> Result<((), String), RecoverError> {
    let mut ids = vec![tree.main];
    ids.extend(&tree.children);
    if kill::alive(p, tree.main) {
        for pid in p.descendants(tree.main.pid) {
            if let Ok(id) = p.identity(pid) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    let alive: Vec<Identity> = ids.into_iter().filter(|id| kill::alive(p, *id)).collect();
    if alive.is_empty() {
        return Ok(((), "nothing left to kill".into()));
    }
    let pids = alive
        .iter()
        .map(|id| id.pid.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if dry {
        return Ok(((), format!("would kill pids {pids}")));
    }
    let fail = |reason: String| RecoverError::Step {
        step: "kill",
        reason,
    };
    for id in &alive {
        kill::send(p, *id, Signal::Kill).map_err(fail)?;
    }
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let left: Vec<Pid> = alive
            .iter()
            .filter(|id| kill::alive(p, **id))
            .map(|id| id.pid)
            .collect();
        if left.is_empty() {
            return Ok(((), format!("killed pids {pids}")));
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "pids {left:?} still alive {KILL_WAIT:?} after the kill"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What became of one lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// A live process owns it now.
    Live(Identity),
    /// It changed since it was judged (another pid), or cannot be read now.
    Changed(String),
}

/// Remove the lock at `path`, judged stale naming `seen_pid`, if it still
/// names that pid and still no process in any pid namespace owns it
/// ([`discovery::lock_owner`]), judged on a process table listed now.
pub fn remove_if_stale(
    platform: &Arc<dyn Platform>,
    path: &Path,
    seen_pid: u32,
    comm: &str,
) -> Result<Removal, String> {
    let lock = match lockfile::read(path) {
        Ok(lock) => lock,
        Err(e) => return Ok(Removal::Changed(e.to_string())),
    };
    if lock.pid != seen_pid {
        return Ok(Removal::Changed(format!("now names pid {}", lock.pid)));
    }
    let modified = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    let view = ProcessView::new(platform.clone(), Duration::ZERO);
    if let Some(owner) = discovery::lock_owner(&view, &lock, modified, comm) {
        return Ok(Removal::Live(owner));
    }
    std::fs::remove_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Removal::Removed)
}

/// Remove the stale locks of the gateway's state dir; keep live and invalid
/// ones.
fn clean_locks(
    platform: &Arc<dyn Platform>,
    spec: &GatewaySpec,
    dry: bool,
) -> Result<((), String), RecoverError> {
    let view = ProcessView::new(platform.clone(), Duration::ZERO);
    let mut said = Vec::new();
    for info in discovery::locks(&view, &spec.state_dir, spec.comm()) {
        let name = info.path.display();
        let pid = info.pid.map_or(String::new(), |p| format!(", pid {p}"));
        let line = match (info.state, info.pid) {
            (LockState::Stale, Some(_)) if dry => format!("would remove {name} (stale{pid})"),
            (LockState::Stale, Some(seen)) => {
                match remove_if_stale(platform, &info.path, seen, spec.comm()) {
                    Ok(Removal::Removed) => format!("removed {name} (stale{pid})"),
                    Ok(Removal::Live(id)) => format!("kept {name} (live again: pid {})", id.pid),
                    Ok(Removal::Changed(why)) => format!("kept {name} (changed: {why})"),
                    Err(reason) => {
                        return Err(RecoverError::Step {
                            step: "locks",
                            reason,
                        })
                    }
                }
            }
            (LockState::Live, _) => format!("kept {name} (live{pid})"),
            _ => format!("kept {name} (invalid: not judged)"),
        };
        said.push(line);
    }
    if said.is_empty() {
        said.push(format!("no lock files in {}", spec.state_dir.display()));
    }
    Ok(((), said.join("; ")))
}

/// Poll /readyz until it is 200, ready, with the event loop settled.
fn verify(spec: &GatewaySpec, opts: &RecoverOptions) -> Result<String, String> {
    let prober = Prober::new(opts.probe_timeout, spec.url.starts_with("https://"))
        .map_err(|e| format!("cannot probe: {e}"))?;
    let url = format!("{}/readyz", spec.url);
    let started = Instant::now();
    let deadline = started + opts.verify_timeout;
    // The probe client is async: run it on a runtime of this thread's own,
    // on a scoped thread so a caller inside a runtime does not nest one.
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot probe: {e}"))?;
            let mut last;
            loop {
                let answer =
                    rt.block_on(prober.get(&url, spec.token.as_ref(), readiness::BODY_CAP));
                let judged = answer.map_err(|f| {
                    let status = f.status.map_or(String::new(), |s| format!(" (HTTP {s})"));
                    format!("GET /readyz failed: {}{status}", f.reason.as_str())
                });
                match judged.and_then(|a| judge(a.status, &a.body)) {
                    Ok(said) => {
                        return Ok(format!(
                            "ready after {:.1} s: {said}",
                            started.elapsed().as_secs_f64()
                        ))
                    }
                    Err(why) => last = why,
                }
                if Instant::now() + VERIFY_POLL > deadline {
                    return Err(format!(
                        "not verified ready within {:?}: {last}",
                        opts.verify_timeout
                    ));
                }
                std::thread::sleep(VERIFY_POLL);
            }
        })
        .join()
        .unwrap_or_else(|_| Err("the verifier panicked".into()))
    })
}

/// Whether one /readyz answer says ready and settled.
pub fn judge(status: u16, body: &[u8]) -> Result<String, String> {
    let Some(r) = readiness::parse(body) else {
        return Err(format!("/readyz {status} with a body that is not its JSON"));
    };
    if status != 200 || !r.ready {
        let failing = if r.failing.is_empty() {
            "none".into()
        } else {
            r.failing.join(", ")
        };
        return Err(format!(
            "/readyz {status}, ready {}, failing: {failing}",
            r.ready
        ));
    }
    settled(&r.event_loop).map(|said| format!("/readyz 200, {said}"))
}

/// Whether the event loop is out of its startup load: not `degraded`, and
/// its delay (p99, else max) at most [`SETTLED_DELAY_MS`]. An answer
/// without either figure cannot tell.
pub fn settled(el: &EventLoop) -> Result<String, String> {
    let delay = el.delay_p99_ms.or(el.delay_max_ms);
    if el.degraded == Some(true) {
        return Err(format!(
            "event loop degraded (startup load?), delay {}",
            ms(delay)
        ));
    }
    match delay {
        Some(d) if d > SETTLED_DELAY_MS => Err(format!(
            "event loop delay {} above {SETTLED_DELAY_MS} ms",
            ms(delay)
        )),
        Some(_) => Ok(format!("event loop delay {}, not degraded", ms(delay))),
        None if el.degraded == Some(false) => Ok("event loop not degraded".into()),
        None => {
            Err("/readyz has no eventLoop figures: cannot tell the startup load is over".into())
        }
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("unknown".into(), |v| format!("{v:.0} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::{FakePlatform, FakeProcess};
    use crate::platform::Caps;

    fn proc(pid: Pid, start: u64, nested: Option<Pid>) -> FakeProcess {
        FakeProcess {
            id: Identity { pid, start },
            title: "openclaw-gateway".into(),
            nested,
            ..FakeProcess::default()
        }
    }

    fn lock_at(dir: &Path, name: &str, pid: u32, start: u64) -> PathBuf {
        let lock_dir = dir.join("tmp").join("openclaw-0");
        std::fs::create_dir_all(&lock_dir).unwrap();
        let path = lock_dir.join(name);
        std::fs::write(
            &path,
            format!("{{\"pid\":{pid},\"port\":18789,\"startTime\":{start}}}\n  \n"),
        )
        .unwrap();
        path
    }

    #[test]
    fn stale_locks_are_judged_again_before_removal() {
        let state = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakePlatform::new(
            Caps::ALL,
            vec![proc(500, 77, None), proc(900, 55, Some(1))],
        ));
        let platform: Arc<dyn Platform> = fake.clone();
        let comm = "openclaw-gateway";
        // Dead pid: removed.
        let dead = lock_at(state.path(), "gateway.dead.lock", 4242, 1);
        assert_eq!(
            remove_if_stale(&platform, &dead, 4242, comm).unwrap(),
            Removal::Removed
        );
        assert!(!dead.exists());
        // Its pid lives with the recorded start time: kept.
        let live = lock_at(state.path(), "gateway.live.lock", 500, 77);
        assert_eq!(
            remove_if_stale(&platform, &live, 500, comm).unwrap(),
            Removal::Live(Identity {
                pid: 500,
                start: 77
            })
        );
        // A containerized gateway: pid 1 in its namespace, 900 on the host.
        let nested = lock_at(state.path(), "gateway.nested.lock", 1, 55);
        assert_eq!(
            remove_if_stale(&platform, &nested, 1, comm).unwrap(),
            Removal::Live(Identity {
                pid: 900,
                start: 55
            })
        );
        // Stale when judged, but a gateway took the pid and start time since
        // (here: started in a container, pid 1 there): kept.
        let racing = lock_at(state.path(), "gateway.racing.lock", 1, 66);
        fake.processes.lock().unwrap().push(proc(901, 66, Some(1)));
        assert!(matches!(
            remove_if_stale(&platform, &racing, 1, comm).unwrap(),
            Removal::Live(_)
        ));
        assert!(racing.exists());
        // Rewritten by a new gateway since it was judged: kept.
        let rewritten = lock_at(state.path(), "gateway.new.lock", 4243, 1);
        assert!(matches!(
            remove_if_stale(&platform, &rewritten, 4242, comm).unwrap(),
            Removal::Changed(_)
        ));
        assert!(rewritten.exists());
        // Pid reused by another process (another start time): stale.
        let reused = lock_at(state.path(), "gateway.reused.lock", 500, 1);
        assert_eq!(
            remove_if_stale(&platform, &reused, 500, comm).unwrap(),
            Removal::Removed
        );
        // Garbage or gone: kept, never a panic.
        let garbage = state.path().join("tmp/openclaw-0/gateway.garbage.lock");
        std::fs::write(&garbage, b"\x00\xff{").unwrap();
        assert!(matches!(
            remove_if_stale(&platform, &garbage, 1, comm).unwrap(),
            Removal::Changed(_)
        ));
        assert!(garbage.exists());
        assert!(matches!(
            remove_if_stale(&platform, &dead, 4242, comm).unwrap(),
            Removal::Changed(_)
        ));
    }

    #[test]
    fn clean_locks_keeps_live_and_invalid_ones() {
        let state = tempfile::tempdir().unwrap();
        let platform: Arc<dyn Platform> = Arc::new(FakePlatform::new(
            Caps::ALL,
            vec![proc(500, 77, None), proc(900, 55, Some(1))],
        ));
        let live = lock_at(state.path(), "gateway.live.lock", 500, 77);
        let nested = lock_at(state.path(), "gateway.nested.lock", 1, 55);
        let stale = lock_at(state.path(), "gateway.stale.lock", 4242, 1);
        let invalid = state.path().join("tmp/openclaw-0/gateway.bad.lock");
        std::fs::write(&invalid, "{}").unwrap();
        let spec = crate::config::build(
            Default::default(),
            vec![crate::config::GatewayFile {
                state_dir: Some(state.path().to_path_buf()),
                ..Default::default()
            }],
        )
        .unwrap()
        .gateways
        .remove(0);
        let (_, said) = clean_locks(&platform, &spec, true).unwrap();
        assert!(said.contains("would remove") && stale.exists(), "{said}");
        let (_, said) = clean_locks(&platform, &spec, false).unwrap();
        assert!(!stale.exists(), "{said}");
        for kept in [&live, &nested, &invalid] {
            assert!(kept.exists(), "{}: {said}", kept.display());
        }
    }

    #[test]
    fn verified_only_when_ready_and_settled() {
        let body = |ready: bool, degraded: bool, p99: f64| {
            format!(
                r#"{{"ready":{ready},"failing":[],"uptimeMs":9000,"eventLoop":{{"degraded":{degraded},"intervalMs":1000,"delayP99Ms":{p99},"delayMaxMs":{p99}}}}}"#
            )
        };
        assert!(judge(200, body(true, false, 21.7).as_bytes()).is_ok());
        // The startup load: ready, but degraded or slow.
        assert!(judge(200, body(true, true, 1500.0).as_bytes())
            .unwrap_err()
            .contains("degraded"));
        assert!(judge(200, body(true, false, 326.0).as_bytes())
            .unwrap_err()
            .contains("above"));
        assert!(
            judge(503, br#"{"ready":false,"failing":["startup-sidecars"]}"#)
                .unwrap_err()
                .contains("startup-sidecars")
        );
        assert!(judge(200, body(false, false, 20.0).as_bytes()).is_err());
        for garbage in [&b""[..], b"ok", b"\xff\x00", b"{\"ready\":true}", b"[true]"] {
            assert!(
                judge(200, garbage).is_err(),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
    }
}
