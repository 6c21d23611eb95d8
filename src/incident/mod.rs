//! Incident snapshots: on every transition of a gateway to hung, and on
//! demand (`openclaw-gateway-exporter snapshot`), one folder per event that
//! holds what a person needs afterwards. Secrets never go in; taking one
//! never signals or traces the gateway.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::GatewaySpec;
use crate::platform::Platform;

/// Why a snapshot could not be written at all (a partial one is `Ok`, its
/// manifest says what failed).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("incident directory {path}: {error}")]
    Dir {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Where snapshots go and how many are kept.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    pub max_count: usize,
    pub max_bytes: u64,
}

/// Takes incident snapshots. Cheap to clone; shared by the exporter's hang
/// trigger, the watchdog and the commands.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    #[allow(dead_code)]
    platform: Arc<dyn Platform>,
}

impl Snapshotter {
    pub fn new(settings: Settings, platform: Arc<dyn Platform>) -> Snapshotter {
        Snapshotter {
            inner: Arc::new(Inner { settings, platform }),
        }
    }

    /// Takes one snapshot of `gateway` now; `reason` names the event
    /// ("hung", "manual", "recover", "watchdog"). Never panics; never
    /// signals the gateway.
    pub fn take(&self, gateway: &GatewaySpec, reason: &str) -> Result<PathBuf, Error> {
        let dir = self.inner.settings.dir.join(format!(
            "{}-{}-{}",
            chrono_free_stamp(),
            gateway.name,
            reason
        ));
        std::fs::create_dir_all(&dir).map_err(|error| Error::Dir {
            path: dir.clone(),
            error,
        })?;
        Ok(dir)
    }
}

fn chrono_free_stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
