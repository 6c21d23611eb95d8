//! Every metric family the exporter exposes, by the full name a scrape
//! shows: with its unit and, for a counter, `_total` (the text format's
//! family name). Grep a name and this file comes first; each entry says
//! which file produces it.
//!
//! prometheus-client appends the unit and `_total` itself when it encodes a
//! family; [`Family::base`] and [`Family::unit`] give it the parts, split off
//! the full name at compile time (a name that does not end in its unit or
//! `_total` does not build).

use std::sync::LazyLock;

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// What kind of family: the OpenMetrics type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
    Info,
}

/// The base units the exporter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseUnit {
    Seconds,
    Bytes,
    Ratio,
}

impl BaseUnit {
    pub const fn as_str(self) -> &'static str {
        match self {
            BaseUnit::Seconds => "seconds",
            BaseUnit::Bytes => "bytes",
            BaseUnit::Ratio => "ratio",
        }
    }
}

/// One exposed metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    name: &'static str,
    base: &'static str,
    unit: Option<BaseUnit>,
    kind: Kind,
}

impl Family {
    const fn new(name: &'static str, kind: Kind, unit: Option<BaseUnit>) -> Family {
        let mut base = match kind {
            Kind::Counter => strip(name, "_total"),
            Kind::Info => strip(name, "_info"),
            Kind::Gauge | Kind::Histogram => name,
        };
        if let Some(unit) = unit {
            base = strip(strip(base, unit.as_str()), "_");
        }
        Family {
            name,
            base,
            unit,
            kind,
        }
    }

    pub const fn gauge(name: &'static str, unit: Option<BaseUnit>) -> Family {
        Family::new(name, Kind::Gauge, unit)
    }

    pub const fn counter(name: &'static str, unit: Option<BaseUnit>) -> Family {
        Family::new(name, Kind::Counter, unit)
    }

    pub const fn histogram(name: &'static str, unit: Option<BaseUnit>) -> Family {
        Family::new(name, Kind::Histogram, unit)
    }

    pub const fn info(name: &'static str) -> Family {
        Family::new(name, Kind::Info, None)
    }

    /// The full name, as a scrape in the text format shows it.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// The name without unit and `_total`: what prometheus-client is given.
    pub const fn base(&self) -> &'static str {
        self.base
    }

    pub const fn base_unit(&self) -> Option<BaseUnit> {
        self.unit
    }

    /// The `# UNIT` of the OpenMetrics exposition, if any.
    pub fn unit(&self) -> Option<&'static Unit> {
        static SECONDS: Unit = Unit::Seconds;
        static BYTES: Unit = Unit::Bytes;
        // prometheus-client's `Unit::Ratios` would say "ratios".
        static RATIO: LazyLock<Unit> = LazyLock::new(|| Unit::Other("ratio".into()));
        self.unit.map(|u| match u {
            BaseUnit::Seconds => &SECONDS,
            BaseUnit::Bytes => &BYTES,
            BaseUnit::Ratio => &*RATIO,
        })
    }

    pub fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Gauge => MetricType::Gauge,
            Kind::Counter => MetricType::Counter,
            Kind::Histogram => MetricType::Histogram,
            Kind::Info => MetricType::Info,
        }
    }

    /// The type a `# TYPE` line of the text format 0.0.4 shows.
    pub fn text_type(&self) -> &'static str {
        match self.kind {
            Kind::Gauge | Kind::Info => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// A family reads as its full name: `snap.get(&PROCESS_UP, ..)`,
/// `format!("{PROCESS_UP}{{gateway=..}}")`.
impl std::ops::Deref for Family {
    type Target = str;

    fn deref(&self) -> &str {
        self.name
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// `name` without `suffix`; fails the build when it does not end in it.
const fn strip(name: &'static str, suffix: &str) -> &'static str {
    let (n, s) = (name.as_bytes(), suffix.as_bytes());
    assert!(n.len() > s.len(), "metric name shorter than its suffix");
    let keep = n.len() - s.len();
    let mut i = 0;
    while i < s.len() {
        assert!(
            n[keep + i] == s[i],
            "metric name does not end in its suffix"
        );
        i += 1;
    }
    match std::str::from_utf8(n.split_at(keep).0) {
        Ok(base) => base,
        Err(_) => panic!("metric name is not UTF-8"),
    }
}

const SECONDS: Option<BaseUnit> = Some(BaseUnit::Seconds);
const BYTES: Option<BaseUnit> = Some(BaseUnit::Bytes);
const RATIO: Option<BaseUnit> = Some(BaseUnit::Ratio);

// Process: src/collector/process.rs.
pub const PROCESS_UP: Family = Family::gauge("openclaw_gateway_process_up", None);
pub const DISCOVERY_METHOD: Family = Family::gauge("openclaw_gateway_discovery_method", None);
pub const PROCESS_CPU_SECONDS_TOTAL: Family =
    Family::counter("openclaw_gateway_process_cpu_seconds_total", SECONDS);
pub const PROCESS_OPEN_FDS: Family = Family::gauge("openclaw_gateway_process_open_fds", None);
pub const PROCESS_MAX_FDS: Family = Family::gauge("openclaw_gateway_process_max_fds", None);
pub const PROCESS_THREADS: Family = Family::gauge("openclaw_gateway_process_threads", None);
pub const PROCESS_START_TIME_SECONDS: Family =
    Family::gauge("openclaw_gateway_process_start_time_seconds", SECONDS);
pub const PROCESS_CHILDREN: Family = Family::gauge("openclaw_gateway_process_children", None);
pub const PROCESS_RESTARTS_TOTAL: Family =
    Family::counter("openclaw_gateway_process_restarts_total", None);

// Memory: src/collector/memory.rs.
pub const PROCESS_RESIDENT_MEMORY_BYTES: Family =
    Family::gauge("openclaw_gateway_process_resident_memory_bytes", BYTES);
pub const PROCESS_VIRTUAL_MEMORY_BYTES: Family =
    Family::gauge("openclaw_gateway_process_virtual_memory_bytes", BYTES);
pub const PROCESS_CHILDREN_RESIDENT_MEMORY_BYTES: Family = Family::gauge(
    "openclaw_gateway_process_children_resident_memory_bytes",
    BYTES,
);
pub const MEMORY_LIMIT_BYTES: Family = Family::gauge("openclaw_gateway_memory_limit_bytes", BYTES);
pub const MEMORY_USAGE_RATIO: Family = Family::gauge("openclaw_gateway_memory_usage_ratio", RATIO);

// Connections: src/collector/connections.rs.
pub const TCP_CONNECTIONS: Family = Family::gauge("openclaw_gateway_tcp_connections", None);
pub const LISTEN_QUEUE_LENGTH: Family = Family::gauge("openclaw_gateway_listen_queue_length", None);
pub const LISTEN_QUEUE_CAPACITY: Family =
    Family::gauge("openclaw_gateway_listen_queue_capacity", None);
pub const LISTEN_QUEUE_USAGE_RATIO: Family =
    Family::gauge("openclaw_gateway_listen_queue_usage_ratio", RATIO);
pub const PROCESS_OPEN_FDS_BY_TYPE: Family =
    Family::gauge("openclaw_gateway_process_open_fds_by_type", None);
pub const CONNECTIONS_SOURCE: Family = Family::gauge("openclaw_gateway_connections_source", None);
pub const HOST_LISTEN_OVERFLOWS_TOTAL: Family =
    Family::counter("openclaw_gateway_host_listen_overflows_total", None);
pub const HOST_LISTEN_DROPS_TOTAL: Family =
    Family::counter("openclaw_gateway_host_listen_drops_total", None);
// Outbound connections waiting for an answer: src/outbound.rs.
pub const OUTBOUND_WAITING_CONNECTIONS: Family =
    Family::gauge("openclaw_gateway_outbound_waiting_connections", None);
pub const OUTBOUND_STALLED_CONNECTIONS: Family =
    Family::gauge("openclaw_gateway_outbound_stalled_connections", None);
pub const OUTBOUND_OLDEST_WAIT_SECONDS: Family =
    Family::gauge("openclaw_gateway_outbound_oldest_wait_seconds", SECONDS);

// Locks and instances: src/collector/lifecycle.rs.
pub const LOCK_FILES: Family = Family::gauge("openclaw_gateway_lock_files", None);
pub const LOCK_STALE_AGE_SECONDS: Family =
    Family::gauge("openclaw_gateway_lock_stale_age_seconds", SECONDS);
pub const INSTANCES: Family = Family::gauge("openclaw_gateway_instances", None);
pub const PORT_OWNER_MISMATCH: Family = Family::gauge("openclaw_gateway_port_owner_mismatch", None);

// Logs: src/collector/logs.rs.
pub const LOG_MESSAGES_TOTAL: Family = Family::counter("openclaw_gateway_log_messages_total", None);
pub const LOG_PATTERN_MATCHES_TOTAL: Family =
    Family::counter("openclaw_gateway_log_pattern_matches_total", None);
pub const LOG_PARSE_ERRORS_TOTAL: Family =
    Family::counter("openclaw_gateway_log_parse_errors_total", None);
pub const LOG_FILE_PRESENT: Family = Family::gauge("openclaw_gateway_log_file_present", None);

// Liveness: src/collector/liveness.rs.
pub const HUNG: Family = Family::gauge("openclaw_gateway_hung", None);

// Readiness (/readyz): src/collector/readiness.rs.
pub const READY: Family = Family::gauge("openclaw_gateway_ready", None);
pub const READINESS_FAILING: Family = Family::gauge("openclaw_gateway_readiness_failing", None);
pub const UPTIME_SECONDS: Family = Family::gauge("openclaw_gateway_uptime_seconds", SECONDS);
pub const EVENTLOOP_DELAY_P99_SECONDS: Family =
    Family::gauge("openclaw_gateway_eventloop_delay_p99_seconds", SECONDS);
pub const EVENTLOOP_DELAY_MAX_SECONDS: Family =
    Family::gauge("openclaw_gateway_eventloop_delay_max_seconds", SECONDS);
pub const EVENTLOOP_UTILIZATION_RATIO: Family =
    Family::gauge("openclaw_gateway_eventloop_utilization_ratio", RATIO);
pub const EVENTLOOP_DEGRADED: Family = Family::gauge("openclaw_gateway_eventloop_degraded", None);
pub const CPU_CORE_RATIO: Family = Family::gauge("openclaw_gateway_cpu_core_ratio", RATIO);
pub const EVENTLOOP_DELAY_FLOOR_SECONDS: Family =
    Family::gauge("openclaw_gateway_eventloop_delay_floor_seconds", SECONDS);
pub const READINESS_PARSE_ERRORS_TOTAL: Family =
    Family::counter("openclaw_gateway_readiness_parse_errors_total", None);
pub const EVENTLOOP_STALL_SECONDS_TOTAL: Family =
    Family::counter("openclaw_gateway_eventloop_stall_seconds_total", SECONDS);

// Probes, both endpoints: src/probe/metrics.rs.
pub const PROBE_DURATION_SECONDS: Family =
    Family::histogram("openclaw_gateway_probe_duration_seconds", SECONDS);
pub const PROBE_LAST_DURATION_SECONDS: Family =
    Family::gauge("openclaw_gateway_probe_last_duration_seconds", SECONDS);
pub const PROBE_SUCCESS: Family = Family::gauge("openclaw_gateway_probe_success", None);
pub const PROBE_HTTP_STATUS_CODE: Family =
    Family::gauge("openclaw_gateway_probe_http_status_code", None);
pub const PROBES_TOTAL: Family = Family::counter("openclaw_gateway_probes_total", None);
pub const PROBE_FAILURES_TOTAL: Family =
    Family::counter("openclaw_gateway_probe_failures_total", None);
pub const PROBE_ERROR_RATIO: Family = Family::gauge("openclaw_gateway_probe_error_ratio", RATIO);

// The RPC probe (WebSocket control plane): src/collector/rpc.rs.
pub const RPC_PROBE_DURATION_SECONDS: Family =
    Family::histogram("openclaw_gateway_rpc_probe_duration_seconds", SECONDS);
pub const RPC_PROBE_SUCCESS: Family = Family::gauge("openclaw_gateway_rpc_probe_success", None);
pub const RPC_PROBES_TOTAL: Family = Family::counter("openclaw_gateway_rpc_probes_total", None);
pub const RPC_PROBE_FAILURES_TOTAL: Family =
    Family::counter("openclaw_gateway_rpc_probe_failures_total", None);
pub const RPC_HUNG: Family = Family::gauge("openclaw_gateway_rpc_hung", None);

// Collector health: src/collector/mod.rs.
pub const COLLECTOR_SUCCESS: Family = Family::gauge("openclaw_gateway_collector_success", None);
pub const COLLECTOR_DURATION_SECONDS: Family =
    Family::gauge("openclaw_gateway_collector_duration_seconds", SECONDS);
pub const COLLECTOR_LAST_SAMPLE_TIMESTAMP_SECONDS: Family = Family::gauge(
    "openclaw_gateway_collector_last_sample_timestamp_seconds",
    SECONDS,
);
pub const COLLECTOR_SKIPPED_READS_TOTAL: Family =
    Family::counter("openclaw_gateway_collector_skipped_reads_total", None);

// The exporter's own process: src/self_process.rs.
pub const EXPORTER_PROCESS_CPU_SECONDS_TOTAL: Family =
    Family::counter("process_cpu_seconds_total", SECONDS);
pub const EXPORTER_PROCESS_OPEN_FDS: Family = Family::gauge("process_open_fds", None);
pub const EXPORTER_PROCESS_MAX_FDS: Family = Family::gauge("process_max_fds", None);
pub const EXPORTER_PROCESS_VIRTUAL_MEMORY_BYTES: Family =
    Family::gauge("process_virtual_memory_bytes", BYTES);
pub const EXPORTER_PROCESS_RESIDENT_MEMORY_BYTES: Family =
    Family::gauge("process_resident_memory_bytes", BYTES);
pub const EXPORTER_PROCESS_START_TIME_SECONDS: Family =
    Family::gauge("process_start_time_seconds", SECONDS);
pub const EXPORTER_PROCESS_THREADS: Family = Family::gauge("process_threads", None);

// Build info: src/exporter.rs (registered there as an Info).
pub const EXPORTER_BUILD_INFO: Family = Family::info("openclaw_gateway_exporter_build_info");

// Discovery of gateways while running: src/sd/mod.rs.
pub const DISCOVERY_ERRORS_TOTAL: Family =
    Family::counter("openclaw_gateway_exporter_discovery_errors_total", None);
pub const DISCOVERY_FAILING: Family =
    Family::gauge("openclaw_gateway_exporter_discovery_failing", None);
pub const DISCOVERY_TARGETS: Family =
    Family::gauge("openclaw_gateway_exporter_discovery_targets", None);
pub const DISCOVERED_INFO: Family = Family::info("openclaw_gateway_discovered_info");

// Incident snapshots: src/incident/mod.rs.
pub const INCIDENT_SNAPSHOTS_TOTAL: Family =
    Family::counter("openclaw_gateway_incident_snapshots_total", None);

// Watchdog: src/remediation/runner.rs.
pub const REMEDIATIONS_TOTAL: Family = Family::counter("openclaw_gateway_remediations_total", None);
pub const REMEDIATION_BUDGET_REMAINING: Family =
    Family::gauge("openclaw_gateway_remediation_budget_remaining", None);
pub const RECOVERY_DURATION_SECONDS: Family =
    Family::histogram("openclaw_gateway_recovery_duration_seconds", SECONDS);

/// Every family, in the order above.
pub const ALL: [Family; 77] = [
    PROCESS_UP,
    DISCOVERY_METHOD,
    PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_THREADS,
    PROCESS_START_TIME_SECONDS,
    PROCESS_CHILDREN,
    PROCESS_RESTARTS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES,
    PROCESS_VIRTUAL_MEMORY_BYTES,
    PROCESS_CHILDREN_RESIDENT_MEMORY_BYTES,
    MEMORY_LIMIT_BYTES,
    MEMORY_USAGE_RATIO,
    TCP_CONNECTIONS,
    LISTEN_QUEUE_LENGTH,
    LISTEN_QUEUE_CAPACITY,
    LISTEN_QUEUE_USAGE_RATIO,
    PROCESS_OPEN_FDS_BY_TYPE,
    CONNECTIONS_SOURCE,
    HOST_LISTEN_OVERFLOWS_TOTAL,
    HOST_LISTEN_DROPS_TOTAL,
    OUTBOUND_WAITING_CONNECTIONS,
    OUTBOUND_STALLED_CONNECTIONS,
    OUTBOUND_OLDEST_WAIT_SECONDS,
    LOCK_FILES,
    LOCK_STALE_AGE_SECONDS,
    INSTANCES,
    PORT_OWNER_MISMATCH,
    LOG_MESSAGES_TOTAL,
    LOG_PATTERN_MATCHES_TOTAL,
    LOG_PARSE_ERRORS_TOTAL,
    LOG_FILE_PRESENT,
    HUNG,
    READY,
    READINESS_FAILING,
    UPTIME_SECONDS,
    EVENTLOOP_DELAY_P99_SECONDS,
    EVENTLOOP_DELAY_MAX_SECONDS,
    EVENTLOOP_UTILIZATION_RATIO,
    EVENTLOOP_DEGRADED,
    CPU_CORE_RATIO,
    EVENTLOOP_DELAY_FLOOR_SECONDS,
    READINESS_PARSE_ERRORS_TOTAL,
    EVENTLOOP_STALL_SECONDS_TOTAL,
    PROBE_DURATION_SECONDS,
    PROBE_LAST_DURATION_SECONDS,
    PROBE_SUCCESS,
    PROBE_HTTP_STATUS_CODE,
    PROBES_TOTAL,
    PROBE_FAILURES_TOTAL,
    PROBE_ERROR_RATIO,
    RPC_PROBE_DURATION_SECONDS,
    RPC_PROBE_SUCCESS,
    RPC_PROBES_TOTAL,
    RPC_PROBE_FAILURES_TOTAL,
    RPC_HUNG,
    COLLECTOR_SUCCESS,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_LAST_SAMPLE_TIMESTAMP_SECONDS,
    COLLECTOR_SKIPPED_READS_TOTAL,
    EXPORTER_PROCESS_CPU_SECONDS_TOTAL,
    EXPORTER_PROCESS_OPEN_FDS,
    EXPORTER_PROCESS_MAX_FDS,
    EXPORTER_PROCESS_VIRTUAL_MEMORY_BYTES,
    EXPORTER_PROCESS_RESIDENT_MEMORY_BYTES,
    EXPORTER_PROCESS_START_TIME_SECONDS,
    EXPORTER_PROCESS_THREADS,
    EXPORTER_BUILD_INFO,
    DISCOVERY_ERRORS_TOTAL,
    DISCOVERY_FAILING,
    DISCOVERY_TARGETS,
    DISCOVERED_INFO,
    INCIDENT_SNAPSHOTS_TOTAL,
    REMEDIATIONS_TOTAL,
    REMEDIATION_BUDGET_REMAINING,
    RECOVERY_DURATION_SECONDS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_the_full_names() {
        assert_eq!(
            PROCESS_CPU_SECONDS_TOTAL.base(),
            "openclaw_gateway_process_cpu"
        );
        assert_eq!(PROCESS_CPU_SECONDS_TOTAL.unit, SECONDS);
        assert_eq!(MEMORY_USAGE_RATIO.base(), "openclaw_gateway_memory_usage");
        assert_eq!(MEMORY_USAGE_RATIO.unit, RATIO);
        assert_eq!(
            PROCESS_RESTARTS_TOTAL.base(),
            "openclaw_gateway_process_restarts"
        );
        assert_eq!(PROCESS_RESTARTS_TOTAL.unit, None);
        assert_eq!(
            EXPORTER_BUILD_INFO.base(),
            "openclaw_gateway_exporter_build"
        );
        assert_eq!(
            PROBE_DURATION_SECONDS.base(),
            "openclaw_gateway_probe_duration"
        );
        assert_eq!(format!("{PROCESS_UP}{{"), "openclaw_gateway_process_up{");
    }

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for f in ALL {
            assert!(seen.insert(f.name()), "{} twice", f.name());
            assert!(f.name().starts_with("openclaw_gateway_") || f.name().starts_with("process_"));
            assert!(f
                .name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
            // `_total` only on counters.
            assert_eq!(
                f.name().ends_with("_total"),
                f.kind() == Kind::Counter,
                "{}",
                f.name()
            );
        }
    }
}
