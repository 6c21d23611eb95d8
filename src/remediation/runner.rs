//! The watchdog inside the exporter: one thread, started only when some
//! gateway has a `remediation:` block, that feeds [`watchdog::decide`] once a
//! second and carries out what it decides. A restart (snapshot, then
//! [`recover`]) runs on a thread of its own, at most one per gateway, so a
//! long recovery of one gateway never delays the others' decisions.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;

use super::budget::Time;
use super::recover::{recover, RecoverOptions, Step};
use super::state::{Entry, State};
use super::watchdog::{decide, Cause, Decision, Hold, Observation, Tracker};
use crate::collector::liveness::LivenessSlot;
use crate::collector::Health;
use crate::config::{GatewaySpec, Remediation};
use crate::discovery::Target;
use crate::metrics;
use crate::names;

/// How often the watchdog looks at every gateway's verdict.
pub const TICK: Duration = Duration::from_secs(1);

/// The only action so far: the `action` label.
pub const RESTART: &str = "restart";

/// The `result` label values, in the order exposed.
pub const RESULTS: [&str; 4] = ["success", "failed", "skipped_budget", "dry_run"];

/// Upper bounds of the recovery duration histogram, in seconds: around the
/// field report's 3 minutes and the 90 s this exporter aims for.
pub const RECOVERY_BUCKETS: [f64; 10] = [
    15.0, 30.0, 45.0, 60.0, 75.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];

/// Takes an incident snapshot of a gateway; `None` when it could not.
pub type Snapshot = Arc<dyn Fn(&GatewaySpec) -> Option<PathBuf> + Send + Sync>;

/// One gateway's remediation series.
#[derive(Debug)]
pub struct Board {
    pub gateway: String,
    counts: Mutex<([u64; RESULTS.len()], Option<u32>)>,
    recovery: Histogram,
}

impl Board {
    pub fn new(gateway: &str) -> Board {
        Board {
            gateway: gateway.to_string(),
            counts: Mutex::new(([0; RESULTS.len()], None)),
            recovery: Histogram::new(RECOVERY_BUCKETS),
        }
    }

    fn count(&self, result: &str) {
        let i = RESULTS.iter().position(|r| *r == result).unwrap_or(1);
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).0[i] += 1;
    }

    fn set_remaining(&self, n: u32) {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(n);
    }

    /// `(result counts, budget remaining)`.
    pub fn read(&self) -> ([u64; RESULTS.len()], Option<u32>) {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Exposes every watched gateway's [`Board`].
#[derive(Debug)]
pub struct RemediationMetrics(pub Vec<Arc<Board>>);

impl Collector for RemediationMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let read: Vec<_> = self.0.iter().map(|b| (b, b.read())).collect();
        let counts = read.iter().flat_map(|(b, (counts, _))| {
            RESULTS.iter().zip(counts).map(|(result, n)| {
                (
                    [
                        ("gateway", b.gateway.as_str()),
                        ("action", RESTART),
                        ("result", *result),
                    ],
                    *n as f64,
                )
            })
        });
        metrics::counter(
            &mut enc,
            &names::REMEDIATIONS_TOTAL,
            "Watchdog remediations by action and result: success (verified ready), failed, skipped_budget (a confirmed hang met a spent budget; once per hang), dry_run (what dry_run: true would have done). Only gateways with a remediation: block.",
            counts,
        )?;
        metrics::gauge(
            &mut enc,
            &names::REMEDIATION_BUDGET_REMAINING,
            "Restarts the watchdog may still make in the current budget window (max_restarts per budget_window); 0: it no longer acts until the window moves on.",
            read.iter().filter_map(|(b, (_, remaining))| {
                Some(([("gateway", b.gateway.as_str())], f64::from((*remaining)?)))
            }),
        )?;
        if !self.0.is_empty() {
            let mut family = metrics::descriptor(
                &mut enc,
                &names::RECOVERY_DURATION_SECONDS,
                "Time from the watchdog's first sight of the hang (or of the gateway down) to the restarted gateway verified ready (/readyz 200 and its event loop out of its startup load); successful restarts only.",
            )?;
            for b in &self.0 {
                b.recovery
                    .encode(family.encode_family(&[("gateway", b.gateway.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// One gateway the watchdog watches.
pub struct Watched {
    pub target: Arc<Target>,
    pub liveness: Arc<LivenessSlot>,
    /// The liveness collector's run record: when the verdict was reached.
    pub liveness_health: Arc<Health>,
    pub remediation: Remediation,
    pub board: Arc<Board>,
}

/// What the watchdog thread needs besides the gateways.
pub struct Settings {
    pub state_file: PathBuf,
    /// Time allowed for one probe while verifying a restart.
    pub probe_timeout: Duration,
    pub snapshot: Snapshot,
}

/// A finished restart, sent back to the watchdog thread.
struct Done {
    index: usize,
    ended: Time,
}

struct Slot {
    watched: Watched,
    tracker: Tracker,
    running: bool,
    /// The last hold logged, so that each is logged once per change.
    last_hold: Option<std::mem::Discriminant<Hold>>,
}

/// Start the watchdog thread for `watched` (nothing when it is empty).
pub fn start(watched: Vec<Watched>, settings: Settings) {
    if watched.is_empty() {
        return;
    }
    let state = Arc::new(Mutex::new(load_state(&settings.state_file, &watched)));
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || run(watched, settings, state));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the watchdog's thread; no gateway will be remediated");
    }
}

pub fn now() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The state file, or, when it is corrupt or unreadable, a budget taken as
/// spent from now for one window: the safe side of not knowing how many
/// restarts were made.
fn load_state(path: &std::path::Path, watched: &[Watched]) -> State {
    match State::load(path) {
        Ok(state) => {
            tracing::info!(path = %path.display(), gateways = watched.len(), "watchdog on; its state file");
            state
        }
        Err(e) => {
            tracing::error!(error = %e, "the watchdog takes every gateway's restart budget as spent for one budget window; fix or remove the file");
            let mut state = State::new();
            let now = now();
            for w in watched {
                let max = w.remediation.policy.budget.max as usize;
                state
                    .gateway(&w.target.spec.name)
                    .set_attempts(&vec![now; max]);
            }
            state
        }
    }
}

fn run(watched: Vec<Watched>, settings: Settings, state: Arc<Mutex<State>>) {
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut slots: Vec<Slot> = watched
        .into_iter()
        .map(|watched| Slot {
            watched,
            tracker: Tracker::default(),
            running: false,
            last_hold: None,
        })
        .collect();
    loop {
        while let Ok(done) = done_rx.try_recv() {
            let slot = &mut slots[done.index];
            slot.running = false;
            slot.tracker.restarted(done.ended);
        }
        for (index, slot) in slots.iter_mut().enumerate() {
            tick(index, slot, &settings, &state, &done_tx);
        }
        std::thread::sleep(TICK);
    }
}

fn observe(slot: &Slot) -> Observation {
    let w = &slot.watched;
    let hung = w.liveness.hung.get().unwrap_or(false);
    let sampled_at = w
        .liveness_health
        .last
        .get()
        .map(|r| super::state::from_unix(r.timestamp_seconds))
        .unwrap_or_default();
    let found = w.target.current();
    // The process tree is read only when it matters: while hung or down.
    let inside = match found {
        Some(f) if hung => inside_tree(&w.target, f.id.pid),
        _ => false,
    };
    Observation {
        hung,
        sampled_at,
        found: found.is_some(),
        inside,
        running: slot.running,
    }
}

/// The exporter is the gateway or one of its descendants.
fn inside_tree(target: &Target, gateway: crate::platform::Pid) -> bool {
    let me = std::process::id() as crate::platform::Pid;
    me == gateway || target.platform.descendants(gateway).contains(&me)
}

fn tick(
    index: usize,
    slot: &mut Slot,
    settings: &Settings,
    state: &Arc<Mutex<State>>,
    done: &mpsc::Sender<Done>,
) {
    let now = now();
    let obs = observe(slot);
    let name = slot.watched.target.spec.name.clone();
    let policy = slot.watched.remediation.policy;
    let attempts = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let g = s.gateway(&name);
        let mut a = g.attempt_times();
        policy.budget.prune(&mut a, now);
        a
    };
    slot.watched
        .board
        .set_remaining(policy.budget.remaining(&attempts, now));
    let decision = decide(&policy, &mut slot.tracker, obs, &attempts, now);
    let hold = match decision {
        Decision::Hold(h) => Some(std::mem::discriminant(&h)),
        _ => None,
    };
    let new_hold = hold.is_some() && hold != slot.last_hold;
    slot.last_hold = hold;
    match decision {
        Decision::Wait => {}
        Decision::Hold(Hold::Budget { count, log }) => {
            if log {
                tracing::error!(gateway = %name, max_restarts = policy.budget.max, window = ?policy.budget.window, "watchdog: restart budget spent; the gateway is hung and will NOT be restarted until the window moves on. A person must look at it");
            }
            if count {
                slot.watched.board.count("skipped_budget");
                record(state, settings, &name, entry(now, "hung", "skipped_budget"));
            }
        }
        Decision::Hold(h) if new_hold => {
            let why = match h {
                Hold::Running => "a remediation of it is already running",
                Hold::Inside => "the exporter runs inside the gateway's process tree (restarting it would kill the exporter; upstream #41198)",
                Hold::NotSeen => "its process is not identified (another host, or no shared pid namespace)",
                Hold::Backoff { .. } => "waiting out the backoff after the last restart",
                Hold::Budget { .. } => "the budget is spent",
            };
            tracing::warn!(gateway = %name, "watchdog: not restarting: {why}");
        }
        Decision::Hold(_) => {}
        Decision::Restart {
            cause,
            since,
            dry_run: true,
        } => {
            tracing::warn!(gateway = %name, cause = cause.as_str(), method = ?slot.watched.remediation.method, "watchdog dry run: would snapshot and restart the gateway now");
            slot.watched.board.count("dry_run");
            let mut e = entry(now, cause.as_str(), "dry_run");
            e.detail = format!("problem seen {:.0} s before", (now - since).as_secs_f64());
            record(state, settings, &name, e);
        }
        Decision::Restart {
            cause,
            since,
            dry_run: false,
        } => {
            // The budget is spent before acting: an exporter that dies
            // mid-restart still counts it when it comes back.
            {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                let mut a = attempts.clone();
                a.push(now);
                s.gateway(&name).set_attempts(&a);
                save(&s, settings);
            }
            slot.watched.board.set_remaining(
                policy
                    .budget
                    .remaining(&[attempts, vec![now]].concat(), now),
            );
            slot.running = act(index, slot, cause, since, settings, state, done.clone());
        }
    }
}

fn entry(at: Time, cause: &str, result: &str) -> Entry {
    Entry {
        at: at.as_secs_f64(),
        action: RESTART.into(),
        cause: cause.into(),
        result: result.into(),
        recovery_seconds: None,
        snapshot: None,
        detail: String::new(),
    }
}

fn record(state: &Mutex<State>, settings: &Settings, gateway: &str, e: Entry) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    s.gateway(gateway).record(e);
    save(&s, settings);
}

fn save(s: &State, settings: &Settings) {
    if let Err(e) = s.save(&settings.state_file) {
        tracing::error!(error = %e, "watchdog: cannot write its state file; the budget will not survive an exporter restart");
    }
}

/// Snapshot, then restart and verify, on a thread of its own; false when
/// that thread could not start.
fn act(
    index: usize,
    slot: &Slot,
    cause: Cause,
    since: Time,
    settings: &Settings,
    state: &Arc<Mutex<State>>,
    done: mpsc::Sender<Done>,
) -> bool {
    let w = &slot.watched;
    let spec = w.target.spec.clone();
    let method = w.remediation.method.clone();
    let opts = RecoverOptions {
        stop_timeout: w.remediation.stop_timeout,
        start_timeout: w.remediation.start_timeout,
        verify_timeout: w.remediation.verify_timeout,
        dry_run: false,
        probe_timeout: settings.probe_timeout,
        platform: w.target.platform.clone(),
    };
    let board = w.board.clone();
    let snapshot = settings.snapshot.clone();
    let state = state.clone();
    let state_file = settings.state_file.clone();
    tracing::warn!(gateway = %spec.name, cause = cause.as_str(), hung_for = ?(now().saturating_sub(since)), method = ?method, "watchdog: restarting the gateway");
    let body = move || {
        let name = spec.name.clone();
        let taken = std::sync::Mutex::new(None);
        let snap = || {
            let path = snapshot(&spec);
            *taken.lock().unwrap_or_else(|e| e.into_inner()) = path.clone();
            path
        };
        let mut on_step = |s: &Step| {
            tracing::info!(gateway = %name, step = s.name, took = ?s.took, ok = s.ok, "watchdog: {}", s.outcome);
        };
        let result = recover(&spec, &method, &opts, &snap, &mut on_step);
        let ended = now();
        let mut e = entry(ended, cause.as_str(), "success");
        e.snapshot = taken.into_inner().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(r) => {
                let secs = ended.saturating_sub(since).as_secs_f64();
                board.count("success");
                board.recovery.observe(secs);
                e.recovery_seconds = Some(secs);
                e.snapshot = e.snapshot.or(r.snapshot);
                tracing::warn!(gateway = %name, recovery_seconds = secs, "watchdog: the gateway is verified ready after its restart");
            }
            Err(err) => {
                board.count("failed");
                e.result = "failed".into();
                e.detail = err.to_string();
                tracing::error!(gateway = %name, error = %err, "watchdog: the restart failed");
            }
        }
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.gateway(&name).record(e);
        if let Err(e) = s.save(&state_file) {
            tracing::error!(error = %e, "watchdog: cannot write its state file");
        }
        drop(s);
        let _ = done.send(Done { index, ended });
    };
    match std::thread::Builder::new()
        .name("remediate".into())
        .spawn(body)
    {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(gateway = %w.target.spec.name, error = %e, "watchdog: cannot start the restart's thread");
            w.board.count("failed");
            false
        }
    }
}
