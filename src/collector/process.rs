//! Process vitals: is the gateway process there, how it was found, CPU, fds,
//! threads, start time, restarts and worker children. Memory has its own
//! collector on its own (slower) interval.
//!
//! Rides `--collect.connections.interval` (default 10s): fd leaks and restarts
//! are followed at the same pace as the connections they usually go with.

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{SampleError, Sampler, Skipped};
use crate::discovery::{Found, Method, Target};
use crate::metrics::{self, Latest};
use crate::names;
use crate::platform::{PartialErrors, ProcError, Vitals};

/// What the process collector last saw of one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    pub found: Found,
    pub vitals: Vitals,
    pub children: u64,
}

/// One gateway's process slot, shared by its sampler and the exposition.
#[derive(Debug)]
pub struct ProcessSlot {
    pub target: Arc<Target>,
    /// `None` while the gateway is not found.
    pub latest: Latest<Option<ProcessSample>>,
}

pub struct ProcessSampler {
    slot: Arc<ProcessSlot>,
    /// Read errors already logged, so each is logged once.
    logged: HashSet<String>,
    skipped: Skipped,
}

impl ProcessSampler {
    pub fn new(slot: Arc<ProcessSlot>) -> Self {
        ProcessSampler {
            slot,
            logged: HashSet::new(),
            skipped: Skipped::default(),
        }
    }

    /// Count a skipped read, and log it the first time.
    fn log_once(&mut self, e: &ProcError) {
        self.skipped.add(e);
        // Keyed by kind and what was read, never by pid: the set stays
        // bounded however often the gateway restarts.
        let key = match e {
            ProcError::Gone(_) => "gone".to_string(),
            ProcError::Denied { what, .. } => format!("denied:{what}"),
            ProcError::Other { what, .. } => format!("other:{what}"),
        };
        if self.logged.insert(key) {
            tracing::warn!(gateway = %self.slot.target.spec.name, error = %e, "cannot read part of the gateway process; those series are skipped");
        }
    }
}

impl Sampler for ProcessSampler {
    fn name(&self) -> &'static str {
        "process"
    }

    fn take_skipped(&mut self) -> Skipped {
        std::mem::take(&mut self.skipped)
    }

    fn sample(&mut self) -> Result<(), SampleError> {
        let Some(found) = self.slot.target.resolve() else {
            self.slot.latest.set(None);
            return Ok(());
        };
        let mut errs = PartialErrors::default();
        let p = self.slot.target.platform.clone();
        match p.vitals(found.id, &mut errs) {
            Ok(vitals) => {
                for e in &errs.0 {
                    self.log_once(e);
                }
                let children = self.slot.target.descendants(found.id.pid).len() as u64;
                self.slot.latest.set(Some(ProcessSample {
                    found,
                    vitals,
                    children,
                }));
                Ok(())
            }
            // It exited between discovery and reading: the gateway is down.
            Err(ProcError::Gone(_)) => {
                self.slot.latest.set(None);
                Ok(())
            }
            Err(e) => {
                self.log_once(&e);
                self.slot.latest.set(None);
                Err(SampleError::Failed(e.to_string()))
            }
        }
    }
}

/// Exposes the process slots of every gateway.
#[derive(Debug)]
pub struct ProcessMetrics(pub Vec<Arc<ProcessSlot>>);

impl ProcessMetrics {
    /// Rows of one value for every gateway whose process is up.
    fn rows<'a>(
        &'a self,
        f: impl Fn(&ProcessSample) -> Option<f64> + 'a,
    ) -> impl Iterator<Item = (metrics::Labels<'a, 1>, f64)> + 'a {
        self.0.iter().filter_map(move |slot| {
            let v = slot
                .latest
                .with(|s| s.and_then(|s| s.as_ref()).and_then(&f))?;
            Some(([("gateway", slot.target.spec.name.as_str())], v))
        })
    }
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = self.0.iter().map(|slot| {
            let up = slot.latest.with(|s| s.is_some_and(|s| s.is_some()));
            (
                [("gateway", slot.target.spec.name.as_str())],
                if up { 1.0 } else { 0.0 },
            )
        });
        metrics::gauge(
            &mut enc,
            &names::PROCESS_UP,
            "Whether the gateway process was found (1) or not (0). Sampled every --collect.connections.interval.",
            up,
        )?;
        let methods = self.0.iter().flat_map(|slot| {
            let won = slot
                .latest
                .with(|s| s.and_then(|s| s.as_ref()).map(|s| s.found.method));
            Method::ALL.into_iter().map(move |m| {
                (
                    [
                        ("gateway", slot.target.spec.name.as_str()),
                        ("method", m.as_str()),
                    ],
                    if won == Some(m) { 1.0 } else { 0.0 },
                )
            })
        });
        metrics::gauge(
            &mut enc,
            &names::DISCOVERY_METHOD,
            "1 for the method that found the gateway process (pid, pid_file, lock_file, process_title, listen_socket), 0 for the others. Sampled every --collect.connections.interval.",
            methods,
        )?;
        metrics::counter(
            &mut enc,
            &names::PROCESS_CPU_SECONDS_TOTAL,
            "User and system CPU time of the gateway process. Sampled every --collect.connections.interval.",
            self.rows(|s| Some(s.vitals.cpu_seconds)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_OPEN_FDS,
            "Open file descriptors of the gateway process. Sampled every --collect.connections.interval.",
            self.rows(|s| s.vitals.open_fds.map(|v| v as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_MAX_FDS,
            "Soft limit on open file descriptors of the gateway process, from /proc/<pid>/limits. Sampled every --collect.connections.interval.",
            self.rows(|s| s.vitals.max_fds.map(|v| v as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_THREADS,
            "Threads of the gateway process. Sampled every --collect.connections.interval.",
            self.rows(|s| s.vitals.threads.map(|t| t as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_START_TIME_SECONDS,
            "Start time of the gateway process since the Unix epoch. Sampled every --collect.connections.interval.",
            self.rows(|s| Some(s.vitals.start_time_seconds)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_CHILDREN,
            "Descendant processes (workers) of the gateway process. Sampled every --collect.connections.interval.",
            self.rows(|s| Some(s.children as f64)),
        )?;
        let restarts = self.0.iter().map(|slot| {
            (
                [("gateway", slot.target.spec.name.as_str())],
                slot.target.restarts() as f64,
            )
        });
        metrics::counter(
            &mut enc,
            &names::PROCESS_RESTARTS_TOTAL,
            "Times the exporter found a different gateway process (new pid or start time) than the one before. Checked on every sample of any collector.",
            restarts,
        )
    }
}
