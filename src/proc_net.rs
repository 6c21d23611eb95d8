//! A streaming reader of `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! Lines are parsed one at a time without allocating per row, so a table with
//! tens of thousands of sockets stays cheap.

use std::io::{BufRead, BufReader};
use std::path::Path;

/// TCP state numbers as the kernel writes them (include/net/tcp_states.h).
pub const TCP_LISTEN: u8 = 0x0A;

/// The fields of one socket row that the exporter uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRow {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    /// For a listener: the accept backlog limit.
    pub tx_queue: u32,
    /// For a listener: the current accept backlog.
    pub rx_queue: u32,
    pub inode: u64,
}

/// Parse one data line of `/proc/net/tcp{,6}`; the header and junk give `None`.
pub fn parse_line(line: &str) -> Option<TcpRow> {
    let mut f = line.split_ascii_whitespace();
    let _slot = f.next()?;
    let local = f.next()?;
    let remote = f.next()?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let (tx, rx) = f.next()?.split_once(':')?;
    let inode = f.nth(4)?.parse().ok()?;
    Some(TcpRow {
        local_port: port_of(local)?,
        remote_port: port_of(remote)?,
        state,
        tx_queue: u32::from_str_radix(tx, 16).ok()?,
        rx_queue: u32::from_str_radix(rx, 16).ok()?,
        inode,
    })
}

fn port_of(addr: &str) -> Option<u16> {
    let (_, port) = addr.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// Call `f` for every row of one table file. A missing file (no IPv6) is empty.
pub fn for_each_row(path: &Path, mut f: impl FnMut(TcpRow)) -> std::io::Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = String::with_capacity(256);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if let Some(row) = parse_line(&line) {
            f(row);
        }
    }
}

/// The tables of a network namespace, given its `net` folder (`/proc/net` or
/// `/proc/<pid>/net`).
pub fn tables(net_dir: &Path) -> [std::path::PathBuf; 2] {
    [net_dir.join("tcp"), net_dir.join("tcp6")]
}

/// Inodes of the sockets that LISTEN on `port`, IPv4 and IPv6.
pub fn listen_inodes(net_dir: &Path, port: u16) -> Vec<u64> {
    let mut inodes = Vec::new();
    for table in tables(net_dir) {
        let _ = for_each_row(&table, |row| {
            if row.state == TCP_LISTEN && row.local_port == port {
                inodes.push(row.inode);
            }
        });
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows() {
        let v4 = "   0: 0100007F:4965 00000000:0000 0A 00000000:00000003 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_line(v4),
            Some(TcpRow {
                local_port: 18789,
                remote_port: 0,
                state: TCP_LISTEN,
                tx_queue: 0,
                rx_queue: 3,
                inode: 123456
            })
        );
        let v6 = "   1: 00000000000000000000000001000000:4965 00000000000000000000000001000000:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1";
        let row = parse_line(v6).unwrap();
        assert_eq!(
            (row.local_port, row.remote_port, row.state, row.inode),
            (18789, 0xD2F0, 1, 777)
        );
        assert_eq!(parse_line("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("0: zz:zz"), None);
    }

    #[test]
    fn finds_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inodes = listen_inodes(Path::new("/proc/net"), port);
        assert_eq!(inodes.len(), 1);
        let mine = crate::proc::socket_inodes(std::process::id() as i32).unwrap();
        assert!(mine.contains(&inodes[0]));
    }
}
