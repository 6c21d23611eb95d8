//! Process-level faults from the field report: stale lock files ("Gateway is
//! already running (PID file exists)"), duplicate instances, and a LISTEN
//! socket owned by another process than the lock names. Rides
//! `--collect.connections.interval`.
//!
//! Also home of the identity watch that keeps restart counts right when the
//! gateway crash-loops faster than the collector intervals.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{unix_now, SampleError, Sampler};
use crate::discovery::Target;
use crate::lockfile;
use crate::metrics::{self, Latest};
use crate::names;
use crate::platform::file::{self, Stamp};
use crate::platform::{ExitSignal, ExitWatch, FileId, Identity, Pid};

/// How often the identity watch runs where it cannot sleep on the exit of
/// the process it watches (no pidfd), or watches none: a quiet tick is one
/// read of the watched process's stat file.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the identity watch re-checks the files while the gateway
/// process it watches lives: its exit is seen at once (a pidfd), or on the
/// next tick.
pub const WATCH_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Re-checks the gateway's identity cheaply (see [`Target::watch`]), and only
/// when something changed. Where the platform can sleep on a process's exit
/// (Linux: a pidfd, [`Sampler::exit_signal`]), the samplers' watchdog sleeps
/// on every gateway's in one `poll`: the watch runs at once when the process
/// exits, and otherwise every [`WATCH_RECHECK`] for a `stat` of each lock
/// folder, lock file and pid file. Elsewhere, and while no process is
/// watched, it ticks every [`WATCH_INTERVAL`]: a quiet tick is one `pread`
/// of the watched process's stat file, so a crash loop is followed within
/// [`WATCH_INTERVAL`]; the ticks of every gateway's watch share one wake-up
/// of the samplers' threads.
pub struct WatchSampler {
    target: Arc<Target>,
    /// The files the last check read, with their metadata then.
    stamps: Vec<(PathBuf, Option<Stamp>)>,
    /// When they were read.
    stamped: Option<std::time::Instant>,
    /// The process the last check found.
    watched: Option<Box<dyn ExitWatch>>,
}

/// The stamp of a lock folder, lock file or pid file, symlinks not followed.
fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| file::stamp(&m))
}

impl WatchSampler {
    pub fn new(target: Arc<Target>) -> Self {
        WatchSampler {
            target,
            stamps: Vec::new(),
            stamped: None,
            watched: None,
        }
    }

    /// Whether a file the identity depends on changed since the last check;
    /// looked at every [`WATCH_RECHECK`].
    fn files_changed(&mut self) -> bool {
        // Half a tick early: a watch that sleeps for WATCH_RECHECK runs on
        // the grid of its ticks, a hair before the stamp is that old.
        let due = self
            .stamped
            .is_none_or(|t| t.elapsed() + WATCH_INTERVAL / 2 >= WATCH_RECHECK);
        if !due {
            return false;
        }
        let changed = self.stamps.is_empty() || self.stamps.iter().any(|(p, s)| stamp(p) != *s);
        if !changed {
            // Looked at now: the next look is a recheck interval away, not
            // on every tick from here on.
            self.stamped = Some(std::time::Instant::now());
        }
        changed
    }

    fn restamp(&mut self) {
        let spec = &self.target.spec;
        let mut paths = vec![spec.state_dir.join("tmp")];
        paths.extend(lockfile::dirs(&spec.state_dir));
        paths.extend(lockfile::find(&spec.state_dir));
        paths.extend(spec.pid_file.clone());
        self.stamps = paths
            .into_iter()
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect();
        self.stamped = Some(std::time::Instant::now());
    }
}

impl Sampler for WatchSampler {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn sample(&mut self) -> Result<(), SampleError> {
        let current = self.target.current().map(|f| f.id);
        let still_running = match &mut self.watched {
            Some(w) if Some(w.id()) == current => w.alive(),
            _ => false,
        };
        if still_running && !self.files_changed() {
            return Ok(());
        }
        // Stamp first: a file that changes during the check is read again.
        self.restamp();
        self.target.watch();
        self.watched = self
            .target
            .current()
            .and_then(|f| self.target.platform.watch(f.id));
        Ok(())
    }

    fn exit_signal(&mut self) -> Option<(ExitSignal, std::time::Duration)> {
        let signal = self.watched.as_ref()?.signal()?;
        Some((signal, WATCH_RECHECK))
    }
}

pub use crate::discovery::{locks, LockInfo, LockState};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleSample {
    /// Lock files by state.
    pub live: u64,
    pub stale: u64,
    pub invalid: u64,
    /// Modification time of the oldest stale lock.
    pub oldest_stale_modified: Option<f64>,
    /// Gateway processes that claim this gateway.
    pub instances: u64,
    /// The LISTEN socket belongs to a process other than the lock's; `None`
    /// where the platform cannot tell who listens (`Caps::listeners`).
    pub port_owner_mismatch: Option<bool>,
}

pub struct LifecycleSampler {
    target: Arc<Target>,
    slot: Arc<Latest<LifecycleSample>>,
    /// This exporter's executable. Its name, `openclaw-gateway-exporter`,
    /// truncates to the gateway's `comm`, so a process that runs it (the
    /// server, a `check`) is never counted as an instance of the gateway.
    own_exe: Option<FileId>,
}

impl LifecycleSampler {
    pub fn new(target: Arc<Target>, slot: Arc<Latest<LifecycleSample>>) -> Self {
        let own_exe = target.platform.exe_id(std::process::id() as Pid);
        LifecycleSampler {
            target,
            slot,
            own_exe,
        }
    }

    /// A process with the gateway's title that runs this exporter's binary.
    fn is_exporter(&self, pid: Pid) -> bool {
        pid == std::process::id() as Pid
            || self.own_exe.is_some() && self.target.platform.exe_id(pid) == self.own_exe
    }
}

impl Sampler for LifecycleSampler {
    fn name(&self) -> &'static str {
        "lifecycle"
    }

    fn sample(&mut self) -> Result<(), SampleError> {
        let (p, spec) = (&*self.target.platform, &self.target.spec);
        // As this round's discovery of the gateway read them.
        let locks = self.target.locks();
        let count = |s| locks.iter().filter(|l| l.state == s).count() as u64;
        let oldest_stale_modified = locks
            .iter()
            .filter(|l| l.state == LockState::Stale)
            .filter_map(|l| l.modified)
            .min_by(f64::total_cmp);

        // The lock owners, then whoever else listens on the port, then any
        // process with the gateway's title whose environment names this state
        // dir, from the process table every gateway shares.
        let lock_owners: Vec<Identity> = locks.iter().filter_map(|l| l.owner).collect();
        let mut known = lock_owners.clone();
        known.extend(self.target.current().map(|f| f.id));
        // Behind a published port the listener is in the gateway's own
        // network namespace: with no process known there is none to read.
        let listeners = if spec.published() && known.is_empty() {
            Vec::new()
        } else {
            p.listen_owners(spec.port, &known)
        };
        let mut claimants: HashSet<Identity> = lock_owners.iter().copied().collect();
        claimants.extend(listeners.iter().copied());
        let view = self.target.view.snapshot();
        for pid in view.titled_in(p, spec.comm(), &spec.state_dir) {
            if !self.is_exporter(pid) {
                if let Ok(id) = p.identity(pid) {
                    claimants.insert(id);
                }
            }
        }
        // Workers inherit sockets and environment; they are not instances.
        let descendants: HashSet<Pid> = claimants
            .iter()
            .flat_map(|c| view.descendants(p, c.pid))
            .collect();
        let instances = claimants
            .iter()
            .filter(|c| !descendants.contains(&c.pid))
            .count() as u64;

        let port_owner_mismatch = p.caps().listeners.then(|| {
            !lock_owners.is_empty()
                && !listeners.is_empty()
                && !listeners.iter().any(|l| {
                    lock_owners.contains(l)
                        || lock_owners
                            .iter()
                            .any(|o| view.descendants(p, o.pid).contains(&l.pid))
                })
        });

        self.slot.set(LifecycleSample {
            live: count(LockState::Live),
            stale: count(LockState::Stale),
            invalid: count(LockState::Invalid),
            oldest_stale_modified,
            instances,
            port_owner_mismatch,
        });
        Ok(())
    }
}

#[derive(Debug)]
pub struct LifecycleMetrics(pub Vec<(String, Arc<Latest<LifecycleSample>>)>);

impl Collector for LifecycleMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let locks = self.0.iter().flat_map(|(gw, slot)| {
            let s = slot.get();
            LockState::ALL.into_iter().filter_map(move |state| {
                let s = s.as_ref()?;
                let n = match state {
                    LockState::Live => s.live,
                    LockState::Stale => s.stale,
                    LockState::Invalid => s.invalid,
                };
                Some((
                    [("gateway", gw.as_str()), ("state", state.as_str())],
                    n as f64,
                ))
            })
        });
        metrics::gauge(
            &mut enc,
            &names::LOCK_FILES,
            "Gateway lock files in the state dir: live (pid alive with the recorded start time), stale (pid dead or reused), invalid (unreadable). Sampled every --collect.connections.interval.",
            locks,
        )?;
        let now = unix_now();
        let rows = |f: fn(&LifecycleSample, f64) -> Option<f64>| {
            self.0.iter().filter_map(move |(gw, slot)| {
                let v = slot.with(|s| s.and_then(|s| f(s, now)))?;
                Some(([("gateway", gw.as_str())], v))
            })
        };
        metrics::gauge(
            &mut enc,
            &names::LOCK_STALE_AGE_SECONDS,
            "Age of the oldest stale lock file, from its modification time; absent when there is none. Found every --collect.connections.interval.",
            rows(|s, now| s.oldest_stale_modified.map(|m| (now - m).max(0.0))),
        )?;
        metrics::gauge(
            &mut enc,
            &names::INSTANCES,
            "Gateway processes that claim this gateway (a live lock, the LISTEN socket on its port, or its title with this state dir in the environment); healthy is 1. Sampled every --collect.connections.interval.",
            rows(|s, _| Some(s.instances as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PORT_OWNER_MISMATCH,
            "1 when the LISTEN socket on the gateway's port belongs to a process other than the one its lock file names. Sampled every --collect.connections.interval.",
            rows(|s, _| s.port_owner_mismatch.map(|m| if m { 1.0 } else { 0.0 })),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lock without `startTime` cannot tell its gateway from a later
    /// process on the same pid: it is live only while the pid has the
    /// gateway's title.
    #[test]
    fn a_lock_without_start_time_is_live_only_under_the_gateways_title() {
        let dir = std::env::temp_dir().join(format!("ocgx-locks-{}", std::process::id()));
        let locks_dir = dir.join("tmp/openclaw-0");
        std::fs::create_dir_all(&locks_dir).unwrap();
        let me = std::process::id();
        std::fs::write(
            locks_dir.join("gateway.abc.lock"),
            format!("{{\"pid\":{me},\"port\":18789}}\n  \n"),
        )
        .unwrap();
        let p = crate::platform::select(crate::platform::Backend::default());
        let mine = p.title(me as Pid).unwrap();
        let view = crate::process_view::ProcessView::new(p, std::time::Duration::ZERO);
        let states = |comm: &str| -> Vec<LockState> {
            locks(&view, &dir, comm)
                .into_iter()
                .map(|l| l.state)
                .collect()
        };
        assert_eq!(states(&mine), [LockState::Live], "our own title");
        assert_eq!(
            states("openclaw-gatewa"),
            [LockState::Stale],
            "a reused pid"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
