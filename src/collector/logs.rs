//! The gateway's log: messages by level and the field report's log patterns,
//! followed every `--collect.logs.interval` (default 10s).
//!
//! Lines are JSON objects with `time`, `message` and `_meta.logLevelName`.
//! Lines that are not are counted as parse errors; nothing stops.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use serde::Deserialize;

use super::{SampleError, Sampler};
use crate::config::LogPattern;
use crate::logtail::LogFollower;
use crate::metrics;
use crate::names;

/// Bytes read per sample at most; a burst is caught up on later samples.
const BUDGET: u64 = 32 * 1024 * 1024;
/// WARN and ERROR lines kept for `diagnose`.
const RECENT: usize = 20;

pub const LEVELS: [&str; 7] = ["trace", "debug", "info", "warn", "error", "fatal", "other"];

#[derive(Debug, Deserialize)]
struct Line {
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    message: Option<serde_json::Value>,
    #[serde(default, rename = "_meta")]
    meta: Option<Meta>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    #[serde(default, rename = "logLevelName")]
    level: Option<serde_json::Value>,
}

/// A WARN or ERROR line, for `diagnose`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentLine {
    pub time: String,
    pub level: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct LogCounts {
    /// Per entry of [`LEVELS`].
    pub levels: [u64; LEVELS.len()],
    /// Per configured pattern, in order.
    pub patterns: Vec<u64>,
    pub parse_errors: u64,
    pub file_present: bool,
}

#[derive(Debug)]
pub struct LogSlot {
    pub gateway: String,
    pub patterns: Arc<[LogPattern]>,
    pub counts: Mutex<LogCounts>,
    pub recent: Mutex<VecDeque<RecentLine>>,
}

impl LogSlot {
    pub fn new(gateway: String, patterns: Arc<[LogPattern]>) -> LogSlot {
        let counts = LogCounts {
            patterns: vec![0; patterns.len()],
            ..Default::default()
        };
        LogSlot {
            gateway,
            patterns,
            counts: Mutex::new(counts),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// The last WARN, ERROR and FATAL lines, oldest first.
    pub fn recent(&self) -> Vec<RecentLine> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
    }

    pub fn counts(&self) -> LogCounts {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Count one line.
    fn count(&self, counts: &mut LogCounts, raw: &[u8]) {
        let Ok(line) = serde_json::from_slice::<Line>(raw) else {
            counts.parse_errors += 1;
            return;
        };
        let level_name = line
            .meta
            .and_then(|m| m.level)
            .and_then(|l| l.as_str().map(str::to_ascii_lowercase));
        let level = LEVELS
            .iter()
            .position(|l| level_name.as_deref() == Some(*l))
            .unwrap_or(LEVELS.len() - 1);
        counts.levels[level] += 1;
        let message = match line.message {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        for (i, p) in self.patterns.iter().enumerate() {
            if p.regex.is_match(&message) {
                counts.patterns[i] += 1;
            }
        }
        if matches!(LEVELS[level], "warn" | "error" | "fatal") {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            let mut message = message;
            let mut end = message.len().min(500);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            recent.push_back(RecentLine {
                time: line.time.unwrap_or_default(),
                level: LEVELS[level],
                message,
            });
        }
    }
}

/// The WARN/ERROR lines among the last `bytes` of the current log file, for a
/// one-shot `diagnose` that has not followed the log.
pub fn tail_recent(path: &std::path::Path, bytes: u64) -> Vec<RecentLine> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(file) = crate::logtail::current_file(path) else {
        return Vec::new();
    };
    let Ok(mut f) = std::fs::File::open(file) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(bytes);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.take(bytes).read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let slot = LogSlot::new(String::new(), Arc::from([]));
    let mut counts = LogCounts::default();
    // The first line is cut when the read started mid-file.
    let skip = usize::from(start > 0);
    for line in buf
        .split(|b| *b == b'\n')
        .skip(skip)
        .filter(|l| !l.is_empty())
    {
        slot.count(&mut counts, line);
    }
    slot.recent()
}

pub struct LogSampler {
    slot: Arc<LogSlot>,
    follower: LogFollower,
}

impl LogSampler {
    pub fn new(slot: Arc<LogSlot>, path: std::path::PathBuf) -> Self {
        LogSampler {
            slot,
            follower: LogFollower::new(path),
        }
    }
}

impl Sampler for LogSampler {
    fn name(&self) -> &'static str {
        "logs"
    }

    fn sample(&mut self) -> Result<(), SampleError> {
        let slot = self.slot.clone();
        let mut counts = slot.counts.lock().unwrap_or_else(|e| e.into_inner());
        let poll = self
            .follower
            .poll(BUDGET, |line| slot.count(&mut counts, line));
        counts.parse_errors += poll.too_long;
        counts.file_present = poll.file_present;
        Ok(())
    }
}

#[derive(Debug)]
pub struct LogMetrics(pub Vec<Arc<LogSlot>>);

impl Collector for LogMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all: Vec<(&str, LogCounts, &LogSlot)> = self
            .0
            .iter()
            .map(|s| (s.gateway.as_str(), s.counts(), s.as_ref()))
            .collect();
        metrics::counter(
            &mut enc,
            &names::LOG_MESSAGES_TOTAL,
            "Lines the gateway logged, by _meta.logLevelName (lower case; unknown levels are other). Followed every --collect.logs.interval.",
            all.iter().flat_map(|(gw, c, _)| {
                LEVELS
                    .iter()
                    .zip(c.levels)
                    .map(move |(l, n)| ([("gateway", *gw), ("level", *l)], n as f64))
            }),
        )?;
        metrics::counter(
            &mut enc,
            &names::LOG_PATTERN_MATCHES_TOTAL,
            "Log messages matching the built-in patterns (the field report's event_loop_delay, memory_limit, active_connections; the gateway's dependency_timeout and dependency_connect_error) and configured ones. Followed every --collect.logs.interval.",
            all.iter().flat_map(|(gw, c, slot)| {
                slot.patterns
                    .iter()
                    .zip(c.patterns.clone())
                    .map(move |(p, n)| ([("gateway", *gw), ("pattern", p.name.as_str())], n as f64))
            }),
        )?;
        metrics::counter(
            &mut enc,
            &names::LOG_PARSE_ERRORS_TOTAL,
            "Log lines that were not JSON objects or were longer than 64 KiB. Followed every --collect.logs.interval.",
            all.iter().map(|(gw, c, _)| ([("gateway", *gw)], c.parse_errors as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::LOG_FILE_PRESENT,
            "Whether the gateway's log file was found at the last follow. Followed every --collect.logs.interval.",
            all.iter().map(|(gw, c, _)| ([("gateway", *gw)], if c.file_present { 1.0 } else { 0.0 })),
        )
    }
}
