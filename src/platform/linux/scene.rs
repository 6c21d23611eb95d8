//! The scene of an incident, from procfs: status, limits, threads (state,
//! wait channel, kernel stack where readable) and the socket table of the
//! gateway's network namespace. Read once per snapshot; nothing here signals
//! or traces the process (`/proc/<pid>/task/<tid>/stack` is a read that the
//! kernel allows to root only).

use std::path::Path;

use super::{Owned, Pid, ProcError, ResourceLimit, SocketRow, ThreadInfo};

fn read(pid: Pid, what: &'static str, path: impl AsRef<Path>) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|e| ProcError::from_io(pid, what, e))
}

/// `/proc/<pid>/status` as key and value.
pub fn status(pid: Pid) -> Result<Vec<(String, String)>, ProcError> {
    let text = read(pid, "status", format!("/proc/{pid}/status"))?;
    Ok(parse_status(&text))
}

pub fn parse_status(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `/proc/<pid>/limits`.
pub fn limits(pid: Pid) -> Result<Vec<ResourceLimit>, ProcError> {
    let text = read(pid, "limits", format!("/proc/{pid}/limits"))?;
    Ok(parse_limits(&text))
}

/// The kernel aligns the table in columns named by its header line
/// (`fs/proc/base.c`, `proc_pid_limits`): the name is padded to 25 bytes,
/// the limits to 20 and 21.
pub fn parse_limits(text: &str) -> Vec<ResourceLimit> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let (Some(soft), Some(hard), Some(unit)) = (
        header.find("Soft Limit"),
        header.find("Hard Limit"),
        header.find("Units"),
    ) else {
        return Vec::new();
    };
    let col =
        |l: &str, a: usize, b: usize| l.get(a..b.min(l.len())).unwrap_or("").trim().to_string();
    lines
        .filter(|l| l.len() > soft)
        .map(|l| ResourceLimit {
            name: col(l, 0, soft),
            soft: col(l, soft, hard),
            hard: col(l, hard, unit),
            unit: col(l, unit, l.len()),
        })
        .collect()
}

/// Each thread of `pid`: `/proc/<pid>/task/<tid>/{stat,wchan,stack}`.
pub fn threads(pid: Pid, max: usize) -> Result<Vec<ThreadInfo>, ProcError> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| ProcError::from_io(pid, "task", e))?;
    let mut tids: Vec<Pid> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids
        .into_iter()
        .take(max)
        .filter_map(|tid| {
            let task = format!("/proc/{pid}/task/{tid}");
            // A thread that ended since the listing is skipped.
            let stat = std::fs::read_to_string(format!("{task}/stat")).ok()?;
            let (name, state) = parse_task_stat(&stat)?;
            let wchan = std::fs::read_to_string(format!("{task}/wchan")).ok();
            let kernel_stack = std::fs::read_to_string(format!("{task}/stack")).ok();
            Some(ThreadInfo {
                tid,
                name,
                state,
                wchan: wchan.map(|w| match w.trim() {
                    "" | "0" => "-".to_string(),
                    w => w.to_string(),
                }),
                kernel_stack,
            })
        })
        .collect())
}

/// The name (between the first `(` and the last `)`) and the state (the
/// field after) of a `stat` line.
pub fn parse_task_stat(stat: &str) -> Option<(String, String)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let state = stat.get(close + 1..)?.split_ascii_whitespace().next()?;
    Some((name, state.to_string()))
}

/// The rows of `/proc/<pid>/net/tcp{,6}` (the gateway's network namespace)
/// on `port`, at either end, or held by `owned`.
pub fn socket_table(
    port: u16,
    pid: Pid,
    owned: &Owned,
    max: usize,
) -> Result<Vec<SocketRow>, ProcError> {
    let mut rows = Vec::new();
    for proto in ["tcp", "tcp6"] {
        let path = format!("/proc/{pid}/net/{proto}");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if proto == "tcp6" && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ProcError::from_io(pid, "net/tcp", e)),
        };
        for line in text.lines().skip(1) {
            if rows.len() >= max {
                return Ok(rows);
            }
            let Some(mut row) = parse_row(proto, line) else {
                continue;
            };
            row.owned = row.inode.is_some_and(|i| owned.inodes.contains(&i));
            let on_port = row.local.ends_with(&format!(":{port}"))
                || row.remote.ends_with(&format!(":{port}"));
            if on_port || row.owned {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// One line of `/proc/net/tcp{,6}`, addresses decoded.
pub fn parse_row(proto: &'static str, line: &str) -> Option<SocketRow> {
    let mut f = line.split_ascii_whitespace();
    let _slot = f.next()?;
    let local = address(f.next()?)?;
    let remote = address(f.next()?)?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let (tx, rx) = f.next()?.split_once(':')?;
    let inode: u64 = f.nth(4)?.parse().ok()?;
    Some(SocketRow {
        proto,
        local,
        remote,
        state: crate::platform::TcpState::from_linux(state)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| format!("state_{state}")),
        recv_q: u64::from_str_radix(rx, 16).ok()?,
        send_q: u64::from_str_radix(tx, 16).ok()?,
        inode: (inode != 0).then_some(inode),
        owned: false,
    })
}

/// `0100007F:4965` as `127.0.0.1:18789`; IPv6 as `[::1]:18789`. The kernel
/// prints each 32-bit word in the host's byte order.
fn address(hex: &str) -> Option<String> {
    let (addr, port) = hex.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    match bytes.len() {
        4 => {
            let ip = std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            Some(format!("{ip}:{port}"))
        }
        16 => {
            let arr: [u8; 16] = bytes.try_into().ok()?;
            Some(format!("[{}]:{port}", std::net::Ipv6Addr::from(arr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits_status_stat_and_rows() {
        let limits =
            "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n";
        let l = parse_limits(limits);
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].name, "Max open files");
        assert_eq!((l[1].soft.as_str(), l[1].hard.as_str()), ("1024", "524288"));
        assert_eq!(l[1].unit, "files");
        assert!(parse_limits("").is_empty());
        assert!(parse_limits("garbage\nmore").is_empty());

        assert_eq!(
            parse_task_stat("42 (node (worker)) T 1 2 3"),
            Some(("node (worker)".into(), "T".into()))
        );
        assert_eq!(parse_task_stat("nonsense"), None);
        assert_eq!(
            parse_status("Name:\tnode\nState:\tT (stopped)\n")[1],
            ("State".into(), "T (stopped)".into())
        );

        let row = parse_row(
            "tcp",
            "   0: 0100007F:4965 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0",
        )
        .unwrap();
        assert_eq!(row.local, "127.0.0.1:18789");
        assert_eq!(row.state, "listen");
        assert_eq!((row.recv_q, row.send_q, row.inode), (3, 0, Some(12345)));
        let v6 = parse_row(
            "tcp6",
            "   0: 00000000000000000000000001000000:4965 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1",
        )
        .unwrap();
        assert_eq!(v6.local, "[::1]:18789");
        assert!(parse_row("tcp", "  sl  local_address rem_address").is_none());
    }
}
