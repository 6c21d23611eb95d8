//! Assembly: one target, one set of collectors and one registry for the
//! configured gateways.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::collector::connections::{
    self, ConnectionsMetrics, ConnectionsSampler, ConnectionsSlot,
};
use crate::collector::lifecycle::{self, LifecycleMetrics, LifecycleSampler, WatchSampler};
use crate::collector::liveness::{LivenessMetrics, LivenessSampler, LivenessSlot};
use crate::collector::logs::{LogMetrics, LogSampler, LogSlot};
use crate::collector::memory::{MemoryMetrics, MemorySampler, MemorySlot};
use crate::collector::process::{ProcessMetrics, ProcessSampler, ProcessSlot};
use crate::collector::readiness::{ReadinessMetrics, ReadinessSampler, ReadinessSlot};
use crate::collector::rpc::{RpcMetrics, RpcSampler, RpcSlot};
use crate::collector::{self, Health, HealthMetrics, Kind};
use crate::config::{Collectors, Config};
use crate::discovery::Target;
use crate::incident::live::ExporterLive;
use crate::incident::{IncidentMetrics, Snapshotter};
use crate::metrics::Latest;
use crate::platform::{self, Platform};
use crate::probe::rpc::RpcClient;
use crate::probe::{Endpoint, ProbeMetrics, ProbeStats, Prober};
use crate::process_view::ProcessView;
use crate::remediation::runner::{Board, RemediationMetrics, Watched};
use crate::self_process::SelfProcess;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("OCGX_REVISION");

/// How long the readiness prober keeps its connection between polls: below
/// Node's default keep-alive timeout of 5 s.
const READINESS_KEEP_ALIVE: Duration = Duration::from_secs(4);

/// One collector of one gateway, ready to run.
pub struct Job {
    pub sampler: Kind,
    pub health: Arc<Health>,
    pub interval: Duration,
}

/// Everything the server and the one-shot commands need.
pub struct Exporter {
    pub registry: Arc<Registry>,
    pub targets: Vec<Arc<Target>>,
    /// Per gateway, in the order of `targets`; `None` with the logs collector off.
    pub logs: Vec<Option<Arc<LogSlot>>>,
    pub health: Vec<Arc<Health>>,
    /// Which collectors run.
    pub collectors: Collectors,
    /// The gateways with a `remediation:` block, for the watchdog
    /// ([`crate::remediation::runner::start`]); empty in a discovered
    /// gateway's exporter.
    pub watched: Vec<crate::remediation::runner::Watched>,
    /// The watchdog's state file, which `diagnose` reads.
    pub remediation_state_file: std::path::PathBuf,
    /// The process table the gateways share; a discovered gateway's
    /// exporter ([`Exporter::gateways_only`]) shares it too.
    pub view: Arc<ProcessView>,
    /// Takes incident snapshots of these gateways, with these series and
    /// probe histories ([`crate::incident`]).
    pub snapshotter: Snapshotter,
    /// The series and probe histories, for the snapshots and `/-/incident`.
    pub live: Arc<ExporterLive>,
    jobs: Vec<Job>,
    /// Runs the probes of `sample_once`; made on first use, never by the server.
    one_shot: Option<tokio::runtime::Runtime>,
}

impl Exporter {
    /// The exporter on the default platform backend.
    pub fn new(config: &Config) -> Exporter {
        Exporter::with_platform(config, platform::select(platform::Backend::default()))
    }

    /// The exporter, reading the OS through `platform`.
    pub fn with_platform(config: &Config, platform: Arc<dyn Platform>) -> Exporter {
        // One process table for every gateway, listed at most once per
        // round of the collectors that tick every connections interval.
        let view = Arc::new(ProcessView::new(
            platform.clone(),
            config.intervals.connections / 2,
        ));
        Exporter::assemble(config, platform, view, true)
    }

    /// The collectors and series of `config`'s gateways alone, without the
    /// exporter's own series, on a process view shared with the main
    /// exporter: what a discovered gateway runs ([`crate::sd`]).
    pub fn gateways_only(config: &Config, view: Arc<ProcessView>) -> Exporter {
        Exporter::assemble(config, view.platform().clone(), view, false)
    }

    /// `own`: with the exporter's build info and process series.
    fn assemble(
        config: &Config,
        platform: Arc<dyn Platform>,
        view: Arc<ProcessView>,
        own: bool,
    ) -> Exporter {
        let targets: Vec<Arc<Target>> = config
            .gateways
            .iter()
            .map(|g| Arc::new(Target::with_view(g.clone(), view.clone())))
            .collect();

        // A collector that is off gets no slot, no job (so no thread and no
        // reads) and no series.
        let on = config.collectors;
        let mut list = registrations(on);
        let live = Arc::new(ExporterLive::new("the exporter's own state"));
        let snapshotter = Snapshotter::new(
            config.incident.clone(),
            view.clone(),
            Some(live.clone() as Arc<dyn crate::incident::live::Live>),
        );
        let mut w = Wiring {
            config,
            snapshotter: snapshotter.clone(),
            jobs: Vec::new(),
            probe_stats: Vec::new(),
            logs: Vec::new(),
            host_net: Arc::new(Latest::new()),
            probers: Vec::new(),
            liveness: Vec::new(),
        };
        for target in &targets {
            if on.liveness && on.process && config.incident.on_hung {
                crate::incident::init_counts(&target.spec.name);
            }
            for collector in &mut list {
                collector.gateway(&mut w, target);
            }
        }
        let health: Vec<Arc<Health>> = w.jobs.iter().map(|j| j.health.clone()).collect();

        let mut registry = Registry::default();
        if own {
            registry.register(
                "openclaw_gateway_exporter_build",
                "Version and git revision of the exporter; the value is always 1",
                Info::new(vec![
                    ("version".to_string(), VERSION.to_string()),
                    ("revision".to_string(), REVISION.to_string()),
                ]),
            );
            registry.register_collector(Box::new(SelfProcess::new(platform)));
            registry.register_collector(Box::new(IncidentMetrics));
        }
        for collector in list {
            collector.register(&w, &mut registry);
        }
        registry.register_collector(Box::new(HealthMetrics(health.clone())));
        let watched = match own {
            true => watched(&targets, &w, &health),
            false => Vec::new(),
        };
        if !watched.is_empty() {
            let boards = watched.iter().map(|w| w.board.clone()).collect();
            registry.register_collector(Box::new(RemediationMetrics(boards)));
        }

        let registry = Arc::new(registry);
        live.fill(registry.clone(), w.probe_stats.clone());
        let logs = match on.logs {
            true => w.logs.into_iter().map(Some).collect(),
            false => targets.iter().map(|_| None).collect(),
        };
        Exporter {
            registry,
            targets,
            logs,
            health,
            collectors: on,
            watched,
            remediation_state_file: config.remediation_state_file.clone(),
            view,
            snapshotter,
            live,
            jobs: w.jobs,
            one_shot: None,
        }
    }

    /// Start every collector in the background: the blocking samplers of
    /// every gateway on the samplers' pool, the probes on one thread.
    pub fn spawn(&mut self) {
        let (on, off): (Vec<&str>, Vec<&str>) = Collectors::NAMES
            .into_iter()
            .partition(|name| self.collectors.enabled(name));
        let list = |names: Vec<&str>| match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        };
        tracing::info!("collectors enabled: {}; disabled: {}", list(on), list(off));
        self.spawn_quietly();
    }

    /// [`Exporter::spawn`] without the log line: a discovered gateway's.
    pub fn spawn_quietly(&mut self) {
        collector::spawn(
            self.jobs
                .drain(..)
                .map(|j| (j.sampler, j.health, j.interval))
                .collect(),
        );
    }

    /// Stop every collector spawned: each ends before its next sample.
    pub fn retire(health: &[Arc<Health>]) {
        for h in health {
            h.retired.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Each collector's name and how often it samples.
    pub fn intervals(&self) -> Vec<(&'static str, Duration)> {
        self.jobs
            .iter()
            .map(|j| (j.health.collector, j.interval))
            .collect()
    }

    /// Run every collector once, in the calling thread. Async collectors
    /// (probes) run on a small runtime of their own.
    pub fn sample_once(&mut self) {
        self.sample_collectors(|_| true);
    }

    /// Run the collectors whose `collector` label passes `which` once.
    pub fn sample_collectors(&mut self, which: impl Fn(&str) -> bool) {
        let mut jobs: Vec<(usize, Job)> = std::mem::take(&mut self.jobs)
            .into_iter()
            .enumerate()
            .collect();
        let mut probes = Vec::new();
        for (i, job) in std::mem::take(&mut jobs) {
            if !which(job.health.collector) {
                jobs.push((i, job));
                continue;
            }
            match job.sampler {
                Kind::Blocking(mut s) => {
                    collector::run_once(s.as_mut(), &job.health);
                    jobs.push((
                        i,
                        Job {
                            sampler: Kind::Blocking(s),
                            ..job
                        },
                    ));
                }
                Kind::Async(s) => probes.push((i, s, job.health, job.interval)),
            }
        }
        if !probes.is_empty() {
            // The probes run concurrently: a hung gateway costs one timeout,
            // not one per probe.
            let runtime = self.one_shot.get_or_insert_with(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime")
            });
            let done = runtime.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for (i, mut s, health, interval) in probes {
                    set.spawn(async move {
                        collector::run_once_async(s.as_mut(), &health).await;
                        let sampler = Kind::Async(s);
                        (
                            i,
                            Job {
                                sampler,
                                health,
                                interval,
                            },
                        )
                    });
                }
                let mut done = Vec::new();
                while let Some(joined) = set.join_next().await {
                    // A panicked probe is dropped; every other job stays.
                    done.extend(joined.ok());
                }
                done
            });
            jobs.extend(done);
        }
        jobs.sort_by_key(|(i, _)| *i);
        self.jobs = jobs.into_iter().map(|(_, j)| j).collect();
    }

    /// Ready once every collector has finished its first sample.
    pub fn is_ready(health: &[Arc<Health>]) -> bool {
        health.iter().all(|h| h.last.with(|r| r.is_some()))
    }
}

/// The gateways with a `remediation:` block, with the hang verdict the
/// watchdog reads. Without that verdict (the liveness or process collector
/// off) a gateway is never remediated, and the log says so.
fn watched(targets: &[Arc<Target>], w: &Wiring, health: &[Arc<Health>]) -> Vec<Watched> {
    let mut out = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let Some(remediation) = &target.spec.remediation else {
            continue;
        };
        let name = &target.spec.name;
        let liveness = w.liveness.get(i).cloned();
        let run = health
            .iter()
            .find(|h| h.collector == "liveness" && h.gateway == *name)
            .cloned();
        let (Some(liveness), Some(liveness_health)) = (liveness, run) else {
            tracing::error!(gateway = %name, "remediation needs the hang verdict, so the liveness and process collectors; this gateway will not be remediated");
            continue;
        };
        out.push(Watched {
            target: target.clone(),
            liveness,
            liveness_health,
            remediation: remediation.clone(),
            board: Arc::new(Board::new(name)),
        });
    }
    out
}

fn job(sampler: Kind, target: &Target, interval: Duration) -> Job {
    let health = Arc::new(Health {
        gateway: target.spec.name.clone(),
        collector: sampler.name(),
        last: Latest::new(),
        skipped: Default::default(),
        retired: Default::default(),
    });
    Job {
        sampler,
        health,
        interval,
    }
}

/// The collectors that are on, in the order their series are exposed. Each
/// makes its slot and jobs for every gateway, then registers one exposition
/// over all of them.
fn registrations(on: Collectors) -> Vec<Box<dyn Wire>> {
    let list: [(bool, MakeWire); 8] = [
        (on.process, |_| Box::<ProcessWire>::default()),
        (on.memory, |_| Box::<MemoryWire>::default()),
        (on.lifecycle, |_| Box::<LifecycleWire>::default()),
        (on.logs, |_| Box::new(LogsWire)),
        (on.liveness || on.readiness, |_| Box::new(ProbesWire)),
        (on.liveness, |on| {
            Box::new(LivenessWire {
                slots: Vec::new(),
                rpc: Vec::new(),
                process_on: on.process,
            })
        }),
        (on.readiness, |_| Box::<ReadinessWire>::default()),
        (on.connections, |_| Box::<ConnectionsWire>::default()),
    ];
    list.into_iter()
        .filter(|(wanted, _)| *wanted)
        .map(|(_, make)| make(on))
        .collect()
}

/// Makes one collector's wiring, knowing which others are on.
type MakeWire = fn(Collectors) -> Box<dyn Wire>;

/// What the collectors share while they are wired.
struct Wiring<'a> {
    config: &'a Config,
    /// Takes a snapshot on each transition to hung.
    snapshotter: Snapshotter,
    jobs: Vec<Job>,
    /// Fed by both probe collectors, exposed once.
    probe_stats: Vec<Arc<ProbeStats>>,
    /// Per gateway, in the order of the targets, while the logs collector is on.
    logs: Vec<Arc<LogSlot>>,
    /// The host's listen counters: one slot, read by the first gateway's sampler.
    host_net: Arc<connections::HostSlot>,
    /// The probe clients, by (https, idle connection kept for).
    probers: Vec<(ProberKind, Result<Prober, String>)>,
    /// Per gateway, in the order of the targets, while liveness and process
    /// are on (the hang verdict needs both): what the watchdog reads.
    liveness: Vec<Arc<LivenessSlot>>,
}

/// Whether a probe client speaks https, and how long it keeps an idle
/// connection.
type ProberKind = (bool, Option<Duration>);

impl Wiring<'_> {
    fn job(&mut self, sampler: Kind, target: &Target, interval: Duration) {
        self.jobs.push(job(sampler, target, interval));
    }

    /// A probe client for `target`, kept alive for `idle` between probes or
    /// connecting afresh. One client serves every gateway's probes of one
    /// kind: its pool keeps a connection per gateway (host and port).
    fn prober(&mut self, target: &Target, idle: Option<Duration>) -> Result<Prober, String> {
        let key = (target.spec.url.starts_with("https:"), idle);
        if let Some((_, p)) = self.probers.iter().find(|(k, _)| *k == key) {
            return p.clone();
        }
        let timeout = self.config.probe.timeout;
        let built = match idle {
            Some(idle) => Prober::keep_alive(timeout, key.0, idle),
            None => Prober::new(timeout, key.0),
        }
        .map_err(unbuildable(target));
        self.probers.push((key, built.clone()));
        built
    }

    /// The probe statistics of one endpoint of `target`, exposed by [`ProbesWire`].
    fn stats(&mut self, target: &Target, endpoint: Endpoint) -> Arc<ProbeStats> {
        let stats = Arc::new(ProbeStats::new(
            &target.spec.name,
            endpoint,
            self.config.intervals.errors,
        ));
        self.probe_stats.push(stats.clone());
        stats
    }
}

/// One collector in the registration list.
trait Wire {
    /// Make the slot and jobs of one gateway.
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>);
    /// Register the exposition over every gateway's slot.
    fn register(self: Box<Self>, w: &Wiring, registry: &mut Registry);
}

#[derive(Default)]
struct ProcessWire(Vec<Arc<ProcessSlot>>);

impl Wire for ProcessWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        let process = Arc::new(ProcessSlot {
            target: target.clone(),
            latest: Latest::new(),
        });
        let interval = w.config.intervals.connections;
        w.job(
            Kind::Blocking(Box::new(ProcessSampler::new(process.clone()))),
            target,
            interval,
        );
        // The identity watch keeps the process collector's restart count
        // right when the gateway crash-loops between samples.
        w.job(
            Kind::Blocking(Box::new(WatchSampler::new(target.clone()))),
            target,
            lifecycle::WATCH_INTERVAL,
        );
        self.0.push(process);
    }

    fn register(self: Box<Self>, _: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(ProcessMetrics(self.0)));
    }
}

#[derive(Default)]
struct MemoryWire(Vec<Arc<MemorySlot>>);

impl Wire for MemoryWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        let memory = Arc::new(MemorySlot {
            target: target.clone(),
            latest: Latest::new(),
        });
        let interval = w.config.intervals.memory;
        w.job(
            Kind::Blocking(Box::new(MemorySampler::new(memory.clone()))),
            target,
            interval,
        );
        self.0.push(memory);
    }

    fn register(self: Box<Self>, _: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(MemoryMetrics(self.0)));
    }
}

#[derive(Default)]
struct LifecycleWire(Vec<(String, Arc<Latest<lifecycle::LifecycleSample>>)>);

impl Wire for LifecycleWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        let lifecycle = Arc::new(Latest::new());
        let interval = w.config.intervals.connections;
        w.job(
            Kind::Blocking(Box::new(LifecycleSampler::new(
                target.clone(),
                lifecycle.clone(),
            ))),
            target,
            interval,
        );
        self.0.push((target.spec.name.clone(), lifecycle));
    }

    fn register(self: Box<Self>, _: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(LifecycleMetrics(self.0)));
    }
}

struct LogsWire;

impl Wire for LogsWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        let logs = Arc::new(LogSlot::new(
            target.spec.name.clone(),
            w.config.log_patterns.clone(),
        ));
        let interval = w.config.intervals.logs;
        w.job(
            Kind::Blocking(Box::new(LogSampler::new(
                logs.clone(),
                target.spec.log_path.clone(),
            ))),
            target,
            interval,
        );
        w.logs.push(logs);
    }

    fn register(self: Box<Self>, w: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(LogMetrics(w.logs.clone())));
    }
}

/// The probe metrics of both probe collectors.
struct ProbesWire;

impl Wire for ProbesWire {
    fn gateway(&mut self, _: &mut Wiring, _: &Arc<Target>) {}

    fn register(self: Box<Self>, w: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(ProbeMetrics(w.probe_stats.clone())));
    }
}

/// A gateway whose client cannot be built is reported by both probe
/// collectors failing on every tick.
fn unbuildable(target: &Target) -> impl Fn(crate::probe::ClientError) -> String + '_ {
    move |e| {
        tracing::error!(gateway = %target.spec.name, error = %e, "cannot probe this gateway");
        e.to_string()
    }
}

struct LivenessWire {
    slots: Vec<Arc<LivenessSlot>>,
    /// The RPC probes, which run with liveness: their verdict needs it.
    rpc: Vec<Arc<RpcSlot>>,
    /// The hang verdict judges the process the process collector finds.
    process_on: bool,
}

impl Wire for LivenessWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        // Liveness connects afresh every time: a kept connection would hide a
        // listener that no longer accepts.
        let prober = w.prober(target, None);
        let liveness = Arc::new(LivenessSlot {
            target: target.clone(),
            stats: w.stats(target, Endpoint::Live),
            hung: Latest::new(),
        });
        // Without the process collector there is no verdict (and no
        // process-table read for one): the streak never reaches u32::MAX probes.
        let hang_after = match self.process_on {
            true => w.config.probe.hang_after,
            false => u32::MAX,
        };
        let interval = w.config.intervals.latency;
        w.job(
            Kind::Async(Box::new(
                LivenessSampler::new(liveness.clone(), prober, hang_after)
                    .with_snapshots(w.config.incident.on_hung.then(|| w.snapshotter.clone())),
            )),
            target,
            interval,
        );
        if self.process_on {
            w.liveness.push(liveness.clone());
        }
        self.rpc_probe(w, target, &liveness.stats);
        self.slots.push(liveness);
    }

    fn register(self: Box<Self>, _: &Wiring, registry: &mut Registry) {
        if self.process_on {
            registry.register_collector(Box::new(LivenessMetrics(self.slots)));
        }
        registry.register_collector(Box::new(RpcMetrics(self.rpc)));
    }
}

impl LivenessWire {
    /// The RPC probe of `target`, when it has a token; without one it is
    /// off (the control plane admits no one without), and says so once.
    fn rpc_probe(&mut self, w: &mut Wiring, target: &Arc<Target>, live: &Arc<ProbeStats>) {
        let spec = &target.spec;
        if spec.token.is_none() && spec.token_file.is_none() {
            tracing::info!(gateway = %spec.name, "RPC probe off: no gateway token (OPENCLAW_GATEWAY_TOKEN or token_file)");
            return;
        }
        let client = RpcClient::new(w.config.probe.timeout, spec.url.starts_with("https:"))
            .map_err(|e| unbuildable(target)(e.into()));
        let slot = Arc::new(RpcSlot::new(&spec.name, Some(live.clone())));
        let sampler = RpcSampler::new(slot.clone(), target, client, w.config.probe.hang_after);
        let interval = w.config.probe.rpc_interval;
        w.job(Kind::Async(Box::new(sampler)), target, interval);
        self.rpc.push(slot);
    }
}

#[derive(Default)]
struct ReadinessWire(Vec<Arc<ReadinessSlot>>);

impl Wire for ReadinessWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        // Readiness, polled every second, reuses its connection while the
        // poll is well inside Node's 5 s keep-alive.
        let poll = w.config.readiness_poll();
        let prober = w.prober(
            target,
            (poll < READINESS_KEEP_ALIVE).then_some(READINESS_KEEP_ALIVE),
        );
        let readiness = Arc::new(ReadinessSlot::new(
            target.clone(),
            w.stats(target, Endpoint::Ready),
            w.config.intervals.event_loop,
            w.config.probe.event_loop_floor,
        ));
        w.job(
            Kind::Async(Box::new(ReadinessSampler::new(
                readiness.clone(),
                prober,
                poll,
            ))),
            target,
            poll,
        );
        self.0.push(readiness);
    }

    fn register(self: Box<Self>, _: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(ReadinessMetrics(self.0)));
    }
}

#[derive(Default)]
struct ConnectionsWire(Vec<Arc<ConnectionsSlot>>);

impl Wire for ConnectionsWire {
    fn gateway(&mut self, w: &mut Wiring, target: &Arc<Target>) {
        let connections = Arc::new(ConnectionsSlot {
            target: target.clone(),
            latest: Latest::new(),
        });
        let interval = w.config.intervals.connections;
        // The first gateway's sampler reads the host's counters for all.
        let host = self.0.is_empty().then(|| w.host_net.clone());
        w.job(
            Kind::Blocking(Box::new(ConnectionsSampler::new(connections.clone(), host))),
            target,
            interval,
        );
        self.0.push(connections);
    }

    fn register(self: Box<Self>, w: &Wiring, registry: &mut Registry) {
        registry.register_collector(Box::new(ConnectionsMetrics {
            slots: self.0,
            host: w.host_net.clone(),
        }));
    }
}
