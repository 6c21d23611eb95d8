//! What to do, in commands that exist on the gateway's OS. Names come from
//! the gateway 2026.9.6 (files under `node_modules/openclaw/`):
//! - the services it installs (dist/constants-CJCmIHb-.mjs): the systemd
//!   user unit `openclaw-gateway` (`systemctl --user`,
//!   dist/systemd-service-files-BNfCJfRA.mjs), the LaunchAgent
//!   `ai.openclaw.gateway` in `gui/<uid>` (dist/launchd-runtime-BB4KJA-H.mjs),
//!   which `openclaw gateway restart` restarts with `launchctl kickstart -k`
//!   (dist/launchd-BHiRE-ax.mjs), and the scheduled task
//!   `OpenClaw Gateway`, ended and run with `schtasks /End` and `/Run /TN`
//!   (dist/schtasks-DSAoIeY-.mjs). A named profile changes these names.
//! - `openclaw gateway stop` takes `--force`, `--disable`, `--json`, and
//!   needs `--force` from a non-interactive shell; it has no `--timeout`
//!   (dist/register-service-commands-C3Vs-Ksm.mjs;
//!   docs/cli/gateway/service.md).
//! - the lock folders ([`crate::lockfile::dir_pattern`]).

use super::Check;
use crate::discovery::Target;
use crate::lockfile;
use crate::os::Os;
use crate::thresholds::Status;

/// The recovery commands of one gateway on one OS.
struct Commands<'a> {
    os: Os,
    port: u16,
    url: &'a str,
    /// The gateway's pid, or `<pid>` when none was found.
    pid: String,
    /// The lock files, as a pattern.
    locks: String,
}

impl Commands<'_> {
    fn collect(&self) -> String {
        let (pid, port) = (&self.pid, self.port);
        match self.os {
            Os::Linux => format!("Collect state first: ps -eo pid,lstart,args | grep openclaw > gateway_state_$(date +%Y%m%d-%H%M%S).log; ss -tanp 'sport = :{port}' >> that file"),
            Os::Macos => format!("Collect state first: ps -axo pid,lstart,args | grep openclaw > gateway_state_$(date +%Y%m%d-%H%M%S).log; lsof -nP -iTCP:{port} >> that file"),
            Os::Windows => format!("Collect state first (PowerShell): $f = \"gateway_state_$(Get-Date -Format yyyyMMdd-HHmmss).log\"; Get-Process -Id {pid} | Format-List * > $f; Get-NetTCPConnection -LocalPort {port} >> $f; handle.exe -p {pid} >> $f (Sysinternals)"),
        }
    }

    /// Stop, kill if need be, clear the locks, start, verify.
    fn restart(&self) -> Vec<String> {
        let (pid, url, locks) = (&self.pid, self.url, &self.locks);
        match self.os {
            Os::Linux => vec![
                "Stop gracefully: openclaw gateway stop --force (the systemd user unit; or systemctl --user stop openclaw-gateway.service)".into(),
                format!("If it does not stop: kill -9 {pid}"),
                format!("Clear stale locks (only with no gateway running): rm -f {locks}"),
                format!("Start and verify: openclaw gateway start && curl -fsS {url}/healthz"),
            ],
            Os::Macos => vec![
                "Restart the LaunchAgent, killing the hung process: launchctl kickstart -k gui/$(id -u)/ai.openclaw.gateway (what openclaw gateway restart runs)".into(),
                format!("If pid {pid} survives it: kill -9 {pid}, clear stale locks (rm -f {locks}) and kickstart again"),
                format!("Verify: curl -fsS {url}/healthz"),
            ],
            Os::Windows => vec![
                "Stop gracefully: schtasks /End /TN \"OpenClaw Gateway\" (or openclaw gateway stop --force)".into(),
                format!("If it does not stop: Stop-Process -Id {pid} -Force"),
                format!("Clear stale locks (only with no gateway running): Remove-Item \"{locks}\""),
                format!("Start and verify: schtasks /Run /TN \"OpenClaw Gateway\"; curl.exe -fsS {url}/healthz"),
            ],
        }
    }

    fn clear_crash_locks(&self) -> String {
        let locks = &self.locks;
        match self.os {
            Os::Windows => {
                format!("Clear the stale lock left by the crash: Remove-Item \"{locks}\"")
            }
            Os::Linux | Os::Macos => {
                format!("Clear the stale lock left by the crash: rm -f {locks}")
            }
        }
    }

    fn start(&self) -> String {
        let url = self.url;
        match self.os {
            Os::Linux => format!("Start and verify: openclaw gateway start && curl -fsS {url}/healthz"),
            Os::Macos => format!("Start and verify: openclaw gateway start && curl -fsS {url}/healthz (the LaunchAgent ai.openclaw.gateway)"),
            Os::Windows => format!("Start and verify: schtasks /Run /TN \"OpenClaw Gateway\"; curl.exe -fsS {url}/healthz"),
        }
    }

    fn duplicates(&self) -> String {
        let port = self.port;
        let how = match self.os {
            Os::Linux => format!("ps -eo pid,lstart,args | grep openclaw; ss -ltnp 'sport = :{port}'"),
            Os::Macos => format!("ps -axo pid,lstart,args | grep openclaw; lsof -nP -iTCP:{port} -sTCP:LISTEN"),
            Os::Windows => format!("Get-CimInstance Win32_Process -Filter \"Name='node.exe'\" | Select-Object ProcessId,CreationDate,CommandLine; Get-NetTCPConnection -LocalPort {port} -State Listen"),
        };
        format!("Duplicate instances: keep one, stop the others ({how})")
    }

    fn fds(&self) -> String {
        let pid = &self.pid;
        match self.os {
            Os::Linux => format!("File descriptors are near the limit: ls -l /proc/{pid}/fd | sort | uniq -c to find the leak; restart relieves it."),
            Os::Macos => format!("File descriptors are near the limit: launchctl limit maxfiles shows the limit launchd gives the gateway (its default soft limit of 256 ends in EMFILE); lsof -p {pid} to find the leak; restart relieves it."),
            Os::Windows => format!("Handles are high: handle.exe -s -p {pid} (Sysinternals) counts them by type to find the leak; restart relieves it."),
        }
    }
}

/// The field report's recovery steps that fit what was found, as commands
/// of `os`. While the gateway starts (`starting`: seconds left of the
/// grace), only a hang gets them; everything else is "look again once
/// started".
pub(super) fn advice(
    checks: &[Check],
    target: &Target,
    starting: Option<f64>,
    os: Os,
) -> Vec<String> {
    let spec = &target.spec;
    let bad = |name: &str, at_least: Status| {
        checks
            .iter()
            .any(|c| c.check == name && c.status >= at_least)
    };
    let cmd = Commands {
        os,
        port: spec.port,
        url: &spec.url,
        pid: target
            .current()
            .map(|f| f.id.pid.to_string())
            .unwrap_or_else(|| "<pid>".into()),
        locks: os.join(
            &lockfile::dir_pattern(os, &spec.state_dir),
            &["gateway.*.lock"],
        ),
    };
    let mut out = Vec::new();
    let alive = !bad("process", Status::Crit);
    if bad("hung", Status::Crit) || (alive && bad("liveness", Status::Crit)) {
        out.push(cmd.collect());
        out.extend(cmd.restart());
        out.push("If it started after an upgrade, roll back to the previous version.".into());
    } else if bad("process", Status::Crit) {
        if bad("locks", Status::Crit) {
            out.push(cmd.clear_crash_locks());
        }
        out.push(cmd.start());
    }
    if let Some(left) = starting {
        out.push(format!("The gateway is starting: run diagnose again in {:.0} s, once past the startup grace, for the verdict.", left.ceil()));
        return out;
    }
    if bad("instances", Status::Crit) || bad("port_owner", Status::Crit) {
        out.push(cmd.duplicates());
    }
    if bad("memory", Status::Warn) {
        out.push("Memory is near the limit: plan a restart, and look for a leak (heap snapshot, unclosed WebSockets, caches without LRU).".into());
    }
    if bad("event_loop", Status::Warn) {
        out.push("The event loop is blocked: look for synchronous work (large JSON, sync file I/O, requests without timeout); profile with node --cpu-prof.".into());
    }
    if bad("fds", Status::Warn) {
        out.push(cmd.fds());
    }
    if bad("close_wait", Status::Warn) || bad("port", Status::Warn) {
        out.push("Connections pile up unaccepted or unclosed (CLOSE_WAIT, accept queue): the gateway stopped serving; restart it after collecting state.".into());
    }
    if bad("connections", Status::Warn) {
        out.push("Many active connections: look for leaked WebSockets and clients that reconnect in a loop.".into());
    }
    if bad("error_rate", Status::Warn) {
        out.push("Probes fail: check dependency pools and third-party API timeouts (30 s timeout, circuit breaker).".into());
    }
    if bad("locks", Status::Warn) && !bad("locks", Status::Crit) {
        out.push(format!("Stale lock files: harmless while the gateway runs, but remove them before the next restart: {}", cmd.locks));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{gateway_spec, GatewayFile};

    fn target(state_dir: &str) -> Target {
        let spec = gateway_spec(GatewayFile {
            name: Some("gw".into()),
            url: Some("http://127.0.0.1:18789".into()),
            state_dir: Some(state_dir.into()),
            pid_file: None,
            ..Default::default()
        })
        .unwrap();
        Target::new(spec)
    }

    fn crit(names: &[&'static str]) -> Vec<Check> {
        names
            .iter()
            .map(|&check| Check {
                check,
                status: Status::Crit,
                detail: String::new(),
                value: None,
            })
            .collect()
    }

    fn has(advice: &[String], text: &str) -> bool {
        advice.iter().any(|a| a.contains(text))
    }

    /// Every command named is one the OS and the gateway have: no `openclaw
    /// gateway stop --timeout`, the service names dist installs, the lock
    /// folder of that OS.
    #[test]
    fn a_hung_gateway_gets_commands_of_its_os() {
        let hung = crit(&["hung", "fds", "instances"]);
        let linux = advice(&hung, &target("/home/a/.openclaw"), None, Os::Linux);
        for text in [
            "ss -tanp 'sport = :18789'",
            "openclaw gateway stop --force",
            "systemctl --user stop openclaw-gateway.service",
            "kill -9 <pid>",
            "rm -f /home/a/.openclaw/tmp/openclaw-*/gateway.*.lock",
            "openclaw gateway start && curl -fsS http://127.0.0.1:18789/healthz",
            "ls -l /proc/<pid>/fd",
            "ss -ltnp 'sport = :18789'",
        ] {
            assert!(has(&linux, text), "{text} in {linux:#?}");
        }

        let mac = advice(&hung, &target("/Users/a/.openclaw"), None, Os::Macos);
        for text in [
            "lsof -nP -iTCP:18789 >> that file",
            "launchctl kickstart -k gui/$(id -u)/ai.openclaw.gateway",
            "kill -9 <pid>",
            "rm -f /Users/a/.openclaw/tmp/openclaw-*/gateway.*.lock",
            "curl -fsS http://127.0.0.1:18789/healthz",
            "launchctl limit maxfiles",
            "lsof -nP -iTCP:18789 -sTCP:LISTEN",
        ] {
            assert!(has(&mac, text), "{text} in {mac:#?}");
        }
        assert!(!has(&mac, "/proc/") && !has(&mac, "ss -"), "{mac:#?}");

        let win = advice(&hung, &target(r"C:\Users\a\.openclaw"), None, Os::Windows);
        for text in [
            "Get-NetTCPConnection -LocalPort 18789 >> $f",
            "handle.exe -p <pid>",
            "schtasks /End /TN \"OpenClaw Gateway\"",
            "Stop-Process -Id <pid> -Force",
            r#"Remove-Item "C:\Users\a\.openclaw\tmp\openclaw\gateway.*.lock""#,
            "schtasks /Run /TN \"OpenClaw Gateway\"; curl.exe -fsS http://127.0.0.1:18789/healthz",
            "handle.exe -s -p <pid>",
            "Get-NetTCPConnection -LocalPort 18789 -State Listen",
        ] {
            assert!(has(&win, text), "{text} in {win:#?}");
        }
        assert!(!has(&win, "kill -9") && !has(&win, "rm -f"), "{win:#?}");

        for a in [&linux, &mac, &win] {
            assert!(!has(a, "--timeout"), "{a:#?}");
        }
    }

    #[test]
    fn a_crashed_gateway_gets_the_start_command_of_its_os() {
        let down = crit(&["process", "locks"]);
        let linux = advice(&down, &target("/s"), None, Os::Linux);
        assert_eq!(
            linux,
            [
                "Clear the stale lock left by the crash: rm -f /s/tmp/openclaw-*/gateway.*.lock",
                "Start and verify: openclaw gateway start && curl -fsS http://127.0.0.1:18789/healthz",
            ]
        );
        let win = advice(&down, &target(r"D:\s"), None, Os::Windows);
        assert_eq!(
            win,
            [
                r#"Clear the stale lock left by the crash: Remove-Item "D:\s\tmp\openclaw\gateway.*.lock""#,
                r#"Start and verify: schtasks /Run /TN "OpenClaw Gateway"; curl.exe -fsS http://127.0.0.1:18789/healthz"#,
            ]
        );
        let mac = advice(&down, &target("/s"), None, Os::Macos);
        assert!(has(&mac, "openclaw gateway start"), "{mac:#?}");
    }
}
