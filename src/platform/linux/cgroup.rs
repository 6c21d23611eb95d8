//! The memory limit of a process's control group (v2 `memory.max`, v1
//! `memory.limit_in_bytes`; the smallest along the path up to the root; "max"
//! and huge values are none), and the host's memory.

use std::path::{Path, PathBuf};

use procfs::process::{MountInfos, Process};
use procfs::{FromBufRead, Meminfo, ProcessCGroups};

/// v1 writes "no limit" as a page-rounded i64::MAX; anything this large is none.
const UNLIMITED_FLOOR: u64 = 1 << 60;

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
    /// The exporter's own mounts.
    pub fn read() -> CgroupMounts {
        Process::myself()
            .and_then(|me| me.mountinfo())
            .map(|m| CgroupMounts::of(&m))
            .unwrap_or_default()
    }

    /// Parse `/proc/<pid>/mountinfo` content (procfs's parser); none when it
    /// does not parse.
    pub fn parse(mountinfo: &str) -> CgroupMounts {
        MountInfos::from_buf_read(mountinfo.as_bytes())
            .map(|m| CgroupMounts::of(&m))
            .unwrap_or_default()
    }

    fn of(mounts: &MountInfos) -> CgroupMounts {
        let mut m = CgroupMounts::default();
        for mount in mounts {
            let at = || (mount.mount_point.clone(), mount.root.clone());
            match mount.fs_type.as_str() {
                "cgroup2" if m.v2.is_none() => m.v2 = Some(at()),
                "cgroup" if mount.super_options.contains_key("memory") => {
                    m.v1_memory.get_or_insert_with(at);
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
/// Read at most once per [`super::proc::SHARED`] for each cgroup: the
/// gateways of a host, often in one cgroup, ask in the same round.
fn smallest_up_to(dir: PathBuf, top: &Path, file: &'static str) -> Option<u64> {
    static LIMITS: super::proc::Recent<(PathBuf, &'static str), Option<u64>> =
        super::proc::Recent::new();
    let key = (dir.clone(), file);
    let read = || Ok::<_, std::convert::Infallible>(read_smallest_up_to(dir, top, file));
    LIMITS.get_or_read(key, read).unwrap_or(None)
}

fn read_smallest_up_to(mut dir: PathBuf, top: &Path, file: &str) -> Option<u64> {
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

/// The memory limit of the control group `pid` runs in.
pub fn pid_limit(pid: i32, mounts: &CgroupMounts) -> Option<u64> {
    let groups = super::proc::read_file(Some(pid), "cgroup").ok()?;
    cgroup_limit(&String::from_utf8_lossy(&groups), mounts)
}

/// The memory limit of the cgroup that `/proc/<pid>/cgroup` content names
/// (procfs's parser); none when it does not parse.
pub fn cgroup_limit(proc_cgroup: &str, mounts: &CgroupMounts) -> Option<u64> {
    limit_of(
        &ProcessCGroups::from_buf_read(proc_cgroup.as_bytes()).ok()?,
        mounts,
    )
}

fn limit_of(groups: &ProcessCGroups, mounts: &CgroupMounts) -> Option<u64> {
    for group in groups {
        let path = group.pathname.as_str();
        if group.controllers.is_empty() {
            if let Some(m) = &mounts.v2 {
                if let Some(v) = smallest_up_to(on_mount(m, path), &m.0, "memory.max") {
                    return Some(v);
                }
            }
        } else if group.controllers.iter().any(|c| c == "memory") {
            if let Some(m) = &mounts.v1_memory {
                if let Some(v) = smallest_up_to(on_mount(m, path), &m.0, "memory.limit_in_bytes") {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// The host's memory: `MemTotal` of `/proc/meminfo`.
/// Read at most once per [`super::proc::SHARED`]: every gateway's memory
/// sample on the host asks in the same round.
pub fn mem_total() -> Option<u64> {
    static TOTAL: super::proc::Recent<(), u64> = super::proc::Recent::new();
    TOTAL
        .get_or_read((), || {
            let text = super::proc::read_file(None, "meminfo").map_err(|_| ())?;
            Meminfo::from_buf_read(text.as_slice())
                .map(|m| m.mem_total)
                .map_err(|_| ())
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
