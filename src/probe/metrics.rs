//! The `openclaw_gateway_probe_*` metrics both probes feed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;

use super::{ErrorWindow, Failure, Reason};
use crate::metrics;
use crate::names;

/// Upper bounds of the probe duration histogram, in seconds. They bracket the
/// field report's response-time thresholds: 100 ms normal, 500 ms danger.
pub const DURATION_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The probed endpoint: the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Live,
    Ready,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Live => "live",
            Endpoint::Ready => "ready",
        }
    }
}

#[derive(Debug)]
pub struct ProbeStats {
    pub gateway: String,
    pub endpoint: Endpoint,
    durations: Histogram,
    counts: Mutex<Counts>,
}

#[derive(Debug)]
struct Counts {
    total: u64,
    failures: [u64; Reason::ALL.len()],
    last: Option<Last>,
    window: ErrorWindow,
    history: super::history::History,
}

/// The last probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Last {
    pub success: bool,
    pub duration_seconds: f64,
    /// 0 when no HTTP answer arrived.
    pub status: u16,
}

impl ProbeStats {
    /// `error_window` is the error-ratio window (`--collect.errors.interval`).
    pub fn new(gateway: &str, endpoint: Endpoint, error_window: Duration) -> ProbeStats {
        ProbeStats {
            gateway: gateway.to_string(),
            endpoint,
            durations: Histogram::new(DURATION_BUCKETS),
            counts: Mutex::new(Counts {
                total: 0,
                failures: [0; Reason::ALL.len()],
                last: None,
                window: ErrorWindow::new(error_window),
                history: Default::default(),
            }),
        }
    }

    /// Record one finished probe. Durations go to the histogram unless the
    /// probe never reached the gateway (refused or failed to connect), so a
    /// gateway that is down does not look fast.
    pub fn record(&self, elapsed: Duration, result: Result<u16, Failure>) {
        self.record_answer(elapsed, result, None)
    }

    /// [`ProbeStats::record`], with the start of the answer's body kept in
    /// the probe history ([`super::history`]).
    pub fn record_answer(
        &self,
        elapsed: Duration,
        result: Result<u16, Failure>,
        body: Option<&[u8]>,
    ) {
        let seconds = elapsed.as_secs_f64();
        let reached = !matches!(
            result,
            Err(Failure {
                reason: Reason::ConnectRefused | Reason::ConnectError,
                ..
            })
        );
        if reached {
            self.durations.observe(seconds);
        }
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total += 1;
        if let Err(f) = result {
            c.failures[f.reason.index()] += 1;
        }
        c.window.record(Instant::now(), result.is_err());
        c.history
            .push(crate::collector::unix_now(), seconds, result, body);
        c.last = Some(Last {
            success: result.is_ok(),
            duration_seconds: seconds,
            status: match result {
                Ok(status) => status,
                Err(f) => f.status.unwrap_or(0),
            },
        });
    }

    /// The probes of the last minute, oldest first.
    pub fn history(&self) -> Vec<super::history::Entry> {
        self.with(|c| c.history.recent(crate::collector::unix_now()))
    }

    pub fn last(&self) -> Option<Last> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    fn with<R>(&self, f: impl FnOnce(&Counts) -> R) -> R {
        f(&self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Exposes the probe metrics of every endpoint of every gateway.
#[derive(Debug)]
pub struct ProbeMetrics(pub Vec<Arc<ProbeStats>>);

const SAMPLED: &str = "Liveness (endpoint=\"live\", GET /healthz) every --collect.latency.interval; readiness (endpoint=\"ready\", GET /readyz) every --probe.readiness-interval.";

impl ProbeMetrics {
    fn rows<'a>(
        &'a self,
        f: impl Fn(&Counts) -> Option<f64> + 'a,
    ) -> impl Iterator<Item = (metrics::Labels<'a, 2>, f64)> + 'a {
        self.0.iter().filter_map(move |s| {
            let v = s.with(&f)?;
            Some((
                [
                    ("gateway", s.gateway.as_str()),
                    ("endpoint", s.endpoint.as_str()),
                ],
                v,
            ))
        })
    }
}

impl Collector for ProbeMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.0.is_empty() {
            let mut family = metrics::descriptor(
                &mut enc,
                &names::PROBE_DURATION_SECONDS,
                &format!("Duration of the probes that reached the gateway (refused and failed connections are left out; timeouts are in). {SAMPLED}"),
            )?;
            for s in &self.0 {
                let labels = [
                    ("gateway", s.gateway.as_str()),
                    ("endpoint", s.endpoint.as_str()),
                ];
                s.durations.encode(family.encode_family(&labels)?)?;
            }
        }
        metrics::gauge(
            &mut enc,
            &names::PROBE_LAST_DURATION_SECONDS,
            &format!("Duration of the last probe, failed or not. {SAMPLED}"),
            self.rows(|c| c.last.map(|l| l.duration_seconds)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROBE_SUCCESS,
            &format!("Whether the last probe succeeded (1) or failed (0). A readiness answer of 503 is a success: the gateway answered that it is not ready. {SAMPLED}"),
            self.rows(|c| c.last.map(|l| if l.success { 1.0 } else { 0.0 })),
        )?;
        metrics::gauge(
            &mut enc,
            &names::PROBE_HTTP_STATUS_CODE,
            &format!("HTTP status of the last probe's answer; 0 when none arrived. {SAMPLED}"),
            self.rows(|c| c.last.map(|l| f64::from(l.status))),
        )?;
        metrics::counter(
            &mut enc,
            &names::PROBES_TOTAL,
            &format!("Probes sent. The error rate is rate(openclaw_gateway_probe_failures_total) / rate(openclaw_gateway_probes_total). {SAMPLED}"),
            self.rows(|c| Some(c.total as f64)),
        )?;
        let failures = self.0.iter().flat_map(|s| {
            let counts = s.with(|c| c.failures);
            Reason::ALL.into_iter().map(move |r| {
                (
                    [
                        ("gateway", s.gateway.as_str()),
                        ("endpoint", s.endpoint.as_str()),
                        ("reason", r.as_str()),
                    ],
                    counts[r.index()] as f64,
                )
            })
        });
        metrics::counter(
            &mut enc,
            &names::PROBE_FAILURES_TOTAL,
            &format!("Failed probes by reason: timeout, connect_refused, connect_error, http_status, bad_body, too_large. {SAMPLED}"),
            failures,
        )?;
        let now = Instant::now();
        metrics::gauge(
            &mut enc,
            &names::PROBE_ERROR_RATIO,
            &format!("Failed / all probes that finished within the last --collect.errors.interval (sliding window); absent while there were none. {SAMPLED}"),
            self.rows(|c| c.window.ratio(now)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_and_bucket() {
        let st = ProbeStats::new("g", Endpoint::Live, Duration::from_secs(60));
        st.record(Duration::from_millis(50), Ok(200));
        st.record(Duration::from_millis(600), Ok(200));
        st.record(
            Duration::from_millis(1),
            Err(Failure::new(Reason::ConnectRefused, None)),
        );
        st.record(
            Duration::from_millis(30),
            Err(Failure::new(Reason::HttpStatus, Some(500))),
        );
        st.with(|c| {
            assert_eq!(c.total, 4);
            assert_eq!(c.failures[Reason::HttpStatus.index()], 1);
            assert_eq!(c.failures[Reason::ConnectRefused.index()], 1);
            assert_eq!(c.window.ratio(Instant::now()), Some(0.5));
        });
        assert_eq!(
            st.last(),
            Some(Last {
                success: false,
                duration_seconds: 0.03,
                status: 500
            })
        );
        // The refused probe never reached the gateway: not in the histogram.
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProbeMetrics(vec![Arc::new(st)])));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let labels = r#"gateway="g",endpoint="live""#;
        for line in [
            format!(r#"{}_count{{{labels}}} 3"#, names::PROBE_DURATION_SECONDS),
            format!(
                r#"{}_bucket{{le="0.025",{labels}}} 0"#,
                names::PROBE_DURATION_SECONDS
            ),
            format!(
                r#"{}_bucket{{le="0.05",{labels}}} 2"#,
                names::PROBE_DURATION_SECONDS
            ),
            format!(
                r#"{}_bucket{{le="0.5",{labels}}} 2"#,
                names::PROBE_DURATION_SECONDS
            ),
            format!(
                r#"{}_bucket{{le="1.0",{labels}}} 3"#,
                names::PROBE_DURATION_SECONDS
            ),
            format!(r#"{}{{{labels}}} 4"#, names::PROBES_TOTAL),
            format!(
                r#"{}{{{labels},reason="too_large"}} 0"#,
                names::PROBE_FAILURES_TOTAL
            ),
            format!(
                r#"{}{{{labels},reason="http_status"}} 1"#,
                names::PROBE_FAILURES_TOTAL
            ),
            format!(r#"{}{{{labels}}} 500"#, names::PROBE_HTTP_STATUS_CODE),
            format!(r#"{}{{{labels}}} 0"#, names::PROBE_SUCCESS),
            format!(r#"{}{{{labels}}} 0.5"#, names::PROBE_ERROR_RATIO),
        ] {
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
    }
}
