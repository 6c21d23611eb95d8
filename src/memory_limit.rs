//! The memory limit that the field report's "percent of limit" is measured
//! against. The first that applies wins:
//!
//! 1. configured (`--gateway.memory-limit`, `memory_limit:`): `config`
//! 2. the gateway's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`; the
//!    smallest along the path up to the root; "max" and huge values are none): `cgroup`
//! 3. `--max-old-space-size` on the command line or in `NODE_OPTIONS`: `max_old_space_size`
//! 4. the host's MemTotal: `host`

use std::path::{Path, PathBuf};

/// v1 writes "no limit" as a page-rounded i64::MAX; anything this large is none.
const UNLIMITED_FLOOR: u64 = 1 << 60;

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

/// Where cgroup hierarchies are mounted; from `/proc/self/mountinfo`, or a
/// fake tree in tests.
#[derive(Debug, Clone, Default)]
pub struct CgroupMounts {
    /// The cgroup2 mount: (mount point, root of the hierarchy it shows).
    pub v2: Option<(PathBuf, String)>,
    /// The cgroup v1 mount that has the memory controller.
    pub v1_memory: Option<(PathBuf, String)>,
}

impl CgroupMounts {
    pub fn read() -> CgroupMounts {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| CgroupMounts::parse(&t))
            .unwrap_or_default()
    }

    /// Parse mountinfo lines: `id parent dev root mountpoint opts... - fstype src superopts`.
    pub fn parse(mountinfo: &str) -> CgroupMounts {
        let mut m = CgroupMounts::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let (root, point) = (pre[3].to_string(), PathBuf::from(pre[4]));
            match post[0] {
                "cgroup2" if m.v2.is_none() => m.v2 = Some((point, root)),
                "cgroup" if post[2].split(',').any(|o| o == "memory") => {
                    m.v1_memory.get_or_insert((point, root));
                }
                _ => {}
            }
        }
        m
    }
}

/// Map a cgroup path as `/proc/<pid>/cgroup` gives it onto the mount.
fn on_mount(mount: &(PathBuf, String), cgroup_path: &str) -> PathBuf {
    let rel = cgroup_path
        .strip_prefix(mount.1.as_str())
        .unwrap_or(cgroup_path)
        .trim_start_matches('/');
    mount.0.join(rel)
}

/// Parse a limit file's content: a byte count, or "max".
fn parse_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v > 0 && v < UNLIMITED_FLOOR).then_some(v)
}

/// The smallest limit in `file` from `dir` up to (and including) `top`.
fn smallest_up_to(mut dir: PathBuf, top: &Path, file: &str) -> Option<u64> {
    let mut best: Option<u64> = None;
    loop {
        if let Some(v) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| parse_limit(&t))
        {
            best = Some(best.map_or(v, |b| b.min(v)));
        }
        if dir == top || !dir.pop() || !dir.starts_with(top) {
            return best;
        }
    }
}

/// The memory limit of the cgroup that `/proc/<pid>/cgroup` content names.
pub fn cgroup_limit(proc_cgroup: &str, mounts: &CgroupMounts) -> Option<u64> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            if let Some(m) = &mounts.v2 {
                if let Some(v) = smallest_up_to(on_mount(m, path), &m.0, "memory.max") {
                    return Some(v);
                }
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            if let Some(m) = &mounts.v1_memory {
                if let Some(v) = smallest_up_to(on_mount(m, path), &m.0, "memory.limit_in_bytes") {
                    return Some(v);
                }
            }
        }
    }
    None
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

/// `NODE_OPTIONS` from `/proc/<pid>/environ` content.
fn node_options(environ: &[u8]) -> Option<String> {
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"NODE_OPTIONS="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Host memory from `/proc/meminfo` content.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resolve the limit of process `pid`.
pub fn resolve(configured: Option<u64>, pid: i32, mounts: &CgroupMounts) -> Option<Limit> {
    let limit = |bytes, source| Some(Limit { bytes, source });
    if let Some(bytes) = configured {
        return limit(bytes, Source::Config);
    }
    if let Some(bytes) = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|c| cgroup_limit(&c, mounts))
    {
        return limit(bytes, Source::Cgroup);
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    // NODE_OPTIONS comes first; the command line overrides it, as in Node.
    let from_args = node_options(&environ)
        .and_then(|o| max_old_space_size(&o))
        .into_iter()
        .chain(max_old_space_size(&String::from_utf8_lossy(&cmdline)))
        .next_back();
    if let Some(bytes) = from_args {
        return limit(bytes, Source::MaxOldSpaceSize);
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total(&m))
        .and_then(|bytes| limit(bytes, Source::Host))
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
            node_options(b"A=1\0NODE_OPTIONS=--max-old-space-size=64\0"),
            Some("--max-old-space-size=64".into())
        );
    }

    #[test]
    fn mountinfo() {
        let mi = "25 21 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n\
                  30 21 0:26 /process_api /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  31 21 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n";
        let m = CgroupMounts::parse(mi);
        assert_eq!(m.v2, Some((PathBuf::from("/sys/fs/cgroup"), "/".into())));
        assert_eq!(
            m.v1_memory,
            Some((
                PathBuf::from("/sys/fs/cgroup/memory"),
                "/process_api".into()
            ))
        );
        assert_eq!(
            on_mount(m.v1_memory.as_ref().unwrap(), "/process_api/abc"),
            PathBuf::from("/sys/fs/cgroup/memory/abc")
        );
    }

    fn tree(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ocgx-cg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b/c")).unwrap();
        d
    }

    #[test]
    fn fake_v2_tree_takes_the_smallest_ancestor_limit() {
        let root = tree("v2");
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        std::fs::write(root.join("a/memory.max"), "2147483648\n").unwrap();
        std::fs::write(root.join("a/b/memory.max"), "max\n").unwrap();
        std::fs::write(root.join("a/b/c/memory.max"), "4294967296\n").unwrap();
        let mounts = CgroupMounts {
            v2: Some((root.clone(), "/".into())),
            v1_memory: None,
        };
        assert_eq!(cgroup_limit("0::/a/b/c\n", &mounts), Some(2147483648));
        assert_eq!(cgroup_limit("0::/\n", &mounts), None, "max is no limit");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn fake_v1_tree_treats_the_huge_default_as_none() {
        let root = tree("v1");
        std::fs::write(root.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(
            root.join("a/memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        std::fs::write(root.join("a/b/memory.limit_in_bytes"), "1073741824\n").unwrap();
        let mounts = CgroupMounts {
            v2: None,
            v1_memory: Some((root.clone(), "/".into())),
        };
        let proc_cgroup = "4:memory:/a/b\n1:cpu:/\n0::/\n";
        assert_eq!(cgroup_limit(proc_cgroup, &mounts), Some(1073741824));
        assert_eq!(cgroup_limit("4:memory:/a\n", &mounts), None);
        assert_eq!(cgroup_limit("garbage", &mounts), None);
        std::fs::remove_dir_all(root).unwrap();
    }
}
