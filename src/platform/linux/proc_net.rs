//! A streaming reader of `/proc/net/tcp` and `/proc/net/tcp6`, and the TCP
//! listen counters of `/proc/net/netstat`.
//!
//! Lines are parsed one at a time without allocating per row, so a table with
//! tens of thousands of sockets stays cheap. The kernel formats these tables
//! for every read, which costs far more than netlink sock_diag (see
//! docs/benchmarks.md): they are the fallback, and the way into another
//! network namespace (`/proc/<pid>/net/tcp` is the table of `<pid>`'s).

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
    /// Unsent bytes. Not the backlog limit of a listener: the kernel prints
    /// `write_seq - snd_una` for every socket, so this table has no limit.
    pub tx_queue: u32,
    /// For a listener: the current accept backlog.
    pub rx_queue: u32,
    pub inode: u64,
    /// The remote address is loopback: 127.0.0.0/8, `::1`, or 127.0.0.0/8
    /// mapped into IPv6.
    pub remote_loopback: bool,
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
    let (remote_addr, remote_port) = remote.rsplit_once(':')?;
    Some(TcpRow {
        local_port: port_of(local)?,
        remote_port: u16::from_str_radix(remote_port, 16).ok()?,
        state,
        tx_queue: u32::from_str_radix(tx, 16).ok()?,
        rx_queue: u32::from_str_radix(rx, 16).ok()?,
        inode,
        remote_loopback: is_loopback(remote_addr)?,
    })
}

fn port_of(addr: &str) -> Option<u16> {
    let (_, port) = addr.rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

/// The kernel prints an address as 32-bit words in hex, each in the host's
/// byte order: `0100007F` is 127.0.0.1 on x86.
fn is_loopback(hex: &str) -> Option<bool> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = hex.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(word(0)?[0] == 127),
        32 => {
            let (a, b, c, d) = (word(0)?, word(1)?, word(2)?, word(3)?);
            let high_zero = a == [0; 4] && b == [0; 4];
            let ipv6_loopback = high_zero && c == [0; 4] && d == [0, 0, 0, 1];
            let mapped_v4_loopback = high_zero && c == [0, 0, 0xff, 0xff] && d[0] == 127;
            Some(ipv6_loopback || mapped_v4_loopback)
        }
        _ => None,
    }
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

/// Call `f` for every row of both tables of a network namespace's `net` folder.
/// A table that cannot be read is an error (a missing `tcp6` is not).
pub fn for_each_socket(net_dir: &Path, mut f: impl FnMut(TcpRow)) -> std::io::Result<()> {
    for table in tables(net_dir) {
        for_each_row(&table, &mut f)?;
    }
    Ok(())
}

pub use crate::platform::ListenCounters;

/// Parse `/proc/net/netstat`: pairs of lines, names then values, per prefix.
pub fn parse_listen_counters(text: &str) -> Option<ListenCounters> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?.split_ascii_whitespace().skip(1);
    let values = lines.next()?.split_ascii_whitespace().skip(1);
    let (mut overflows, mut drops) = (None, None);
    for (name, value) in names.zip(values) {
        match name {
            "ListenOverflows" => overflows = value.parse().ok(),
            "ListenDrops" => drops = value.parse().ok(),
            _ => {}
        }
    }
    Some(ListenCounters {
        overflows: overflows?,
        drops: drops?,
    })
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
                inode: 123456,
                remote_loopback: false,
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
        // A v4 client of a local port, and v6 / mapped v4 loopback peers.
        let lo = "   2: 0100007F:D2F0 0100007F:4965 01 00000000:00000000 00:00000000 00000000  1000        0 5 1 0 20 4 30 10 -1";
        assert!(parse_line(lo).unwrap().remote_loopback);
        let mapped = "   3: 0000000000000000FFFF00000100007F:4965 0000000000000000FFFF00000200007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 6 1 0 20 4 30 10 -1";
        assert!(parse_line(mapped).unwrap().remote_loopback);
        let remote = "   4: 0100007F:4965 0200000A:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 7 1 0 20 4 30 10 -1";
        assert!(!parse_line(remote).unwrap().remote_loopback);
        assert_eq!(parse_line("   5: 0100007F:4965 01007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 7 1 0 20 4 30 10 -1"), None);
        assert_eq!(parse_line("0: zz:zz"), None);
    }

    #[test]
    fn random_lines_never_panic() {
        let alphabet = b"0123456789ABCDEFabcdef: \n\t\xc3\xa9TcpExt";
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let real = "   0: 0100007F:4965 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 5 1 0 20 4 30 10 -1";
        for _ in 0..20_000 {
            let mut line: Vec<u8> = real.as_bytes().to_vec();
            for _ in 0..(next() % 6) {
                let at = (next() as usize) % line.len();
                line[at] = alphabet[(next() as usize) % alphabet.len()];
            }
            line.truncate((next() as usize) % (line.len() + 1));
            let text = String::from_utf8_lossy(&line);
            let _ = parse_line(&text);
            let _ = parse_listen_counters(&text);
        }
    }

    #[test]
    fn listen_counters() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\nTcpExt: 0 12 15 99\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(
            parse_listen_counters(text),
            Some(ListenCounters {
                overflows: 12,
                drops: 15
            })
        );
        assert_eq!(
            parse_listen_counters("TcpExt: ListenDrops\nTcpExt: x\n"),
            None
        );
        assert_eq!(parse_listen_counters(""), None);
        let real = std::fs::read_to_string("/proc/net/netstat").unwrap();
        assert!(parse_listen_counters(&real).is_some());
    }

    #[test]
    fn finds_a_real_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inodes = listen_inodes(Path::new("/proc/net"), port);
        assert_eq!(inodes.len(), 1);
        let mine = crate::platform::linux::proc::socket_inodes(std::process::id() as i32).unwrap();
        assert!(mine.contains(&inodes[0]));
    }
}
