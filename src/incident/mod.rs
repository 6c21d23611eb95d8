//! Incident snapshots: on every transition of a gateway to hung inside the
//! exporter, and on demand (`openclaw-gateway-exporter snapshot`), one
//! folder per event under `incident.dir`, named so that the folders sort by
//! time: `<UTC time>-<gateway>-<reason>`. It holds what a person needs
//! afterwards: the exporter's series for the gateway and the last minute of
//! probes ([`live`]), the process, its limits, threads, fds and sockets,
//! the log tail and the gateway's newest stability bundle ([`scene`]), and
//! `manifest.json`, which lists what was collected and what failed, and why
//! ([`folder`]). Secrets never go in ([`redact`]); old folders are removed
//! by count and total size ([`retention`]). Taking one never signals or
//! traces the gateway, and never panics: a failed read is a line of the
//! manifest, a folder that cannot be written an [`Error`], both counted in
//! `openclaw_gateway_incident_snapshots_total`.

pub mod command;
pub mod folder;
pub mod live;
pub mod redact;
pub mod retention;
pub mod scene;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::config::{GatewaySpec, Incident};
use crate::platform::Platform;
use crate::process_view::ProcessView;
use folder::{Folder, Manifest};
use live::Live;
use redact::Redactor;

/// Why a snapshot could not be written at all (a partial one is `Ok`: its
/// manifest says what failed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("incident folder {path}: {error}")]
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("a snapshot of gateway {0:?} is already being taken")]
    Busy(String),
}

/// The exporter's series and probe history file caps.
const SERIES_CAP: usize = 1024 * 1024;
const PROBES_CAP: usize = 512 * 1024;

/// Takes incident snapshots. Cheap to clone; shared by the exporter's hang
/// trigger, the watchdog and the commands.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Incident,
    view: Arc<ProcessView>,
    live: Option<Arc<dyn Live>>,
    /// Gateways with a snapshot under way: one at a time each.
    busy: Mutex<HashSet<String>>,
}

impl Snapshotter {
    /// Snapshots per `settings`, reading the OS through `view`'s platform;
    /// `live` gives the exporter's series and probe history.
    pub fn new(
        settings: Incident,
        view: Arc<ProcessView>,
        live: Option<Arc<dyn Live>>,
    ) -> Snapshotter {
        Snapshotter {
            inner: Arc::new(Inner {
                settings,
                view,
                live,
                busy: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn settings(&self) -> &Incident {
        &self.inner.settings
    }

    /// Takes one snapshot of `gateway` now; `reason` names the event
    /// ("hung", "manual", "recover", "watchdog"). Never panics; never
    /// signals the gateway.
    pub fn take(&self, gateway: &GatewaySpec, reason: &str) -> Result<PathBuf, Error> {
        let name = gateway.name.clone();
        // Not counted: the one under way is.
        if !self.lock_busy().insert(name.clone()) {
            return Err(Error::Busy(name));
        }
        let result = self.take_now(gateway, reason);
        self.lock_busy().remove(&name);
        let outcome = match &result {
            Ok((_, true)) => "complete",
            Ok((_, false)) => "partial",
            Err(_) => "failed",
        };
        count(&name, reason, outcome);
        match &result {
            Ok((path, _)) => {
                tracing::info!(gateway = %name, reason, result = outcome, path = %path.display(), "incident snapshot written")
            }
            Err(e) => {
                tracing::error!(gateway = %name, reason, error = %e, "incident snapshot failed")
            }
        }
        result.map(|(path, _)| path)
    }

    fn lock_busy(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_now(&self, spec: &GatewaySpec, reason: &str) -> Result<(PathBuf, bool), Error> {
        let settings = &self.inner.settings;
        let p: &dyn Platform = &**self.inner.view.platform();
        let now = std::time::SystemTime::now();
        let reason = file_safe(reason);
        let dir = settings.dir.join(format!(
            "{}-{}-{reason}",
            folder_time(now),
            file_safe(&spec.name)
        ));
        let io = |error| Error::Dir {
            path: dir.clone(),
            error,
        };
        create_private_dir(&settings.dir).map_err(io)?;
        std::fs::create_dir(&dir).map_err(io)?;

        self.inner
            .view
            .snapshot_within(std::time::Duration::from_secs(1));
        let found = crate::discovery::discover(&self.inner.view, spec);
        let redactor = Redactor::new(secrets(p, spec, found.map(|f| f.id.pid)));
        let manifest = Manifest {
            gateway: spec.name.clone(),
            reason: reason.clone(),
            taken_at: rfc3339(now),
            exporter_version: crate::exporter::VERSION.to_string(),
            os: format!("{} ({} backend)", std::env::consts::OS, p.name()),
            pid: found.map(|f| f.id.pid),
            items: Vec::new(),
        };
        let mut f = Folder::new(dir.clone(), redactor, manifest);

        match self.inner.live.as_ref().map(|l| l.view(&spec.name)) {
            Some(Ok(view)) => {
                let note = format!("from {}", view.source);
                f.write_noted(
                    "series",
                    "series.prom",
                    &view.series,
                    SERIES_CAP,
                    note.clone(),
                );
                let probes = serde_json::to_string_pretty(&view.probes).unwrap_or_default();
                f.write_noted("probes", "probes.json", &probes, PROBES_CAP, note);
            }
            Some(Err(e)) => {
                f.failed("series", e.clone());
                f.failed("probes", e);
            }
            None => {
                f.failed("series", "no exporter state to read".into());
                f.failed("probes", "no exporter state to read".into());
            }
        }
        match found {
            Some(found) => {
                scene::process(&mut f, p, found.id);
                scene::threads(&mut f, p, found.id.pid);
                scene::fds_and_sockets(&mut f, p, spec, found.id.pid);
            }
            None => {
                for item in ["process", "limits", "threads", "fds", "sockets"] {
                    f.failed(item, "the gateway process was not found".into());
                }
            }
        }
        scene::logs(&mut f, spec);
        scene::bundle(&mut f, spec);

        let (path, manifest) = f.finish().map_err(io)?;
        let (_, errors) = retention::prune(&settings.dir, settings.max_count, settings.max_bytes);
        for e in errors {
            tracing::warn!(error = %e, "incident retention");
        }
        Ok((path, manifest.complete()))
    }
}

/// The secret values to redact: the gateway's token from the exporter's
/// config and token file, and the gateway's own token and password from its
/// environment (read for this, never written).
fn secrets(p: &dyn Platform, spec: &GatewaySpec, pid: Option<i32>) -> Vec<String> {
    let mut out: Vec<String> = spec.token.iter().map(|t| t.expose().to_string()).collect();
    if let Some(t) = spec
        .token_file
        .as_deref()
        .and_then(|f| crate::config::read_token_file(f).ok())
    {
        out.push(t.expose().to_string());
    }
    let env = pid.and_then(|pid| p.environ(pid)).unwrap_or_default();
    out.extend(
        env.into_iter()
            .filter(|(k, _)| redact::SECRET_ENV.contains(&k.as_str()))
            .map(|(_, v)| v),
    );
    out.extend(
        redact::SECRET_ENV
            .iter()
            .filter_map(|k| std::env::var(k).ok()),
    );
    out
}

/// The folder, owner-only on Unix.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// A name or reason as a folder name part: letters, digits, `.`, `_`, `-`.
pub fn file_safe(s: &str) -> String {
    let out: String = s
        .chars()
        .take(64)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    match out.is_empty() {
        true => "_".to_string(),
        false => out,
    }
}

/// UTC civil time of `t`: (year, month, day, hour, minute, second, ms).
fn civil(t: std::time::SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = rem as u32;
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// `20261129T140512.123Z`: sorts by time as text.
pub fn folder_time(t: std::time::SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}.{ms:03}Z")
}

/// `2026-11-29T14:05:12.123Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Snapshots taken, by gateway, reason and result; one table for the
/// process (every exporter of discovered gateways counts here too).
static COUNTS: Mutex<BTreeMap<(String, String, &'static str), u64>> = Mutex::new(BTreeMap::new());

/// The `result` label values.
pub const RESULTS: [&str; 3] = ["complete", "partial", "failed"];

/// Expose the hung snapshots of `gateway` as 0 until one is taken, so that
/// `increase()` sees the first.
pub fn init_counts(gateway: &str) {
    let mut c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    for result in RESULTS {
        c.entry((gateway.to_string(), "hung".to_string(), result))
            .or_default();
    }
}

/// Drop every row of `gateway`: a discovered gateway that is gone leaves
/// no series behind.
pub fn forget_counts(gateway: &str) {
    let mut c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    c.retain(|(g, _, _), _| g != gateway);
}

/// Count one snapshot of `gateway` for `reason` with `result` ([`RESULTS`]).
pub fn count(gateway: &str, reason: &str, result: &'static str) {
    let mut c = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *c.entry((gateway.to_string(), file_safe(reason), result))
        .or_default() += 1;
}

/// Exposes `openclaw_gateway_incident_snapshots_total`.
#[derive(Debug)]
pub struct IncidentMetrics;

impl Collector for IncidentMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows: Vec<([(&str, String); 3], f64)> = COUNTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((g, r, res), n)| {
                (
                    [
                        ("gateway", g.clone()),
                        ("reason", r.clone()),
                        ("result", res.to_string()),
                    ],
                    *n as f64,
                )
            })
            .collect();
        crate::metrics::counter(
            &mut enc,
            &crate::names::INCIDENT_SNAPSHOTS_TOTAL,
            "Incident snapshots taken (reason: hung on each transition to hung, manual by the snapshot command, or what the caller named), by result: complete, partial (written; its manifest.json lists what failed) or failed (no folder written; see the exporter's log).",
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_sort_by_time() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_961_112_123);
        assert_eq!(folder_time(t), "20261129T140512.123Z");
        assert_eq!(rfc3339(t), "2026-11-29T14:05:12.123Z");
        assert_eq!(folder_time(std::time::UNIX_EPOCH), "19700101T000000.000Z");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        assert!(retention::is_snapshot_name(&format!(
            "{}-g-hung",
            folder_time(t)
        )));
        assert_eq!(file_safe("a/b c..d"), "a_b_c..d");
        assert_eq!(file_safe("../x"), ".._x");
        assert_eq!(file_safe(""), "_");
    }

    /// A gateway that is not running, a huge log, a token in the log, a
    /// folder that vanishes: a partial or failed snapshot, never a panic.
    #[test]
    fn bad_input_is_a_partial_or_failed_snapshot() {
        let dir = std::env::temp_dir().join(format!("ocgx-incident-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("huge.log");
        let token = "unit-test-token-9f8e7d6c5b";
        let line = format!(
            "{{\"time\":\"t\",\"message\":\"bad token {token}\",\"_meta\":{{\"logLevelName\":\"ERROR\"}}}}\n"
        );
        std::fs::write(&log, line.repeat(20_000)).unwrap();
        let spec = crate::config::gateway_spec(crate::config::GatewayFile {
            name: Some("gone".into()),
            url: Some("http://127.0.0.1:1".into()),
            state_dir: Some(dir.join("state")),
            pid: Some(999_999_999),
            log_path: Some(log.clone()),
            token: crate::config::Token::new(token),
            ..Default::default()
        })
        .unwrap();
        let platform: Arc<dyn Platform> = Arc::new(crate::platform::fake::FakePlatform::new(
            crate::platform::Caps::ALL,
            Vec::new(),
        ));
        let view = Arc::new(ProcessView::new(platform, std::time::Duration::ZERO));
        let settings = Incident {
            dir: dir.join("incidents"),
            max_count: 2,
            max_bytes: 10 << 20,
            on_hung: true,
        };
        let s = Snapshotter::new(
            settings,
            view,
            Some(Arc::new(live::Fixed(Err("no exporter".into())))),
        );
        let path = s.take(&spec, "manual").unwrap();
        let m: Manifest =
            serde_json::from_str(&std::fs::read_to_string(path.join("manifest.json")).unwrap())
                .unwrap();
        assert!(!m.complete());
        let status = |n: &str| m.items.iter().find(|i| i.name == n).unwrap().status.clone();
        for failed in ["series", "probes", "process", "threads", "sockets"] {
            assert_eq!(status(failed), "failed", "{failed}");
        }
        assert_eq!(status("log_tail"), "ok");
        let tail = std::fs::read(path.join("log-tail.log")).unwrap();
        assert!(tail.len() <= scene::LOG_TAIL_CAP + 64, "{}", tail.len());
        for e in std::fs::read_dir(&path).unwrap().flatten() {
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            assert!(!text.contains(token), "{}", e.path().display());
        }
        // An incident dir that cannot be made: an error, counted.
        std::fs::write(dir.join("file"), "").unwrap();
        let blocked = Snapshotter::new(
            Incident {
                dir: dir.join("file").join("x"),
                ..s.settings().clone()
            },
            s.inner.view.clone(),
            None,
        );
        assert!(blocked.take(&spec, "manual").is_err());
        let failed = COUNTS
            .lock()
            .unwrap()
            .get(&("gone".to_string(), "manual".to_string(), "failed"))
            .copied();
        assert_eq!(failed, Some(1));
        // A folder that vanishes while written: its items fail, the
        // manifest cannot be written, no panic.
        let mut f = Folder::new(
            dir.join("vanished"),
            Redactor::default(),
            Manifest::default(),
        );
        f.write("x", "x.txt", "text", 100, None);
        assert_eq!(f.manifest.items[0].status, "failed");
        assert!(f.finish().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
