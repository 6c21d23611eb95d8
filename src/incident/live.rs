//! What only the running exporter knows of a gateway: its current series
//! and the last minute of probes. Inside the exporter they are read from
//! its registry and probe statistics ([`ExporterLive`]); the `snapshot`
//! command fetches them from a running exporter's `/-/incident` endpoint,
//! or, when none answers, takes a one-shot sample and says so.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use prometheus_client::registry::Registry;

use crate::exposition::{self, Format};
use crate::probe::history::Entry;
use crate::probe::ProbeStats;

/// The path of the debug endpoint, under the exporter's own `/-/`.
pub const ENDPOINT: &str = "/-/incident";

/// One gateway as the exporter sees it now.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LiveView {
    /// The gateway's series, in the classic text format.
    pub series: String,
    /// The last minute of probes, by endpoint (`live`, `ready`), oldest first.
    pub probes: BTreeMap<String, Vec<Entry>>,
    /// Where this came from, for the manifest.
    #[serde(default)]
    pub source: String,
}

/// A source of [`LiveView`]s.
pub trait Live: Send + Sync + std::fmt::Debug {
    fn view(&self, gateway: &str) -> Result<LiveView, String>;
}

/// One exporter's registry and probe statistics; filled once the exporter
/// is assembled (its samplers, which take snapshots, are made before).
#[derive(Debug, Default)]
pub struct ExporterLive {
    parts: OnceLock<(Arc<Registry>, Vec<Arc<ProbeStats>>)>,
    source: String,
}

impl ExporterLive {
    pub fn new(source: &str) -> ExporterLive {
        ExporterLive {
            parts: OnceLock::new(),
            source: source.to_string(),
        }
    }

    pub fn fill(&self, registry: Arc<Registry>, stats: Vec<Arc<ProbeStats>>) {
        let _ = self.parts.set((registry, stats));
    }
}

impl Live for ExporterLive {
    fn view(&self, gateway: &str) -> Result<LiveView, String> {
        let (registry, stats) = self.parts.get().ok_or("the exporter is still starting")?;
        let text = exposition::render(registry, Format::Text)
            .map_err(|e| format!("encoding the series: {e}"))?;
        Ok(LiveView {
            series: gateway_series(&text, gateway),
            probes: stats
                .iter()
                .filter(|s| s.gateway == gateway)
                .map(|s| (s.endpoint.as_str().to_string(), s.history()))
                .collect(),
            source: self.source.clone(),
        })
    }
}

/// A view fetched or sampled before the snapshot.
#[derive(Debug)]
pub struct Fixed(pub Result<LiveView, String>);

impl Live for Fixed {
    fn view(&self, _: &str) -> Result<LiveView, String> {
        self.0.clone()
    }
}

/// The samples of `text` (classic text format) labelled `gateway="<name>"`,
/// each family with its `# HELP` and `# TYPE` lines.
pub fn gateway_series(text: &str, gateway: &str) -> String {
    let label = format!("gateway=\"{}\"", escape_label(gateway));
    let mut out = String::new();
    let mut header = String::new();
    for line in text.lines() {
        if line.starts_with("# HELP") {
            header.clear();
        }
        if line.starts_with('#') {
            header.push_str(line);
            header.push('\n');
            continue;
        }
        let labels = line
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'));
        let ours = labels.is_some_and(|(l, _)| {
            l.split(',').any(|pair| pair.trim() == label)
                || l.starts_with(&label)
                || l.contains(&format!(",{label}"))
        });
        if ours {
            out.push_str(&header);
            header.clear();
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_of_one_gateway() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\n\
a_total{gateway=\"main\",reason=\"x\"} 1\n\
a_total{gateway=\"mainly\"} 2\n\
a_total{reason=\"y\",gateway=\"main\"} 3\n\
# HELP b B.\n# TYPE b gauge\nb{gateway=\"other\"} 4\n\
# HELP c C.\n# TYPE c gauge\nc 5\n";
        let out = gateway_series(text, "main");
        assert_eq!(
            out,
            "# HELP a_total A.\n# TYPE a_total counter\n\
a_total{gateway=\"main\",reason=\"x\"} 1\n\
a_total{reason=\"y\",gateway=\"main\"} 3\n"
        );
        assert_eq!(gateway_series(text, "nobody"), "");
    }
}
