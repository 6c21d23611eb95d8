//! The gateway's soft limit on open fds on macOS, which has no API to read
//! another process's rlimit. It is derived, for a gateway launchd started as
//! a job ([`started_by_launchd`]), from what it inherited and what Node does
//! with it:
//!
//! - launchd starts its jobs with its own limits, `launchctl limit maxfiles`
//!   (default soft 256, hard unlimited), unless the job's plist sets
//!   `SoftResourceLimits`; the gateway's plist sets none
//!   (dist/launchd-plist-DxOgXXh0.mjs `LAUNCH_AGENT_POLICY`,
//!   `buildLaunchAgentPlist`; its `/bin/sh` environment wrapper `exec`s node,
//!   dist/launchd-service-files-B2Hie3At.mjs, so node's parent is launchd);
//! - Node raises its soft limit at startup (src/node.cc `PlatformInit`,
//!   "Raise the open file descriptor limit"), unless soft and hard are
//!   equal: to the hard limit when that is finite, else by a binary search of
//!   `setrlimit` up to 2^20;
//! - macOS takes any soft limit up to the hard one, and lets a process open
//!   at most `kern.maxfilesperproc` fds whatever its soft limit (xnu
//!   bsd/kern/kern_resource.c `dosetrlimit`, `proc_limitgetcur_nofile`).
//!
//! So a launchd gateway's limit is launchd's 256 only when launchd's hard
//! limit is 256 too; by default (hard unlimited) it is
//! `kern.maxfilesperproc`. A gateway started otherwise (a shell, a terminal)
//! inherited limits the exporter cannot see: its limit is absent.

use std::time::{Duration, Instant};

/// A limit as `launchctl limit` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lim {
    Finite(u64),
    Unlimited,
}

impl Lim {
    fn parse(s: &str) -> Option<Lim> {
        match s {
            "unlimited" => Some(Lim::Unlimited),
            n => n.parse().ok().map(Lim::Finite),
        }
    }
}

/// The soft and hard `maxfiles` of `launchctl limit [maxfiles]` output, a
/// line such as `\tmaxfiles    256            unlimited      `.
pub fn parse_maxfiles(out: &str) -> Option<Maxfiles> {
    out.lines().find_map(|line| {
        let mut w = line.split_whitespace();
        if w.next()? != "maxfiles" {
            return None;
        }
        Some((Lim::parse(w.next()?)?, Lim::parse(w.next()?)?))
    })
}

/// The soft limit a Node process sets itself from the `soft` and `hard`
/// limits it inherited.
pub fn node_soft_limit(soft: Lim, hard: Lim) -> Lim {
    match hard {
        _ if soft == hard => soft,
        Lim::Finite(h) => Lim::Finite(h),
        // The search's last success: every value up to 2^20 - 1 is taken.
        Lim::Unlimited => Lim::Finite((1 << 20) - 1),
    }
}

/// The most fds a process with soft limit `soft` may open: macOS caps it at
/// `per_process` (`kern.maxfilesperproc`).
pub fn effective_limit(soft: Lim, per_process: u64) -> u64 {
    match soft {
        Lim::Finite(s) => s.min(per_process),
        Lim::Unlimited => per_process,
    }
}

/// launchd's soft and hard `maxfiles`.
pub type Maxfiles = (Lim, Lim);

/// How long one run of `launchctl limit maxfiles` serves.
pub const LAUNCHCTL_FRESH: Duration = Duration::from_secs(60);

/// launchd's `maxfiles`, read by `run` at most once per [`LAUNCHCTL_FRESH`],
/// never per scrape; a failed run is kept as long (logged by the caller once).
#[derive(Debug, Default)]
pub struct LaunchdLimits {
    last: Option<(Instant, Result<Maxfiles, String>)>,
}

impl LaunchdLimits {
    pub fn get(
        &mut self,
        now: Instant,
        run: impl FnOnce() -> Result<String, String>,
    ) -> Result<Maxfiles, String> {
        match &self.last {
            Some((at, got)) if now.duration_since(*at) < LAUNCHCTL_FRESH => got.clone(),
            _ => {
                let got = run().and_then(|out| {
                    parse_maxfiles(&out).ok_or_else(|| {
                        format!("no maxfiles in `launchctl limit maxfiles`: {out:?}")
                    })
                });
                self.last = Some((now, got.clone()));
                got
            }
        }
    }
}

/// Whether launchd started the process as a job of its own: its parent is
/// launchd (pid 1) and its environment names a job, as launchd sets for the
/// jobs it spawns and the gateway itself checks (dist/launchd-BHiRE-ax.mjs
/// `hasNativeLaunchdServiceLabel`: `LAUNCH_JOB_LABEL`, `LAUNCH_JOB_NAME`,
/// `XPC_SERVICE_NAME`). A process orphaned to launchd has parent 1 too, with
/// a shell's `XPC_SERVICE_NAME=0` or none.
pub fn started_by_launchd(parent: u32, env: Option<&[(String, String)]>) -> bool {
    let job = |(k, v): &(String, String)| {
        matches!(
            k.as_str(),
            "LAUNCH_JOB_LABEL" | "LAUNCH_JOB_NAME" | "XPC_SERVICE_NAME"
        ) && !v.trim().is_empty()
            && v.trim() != "0"
    };
    parent == 1 && env.is_some_and(|env| env.iter().any(job))
}

/// The gateway's soft fd limit: `None` unless launchd started it and
/// launchd's limits and `kern.maxfilesperproc` are known.
pub fn gateway_fd_limit(
    by_launchd: bool,
    launchd: Option<Maxfiles>,
    per_process: Option<u64>,
) -> Option<u64> {
    if !by_launchd {
        return None;
    }
    let (soft, hard) = launchd?;
    Some(effective_limit(node_soft_limit(soft, hard), per_process?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Lim::*;

    #[test]
    fn launchctl_output() {
        // macOS's default, as `launchctl limit maxfiles` prints it.
        let out = "\tmaxfiles    256            unlimited      \n";
        assert_eq!(parse_maxfiles(out), Some((Finite(256), Unlimited)));
        // The whole `launchctl limit` table.
        let all = "\tcpu         unlimited      unlimited      \n\
                   \tfilesize    unlimited      unlimited      \n\
                   \tmaxproc     2666           4000           \n\
                   \tmaxfiles    524288         524288         \n";
        assert_eq!(parse_maxfiles(all), Some((Finite(524288), Finite(524288))));
        for bad in [
            "",
            "maxfiles",
            "maxfiles 256",
            "maxfiles lots unlimited",
            "maxproc 1 2",
        ] {
            assert_eq!(parse_maxfiles(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn what_node_makes_of_it() {
        // launchd's default: Node searches up to 2^20, macOS caps it.
        let raised = node_soft_limit(Finite(256), Unlimited);
        assert_eq!(raised, Finite((1 << 20) - 1));
        assert_eq!(effective_limit(raised, 245_760), 245_760);
        assert_eq!(effective_limit(raised, 1 << 24), (1 << 20) - 1);
        // A finite hard limit is taken whole, then capped.
        assert_eq!(node_soft_limit(Finite(256), Finite(4096)), Finite(4096));
        assert_eq!(effective_limit(Finite(4096), 245_760), 4096);
        assert_eq!(effective_limit(Finite(1 << 20), 245_760), 245_760);
        // Equal limits are left alone: 256 stays 256 (the EMFILE case).
        assert_eq!(node_soft_limit(Finite(256), Finite(256)), Finite(256));
        assert_eq!(node_soft_limit(Unlimited, Unlimited), Unlimited);
        assert_eq!(effective_limit(Unlimited, 245_760), 245_760);
    }

    #[test]
    fn only_for_a_launchd_job() {
        let env = |kv: &[(&str, &str)]| -> Vec<(String, String)> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let job = env(&[
            ("HOME", "/Users/a"),
            ("XPC_SERVICE_NAME", "ai.openclaw.gateway"),
        ]);
        assert!(started_by_launchd(1, Some(&job)));
        assert!(started_by_launchd(
            1,
            Some(&env(&[("LAUNCH_JOB_LABEL", "x")]))
        ));
        // Started by a shell, or orphaned to launchd from a terminal.
        assert!(!started_by_launchd(4242, Some(&job)));
        assert!(!started_by_launchd(
            1,
            Some(&env(&[("XPC_SERVICE_NAME", "0")]))
        ));
        assert!(!started_by_launchd(1, Some(&env(&[("HOME", "/Users/a")]))));
        assert!(!started_by_launchd(1, None));

        let default = Some((Finite(256), Unlimited));
        assert_eq!(
            gateway_fd_limit(true, default, Some(245_760)),
            Some(245_760)
        );
        assert_eq!(gateway_fd_limit(false, default, Some(245_760)), None);
        assert_eq!(gateway_fd_limit(true, None, Some(245_760)), None);
        assert_eq!(gateway_fd_limit(true, default, None), None);
    }

    #[test]
    fn launchctl_runs_once_a_minute() {
        let runs = std::cell::Cell::new(0);
        let run = |out: &'static str| {
            let runs = &runs;
            move || {
                runs.set(runs.get() + 1);
                Ok(out.to_string())
            }
        };
        let mut l = LaunchdLimits::default();
        let t0 = Instant::now();
        let first = l.get(t0, run("maxfiles 256 unlimited"));
        assert_eq!(first, Ok((Finite(256), Unlimited)));
        assert_eq!(
            l.get(t0 + Duration::from_secs(59), run("maxfiles 1 1")),
            first
        );
        assert_eq!(runs.get(), 1);
        let fresh = l.get(t0 + LAUNCHCTL_FRESH, run("maxfiles 1 1"));
        assert_eq!((fresh, runs.get()), (Ok((Finite(1), Finite(1))), 2));
        // A failure is kept as long, and output without maxfiles is one.
        let mut l = LaunchdLimits::default();
        assert!(l.get(t0, || Err("launchctl: not found".into())).is_err());
        assert!(l
            .get(t0 + Duration::from_secs(1), run("maxfiles 1 1"))
            .is_err());
        assert_eq!(runs.get(), 2);
        assert!(l.get(t0 + LAUNCHCTL_FRESH, run("garbage")).is_err());
        assert_eq!(runs.get(), 3);
    }
}
