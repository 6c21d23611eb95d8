//! The config file's schema and its validation into [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::address::{default_name, parse_gateway_url};
use super::duration::{de_duration, de_interval};
use super::paths::{default_log_dir, default_state_dir};
use super::remediation::{Remediation, RemediationFile, RemediationSettings};
use super::token::{read_token_file, Token};
use super::{ConfigError, DEFAULT_GATEWAY_URL, DEFAULT_PROCESS_TITLE};

/// Intervals at which each signal group is sampled. Defaults follow the field
/// report's threshold table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Intervals {
    #[serde(deserialize_with = "de_interval")]
    pub memory: Duration,
    #[serde(deserialize_with = "de_interval")]
    pub connections: Duration,
    #[serde(deserialize_with = "de_interval")]
    pub latency: Duration,
    #[serde(deserialize_with = "de_interval")]
    pub event_loop: Duration,
    #[serde(deserialize_with = "de_interval")]
    pub errors: Duration,
    #[serde(deserialize_with = "de_interval")]
    pub logs: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            memory: Duration::from_secs(30),
            connections: Duration::from_secs(10),
            latency: Duration::from_secs(10),
            event_loop: Duration::from_secs(5),
            errors: Duration::from_secs(60),
            logs: Duration::from_secs(10),
        }
    }
}

/// How the gateway is probed over HTTP (`--probe.*`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probe {
    /// Time allowed for one probe: connect, request, answer and body.
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// How often /readyz is polled. The gateway's event-loop figures cover
    /// only about 1 s, so this must stay at or below that; the effective
    /// interval is also capped at the event-loop interval.
    #[serde(deserialize_with = "de_duration")]
    pub readiness_interval: Duration,
    /// Consecutive liveness probes that must time out or be refused, while the
    /// process is alive and its port LISTENs, before `hung` turns 1.
    pub hang_after: u32,
    /// How often the control plane is probed over WebSocket RPC (a
    /// handshake and a `health` call), when the gateway has a token.
    #[serde(deserialize_with = "de_duration")]
    pub rpc_interval: Duration,
    /// The event-loop delay an idle gateway reports because its monitor samples
    /// every 20 ms; exported so that rules can subtract it.
    #[serde(deserialize_with = "de_duration")]
    pub event_loop_floor: Duration,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            timeout: Duration::from_secs(5),
            readiness_interval: Duration::from_secs(1),
            hang_after: 2,
            rpc_interval: Duration::from_secs(15),
            event_loop_floor: Duration::from_millis(20),
        }
    }
}

/// Which collectors run: `collectors:` in the file, `--collector.<name>` and
/// `--no-collector.<name>` on the command line (flags win). All run by
/// default. A collector that is off has no series, no thread and no reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Collectors {
    /// `openclaw_gateway_process_*` and `discovery_method`; also the identity
    /// watch that keeps `process_restarts_total` right in a crash loop.
    pub process: bool,
    pub memory: bool,
    pub connections: bool,
    pub lifecycle: bool,
    pub logs: bool,
    /// The /healthz probe; `hung` needs the process collector as well.
    pub liveness: bool,
    pub readiness: bool,
}

impl Collectors {
    /// Every collector, in the order they are listed and logged.
    pub const NAMES: [&'static str; 7] = [
        "process",
        "memory",
        "connections",
        "lifecycle",
        "logs",
        "liveness",
        "readiness",
    ];

    /// The switch of the collector `name`, if there is one.
    pub fn switch(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "process" => &mut self.process,
            "memory" => &mut self.memory,
            "connections" => &mut self.connections,
            "lifecycle" => &mut self.lifecycle,
            "logs" => &mut self.logs,
            "liveness" => &mut self.liveness,
            "readiness" => &mut self.readiness,
            _ => return None,
        })
    }

    pub fn enabled(&self, name: &str) -> bool {
        let mut all = *self;
        all.switch(name).is_some_and(|on| *on)
    }
}

impl Default for Collectors {
    fn default() -> Self {
        Collectors {
            process: true,
            memory: true,
            connections: true,
            lifecycle: true,
            logs: true,
            liveness: true,
            readiness: true,
        }
    }
}

/// One gateway as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    pub name: Option<String>,
    pub url: Option<String>,
    /// The port the gateway listens on in its own network namespace, when
    /// it is not the URL's: a container's port published on another one.
    pub listen_port: Option<u16>,
    pub state_dir: Option<PathBuf>,
    pub pid: Option<u32>,
    pub pid_file: Option<PathBuf>,
    pub process_title: Option<String>,
    /// File holding the gateway token, sent to /readyz as a bearer token.
    pub token_file: Option<PathBuf>,
    /// The token itself; only from `OPENCLAW_GATEWAY_TOKEN`, never from the file.
    #[serde(skip)]
    pub token: Option<Token>,
    /// The memory limit that usage is measured against, e.g. `1GiB`.
    pub memory_limit: Option<String>,
    /// The gateway's log: a file, or a folder of `openclaw-YYYY-MM-DD.log`.
    pub log_path: Option<PathBuf>,
    /// Watchdog mode: restart it when hung (opt-in).
    pub remediation: Option<RemediationFile>,
}

/// The YAML config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub collect: Intervals,
    #[serde(default)]
    pub probe: Probe,
    #[serde(default)]
    pub collectors: Collectors,
    #[serde(default, deserialize_with = "de_gateways")]
    pub gateways: Vec<GatewayFile>,
    /// Extra log patterns to count, name -> regular expression.
    #[serde(default)]
    pub log_patterns: std::collections::BTreeMap<String, String>,
    /// Gateways learnt while running: [`super::discovery`].
    #[serde(default)]
    pub discovery: super::discovery::DiscoveryFile,
    /// Incident snapshots: [`super::incident`].
    #[serde(default)]
    pub incident: super::incident::IncidentFile,
    /// The watchdog's settings for every gateway (its state file).
    #[serde(default)]
    pub remediation: RemediationSettings,
}

/// One watched gateway, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySpec {
    /// The `gateway` label value.
    pub name: String,
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Host taken from the URL.
    pub host: String,
    /// The port the gateway listens on, in its own network namespace: its
    /// lock files' `port` and the LISTEN socket looked for. The URL's port
    /// unless `listen_port` says otherwise (a container's published port).
    pub port: u16,
    /// The URL's port.
    pub url_port: u16,
    pub state_dir: PathBuf,
    pub pid: Option<u32>,
    pub pid_file: Option<PathBuf>,
    pub process_title: String,
    /// Bearer token for /readyz, from the token file or `OPENCLAW_GATEWAY_TOKEN`.
    pub token: Option<Token>,
    /// Where the token came from, if a file: [`super::TokenSource`] re-reads it.
    pub token_file: Option<PathBuf>,
    pub memory_limit: Option<u64>,
    pub log_path: PathBuf,
    /// Watchdog mode; `None`: never acted on.
    pub remediation: Option<Remediation>,
}

impl GatewaySpec {
    /// The name the OS shows for a process with this title (Linux: its
    /// `comm`): [`crate::platform::title_key`].
    pub fn comm(&self) -> &str {
        crate::platform::title_key(&self.process_title)
    }

    /// Whether the gateway is reached through a port other than the one it
    /// listens on: a container's published port. Its LISTEN socket is then
    /// in a network namespace of its own, where every other cell listens on
    /// the same port, so only its pid, pid file and lock files identify it.
    pub fn published(&self) -> bool {
        self.port != self.url_port
    }
}

/// A log pattern to count, by name.
#[derive(Debug, Clone)]
pub struct LogPattern {
    pub name: String,
    pub regex: regex::Regex,
}

/// The field report's log patterns ("5.2 日志分析要点"), and the gateway's
/// own lines for a dependency (a model provider, a chat channel) that times
/// out or cannot be reached, as OpenClaw 2026.9.6 writes them (its `dist/`):
///
/// - `dependency_timeout`: `fetch timeout reached; aborting operation`, the
///   guard every outbound fetch goes through when its timeout fires
///   (`abortDueToTimeout`, fetch-timeout-BOG6Do5a.mjs); and a model call
///   that failed on a socket-level timeout, `[model-fetch] error provider=…
///   causeCode=ETIMEDOUT|UND_ERR_*_TIMEOUT …`
///   (provider-transport-fetch-DnNw-XtJ.mjs, its fields from
///   `summarizeProviderTransportError`, provider-http-errors-CTY_-ABT.mjs).
///   A guard timeout of a model call logs the first line, and the second
///   with `name=TimeoutError causeCode=undefined`, which is not counted
///   again.
/// - `dependency_connect_error`: a model call whose connection was refused,
///   reset, or whose host did not resolve or could not be reached (the same
///   `[model-fetch] error` line), and a channel that failed to start on such
///   an error, `[<channel>] channel startup failed: …`
///   (server-channels-D1JRZ19m.mjs).
pub const BUILTIN_LOG_PATTERNS: [(&str, &str); 5] = [
    (
        "event_loop_delay",
        r"(?i)event loop delay \d+(\.\d+)?\s*ms exceeds threshold",
    ),
    ("memory_limit", r"(?i)process memory \S+ exceeds limit"),
    ("active_connections", r"(?i)\d+ active connections detected"),
    (
        "dependency_timeout",
        r"fetch timeout reached; aborting operation|\[model-fetch\] error .*causeCode=(ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT)\b",
    ),
    (
        "dependency_connect_error",
        r"\[model-fetch\] error .*causeCode=(ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE|UND_ERR_SOCKET)\b|channel startup failed: .*(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|fetch failed)",
    ),
];

/// Everything the exporter runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub intervals: Intervals,
    pub probe: Probe,
    pub collectors: Collectors,
    pub gateways: Vec<GatewaySpec>,
    /// Compiled once, shared by every gateway's log slot: a cloned regex
    /// carries a cache pool of its own.
    pub log_patterns: std::sync::Arc<[LogPattern]>,
    /// Sources of more gateways while running; off by default.
    pub discovery: super::discovery::Discovery,
    /// Incident snapshots.
    pub incident: super::incident::Incident,
    /// Where the watchdog keeps its state (used only when a gateway has a
    /// `remediation:` block).
    pub remediation_state_file: PathBuf,
}

/// Configured log patterns, at most.
pub const MAX_LOG_PATTERNS: usize = 100;

/// The built-in log patterns plus the configured ones. Names are label
/// values: lower-case letters, digits and underscores.
pub fn log_patterns(
    extra: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<LogPattern>, ConfigError> {
    let builtin = BUILTIN_LOG_PATTERNS
        .iter()
        .map(|(n, r)| (n.to_string(), r.to_string()));
    if extra.len() > MAX_LOG_PATTERNS {
        return Err(ConfigError::Invalid(format!(
            "log_patterns: {} patterns; at most {MAX_LOG_PATTERNS} (every log line is matched against each)",
            extra.len()
        )));
    }
    let mut out: Vec<LogPattern> = Vec::new();
    for (name, re) in builtin.chain(extra.iter().map(|(n, r)| (n.clone(), r.clone()))) {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(ConfigError::Invalid(format!(
                "log_patterns: name {name:?} must be lower-case letters, digits and underscores"
            )));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(ConfigError::Invalid(format!(
                "log_patterns: {name:?} is already defined (built-in names: event_loop_delay, memory_limit, active_connections, dependency_timeout, dependency_connect_error)"
            )));
        }
        let regex = regex::RegexBuilder::new(&re)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| ConfigError::Invalid(format!("log_patterns: {name}: {e}")))?;
        out.push(LogPattern { name, regex });
    }
    Ok(out)
}

impl Config {
    /// The same config with other probe settings, validated.
    pub fn with_probe(mut self, probe: Probe) -> Result<Config, ConfigError> {
        for (name, d) in [
            ("timeout", probe.timeout),
            ("readiness-interval", probe.readiness_interval),
            ("rpc-interval", probe.rpc_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "probe.{name} must be greater than zero"
                )));
            }
        }
        if probe.hang_after == 0 {
            return Err(ConfigError::Invalid(
                "probe.hang-after must be at least 1".into(),
            ));
        }
        self.probe = probe;
        Ok(self)
    }

    /// How often /readyz is polled: the readiness interval, but never less
    /// often than the event-loop interval.
    pub fn readiness_poll(&self) -> Duration {
        self.probe.readiness_interval.min(self.intervals.event_loop)
    }
}

/// The file's gateway list, with duplicate names (given, or the default
/// `host:port`) refused where the second one is written.
fn de_gateways<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<GatewayFile>, D::Error> {
    d.deserialize_seq(Gateways)
}

struct Gateways;

impl<'de> serde::de::Visitor<'de> for Gateways {
    type Value = Vec<GatewayFile>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of gateways")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut names = std::collections::HashSet::new();
        let mut out = Vec::new();
        while let Some(g) = seq.next_element_seed(UniqueGateway(&mut names))? {
            out.push(g);
        }
        Ok(out)
    }
}

/// One gateway whose name must not be in the set yet. The check runs
/// inside the gateway's own map, so the error points at it.
struct UniqueGateway<'a>(&'a mut std::collections::HashSet<String>);

impl<'de> serde::de::DeserializeSeed<'de> for UniqueGateway<'_> {
    type Value = GatewayFile;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<GatewayFile, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueGateway<'_> {
    type Value = GatewayFile;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a gateway (name, url, state_dir, ...)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<GatewayFile, A::Error> {
        use serde::de::Error;
        let g = GatewayFile::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        let url = g.url.as_deref().unwrap_or(DEFAULT_GATEWAY_URL);
        let (host, port) =
            parse_gateway_url(url.trim_end_matches('/')).map_err(A::Error::custom)?;
        if let Some(limit) = &g.memory_limit {
            crate::memory_limit::parse_size(limit)
                .map_err(|e| A::Error::custom(format!("memory_limit: {e}")))?;
        }
        let name = g.name.clone().unwrap_or_else(|| default_name(&host, port));
        if !self.0.insert(name.clone()) {
            return Err(A::Error::custom(format!(
                "duplicate gateway name {name:?}: give each gateway a unique name"
            )));
        }
        Ok(g)
    }
}

/// Turn one file or flag gateway into a validated spec.
pub fn gateway_spec(g: GatewayFile) -> Result<GatewaySpec, ConfigError> {
    let url = g
        .url
        .unwrap_or_else(|| DEFAULT_GATEWAY_URL.to_string())
        .trim_end_matches('/')
        .to_string();
    let (host, url_port) = parse_gateway_url(&url).map_err(ConfigError::Invalid)?;
    let name = g.name.unwrap_or_else(|| default_name(&host, url_port));
    if name.is_empty() {
        return Err(ConfigError::Invalid(
            "gateway name must not be empty".into(),
        ));
    }
    if g.listen_port == Some(0) {
        return Err(ConfigError::Invalid(format!(
            "gateway {name:?}: listen_port must be 1-65535"
        )));
    }
    let port = g.listen_port.unwrap_or(url_port);
    let process_title = g
        .process_title
        .unwrap_or_else(|| DEFAULT_PROCESS_TITLE.to_string());
    if process_title.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "gateway {name:?}: process_title must not be empty"
        )));
    }
    let token = match &g.token_file {
        Some(path) => Some(
            read_token_file(path)
                .map_err(|e| ConfigError::Invalid(format!("gateway {name:?}: {e}")))?,
        ),
        None => g.token,
    };
    let memory_limit = g
        .memory_limit
        .as_deref()
        .map(crate::memory_limit::parse_size)
        .transpose()
        .map_err(|e| ConfigError::Invalid(format!("gateway {name:?}: memory_limit: {e}")))?;
    let remediation = g.remediation.map(|r| r.validate(&name)).transpose()?;
    Ok(GatewaySpec {
        remediation,
        memory_limit,
        log_path: g.log_path.unwrap_or_else(default_log_dir),
        name,
        url,
        host,
        port,
        url_port,
        state_dir: g.state_dir.unwrap_or_else(default_state_dir),
        pid: g.pid,
        pid_file: g.pid_file,
        process_title,
        token,
        token_file: g.token_file,
    })
}

/// Validate a whole config: every interval positive, gateway names unique.
pub fn build(intervals: Intervals, gateways: Vec<GatewayFile>) -> Result<Config, ConfigError> {
    build_with_patterns(intervals, gateways, &Default::default())
}

/// [`build`], with extra log patterns.
pub fn build_with_patterns(
    intervals: Intervals,
    gateways: Vec<GatewayFile>,
    extra_patterns: &std::collections::BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    for (name, d) in [
        ("memory", intervals.memory),
        ("connections", intervals.connections),
        ("latency", intervals.latency),
        ("event-loop", intervals.event_loop),
        ("errors", intervals.errors),
        ("logs", intervals.logs),
    ] {
        if d.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "collect.{name} interval must be greater than zero"
            )));
        }
    }
    let gateways = if gateways.is_empty() {
        vec![GatewayFile::default()]
    } else {
        gateways
    };
    let mut specs: Vec<GatewaySpec> = Vec::with_capacity(gateways.len());
    for g in gateways {
        let spec = gateway_spec(g)?;
        if specs.iter().any(|s| s.name == spec.name) {
            return Err(ConfigError::Invalid(format!(
                "duplicate gateway name {:?}: give each gateway a unique name",
                spec.name
            )));
        }
        specs.push(spec);
    }
    Ok(Config {
        intervals,
        probe: Probe::default(),
        collectors: Collectors::default(),
        gateways: specs,
        log_patterns: log_patterns(extra_patterns)?.into(),
        discovery: Default::default(),
        incident: Default::default(),
        remediation_state_file: super::remediation::default_state_file(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_file, DEFAULT_GATEWAY_PORT};

    /// The built-in dependency patterns against the lines the gateway writes
    /// (see [`BUILTIN_LOG_PATTERNS`] for where each comes from).
    #[test]
    fn dependency_patterns_match_the_gateways_lines() {
        let patterns = log_patterns(&Default::default()).unwrap();
        let matched = |line: &str| -> Vec<&str> {
            patterns
                .iter()
                .filter(|p| p.regex.is_match(line))
                .map(|p| p.name.as_str())
                .collect()
        };
        let fetch = |cause: &str| {
            format!("[model-fetch] error provider=openai api=openai-responses model=gpt-5.4 elapsedMs=30004 name=TypeError code=undefined causeName=Error causeCode={cause} message=fetch failed")
        };
        assert_eq!(
            matched("fetch timeout reached; aborting operation"),
            ["dependency_timeout"]
        );
        for cause in [
            "ETIMEDOUT",
            "UND_ERR_CONNECT_TIMEOUT",
            "UND_ERR_HEADERS_TIMEOUT",
        ] {
            assert_eq!(matched(&fetch(cause)), ["dependency_timeout"], "{cause}");
        }
        for cause in ["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "UND_ERR_SOCKET"] {
            assert_eq!(
                matched(&fetch(cause)),
                ["dependency_connect_error"],
                "{cause}"
            );
        }
        assert_eq!(
            matched("[telegram] channel startup failed: TypeError: fetch failed"),
            ["dependency_connect_error"]
        );
        // The guard's own timeout, as the model call logs it after the guard's
        // line: counted once, by that line.
        assert!(matched("[model-fetch] error provider=openai api=openai-responses model=gpt-5.4 elapsedMs=120001 name=TimeoutError code=undefined causeName=undefined causeCode=undefined message=request timed out").is_empty());
        // An answer, and a causeCode that only starts like one.
        assert!(matched("[model-fetch] response provider=openai api=openai-responses model=gpt-5.4 status=200 elapsedMs=812 dispatcher=reused contentType=text/event-stream").is_empty());
        assert!(matched(&fetch("ECONNREFUSEDX")).is_empty());
    }

    #[test]
    fn unknown_key_reports_line_and_reason() {
        let text = "collect:\n  memory: 30s\ngateways:\n  - name: a\n    urll: http://x:1\n";
        let err = parse_file("cfg.yml", text).unwrap_err().to_string();
        assert!(err.starts_with("cfg.yml:5:"), "{err}");
        assert!(err.contains("unknown field `urll`"), "{err}");
    }

    #[test]
    fn three_gateways() {
        let text = "gateways:\n  - {name: a, url: 'http://10.0.0.1:18789'}\n  - {name: b, url: 'http://10.0.0.2:18789'}\n  - {name: c, url: 'http://[::1]:18790/'}\n";
        let f = parse_file("c.yml", text).unwrap();
        let cfg = build(f.collect, f.gateways).unwrap();
        assert_eq!(cfg.gateways.len(), 3);
        assert_eq!(cfg.gateways[2].host, "::1");
        assert_eq!(cfg.gateways[2].port, 18790);
        assert_eq!(cfg.gateways[2].url, "http://[::1]:18790");
    }

    #[test]
    fn listen_port_apart_from_the_url() {
        // A container's 18789 published on the host's 19100.
        let text = "gateways:\n  - {url: 'http://127.0.0.1:19100', listen_port: 18789}\n";
        let f = parse_file("c.yml", text).unwrap();
        let cfg = build(f.collect, f.gateways).unwrap();
        let g = &cfg.gateways[0];
        assert_eq!((g.port, g.url.as_str()), (18789, "http://127.0.0.1:19100"));
        assert_eq!(g.name, "127.0.0.1:19100");
        let text = "gateways:\n  - {listen_port: 0}\n";
        let f = parse_file("c.yml", text).unwrap();
        let err = build(f.collect, f.gateways).unwrap_err().to_string();
        assert!(err.contains("listen_port must be 1-65535"), "{err}");
        let text = "gateways:\n  - {listen_port: 70000}\n";
        assert!(parse_file("c.yml", text).is_err());
    }

    #[test]
    fn duplicate_names_rejected() {
        let text = "gateways:\n  - {name: a}\n  - {name: a, url: 'http://h:2'}\n";
        let err = parse_file("c.yml", text).unwrap_err().to_string();
        assert!(err.starts_with("c.yml:3:5: "), "{err}");
        assert!(err.contains("duplicate gateway name \"a\""), "{err}");
        // Default names (host:port) collide too.
        let text = "gateways:\n  - url: http://h:1\n  - name: other\n  - url: http://h:1/\n";
        let err = parse_file("c.yml", text).unwrap_err().to_string();
        assert!(err.starts_with("c.yml:4:5: "), "{err}");
        assert!(err.contains("duplicate gateway name \"h:1\""), "{err}");
        // Gateways from flags and code are checked by `build`.
        let g = || GatewayFile {
            name: Some("a".into()),
            ..Default::default()
        };
        let err = build(Intervals::default(), vec![g(), g()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate gateway name \"a\""), "{err}");
    }

    #[test]
    fn default_gateway() {
        let cfg = build(Intervals::default(), vec![]).unwrap();
        let g = &cfg.gateways[0];
        assert_eq!(g.name, "127.0.0.1:18789");
        assert_eq!(g.port, DEFAULT_GATEWAY_PORT);
        assert_eq!(g.process_title, "openclaw-gateway");
        // Linux shows the title as `comm`, its first 15 bytes; macOS and
        // Windows match it whole against the command line
        // (crate::platform::TITLE_IS_NAME).
        let shown = if cfg!(target_os = "linux") {
            "openclaw-gatewa"
        } else {
            "openclaw-gateway"
        };
        assert_eq!(g.comm(), shown);
    }

    #[test]
    fn probe_settings_from_the_file() {
        let text = "collect:\n  event_loop: 500ms\nprobe:\n  timeout: 2s\n  readiness_interval: 1s\n  hang_after: 3\n  rpc_interval: 20s\n  event_loop_floor: 0ms\n";
        let f = parse_file("c.yml", text).unwrap();
        let cfg = build(f.collect, f.gateways)
            .unwrap()
            .with_probe(f.probe)
            .unwrap();
        assert_eq!(cfg.probe.timeout, Duration::from_secs(2));
        assert_eq!(cfg.probe.hang_after, 3);
        assert_eq!(cfg.probe.rpc_interval, Duration::from_secs(20));
        assert_eq!(cfg.probe.event_loop_floor, Duration::ZERO);
        // Never polled less often than the event-loop window.
        assert_eq!(cfg.readiness_poll(), Duration::from_millis(500));
        let cfg = build(Intervals::default(), vec![]).unwrap();
        assert_eq!(cfg.probe, Probe::default());
        assert_eq!(cfg.readiness_poll(), Duration::from_secs(1));

        let bad = |p: Probe| build(Intervals::default(), vec![]).unwrap().with_probe(p);
        assert!(bad(Probe {
            hang_after: 0,
            ..Probe::default()
        })
        .is_err());
        assert!(bad(Probe {
            timeout: Duration::ZERO,
            ..Probe::default()
        })
        .is_err());
        assert!(bad(Probe {
            rpc_interval: Duration::ZERO,
            ..Probe::default()
        })
        .is_err());
        let err = parse_file("c.yml", "probe:\n  hang_afterr: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hang_afterr`"), "{err}");
    }

    #[test]
    fn collectors_from_the_file() {
        let f = parse_file(
            "c.yml",
            "collectors:\n  connections: false\n  logs: false\n",
        )
        .unwrap();
        let c = f.collectors;
        assert!(!c.enabled("connections") && !c.enabled("logs"));
        assert!(c.enabled("process") && c.enabled("readiness"));
        assert!(!c.enabled("nope"));
        assert_eq!(
            parse_file("c.yml", "").unwrap().collectors,
            Collectors::default()
        );
        assert!(Collectors::NAMES
            .iter()
            .all(|n| Collectors::default().enabled(n)));
        let err = parse_file("c.yml", "collectors:\n  conections: false\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yml:2:") && err.contains("unknown field `conections`"),
            "{err}"
        );
    }
}
