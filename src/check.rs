//! `check`: a fast liveness verdict for Docker HEALTHCHECK, systemd
//! `ExecStartPost`, cron and watchdog scripts. A gateway passes when its
//! process is found, its port LISTENs, and `GET /healthz` answers 2xx with a
//! live body within the probe timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::collector::liveness;
use crate::config::GatewaySpec;
use crate::discovery::Target;
use crate::platform::Platform;
use crate::probe::{Prober, Reason};

/// Judge one gateway: `Ok` with a one-line summary, or `Err` with the reason.
pub async fn check(
    spec: &GatewaySpec,
    timeout: Duration,
    platform: Arc<dyn Platform>,
) -> Result<String, String> {
    let target = Target::with_platform(spec.clone(), platform);
    // Blocking OS reads, once: fine for a one-shot command.
    let found = target.resolve();
    let Some(found) = found else {
        return Err(format!(
            "no gateway process (no live lock in {}, no process titled {:?} listening on port {})",
            spec.state_dir.display(),
            spec.process_title,
            spec.port
        ));
    };
    let pid = found.id.pid;
    // Where the platform cannot see who listens (Caps::listeners), the
    // /healthz answer alone says whether the port accepts; no HUNG verdict.
    let sees_listeners = target.platform.caps().listeners;
    if sees_listeners && !liveness::alive_and_listening(&target) {
        return Err(format!(
            "pid {pid} is alive but nothing listens on port {}",
            spec.port
        ));
    }
    let prober = Prober::new(timeout, spec.url.starts_with("https://"))
        .map_err(|e| format!("cannot probe: {e}"))?;
    let url = format!("{}/healthz", spec.url);
    let started = Instant::now();
    let answer = prober.get(&url, None, liveness::BODY_CAP).await;
    let elapsed = started.elapsed();
    match answer.and_then(liveness::check_answer) {
        Ok(status) => Ok(format!(
            "pid {pid} listening on port {}, GET /healthz {status} in {:.1} ms",
            spec.port,
            elapsed.as_secs_f64() * 1000.0
        )),
        Err(f) if sees_listeners && matches!(f.reason, Reason::Timeout | Reason::ConnectRefused) => Err(format!(
            "HUNG: pid {pid} is alive and port {} LISTENs, but GET /healthz failed ({}) after {:.1} s",
            spec.port,
            f.reason.as_str(),
            elapsed.as_secs_f64()
        )),
        Err(f) => Err(format!(
            "GET /healthz failed: {}{}",
            f.reason.as_str(),
            f.status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
        )),
    }
}
