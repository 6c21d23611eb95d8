//! One incident folder: every file written through the redactor, cut at
//! its size cap, and listed in `manifest.json` with what failed and why.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::redact::Redactor;

/// The manifest: what was collected, what failed, and why.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub gateway: String,
    pub reason: String,
    /// RFC 3339, UTC.
    pub taken_at: String,
    pub exporter_version: String,
    pub os: String,
    pub pid: Option<i32>,
    /// One line per item: collected, partial or failed.
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Item {
    pub name: String,
    /// The file written, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `ok`, `partial` (written, but cut or with parts missing) or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Manifest {
    /// Whether every item was collected whole.
    pub fn complete(&self) -> bool {
        self.items.iter().all(|i| i.status == "ok")
    }
}

/// A folder being filled.
pub struct Folder {
    pub path: PathBuf,
    redactor: Redactor,
    pub manifest: Manifest,
}

impl Folder {
    pub fn new(path: PathBuf, redactor: Redactor, manifest: Manifest) -> Folder {
        Folder {
            path,
            redactor,
            manifest,
        }
    }

    /// Write `text`, redacted and cut at `cap` bytes, as `file`; record it
    /// under `name`, with `detail` if something was missing.
    pub fn write(
        &mut self,
        name: &str,
        file: &str,
        text: &str,
        cap: usize,
        detail: Option<String>,
    ) {
        let mut text = self.redactor.redact(text);
        let mut cut = false;
        if text.len() > cap {
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("\n[cut: the file reached its size cap]\n");
            cut = true;
        }
        let status = match (
            write_file(&self.path.join(file), text.as_bytes()),
            cut,
            &detail,
        ) {
            (Err(e), _, _) => {
                self.failed(name, format!("writing {file}: {e}"));
                return;
            }
            (Ok(()), false, None) => "ok",
            _ => "partial",
        };
        let detail = match (cut, detail) {
            (true, Some(d)) => Some(format!("{d}; cut at {cap} bytes")),
            (true, None) => Some(format!("cut at {cap} bytes")),
            (false, d) => d,
        };
        self.manifest.items.push(Item {
            name: name.to_string(),
            file: Some(file.to_string()),
            status: status.to_string(),
            detail,
        });
    }

    /// Record an item that could not be collected.
    pub fn failed(&mut self, name: &str, why: String) {
        self.manifest.items.push(Item {
            name: name.to_string(),
            file: None,
            status: "failed".to_string(),
            detail: Some(self.redactor.redact(&why)),
        });
    }

    /// Write the manifest last; the snapshot fails only if this does.
    pub fn finish(self) -> std::io::Result<(PathBuf, Manifest)> {
        let text = serde_json::to_string_pretty(&self.manifest).map_err(std::io::Error::other)?;
        write_file(&self.path.join("manifest.json"), text.as_bytes())?;
        Ok((self.path, self.manifest))
    }
}

/// Write a new file (never through a link planted in the folder), owner-only
/// on Unix: a snapshot describes another user's process.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.flush()
}
