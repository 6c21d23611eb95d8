//! Following the gateway's JSON-lines log without ever re-reading it.
//!
//! The configured path is a file, or a folder in which the newest
//! `openclaw-*.log` (the gateway writes `openclaw-YYYY-MM-DD.log`) is followed.
//! Handled: the daily switch to a new file, rotation by rename (the old file
//! is read to its end first), truncation (copytruncate), and a missing file.
//! The first file seen at startup is read from its end: history is not counted.

use crate::platform::{file, FileId};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A longer line is not a log line we can use; it is skipped and counted.
pub const MAX_LINE: usize = 64 * 1024;

struct Open {
    path: PathBuf,
    file: File,
    inode: FileId,
    offset: u64,
}

impl Open {
    /// Open `path` at its start. The inode is the opened file's, so a rename
    /// between looking and opening cannot mix up two files.
    fn new(path: PathBuf) -> Option<Open> {
        let file = File::open(&path).ok()?;
        let inode = file::file_id(&file).ok()?;
        Some(Open {
            path,
            file,
            inode,
            offset: 0,
        })
    }
}

/// The gateway rotates `<stem>.log` to `<stem>.1.log`, `.1` to `.2`, and so
/// on. Given the live path and the inode we were reading, which has just
/// been rotated, the files rotated after it (`.k-1` down to `.1` when ours is
/// now `.k`), oldest first. None when ours is not among them (deleted, or
/// another naming scheme): then there is no telling what came after it.
fn rotated_since(live: &Path, inode: FileId) -> Vec<Open> {
    const MAX_ROTATED: u32 = 32;
    let Some(ours) = (1..=MAX_ROTATED).find(|&n| {
        rotated_path(live, n)
            .and_then(|p| file::path_id(&p).ok())
            .is_some_and(|id| id == inode)
    }) else {
        return Vec::new();
    };
    (1..ours)
        .rev()
        .filter_map(|n| Open::new(rotated_path(live, n)?))
        .collect()
}

/// `<stem>.<n>.log` next to the live `<stem>.log`; None for another name.
fn rotated_path(live: &Path, n: u32) -> Option<PathBuf> {
    let stem = live.file_name()?.to_str()?.strip_suffix(".log")?;
    Some(live.with_file_name(format!("{stem}.{n}.log")))
}

pub struct LogFollower {
    configured: PathBuf,
    open: Option<Open>,
    /// Whether the first poll happened: later files are read from the start.
    seen_any: bool,
    /// Files rotated away before we had read them, oldest first: read from
    /// their start before the live file.
    backlog: std::collections::VecDeque<Open>,
    /// The file last closed because another took its place: its path and inode.
    closed: Option<(PathBuf, FileId)>,
    /// The last file opened. In a folder, a file whose name sorts before it
    /// (yesterday's, while today's is being rotated) is never followed again.
    newest: Option<PathBuf>,
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line.
    skipping: bool,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    pub bytes: u64,
    pub lines: u64,
    /// Lines longer than [`MAX_LINE`], skipped.
    pub too_long: u64,
    pub file_present: bool,
}

/// The file to follow now.
pub fn current_file(configured: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(configured).ok()?;
    if !meta.is_dir() {
        return Some(configured.to_path_buf());
    }
    // Listed again only when the folder changed (`file::names`).
    crate::platform::file::names_of(configured, &meta)
        .ok()?
        .iter()
        .filter(|n| n.to_str().is_some_and(is_live_log_name))
        .max()
        .map(|n| configured.join(n))
}

/// `openclaw-YYYY-MM-DD.log` (or `openclaw-<profile>-YYYY-MM-DD.log`), not a
/// rotated `openclaw-YYYY-MM-DD.1.log`: the gateway rotates by renaming the
/// live file to `.1.log`, `.1.log` to `.2.log`, and so on.
fn is_live_log_name(name: &str) -> bool {
    name.strip_prefix("openclaw-")
        .and_then(|n| n.strip_suffix(".log"))
        .is_some_and(|stem| !stem.is_empty() && !stem.contains('.'))
}

impl LogFollower {
    pub fn new(configured: PathBuf) -> LogFollower {
        LogFollower {
            configured,
            open: None,
            seen_any: false,
            newest: None,
            backlog: Default::default(),
            closed: None,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Read what was appended since the last poll, at most `budget` bytes,
    /// and hand each complete line to `on_line`.
    pub fn poll(&mut self, budget: u64, mut on_line: impl FnMut(&[u8])) -> Poll {
        let mut stats = Poll::default();
        let target = current_file(&self.configured)
            .filter(|t| self.newest.as_ref().is_none_or(|newest| t >= newest));
        let target_inode = target.as_deref().and_then(|p| file::path_id(p).ok());

        if let Some(open) = &mut self.open {
            let switched = target_inode != Some(open.inode);
            if let (false, Some(path)) = (switched, &target) {
                // The same file, perhaps under another name (renamed): keep
                // our place.
                open.path.clone_from(path);
                // Truncated in place: start over.
                if open.file.metadata().map(|m| m.len()).unwrap_or(0) < open.offset {
                    open.offset = 0;
                    let _ = open.file.seek(SeekFrom::Start(0));
                    self.drop_partial_line();
                }
            }
            // Drain the file we have, switched or not.
            self.read_into(&mut stats, budget, &mut on_line);
            if switched && stats.bytes < budget {
                if let Some(done) = self.open.take() {
                    self.closed = Some((done.path, done.inode));
                }
                self.drop_partial_line();
            }
        }
        // The file we closed was rotated away under the live name: the files
        // created and rotated away again since then come before the new live
        // one.
        if let (Some(path), Some((closed, inode))) = (&target, &self.closed) {
            if path == closed {
                self.backlog.extend(rotated_since(closed, *inode));
            }
            self.closed = None;
        }
        while self.open.is_none() {
            let Some(next) = self.backlog.pop_front() else {
                break;
            };
            self.open = Some(next);
            let left = budget.saturating_sub(stats.bytes);
            self.read_into(&mut stats, left, &mut on_line);
            if stats.bytes >= budget {
                // Finish it on the next poll (it is not the live file, so
                // that poll drains it and moves on).
                return self.finish(stats);
            }
            self.open = None;
            self.drop_partial_line();
        }
        if self.open.is_none() {
            if let Some(path) = target {
                if let Some(mut open) = Open::new(path) {
                    if !self.seen_any {
                        open.offset = open.file.seek(SeekFrom::End(0)).unwrap_or(0);
                    }
                    self.newest = Some(open.path.clone());
                    self.open = Some(open);
                    let left = budget.saturating_sub(stats.bytes);
                    self.read_into(&mut stats, left, &mut on_line);
                }
            }
        }
        self.finish(stats)
    }

    /// Forget the unfinished line of the file just left or truncated.
    fn drop_partial_line(&mut self) {
        self.partial.clear();
        self.skipping = false;
    }

    fn finish(&mut self, mut stats: Poll) -> Poll {
        // What exists at the first poll is history; files that show up later
        // are read from their start.
        self.seen_any = true;
        stats.file_present = self.open.is_some();
        stats
    }

    fn read_into(&mut self, stats: &mut Poll, budget: u64, on_line: &mut impl FnMut(&[u8])) {
        let Some(open) = &mut self.open else { return };
        let mut buf = [0u8; 64 * 1024];
        let mut left = budget;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = match open.file.read(&mut buf[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            open.offset += n as u64;
            left -= n as u64;
            stats.bytes += n as u64;
            for chunk in buf[..n].split_inclusive(|b| *b == b'\n') {
                let complete = chunk.ends_with(b"\n");
                if self.skipping {
                    if complete {
                        self.skipping = false;
                    }
                    continue;
                }
                self.partial.extend_from_slice(chunk);
                if self.partial.len() > MAX_LINE {
                    stats.too_long += 1;
                    self.partial.clear();
                    self.skipping = !complete;
                    continue;
                }
                if complete {
                    let line = self.partial.strip_suffix(b"\n").unwrap_or(&self.partial);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    if !line.is_empty() {
                        stats.lines += 1;
                        on_line(line);
                    }
                    self.partial.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ocgx-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn poll(f: &mut LogFollower) -> Vec<String> {
        let mut lines = Vec::new();
        f.poll(u64::MAX, |l| {
            lines.push(String::from_utf8_lossy(l).into_owned())
        });
        lines
    }

    #[test]
    fn follows_appends_rotation_truncation_and_the_daily_switch() {
        let d = dir("follow");
        let day1 = d.join("openclaw-2026-11-23.log");
        append(&day1, "old history\n");
        let mut f = LogFollower::new(d.clone());
        assert!(poll(&mut f).is_empty(), "history at startup is not counted");
        append(&day1, "a\nb");
        assert_eq!(poll(&mut f), ["a"]);
        append(&day1, "\nc\n");
        assert_eq!(poll(&mut f), ["b", "c"]);

        // Truncation in place.
        std::fs::write(&day1, "").unwrap();
        append(&day1, "d\n");
        assert_eq!(poll(&mut f), ["d"]);

        // Rotation by rename: the old file's tail is read, then the new file from its start.
        append(&day1, "e\n");
        std::fs::rename(&day1, d.join("rotated.1")).unwrap();
        append(&day1, "f\n");
        assert_eq!(poll(&mut f), ["e", "f"]);

        // The next day's file.
        append(&day1, "g\n");
        append(&d.join("openclaw-2026-11-24.log"), "h\n");
        assert_eq!(poll(&mut f), ["g", "h"]);
        // Windows keeps a folder with open files in it.
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }

    /// The real gateway rotates at its size limit by renaming
    /// `openclaw-D.log` to `openclaw-D.1.log` (and `.1` to `.2`, ...), then
    /// creates `openclaw-D.log` on its next write. A poll between the two must
    /// neither re-read the renamed file nor fall back to yesterday's.
    #[test]
    fn the_gateways_own_rotation_is_read_once() {
        let d = dir("rotate-real");
        let yesterday = d.join("openclaw-2026-11-23.log");
        let today = d.join("openclaw-2026-11-24.log");
        append(&yesterday, "y1\ny2\n");
        append(&today, "history\n");
        let mut f = LogFollower::new(d.clone());
        assert!(poll(&mut f).is_empty());
        append(&today, "a\nb\n");
        assert_eq!(poll(&mut f), ["a", "b"]);

        append(&today, "c\n");
        std::fs::rename(&today, d.join("openclaw-2026-11-24.1.log")).unwrap();
        assert_eq!(poll(&mut f), ["c"], "the renamed file's tail, once");
        assert!(poll(&mut f).is_empty(), "no live file yet: nothing re-read");

        append(&today, "d\n");
        assert_eq!(poll(&mut f), ["d"]);
        std::fs::rename(&today, d.join("openclaw-2026-11-24.1.log")).unwrap();
        append(&today, "e\n");
        assert_eq!(poll(&mut f), ["e"]);
        assert!(poll(&mut f).is_empty());
        // Windows keeps a folder with open files in it.
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }

    /// Rotate as the gateway does: `.4` to `.5`, ..., `.1` to `.2`, live to `.1`.
    fn rotate(live: &Path) {
        let rotated = |n: u32| rotated_path(live, n).unwrap();
        for n in (1..=4).rev() {
            if rotated(n).exists() {
                std::fs::rename(rotated(n), rotated(n + 1)).unwrap();
            }
        }
        std::fs::rename(live, rotated(1)).unwrap();
    }

    /// Files the gateway created and rotated away again between two polls
    /// are read too, in order, whether or not a live file existed at the
    /// poll in between.
    #[test]
    fn rotations_between_two_polls_lose_no_line() {
        let d = dir("rotate-twice");
        let live = d.join("openclaw-2026-11-24.log");
        append(&live, "history\n");
        let mut f = LogFollower::new(d.clone());
        assert!(poll(&mut f).is_empty());

        append(&live, "a\n");
        rotate(&live);
        append(&live, "b\n");
        rotate(&live);
        append(&live, "c\n");
        rotate(&live);
        append(&live, "d\n");
        assert_eq!(poll(&mut f), ["a", "b", "c", "d"]);

        // A poll that finds no live file, then two more rotations.
        append(&live, "e\n");
        rotate(&live);
        assert_eq!(poll(&mut f), ["e"]);
        append(&live, "f\n");
        rotate(&live);
        append(&live, "g\n");
        assert_eq!(poll(&mut f), ["f", "g"]);
        assert!(poll(&mut f).is_empty());
        // Windows keeps a folder with open files in it.
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn only_live_log_names_are_followed() {
        assert!(is_live_log_name("openclaw-2026-11-24.log"));
        assert!(is_live_log_name("openclaw-work-2026-11-24.log"));
        assert!(!is_live_log_name("openclaw-2026-11-24.1.log"));
        assert!(!is_live_log_name("openclaw-.log"));
        assert!(!is_live_log_name("gateway.log"));
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let d = dir("later");
        let mut f = LogFollower::new(d.clone());
        assert!(poll(&mut f).is_empty());
        append(&d.join("openclaw-2026-11-24.log"), "first\n");
        assert_eq!(poll(&mut f), ["first"]);
        // Windows keeps a folder with open files in it.
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn over_long_lines_are_skipped_and_counted() {
        let d = dir("long");
        let p = d.join("x.log");
        append(&p, "");
        let mut f = LogFollower::new(p.clone());
        poll(&mut f);
        append(&p, &format!("{}\nok\n", "x".repeat(MAX_LINE * 3)));
        let mut lines = Vec::new();
        let stats = f.poll(u64::MAX, |l| lines.push(l.len()));
        assert_eq!(lines, [2]);
        assert_eq!(stats.too_long, 1);
        // Windows keeps a folder with open files in it.
        drop(f);
        std::fs::remove_dir_all(d).unwrap();
    }
}
