//! The exporter's own `process_*` metrics, named and described as the Go and
//! Python Prometheus clients export them by default, so that dashboards made
//! for any exporter work. Read at scrape time through the [`Platform`] (on
//! Linux: one `stat`, the fd folder and the limits file of `/proc/self`; on
//! Windows: `GetProcessTimes`, `GetProcessMemoryInfo` (working set, private
//! bytes), `GetProcessHandleCount` and a Toolhelp32 snapshot, no fd limit).
//! A read that fails, or that the platform does not have, is skipped, and a
//! failure logged once, as linkerd2-proxy's process metrics do.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::{self, Labels};
use crate::names;
use crate::platform::{PartialErrors, Pid, Platform, ProcError};

/// What one scrape read; `None` where the read failed.
#[derive(Debug, Default)]
struct Sample {
    cpu_seconds: Option<f64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    virtual_bytes: Option<u64>,
    resident_bytes: Option<u64>,
    start_time_seconds: Option<f64>,
    threads: Option<u64>,
}

#[derive(Debug)]
pub struct SelfProcess {
    platform: Arc<dyn Platform>,
    /// The reads whose failure was logged already.
    logged: Mutex<HashSet<String>>,
}

impl SelfProcess {
    pub fn new(platform: Arc<dyn Platform>) -> SelfProcess {
        SelfProcess {
            platform,
            logged: Mutex::new(HashSet::new()),
        }
    }

    fn log_once(&self, what: &str, error: &dyn std::fmt::Display) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.insert(what.to_string()) {
            tracing::warn!(%error, "cannot read the exporter's own {what}; those process_* series are skipped");
        }
    }

    fn read(&self) -> Sample {
        let what = |e: &ProcError| match e {
            ProcError::Denied { what, .. } | ProcError::Other { what, .. } => *what,
            ProcError::Gone(_) => "stat",
        };
        let pid = std::process::id() as Pid;
        let mut errs = PartialErrors::default();
        let p = &*self.platform;
        let vitals = p.identity(pid).and_then(|id| p.vitals(id, &mut errs));
        for e in &errs.0 {
            self.log_once(what(e), e);
        }
        match vitals {
            Ok(v) => Sample {
                cpu_seconds: Some(v.cpu_seconds),
                open_fds: v.open_fds,
                max_fds: v.max_fds,
                virtual_bytes: Some(v.virtual_bytes),
                resident_bytes: Some(v.resident_bytes),
                start_time_seconds: Some(v.start_time_seconds),
                threads: v.threads,
            },
            Err(e) => {
                self.log_once(what(&e), &e);
                Sample::default()
            }
        }
    }
}

/// The one row of an unlabelled family, if it was read.
fn row(value: Option<f64>) -> Option<(Labels<'static, 0>, f64)> {
    value.map(|v| ([], v))
}

/// Counts as f64 for the exposition (exact below 2^53).
fn count(value: Option<u64>) -> Option<f64> {
    value.map(|v| v as f64)
}

impl Collector for SelfProcess {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.read();
        metrics::counter(
            &mut enc,
            &names::EXPORTER_PROCESS_CPU_SECONDS_TOTAL,
            "Total user and system CPU time spent in seconds.",
            row(s.cpu_seconds),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EXPORTER_PROCESS_OPEN_FDS,
            "Number of open file descriptors.",
            row(count(s.open_fds)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EXPORTER_PROCESS_MAX_FDS,
            "Maximum number of open file descriptors.",
            row(count(s.max_fds)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EXPORTER_PROCESS_VIRTUAL_MEMORY_BYTES,
            "Virtual memory size in bytes.",
            row(count(s.virtual_bytes)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EXPORTER_PROCESS_RESIDENT_MEMORY_BYTES,
            "Resident memory size in bytes.",
            row(count(s.resident_bytes)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EXPORTER_PROCESS_START_TIME_SECONDS,
            "Start time of the process since unix epoch in seconds.",
            row(s.start_time_seconds),
        )?;
        metrics::gauge(
            &mut enc,
            &names::EXPORTER_PROCESS_THREADS,
            "Number of OS threads in the process.",
            row(count(s.threads)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = crate::platform::select(crate::platform::Backend::default());
        let caps = p.caps();
        let s = SelfProcess::new(p).read();
        assert!(s.resident_bytes.unwrap() > 0);
        if cfg!(windows) {
            // Private bytes, as the Go client's process collector has them
            // on Windows: they can be fewer than the working set.
            assert!(s.virtual_bytes.unwrap() > 0);
        } else {
            assert!(s.virtual_bytes.unwrap() >= s.resident_bytes.unwrap());
        }
        // Under Wine the handle count is 0: absent.
        if !crate::platform::under_wine() {
            assert!(s.open_fds.unwrap() >= 3);
        } else {
            assert_eq!(s.open_fds, None);
        }
        // Windows has no fd limit.
        if caps.max_fds {
            assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
        } else {
            assert_eq!(s.max_fds, None);
        }
        assert!(s.threads.unwrap() >= 1);
        let now = crate::collector::unix_now();
        let start = s.start_time_seconds.unwrap();
        assert!(start > now - 3600.0 && start <= now + 1.0, "{start} {now}");
    }
}
