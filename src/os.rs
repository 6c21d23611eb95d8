//! The operating systems whose conventions the exporter follows where the
//! gateway's own differ (paths, service names, recovery commands). A value
//! rather than a `cfg`, so that the rules of every OS are unit-tested on any.

/// An OS the gateway runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    Macos,
    Windows,
}

impl Os {
    /// The OS this exporter was built for (the BSDs follow macOS: POSIX
    /// paths, no procfs).
    pub const CURRENT: Os = if cfg!(windows) {
        Os::Windows
    } else if cfg!(target_os = "linux") {
        Os::Linux
    } else {
        Os::Macos
    };

    /// The path separator of the OS, for paths shown to a person.
    pub fn separator(self) -> char {
        match self {
            Os::Windows => '\\',
            Os::Linux | Os::Macos => '/',
        }
    }

    /// `parts` joined under `base` with the OS's separator (Node's
    /// `path.join` for that OS, for paths without `.` or `..`).
    pub fn join(self, base: &str, parts: &[&str]) -> String {
        let sep = self.separator();
        let mut out = base.trim_end_matches(sep).to_string();
        if out.is_empty() && base.starts_with(sep) {
            out.push(sep);
        }
        for part in parts {
            if !out.is_empty() && !out.ends_with(sep) {
                out.push(sep);
            }
            out.push_str(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_uses_the_os_separator() {
        assert_eq!(Os::Linux.join("/tmp/", &["openclaw"]), "/tmp/openclaw");
        assert_eq!(Os::Linux.join("/", &["tmp", "a"]), "/tmp/a");
        assert_eq!(
            Os::Windows.join(r"C:\Users\me\AppData\Local\Temp", &["openclaw"]),
            r"C:\Users\me\AppData\Local\Temp\openclaw"
        );
        assert_eq!(Os::Windows.join(r"C:\", &["x"]), r"C:\x");
    }
}
