//! Where a gateway that names neither keeps its state and its log, on each
//! OS, resolved as the gateway 2026.9.6 resolves them (its files cited
//! below, under `node_modules/openclaw/`). The rules are pure functions of
//! the environment and a few file checks, so every OS's are tested on any.

use std::path::{Path, PathBuf};

use crate::os::Os;

/// An environment variable by name.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's own environment.
fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// A home value as the gateway accepts it: trimmed, and neither empty nor
/// the strings `undefined` and `null` (`normalizeHomeDirValue`,
/// dist/home-dir-D0b-ywue.mjs).
fn home_value(env: Env, key: &str) -> Option<String> {
    env(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v != "undefined" && v != "null")
}

/// The OS home: `HOME`, then `USERPROFILE`, then Node's `os.homedir()`
/// (`os_home`): on every OS, Windows included (`resolveRawOsHomeDir`,
/// dist/home-dir-D0b-ywue.mjs).
fn raw_os_home(env: Env, os_home: Option<PathBuf>) -> Option<PathBuf> {
    home_value(env, "HOME")
        .or_else(|| home_value(env, "USERPROFILE"))
        .map(PathBuf::from)
        .or(os_home)
}

/// OpenClaw's home: `OPENCLAW_HOME` (a leading `~` is the OS home), else
/// the OS home (`resolveEffectiveHomeDir`, dist/home-dir-D0b-ywue.mjs).
pub fn effective_home(env: Env, os_home: Option<PathBuf>) -> Option<PathBuf> {
    let Some(explicit) = home_value(env, "OPENCLAW_HOME") else {
        return raw_os_home(env, os_home);
    };
    match tilde_rest(&explicit) {
        Some(rest) => raw_os_home(env, os_home).map(|home| join_rest(home, rest)),
        None => Some(PathBuf::from(explicit)),
    }
}

/// What follows a leading `~`, `~/` or `~\`; `None` without one.
fn tilde_rest(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('~')?;
    match rest.chars().next() {
        None => Some(""),
        Some('/' | '\\') => Some(&rest[1..]),
        Some(_) => None,
    }
}

fn join_rest(home: PathBuf, rest: &str) -> PathBuf {
    if rest.is_empty() {
        home
    } else {
        home.join(rest)
    }
}

/// The gateway's state dir: `OPENCLAW_STATE_DIR` (a leading `~` is
/// OpenClaw's home), else `<home>/.openclaw`, or the legacy
/// `<home>/.clawdbot` where only that exists (`resolveStateDir`,
/// dist/paths-DehQwyE0.mjs). The home is [`effective_home`], else the
/// current dir, as the gateway's `resolveRequiredHomeDir`
/// (dist/home-dir-BKwhAL2c.mjs). The same on every OS.
pub fn state_dir_with(
    env: Env,
    os_home: Option<PathBuf>,
    cwd: Option<PathBuf>,
    exists: &dyn Fn(&Path) -> bool,
) -> PathBuf {
    let home = || {
        effective_home(env, os_home.clone())
            .or_else(|| cwd.clone())
            .unwrap_or_default()
    };
    if let Some(dir) = env("OPENCLAW_STATE_DIR")
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
    {
        return match tilde_rest(&dir) {
            Some(rest) => join_rest(home(), rest),
            None => PathBuf::from(dir),
        };
    }
    let home = home();
    let new = home.join(".openclaw");
    let legacy = home.join(".clawdbot");
    if !exists(&new) && exists(&legacy) {
        legacy
    } else {
        new
    }
}

/// [`state_dir_with`] for this process: its environment, the OS's home
/// (`HOME` or the password database on Unix, the profile dir on Windows,
/// as Node's `os.homedir()`), its current dir, made absolute.
pub fn default_state_dir() -> PathBuf {
    let dir = state_dir_with(
        &process_env,
        std::env::home_dir(),
        std::env::current_dir().ok(),
        &|p| p.exists(),
    );
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The state dir another process's environment names for a gateway
/// ([`state_dir_with`]), on `os` (Windows names variables in any case);
/// `None` when it names neither a state dir nor a home. Its `os.homedir()`
/// and current dir are not known, and a relative dir is left relative.
pub fn state_dir_in(environ: &[(String, String)], os: Os) -> Option<PathBuf> {
    let var = |key: &str| {
        environ
            .iter()
            .find(|(k, _)| match os {
                Os::Windows => k.eq_ignore_ascii_case(key),
                Os::Linux | Os::Macos => k == key,
            })
            .map(|(_, v)| v.clone())
    };
    let named = var("OPENCLAW_STATE_DIR").is_some_and(|d| !d.trim().is_empty());
    if !named && effective_home(&var, None).is_none() {
        return None;
    }
    Some(state_dir_with(&var, None, None, &|p| p.exists()))
}

/// Node's `os.tmpdir()` on `os`: `TEMP`, `TMP`, then `%SystemRoot%\temp`
/// on Windows; `TMPDIR`, `TMP`, `TEMP`, then `/tmp` elsewhere; without a
/// trailing separator.
pub fn node_tmpdir(os: Os, env: Env) -> String {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let dir = match os {
        Os::Windows => var("TEMP").or_else(|| var("TMP")).unwrap_or_else(|| {
            let root = var("SystemRoot").or_else(|| var("windir"));
            format!(r"{}\temp", root.as_deref().unwrap_or(r"C:\Windows"))
        }),
        Os::Linux | Os::Macos => var("TMPDIR")
            .or_else(|| var("TMP"))
            .or_else(|| var("TEMP"))
            .unwrap_or_else(|| "/tmp".into()),
    };
    let sep = os.separator();
    if dir.len() > 1 && dir.ends_with(sep) && !dir.ends_with(":\\") {
        dir[..dir.len() - 1].to_string()
    } else {
        dir
    }
}

/// The folder the gateway's default log, `openclaw-YYYY-MM-DD.log`, is in.
///
/// The gateway prefers `/tmp/openclaw`; it falls back to `<os.tmpdir()>/
/// openclaw-<uid>` (plain `openclaw` without a uid) when `/tmp/openclaw` is
/// unsafe (not a directory, a symlink, another user's), and always on
/// Windows (`resolvePreferredOpenClawTmpDir` with `skipPreferredOnWindows`,
/// dist/tmp-openclaw-dir-BSb3HetY.mjs; `resolveSecureTempRoot`,
/// node_modules/@openclaw/fs-safe/dist/secure-temp-dir.js; docs/logging.md).
///
/// The exporter may run as another user than the gateway, so on POSIX it
/// takes the fallback only when `/tmp/openclaw` is unusable for this user
/// (`preferred_usable` false) and the fallback folder exists.
pub fn log_dir_with(
    os: Os,
    env: Env,
    uid: Option<u32>,
    preferred_usable: bool,
    is_dir: &dyn Fn(&Path) -> bool,
) -> PathBuf {
    let name = match uid {
        Some(uid) if os != Os::Windows => format!("openclaw-{uid}"),
        _ => "openclaw".to_string(),
    };
    let fallback = PathBuf::from(os.join(&node_tmpdir(os, env), &[&name]));
    if os == Os::Windows || (!preferred_usable && is_dir(&fallback)) {
        fallback
    } else {
        PathBuf::from(PREFERRED_LOG_DIR)
    }
}

/// The gateway's preferred log folder on POSIX (`DEFAULT_POSIX_TMP_ROOT`,
/// dist/tmp-openclaw-dir-BSb3HetY.mjs).
pub const PREFERRED_LOG_DIR: &str = "/tmp/openclaw";

/// [`log_dir_with`] for this process.
pub fn default_log_dir() -> PathBuf {
    let uid = current_uid();
    let preferred_usable = preferred_usable(Path::new(PREFERRED_LOG_DIR), uid);
    log_dir_with(Os::CURRENT, &process_env, uid, preferred_usable, &|p| {
        p.is_dir()
    })
}

/// The exporter's own state dir, where it keeps incident snapshots
/// (`incident.dir` defaults to its `incidents` folder): systemd's
/// `$STATE_DIRECTORY` (the unit's `StateDirectory=`) on Linux; else, as
/// root, `/var/lib/openclaw-gateway-exporter` on Linux and
/// `/Library/Application Support/openclaw-gateway-exporter` on macOS;
/// else under the user's home, `$XDG_STATE_HOME` or `~/.local/state` on
/// Linux, `~/Library/Application Support` on macOS; on Windows
/// `%ProgramData%\openclaw-gateway-exporter` (a service runs as
/// LocalSystem). Without a home: the OS's temp dir.
pub fn exporter_state_dir_with(os: Os, env: Env, root: bool, home: Option<PathBuf>) -> PathBuf {
    const NAME: &str = "openclaw-gateway-exporter";
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let under = |base: PathBuf| base.join(NAME);
    match os {
        Os::Linux => {
            if let Some(d) = var("STATE_DIRECTORY") {
                // Several directories are separated by colons; the first.
                return PathBuf::from(d.split(':').next().unwrap_or(&d));
            }
            if root {
                return under(PathBuf::from("/var/lib"));
            }
            if let Some(x) = var("XDG_STATE_HOME") {
                return under(PathBuf::from(x));
            }
            match home {
                Some(h) => under(h.join(".local").join("state")),
                None => under(PathBuf::from(node_tmpdir(os, env))),
            }
        }
        Os::Macos => match (root, home) {
            (false, Some(h)) => under(h.join("Library").join("Application Support")),
            _ => under(PathBuf::from("/Library/Application Support")),
        },
        Os::Windows => {
            let data = var("ProgramData").unwrap_or_else(|| r"C:\ProgramData".to_string());
            PathBuf::from(os.join(&data, &[NAME]))
        }
    }
}

/// [`exporter_state_dir_with`] for this process.
pub fn exporter_state_dir() -> PathBuf {
    exporter_state_dir_with(
        Os::CURRENT,
        &process_env,
        current_uid() == Some(0),
        std::env::home_dir(),
    )
}

/// This process's real uid, as Node's `process.getuid()`; none on Windows.
fn current_uid() -> Option<u32> {
    #[cfg(unix)]
    return Some(rustix::process::getuid().as_raw());
    #[cfg(not(unix))]
    None
}

/// Whether the gateway of this user would write to `dir`: it is missing
/// (the gateway creates it) or a real folder of `uid` (one with loose
/// permissions it tightens) (`resolveDirState` and `tryRepair` in
/// secure-temp-dir.js).
fn preferred_usable(dir: &Path, uid: Option<u32>) -> bool {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) => return e.kind() == std::io::ErrorKind::NotFound,
        Ok(meta) => meta,
    };
    #[cfg(unix)]
    let mine = {
        use std::os::unix::fs::MetadataExt;
        uid.is_none_or(|uid| meta.uid() == uid)
    };
    #[cfg(not(unix))]
    let mine = uid.is_none();
    meta.is_dir() && mine
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn state(vars: &[(&str, &str)], existing: &[&str]) -> PathBuf {
        let existing: Vec<PathBuf> = existing.iter().map(PathBuf::from).collect();
        state_dir_with(
            &env(vars),
            Some("/os-home".into()),
            Some("/cwd".into()),
            &|p| existing.iter().any(|e| e == p),
        )
    }

    #[test]
    fn exporter_state_dir_on_every_os() {
        let dir = |os, vars: &[(&str, &str)], root| {
            exporter_state_dir_with(os, &env(vars), root, Some("/home/me".into()))
        };
        assert_eq!(
            dir(
                Os::Linux,
                &[("STATE_DIRECTORY", "/var/lib/x:/var/lib/y")],
                false
            ),
            Path::new("/var/lib/x")
        );
        assert_eq!(
            dir(Os::Linux, &[], true),
            Path::new("/var/lib/openclaw-gateway-exporter")
        );
        assert_eq!(
            dir(Os::Linux, &[("XDG_STATE_HOME", "/st")], false),
            Path::new("/st/openclaw-gateway-exporter")
        );
        assert_eq!(
            dir(Os::Linux, &[], false),
            Path::new("/home/me/.local/state/openclaw-gateway-exporter")
        );
        assert_eq!(
            dir(Os::Macos, &[], false),
            Path::new("/home/me/Library/Application Support/openclaw-gateway-exporter")
        );
        assert_eq!(
            dir(Os::Macos, &[], true),
            Path::new("/Library/Application Support/openclaw-gateway-exporter")
        );
        assert_eq!(
            dir(Os::Windows, &[("ProgramData", r"D:\PD")], true),
            Path::new(r"D:\PD\openclaw-gateway-exporter")
        );
    }

    #[test]
    fn state_dir_follows_the_gateway_on_every_os() {
        // OPENCLAW_STATE_DIR first, trimmed, `~` from OpenClaw's home.
        assert_eq!(
            state(&[("OPENCLAW_STATE_DIR", " /srv/oc ")], &[]),
            Path::new("/srv/oc")
        );
        assert_eq!(
            state(&[("OPENCLAW_STATE_DIR", "~/oc"), ("HOME", "/home/a")], &[]),
            Path::new("/home/a/oc")
        );
        assert_eq!(
            state(
                &[("OPENCLAW_STATE_DIR", "~"), ("OPENCLAW_HOME", "/oc-home")],
                &[]
            ),
            Path::new("/oc-home")
        );
        // An empty one is unset.
        assert_eq!(
            state(&[("OPENCLAW_STATE_DIR", "  "), ("HOME", "/home/a")], &[]),
            Path::new("/home/a/.openclaw")
        );
        // OPENCLAW_HOME, then HOME, then USERPROFILE (Windows sets it, not
        // HOME), then os.homedir(), then the current dir.
        assert_eq!(
            state(&[("OPENCLAW_HOME", "/oc"), ("HOME", "/home/a")], &[]),
            Path::new("/oc/.openclaw")
        );
        assert_eq!(
            state(
                &[("OPENCLAW_HOME", "~/x"), ("USERPROFILE", "/users/me")],
                &[]
            ),
            Path::new("/users/me/x/.openclaw")
        );
        assert_eq!(
            state(&[("HOME", "undefined"), ("USERPROFILE", "/users/me")], &[]),
            Path::new("/users/me/.openclaw")
        );
        assert_eq!(state(&[], &[]), Path::new("/os-home/.openclaw"));
        let none = state_dir_with(&env(&[]), None, Some("/cwd".into()), &|_| false);
        assert_eq!(none, Path::new("/cwd/.openclaw"));
        // The legacy folder only where it alone exists.
        assert_eq!(
            state(&[("HOME", "/h")], &["/h/.clawdbot"]),
            Path::new("/h/.clawdbot")
        );
        assert_eq!(
            state(&[("HOME", "/h")], &["/h/.clawdbot", "/h/.openclaw"]),
            Path::new("/h/.openclaw")
        );
    }

    #[test]
    fn default_state_dir_reads_this_process() {
        let dir = default_state_dir();
        assert!(dir.is_absolute(), "{}", dir.display());
        match std::env::var_os("OPENCLAW_STATE_DIR").filter(|d| !d.is_empty()) {
            Some(_) => {}
            None => assert!(
                dir.ends_with(".openclaw") || dir.ends_with(".clawdbot"),
                "{}",
                dir.display()
            ),
        }
    }

    #[test]
    fn state_dir_in_another_processs_environment() {
        let environ = |vars: &[(&str, &str)]| -> Vec<(String, String)> {
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let linux = |vars: &[(&str, &str)]| state_dir_in(&environ(vars), Os::Linux);
        assert_eq!(
            linux(&[("HOME", "/nonexistent/h")]),
            Some("/nonexistent/h/.openclaw".into())
        );
        assert_eq!(
            linux(&[("HOME", "/h"), ("OPENCLAW_STATE_DIR", "/srv/oc")]),
            Some("/srv/oc".into())
        );
        assert_eq!(
            linux(&[("HOME", "/h"), ("OPENCLAW_HOME", "~/oc")]),
            Some("/h/oc/.openclaw".into())
        );
        assert_eq!(linux(&[("PATH", "/bin")]), None);
        assert_eq!(linux(&[("userprofile", "/u")]), None);
        // A gateway started by the scheduled task has USERPROFILE, not HOME,
        // in whatever case.
        let win = state_dir_in(&environ(&[("UserProfile", "/nonexistent/u")]), Os::Windows);
        assert_eq!(win, Some("/nonexistent/u/.openclaw".into()));
    }

    #[test]
    fn node_tmpdir_per_os() {
        let win = |vars: &[(&str, &str)]| node_tmpdir(Os::Windows, &env(vars));
        assert_eq!(
            win(&[
                ("TEMP", r"C:\Users\me\AppData\Local\Temp\"),
                ("TMP", r"D:\t")
            ]),
            r"C:\Users\me\AppData\Local\Temp"
        );
        assert_eq!(win(&[("TMP", r"D:\t")]), r"D:\t");
        assert_eq!(win(&[("SystemRoot", r"C:\WINDOWS")]), r"C:\WINDOWS\temp");
        assert_eq!(win(&[("TEMP", r"C:\")]), r"C:\");
        let mac = |vars: &[(&str, &str)]| node_tmpdir(Os::Macos, &env(vars));
        assert_eq!(
            mac(&[("TMPDIR", "/var/folders/x7/abc/T/")]),
            "/var/folders/x7/abc/T"
        );
        assert_eq!(mac(&[("TEMP", "/t")]), "/t");
        assert_eq!(node_tmpdir(Os::Linux, &env(&[])), "/tmp");
        assert_eq!(node_tmpdir(Os::Linux, &env(&[("TMPDIR", "/")])), "/");
    }

    #[test]
    fn log_dir_per_os() {
        let temp = [("TEMP", r"C:\Users\me\AppData\Local\Temp")];
        // Windows: always the OS temp dir's `openclaw`, no uid.
        for usable in [true, false] {
            let dir = log_dir_with(Os::Windows, &env(&temp), None, usable, &|_| true);
            assert_eq!(
                dir,
                PathBuf::from(r"C:\Users\me\AppData\Local\Temp\openclaw")
            );
        }
        // macOS and Linux: /tmp/openclaw, unless it is unusable and the
        // user-scoped fallback exists.
        let tmpdir = [("TMPDIR", "/var/folders/x7/abc/T/")];
        let fallback = Path::new("/var/folders/x7/abc/T/openclaw-501");
        for os in [Os::Macos, Os::Linux] {
            let dir = |usable, exists: bool| {
                log_dir_with(os, &env(&tmpdir), Some(501), usable, &|p| {
                    exists && p == fallback
                })
            };
            assert_eq!(dir(true, true), Path::new("/tmp/openclaw"));
            assert_eq!(dir(false, false), Path::new("/tmp/openclaw"));
            assert_eq!(dir(false, true), fallback);
        }
        let no_uid = log_dir_with(Os::Linux, &env(&[]), None, false, &|_| true);
        assert_eq!(no_uid, Path::new("/tmp/openclaw"));
    }

    #[cfg(unix)]
    #[test]
    fn preferred_dir_is_usable_when_missing_or_ours() {
        let uid = current_uid();
        let dir = tempfile::tempdir().unwrap();
        assert!(preferred_usable(&dir.path().join("missing"), uid));
        assert!(preferred_usable(dir.path(), uid));
        let other = uid.map(|u| u.wrapping_add(1));
        assert!(!preferred_usable(dir.path(), other));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(!preferred_usable(&file, uid));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(!preferred_usable(&link, uid));
    }

    #[test]
    fn default_log_dir_is_the_preferred_one_or_under_the_temp_dir() {
        let dir = default_log_dir();
        let tmp = node_tmpdir(Os::CURRENT, &process_env);
        assert!(
            dir == Path::new(PREFERRED_LOG_DIR) || dir.starts_with(&tmp),
            "{}",
            dir.display()
        );
        if Os::CURRENT == Os::Windows {
            assert_eq!(dir, Path::new(&tmp).join("openclaw"));
        }
    }
}
