//! Memory of the gateway and its worker children, on `--collect.memory.interval`
//! (default 30s, the field report's memory interval).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{SampleError, Sampler};
use crate::discovery::Target;
use crate::metrics::{self, Latest};
use crate::proc::{self, Host, Identity, ProcError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemorySample {
    /// The process this sample belongs to.
    pub id: Identity,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub children_resident_bytes: u64,
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
    host: Host,
}

impl MemorySampler {
    pub fn new(slot: Arc<MemorySlot>, host: Host) -> Self {
        MemorySampler { slot, host }
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
        let read = || -> Result<MemorySample, ProcError> {
            let resident_bytes = proc::resident_bytes(&self.host, pid)?;
            let virtual_bytes = proc::virtual_bytes(pid)?;
            // A child that exits between listing and reading counts as zero.
            let children_resident_bytes = proc::descendants(pid)
                .into_iter()
                .filter_map(|c| proc::resident_bytes(&self.host, c).ok())
                .sum();
            Ok(MemorySample {
                id: found.id,
                resident_bytes,
                virtual_bytes,
                children_resident_bytes,
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
        f: fn(&MemorySample) -> u64,
    ) -> impl Iterator<Item = (metrics::Labels<'a, 1>, f64)> + 'a {
        self.0.iter().filter_map(move |slot| {
            let s = slot.current()?;
            Some(([("gateway", slot.target.spec.name.as_str())], f(&s) as f64))
        })
    }
}

impl Collector for MemoryMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_process_resident_memory",
            "Resident memory (RSS) of the gateway process. Sampled every --collect.memory.interval.",
            Some(&Unit::Bytes),
            self.rows(|s| s.resident_bytes),
        )?;
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_process_virtual_memory",
            "Virtual memory size of the gateway process. Sampled every --collect.memory.interval.",
            Some(&Unit::Bytes),
            self.rows(|s| s.virtual_bytes),
        )?;
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_process_children_resident_memory",
            "Summed resident memory of the gateway's descendant (worker) processes. Sampled every --collect.memory.interval.",
            Some(&Unit::Bytes),
            self.rows(|s| s.children_resident_bytes),
        )
    }
}
