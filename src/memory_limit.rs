//! The memory limit that the field report's "percent of limit" is measured
//! against. The first that applies wins:
//!
//! 1. configured (`--gateway.memory-limit`, `memory_limit:`): `config`
//! 2. the gateway's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`; the
//!    smallest along the path up to the root; "max" and huge values are none): `cgroup`
//! 3. `--max-old-space-size` on the command line or in `NODE_OPTIONS`: `max_old_space_size`
//! 4. the host's MemTotal: `host`

use crate::platform::{Pid, Platform};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Config,
    Cgroup,
    MaxOldSpaceSize,
    Host,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Cgroup => "cgroup",
            Source::MaxOldSpaceSize => "max_old_space_size",
            Source::Host => "host",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub source: Source,
}

/// `--max-old-space-size=N` (MiB) from NUL- or space-separated arguments. The
/// last one wins, as in Node.
pub fn max_old_space_size(args: &str) -> Option<u64> {
    args.split(['\0', ' ', '\t', '\n'])
        .filter_map(|a| {
            let a = a.strip_prefix("--")?;
            let (k, v) = a.split_once('=')?;
            (k.replace('_', "-") == "max-old-space-size").then_some(v)
        })
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .next_back()
        .filter(|mb| *mb > 0)
        .map(|mb| mb.saturating_mul(1024 * 1024))
}

/// `NODE_OPTIONS` from an environment. Windows ignores the case of a name,
/// and so does Node's `process.env` there.
fn node_options(environ: &[(String, String)]) -> Option<String> {
    let is_it = |k: &str| match cfg!(windows) {
        true => k.eq_ignore_ascii_case("NODE_OPTIONS"),
        false => k == "NODE_OPTIONS",
    };
    environ
        .iter()
        .find_map(|(k, v)| is_it(k).then(|| v.clone()))
}

/// Resolve the limit of process `pid`.
pub fn resolve(platform: &dyn Platform, configured: Option<u64>, pid: Pid) -> Option<Limit> {
    resolve_with(platform, configured, pid, || from_args(platform, pid))
}

/// [`resolve`], with the V8 heap limit its arguments set given by `args`
/// ([`from_args`]): a sampler that knows it for this process need not read
/// its command line and environment again.
pub fn resolve_with(
    platform: &dyn Platform,
    configured: Option<u64>,
    pid: Pid,
    args: impl FnOnce() -> Option<u64>,
) -> Option<Limit> {
    let limit = |bytes, source| Some(Limit { bytes, source });
    if let Some(bytes) = configured {
        return limit(bytes, Source::Config);
    }
    if let Some(bytes) = platform.cgroup_memory_limit(pid) {
        return limit(bytes, Source::Cgroup);
    }
    if let Some(bytes) = args() {
        return limit(bytes, Source::MaxOldSpaceSize);
    }
    platform
        .host_memory_bytes()
        .and_then(|bytes| limit(bytes, Source::Host))
}

/// The V8 heap limit `--max-old-space-size` sets for process `pid`, from
/// its `NODE_OPTIONS` and command line. Both are fixed when the process
/// starts (Node reads them once; a process title set later overwrites the
/// command line, not the limit).
pub fn from_args(platform: &dyn Platform, pid: Pid) -> Option<u64> {
    let cmdline = platform.cmdline(pid).unwrap_or_default().join("\0");
    let environ = platform.environ(pid).unwrap_or_default();
    // NODE_OPTIONS comes first; the command line overrides it, as in Node.
    node_options(&environ)
        .and_then(|o| max_old_space_size(&o))
        .into_iter()
        .chain(max_old_space_size(&cmdline))
        .next_back()
}

/// Parse a size such as `1GiB`, `512MiB`, `1GB`, `1024`, `1.5GiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number and a unit like 1GiB"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" | "kB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "TB" | "T" => 1e12,
        "KiB" | "Ki" => 1024.0,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        "TiB" | "Ti" => 1024.0f64.powi(4),
        u => return Err(format!("invalid size {s:?}: unknown unit {u:?}")),
    };
    let bytes = n * mult;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("invalid size {s:?}: out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        for bad in ["", "GiB", "1XB", "-1GiB", "0", "1e999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn old_space() {
        assert_eq!(
            max_old_space_size("--max-old-space-size=1024"),
            Some(1 << 30)
        );
        assert_eq!(
            max_old_space_size("node\0--max_old_space_size=512\0x.js"),
            Some(512 << 20)
        );
        assert_eq!(
            max_old_space_size("--max-old-space-size=1 --max-old-space-size=2"),
            Some(2 << 20)
        );
        assert_eq!(max_old_space_size("--max-old-space-size=lots"), None);
        assert_eq!(max_old_space_size("--inspect"), None);
        assert_eq!(
            node_options(&[
                ("A".into(), "1".into()),
                ("NODE_OPTIONS".into(), "--max-old-space-size=64".into())
            ]),
            Some("--max-old-space-size=64".into())
        );
        let other_case = [("Node_Options".into(), "--max-old-space-size=64".into())];
        assert_eq!(node_options(&other_case).is_some(), cfg!(windows));
    }
}
