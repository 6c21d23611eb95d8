//! The field report's thresholds, in base units: the one place that
//! `diagnose`, the alert rules and the dashboards are checked against.
//!
//! | signal | normal | danger | interval |
//! |---|---|---|---|
//! | response time | <100ms | >500ms | 10s |
//! | memory | <70% of limit | >90% of limit | 30s |
//! | event loop delay | <20ms | >50ms | 5s |
//! | active connections | <1000 | >1500 | 10s |
//! | error rate | <0.5% | >2% | 60s |

/// A warning tier at the field report's "normal" limit, a critical one at its
/// "danger" line. A value above `critical` is CRIT, above `warning` WARN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    pub warning: f64,
    pub critical: f64,
}

/// Liveness probe duration, seconds.
pub const RESPONSE_TIME_SECONDS: Tier = Tier {
    warning: 0.1,
    critical: 0.5,
};
/// Resident memory over the memory limit.
pub const MEMORY_USAGE_RATIO: Tier = Tier {
    warning: 0.7,
    critical: 0.9,
};
/// Event-loop delay, seconds, above the gateway monitor's sampling floor
/// (`openclaw_gateway_eventloop_delay_floor_seconds`, 20 ms): the gateway's
/// figures include its 20 ms sampling period, the field report's do not.
pub const EVENT_LOOP_DELAY_SECONDS: Tier = Tier {
    warning: 0.02,
    critical: 0.05,
};
/// Established inbound connections.
pub const ACTIVE_CONNECTIONS: Tier = Tier {
    warning: 1000.0,
    critical: 1500.0,
};
/// Failed probes over all probes, over the errors window (readiness probes:
/// one a second, so one failure in a minute stays below the danger line).
pub const ERROR_RATIO: Tier = Tier {
    warning: 0.005,
    critical: 0.02,
};
/// Open fds over the soft limit (the field report's maxFileDescriptors).
pub const FD_USAGE_RATIO: Tier = Tier {
    warning: 0.7,
    critical: 0.9,
};
/// Connections in CLOSE_WAIT on the gateway's port: the gateway stopped
/// closing (or accepting) them.
pub const CLOSE_WAIT: Tier = Tier {
    warning: 10.0,
    critical: 100.0,
};
/// Accept backlog over its capacity.
pub const LISTEN_QUEUE_RATIO: Tier = Tier {
    warning: 0.1,
    critical: 0.5,
};

/// Startup grace, seconds of the gateway's own uptime (`/readyz` uptimeMs,
/// else its process's age): `diagnose` calls a younger gateway *starting* and
/// caps its findings at WARN. Measured on the real gateway (docs/startup.md,
/// 5 starts of openclaw 2026.9.6 on 2 shared cores): /readyz turns 200 at
/// 3.7-6.6 s of uptime (13.9-17.8 s after the process started) with a p99
/// delay of 326-491 ms; the figures settle (not degraded, CPU and
/// utilization at most 0.5, p99 at most 70 ms, for 10 s) at 6.8-10.6 s of
/// uptime (17.8-22.1 s of process age). Twice the worst, rounded up: 30 s.
pub const STARTUP_GRACE_SECONDS: f64 = 30.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Crit,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Crit => "CRIT",
        }
    }
}

impl Tier {
    pub fn judge(&self, value: f64) -> Status {
        if value > self.critical {
            Status::Crit
        } else if value > self.warning {
            Status::Warn
        } else {
            Status::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers() {
        assert_eq!(RESPONSE_TIME_SECONDS.judge(0.05), Status::Ok);
        assert_eq!(RESPONSE_TIME_SECONDS.judge(0.1), Status::Ok);
        assert_eq!(RESPONSE_TIME_SECONDS.judge(0.2), Status::Warn);
        assert_eq!(RESPONSE_TIME_SECONDS.judge(0.6), Status::Crit);
        assert!(Status::Crit > Status::Warn && Status::Warn > Status::Ok);
    }
}
