//! The ways to start a gateway again, each as the exact argv it runs.
//!
//! Every command runs without a shell, with a timeout, its output capped
//! ([`run`]); each tool's answer is parsed into a one-line outcome or a
//! clear error, never a panic. Defaults are the gateway's own service
//! identities (`GATEWAY_LAUNCH_AGENT_LABEL`, `GATEWAY_SYSTEMD_SERVICE_NAME`,
//! `GATEWAY_WINDOWS_TASK_NAME` in dist/constants-CJCmIHb-.mjs of
//! openclaw 2026.9.6).

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How the gateway is restarted, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Method {
    /// `<command> gateway restart --force --json`: the gateway's own CLI,
    /// which restarts through the service manager that owns it
    /// (docs/cli/gateway/restart-and-supervision.md).
    OpenclawCli {
        /// The CLI, with any leading arguments: `["openclaw"]`, or
        /// `["node", "/opt/openclaw/openclaw.mjs"]`.
        #[serde(default = "default_openclaw")]
        command: Vec<String>,
    },
    /// `systemctl [--user] reset-failed <unit>`, then `systemctl [--user]
    /// restart <unit>`: without the reset a unit that hit its start limit
    /// stays failed (upstream #116177).
    Systemd {
        #[serde(default = "default_unit")]
        unit: String,
        /// A user unit (`systemctl --user`), as `openclaw gateway install`
        /// writes it (`~/.config/systemd/user`); `false` for a system unit.
        #[serde(default = "default_true")]
        user: bool,
    },
    /// `launchctl kickstart -k gui/<uid>/<label>`.
    Launchd {
        #[serde(default = "default_label")]
        label: String,
        /// The user whose GUI domain holds the LaunchAgent [default: the
        /// exporter's own uid].
        #[serde(default)]
        uid: Option<u32>,
    },
    /// Wait for the task's instance to end (`schtasks /Query`), then
    /// `schtasks /Run /TN <name>`. The task has `MultipleInstancesPolicy`
    /// IgnoreNew: a run while an instance lingers does nothing. `recover`
    /// has killed the gateway's tree before.
    ScheduledTask {
        #[serde(default = "default_task")]
        name: String,
    },
    /// Any command, run without a shell. It must return once the gateway
    /// is started (start it in the background).
    Argv { argv: Vec<String> },
}

fn default_openclaw() -> Vec<String> {
    vec!["openclaw".into()]
}
fn default_unit() -> String {
    "openclaw-gateway.service".into()
}
fn default_true() -> bool {
    true
}
fn default_label() -> String {
    "ai.openclaw.gateway".into()
}
fn default_task() -> String {
    "OpenClaw Gateway".into()
}

/// Output kept of each stream of a command; the rest is read and dropped.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// How often a scheduled task's state is asked while its instance ends.
const TASK_POLL: Duration = Duration::from_millis(500);

impl Method {
    /// The name of the method, as in the config's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Method::OpenclawCli { .. } => "openclaw_cli",
            Method::Systemd { .. } => "systemd",
            Method::Launchd { .. } => "launchd",
            Method::ScheduledTask { .. } => "scheduled_task",
            Method::Argv { .. } => "argv",
        }
    }

    /// A method that cannot run: an empty argv or name.
    pub fn validate(&self) -> Result<(), String> {
        let empty = |what: &str| Err(format!("{}: {what} is empty", self.kind()));
        match self {
            Method::OpenclawCli { command } if command.first().is_none_or(|c| c.is_empty()) => {
                empty("command")
            }
            Method::Systemd { unit, .. } if unit.is_empty() => empty("unit"),
            Method::Launchd { label, .. } if label.is_empty() => empty("label"),
            Method::ScheduledTask { name } if name.is_empty() => empty("name"),
            Method::Argv { argv } if argv.first().is_none_or(|c| c.is_empty()) => empty("argv"),
            _ => Ok(()),
        }
    }

    /// The commands the start runs, in order, as exact argvs: what a dry
    /// run prints. The scheduled task's query is repeated until its
    /// instance has ended.
    pub fn plan(&self) -> Result<Vec<Vec<String>>, String> {
        self.validate()?;
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        Ok(match self {
            Method::OpenclawCli { command } => {
                let mut argv = command.clone();
                argv.extend(s(&["gateway", "restart", "--force", "--json"]));
                vec![argv]
            }
            Method::Systemd { unit, user } => ["reset-failed", "restart"]
                .iter()
                .map(|verb| {
                    let mut argv = s(&["systemctl"]);
                    if *user {
                        argv.push("--user".into());
                    }
                    argv.extend(s(&[verb, unit]));
                    argv
                })
                .collect(),
            Method::Launchd { label, uid } => {
                let uid = uid.map_or_else(own_uid, Ok)?;
                vec![s(&[
                    "launchctl",
                    "kickstart",
                    "-k",
                    &format!("gui/{uid}/{label}"),
                ])]
            }
            Method::ScheduledTask { name } => vec![
                s(&["schtasks", "/Query", "/TN", name, "/FO", "CSV", "/V"]),
                s(&["schtasks", "/Run", "/TN", name]),
            ],
            Method::Argv { argv } => vec![argv.clone()],
        })
    }

    /// The supervisor's own graceful stop, where `recover` asks it rather
    /// than SIGTERM: `systemctl [--user] stop <unit>`, so systemd does not
    /// count the stop as a crash and restart the unit meanwhile.
    pub fn stop_plan(&self) -> Option<Vec<String>> {
        let Method::Systemd { unit, user } = self else {
            return None;
        };
        let mut argv = vec!["systemctl".to_string()];
        if *user {
            argv.push("--user".into());
        }
        argv.extend(["stop".to_string(), unit.clone()]);
        Some(argv)
    }

    /// Start the gateway (again); `Ok` with what the tool said, `Err` with
    /// why it failed. At most `timeout` in all.
    pub fn start(&self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let plan = self.plan()?;
        match self {
            Method::OpenclawCli { .. } => parse_openclaw(&run(&plan[0], left())?),
            Method::Systemd { .. } => {
                // A unit that never failed answers reset-failed with success;
                // one that systemd does not know fails here and at restart,
                // which says so.
                let reset = run(&plan[0], left())?;
                let restarted = parse_plain(&run(&plan[1], left())?)?;
                Ok(match parse_plain(&reset) {
                    Ok(_) => format!("reset-failed, {restarted}"),
                    Err(e) => format!("{restarted} (reset-failed: {e})"),
                })
            }
            Method::Launchd { .. } | Method::Argv { .. } => parse_plain(&run(&plan[0], left())?),
            Method::ScheduledTask { name } => {
                loop {
                    let ran = run(&plan[0], left())?;
                    let status =
                        parse_plain(&ran).and_then(|_| parse_schtasks_status(&ran.stdout, name))?;
                    if status != TASK_RUNNING {
                        break;
                    }
                    if left() < TASK_POLL {
                        return Err(format!("task {name:?} is still {TASK_RUNNING} after {timeout:?}: its instance did not end"));
                    }
                    std::thread::sleep(TASK_POLL);
                }
                parse_plain(&run(&plan[1], left())?)
            }
        }
    }
}

/// The uid whose GUI domain launchd's LaunchAgent runs in.
fn own_uid() -> Result<u32, String> {
    #[cfg(unix)]
    return Ok(rustix::process::getuid().as_raw());
    #[cfg(not(unix))]
    Err("launchd: give the uid (no uids on this OS)".into())
}

/// One finished command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ran {
    pub argv: Vec<String>,
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The first [`OUTPUT_CAP`] bytes of each stream, lossily decoded.
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

/// Run `argv` without a shell, stdin closed, for at most `timeout`: then
/// it is killed (on Unix, with its process group) and this is an error.
pub fn run(argv: &[String], timeout: Duration) -> Result<Ran, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let shown = argv.join(" ");
    let started = Instant::now();
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Its own process group: a timeout kills what it started too, and a
    // Ctrl+C of the exporter's terminal does not reach a gateway it starts.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {shown:?}: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                kill_group(&mut child);
                return Err(format!(
                    "{shown:?} did not finish within {timeout:?}; killed"
                ));
            }
            Err(e) => return Err(format!("waiting for {shown:?}: {e}")),
        }
    };
    // A process it left running in the background may hold the pipes open:
    // give the readers a moment, then take what they have.
    let settle = Instant::now() + Duration::from_millis(300);
    while !(out.1.is_finished() && err.1.is_finished()) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = |b: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&b.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    };
    Ok(Ran {
        argv: argv.to_vec(),
        code: status.code(),
        stdout: text(&out.0),
        stderr: text(&err.0),
        took: started.elapsed(),
    })
}

type Drained = (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>);

/// Read a stream to its end on a thread, keeping its first [`OUTPUT_CAP`]
/// bytes.
fn drain(stream: Option<impl Read + Send + 'static>) -> Drained {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let sink = kept.clone();
    let handle = std::thread::spawn(move || {
        let Some(mut stream) = stream else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            let mut kept = sink.lock().unwrap_or_else(|e| e.into_inner());
            let room = OUTPUT_CAP.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(&buf[..room]);
        }
    });
    (kept, handle)
}

fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let pid = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The first line of text, trimmed, at most 300 characters: what a
/// one-line outcome quotes.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(300).collect()
}

/// A tool that says what went wrong on stderr and exits non-zero
/// (systemctl, launchctl, schtasks, a custom argv): its exit code decides.
pub fn parse_plain(ran: &Ran) -> Result<String, String> {
    let name = ran.argv.first().map_or("command", String::as_str);
    match ran.code {
        Some(0) => {
            let said = first_line(&ran.stdout);
            Ok(if said.is_empty() {
                format!("{name} exited 0 in {:.1} s", ran.took.as_secs_f64())
            } else {
                format!("{name}: {said}")
            })
        }
        code => {
            let why = [first_line(&ran.stderr), first_line(&ran.stdout)]
                .into_iter()
                .find(|l| !l.is_empty())
                .unwrap_or_else(|| "no output".into());
            let code = code.map_or("a signal".to_string(), |c| format!("exit code {c}"));
            Err(format!("{name} failed ({code}): {why}"))
        }
    }
}

/// `openclaw gateway restart --json` answers with one JSON object (written
/// with 2-space indents: `writeRuntimeJson`, dist/runtime-BC29JSZp.mjs):
/// `{"action":"restart","ok":true,"result":"restarted","message":..}` or
/// `{"ok":false,"error":..,"hints":[..],"result":"still-starting"}`
/// (`createDaemonActionContext`, dist/shared-Cd46Oq8Z.mjs). It exits 0 on
/// success, 2 while the gateway is still starting, 1 on failure. Still
/// starting is a start: `recover` verifies readiness itself.
pub fn parse_openclaw(ran: &Ran) -> Result<String, String> {
    let Some(v) = json_object(&ran.stdout) else {
        let why = [first_line(&ran.stderr), first_line(&ran.stdout)]
            .into_iter()
            .find(|l| !l.is_empty())
            .unwrap_or_else(|| "no output".into());
        return Err(format!(
            "openclaw gateway restart gave no JSON answer (exit code {}): {why}",
            ran.code.map_or("none".into(), |c| c.to_string())
        ));
    };
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let result = field("result");
    match v.get("ok").and_then(|x| x.as_bool()) {
        Some(true) if ran.code == Some(0) => {
            let message = field("message");
            Ok(format!("openclaw: {} {}", or(&result, "ok"), message)
                .trim_end()
                .to_string())
        }
        Some(false) if result == "still-starting" => {
            Ok(format!("openclaw: still-starting: {}", field("error")))
        }
        Some(_) => {
            let hints: Vec<&str> = v
                .get("hints")
                .and_then(|h| h.as_array())
                .map(|h| h.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let mut why = format!(
                "openclaw gateway restart failed: {}",
                or(&field("error"), &result)
            );
            if !hints.is_empty() {
                why += &format!(" (try: {})", hints.join("; "));
            }
            Err(why)
        }
        None => Err("openclaw gateway restart: its JSON answer has no \"ok\"".into()),
    }
}

fn or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// The JSON object in `text`: all of it, or from the first line that
/// opens one (a warning printed before it).
fn json_object(text: &str) -> Option<serde_json::Value> {
    let parse = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s.trim())
            .ok()
            .filter(|v| v.is_object())
    };
    parse(text).or_else(|| {
        let at = text.lines().scan(0, |pos, line| {
            let start = *pos;
            *pos += line.len() + 1;
            Some((start, line))
        });
        at.filter(|(_, line)| line.starts_with('{'))
            .find_map(|(start, _)| parse(&text[start..]))
    })
}

/// The task state `schtasks` shows while an instance runs.
pub const TASK_RUNNING: &str = "Running";

/// The `Status` of task `name` in `schtasks /Query /TN <name> /FO CSV /V`:
/// a header row naming the columns, then a row per trigger, each quoted
/// CSV. `Running` if any row says so. English column names: schtasks
/// localizes them, and a header without `Status` is an error.
pub fn parse_schtasks_status(csv: &str, name: &str) -> Result<String, String> {
    let mut rows = csv
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(split_csv);
    let header = rows.next().ok_or("schtasks: no answer")?;
    let col = |want: &str| header.iter().position(|h| h == want);
    let status = col("Status")
        .ok_or_else(|| format!("schtasks: no Status column in {:?}", header.join(",")))?;
    let task = col("TaskName");
    let mut states = Vec::new();
    for row in rows {
        // /V repeats the header before each folder's tasks.
        if row == header {
            continue;
        }
        let named = task.and_then(|t| row.get(t)).is_none_or(|t| {
            t.trim_start_matches('\\').eq_ignore_ascii_case(name)
                || t.ends_with(&format!("\\{name}"))
        });
        match row.get(status) {
            Some(s) if named => states.push(s.clone()),
            Some(_) => {}
            None => {
                return Err(format!(
                    "schtasks: a row without a Status: {:?}",
                    row.join(",")
                ))
            }
        }
    }
    if states.iter().any(|s| s == TASK_RUNNING) {
        return Ok(TASK_RUNNING.into());
    }
    states
        .into_iter()
        .next()
        .ok_or_else(|| format!("schtasks: no row for task {name:?}"))
}

/// One CSV line: fields separated by commas, each optionally in double
/// quotes with `""` for a quote.
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => field.push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(code: Option<i32>, stdout: &str, stderr: &str) -> Ran {
        Ran {
            argv: vec!["tool".into()],
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            took: Duration::from_millis(5),
        }
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let m: Method = serde_yaml::from_str("kind: systemd").unwrap();
        assert_eq!(
            m,
            Method::Systemd {
                unit: "openclaw-gateway.service".into(),
                user: true
            }
        );
        let m: Method = serde_yaml::from_str("kind: openclaw_cli").unwrap();
        assert_eq!(
            m.plan().unwrap(),
            [["openclaw", "gateway", "restart", "--force", "--json"]]
        );
        let m: Method = serde_yaml::from_str("kind: launchd\nuid: 501").unwrap();
        assert_eq!(
            m.plan().unwrap(),
            [[
                "launchctl",
                "kickstart",
                "-k",
                "gui/501/ai.openclaw.gateway"
            ]]
        );
        let m: Method = serde_yaml::from_str("kind: scheduled_task").unwrap();
        assert_eq!(
            m.plan().unwrap()[1],
            ["schtasks", "/Run", "/TN", "OpenClaw Gateway"]
        );
        let m: Method =
            serde_yaml::from_str("kind: systemd\nunit: gw.service\nuser: false").unwrap();
        assert_eq!(
            m.plan().unwrap(),
            [
                ["systemctl", "reset-failed", "gw.service"],
                ["systemctl", "restart", "gw.service"]
            ]
        );
        for bad in [
            "kind: systemd\nunits: x",
            "kind: nope",
            "argv: [a]",
            "kind: argv",
            "kind: argv\nargv: []\nx: 1",
        ] {
            assert!(serde_yaml::from_str::<Method>(bad).is_err(), "{bad}");
        }
        let empty: Method = serde_yaml::from_str("kind: argv\nargv: []").unwrap();
        assert!(empty.plan().unwrap_err().contains("argv is empty"));
    }

    #[test]
    fn openclaw_answers() {
        let ok = "{\n  \"action\": \"restart\",\n  \"ok\": true,\n  \"result\": \"restarted\",\n  \"message\": \"Gateway restarted.\"\n}\n";
        assert_eq!(
            parse_openclaw(&ran(Some(0), ok, "")).unwrap(),
            "openclaw: restarted Gateway restarted."
        );
        // A warning line before the JSON.
        let warned = format!("Warning: legacy systemd metadata was not refreshed\n{ok}");
        assert!(parse_openclaw(&ran(Some(0), &warned, "")).is_ok());
        let failed = r#"{"action":"restart","ok":false,"error":"Gateway restart timed out after 60s waiting for health checks.","hints":["openclaw gateway status --deep"]}"#;
        let e = parse_openclaw(&ran(Some(1), failed, "")).unwrap_err();
        assert!(
            e.contains("timed out after 60s") && e.contains("status --deep"),
            "{e}"
        );
        let starting = r#"{"ok":false,"result":"still-starting","error":"still starting"}"#;
        assert!(parse_openclaw(&ran(Some(2), starting, "")).is_ok());
        // ok:true with a failing exit code is not trusted.
        assert!(parse_openclaw(&ran(Some(1), ok, "")).is_err());
        for garbage in [
            "",
            "Error: unknown command 'gateway'",
            "[1,2]",
            "{\"ok\":\"yes\"}",
            "{\"ok\":",
            "\u{0}\u{ff}",
        ] {
            let e = parse_openclaw(&ran(Some(1), garbage, "boom")).unwrap_err();
            assert!(
                e.starts_with("openclaw gateway restart"),
                "{garbage:?}: {e}"
            );
        }
    }

    #[test]
    fn plain_answers() {
        assert_eq!(
            parse_plain(&ran(Some(0), "", "")).unwrap(),
            "tool exited 0 in 0.0 s"
        );
        let e = parse_plain(&ran(
            Some(5),
            "",
            "Failed to restart x.service: Unit x.service not found.\n",
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "tool failed (exit code 5): Failed to restart x.service: Unit x.service not found."
        );
        assert!(parse_plain(&ran(None, "", ""))
            .unwrap_err()
            .contains("a signal"));
    }

    #[test]
    fn schtasks_status() {
        let header = "\"HostName\",\"TaskName\",\"Next Run Time\",\"Status\",\"Logon Mode\"";
        let row =
            |s: &str| format!("\"PC\",\"\\OpenClaw Gateway\",\"N/A\",\"{s}\",\"Interactive only\"");
        let csv = format!("{header}\r\n{}\r\n", row("Running"));
        assert_eq!(
            parse_schtasks_status(&csv, "OpenClaw Gateway").unwrap(),
            "Running"
        );
        let csv = format!("{header}\n{}\n{header}\n{}\n", row("Ready"), row("Ready"));
        assert_eq!(
            parse_schtasks_status(&csv, "OpenClaw Gateway").unwrap(),
            "Ready"
        );
        assert_eq!(split_csv("\"a,b\",\"c\"\"d\",e"), ["a,b", "c\"d", "e"]);
        for garbage in [
            "",
            "ERROR: The system cannot find the file specified.",
            "\"A\",\"B\"\n\"1\",\"2\"",
            &format!("{header}\n\"PC\""),
        ] {
            assert!(
                parse_schtasks_status(garbage, "OpenClaw Gateway").is_err(),
                "{garbage:?}"
            );
        }
        assert!(
            parse_schtasks_status(&format!("{header}\n"), "OpenClaw Gateway")
                .unwrap_err()
                .contains("no row")
        );
    }

    #[cfg(unix)]
    #[test]
    fn runs_without_a_shell_with_a_timeout_and_a_cap() {
        let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        // No shell: `$HOME` and `;` reach the program as they are.
        let r = run(&s(&["echo", "$HOME;", "x"]), Duration::from_secs(10)).unwrap();
        assert_eq!((r.code, r.stdout.as_str()), (Some(0), "$HOME; x\n"));
        let r = run(
            &s(&["head", "-c", "200000", "/dev/zero"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(r.stdout.len(), OUTPUT_CAP);
        let started = Instant::now();
        let e = run(&s(&["sleep", "30"]), Duration::from_millis(300)).unwrap_err();
        assert!(
            e.contains("did not finish") && started.elapsed() < Duration::from_secs(5),
            "{e}"
        );
        assert!(run(&s(&["/nonexistent/tool"]), Duration::from_secs(1))
            .unwrap_err()
            .contains("cannot run"));
    }
}
