//! Liveness: `GET <gateway url>/healthz` every `--collect.latency.interval`
//! (default 10s, the field report's response-time interval), and the hang
//! verdict: the process is alive and its port LISTENs, yet the last K
//! liveness probes timed out or were refused.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{AsyncSampler, BoxFuture, SampleError};
use crate::discovery::Target;
use crate::incident::Snapshotter;
use crate::metrics::{self, Latest};
use crate::names;
use crate::probe::{Answer, Failure, Probe, ProbeStats, Prober, Reason};

/// The most body a /healthz answer may have (the real one has 27 bytes).
pub const BODY_CAP: usize = 64 * 1024;

/// One gateway's liveness slot, shared by its sampler and the exposition.
#[derive(Debug)]
pub struct LivenessSlot {
    pub target: Arc<Target>,
    /// The probe metrics with `endpoint="live"`.
    pub stats: Arc<ProbeStats>,
    /// The hang verdict after the last probe.
    pub hung: Latest<bool>,
}

pub struct LivenessSampler {
    slot: Arc<LivenessSlot>,
    /// Or why the gateway cannot be probed (its HTTP client failed to build).
    prober: Result<Probe, String>,
    hang_after: u32,
    /// Consecutive probes that timed out or were refused.
    streak: u32,
    /// Takes an incident snapshot on each transition to hung.
    snapshots: Option<Snapshotter>,
}

impl LivenessSampler {
    pub fn new(slot: Arc<LivenessSlot>, prober: Result<Prober, String>, hang_after: u32) -> Self {
        let url = format!("{}/healthz", slot.target.spec.url);
        LivenessSampler {
            prober: prober.map(|p| p.target(url)),
            slot,
            hang_after,
            streak: 0,
            snapshots: None,
        }
    }

    /// Take an incident snapshot on each transition to hung.
    pub fn with_snapshots(mut self, snapshots: Option<Snapshotter>) -> Self {
        self.snapshots = snapshots;
        self
    }

    async fn probe(&mut self) -> Result<(), SampleError> {
        let prober = self
            .prober
            .as_mut()
            .map_err(|e| SampleError::Failed(e.clone()))?;
        let started = Instant::now();
        let result = prober.get(None, BODY_CAP).await.and_then(check_answer);
        self.slot.stats.record(started.elapsed(), result);
        if let Err(f) = result {
            tracing::debug!(gateway = %self.slot.target.spec.name, reason = f.reason.as_str(), "liveness probe failed");
        }

        let silent = matches!(
            result,
            Err(Failure {
                reason: Reason::Timeout | Reason::ConnectRefused,
                ..
            })
        );
        self.streak = if silent {
            self.streak.saturating_add(1)
        } else {
            0
        };
        let hung = self.streak >= self.hang_after && {
            // Reads the process table; only needed while probes go unanswered.
            let target = self.slot.target.clone();
            tokio::task::spawn_blocking(move || alive_and_listening(&target))
                .await
                .unwrap_or(false)
        };
        let was = self.slot.hung.get().unwrap_or(false);
        if hung != was {
            if hung {
                tracing::warn!(gateway = %self.slot.target.spec.name, probes = self.streak, "gateway hung: its process is alive and its port listens, but it does not answer /healthz");
            } else {
                tracing::info!(gateway = %self.slot.target.spec.name, "gateway no longer hung");
            }
        }
        self.slot.hung.set(hung);
        // After the verdict is set: the snapshot's series show it.
        if hung && !was {
            if let Some(s) = &self.snapshots {
                snapshot_off_probes(s.clone(), self.slot.target.spec.clone());
            }
        }
        Ok(())
    }
}

/// Take a "hung" snapshot on a thread of its own: it reads the OS for a
/// second or so, and the probes' thread never waits on it. A second hang of
/// the same gateway while one is under way is refused by the snapshotter.
fn snapshot_off_probes(s: Snapshotter, spec: crate::config::GatewaySpec) {
    let name = spec.name.clone();
    let spawned = std::thread::Builder::new()
        .name("incident".into())
        .spawn(move || {
            // Logged and counted by `take`.
            let _ = s.take(&spec, "hung");
        });
    if let Err(e) = spawned {
        tracing::error!(gateway = %name, error = %e, "cannot start a thread for the incident snapshot");
        crate::incident::count(&name, "hung", "failed");
    }
}

impl AsyncSampler for LivenessSampler {
    fn name(&self) -> &'static str {
        "liveness"
    }

    /// A failed probe is a successful sample: the failure is the measurement.
    fn sample(&mut self) -> BoxFuture<'_, Result<(), SampleError>> {
        Box::pin(self.probe())
    }
}

/// A live gateway answers 2xx with a JSON object such as
/// `{"ok":true,"status":"live"}`; `ok`, when present, must be `true` and
/// `status` a string.
pub fn check_answer(answer: Answer) -> Result<u16, Failure> {
    let status = answer.status;
    if !(200..300).contains(&status) {
        return Err(Failure::new(Reason::HttpStatus, Some(status)));
    }
    if valid_body(&answer.body) {
        Ok(status)
    } else {
        Err(Failure::new(Reason::BadBody, Some(status)))
    }
}

fn valid_body(body: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(body) else {
        return false;
    };
    let ok = obj.get("ok").is_none_or(|v| v.as_bool() == Some(true));
    let status = obj.get("status").is_none_or(|v| v.is_string());
    ok && status
}

/// The gateway process found last is still running (same pid and start time)
/// and its port LISTENs, in the exporter's network namespace or its own.
pub fn alive_and_listening(target: &Target) -> bool {
    let Some(found) = target.current() else {
        return false;
    };
    let p = &*target.platform;
    p.identity(found.id.pid).ok() == Some(found.id)
        && p.listening(target.spec.port, Some(found.id.pid))
}

/// Exposes the hang verdict of every gateway (the probe metrics themselves
/// are in [`crate::probe::ProbeMetrics`]).
#[derive(Debug)]
pub struct LivenessMetrics(pub Vec<Arc<LivenessSlot>>);

impl Collector for LivenessMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Where the platform cannot tell who listens (Caps::listeners), the
        // verdict is absent: "alive and listening" cannot be judged.
        let rows = self
            .0
            .iter()
            .filter(|slot| slot.target.platform.caps().listeners)
            .map(|slot| {
                let hung = slot.hung.get().unwrap_or(false);
                (
                    [("gateway", slot.target.spec.name.as_str())],
                    if hung { 1.0 } else { 0.0 },
                )
            });
        metrics::gauge(
            &mut enc,
            &names::HUNG,
            "1 when the gateway process is alive and its port LISTENs, yet the last --probe.hang-after liveness probes timed out or were refused; 0 otherwise, also when the gateway is down (see openclaw_gateway_process_up). Updated every --collect.latency.interval.",
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn healthz_answers() {
        assert_eq!(
            check_answer(answer(200, r#"{"ok":true,"status":"live"}"#)),
            Ok(200)
        );
        assert_eq!(check_answer(answer(204, "{}")), Ok(204));
        let reason = |a| check_answer(a).unwrap_err().reason;
        assert_eq!(reason(answer(500, r#"{"ok":false}"#)), Reason::HttpStatus);
        assert_eq!(reason(answer(301, "")), Reason::HttpStatus);
        for bad in [
            "not json{",
            r#"{"ok":"yes","status":5}"#,
            r#"{"ok":NaN}"#,
            r#"{"ok":false}"#,
            r#"[1,2]"#,
            "",
        ] {
            assert_eq!(reason(answer(200, bad)), Reason::BadBody, "{bad}");
        }
        assert_eq!(
            check_answer(answer(503, "x")).unwrap_err().status,
            Some(503)
        );
    }
}
