//! Configuration: command-line flags, an optional YAML file, and the validated
//! [`Config`] the rest of the exporter runs on.
//!
//! Flags win over the file. The `--gateway.*` flags describe the single default
//! gateway; a file that lists gateways replaces it, and mixing the two is an error.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The gateway's default port and URL.
pub const DEFAULT_GATEWAY_PORT: u16 = 18789;
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:18789";
/// The gateway's process title; Linux keeps its first 15 bytes as `comm`.
pub const DEFAULT_PROCESS_TITLE: &str = "openclaw-gateway";
/// Where the gateway writes `openclaw-YYYY-MM-DD.log`.
pub const DEFAULT_LOG_DIR: &str = "/tmp/openclaw";

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
}

/// A gateway token. It is a secret: `Debug` does not show it, and it has no
/// `Display`, so it cannot end up in a log line or a label by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// `None` for a blank token. Surrounding whitespace (a file's trailing
    /// newline) is not part of it.
    pub fn new(text: &str) -> Option<Token> {
        let t = text.trim();
        (!t.is_empty()).then(|| Token(t.to_string()))
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Largest token file read; a gateway token is a few dozen bytes.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// Read a token file. Errors name the file, never its content. Like a pid
/// file, it is opened without blocking and must be a regular file (symlinks
/// followed): a FIFO put there would block the reader until a writer came.
pub fn read_token_file(path: &Path) -> Result<Token, ConfigError> {
    let invalid = |why: String| {
        ConfigError::Invalid(format!("cannot read token file {}: {why}", path.display()))
    };
    let mut text = String::new();
    crate::lockfile::open_regular(path, true)
        .and_then(|f| f.take(MAX_TOKEN_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| invalid(e.to_string()))?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(invalid(format!("larger than {MAX_TOKEN_FILE_BYTES} bytes")));
    }
    Token::new(&text)
        .ok_or_else(|| ConfigError::Invalid(format!("token file {} is empty", path.display())))
}

/// The token a gateway's readiness probe sends. A token file is re-read
/// whenever it changes (as Prometheus re-reads its credentials files), so a
/// rotated token needs no restart. If the file turns unreadable or empty, the
/// last token stays in use and a warning is logged once.
#[derive(Debug)]
pub struct TokenSource {
    token: Option<Token>,
    file: Option<TokenFile>,
}

/// A token file, and what it looked like when the token was read from it.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    read_from: Option<crate::stamp::Stamp>,
    failing: bool,
}

impl TokenSource {
    pub fn new(spec: &GatewaySpec) -> TokenSource {
        TokenSource {
            token: spec.token.clone(),
            file: spec.token_file.clone().map(|path| TokenFile {
                path,
                read_from: None,
                failing: false,
            }),
        }
    }

    /// The token to send now: one `stat` of the token file, and a read only
    /// when it changed.
    pub fn current(&mut self, gateway: &str) -> Option<&Token> {
        if let Some(file) = &mut self.file {
            file.refresh(&mut self.token, gateway);
        }
        self.token.as_ref()
    }
}

impl TokenFile {
    fn refresh(&mut self, token: &mut Option<Token>, gateway: &str) {
        // Stat first: a write that lands during the read changes the stamp
        // again, and the next call reads once more. Symlinks are followed: a
        // mounted Kubernetes secret is one.
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| crate::stamp::of(&m));
        if stamp.is_some() && stamp == self.read_from {
            return;
        }
        match read_token_file(&self.path) {
            Ok(new) => {
                if token.as_ref() != Some(&new) {
                    tracing::info!(gateway, file = %self.path.display(), "the token file changed; sending its new token");
                }
                *token = Some(new);
                self.read_from = stamp;
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(gateway, error = %e, "still sending the last token");
                }
                self.failing = true;
            }
        }
    }
}

/// One watched gateway, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySpec {
    /// The `gateway` label value.
    pub name: String,
    /// Base URL, without a trailing slash.
    pub url: String,
    /// Host and port taken from the URL.
    pub host: String,
    pub port: u16,
    pub state_dir: PathBuf,
    pub pid: Option<u32>,
    pub pid_file: Option<PathBuf>,
    pub process_title: String,
    /// Bearer token for /readyz, from the token file or `OPENCLAW_GATEWAY_TOKEN`.
    pub token: Option<Token>,
    /// Where the token came from, if a file: [`TokenSource`] re-reads it.
    pub token_file: Option<PathBuf>,
    pub memory_limit: Option<u64>,
    pub log_path: PathBuf,
}

impl GatewaySpec {
    /// The name the OS shows for a process with this title (Linux: its
    /// `comm`): [`crate::platform::title_key`].
    pub fn comm(&self) -> &str {
        crate::platform::title_key(&self.process_title)
    }
}

/// A log pattern to count, by name.
#[derive(Debug, Clone)]
pub struct LogPattern {
    pub name: String,
    pub regex: regex::Regex,
}

/// The field report's log patterns ("5.2 日志分析要点").
pub const BUILTIN_LOG_PATTERNS: [(&str, &str); 3] = [
    (
        "event_loop_delay",
        r"(?i)event loop delay \d+(\.\d+)?\s*ms exceeds threshold",
    ),
    ("memory_limit", r"(?i)process memory \S+ exceeds limit"),
    ("active_connections", r"(?i)\d+ active connections detected"),
];

/// Everything the exporter runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub intervals: Intervals,
    pub probe: Probe,
    pub collectors: Collectors,
    pub gateways: Vec<GatewaySpec>,
    pub log_patterns: Vec<LogPattern>,
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
                "log_patterns: {name:?} is already defined (built-in names: event_loop_delay, memory_limit, active_connections)"
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

/// Parse a duration such as `500ms`, `1s`, `2m`, `1h`, or `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration {s:?}: expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "" => {
                return Err(format!(
                    "invalid duration {s:?}: missing unit (ms, s, m, h)"
                ))
            }
            u => return Err(format!("invalid duration {s:?}: unknown unit {u:?}")),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A duration (zero allowed), for `#[serde(deserialize_with)]`.
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationVisitor { positive: false })
}

/// A sampling interval: a duration above zero.
fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationVisitor { positive: true })
}

/// Parses inside the scalar, so that errors point at its line.
struct DurationVisitor {
    positive: bool,
}

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as 500ms, 10s, 1m30s")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        let d = parse_duration(v).map_err(E::custom)?;
        if self.positive && d.is_zero() {
            return Err(E::custom(format!(
                "interval {v:?} must be greater than zero"
            )));
        }
        Ok(d)
    }
}

/// Parse the YAML config file's text. `path` only labels errors.
pub fn parse_file(path: &str, text: &str) -> Result<FileConfig, ConfigError> {
    parse_yaml(path, text)
}

/// Parse a YAML file's text into `T`; errors carry `path:line:column`. An
/// empty file (or one of only comments) is `T::default()`.
pub fn parse_yaml<T>(path: &str, text: &str) -> Result<T, ConfigError>
where
    T: serde::de::DeserializeOwned + Default,
{
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(T::default());
    }
    check_nesting(path, text)?;
    serde_yaml::from_str(text).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(loc) => ConfigError::Parse {
                path: path.to_string(),
                line: loc.line(),
                column: loc.column(),
                reason: strip_location(&msg, loc.line(), loc.column()),
            },
            None => ConfigError::ParseNoLocation {
                path: path.to_string(),
                reason: msg,
            },
        }
    })
}

/// Deeper flow nesting (`[[[[...`) than any config needs. libyaml, under
/// serde_yaml, takes time quadratic in it: 20 000 levels take seconds.
pub const MAX_NESTING: usize = 64;

/// Refuse brackets nested deeper than [`MAX_NESTING`], counted everywhere
/// (quoted strings and comments included: no real config comes close).
fn check_nesting(path: &str, text: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        for (j, c) in line.chars().enumerate() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_NESTING {
                return Err(ConfigError::Parse {
                    path: path.to_string(),
                    line: i + 1,
                    column: j + 1,
                    reason: format!("brackets nested deeper than {MAX_NESTING} levels"),
                });
            }
        }
    }
    Ok(())
}

/// serde_yaml appends " at line L column C" to its messages; we print the
/// location in front instead. Other locations in the message (where a
/// quoted string began, say) stay.
fn strip_location(msg: &str, line: usize, column: usize) -> String {
    let suffix = format!(" at line {line} column {column}");
    msg.strip_suffix(&suffix).unwrap_or(msg).to_string()
}

pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = read_text(path)?;
    parse_file(&path.display().to_string(), &text)
}

/// Config files are small; anything larger is a mistake (or `/dev/zero`).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Read a config file as UTF-8 text, at most [`MAX_CONFIG_BYTES`].
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_err = |error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(read_err(std::io::Error::other(format!(
            "larger than {MAX_CONFIG_BYTES} bytes"
        ))));
    }
    String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

/// The state dir of a gateway that names none: `$OPENCLAW_STATE_DIR`, else `~/.openclaw`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OPENCLAW_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".openclaw")
}

/// Split `http://host:port/path` into host and port. Only http and https.
pub fn parse_gateway_url(url: &str) -> Result<(String, u16), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("gateway url {url:?}: expected http://host:port"))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(format!("gateway url {url:?}: scheme must be http or https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((_, host)) = authority.rsplit_once('@') {
        // Never echo the credentials.
        return Err(format!(
            "gateway url \"{scheme}://***@{host}\": credentials in the url are not supported"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("gateway url {url:?}: unterminated IPv6 address"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("gateway url {url:?}: missing host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("gateway url {url:?}: invalid port {p:?}"))?,
    };
    Ok((host, port))
}

/// The `gateway` label of a gateway that names none: `host:port`.
fn default_name(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
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
    let (host, port) = parse_gateway_url(&url).map_err(ConfigError::Invalid)?;
    let name = g.name.unwrap_or_else(|| default_name(&host, port));
    if name.is_empty() {
        return Err(ConfigError::Invalid(
            "gateway name must not be empty".into(),
        ));
    }
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
    Ok(GatewaySpec {
        memory_limit,
        log_path: g.log_path.unwrap_or_else(|| PathBuf::from(DEFAULT_LOG_DIR)),
        name,
        url,
        host,
        port,
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
        log_patterns: log_patterns(extra_patterns)?,
    })
}

/// Resolve a node_exporter style listen address: `:9789` means every interface.
pub fn listen_addresses(spec: &str) -> Result<Vec<SocketAddr>, String> {
    if let Some(port) = spec.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid listen address {spec:?}: bad port"))?;
        return Ok(vec![
            SocketAddr::from(([0u16; 8], port)),
            SocketAddr::from(([0u8; 4], port)),
        ]);
    }
    spec.parse::<SocketAddr>()
        .map(|a| vec![a])
        .map_err(|_| format!("invalid listen address {spec:?}: expected host:port or :port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["", "10", "s", "1x", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn unknown_key_reports_line_and_reason() {
        let text = "collect:\n  memory: 30s\ngateways:\n  - name: a\n    urll: http://x:1\n";
        let err = parse_file("cfg.yml", text).unwrap_err().to_string();
        assert!(err.starts_with("cfg.yml:5:"), "{err}");
        assert!(err.contains("unknown field `urll`"), "{err}");
    }

    #[test]
    fn bad_duration_reports_line() {
        let err = parse_file("c.yml", "collect:\n  memory: 30 seconds\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yml:2:"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
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
        assert_eq!(g.comm(), "openclaw-gatewa");
    }

    #[test]
    fn urls() {
        assert_eq!(parse_gateway_url("http://h"), Ok(("h".into(), 80)));
        assert!(parse_gateway_url("ftp://h:1").is_err());
        assert!(parse_gateway_url("http://h:0").is_err());
        let err = parse_gateway_url("http://u:s3cret@h:1/x").unwrap_err();
        assert!(
            !err.contains("s3cret") && err.contains("http://***@h:1"),
            "{err}"
        );
        assert!(parse_gateway_url("127.0.0.1:18789").is_err());
    }

    #[test]
    fn listen() {
        assert_eq!(listen_addresses(":9789").unwrap().len(), 2);
        assert_eq!(
            listen_addresses("127.0.0.1:1").unwrap(),
            vec!["127.0.0.1:1".parse().unwrap()]
        );
        assert!(listen_addresses("nope").is_err());
    }

    #[test]
    fn probe_settings_from_the_file() {
        let text = "collect:\n  event_loop: 500ms\nprobe:\n  timeout: 2s\n  readiness_interval: 1s\n  hang_after: 3\n  event_loop_floor: 0ms\n";
        let f = parse_file("c.yml", text).unwrap();
        let cfg = build(f.collect, f.gateways)
            .unwrap()
            .with_probe(f.probe)
            .unwrap();
        assert_eq!(cfg.probe.timeout, Duration::from_secs(2));
        assert_eq!(cfg.probe.hang_after, 3);
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

    /// Why a gateway whose token file is `path` is refused.
    fn token_file_error(path: PathBuf) -> String {
        let g = GatewayFile {
            token_file: Some(path),
            ..Default::default()
        };
        build(Intervals::default(), vec![g])
            .unwrap_err()
            .to_string()
    }

    fn mkfifo(path: &Path) {
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
    }

    #[test]
    fn tokens_come_from_files_and_never_show() {
        let dir = std::env::temp_dir().join(format!("ocgx-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tok");
        std::fs::write(&file, "  s3cr3t-value \n").unwrap();
        let text = format!(
            "gateways:\n  - name: a\n    token_file: {}\n  - name: b\n",
            file.display()
        );
        let f = parse_file("c.yml", &text).unwrap();
        let cfg = build(f.collect, f.gateways).unwrap();
        assert_eq!(
            cfg.gateways[0].token.as_ref().map(Token::expose),
            Some("s3cr3t-value")
        );
        assert_eq!(cfg.gateways[1].token, None);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("Token(<redacted>)"));
        // `token:` itself is not a config key: secrets stay out of the file.
        assert!(parse_file("c.yml", "gateways:\n  - token: x\n").is_err());

        std::fs::write(&file, " \n").unwrap();
        let err = token_file_error(file.clone());
        assert!(err.contains("is empty") && err.contains("tok"), "{err}");
        let missing = dir.join("missing");
        let err = token_file_error(missing);
        assert!(
            err.contains("cannot read token file") && err.contains("missing"),
            "{err}"
        );
        // At startup, a FIFO is an error at once, not a hang.
        let fifo = dir.join("fifo");
        mkfifo(&fifo);
        let err = token_file_error(fifo);
        assert!(err.contains("not a regular file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(Token::new(" \t\n"), None);
    }

    #[test]
    fn a_token_file_is_re_read_when_it_changes_and_a_bad_one_keeps_the_last_token() {
        let dir = std::env::temp_dir().join(format!("ocgx-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tok");
        std::fs::write(&file, "first\n").unwrap();
        let f = GatewayFile {
            token_file: Some(file.clone()),
            ..Default::default()
        };
        let cfg = build(Intervals::default(), vec![f]).unwrap();
        let mut source = TokenSource::new(&cfg.gateways[0]);
        let mut now = || source.current("g").map(|t| t.expose().to_string());
        assert_eq!(now().as_deref(), Some("first"));

        // Rewritten in place (lengths differ: mtime alone may not move
        // within one clock tick).
        std::fs::write(&file, "second-token\n").unwrap();
        assert_eq!(now().as_deref(), Some("second-token"));
        // Replaced by a rename, as Kubernetes updates a mounted secret.
        let next = dir.join("tok.new");
        std::fs::write(&next, "third\n").unwrap();
        std::fs::rename(&next, &file).unwrap();
        assert_eq!(now().as_deref(), Some("third"));
        // Gone, then blank: the last token stays.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(now().as_deref(), Some("third"));
        std::fs::write(&file, " \n").unwrap();
        assert_eq!(now().as_deref(), Some("third"));
        // A FIFO in its place would block a plain read until a writer came:
        // refused at once, and the last token stays.
        std::fs::remove_file(&file).unwrap();
        mkfifo(&file);
        assert_eq!(now().as_deref(), Some("third"));
        std::fs::remove_file(&file).unwrap();
        // Back: read again.
        std::fs::write(&file, "fourth-one\n").unwrap();
        assert_eq!(now().as_deref(), Some("fourth-one"));
        // Too large to be a token: refused, the last token stays.
        std::fs::write(&file, "x".repeat(MAX_TOKEN_FILE_BYTES as usize + 1)).unwrap();
        assert_eq!(now().as_deref(), Some("fourth-one"));
        let _ = std::fs::remove_dir_all(&dir);

        // A token from the environment has no file to re-read.
        let env = GatewayFile {
            token: Token::new("from-env"),
            ..Default::default()
        };
        let cfg = build(Intervals::default(), vec![env]).unwrap();
        let mut source = TokenSource::new(&cfg.gateways[0]);
        assert_eq!(source.current("g").map(Token::expose), Some("from-env"));
    }
}
