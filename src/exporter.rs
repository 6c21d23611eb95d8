//! Assembly: one target, one set of collectors and one registry for the
//! configured gateways.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::collector::connections::{ConnectionsMetrics, ConnectionsSampler, ConnectionsSlot};
use crate::collector::memory::{MemoryMetrics, MemorySampler, MemorySlot};
use crate::collector::process::{ProcessMetrics, ProcessSampler, ProcessSlot};
use crate::collector::{self, Health, HealthMetrics, Kind};
use crate::config::Config;
use crate::discovery::Target;
use crate::metrics::Latest;
use crate::proc::Host;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("OCGX_REVISION");

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
    pub health: Vec<Arc<Health>>,
    jobs: Vec<Job>,
}

impl Exporter {
    pub fn new(config: &Config) -> Exporter {
        let host = Host::read();
        let intervals = &config.intervals;
        let targets: Vec<Arc<Target>> = config
            .gateways
            .iter()
            .map(|g| Arc::new(Target::new(g.clone())))
            .collect();

        let mut jobs = Vec::new();
        let mut process_slots = Vec::new();
        let mut memory_slots = Vec::new();
        let mut connections_slots = Vec::new();
        let host_net = Arc::new(Latest::new());
        for target in &targets {
            let process = Arc::new(ProcessSlot {
                target: target.clone(),
                latest: Latest::new(),
            });
            let memory = Arc::new(MemorySlot {
                target: target.clone(),
                latest: Latest::new(),
            });
            jobs.push(job(
                Kind::Blocking(Box::new(ProcessSampler::new(process.clone(), host))),
                target,
                intervals.connections,
            ));
            jobs.push(job(
                Kind::Blocking(Box::new(MemorySampler::new(memory.clone(), host))),
                target,
                intervals.memory,
            ));
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
            process_slots.push(process);
            memory_slots.push(memory);
            connections_slots.push(connections);
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
        registry.register_collector(Box::new(ProcessMetrics(process_slots)));
        registry.register_collector(Box::new(MemoryMetrics(memory_slots)));
        registry.register_collector(Box::new(ConnectionsMetrics {
            slots: connections_slots,
            host: host_net,
        }));
        registry.register_collector(Box::new(HealthMetrics(health.clone())));

        Exporter {
            registry: Arc::new(registry),
            targets,
            health,
            jobs,
        }
    }

    /// Start every collector in the background (needs a Tokio runtime).
    pub fn spawn(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        self.jobs
            .drain(..)
            .map(|j| collector::spawn(j.sampler, j.health, j.interval))
            .collect()
    }

    /// Run every collector once, in the calling thread. Async collectors
    /// (probes) run on a small runtime of their own.
    pub fn sample_once(&mut self) {
        let mut runtime = None;
        for j in &mut self.jobs {
            match &mut j.sampler {
                Kind::Blocking(s) => collector::run_once(s.as_mut(), &j.health),
                Kind::Async(s) => {
                    let rt = runtime.get_or_insert_with(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("a current-thread runtime")
                    });
                    rt.block_on(collector::run_once_async(s.as_mut(), &j.health));
                }
            }
        }
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
    });
    Job {
        sampler,
        health,
        interval,
    }
}
