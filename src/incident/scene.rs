//! The scene: what the OS, the gateway's log and its state dir show of it
//! at the moment of the incident, each item written to the folder or
//! recorded as failed. Reads only; the gateway is never signalled (SIGUSR1
//! opens its inspector, SIGUSR2 restarts it in-process:
//! `docs/cli/gateway/restart-and-supervision.md` of the installed package)
//! and never traced.

use std::path::{Path, PathBuf};

use super::folder::Folder;
use crate::config::GatewaySpec;
use crate::platform::{FdTypes, Identity, Owned, PartialErrors, Platform};

/// Caps, per file.
pub const PROCESS_CAP: usize = 256 * 1024;
pub const THREADS_CAP: usize = 2 * 1024 * 1024;
pub const SOCKETS_CAP: usize = 1024 * 1024;
pub const LOG_TAIL_CAP: usize = 256 * 1024;
pub const LOG_WARNINGS_SCAN: u64 = 4 * 1024 * 1024;
/// The gateway's own cap on a stability bundle
/// (`MAX_DIAGNOSTIC_STABILITY_BUNDLE_BYTES`, dist/diagnostic-stability-bundle-CqpC4la9.mjs).
pub const BUNDLE_CAP: usize = 5 * 1024 * 1024;
/// Threads and socket rows listed at most.
pub const MAX_THREADS: usize = 4096;
pub const MAX_SOCKETS: usize = 20_000;

/// The process: identity, command line, vitals and the OS's status lines.
pub fn process(f: &mut Folder, p: &dyn Platform, id: Identity) {
    let pid = id.pid;
    let mut errs = PartialErrors::default();
    let mut missing = Vec::new();
    let vitals = match p.vitals(id, &mut errs) {
        Ok(v) => Some(v),
        Err(e) => {
            missing.push(format!("vitals: {e}"));
            None
        }
    };
    missing.extend(errs.0.iter().map(|e| e.to_string()));
    let status = match p.status(pid) {
        Ok(s) => s,
        Err(e) => {
            missing.push(format!("status: {e}"));
            Vec::new()
        }
    };
    let json = serde_json::json!({
        "pid": pid,
        "start": id.start,
        "title": p.title(pid),
        "namespaced_pid": p.namespaced_pid(pid),
        // The command line (redacted); never the environment.
        "cmdline": p.cmdline(pid),
        "children": p.descendants(pid),
        "vitals": vitals.map(|v| serde_json::json!({
            "resident_bytes": v.resident_bytes,
            "virtual_bytes": v.virtual_bytes,
            "cpu_seconds": v.cpu_seconds,
            "start_time_seconds": v.start_time_seconds,
            "threads": v.threads,
            "open_fds": v.open_fds,
            "max_fds": v.max_fds,
        })),
        "status": status
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::from(v)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    f.write(
        "process",
        "process.json",
        &text,
        PROCESS_CAP,
        joined(missing),
    );
    match p.limits(pid) {
        Ok(limits) => {
            let mut text = format!("{:<26}{:<21}{:<21}{}\n", "Limit", "Soft", "Hard", "Units");
            for l in limits {
                text.push_str(&format!(
                    "{:<26}{:<21}{:<21}{}\n",
                    l.name, l.soft, l.hard, l.unit
                ));
            }
            f.write("limits", "limits.txt", &text, PROCESS_CAP, None);
        }
        Err(e) => f.failed("limits", e.to_string()),
    }
}

/// Each thread's state and wait channel, and kernel stacks where readable.
pub fn threads(f: &mut Folder, p: &dyn Platform, pid: i32) {
    let threads = match p.threads(pid, MAX_THREADS) {
        Ok(t) => t,
        Err(e) => return f.failed("threads", e.to_string()),
    };
    let mut text = format!("{:<10} {:<6} {:<28} {}\n", "TID", "STATE", "WCHAN", "NAME");
    for t in &threads {
        text.push_str(&format!(
            "{:<10} {:<6} {:<28} {}\n",
            t.tid,
            t.state,
            t.wchan.as_deref().unwrap_or("?"),
            t.name
        ));
    }
    let stacks = threads.iter().filter(|t| t.kernel_stack.is_some()).count();
    for t in threads.iter().filter(|t| t.kernel_stack.is_some()) {
        text.push_str(&format!(
            "\n--- kernel stack of {} ({}) ---\n",
            t.tid, t.name
        ));
        text.push_str(t.kernel_stack.as_deref().unwrap_or(""));
    }
    let detail = (stacks == 0 && !threads.is_empty())
        .then(|| "kernel stacks not readable (root only on Linux)".to_string());
    f.write("threads", "threads.txt", &text, THREADS_CAP, detail);
}

/// Fds by type of the process and its children, and the socket table of
/// its port and of the sockets it holds.
pub fn fds_and_sockets(f: &mut Folder, p: &dyn Platform, spec: &GatewaySpec, pid: i32) {
    let mut owned = Owned::default();
    let mut by_pid = serde_json::Map::new();
    let mut missing = Vec::new();
    for q in std::iter::once(pid).chain(p.descendants(pid)) {
        match p.scan_fds(q, &mut owned) {
            Ok(Some(types)) => {
                by_pid.insert(q.to_string(), fd_json(&types));
            }
            Ok(None) => missing.push(format!("{q}: fds by type not available on this OS")),
            Err(e) => missing.push(e.to_string()),
        }
    }
    if by_pid.is_empty() {
        f.failed("fds", joined(missing).unwrap_or_default());
    } else {
        let text = serde_json::to_string_pretty(&by_pid).unwrap_or_default();
        f.write("fds", "fds.json", &text, PROCESS_CAP, joined(missing));
    }
    match p.socket_table(spec.port, pid, &owned, MAX_SOCKETS) {
        Ok(rows) => {
            let mut text = format!(
                "{:<5} {:<12} {:>8} {:>8} {:<46} {:<46} {:<5} {}\n",
                "PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL", "REMOTE", "OWNED", "INODE"
            );
            for r in &rows {
                text.push_str(&format!(
                    "{:<5} {:<12} {:>8} {:>8} {:<46} {:<46} {:<5} {}\n",
                    r.proto,
                    r.state,
                    r.recv_q,
                    r.send_q,
                    r.local,
                    r.remote,
                    if r.owned { "yes" } else { "no" },
                    r.inode.map(|i| i.to_string()).unwrap_or_default()
                ));
            }
            let detail = (rows.len() >= MAX_SOCKETS)
                .then(|| format!("the first {MAX_SOCKETS} sockets only"));
            f.write("sockets", "sockets.txt", &text, SOCKETS_CAP, detail);
        }
        Err(e) => f.failed("sockets", e.to_string()),
    }
}

fn fd_json(t: &FdTypes) -> serde_json::Value {
    FdTypes::NAMES
        .iter()
        .zip(t.values())
        .map(|(n, v)| (n.to_string(), serde_json::Value::from(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The log tail and its last WARN/ERROR lines.
pub fn logs(f: &mut Folder, spec: &GatewaySpec) {
    let Some(file) = crate::logtail::current_file(&spec.log_path) else {
        return f.failed(
            "log_tail",
            format!("no log file at {}", spec.log_path.display()),
        );
    };
    match tail(&file, LOG_TAIL_CAP as u64, true) {
        Ok(text) => f.write("log_tail", "log-tail.log", &text, LOG_TAIL_CAP, None),
        Err(e) => f.failed("log_tail", format!("{}: {e}", file.display())),
    }
    let recent = crate::collector::logs::tail_recent(&spec.log_path, LOG_WARNINGS_SCAN);
    let lines: Vec<serde_json::Value> = recent
        .iter()
        .map(|l| serde_json::json!({"time": l.time, "level": l.level, "message": l.message}))
        .collect();
    let text = serde_json::to_string_pretty(&lines).unwrap_or_default();
    f.write(
        "log_warnings",
        "log-warnings.json",
        &text,
        LOG_TAIL_CAP,
        None,
    );
}

/// The last `bytes` of `path`, from the first whole line; a symlink is
/// refused unless `follow`, anything but a regular file always.
fn tail(path: &Path, bytes: u64, follow: bool) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = crate::platform::file::open_regular(path, follow)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(bytes);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(bytes).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Ok(match (start > 0, text.find('\n')) {
        (true, Some(i)) => text[i + 1..].to_string(),
        _ => text,
    })
}

/// The newest of the gateway's persisted stability bundles: files
/// `openclaw-stability-*.json` in `<state dir>/logs/stability`, the newest
/// by modification time, then name (`resolveDiagnosticStabilityBundleDir`
/// and `listDiagnosticStabilityBundleFilesSync`,
/// dist/diagnostic-stability-bundle-CqpC4la9.mjs; docs/gateway/diagnostics.md).
pub fn newest_bundle(state_dir: &Path) -> Option<PathBuf> {
    let dir = state_dir.join("logs").join("stability");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let ok = name.starts_with("openclaw-stability-") && name.ends_with(".json");
            let mtime = e.metadata().ok()?.modified().ok()?;
            ok.then(|| (mtime, name, e.path()))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, _, p)| p)
}

pub fn bundle(f: &mut Folder, spec: &GatewaySpec) {
    let Some(path) = newest_bundle(&spec.state_dir) else {
        // Not a failure: the gateway writes one only after a fatal exit,
        // a shutdown timeout or a failed restart.
        return f.manifest.items.push(super::folder::Item {
            name: "stability_bundle".into(),
            file: None,
            status: "ok".into(),
            detail: Some("none: the gateway has persisted no stability bundle".into()),
        });
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("bundle.json");
    match tail(&path, BUNDLE_CAP as u64 + 1, false) {
        Ok(text) if text.len() <= BUNDLE_CAP => {
            let out = format!("stability-{name}");
            f.write("stability_bundle", &out, &text, BUNDLE_CAP, None)
        }
        Ok(_) => f.failed(
            "stability_bundle",
            format!(
                "{}: larger than the gateway's own cap of {BUNDLE_CAP} bytes",
                path.display()
            ),
        ),
        Err(e) => f.failed("stability_bundle", format!("{}: {e}", path.display())),
    }
}

fn joined(v: Vec<String>) -> Option<String> {
    (!v.is_empty()).then(|| v.join("; "))
}
