//! openclaw-gateway-exporter: watches OpenClaw gateways from the outside and
//! exposes what it sees as Prometheus metrics.

// Unsafe code is denied everywhere but the OS bindings that need FFI: the
// Windows and macOS backends (`platform::windows`, `platform::macos`), each
// of which allows it in one module of small, commented calls.
#![deny(unsafe_code)]

pub mod check;
pub mod collector;
pub mod config;
pub mod diagnose;
pub mod discovery;
pub mod exporter;
pub mod exposition;
pub mod http;
pub mod incident;
pub mod lockfile;
pub mod logging;
pub mod logtail;
pub mod memory_limit;
pub mod metrics;
pub mod names;
pub mod os;
pub mod outbound;
pub mod platform;
pub mod probe;
pub mod process_view;
pub mod remediation;
pub mod sd;
pub mod self_process;
pub mod stamp;
pub mod tcp;
pub mod thresholds;
pub mod web;

// The old paths of the modules that moved to `platform::linux`, for tests and
// benches.
#[cfg(target_os = "linux")]
pub use platform::linux::{proc, proc_net, sock_diag};
