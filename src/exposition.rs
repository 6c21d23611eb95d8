//! Rendering the registry for a scrape, in the format the scraper asks for.
//!
//! prometheus-client writes OpenMetrics. Scrapers that do not accept it (curl,
//! `promtool check metrics`, older clients) get the classic text format 0.0.4,
//! negotiated from `Accept` the way client_golang does.

use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::registry::Registry;

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// Choose the format from an `Accept` header: OpenMetrics when it is accepted
/// at least as much as plain text, classic text otherwise.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let (mut om, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version = None;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "q" => q = v.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        match media.as_str() {
            "application/openmetrics-text"
                if matches!(version.as_deref(), None | Some("1.0.0") | Some("0.0.1")) =>
            {
                om = om.max(q)
            }
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    if om > 0.0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Encode the registry in the given format.
///
/// The OpenMetrics encoder writes straight into the buffer that becomes the
/// body: in the classic format through [`TextWriter`], which converts each
/// line as it is written, so no second copy of the whole exposition (tens of
/// KiB per gateway) is made. The buffer starts at the size of the last
/// render, so it is not regrown (and copied) by doubling every scrape.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let hint = &SIZE_HINT[format as usize];
    let capacity = hint.load(Ordering::Relaxed);
    let body = match format {
        Format::OpenMetrics => {
            let mut om = String::with_capacity(capacity);
            prometheus_client::encoding::text::encode(&mut om, registry)?;
            om
        }
        Format::Text => {
            let mut text = TextWriter::with_capacity(capacity);
            prometheus_client::encoding::text::encode(&mut text, registry)?;
            text.finish()
        }
    };
    // A little more than this render, for the series that come and go.
    hint.store(body.len() + body.len() / 16, Ordering::Relaxed);
    Ok(body)
}

/// The size of the last render, by [`Format`].
static SIZE_HINT: [AtomicUsize; 2] = [AtomicUsize::new(16 * 1024), AtomicUsize::new(16 * 1024)];

/// Rewrite OpenMetrics text as the classic text format: no `# EOF` or
/// `# UNIT`, counter families named with their `_total` suffix, info families
/// as gauges named `<name>_info`, and no `_created` samples.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut text = TextWriter::with_capacity(om.len());
    for line in om.lines() {
        text.out.push_str(line);
        text.end_line();
    }
    text.out
}

/// [`openmetrics_to_text`] as a [`std::fmt::Write`]: OpenMetrics text
/// written to it comes out in the classic text format. Each line is written
/// in place and rewritten, once its newline arrives, only when it has to be
/// (`# HELP`, `# TYPE`, `# UNIT`, `# EOF` and `_created` lines).
#[derive(Debug, Default)]
pub struct TextWriter {
    out: String,
    /// Where the line being written starts in `out`.
    start: usize,
    /// The text of the last `# HELP` line, until its `# TYPE` line.
    help: Option<String>,
    /// The family of the last `# TYPE` line, whose `_created` samples are
    /// dropped.
    family: Option<String>,
}

impl TextWriter {
    pub fn with_capacity(capacity: usize) -> TextWriter {
        TextWriter {
            out: String::with_capacity(capacity),
            ..Default::default()
        }
    }

    /// The text, with a last line that had no newline.
    pub fn finish(mut self) -> String {
        if self.start < self.out.len() {
            self.end_line();
        }
        self.out
    }

    /// The line from `start` to the end of `out` is complete: keep it with
    /// a newline, rewrite it, or drop it.
    fn end_line(&mut self) {
        let line = &self.out[self.start..];
        if !line.starts_with('#') {
            // A sample: kept, unless it is a `_created` one.
            if self.family.as_deref().is_some_and(|f| is_created(line, f)) {
                self.out.truncate(self.start);
            } else {
                self.out.push('\n');
            }
        } else if line == "# EOF" || line.starts_with("# UNIT ") {
            self.out.truncate(self.start);
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let text = rest.split_once(' ').map_or("", |(_, text)| text);
            let help = self.help.get_or_insert_with(String::new);
            help.clear();
            help.push_str(text);
            self.out.truncate(self.start);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "stateset" => ("", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            let mut typed = String::with_capacity(2 * line.len());
            if let Some(text) = self.help.take() {
                for part in ["# HELP ", name, suffix, " ", &text, "\n"] {
                    typed.push_str(part);
                }
            }
            for part in ["# TYPE ", name, suffix, " ", kind, "\n"] {
                typed.push_str(part);
            }
            self.family = rest.rsplit_once(' ').map(|(n, _)| n.to_string());
            self.out.truncate(self.start);
            self.out.push_str(&typed);
        } else {
            self.out.push('\n');
        }
        self.start = self.out.len();
    }
}

/// Whether `line` is a `<family>_created` sample, with labels or without.
/// Every sample line is asked, so only its head is read.
fn is_created(line: &str, family: &str) -> bool {
    line.strip_prefix(family)
        .and_then(|rest| rest.strip_prefix("_created"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['{', ' ']))
}

impl std::fmt::Write for TextWriter {
    fn write_str(&mut self, mut s: &str) -> std::fmt::Result {
        // The encoder writes in small pieces: a plain loop finds a newline
        // in them sooner than a call to memchr.
        while let Some(i) = s.bytes().position(|b| b == b'\n') {
            self.out.push_str(&s[..i]);
            // As str::lines: a line ending may be "\r\n".
            if self.out.len() > self.start && self.out.ends_with('\r') {
                self.out.pop();
            }
            self.end_line();
            s = &s[i + 1..];
        }
        self.out.push_str(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(Some("text/plain")), Format::Text);
        // What Prometheus 2.42 sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;version=9.9.9")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Text
        );
    }

    #[test]
    fn converts_counters_info_and_units() {
        let om = "# HELP a_seconds CPU.\n# TYPE a_seconds counter\n# UNIT a_seconds seconds\na_seconds_total{g=\"x\"} 1.5\na_seconds_created{g=\"x\"} 1.0\n# HELP b Build.\n# TYPE b info\nb_info{v=\"1\"} 1\n# HELP c_bytes RSS.\n# TYPE c_bytes gauge\n# UNIT c_bytes bytes\nc_bytes 3\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP a_seconds_total CPU.\n# TYPE a_seconds_total counter\na_seconds_total{g=\"x\"} 1.5\n# HELP b_info Build.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n# HELP c_bytes RSS.\n# TYPE c_bytes gauge\nc_bytes 3\n"
        );
        // Written in pieces, as the encoder writes, lines split anywhere.
        for piece in [1, 2, 7, 64] {
            let mut w = TextWriter::default();
            let chars: Vec<char> = om.chars().collect();
            for chunk in chars.chunks(piece) {
                w.write_str(&chunk.iter().collect::<String>()).unwrap();
            }
            assert_eq!(w.finish(), text, "pieces of {piece}");
        }
        // `_created` samples with or without labels go; a family whose name
        // merely starts the same stays.
        let om = "# TYPE e counter\ne_total 2\ne_created 1.0\n# TYPE e_created_at gauge\ne_created_at 3\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# TYPE e_total counter\ne_total 2\n# TYPE e_created_at gauge\ne_created_at 3\n"
        );
        // Line endings as str::lines sees them; a last line without one.
        let crlf = "# TYPE d gauge\r\nd 1\r\nd 2";
        assert_eq!(openmetrics_to_text(crlf), "# TYPE d gauge\nd 1\nd 2\n");
        let mut w = TextWriter::default();
        for c in crlf.chars() {
            w.write_char(c).unwrap();
        }
        assert_eq!(w.finish(), "# TYPE d gauge\nd 1\nd 2\n");
    }
}
