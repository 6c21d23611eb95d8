//! Memory of the gateway and its worker children, on `--collect.memory.interval`
//! (default 30s, the field report's memory interval).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{SampleError, Sampler};
use crate::discovery::Target;
use crate::memory_limit::{self, Limit};
use crate::metrics::{self, Latest};
use crate::names;
use crate::platform::{Identity, ProcError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemorySample {
    /// The process this sample belongs to.
    pub id: Identity,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub children_resident_bytes: u64,
    /// What `resident_bytes` is measured against.
    pub limit: Option<Limit>,
}

#[derive(Debug)]
pub struct MemorySlot {
    pub target: Arc<Target>,
    pub latest: Latest<MemorySample>,
}

impl MemorySlot {
    /// The latest sample, but only while it still describes the process the
    /// gateway runs as now: a dead gateway has no memory.
    fn current(&self) -> Option<MemorySample> {
        let now = self.target.current()?.id;
        self.latest.get().filter(|s| s.id == now)
    }
}

pub struct MemorySampler {
    slot: Arc<MemorySlot>,
    /// The heap limit the arguments of the process set
    /// ([`memory_limit::from_args`]), read once per process: they are fixed
    /// when it starts.
    args_limit: Option<(Identity, Option<u64>)>,
}

impl MemorySampler {
    pub fn new(slot: Arc<MemorySlot>) -> Self {
        MemorySampler {
            slot,
            args_limit: None,
        }
    }
}

impl Sampler for MemorySampler {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn sample(&mut self) -> Result<(), SampleError> {
        let Some(found) = self.slot.target.resolve() else {
            return Ok(());
        };
        let pid = found.id.pid;
        let p = &*self.slot.target.platform;
        let args_limit = &mut self.args_limit;
        let mut read = || -> Result<MemorySample, ProcError> {
            let (resident_bytes, virtual_bytes) = p.memory(pid)?;
            // A child that exits between listing and reading counts as zero.
            let children_resident_bytes = self
                .slot
                .target
                .descendants(pid)
                .into_iter()
                .filter_map(|c| p.memory(c).ok().map(|(rss, _)| rss))
                .sum();
            let configured = self.slot.target.spec.memory_limit;
            Ok(MemorySample {
                id: found.id,
                resident_bytes,
                virtual_bytes,
                children_resident_bytes,
                limit: memory_limit::resolve_with(p, configured, pid, || match *args_limit {
                    Some((id, bytes)) if id == found.id => bytes,
                    _ => {
                        let bytes = memory_limit::from_args(p, pid);
                        *args_limit = Some((found.id, bytes));
                        bytes
                    }
                }),
            })
        };
        match read() {
            Ok(s) => {
                self.slot.latest.set(s);
                Ok(())
            }
            Err(ProcError::Gone(_)) => Ok(()),
            Err(e) => Err(SampleError::Failed(e.to_string())),
        }
    }
}

#[derive(Debug)]
pub struct MemoryMetrics(pub Vec<Arc<MemorySlot>>);

impl MemoryMetrics {
    fn rows<'a>(
        &'a self,
        f: fn(&MemorySample) -> Option<f64>,
    ) -> impl Iterator<Item = (metrics::Labels<'a, 1>, f64)> + 'a {
        self.0.iter().filter_map(move |slot| {
            let v = f(&slot.current()?)?;
            Some(([("gateway", slot.target.spec.name.as_str())], v))
        })
    }
}

impl Collector for MemoryMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        metrics::gauge(
            &mut enc,
            &names::PROCESS_RESIDENT_MEMORY_BYTES,
            "Resident memory (RSS) of the gateway process. Sampled every --collect.memory.interval.",
            self.rows(|s| Some(s.resident_bytes as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_VIRTUAL_MEMORY_BYTES,
            "Virtual memory size of the gateway process. Sampled every --collect.memory.interval.",
            self.rows(|s| Some(s.virtual_bytes as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROCESS_CHILDREN_RESIDENT_MEMORY_BYTES,
            "Summed resident memory of the gateway's descendant (worker) processes. Sampled every --collect.memory.interval.",
            self.rows(|s| Some(s.children_resident_bytes as f64)),
        )?;
        let limits = self.0.iter().filter_map(|slot| {
            let limit = slot.current()?.limit?;
            Some((
                [
                    ("gateway", slot.target.spec.name.as_str()),
                    ("source", limit.source.as_str()),
                ],
                limit.bytes as f64,
            ))
        });
        metrics::gauge(
            &mut enc,
            &names::MEMORY_LIMIT_BYTES,
            "Memory limit the gateway's usage is measured against; source is the first that applies: config, cgroup, max_old_space_size, host. Sampled every --collect.memory.interval.",
            limits,
        )?;
        metrics::gauge(
            &mut enc,
            &names::MEMORY_USAGE_RATIO,
            "Resident memory of the gateway process over openclaw_gateway_memory_limit_bytes. Sampled every --collect.memory.interval.",
            self.rows(|s| {
                let limit = s.limit?;
                Some(s.resident_bytes as f64 / limit.bytes as f64)
            }),
        )
    }
}
