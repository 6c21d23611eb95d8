//! Sockets for the portable backend: the OS's TCP table with each socket's
//! owning pids, through `netstat2` (Linux: sock_diag plus a walk of every
//! `/proc/<pid>/fd`; Windows: `GetExtendedTcpTable`). The counting rules are
//! [`crate::tcp`]'s; a socket is the gateway tree's when one of its owners is
//! in the tree. The table has no queue lengths, so the accept queue is
//! absent, and it is the exporter's network namespace only.
//!
//! macOS: netstat2 cannot be built here (its build runs bindgen on
//! `<libproc.h>` from the SDK), so the reader is not implemented yet: each
//! sample fails, counted, instead of showing zeros. The issue bringing macOS
//! reads the gateway's socket fds with `proc_pidfdinfo`.

use crate::platform::{Owned, Pid, SocketReader, TcpState};
use crate::tcp::{Socket, Source, Tally};

/// Whether the table names each socket's owner (outbound can be counted).
pub const OWNERS: bool = cfg!(any(target_os = "linux", windows));

/// One row of a TCP table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub state: TcpState,
    pub local_port: u16,
    pub remote_port: u16,
    pub remote_loopback: bool,
    pub pids: Vec<Pid>,
}

/// Count `rows` for `port` by the rules of [`crate::tcp`].
pub fn tally(port: u16, rows: &[Row], owned: Option<&Owned>) -> Tally {
    let mut t = Tally::new(Source::TcpTable, port, owned.is_some());
    for r in rows {
        let mine = owned.is_some_and(|o| r.pids.iter().any(|p| o.pids.contains(p)));
        let s = Socket {
            state: r.state as u8,
            local_port: r.local_port,
            remote_port: r.remote_port,
            remote_loopback: r.remote_loopback,
            rqueue: 0,
            wqueue: 0,
            inode: 0,
            idle: None,
        };
        t.add_owned(&s, mine);
    }
    t
}

/// The pids holding a LISTEN socket on `port`.
pub fn listeners(port: u16) -> Result<Vec<Pid>, String> {
    let mut pids: Vec<Pid> = table()?
        .into_iter()
        .filter(|r| r.state == TcpState::Listen && r.local_port == port)
        .flat_map(|r| r.pids)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

#[derive(Debug, Default)]
pub struct TableReader;

impl SocketReader for TableReader {
    fn count(
        &mut self,
        port: u16,
        _pid: Option<Pid>,
        owned: Option<&Owned>,
    ) -> Result<Tally, String> {
        Ok(tally(port, &table()?, owned))
    }

    fn take_notices(&mut self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// The stack of the thread that reads the table: netstat2's netlink reader
/// holds 8 KiB buffers by value and overflows the collectors' 256 KiB in a
/// debug build (512 KiB measured enough).
const TABLE_STACK: usize = 1 << 20;

/// The OS's TCP table, read on a thread of its own (its stack, and a panic
/// inside netstat2 becomes an error).
fn table() -> Result<Vec<Row>, String> {
    std::thread::Builder::new()
        .name("tcp-table".to_string())
        .stack_size(TABLE_STACK)
        .spawn(read_table)
        .map_err(|e| format!("cannot start the TCP table reader: {e}"))?
        .join()
        .map_err(|_| "the TCP table reader panicked".to_string())?
}

#[cfg(any(target_os = "linux", windows))]
fn read_table() -> Result<Vec<Row>, String> {
    use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo};
    let af = AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6;
    let sockets = netstat2::get_sockets_info(af, ProtocolFlags::TCP)
        .map_err(|e| format!("cannot read the TCP table: {e}"))?;
    Ok(sockets
        .into_iter()
        .filter_map(|s| {
            let ProtocolSocketInfo::Tcp(tcp) = s.protocol_socket_info else {
                return None;
            };
            Some(Row {
                state: state(tcp.state)?,
                local_port: tcp.local_port,
                remote_port: tcp.remote_port,
                remote_loopback: is_loopback(tcp.remote_addr),
                pids: s
                    .associated_pids
                    .into_iter()
                    .filter_map(|p| Pid::try_from(p).ok())
                    .collect(),
            })
        })
        .collect())
}

#[cfg(not(any(target_os = "linux", windows)))]
fn read_table() -> Result<Vec<Row>, String> {
    Err("the TCP table is not implemented on this platform yet (netstat2 does not build for it); connections are not counted".to_string())
}

/// netstat2's state as the Linux number; `None` for Windows' DELETE_TCB and
/// an unknown one.
#[cfg(any(target_os = "linux", windows))]
fn state(s: netstat2::TcpState) -> Option<TcpState> {
    use netstat2::TcpState as N;
    Some(match s {
        N::Established => TcpState::Established,
        N::SynSent => TcpState::SynSent,
        N::SynReceived => TcpState::SynRecv,
        N::FinWait1 => TcpState::FinWait1,
        N::FinWait2 => TcpState::FinWait2,
        N::TimeWait => TcpState::TimeWait,
        N::Closed => TcpState::Close,
        N::CloseWait => TcpState::CloseWait,
        N::LastAck => TcpState::LastAck,
        N::Listen => TcpState::Listen,
        N::Closing => TcpState::Closing,
        N::DeleteTcb | N::Unknown => return None,
    })
}

/// Loopback, an IPv4-mapped one included.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
fn is_loopback(a: std::net::IpAddr) -> bool {
    match a {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn row(state: TcpState, local: u16, remote: u16, loopback: bool, pids: &[Pid]) -> Row {
        Row {
            state,
            local_port: local,
            remote_port: remote,
            remote_loopback: loopback,
            pids: pids.to_vec(),
        }
    }

    #[test]
    fn ownership_by_pid() {
        use TcpState::*;
        let rows = [
            row(Listen, 80, 0, false, &[7]),
            row(Listen, 80, 0, false, &[7]), // IPv6
            row(TimeWait, 80, 5000, true, &[]),
            row(Established, 80, 5001, true, &[7]),
            row(Established, 40000, 443, false, &[8]), // a worker's
            row(Established, 40001, 80, true, &[7]),   // to its own port
            row(Established, 40002, 443, false, &[9]), // someone else's
            row(Established, 40003, 443, false, &[0, 8]), // shared
        ];
        let owned = Owned {
            inodes: HashSet::new(),
            pids: HashSet::from([7, 8]),
        };
        let t = tally(80, &rows, Some(&owned));
        assert_eq!(t.source, Source::TcpTable);
        assert_eq!(t.inbound.get("listen"), Some(2));
        assert_eq!(t.inbound.get("time_wait"), Some(1));
        assert_eq!(t.inbound.total(), 4);
        assert_eq!(t.outbound.unwrap().get("established"), Some(2));
        assert_eq!(t.outbound.unwrap().total(), 2);
        // No queue lengths in a TCP table.
        assert_eq!((t.listen_queue_length, t.listen_queue_capacity), (0, None));
        // Without the tree's sockets, only inbound.
        let t = tally(80, &rows, None);
        assert_eq!((t.inbound.total(), t.outbound), (4, None));
    }

    #[test]
    fn loopback_addresses() {
        for (a, yes) in [
            ("127.0.0.1", true),
            ("127.3.2.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("10.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(is_loopback(a.parse().unwrap()), yes, "{a}");
        }
    }

    #[cfg(any(target_os = "linux", windows))]
    #[test]
    fn states_map_by_name() {
        use netstat2::TcpState as N;
        for (n, ours) in [
            (N::Established, "established"),
            (N::SynReceived, "syn_recv"),
            (N::Closed, "close"),
            (N::TimeWait, "time_wait"),
            (N::Listen, "listen"),
            (N::Closing, "closing"),
        ] {
            assert_eq!(state(n).map(TcpState::as_str), Some(ours));
        }
        assert_eq!(state(N::DeleteTcb), None);
    }

    /// A listener of this test process is in the table with its pid, read
    /// from a thread with a collector's stack.
    #[cfg(target_os = "linux")]
    #[test]
    fn own_listener_in_the_table() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(own_listener)
            .unwrap()
            .join()
            .unwrap();
    }

    #[cfg(target_os = "linux")]
    fn own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id() as Pid;
        assert_eq!(listeners(port).unwrap(), vec![me]);
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_s, _) = l.accept().unwrap();
        let owned = Owned {
            inodes: HashSet::new(),
            pids: HashSet::from([me]),
        };
        let t = TableReader.count(port, None, Some(&owned)).unwrap();
        assert_eq!(t.inbound.get("listen"), Some(1));
        assert_eq!(t.inbound.get("established"), Some(1));
        // The client end goes to the port over loopback: not outbound.
        assert_eq!(t.outbound.unwrap().total(), 0);
    }
}
