//! `diagnose`: the field report's manual checklist as one command. Every
//! collector runs once; each line of the report is judged OK, WARN or CRIT by
//! the thresholds in [`crate::thresholds`], and the report ends with what to do.
//!
//! The report reads the same exposition a scrape would return, so it can never
//! disagree with what Prometheus sees.
//!
//! A gateway younger than [`thresholds::STARTUP_GRACE_SECONDS`] is *starting*:
//! its startup load (event-loop delay, CPU, `/readyz` 503 `startup-sidecars`)
//! is what a good restart looks like, so every finding is capped at WARN, the
//! report says how long it has been up, and `diagnose` exits 1, not 2. Two
//! verdicts stay CRIT, as they are not a start: no process (nothing is
//! starting), and a hang (probes that time out for --probe.timeout are not
//! startup load: the longest startup stall measured is 2.4 s, docs/startup.md).

mod advice;
mod checks;
pub mod remediation;
mod snapshot;

use serde::Serialize;

use crate::collector::logs::RecentLine;
use crate::discovery::Target;
use crate::exporter::Exporter;
use crate::exposition::{self, Format};
use crate::thresholds::{self, Status};

pub use snapshot::Snapshot;

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayReport {
    pub gateway: String,
    pub url: String,
    pub status: Status,
    /// Up for less than the startup grace: findings capped at WARN.
    pub starting: bool,
    /// The gateway's own uptime (`/readyz` uptimeMs), else its process's age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<f64>,
    pub checks: Vec<Check>,
    pub recent_log_lines: Vec<LogLine>,
    /// The newest incident snapshot folders of this gateway.
    pub recent_incidents: Vec<String>,
    /// The watchdog's newest remediations of it (its state file).
    pub recent_remediations: Vec<remediation::Remediation>,
    /// Why the state file could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediations_unknown: Option<String>,
    pub what_to_do: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub time: String,
    pub level: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: Status,
    pub gateways: Vec<GatewayReport>,
}

impl Report {
    /// 0 when everything is OK, 1 on WARN, 2 on CRIT.
    pub fn exit_code(&self) -> u8 {
        match self.status {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Crit => 2,
        }
    }
}

/// Run every collector once and judge the result.
pub fn run(exporter: &mut Exporter) -> Report {
    exporter.sample_once();
    let text = exposition::render(&exporter.registry, Format::Text).unwrap_or_default();
    let snap = Snapshot::parse(&text);
    let gateways: Vec<GatewayReport> = exporter
        .targets
        .iter()
        .zip(&exporter.logs)
        .map(|(target, logs)| {
            // With the logs collector off (--no-collector.logs), no log is read.
            let recent = logs
                .as_ref()
                .map(|l| recent_from_tail(target, &l.recent()))
                .unwrap_or_default();
            let mut report = gateway_report(&snap, target, &recent, crate::collector::unix_now());
            let name = &target.spec.name;
            report.recent_incidents =
                remediation::incidents(&exporter.snapshotter.settings().dir, name);
            match remediation::remediations(&exporter.remediation_state_file, name) {
                Ok(list) => report.recent_remediations = list,
                Err(e) => report.remediations_unknown = Some(e),
            }
            report
        })
        .collect();
    let status = gateways
        .iter()
        .map(|g| g.status)
        .max()
        .unwrap_or(Status::Ok);
    Report { status, gateways }
}

/// The last WARN/ERROR lines: those followed so far, or the log's tail.
fn recent_from_tail(target: &Target, followed: &[RecentLine]) -> Vec<LogLine> {
    let lines = if followed.is_empty() {
        crate::collector::logs::tail_recent(&target.spec.log_path, 256 * 1024)
    } else {
        followed.to_vec()
    };
    lines
        .into_iter()
        .rev()
        .take(5)
        .rev()
        .map(|l| LogLine {
            time: l.time,
            level: l.level,
            message: l.message,
        })
        .collect()
}

/// One gateway's report: every check, in order, then the startup verdict.
fn gateway_report(snap: &Snapshot, target: &Target, recent: &[LogLine], now: f64) -> GatewayReport {
    let spec = &target.spec;
    let at = checks::Gateway {
        snap,
        target,
        name: &spec.name,
    };
    let up = at.process_up();
    let mut checks = vec![checks::process(&at, up)];
    checks.extend(checks::port(&at));
    checks.extend(checks::hung(&at));
    checks.extend(checks::probes(&at));
    checks.extend(checks::event_loop(&at));
    checks.extend(checks::memory(&at));
    checks.extend(checks::fds(&at));
    checks.extend(checks::connections(&at));
    checks.extend(checks::close_wait(&at));
    checks.extend(checks::error_rate(&at));
    checks.extend(checks::locks(&at, up));
    checks.extend(checks::instances(&at));
    checks.extend(checks::port_owner(&at));

    let uptime = if up { checks::uptime(&at, now) } else { None };
    let hung = checks
        .iter()
        .any(|c| c.check == "hung" && c.status == Status::Crit);
    let mut starting = false;
    if let Some(u) = uptime {
        let (line, is_starting) = checks::startup(u, hung);
        starting = is_starting;
        if starting {
            checks::cap_while_starting(&mut checks);
        }
        checks.insert(1, line);
    }

    let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Ok);
    let grace = thresholds::STARTUP_GRACE_SECONDS;
    let what_to_do = advice::advice(
        &checks,
        target,
        uptime.filter(|_| starting).map(|(u, _)| grace - u),
        crate::os::Os::CURRENT,
    );
    GatewayReport {
        gateway: spec.name.clone(),
        url: spec.url.clone(),
        status,
        starting,
        uptime_seconds: uptime.map(|(u, _)| u),
        checks,
        recent_log_lines: recent.to_vec(),
        recent_incidents: Vec::new(),
        recent_remediations: Vec::new(),
        remediations_unknown: None,
        what_to_do,
    }
}

/// Print the report for a person.
pub fn print(report: &Report) -> String {
    let mut out = String::new();
    for g in &report.gateways {
        out.push_str(&format!(
            "{}  gateway {} ({})\n",
            g.status.as_str(),
            g.gateway,
            g.url
        ));
        for c in &g.checks {
            out.push_str(&format!(
                "  {:<5} {:<12} {}\n",
                c.status.as_str(),
                c.check,
                c.detail
            ));
        }
        if !g.recent_log_lines.is_empty() {
            out.push_str("  recent WARN/ERROR log lines:\n");
            for l in &g.recent_log_lines {
                out.push_str(&format!(
                    "    {} {} {}\n",
                    l.time,
                    l.level.to_ascii_uppercase(),
                    l.message
                ));
            }
        }
        let remediations = match &g.remediations_unknown {
            Some(e) => Err(e.clone()),
            None => Ok(g.recent_remediations.clone()),
        };
        out.push_str(&remediation::print(&g.recent_incidents, &remediations));
        if !g.what_to_do.is_empty() {
            out.push_str("  what to do:\n");
            for (i, a) in g.what_to_do.iter().enumerate() {
                out.push_str(&format!("    {}. {a}\n", i + 1));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("overall: {}\n", report.status.as_str()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{gateway_spec, GatewayFile};
    use crate::names;

    /// The exporter's /metrics, recorded against the real gateway
    /// (openclaw 2026.9.6) restarted under it: right after its /readyz turned
    /// 200 (the exporter's last answer still 503 `startup-sidecars`, event
    /// loop p99 699 ms, the liveness probe refused while it was down), and
    /// 183 s later.
    const STARTING: &str = include_str!("../../tests/data/real-gateway-starting.prom");
    const STARTED: &str = include_str!("../../tests/data/real-gateway-started.prom");
    const GW: &str = "127.0.0.1:38200";
    /// Its process start time in the recordings.
    const STARTED_AT: f64 = 1795939542.73;

    /// The recorded gateway, found (by pid: this test's own process, which
    /// does not listen on its port).
    fn target() -> Target {
        let spec = gateway_spec(GatewayFile {
            name: Some(GW.into()),
            url: Some(format!("http://{GW}")),
            state_dir: Some("/nonexistent/openclaw-state".into()),
            pid: Some(std::process::id()),
            ..Default::default()
        })
        .unwrap();
        let target = Target::new(spec);
        assert!(target.resolve().is_some());
        target
    }

    fn report(text: &str, now: f64) -> GatewayReport {
        gateway_report(&Snapshot::parse(text), &target(), &[], now)
    }

    fn line<'a>(r: &'a GatewayReport, name: &str) -> &'a Check {
        r.checks
            .iter()
            .find(|c| c.check == name)
            .unwrap_or_else(|| panic!("no {name} line in {r:#?}"))
    }

    /// The recording without the series that start with `name`.
    fn without(text: &str, name: &str) -> String {
        text.lines()
            .filter(|l| !l.starts_with(name))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn right_after_a_restart_the_gateway_is_starting_and_at_most_warn() {
        let r = report(STARTING, STARTED_AT + 12.0);
        assert_eq!(r.status, Status::Warn, "{r:#?}");
        assert!(r.starting);
        assert_eq!(r.uptime_seconds, Some(1.723));
        let startup = line(&r, "startup");
        assert_eq!(startup.status, Status::Warn);
        assert!(
            startup.detail.starts_with(&format!(
                "starting: up 2 s of the {:.0} s startup grace (from its /readyz uptimeMs)",
                thresholds::STARTUP_GRACE_SECONDS
            )),
            "{}",
            startup.detail
        );
        // The startup load is shown, with its text, as WARN.
        for name in ["liveness", "readiness", "event_loop", "error_rate"] {
            let c = line(&r, name);
            assert_eq!(c.status, Status::Warn, "{c:?}");
            assert!(
                c.detail.ends_with("(CRIT once past the startup grace)"),
                "{c:?}"
            );
        }
        assert!(line(&r, "event_loop")
            .detail
            .starts_with("delay p99 678.9 ms above the 20.0 ms sampling floor"));
        assert!(line(&r, "readiness")
            .detail
            .starts_with("not ready (503), failing: startup-sidecars"));
        assert_eq!(r.what_to_do.len(), 1, "{:?}", r.what_to_do);
        assert!(r.what_to_do[0].starts_with("The gateway is starting: run diagnose again in"));
    }

    #[test]
    fn the_same_figures_past_the_grace_are_crit() {
        // Uptime from the process start time when /readyz gave none.
        let text = without(STARTING, &names::UPTIME_SECONDS);
        let young = report(&text, STARTED_AT + 12.0);
        assert_eq!(young.status, Status::Warn);
        assert!(
            line(&young, "startup").detail.contains("up 12 s of the")
                && line(&young, "startup")
                    .detail
                    .contains("(from its process start time)")
        );
        let grace = thresholds::STARTUP_GRACE_SECONDS;
        let old = report(&text, STARTED_AT + grace + 1.0);
        assert_eq!(old.status, Status::Crit, "{old:#?}");
        assert!(!old.starting);
        assert_eq!(line(&old, "startup").status, Status::Ok);
        for name in ["liveness", "readiness", "event_loop", "error_rate"] {
            assert_eq!(line(&old, name).status, Status::Crit, "{name}");
        }
        assert!(old
            .what_to_do
            .iter()
            .any(|a| a.contains("event loop is blocked")));
    }

    #[test]
    fn once_past_the_grace_a_settled_gateway_is_ok() {
        let r = report(STARTED, STARTED_AT + 195.0);
        assert_eq!(r.status, Status::Ok, "{r:#?}");
        assert!(!r.starting);
        assert!(line(&r, "startup")
            .detail
            .starts_with("started: up 183 s, past the"));
        assert!(r.what_to_do.is_empty());
    }

    #[test]
    fn a_hung_or_missing_gateway_is_not_starting() {
        let hung = STARTING.replace(
            &format!("{}{{gateway=\"{GW}\"}} 0.0", names::HUNG),
            &format!("{}{{gateway=\"{GW}\"}} 1.0", names::HUNG),
        );
        assert_ne!(hung, STARTING);
        let r = report(&hung, STARTED_AT + 12.0);
        assert_eq!(r.status, Status::Crit);
        assert!(!r.starting);
        assert_eq!(line(&r, "hung").status, Status::Crit);
        assert!(line(&r, "startup")
            .detail
            .contains("but hung: not starting"));
        assert_eq!(line(&r, "event_loop").status, Status::Crit);
        // The restart steps, in this OS's commands (advice.rs).
        assert!(
            r.what_to_do[0].starts_with("Collect state first"),
            "{:?}",
            r.what_to_do
        );

        let down = STARTING.replace(
            &format!("{}{{gateway=\"{GW}\"}} 1.0", names::PROCESS_UP),
            &format!("{}{{gateway=\"{GW}\"}} 0.0", names::PROCESS_UP),
        );
        assert_ne!(down, STARTING);
        let r = report(&down, STARTED_AT + 12.0);
        assert_eq!(r.status, Status::Crit);
        assert!(!r.starting && r.uptime_seconds.is_none());
        assert_eq!(line(&r, "process").status, Status::Crit);
        assert!(r.checks.iter().all(|c| c.check != "startup"));
    }
}
