//! The gateway token: a secret, read from a file and re-read when the file
//! changes.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{ConfigError, GatewaySpec};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{build, parse_file, GatewayFile, Intervals};

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

    /// FIFOs are a Unix thing; rustix, which makes them here, a Linux
    /// dependency.
    #[cfg(target_os = "linux")]
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
        #[cfg(target_os = "linux")]
        {
            let fifo = dir.join("fifo");
            mkfifo(&fifo);
            let err = token_file_error(fifo);
            assert!(err.contains("not a regular file"), "{err}");
        }
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
        #[cfg(target_os = "linux")]
        {
            std::fs::remove_file(&file).unwrap();
            mkfifo(&file);
            assert_eq!(now().as_deref(), Some("third"));
        }
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
