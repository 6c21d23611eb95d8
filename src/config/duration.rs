//! Durations as written in flags and the config file: `500ms`, `1m30s`.

use std::time::Duration;

use serde::Deserializer;

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
pub(super) fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_file;

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
    fn bad_duration_reports_line() {
        let err = parse_file("c.yml", "collect:\n  memory: 30 seconds\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yml:2:"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
    }
}
