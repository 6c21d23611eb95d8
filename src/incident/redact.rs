//! Secrets never go into a snapshot. Every file passes through a
//! [`Redactor`] before it is written: the gateway's token values (from the
//! exporter's config and, read but never written, the gateway's own
//! environment) are replaced wherever they appear, and so are the values of
//! bearer headers and of anything named like a token, password, secret or
//! key (log lines, `/readyz` bodies, command lines, bundles).

use std::sync::LazyLock;

/// What replaces a secret.
pub const MARK: &str = "[REDACTED]";

/// Secrets shorter than this are not searched for by value: a one-letter
/// test token would blank every such letter. Their named forms (`token=`,
/// `Bearer `) are still redacted.
pub const MIN_SECRET_LEN: usize = 6;

/// Environment variables of the gateway whose values are secrets
/// (`docs/gateway/authentication.md`, `docs/cli/gateway.md` of the
/// installed package: the token and password of the gateway's auth).
pub const SECRET_ENV: [&str; 2] = ["OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD"];

static BEARER: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r#"(?i)(bearer\s+)([^\s"',;&}\[\]][^\s"',;&}\]]*)"#).expect("a valid regex")
});

static NAMED: LazyLock<regex::Regex> = LazyLock::new(|| {
    // `"token": "x"`, `token=x`, `--token x`, `apiKey: x`, ...
    regex::Regex::new(
        r#"(?i)((?:[a-z0-9_.-]*(?:token|password|passwd|secret|api[_-]?key|authorization))["']?(?:\s*[:=]\s*|\s+)["']?)([^\s"',;&}\[\]][^\s"',;&}\]]*)"#,
    )
    .expect("a valid regex")
});

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Secret values, longest first (a token that contains another is
    /// replaced whole).
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor of `secrets` (short and empty ones are dropped).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret replaced by [`MARK`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MARK);
            }
        }
        for re in [&*BEARER, &*NAMED] {
            out = re
                .replace_all(&out, |c: &regex::Captures| format!("{}{MARK}", &c[1]))
                .into_owned();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_wherever_they_appear() {
        let token = "s3cr3t-T0ken-value-42";
        let r = Redactor::new([token.to_string(), "t".to_string(), String::new()]);
        for text in [
            format!("GET /readyz Authorization: Bearer {token}"),
            format!(r#"{{"message":"auth failed for {token}","level":"warn"}}"#),
            format!("node openclaw gateway --token {token} --port 18789"),
            format!("OPENCLAW_GATEWAY_TOKEN={token}"),
            format!("prefix{token}suffix"),
        ] {
            let out = r.redact(&text);
            assert!(!out.contains(token), "{out}");
            assert!(out.contains(MARK), "{out}");
        }
        // The short secret is not searched for by value.
        assert_eq!(r.redact("tttt status ok"), "tttt status ok");
    }

    #[test]
    fn named_values_are_redacted_without_knowing_them() {
        let r = Redactor::default();
        for (text, gone) in [
            ("Authorization: Bearer abcdef123", "abcdef123"),
            (r#"{"token":"zzz-top","x":1}"#, "zzz-top"),
            ("--gateway.token topsecret1 next", "topsecret1"),
            ("password=hunter22&user=me", "hunter22"),
            (r#"apiKey: "sk-live-123""#, "sk-live-123"),
        ] {
            let out = r.redact(text);
            assert!(!out.contains(gone), "{text} -> {out}");
        }
        assert!(r.redact("--gateway.token x next").contains("next"));
        // Ordinary text stays.
        let plain = r#"{"ready":true,"failing":[],"uptimeMs":123}"#;
        assert_eq!(r.redact(plain), plain);
        assert_eq!(r.redact("event loop delay 12ms"), "event loop delay 12ms");
    }
}
