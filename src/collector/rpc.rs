//! The RPC probe: every `--probe.rpc-interval` (default 15 s), connect to the
//! gateway's WebSocket control plane with its token, complete the handshake
//! and call `health` ([`crate::probe::rpc`]); and the control plane's hang
//! verdict: /healthz answers, yet the last K RPC probes timed out.
//!
//! `/healthz` proves only that the HTTP server's accept path runs; the
//! control plane is what `openclaw health` and `openclaw status` use
//! (docs/gateway/health.md). Without a token the probe is off: the
//! gateway's control plane admits no one without it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;

use super::{AsyncSampler, BoxFuture, SampleError};
use crate::config::TokenSource;
use crate::discovery::Target;
use crate::metrics::{self, Latest};
use crate::names;
use crate::probe::rpc::{RpcClient, RpcReason, RpcTarget};
use crate::probe::{ProbeStats, DURATION_BUCKETS};

/// One gateway's RPC probe results, shared by its sampler and the exposition.
#[derive(Debug)]
pub struct RpcSlot {
    pub gateway: String,
    /// The liveness probe's results: the verdict needs /healthz answering.
    pub live: Option<Arc<ProbeStats>>,
    durations: Histogram,
    counts: Mutex<Counts>,
    /// The control plane's hang verdict after the last probe.
    pub hung: Latest<bool>,
}

#[derive(Debug, Default)]
struct Counts {
    total: u64,
    failures: [u64; RpcReason::ALL.len()],
    last_success: Option<bool>,
}

impl RpcSlot {
    pub fn new(gateway: &str, live: Option<Arc<ProbeStats>>) -> RpcSlot {
        RpcSlot {
            gateway: gateway.to_string(),
            live,
            durations: Histogram::new(DURATION_BUCKETS),
            counts: Mutex::new(Counts::default()),
            hung: Latest::new(),
        }
    }

    /// Record one finished probe. Its duration goes to the histogram unless
    /// the gateway refused the handshake or the token: no call was made.
    pub fn record(&self, elapsed: Duration, result: Result<(), RpcReason>) {
        if !matches!(result, Err(RpcReason::Handshake | RpcReason::Auth)) {
            self.durations.observe(elapsed.as_secs_f64());
        }
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total += 1;
        if let Err(r) = result {
            c.failures[r.index()] += 1;
        }
        c.last_success = Some(result.is_ok());
    }

    fn with<R>(&self, f: impl FnOnce(&Counts) -> R) -> R {
        f(&self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// /healthz answered last time it was asked.
    fn http_answers(&self) -> bool {
        self.live
            .as_ref()
            .and_then(|s| s.last())
            .is_some_and(|l| l.success)
    }
}

pub struct RpcSampler {
    slot: Arc<RpcSlot>,
    /// Or why the gateway cannot be probed (its TLS setup failed).
    client: Result<RpcClient, String>,
    target: RpcTarget,
    token: TokenSource,
    hang_after: u32,
    /// Consecutive probes that timed out.
    streak: u32,
}

impl RpcSampler {
    pub fn new(
        slot: Arc<RpcSlot>,
        target: &Target,
        client: Result<RpcClient, String>,
        hang_after: u32,
    ) -> Self {
        let spec = &target.spec;
        RpcSampler {
            slot,
            client,
            target: RpcTarget::new(&spec.url, &spec.host, spec.url_port),
            token: TokenSource::new(spec),
            hang_after,
            streak: 0,
        }
    }

    async fn probe(&mut self) -> Result<(), SampleError> {
        let client = self.client.clone().map_err(SampleError::Failed)?;
        let Some(token) = self.token.current(&self.slot.gateway).cloned() else {
            return Err(SampleError::Failed("no gateway token to send".into()));
        };
        let started = Instant::now();
        let result = client.health(&self.target, &token).await;
        self.slot.record(started.elapsed(), result);
        if let Err(r) = result {
            tracing::debug!(gateway = %self.slot.gateway, reason = r.as_str(), "RPC probe failed");
        }

        // Only silence counts: a refused token, a broken frame or an error
        // answer is an answer.
        self.streak = match result {
            Err(RpcReason::Timeout) => self.streak.saturating_add(1),
            _ => 0,
        };
        let hung = self.streak >= self.hang_after && self.slot.http_answers();
        let was = self.slot.hung.get().unwrap_or(false);
        if hung != was {
            if hung {
                tracing::warn!(gateway = %self.slot.gateway, probes = self.streak, "gateway control plane hung: /healthz answers, but its WebSocket RPC does not");
            } else {
                tracing::info!(gateway = %self.slot.gateway, "gateway control plane no longer hung");
            }
        }
        self.slot.hung.set(hung);
        Ok(())
    }
}

impl AsyncSampler for RpcSampler {
    fn name(&self) -> &'static str {
        "rpc"
    }

    /// A failed probe is a successful sample: the failure is the measurement.
    fn sample(&mut self) -> BoxFuture<'_, Result<(), SampleError>> {
        Box::pin(self.probe())
    }
}

const EVERY: &str = "Probed every --probe.rpc-interval, when the gateway has a token.";

/// Exposes the RPC probe metrics and verdict of every gateway probed.
#[derive(Debug)]
pub struct RpcMetrics(pub Vec<Arc<RpcSlot>>);

impl RpcMetrics {
    fn rows<'a>(
        &'a self,
        f: impl Fn(&RpcSlot) -> Option<f64> + 'a,
    ) -> impl Iterator<Item = (metrics::Labels<'a, 1>, f64)> + 'a {
        self.0
            .iter()
            .filter_map(move |s| Some(([("gateway", s.gateway.as_str())], f(s)?)))
    }
}

impl Collector for RpcMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut family = metrics::descriptor(
            &mut enc,
            &names::RPC_PROBE_DURATION_SECONDS,
            &format!("Duration of the RPC probes that got past the handshake: connect, handshake and the health call (timeouts are in, refused handshakes and tokens are left out). {EVERY}"),
        )?;
        for s in &self.0 {
            s.durations
                .encode(family.encode_family(&[("gateway", s.gateway.as_str())])?)?;
        }
        metrics::gauge(
            &mut enc,
            &names::RPC_PROBE_SUCCESS,
            &format!(
                "Whether the last RPC probe got an answer to health (1) or failed (0). {EVERY}"
            ),
            self.rows(|s| s.with(|c| c.last_success.map(f64::from))),
        )?;
        metrics::counter(
            &mut enc,
            &names::RPC_PROBES_TOTAL,
            &format!("RPC probes sent. {EVERY}"),
            self.rows(|s| Some(s.with(|c| c.total) as f64)),
        )?;
        let failures = self.0.iter().flat_map(|s| {
            let counts = s.with(|c| c.failures);
            RpcReason::ALL.into_iter().map(move |r| {
                (
                    [("gateway", s.gateway.as_str()), ("reason", r.as_str())],
                    counts[r.index()] as f64,
                )
            })
        });
        metrics::counter(
            &mut enc,
            &names::RPC_PROBE_FAILURES_TOTAL,
            &format!("Failed RPC probes by reason: timeout (no answer within --probe.timeout, wherever it stopped), handshake (connection, upgrade or connect refused, not for the token), auth (the token was refused), rpc_error (health answered an error), bad_frame (not the protocol's frames, or over the 1 MiB cap). {EVERY}"),
            failures,
        )?;
        metrics::gauge(
            &mut enc,
            &names::RPC_HUNG,
            &format!("1 when the last /healthz probe succeeded, yet the last --probe.hang-after RPC probes timed out: the HTTP layer answers, the control plane does not. 0 otherwise, also when /healthz fails too (see openclaw_gateway_hung). {EVERY}"),
            self.rows(|s| Some(f64::from(s.hung.get().unwrap_or(false)))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let slot = RpcSlot::new("g", None);
        slot.record(Duration::from_millis(30), Ok(()));
        slot.record(Duration::from_millis(5000), Err(RpcReason::Timeout));
        slot.record(Duration::from_millis(2), Err(RpcReason::Auth));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(RpcMetrics(vec![Arc::new(slot)])));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            format!(
                r#"{}_count{{gateway="g"}} 2"#,
                names::RPC_PROBE_DURATION_SECONDS
            ),
            format!(
                r#"{}_bucket{{le="0.1",gateway="g"}} 1"#,
                names::RPC_PROBE_DURATION_SECONDS
            ),
            format!(
                r#"{}_bucket{{le="0.5",gateway="g"}} 1"#,
                names::RPC_PROBE_DURATION_SECONDS
            ),
            format!(r#"{}{{gateway="g"}} 3"#, names::RPC_PROBES_TOTAL),
            format!(
                r#"{}{{gateway="g",reason="auth"}} 1"#,
                names::RPC_PROBE_FAILURES_TOTAL
            ),
            format!(
                r#"{}{{gateway="g",reason="bad_frame"}} 0"#,
                names::RPC_PROBE_FAILURES_TOTAL
            ),
            format!(r#"{}{{gateway="g"}} 0"#, names::RPC_PROBE_SUCCESS),
            format!(r#"{}{{gateway="g"}} 0"#, names::RPC_HUNG),
        ] {
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
    }
}
