//! Small helpers to write metric families from latest samples at scrape time.
//!
//! prometheus-client appends the unit and, for counters, `_total` itself: pass
//! names without them (`openclaw_gateway_process_cpu` + `Unit::Seconds` gives
//! `openclaw_gateway_process_cpu_seconds_total`).

use std::sync::RwLock;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

pub type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

/// The ratio unit; prometheus-client's `Unit::Ratios` would say "ratios".
pub fn ratio() -> Unit {
    Unit::Other("ratio".into())
}

fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, value) in rows {
        let sample = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// Write a gauge family; nothing at all when there are no rows.
pub fn gauge<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, unit, MetricType::Gauge, rows)
}

/// Write a counter family; nothing at all when there are no rows.
pub fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, unit, MetricType::Counter, rows)
}

/// Write a counter family of one series without labels; nothing when `None`.
pub fn counter_unlabelled(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<f64>,
) -> Result<(), std::fmt::Error> {
    let Some(value) = value else {
        return Ok(());
    };
    let metric = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// The latest value written by a sampling task and read at scrape time.
#[derive(Debug, Default)]
pub struct Latest<T>(RwLock<Option<T>>);

impl<T> Latest<T> {
    pub fn new() -> Self {
        Latest(RwLock::new(None))
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(value);
    }

    /// Run `f` on the latest value without copying it.
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        f(self.0.read().unwrap_or_else(|e| e.into_inner()).as_ref())
    }
}

impl<T: Clone> Latest<T> {
    pub fn get(&self) -> Option<T> {
        self.with(|v| v.cloned())
    }
}
