//! Configuration: command-line flags, an optional YAML file, and the validated
//! [`Config`] the rest of the exporter runs on.
//!
//! Flags win over the file. The `--gateway.*` flags describe the single default
//! gateway; a file that lists gateways replaces it, and mixing the two is an error.

mod address;
mod discovery;
mod duration;
mod incident;
mod paths;
mod remediation;
mod schema;
mod token;
mod yaml;

pub use address::{listen_addresses, parse_gateway_url};
pub use discovery::{discovery, Discovery, DiscoveryFile, FileSd, Fleet};
pub use duration::{de_duration, parse_duration};
pub use incident::{default_incident_dir, incident, Incident, IncidentFile};
pub use paths::{
    default_log_dir, default_state_dir, exporter_state_dir, exporter_state_dir_with, state_dir_in,
};
pub use remediation::{default_state_file, Remediation, RemediationFile, RemediationSettings};
pub use schema::{
    build, build_with_patterns, gateway_spec, log_patterns, Collectors, Config, FileConfig,
    GatewayFile, GatewaySpec, Intervals, LogPattern, Probe, BUILTIN_LOG_PATTERNS, MAX_LOG_PATTERNS,
};
pub use token::{read_token_file, Token, TokenSource};
pub use yaml::{parse_file, parse_yaml, read_file, read_text, MAX_CONFIG_BYTES, MAX_NESTING};

/// The gateway's default port and URL.
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:18789";
/// The gateway's process title; Linux keeps its first 15 bytes as `comm`.
pub const DEFAULT_PROCESS_TITLE: &str = "openclaw-gateway";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}:{line}:{column}: {reason}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    ParseNoLocation { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}
