//! Gateways learnt while running (`discovery:` in the config file): the
//! cells of `openclaw fleet list --json` ([`fleet`]) and Prometheus-style
//! target files ([`file_sd`]).
//!
//! One thread lists the sources on their intervals. Each gateway found runs
//! the collectors a configured gateway runs ([`Exporter::gateways_only`], on
//! the main exporter's process view); one that goes away is retired and its
//! series leave the next scrape. A source that cannot be read or parsed
//! keeps the gateways it gave last, counts an error and logs once per change
//! of its state.
//!
//! A discovered gateway's series are in a registry of its own; a scrape
//! writes them into the main registry's families ([`merge`]).

pub mod file_sd;
pub mod fleet;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use crate::collector::Health;
use crate::config::Config;
use crate::discovery::Target;
use crate::exporter::Exporter;
use crate::exposition::{self, Format};
use crate::metrics;
use crate::names;
use crate::process_view::ProcessView;

/// One gateway a source gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub spec: crate::config::GatewaySpec,
    /// The `tenant` label of its `openclaw_gateway_discovered_info`.
    pub tenant: Option<String>,
}

/// The sources, by their `source` label.
pub const SOURCES: [&str; 2] = ["fleet", "file_sd"];

/// The discovered gateways and the sources' own series.
pub struct Discovered {
    units: RwLock<BTreeMap<String, Unit>>,
    sources: Mutex<BTreeMap<&'static str, SourceStats>>,
}

/// One discovered gateway, running.
struct Unit {
    found: Found,
    source: &'static str,
    registry: Arc<Registry>,
    health: Vec<Arc<Health>>,
    targets: Vec<Arc<Target>>,
}

#[derive(Debug, Clone, Default)]
struct SourceStats {
    errors: u64,
    failing: bool,
    targets: usize,
}

impl Discovered {
    fn new(config: &Config) -> Discovered {
        let on = [
            config.discovery.fleet.is_some(),
            config.discovery.file_sd.is_some(),
        ];
        let sources = SOURCES
            .into_iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(s, _)| (s, SourceStats::default()))
            .collect();
        Discovered {
            units: RwLock::new(BTreeMap::new()),
            sources: Mutex::new(sources),
        }
    }

    /// The gateways watched now.
    pub fn targets(&self) -> Vec<Arc<Target>> {
        let units = self.units.read().unwrap_or_else(|e| e.into_inner());
        units.values().flat_map(|u| u.targets.clone()).collect()
    }

    /// Render `main` with the sources' series and every discovered
    /// gateway's series in its families.
    pub fn render(
        self: &Arc<Self>,
        main: &Registry,
        format: Format,
    ) -> Result<String, std::fmt::Error> {
        let mut om = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut om, main)?;
        let mut own = Registry::default();
        own.register_collector(Box::new(DiscoveryMetrics(self.clone())));
        let mut parts = vec![String::new()];
        prometheus_client::encoding::text::encode(&mut parts[0], &own)?;
        for unit in self
            .units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &unit.registry)?;
            parts.push(text);
        }
        let om = merge(&om, &parts);
        Ok(match format {
            Format::OpenMetrics => om,
            Format::Text => exposition::openmetrics_to_text(&om),
        })
    }

    fn stats(&self, source: &'static str, f: impl FnOnce(&mut SourceStats)) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        f(sources.entry(source).or_default());
    }

    /// Watch exactly `wanted`: start the new gateways, retire the ones that
    /// went away or changed. `taken` are the configured gateways' names.
    fn apply(&self, wanted: Vec<(Found, &'static str)>, taken: &HashSet<String>, ctx: &Ctx) {
        let mut names = taken.clone();
        let mut keep: BTreeMap<String, (Found, &'static str)> = BTreeMap::new();
        for (found, source) in wanted {
            let name = found.spec.name.clone();
            if !names.insert(name.clone()) {
                tracing::warn!(
                    gateway = name,
                    source,
                    "a gateway of this name is watched already; this one is skipped"
                );
                continue;
            }
            keep.insert(name, (found, source));
        }
        let mut units = self.units.write().unwrap_or_else(|e| e.into_inner());
        units.retain(|name, unit| {
            let same = keep
                .get(name)
                .is_some_and(|(f, s)| *f == unit.found && *s == unit.source);
            if !same {
                Exporter::retire(&unit.health);
                crate::incident::forget_counts(name);
                tracing::info!(
                    gateway = name,
                    source = unit.source,
                    "discovered gateway removed"
                );
            }
            same
        });
        for (name, (found, source)) in keep {
            if units.contains_key(&name) {
                continue;
            }
            tracing::info!(
                gateway = name,
                source,
                url = found.spec.url,
                tenant = found.tenant,
                "discovered gateway added"
            );
            units.insert(name, Unit::start(found, source, ctx));
        }
    }
}

/// What a discovered gateway's exporter is built from.
struct Ctx {
    config: Config,
    view: Arc<ProcessView>,
}

impl Unit {
    fn start(found: Found, source: &'static str, ctx: &Ctx) -> Unit {
        let config = Config {
            gateways: vec![found.spec.clone()],
            ..ctx.config.clone()
        };
        let mut exporter = Exporter::gateways_only(&config, ctx.view.clone());
        exporter.spawn_quietly();
        Unit {
            found,
            source,
            registry: exporter.registry.clone(),
            health: exporter.health.clone(),
            targets: exporter.targets.clone(),
        }
    }
}

/// Start the sources of `config.discovery` on a thread of their own; the
/// gateways they find share `view`. `None` when discovery is off.
pub fn start(config: &Config, view: Arc<ProcessView>) -> Option<Arc<Discovered>> {
    if !config.discovery.is_on() {
        return None;
    }
    let discovered = Arc::new(Discovered::new(config));
    let taken: HashSet<String> = config.gateways.iter().map(|g| g.name.clone()).collect();
    let ctx = Ctx {
        config: config.clone(),
        view,
    };
    let d = discovered.clone();
    let body = move || Sources::new(&ctx.config).run(&d, &taken, &ctx);
    if let Err(e) = std::thread::Builder::new()
        .name("discovery".into())
        .stack_size(256 * 1024)
        .spawn(body)
    {
        tracing::error!(error = %e, "cannot start the discovery thread; no gateway is discovered");
    }
    Some(discovered)
}

/// The sources that are on, each with what it gave last.
struct Sources {
    fleet: Option<(crate::config::Fleet, Last)>,
    file_sd: Option<(crate::config::FileSd, BTreeMap<PathBuf, FileState>)>,
}

/// What a source (or one target file) gave at its last good read, and the
/// error of its last read while that failed.
#[derive(Default)]
struct Last {
    found: Vec<Found>,
    error: Option<String>,
}

/// One target file: what it gave last, and its stamp when it was last read,
/// good or not.
#[derive(Default)]
struct FileState {
    last: Last,
    read: Option<file_sd::Stamp>,
}

impl Sources {
    fn new(config: &Config) -> Sources {
        Sources {
            fleet: config.discovery.fleet.clone().map(|f| (f, Last::default())),
            file_sd: config.discovery.file_sd.clone().map(|f| {
                let files = f.files.iter().map(|p| (p.clone(), FileState::default()));
                let files = files.collect();
                (f, files)
            }),
        }
    }

    fn run(mut self, d: &Discovered, taken: &HashSet<String>, ctx: &Ctx) {
        let now = Instant::now();
        let (mut fleet_due, mut files_due) = (now, now);
        loop {
            let now = Instant::now();
            let mut changed = false;
            if let Some((fleet, last)) = &mut self.fleet {
                if now >= fleet_due {
                    fleet_due = now + fleet.interval;
                    changed |= record(d, "fleet", last, fleet::list(fleet));
                }
            }
            if let Some((sd, files)) = &mut self.file_sd {
                if now >= files_due {
                    files_due = now + sd.refresh_interval;
                    changed |= refresh_files(d, files);
                }
            }
            if changed {
                d.apply(self.wanted(), taken, ctx);
            }
            let next = [
                self.fleet.as_ref().map(|_| fleet_due),
                self.file_sd.as_ref().map(|_| files_due),
            ];
            let next = next.into_iter().flatten().min().unwrap_or(now);
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            );
        }
    }

    /// Every gateway the sources give now, fleet first, then file by file.
    fn wanted(&self) -> Vec<(Found, &'static str)> {
        let fleet = self.fleet.iter().flat_map(|(_, last)| &last.found);
        let files = self
            .file_sd
            .iter()
            .flat_map(|(_, f)| f.values().flat_map(|s| &s.last.found));
        fleet
            .map(|f| (f.clone(), "fleet"))
            .chain(files.map(|f| (f.clone(), "file_sd")))
            .collect()
    }
}

/// Take one read of a source: a good one replaces what it gave last, a
/// failed one keeps that and counts. Logged when the source starts or stops
/// failing. Whether its gateways changed.
fn record(
    d: &Discovered,
    source: &'static str,
    last: &mut Last,
    result: Result<Vec<Found>, String>,
) -> bool {
    match result {
        Ok(found) => {
            if last.error.take().is_some() {
                tracing::info!(
                    source,
                    gateways = found.len(),
                    "discovery source readable again"
                );
            }
            let changed = last.found != found;
            last.found = found;
            d.stats(source, |s| {
                s.failing = false;
                s.targets = last.found.len();
            });
            changed
        }
        Err(e) => {
            if last.error.is_none() {
                tracing::warn!(
                    source,
                    error = e,
                    kept = last.found.len(),
                    "discovery source unreadable; keeping the gateways it gave last"
                );
            }
            last.error = Some(e);
            d.stats(source, |s| {
                s.errors += 1;
                s.failing = true;
            });
            false
        }
    }
}

/// Read again each target file whose size or modification time changed.
/// Whether any file's gateways changed.
fn refresh_files(d: &Discovered, files: &mut BTreeMap<PathBuf, FileState>) -> bool {
    let mut changed = false;
    for (path, state) in files.iter_mut() {
        let stamp = file_sd::stamp(path);
        if state.read == Some(stamp) {
            continue;
        }
        state.read = Some(stamp);
        changed |= record(d, "file_sd", &mut state.last, file_sd::read(path));
    }
    let failing = files.values().any(|s| s.last.error.is_some());
    let targets = files.values().map(|s| s.last.found.len()).sum();
    d.stats("file_sd", |s| {
        s.failing = failing;
        s.targets = targets;
    });
    changed
}

/// The sources' series and the discovered gateways' info series.
pub struct DiscoveryMetrics(pub Arc<Discovered>);

impl std::fmt::Debug for DiscoveryMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscoveryMetrics")
    }
}

impl Collector for DiscoveryMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = self
            .0
            .sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let rows = |f: fn(&SourceStats) -> f64| {
            sources.iter().map(move |(s, st)| ([("source", *s)], f(st)))
        };
        metrics::counter(
            &mut enc,
            &names::DISCOVERY_ERRORS_TOTAL,
            "Reads of a discovery source that failed: a fleet listing that failed, timed out or did not parse; a target file, once per version, that could not be read or parsed. The gateways it gave last are kept.",
            rows(|s| s.errors as f64),
        )?;
        metrics::gauge(
            &mut enc,
            &names::DISCOVERY_FAILING,
            "Whether the source's last read failed (1), so that the gateways it gave last are watched on.",
            rows(|s| if s.failing { 1.0 } else { 0.0 }),
        )?;
        metrics::gauge(
            &mut enc,
            &names::DISCOVERY_TARGETS,
            "Gateways the source gives now (its last good read).",
            rows(|s| s.targets as f64),
        )?;
        let units = self.0.units.read().unwrap_or_else(|e| e.into_inner());
        if units.is_empty() {
            return Ok(());
        }
        let mut info = metrics::descriptor(
            &mut enc,
            &names::DISCOVERED_INFO,
            "A gateway found by discovery: its source and tenant; the value is always 1.",
        )?;
        for (name, unit) in units.iter() {
            info.encode_info(&[
                ("gateway", name.as_str()),
                ("source", unit.source),
                ("tenant", unit.found.tenant.as_deref().unwrap_or("")),
            ])?;
        }
        Ok(())
    }
}

/// Merge OpenMetrics texts: every family once, at the place it first
/// appears, with the samples of every text that has it. A family begins at
/// its `# HELP` line, as prometheus-client writes them.
pub fn merge(main: &str, parts: &[String]) -> String {
    struct Family<'a> {
        head: Vec<&'a str>,
        samples: Vec<&'a str>,
    }
    let mut order: Vec<&str> = Vec::new();
    let mut families: BTreeMap<&str, Family> = BTreeMap::new();
    for text in std::iter::once(main).chain(parts.iter().map(String::as_str)) {
        let mut current: Option<(&str, bool)> = None;
        for line in text.lines() {
            if line == "# EOF" {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or(rest);
                let new = !families.contains_key(name);
                if new {
                    order.push(name);
                    families.insert(
                        name,
                        Family {
                            head: Vec::new(),
                            samples: Vec::new(),
                        },
                    );
                }
                current = Some((name, new));
            }
            let Some((name, new)) = current else {
                continue;
            };
            let Some(family) = families.get_mut(name) else {
                continue;
            };
            if line.starts_with("# ") {
                if new {
                    family.head.push(line);
                }
            } else {
                family.samples.push(line);
            }
        }
    }
    let mut out = String::with_capacity(main.len() + parts.iter().map(String::len).sum::<usize>());
    for name in order {
        let Some(f) = families.get(name) else {
            continue;
        };
        for line in f.head.iter().chain(&f.samples) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_writes_each_family_once() {
        let main = "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds{gateway=\"x\"} 1\n# HELP b B.\n# TYPE b counter\nb_total 2\n# EOF\n";
        let parts = [
            "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds{gateway=\"y\"} 3\n# HELP c C.\n# TYPE c gauge\nc{gateway=\"y\"} 4\n# EOF\n".to_string(),
            "# HELP c C.\n# TYPE c gauge\nc{gateway=\"z\"} 5\n# EOF\n".to_string(),
        ];
        assert_eq!(
            merge(main, &parts),
            "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds{gateway=\"x\"} 1\na_seconds{gateway=\"y\"} 3\n# HELP b B.\n# TYPE b counter\nb_total 2\n# HELP c C.\n# TYPE c gauge\nc{gateway=\"y\"} 4\nc{gateway=\"z\"} 5\n# EOF\n"
        );
        assert_eq!(merge(main, &[]), main);
        assert_eq!(merge("# EOF\n", &[]), "# EOF\n");
    }
}
