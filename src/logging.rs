//! The exporter's own log lines, one event a line on stderr (or appended to
//! `--log.file`), in the formats Prometheus exporters write: logfmt
//! (`--log.format logfmt`, the default)
//!
//! ```text
//! time=2026-11-29T08:00:00.123456Z level=info msg="listening on http://[::]:9465" version=0.1.0
//! ```
//!
//! or JSON with the same keys (`{"time":"…","level":"info","msg":"…",…}`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::Path;

use anyhow::Context;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Opens `--log.file` for appending, making its folder first if missing.
/// Each line is one write, so lines from one run never interleave and a
/// rotation by copy and truncate loses none.
pub fn open_file(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!("cannot create the folder {} for --log.file", dir.display())
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open --log.file {}", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Logfmt,
    Json,
}

/// Formats each event as one line in `Format`; spans are not shown.
#[derive(Debug, Clone, Copy)]
pub struct Formatter(pub Format);

impl<S, N> FormatEvent<S, N> for Formatter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = level_name(*event.metadata().level());
        writeln!(w, "{}", render(self.0, &time, level, &fields.0))
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// One line: `time`, `level`, `msg` (tracing's `message` field), then the
/// event's other fields in the order they were given.
pub fn render(format: Format, time: &str, level: &str, fields: &[(&str, Value)]) -> String {
    let msg = fields.iter().find(|(k, _)| *k == "message");
    let head = [
        ("time", Value::from(time)),
        ("level", Value::from(level)),
        ("msg", msg.map_or(Value::from(""), |(_, v)| v.clone())),
    ];
    let rest = fields.iter().filter(|(k, _)| *k != "message").cloned();
    let all = head.into_iter().chain(rest);
    match format {
        Format::Logfmt => all
            .map(|(k, v)| format!("{k}={}", logfmt_value(&v)))
            .collect::<Vec<_>>()
            .join(" "),
        Format::Json => {
            let pairs: Vec<String> = all
                .map(|(k, v)| format!("{}:{v}", Value::from(k)))
                .collect();
            format!("{{{}}}", pairs.join(","))
        }
    }
}

/// A string is quoted (with JSON's escapes, which go-logfmt reads) when it is
/// empty or holds a space, `=`, `"` or a control character.
fn logfmt_value(v: &Value) -> String {
    match v {
        Value::String(s)
            if s.is_empty()
                || s.chars()
                    .any(|c| c <= ' ' || c == '=' || c == '"' || c.is_control()) =>
        {
            v.to_string()
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An event's fields, numbers and booleans kept as such.
#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .push((field.name(), Value::from(format!("{value:?}"))));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push((field.name(), Value::from(value.to_string())));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::from(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = if value.is_finite() {
            Value::from(value)
        } else {
            Value::from(value.to_string())
        };
        self.0.push((field.name(), v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<(&'static str, Value)> {
        vec![
            ("gateway", Value::from("default")),
            ("message", Value::from("gateway process found")),
            ("pid", Value::from(4242)),
            ("ok", Value::from(true)),
            ("lock_dir", Value::from("/srv/my state/tmp/openclaw-*")),
            ("error", Value::from("line 1\nsaid \"no\" a=b")),
            ("empty", Value::from("")),
        ]
    }

    #[test]
    fn logfmt_quotes_only_what_needs_it() {
        let line = render(Format::Logfmt, "2026-11-29T08:00:00Z", "info", &fields());
        assert_eq!(
            line,
            "time=2026-11-29T08:00:00Z level=info msg=\"gateway process found\" \
             gateway=default pid=4242 ok=true lock_dir=\"/srv/my state/tmp/openclaw-*\" \
             error=\"line 1\\nsaid \\\"no\\\" a=b\" empty=\"\""
        );
    }

    #[test]
    fn json_has_the_same_keys_and_types() {
        let line = render(Format::Json, "2026-11-29T08:00:00Z", "warn", &fields());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-11-29T08:00:00Z");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "gateway process found");
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["ok"], true);
        assert_eq!(v["error"], "line 1\nsaid \"no\" a=b");
        assert!(v.get("message").is_none(), "{line}");
        assert!(
            line.starts_with("{\"time\":"),
            "keys keep their order: {line}"
        );
    }

    #[test]
    fn an_event_without_a_message_has_an_empty_msg() {
        let line = render(Format::Logfmt, "t", "debug", &[("n", Value::from(1))]);
        assert_eq!(line, "time=t level=debug msg=\"\" n=1");
    }
}
