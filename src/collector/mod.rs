//! Collectors: each samples one signal group of one gateway on its own
//! interval, in the background, and keeps only its latest sample. A scrape
//! reads those samples; it never waits on a gateway.
//!
//! One collector's failure never stops another: each runs as its own job on
//! the samplers' threads (blocking OS readers, [`pool`]) or its own task on
//! the probes' thread (probes), and records its own success, duration and
//! time of its last sample; a read stuck on one gateway holds only that
//! gateway's jobs.

pub mod connections;
pub mod lifecycle;
pub mod liveness;
pub mod logs;
pub mod memory;
pub mod pool;
pub mod process;
pub mod readiness;
pub mod rpc;
pub mod stall;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::{self, Latest};
use crate::names;
use crate::platform::ProcError;

/// Why one sample failed. The collector reports `success 0` and tries again
/// on its next tick.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{0}")]
    Failed(String),
}

/// Reads of the gateway process that a sampler had to skip, by reason. The
/// series those reads feed are absent; this says why, in
/// `openclaw_gateway_collector_skipped_reads_total`. A process that exits
/// mid-sample is not a skipped read: it is down.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Another user's process without CAP_SYS_PTRACE (README: "Run it unprivileged").
    pub permission_denied: u64,
    pub other: u64,
}

impl std::ops::AddAssign for Skipped {
    fn add_assign(&mut self, more: Skipped) {
        self.permission_denied += more.permission_denied;
        self.other += more.other;
    }
}

impl Skipped {
    pub fn add(&mut self, e: &ProcError) {
        match e {
            ProcError::Gone(_) => {}
            ProcError::Denied { .. } => self.permission_denied += 1,
            ProcError::Other { .. } => self.other += 1,
        }
    }
}

/// One collector of one gateway. `sample` is blocking (it reads the OS) and
/// runs on one of the samplers' threads ([`pool`]); it stores what it read
/// in its own slot.
pub trait Sampler: Send + 'static {
    /// The `collector` label.
    fn name(&self) -> &'static str;
    fn sample(&mut self) -> Result<(), SampleError>;
    /// The reads skipped since the last call.
    fn take_skipped(&mut self) -> Skipped {
        Skipped::default()
    }
    /// Asked after each sample: the exit of the process this sampler
    /// watches, and how long it may then sleep. The pool runs it again as
    /// soon as that process exits, else after that long instead of its
    /// interval. `None`: every interval.
    fn exit_signal(&mut self) -> Option<(crate::platform::ExitSignal, Duration)> {
        None
    }
}

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A collector whose sample is network I/O (probes): runs on the runtime.
pub trait AsyncSampler: Send + 'static {
    /// The `collector` label.
    fn name(&self) -> &'static str;
    fn sample(&mut self) -> BoxFuture<'_, Result<(), SampleError>>;
}

/// A sampler of either kind.
pub enum Kind {
    Blocking(Box<dyn Sampler>),
    Async(Box<dyn AsyncSampler>),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Blocking(s) => s.name(),
            Kind::Async(s) => s.name(),
        }
    }
}

/// How the last run of one collector of one gateway went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    pub success: bool,
    pub duration_seconds: f64,
    pub timestamp_seconds: f64,
}

/// The run records of every collector, for `openclaw_gateway_collector_*`.
#[derive(Debug)]
pub struct Health {
    pub gateway: String,
    pub collector: &'static str,
    pub last: Latest<Run>,
    /// Reads skipped so far (blocking samplers only).
    pub skipped: std::sync::Mutex<Skipped>,
    /// Set when its gateway is no longer watched (a discovered gateway that
    /// went away): the collector stops before its next sample.
    pub retired: std::sync::atomic::AtomicBool,
}

impl Health {
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Run one blocking sample now and record how it went.
pub fn run_once(sampler: &mut dyn Sampler, health: &Health) {
    let started = Instant::now();
    let result = sampler.sample();
    let new = sampler.take_skipped();
    if new != Skipped::default() {
        *health.skipped.lock().unwrap_or_else(|e| e.into_inner()) += new;
    }
    record(health, started, result);
}

/// Run one async sample now and record how it went.
pub async fn run_once_async(sampler: &mut dyn AsyncSampler, health: &Health) {
    let started = Instant::now();
    let result = sampler.sample().await;
    record(health, started, result);
}

fn record(health: &Health, started: Instant, result: Result<(), SampleError>) {
    let success = match result {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(gateway = %health.gateway, collector = health.collector, error = %e, "sample failed");
            false
        }
    };
    health.last.set(Run {
        success,
        duration_seconds: started.elapsed().as_secs_f64(),
        timestamp_seconds: unix_now(),
    });
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Sample every `interval` in the background, forever. A slow sample delays the
/// next tick instead of piling up.
///
/// Blocking samplers (OS reads) of every gateway share the few threads of
/// [`pool`], which sleep between rounds: their reads never run on the async
/// runtime, a round of every gateway's samples costs a wake-up per thread,
/// and a read stuck on one process holds only that gateway's samples.
/// (`spawn_blocking` on a timer costs three wake-ups per tick: the runtime's
/// timer, the pool thread and the runtime again, which is most of an idle
/// exporter's CPU.) Async samplers (probes) of every gateway share one thread
/// that runs a single-threaded runtime: a probe's request, its connection
/// task and its timer then wake one thread, not two runtime workers handing
/// the work to each other, which cost an idle exporter four times the CPU of
/// the probes themselves.
pub fn spawn(jobs: Vec<(Kind, Arc<Health>, Duration)>) {
    let mut blocking = Vec::new();
    let mut probes = Vec::new();
    for (sampler, health, interval) in jobs {
        match sampler {
            Kind::Blocking(s) => blocking.push((s, health, interval)),
            Kind::Async(s) => probes.push((s, health, interval)),
        }
    }
    if !blocking.is_empty() {
        pool::start(blocking);
    }
    if !probes.is_empty() {
        spawn_probes(probes);
    }
}

/// The probes' runtime, made by the first probes spawned: probes spawned
/// later (a discovered gateway's) join it on its one thread.
static PROBES: std::sync::OnceLock<Option<tokio::runtime::Handle>> = std::sync::OnceLock::new();

fn probes_runtime() -> Option<&'static tokio::runtime::Handle> {
    let make = || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // The liveness probe's process check, while probes go unanswered.
            .max_blocking_threads(2)
            .thread_keep_alive(Duration::from_secs(3600))
            .build()
            .map_err(|e| tracing::error!(error = %e, "cannot start the probes' runtime; no gateway is probed"))
            .ok()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("probes".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|e| tracing::error!(error = %e, "cannot start the probes' thread; no gateway is probed"))
            .ok()?;
        Some(handle)
    };
    PROBES.get_or_init(make).as_ref()
}

/// The instant every probe's ticks count from: the first probes spawned.
static PROBES_GRID: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();

/// The first tick at or after `now` of the grid of `interval` from `anchor`.
fn next_on_grid(
    anchor: tokio::time::Instant,
    now: tokio::time::Instant,
    interval: Duration,
) -> tokio::time::Instant {
    let period = interval.as_nanos().max(1);
    let since = now.saturating_duration_since(anchor).as_nanos();
    let ticks = since.div_ceil(period);
    u64::try_from(ticks * period)
        .map(|n| anchor + Duration::from_nanos(n))
        .unwrap_or(now)
}

fn spawn_probes(probes: Vec<(Box<dyn AsyncSampler>, Arc<Health>, Duration)>) {
    let Some(runtime) = probes_runtime() else {
        return;
    };
    // Every probe on one grid, a discovered gateway's too: the probes that
    // share an interval are sent in one wake-up of the thread. A slow probe
    // skips its missed ticks and stays on the grid.
    let now = tokio::time::Instant::now();
    let anchor = *PROBES_GRID.get_or_init(|| now);
    for (mut s, health, interval) in probes {
        let start = next_on_grid(anchor, now, interval);
        // A probe that panics ends its own task; the others go on, and its
        // last-sample timestamp stops. A retired one ends before its next.
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval_at(start, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                if health.is_retired() {
                    return;
                }
                run_once_async(s.as_mut(), &health).await;
            }
        });
    }
}

/// Exposes the run records of every collector.
#[derive(Debug)]
pub struct HealthMetrics(pub Vec<Arc<Health>>);

impl Collector for HealthMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = |f: fn(&Run) -> f64| {
            self.0.iter().filter_map(move |h| {
                let v = h.last.with(|r| r.map(f))?;
                Some((
                    [("gateway", h.gateway.as_str()), ("collector", h.collector)],
                    v,
                ))
            })
        };
        metrics::gauge(
            &mut enc,
            &names::COLLECTOR_SUCCESS,
            "Whether the collector's last sample succeeded (1) or failed (0). Set on each of the collector's intervals.",
            rows(|r| if r.success { 1.0 } else { 0.0 }),
        )?;
        metrics::gauge(
            &mut enc,
            &names::COLLECTOR_DURATION_SECONDS,
            "Wall time the collector's last sample took. Set on each of the collector's intervals.",
            rows(|r| r.duration_seconds),
        )?;
        metrics::gauge(
            &mut enc,
            &names::COLLECTOR_LAST_SAMPLE_TIMESTAMP_SECONDS,
            "Unix time at which the collector's last sample finished.",
            rows(|r| r.timestamp_seconds),
        )?;
        let skipped = self.0.iter().flat_map(|h| {
            let s = *h.skipped.lock().unwrap_or_else(|e| e.into_inner());
            [
                ("permission_denied", s.permission_denied),
                ("other", s.other),
            ]
            .map(|(reason, n)| {
                (
                    [
                        ("gateway", h.gateway.as_str()),
                        ("collector", h.collector),
                        ("reason", reason),
                    ],
                    n as f64,
                )
            })
        });
        metrics::counter(
            &mut enc,
            &names::COLLECTOR_SKIPPED_READS_TOTAL,
            "Reads of the gateway's /proc entries the collector skipped, by reason (permission_denied: another user's process without CAP_SYS_PTRACE); the series they feed are absent. Counted on each of the collector's intervals, logged once.",
            skipped,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_probes_join_the_grid() {
        let anchor = tokio::time::Instant::now();
        let s = Duration::from_secs(1);
        let ms = Duration::from_millis;
        assert_eq!(next_on_grid(anchor, anchor, s), anchor);
        assert_eq!(next_on_grid(anchor, anchor + ms(1), s), anchor + s);
        assert_eq!(
            next_on_grid(anchor, anchor + ms(2300), s),
            anchor + ms(3000)
        );
        assert_eq!(
            next_on_grid(anchor, anchor + ms(5000), ms(5000)),
            anchor + ms(5000)
        );
        // A clock that reads earlier than the anchor starts at the anchor.
        assert_eq!(next_on_grid(anchor + s, anchor, s), anchor + s);
    }
}
