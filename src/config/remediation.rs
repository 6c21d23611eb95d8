//! The per-gateway `remediation:` block (watchdog mode, opt-in: a gateway
//! without one is never acted on) and the top-level `remediation:` settings
//! (where the watchdog keeps its state).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::de_duration;
use super::ConfigError;
use crate::remediation::budget::Budget;
use crate::remediation::method::Method;
use crate::remediation::watchdog::Policy;

/// A gateway's `remediation:` block as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationFile {
    /// How to restart it.
    pub method: Method,
    /// Hung for this long before acting (the field report's check interval).
    #[serde(default = "default_confirm", deserialize_with = "de_duration")]
    pub confirm: Duration,
    /// Down (no process) for this long before acting; absent: never act on
    /// a gateway that is down.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub down_grace: Option<Duration>,
    /// At most this many restarts per `budget_window` (MaxRestartAttempts).
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "default_window", deserialize_with = "de_duration")]
    pub budget_window: Duration,
    /// The wait after a restart before the next; doubled after each further
    /// restart in the window.
    #[serde(default = "default_backoff", deserialize_with = "de_duration")]
    pub backoff: Duration,
    /// Log and count what would be done; do nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Passed to the recovery: how long a graceful stop may take. Shorter
    /// than `recover`'s 30 s: a hung gateway's event loop does not turn, so
    /// its SIGTERM handler (a callback on that loop) cannot run.
    #[serde(default = "default_stop_timeout", deserialize_with = "de_duration")]
    pub stop_timeout: Duration,
    /// Passed to the recovery: how long the restart command may run.
    #[serde(default = "default_start_timeout", deserialize_with = "de_duration")]
    pub start_timeout: Duration,
    /// Passed to the recovery: how long the started gateway has to be
    /// verified ready.
    #[serde(default = "default_verify_timeout", deserialize_with = "de_duration")]
    pub verify_timeout: Duration,
}

fn default_confirm() -> Duration {
    Duration::from_secs(60)
}
fn default_max_restarts() -> u32 {
    3
}
fn default_window() -> Duration {
    Duration::from_secs(3600)
}
fn default_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_start_timeout() -> Duration {
    Duration::from_secs(180)
}
fn default_verify_timeout() -> Duration {
    Duration::from_secs(120)
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A gateway's validated `remediation:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remediation {
    pub method: Method,
    pub policy: Policy,
    pub stop_timeout: Duration,
    pub start_timeout: Duration,
    pub verify_timeout: Duration,
}

impl RemediationFile {
    /// Validate: every period positive, at least one restart per window.
    pub fn validate(self, gateway: &str) -> Result<Remediation, ConfigError> {
        let bad = |what: String| {
            ConfigError::Invalid(format!("gateway {gateway:?}: remediation: {what}"))
        };
        for (name, d) in [
            ("confirm", Some(self.confirm)),
            ("down_grace", self.down_grace),
            ("budget_window", Some(self.budget_window)),
            ("stop_timeout", Some(self.stop_timeout)),
            ("start_timeout", Some(self.start_timeout)),
            ("verify_timeout", Some(self.verify_timeout)),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(bad(format!("{name} must be greater than zero")));
            }
        }
        if self.max_restarts == 0 {
            return Err(bad(
                "max_restarts must be at least 1 (to never restart, remove the remediation block or set dry_run: true)".into(),
            ));
        }
        if let Method::Argv { argv } = &self.method {
            if argv.first().is_none_or(|a| a.is_empty()) {
                return Err(bad(
                    "method argv must name a program first (it runs without a shell)".into(),
                ));
            }
        }
        Ok(Remediation {
            method: self.method,
            policy: Policy {
                confirm: self.confirm,
                down_grace: self.down_grace,
                budget: Budget {
                    max: self.max_restarts,
                    window: self.budget_window,
                    backoff: self.backoff,
                },
                dry_run: self.dry_run,
            },
            stop_timeout: self.stop_timeout,
            start_timeout: self.start_timeout,
            verify_timeout: self.verify_timeout,
        })
    }
}

/// The top-level `remediation:` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemediationSettings {
    /// The watchdog's state file (restart times, so that the budget
    /// survives an exporter restart, and recent remediations).
    pub state_file: Option<PathBuf>,
}

impl RemediationSettings {
    pub fn state_file(&self) -> PathBuf {
        self.state_file.clone().unwrap_or_else(default_state_file)
    }
}

/// `remediation.json` in the exporter's state dir
/// ([`super::exporter_state_dir`], beside the incident snapshots).
pub fn default_state_file() -> PathBuf {
    super::exporter_state_dir().join("remediation.json")
}

#[cfg(test)]
mod tests {
    use crate::config::{build, parse_file};
    use crate::remediation::method::Method;
    use std::time::Duration;

    fn gateway(block: &str) -> Result<super::Remediation, String> {
        let text = format!("gateways:\n  - name: a\n    remediation:\n{block}");
        let f = parse_file("c.yml", &text).map_err(|e| e.to_string())?;
        let cfg = build(f.collect, f.gateways).map_err(|e| e.to_string())?;
        Ok(cfg.gateways[0]
            .remediation
            .clone()
            .expect("a remediation block"))
    }

    #[test]
    fn defaults_follow_the_field_report() {
        let r = gateway("      method: {kind: argv, argv: [/bin/restart-it, now]}\n").unwrap();
        assert_eq!(
            r.method,
            Method::Argv {
                argv: vec!["/bin/restart-it".into(), "now".into()]
            }
        );
        assert_eq!(r.policy.confirm, Duration::from_secs(60));
        assert_eq!(r.policy.down_grace, None);
        assert_eq!(r.policy.budget.max, 3);
        assert_eq!(r.policy.budget.window, Duration::from_secs(3600));
        assert!(!r.policy.dry_run);
        // No block, no action ever.
        let f = parse_file("c.yml", "gateways:\n  - name: a\n").unwrap();
        assert_eq!(
            build(f.collect, f.gateways).unwrap().gateways[0].remediation,
            None
        );
    }

    #[test]
    fn every_setting() {
        let r = gateway(
            "      method: {kind: systemd, unit: oc.service, user: false}\n      confirm: 5s\n      down_grace: 2m\n      max_restarts: 5\n      budget_window: 30m\n      backoff: 0s\n      dry_run: true\n      stop_timeout: 10s\n      verify_timeout: 1m\n",
        )
        .unwrap();
        assert_eq!(r.policy.confirm, Duration::from_secs(5));
        assert_eq!(r.policy.down_grace, Some(Duration::from_secs(120)));
        assert_eq!(r.policy.budget.max, 5);
        assert_eq!(r.policy.budget.window, Duration::from_secs(1800));
        assert_eq!(r.policy.budget.backoff, Duration::ZERO);
        assert!(r.policy.dry_run);
        assert_eq!(r.stop_timeout, Duration::from_secs(10));
        assert_eq!(r.verify_timeout, Duration::from_secs(60));
    }

    #[test]
    fn clear_errors() {
        for (block, says) in [
            ("      confirm: 60s\n", "missing field `method`"),
            (
                "      method: {kind: argv, argv: [x]}\n      confim: 5s\n",
                "unknown field `confim`",
            ),
            (
                "      method: {kind: rsh, host: x}\n",
                "unknown variant `rsh`",
            ),
            (
                "      method: {kind: argv, argv: [x]}\n      confirm: 0s\n",
                "confirm must be greater than zero",
            ),
            (
                "      method: {kind: argv, argv: [x]}\n      max_restarts: 0\n",
                "max_restarts must be at least 1",
            ),
            (
                "      method: {kind: argv, argv: []}\n",
                "must name a program",
            ),
            (
                "      method: {kind: argv, argv: [x]}\n      confirm: soon\n",
                "c.yml:",
            ),
        ] {
            let err = gateway(block).unwrap_err();
            assert!(err.contains(says), "{block}: {err}");
        }
        let err =
            gateway("      method: {kind: argv, argv: [x]}\n      confirm: 0s\n").unwrap_err();
        assert!(err.contains("gateway \"a\": remediation:"), "{err}");
    }

    #[test]
    fn the_state_file() {
        let f = parse_file(
            "c.yml",
            "remediation:\n  state_file: /var/lib/x/state.json\n",
        )
        .unwrap();
        assert_eq!(
            f.remediation.state_file(),
            std::path::PathBuf::from("/var/lib/x/state.json")
        );
        assert!(super::default_state_file().ends_with("openclaw-gateway-exporter/remediation.json"));
        let err = parse_file("c.yml", "remediation:\n  statefile: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `statefile`"), "{err}");
    }
}
