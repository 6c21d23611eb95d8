//! One function per line of the report, in the order the report shows them.
//! Each reads the gateway's series from the snapshot and returns its line,
//! or none when the series are absent (their collector is off).

use super::{Check, Snapshot};
use crate::discovery::Target;
use crate::names;
use crate::thresholds::{self, Status, Tier};

/// One gateway's series in the snapshot.
pub(super) struct Gateway<'a> {
    pub snap: &'a Snapshot,
    pub target: &'a Target,
    pub name: &'a str,
}

impl Gateway<'_> {
    /// The gateway's series `name`.
    fn get(&self, name: &str) -> Option<f64> {
        self.snap.get(name, &[("gateway", self.name)])
    }

    /// The gateway's series `name` with label `k` = `v`.
    fn with(&self, name: &str, k: &str, v: &str) -> Option<f64> {
        self.snap.get(name, &[("gateway", self.name), (k, v)])
    }

    /// The value of label `key` of every series `name` of the gateway (and
    /// `more` labels) whose value passes `keep`.
    fn label_values(
        &self,
        name: &str,
        more: &[(&str, &str)],
        key: &str,
        keep: impl Fn(f64) -> bool,
    ) -> Vec<String> {
        let want: Vec<(&str, &str)> = [("gateway", self.name)]
            .into_iter()
            .chain(more.iter().copied())
            .collect();
        self.snap
            .all(name, &want)
            .into_iter()
            .filter(|(_, v)| keep(*v))
            .filter_map(|(l, _)| l.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
            .collect()
    }

    /// Whether the process is up. With the process collector off
    /// (--no-collector.process) it is looked for here, once.
    pub fn process_up(&self) -> bool {
        match self.get(&names::PROCESS_UP) {
            Some(up) => up == 1.0,
            None => self.target.resolve().is_some(),
        }
    }
}

pub(super) fn check(
    check: &'static str,
    status: Status,
    value: Option<f64>,
    detail: String,
) -> Check {
    Check {
        check,
        status,
        detail,
        value,
    }
}

fn judged(name: &'static str, tier: Tier, value: f64, detail: String) -> Check {
    check(name, tier.judge(value), Some(value), detail)
}

fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}

/// Process: found, and how.
pub(super) fn process(at: &Gateway, up: bool) -> Check {
    let spec = &at.target.spec;
    match at.target.current() {
        Some(found) if up => {
            let workers = at
                .get(&names::PROCESS_CHILDREN)
                .map(|w| format!(", {w} worker(s)"))
                .unwrap_or_default();
            check(
                "process",
                Status::Ok,
                Some(found.id.pid as f64),
                format!("pid {} (found by {}){workers}", found.id.pid, found.method.as_str()),
            )
        }
        _ => check(
            "process",
            Status::Crit,
            None,
            format!(
                "no gateway process: no live lock in {}, no process titled {:?} listening on port {}",
                spec.state_dir.display(),
                spec.process_title,
                spec.port
            ),
        ),
    }
}

/// Port: LISTEN, and the accept queue.
pub(super) fn port(at: &Gateway) -> Option<Check> {
    let port = at.target.spec.port;
    let listening = at.snap.get(
        &names::TCP_CONNECTIONS,
        &[
            ("gateway", at.name),
            ("direction", "inbound"),
            ("state", "listen"),
        ],
    );
    let queue = at.get(&names::LISTEN_QUEUE_LENGTH);
    let capacity = at.get(&names::LISTEN_QUEUE_CAPACITY);
    // Judged by the fullest listener on its own: clients that reach only
    // 127.0.0.1 fill the IPv4 queue, and the sum over both reads half.
    let fullest = at.get(&names::LISTEN_QUEUE_USAGE_RATIO);
    match (listening, queue, capacity) {
        (Some(l), Some(q), Some(c)) if l > 0.0 && c > 0.0 => Some(check(
            "port",
            thresholds::LISTEN_QUEUE_RATIO.judge(fullest.unwrap_or(q / c)),
            Some(q),
            match fullest {
                Some(r) => format!(
                    "{port} LISTEN, accept queue {q}/{c}, fullest listener {:.0}%",
                    r * 100.0
                ),
                None => format!("{port} LISTEN, accept queue {q}/{c}"),
            },
        )),
        // Capacity unknown (the /proc fallback): the queue is shown, not judged.
        (Some(l), _, _) if l > 0.0 => Some(check(
            "port",
            Status::Ok,
            queue,
            match queue {
                Some(q) => format!("{port} LISTEN, accept queue {q} (capacity unknown)"),
                None => format!("{port} LISTEN"),
            },
        )),
        (Some(_), _, _) => Some(check(
            "port",
            Status::Crit,
            Some(0.0),
            format!("nothing listens on port {port}"),
        )),
        _ => None,
    }
}

/// Hung: alive and listening, yet probes time out. The exporter's verdict
/// needs several probes in a row; a one-shot run has one, so it also
/// judges that one against a live, listening process.
pub(super) fn hung(at: &Gateway) -> Option<Check> {
    let live_success = at.with(&names::PROBE_SUCCESS, "endpoint", "live");
    let live_failed_hard = at
        .label_values(
            &names::PROBE_FAILURES_TOTAL,
            &[("endpoint", "live")],
            "reason",
            |n| n > 0.0,
        )
        .iter()
        .any(|r| r == "timeout" || r == "connect_refused")
        && live_success == Some(0.0);
    if at.get(&names::HUNG) == Some(1.0)
        || (live_failed_hard && crate::collector::liveness::alive_and_listening(at.target))
    {
        Some(check(
            "hung",
            Status::Crit,
            Some(1.0),
            "HUNG: the process is alive and its port LISTENs, but liveness probes time out or are refused".into(),
        ))
    } else if live_success == Some(1.0) {
        Some(check(
            "hung",
            Status::Ok,
            Some(0.0),
            "not hung: a fresh connection to the port was accepted and answered".into(),
        ))
    } else {
        None
    }
}

/// Liveness and readiness probes: one line each.
pub(super) fn probes(at: &Gateway) -> Vec<Check> {
    [("live", "/healthz"), ("ready", "/readyz")]
        .into_iter()
        .filter_map(|(endpoint, path)| probe(at, endpoint, path))
        .collect()
}

fn probe(at: &Gateway, endpoint: &str, path: &str) -> Option<Check> {
    let ep = [("gateway", at.name), ("endpoint", endpoint)];
    let success = at.snap.get(&names::PROBE_SUCCESS, &ep)?;
    let name = if endpoint == "live" {
        "liveness"
    } else {
        "readiness"
    };
    let duration = at
        .snap
        .get(&names::PROBE_LAST_DURATION_SECONDS, &ep)
        .unwrap_or(0.0);
    if success != 1.0 {
        let reason = at
            .label_values(
                &names::PROBE_FAILURES_TOTAL,
                &[("endpoint", endpoint)],
                "reason",
                |n| n > 0.0,
            )
            .join(", ");
        return Some(check(
            name,
            Status::Crit,
            None,
            format!("GET {path} failed: {reason} after {}", ms(duration)),
        ));
    }
    let mut c = judged(
        name,
        thresholds::RESPONSE_TIME_SECONDS,
        duration,
        format!("GET {path} answered in {}", ms(duration)),
    );
    if endpoint == "ready" && at.get(&names::READY) == Some(0.0) {
        let failing = at.label_values(&names::READINESS_FAILING, &[], "check", |v| v == 1.0);
        c.status = Status::Crit;
        c.detail = format!(
            "not ready (503), failing: {}",
            if failing.is_empty() {
                "-".into()
            } else {
                failing.join(", ")
            }
        );
    }
    Some(c)
}

/// Event-loop delay: the peak over the window, judged above the gateway
/// monitor's sampling floor (an idle gateway reports about the floor).
pub(super) fn event_loop(at: &Gateway) -> Option<Check> {
    let p99 = at.with(&names::EVENTLOOP_DELAY_P99_SECONDS, "stat", "peak")?;
    let max = at
        .with(&names::EVENTLOOP_DELAY_MAX_SECONDS, "stat", "peak")
        .unwrap_or(p99);
    let floor = at.get(&names::EVENTLOOP_DELAY_FLOOR_SECONDS).unwrap_or(0.0);
    let above = (p99 - floor).max(0.0);
    Some(judged(
        "event_loop",
        thresholds::EVENT_LOOP_DELAY_SECONDS,
        above,
        format!(
            "delay p99 {} above the {} sampling floor (p99 {}, max {})",
            ms(above),
            ms(floor),
            ms(p99),
            ms(max)
        ),
    ))
}

/// Memory against the limit.
pub(super) fn memory(at: &Gateway) -> Option<Check> {
    let rss = at.get(&names::PROCESS_RESIDENT_MEMORY_BYTES)?;
    let ratio = at.get(&names::MEMORY_USAGE_RATIO)?;
    let (limit, source) = at
        .snap
        .all(&names::MEMORY_LIMIT_BYTES, &[("gateway", at.name)])
        .into_iter()
        .next()
        .map(|(l, v)| {
            (
                v,
                l.into_iter()
                    .find(|(k, _)| k == "source")
                    .map(|(_, s)| s)
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    Some(judged(
        "memory",
        thresholds::MEMORY_USAGE_RATIO,
        ratio,
        format!(
            "RSS {:.0} MiB of {:.0} MiB ({source}), {:.0}%",
            rss / 1048576.0,
            limit / 1048576.0,
            ratio * 100.0
        ),
    ))
}

/// File descriptors against the limit.
pub(super) fn fds(at: &Gateway) -> Option<Check> {
    let open = at.get(&names::PROCESS_OPEN_FDS)?;
    let max = at.get(&names::PROCESS_MAX_FDS)?;
    Some(judged(
        "fds",
        thresholds::FD_USAGE_RATIO,
        open / max,
        format!("{open} open of {max} allowed ({:.0}%)", open / max * 100.0),
    ))
}

/// Inbound connections on the gateway's port in `state`.
fn inbound(at: &Gateway, state: &str) -> Option<f64> {
    at.snap.get(
        &names::TCP_CONNECTIONS,
        &[
            ("gateway", at.name),
            ("direction", "inbound"),
            ("state", state),
        ],
    )
}

/// Established connections (and TIME_WAIT, shown).
pub(super) fn connections(at: &Gateway) -> Option<Check> {
    let established = inbound(at, "established")?;
    Some(judged(
        "connections",
        thresholds::ACTIVE_CONNECTIONS,
        established,
        // TIME_WAIT sockets have no owner: absent where only the gateway's
        // own sockets are read (macOS), not 0.
        match inbound(at, "time_wait") {
            Some(t) => format!("{established} established inbound, {t} TIME_WAIT"),
            None => format!("{established} established inbound"),
        },
    ))
}

/// Connections the gateway has not closed; shown with the connections line.
pub(super) fn close_wait(at: &Gateway) -> Option<Check> {
    inbound(at, "established")?;
    let close_wait = inbound(at, "close_wait").unwrap_or(0.0);
    Some(judged(
        "close_wait",
        thresholds::CLOSE_WAIT,
        close_wait,
        format!("{close_wait} in CLOSE_WAIT"),
    ))
}

/// Error rate over the window, from the readiness probes: at one a second
/// they are enough for a ratio (60 a minute; liveness makes 6).
pub(super) fn error_rate(at: &Gateway) -> Option<Check> {
    let ratio = at.with(&names::PROBE_ERROR_RATIO, "endpoint", "ready")?;
    Some(judged(
        "error_rate",
        thresholds::ERROR_RATIO,
        ratio,
        format!("{:.2}% of readiness probes failed", ratio * 100.0),
    ))
}

/// Stale locks (absent with the lifecycle collector off).
pub(super) fn locks(at: &Gateway, up: bool) -> Option<Check> {
    let live = at.with(&names::LOCK_FILES, "state", "live")?;
    let stale = at.with(&names::LOCK_FILES, "state", "stale").unwrap_or(0.0);
    let invalid = at
        .with(&names::LOCK_FILES, "state", "invalid")
        .unwrap_or(0.0);
    let status = match (stale + invalid > 0.0, up) {
        (false, _) => Status::Ok,
        (true, true) => Status::Warn,
        // Down with a stale lock: the next start may refuse ("already running").
        (true, false) => Status::Crit,
    };
    Some(check(
        "locks",
        status,
        Some(stale),
        format!(
            "{live} live, {stale} stale, {invalid} invalid lock file(s) in {}",
            crate::lockfile::dir_pattern(crate::os::Os::CURRENT, &at.target.spec.state_dir)
        ),
    ))
}

/// Duplicate gateway processes.
pub(super) fn instances(at: &Gateway) -> Option<Check> {
    let n = at.get(&names::INSTANCES)?;
    let status = if n > 1.0 { Status::Crit } else { Status::Ok };
    Some(check(
        "instances",
        status,
        Some(n),
        format!("{n} gateway process(es) claim this gateway"),
    ))
}

/// The port held by another process than the lock's.
pub(super) fn port_owner(at: &Gateway) -> Option<Check> {
    (at.get(&names::PORT_OWNER_MISMATCH) == Some(1.0)).then(|| {
        check(
            "port_owner",
            Status::Crit,
            Some(1.0),
            format!(
                "port {} is held by another process than the one the lock names",
                at.target.spec.port
            ),
        )
    })
}

/// How long the gateway has been up, and how that is known: its own
/// `/readyz` uptimeMs, else the start time of its process (the gateway's
/// uptime clock starts ~10 s after its process, docs/startup.md).
pub(super) fn uptime(at: &Gateway, now: f64) -> Option<(f64, &'static str)> {
    at.get(&names::UPTIME_SECONDS)
        .map(|u| (u, "/readyz uptimeMs"))
        .or_else(|| {
            at.get(&names::PROCESS_START_TIME_SECONDS)
                .map(|start| ((now - start).max(0.0), "process start time"))
        })
}

/// Startup: a process that is there, not hung, and younger than the grace
/// is starting. Returns the startup line and whether it is starting.
pub(super) fn startup(uptime: (f64, &str), hung: bool) -> (Check, bool) {
    let (u, source) = uptime;
    let grace = thresholds::STARTUP_GRACE_SECONDS;
    let starting = !hung && u < grace;
    let (status, detail) = if starting {
        (Status::Warn, format!("starting: up {u:.0} s of the {grace:.0} s startup grace (from its {source}); findings are capped at WARN until then"))
    } else if u < grace {
        (Status::Ok, format!("up {u:.0} s (from its {source}), within the {grace:.0} s startup grace, but hung: not starting"))
    } else {
        (
            Status::Ok,
            format!(
                "started: up {u:.0} s, past the {grace:.0} s startup grace (from its {source})"
            ),
        )
    };
    (check("startup", status, Some(u), detail), starting)
}

/// While starting, every finding but a missing process is capped at WARN,
/// its text kept. (A hung gateway is not starting.)
pub(super) fn cap_while_starting(checks: &mut [Check]) {
    for c in checks
        .iter_mut()
        .filter(|c| c.status == Status::Crit && c.check != "process")
    {
        c.status = Status::Warn;
        c.detail.push_str(" (CRIT once past the startup grace)");
    }
}
