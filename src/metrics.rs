//! Small helpers to write metric families from latest samples at scrape time.
//!
//! Families are named by their entry in [`crate::names`], which holds the full
//! exposed name and gives prometheus-client the parts it wants (it appends
//! the unit and, for counters, `_total` itself).

use std::sync::RwLock;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::names::{Family, Kind};

pub type Labels<'a, const N: usize> = [(&'static str, &'a str); N];

/// Write the `# HELP`, `# TYPE` and `# UNIT` lines of `family`.
pub fn descriptor<'a>(
    enc: &'a mut DescriptorEncoder,
    family: &Family,
    help: &str,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    enc.encode_descriptor(family.base(), help, family.unit(), family.metric_type())
}

fn rows<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    family: &Family,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let metric_type = family.metric_type();
    let mut metric = descriptor(enc, family, help)?;
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
    family: &Family,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    debug_assert_eq!(family.kind(), Kind::Gauge, "{}", family.name());
    self::rows(enc, family, help, rows)
}

/// Write a counter family; nothing at all when there are no rows.
pub fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    family: &Family,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    debug_assert_eq!(family.kind(), Kind::Counter, "{}", family.name());
    self::rows(enc, family, help, rows)
}

/// Write a counter family of one series without labels; nothing when `None`.
pub fn counter_unlabelled(
    enc: &mut DescriptorEncoder,
    family: &Family,
    help: &str,
    value: Option<f64>,
) -> Result<(), std::fmt::Error> {
    let Some(value) = value else {
        return Ok(());
    };
    debug_assert_eq!(family.kind(), Kind::Counter, "{}", family.name());
    let metric = descriptor(enc, family, help)?;
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
