//! Assembly: one target, one set of collectors and one registry for the
//! configured gateways.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::collector::connections::{ConnectionsMetrics, ConnectionsSampler, ConnectionsSlot};
use crate::collector::lifecycle::{self, LifecycleMetrics, LifecycleSampler, WatchSampler};
use crate::collector::liveness::{LivenessMetrics, LivenessSampler, LivenessSlot};
use crate::collector::logs::{LogMetrics, LogSampler, LogSlot};
use crate::collector::memory::{MemoryMetrics, MemorySampler, MemorySlot};
use crate::collector::process::{ProcessMetrics, ProcessSampler, ProcessSlot};
use crate::collector::readiness::{ReadinessMetrics, ReadinessSampler, ReadinessSlot};
use crate::collector::{self, Health, HealthMetrics, Kind};
use crate::config::{Collectors, Config};
use crate::discovery::Target;
use crate::metrics::Latest;
use crate::platform::{self, Platform};
use crate::probe::{Endpoint, ProbeMetrics, ProbeStats, Prober};
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
        let readiness_poll = config.readiness_poll();
        let intervals = &config.intervals;
        let targets: Vec<Arc<Target>> = config
            .gateways
            .iter()
            .map(|g| Arc::new(Target::with_platform(g.clone(), platform.clone())))
            .collect();

        // A collector that is off gets no slot, no job (so no thread and no
        // reads) and no series.
        let on = config.collectors;
        let mut jobs = Vec::new();
        let mut process_slots = Vec::new();
        let mut memory_slots = Vec::new();
        let mut lifecycle_slots = Vec::new();
        let mut log_slots = Vec::new();
        let mut liveness_slots = Vec::new();
        let mut readiness_slots = Vec::new();
        let mut probe_stats = Vec::new();
        let mut connections_slots = Vec::new();
        let host_net = Arc::new(Latest::new());
        for target in &targets {
            if on.process {
                let process = Arc::new(ProcessSlot {
                    target: target.clone(),
                    latest: Latest::new(),
                });
                jobs.push(job(
                    Kind::Blocking(Box::new(ProcessSampler::new(process.clone()))),
                    target,
                    intervals.connections,
                ));
                // The identity watch keeps the process collector's restart
                // count right when the gateway crash-loops between samples.
                jobs.push(job(
                    Kind::Blocking(Box::new(WatchSampler::new(target.clone()))),
                    target,
                    lifecycle::WATCH_INTERVAL,
                ));
                process_slots.push(process);
            }
            if on.memory {
                let memory = Arc::new(MemorySlot {
                    target: target.clone(),
                    latest: Latest::new(),
                });
                jobs.push(job(
                    Kind::Blocking(Box::new(MemorySampler::new(memory.clone()))),
                    target,
                    intervals.memory,
                ));
                memory_slots.push(memory);
            }
            if on.connections {
                let connections = Arc::new(ConnectionsSlot {
                    target: target.clone(),
                    latest: Latest::new(),
                });
                jobs.push(job(
                    Kind::Blocking(Box::new(ConnectionsSampler::new(
                        connections.clone(),
                        host_net.clone(),
                    ))),
                    target,
                    intervals.connections,
                ));
                connections_slots.push(connections);
            }
            if on.lifecycle {
                let lifecycle = Arc::new(Latest::new());
                jobs.push(job(
                    Kind::Blocking(Box::new(LifecycleSampler::new(
                        target.clone(),
                        lifecycle.clone(),
                    ))),
                    target,
                    intervals.connections,
                ));
                lifecycle_slots.push((target.spec.name.clone(), lifecycle));
            }
            log_slots.push(on.logs.then(|| {
                let logs = Arc::new(LogSlot::new(
                    target.spec.name.clone(),
                    config.log_patterns.clone(),
                ));
                jobs.push(job(
                    Kind::Blocking(Box::new(LogSampler::new(
                        logs.clone(),
                        target.spec.log_path.clone(),
                    ))),
                    target,
                    intervals.logs,
                ));
                logs
            }));

            // A gateway whose client cannot be built is reported by both
            // probe collectors failing on every tick. Liveness connects afresh
            // every time: a kept connection would hide a listener that no
            // longer accepts. Readiness, polled every second, reuses its
            // connection while the poll is well inside Node's 5 s keep-alive.
            let https = target.spec.url.starts_with("https:");
            let unbuildable = |e: crate::probe::ClientError| {
                tracing::error!(gateway = %target.spec.name, error = %e, "cannot probe this gateway");
                e.to_string()
            };
            let stats = |endpoint| {
                Arc::new(ProbeStats::new(
                    &target.spec.name,
                    endpoint,
                    intervals.errors,
                ))
            };
            if on.liveness {
                let prober = Prober::new(config.probe.timeout, https).map_err(unbuildable);
                let liveness = Arc::new(LivenessSlot {
                    target: target.clone(),
                    stats: stats(Endpoint::Live),
                    hung: Latest::new(),
                });
                // The hang verdict judges the process the process collector
                // finds; without it there is no verdict (and no process-table read
                // for one): the streak never reaches u32::MAX probes.
                let hang_after = if on.process {
                    config.probe.hang_after
                } else {
                    u32::MAX
                };
                jobs.push(job(
                    Kind::Async(Box::new(LivenessSampler::new(
                        liveness.clone(),
                        prober,
                        hang_after,
                    ))),
                    target,
                    intervals.latency,
                ));
                probe_stats.push(liveness.stats.clone());
                liveness_slots.push(liveness);
            }
            if on.readiness {
                let ready_prober = if readiness_poll < READINESS_KEEP_ALIVE {
                    Prober::keep_alive(config.probe.timeout, https, READINESS_KEEP_ALIVE)
                } else {
                    Prober::new(config.probe.timeout, https)
                }
                .map_err(unbuildable);
                let readiness = Arc::new(ReadinessSlot::new(
                    target.clone(),
                    stats(Endpoint::Ready),
                    intervals.event_loop,
                    config.probe.event_loop_floor,
                ));
                jobs.push(job(
                    Kind::Async(Box::new(ReadinessSampler::new(
                        readiness.clone(),
                        ready_prober,
                        readiness_poll,
                    ))),
                    target,
                    readiness_poll,
                ));
                probe_stats.push(readiness.stats.clone());
                readiness_slots.push(readiness);
            }
        }
        let health: Vec<Arc<Health>> = jobs.iter().map(|j| j.health.clone()).collect();

        let mut registry = Registry::default();
        registry.register(
            "openclaw_gateway_exporter_build",
            "Version and git revision of the exporter; the value is always 1",
            Info::new(vec![
                ("version".to_string(), VERSION.to_string()),
                ("revision".to_string(), REVISION.to_string()),
            ]),
        );
        registry.register_collector(Box::new(SelfProcess::new(platform)));
        if on.process {
            registry.register_collector(Box::new(ProcessMetrics(process_slots)));
        }
        if on.memory {
            registry.register_collector(Box::new(MemoryMetrics(memory_slots)));
        }
        if on.lifecycle {
            registry.register_collector(Box::new(LifecycleMetrics(lifecycle_slots)));
        }
        if on.logs {
            let slots = log_slots.iter().flatten().cloned().collect();
            registry.register_collector(Box::new(LogMetrics(slots)));
        }
        if on.liveness || on.readiness {
            registry.register_collector(Box::new(ProbeMetrics(probe_stats)));
        }
        if on.liveness && on.process {
            registry.register_collector(Box::new(LivenessMetrics(liveness_slots)));
        }
        if on.readiness {
            registry.register_collector(Box::new(ReadinessMetrics(readiness_slots)));
        }
        if on.connections {
            registry.register_collector(Box::new(ConnectionsMetrics {
                slots: connections_slots,
                host: host_net,
            }));
        }
        registry.register_collector(Box::new(HealthMetrics(health.clone())));

        Exporter {
            registry: Arc::new(registry),
            targets,
            logs: log_slots,
            health,
            collectors: on,
            jobs,
            one_shot: None,
        }
    }

    /// Start every collector in the background, on threads of their own.
    pub fn spawn(&mut self) {
        let (on, off): (Vec<&str>, Vec<&str>) = Collectors::NAMES
            .into_iter()
            .partition(|name| self.collectors.enabled(name));
        let list = |names: Vec<&str>| match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        };
        tracing::info!("collectors enabled: {}; disabled: {}", list(on), list(off));
        collector::spawn(
            self.jobs
                .drain(..)
                .map(|j| (j.sampler, j.health, j.interval))
                .collect(),
        );
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

fn job(sampler: Kind, target: &Target, interval: Duration) -> Job {
    let health = Arc::new(Health {
        gateway: target.spec.name.clone(),
        collector: sampler.name(),
        last: Latest::new(),
        skipped: Default::default(),
    });
    Job {
        sampler,
        health,
        interval,
    }
}
