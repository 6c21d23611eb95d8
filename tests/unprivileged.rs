//! The exporter run as another user than the gateway, without CAP_SYS_PTRACE:
//! `/proc/<pid>/fd` is unreadable. The series that need it are absent, a
//! counter says why, the warning is logged once, and everything else works.
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use openclaw_gateway_exporter::names;

const G: &[(&str, &str)] = &[("gateway", "fx")];

fn skipped(s: &Scrape, collector: &str, reason: &str) -> Option<f64> {
    s.get(
        names::COLLECTOR_SKIPPED_READS_TOTAL.name(),
        &[
            ("gateway", "fx"),
            ("collector", collector),
            ("reason", reason),
        ],
    )
}

#[test]
fn another_users_gateway_skips_the_fd_series_and_says_why() {
    let uid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if uid != 0 {
        eprintln!("skipped: needs root to run the fixture and the exporter as different users");
        return;
    }
    let (state, fx) = Fixture::with_state(&[]);

    // A copy of the binary that `nobody` can run wherever the checkout is.
    let bin_dir = TempDir::new("bin");
    let bin = bin_dir.path().join("openclaw-gateway-exporter");
    std::fs::copy(EXPORTER, &bin).unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(&bin);
    let exp = Harness::exporter_via(cmd)
        .name("fx")
        .fixture(&state, &fx)
        .fast()
        .start();
    let pid = fx.pid();
    assert_eq!(
        std::fs::metadata(format!("/proc/{}/status", exp.proc.pid()))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap(),
        65534,
        "the exporter runs as nobody"
    );

    // Found, and what /proc/<pid>/stat gives is there.
    exp.wait_eq("gateway up", names::PROCESS_UP.name(), G, 1.0);
    exp.wait("rss", |s| {
        s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), G)
    });
    // What needs its fds is absent, and the counter says why, again on each sample.
    let first = exp.wait("denied reads counted", |s| {
        skipped(s, "connections", "permission_denied").filter(|n| *n >= 1.0)
    });
    exp.wait("still counted on later samples", |s| {
        skipped(s, "connections", "permission_denied").filter(|n| *n >= first + 3.0)
    });
    let s = exp.scrape();
    assert!(
        s.get(
            names::PROCESS_OPEN_FDS_BY_TYPE.name(),
            &[("gateway", "fx"), ("type", "socket")]
        )
        .is_none(),
        "fds by type need /proc/{pid}/fd"
    );
    assert!(
        s.get(
            names::TCP_CONNECTIONS.name(),
            &[
                ("gateway", "fx"),
                ("direction", "outbound"),
                ("state", "established")
            ]
        )
        .is_none(),
        "outbound connections need the gateway's socket inodes"
    );
    assert!(
        s.get(
            names::TCP_CONNECTIONS.name(),
            &[
                ("gateway", "fx"),
                ("direction", "inbound"),
                ("state", "listen")
            ]
        )
        .is_some(),
        "inbound connections need no access to the gateway"
    );
    assert_eq!(skipped(&s, "connections", "other"), Some(0.0));
    // The fd count comes from the size of /proc/<pid>/fd, which anyone may
    // stat since Linux 6.2; before that it is denied too, and counted.
    match s.get(names::PROCESS_OPEN_FDS.name(), G) {
        Some(n) => {
            let truth = fd_count(pid) as f64;
            assert!(n >= 3.0, "open fds {n}");
            assert!((n - truth).abs() <= 3.0, "open fds {n} vs /proc {truth}");
            assert_eq!(skipped(&s, "process", "permission_denied"), Some(0.0));
        }
        None => assert!(skipped(&s, "process", "permission_denied").unwrap() >= 1.0),
    }
    assert_eq!(
        s.get(
            names::COLLECTOR_SUCCESS.name(),
            &[("gateway", "fx"), ("collector", "connections")]
        ),
        Some(1.0),
        "a partial sample is not a failed one"
    );

    // Logged once, not on every sample.
    let warned = |needle: &str| {
        exp.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle) && l.contains("permission denied"))
            .count()
    };
    assert_eq!(
        warned("outbound connections and fds by type are skipped"),
        1,
        "the connections collector warns once"
    );
}
