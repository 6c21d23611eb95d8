//! The field report's standard recovery procedure (§5.1) as one function.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::GatewaySpec;
use crate::platform::Platform;

use super::method::Method;

/// How [`recover`] runs.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    /// How long a graceful stop may take before the force kill.
    pub stop_timeout: Duration,
    /// How long the started gateway has to be verified ready.
    pub verify_timeout: Duration,
    /// Say what would be done, do nothing.
    pub dry_run: bool,
    /// Time allowed for one /readyz probe while verifying.
    pub probe_timeout: Duration,
    /// How the processes and locks are read, and signalled.
    pub platform: Arc<dyn Platform>,
}

impl Default for RecoverOptions {
    fn default() -> Self {
        RecoverOptions {
            stop_timeout: Duration::from_secs(30),
            verify_timeout: Duration::from_secs(120),
            dry_run: false,
            probe_timeout: Duration::from_secs(5),
            platform: crate::platform::select(crate::platform::Backend::Native),
        }
    }
}

/// One step of the procedure, as it went.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: &'static str,
    pub took: Duration,
    pub outcome: String,
    pub ok: bool,
}

/// A verified-ready gateway.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub steps: Vec<Step>,
    /// The whole procedure, from its start to verified ready.
    pub took: Duration,
    pub snapshot: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// Refused before acting: nothing was done.
    #[error("refused: {0}")]
    Refused(String),
    /// A step failed.
    #[error("step {step} failed: {reason}")]
    Step { step: &'static str, reason: String },
}

/// Run §5.1 on `gateway`: snapshot, stop, force kill, clean stale locks,
/// start with `method`, verify ready.
pub fn recover(
    gateway: &GatewaySpec,
    method: &Method,
    opts: &RecoverOptions,
    snapshot: &dyn Fn() -> Option<PathBuf>,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Recovered, RecoverError> {
    let _ = (gateway, method, opts, snapshot, on_step);
    Err(RecoverError::Refused("not implemented yet".into()))
}
