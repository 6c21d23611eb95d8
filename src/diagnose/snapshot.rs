//! A parser of the classic text exposition, just enough for `diagnose` to
//! read the series a scrape returns.

use std::collections::HashMap;

/// One series of the exposition.
#[derive(Debug, Clone)]
struct Series {
    labels: Vec<(String, String)>,
    value: f64,
}

/// The exposition, parsed, by metric name.
#[derive(Debug, Default)]
pub struct Snapshot(HashMap<String, Vec<Series>>);

impl Snapshot {
    /// Parse the classic text format.
    pub fn parse(text: &str) -> Snapshot {
        let mut map: HashMap<String, Vec<Series>> = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            map.entry(name.to_string())
                .or_default()
                .push(Series { labels, value });
        }
        Snapshot(map)
    }

    /// The value of the first series of `name` whose labels include `want`.
    pub fn get(&self, name: &str, want: &[(&str, &str)]) -> Option<f64> {
        self.all(name, want).into_iter().next().map(|(_, v)| v)
    }

    /// Every series of `name` whose labels include `want`, with its labels.
    pub fn all(&self, name: &str, want: &[(&str, &str)]) -> Vec<(Vec<(String, String)>, f64)> {
        self.0
            .get(name)
            .into_iter()
            .flatten()
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut end = after.len();
        let mut chars = after.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_by_name_and_labels() {
        let snap = Snapshot::parse(concat!(
            "# HELP m A metric.\n",
            "# TYPE m gauge\n",
            "m{gateway=\"a\",why=\"say \\\"hi\\\", then\\nbye\"} 1.5\n",
            "m{gateway=\"b\"} 2\n",
            "plain 3\n",
            "broken{gateway=\"a\"} NaNx\n",
        ));
        assert_eq!(snap.get("m", &[("gateway", "b")]), Some(2.0));
        assert_eq!(snap.get("plain", &[]), Some(3.0));
        assert_eq!(snap.get("broken", &[]), None);
        assert_eq!(snap.get("m", &[("gateway", "c")]), None);
        let all = snap.all("m", &[("gateway", "a")]);
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].0[1],
            ("why".to_string(), "say \"hi\", then\nbye".to_string())
        );
    }
}
