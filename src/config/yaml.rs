//! Reading the YAML config file defensively: a size cap, UTF-8 only, a
//! nesting limit, and errors that point at `path:line:column`.

use std::path::Path;

use super::{ConfigError, FileConfig};

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
