//! Rendering the registry for a scrape, in the format the scraper asks for.
//!
//! prometheus-client writes OpenMetrics. Scrapers that do not accept it (curl,
//! `promtool check metrics`, older clients) get the classic text format 0.0.4,
//! negotiated from `Accept` the way client_golang does.

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
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut om = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut om, registry)?;
    Ok(match format {
        Format::OpenMetrics => om,
        Format::Text => openmetrics_to_text(&om),
    })
}

/// Rewrite OpenMetrics text as the classic text format: no `# EOF` or
/// `# UNIT`, counter families named with their `_total` suffix, info families
/// as gauges named `<name>_info`, and no `_created` samples.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<(&str, &str)> = None;
    let mut created_suffix_family: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').or(Some((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_string(), "gauge"),
                "gaugehistogram" => (name.to_string(), "histogram"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str("# HELP ");
                out.push_str(&name);
                out.push(' ');
                out.push_str(text);
                out.push('\n');
            }
            out.push_str("# TYPE ");
            out.push_str(&name);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            created_suffix_family = rest.rsplit_once(' ').map(|(n, _)| n);
            continue;
        }
        if let Some(family) = created_suffix_family {
            let sample = line.split(['{', ' ']).next().unwrap_or("");
            if sample.len() == family.len() + "_created".len()
                && sample.starts_with(family)
                && sample.ends_with("_created")
            {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
