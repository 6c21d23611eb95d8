//! The gateway's TCP connections by direction and state, and its accept queue,
//! counted from netlink sock_diag or from `/proc/<pid>/net/tcp{,6}`. Both
//! readers apply the same rules, in [`Tally::add`]:
//!
//! - inbound: the local port is the gateway's port. This includes TIME_WAIT
//!   and SYN_RECV, which no process owns, and the LISTEN sockets themselves;
//! - outbound: any other socket whose inode is one of `owned` (the socket fds
//!   of the gateway process and its descendants). A connection from the
//!   gateway to its own port over loopback is the gateway talking to itself:
//!   it is counted once, as inbound, by its server end;
//! - the listen queue: summed over the LISTEN sockets on the port, IPv4 and
//!   IPv6.

use std::collections::HashSet;
use std::path::Path;

use crate::proc_net;
use crate::sock_diag::{self, DiagError, Filter, SockDiag};

/// The kernel's TCP states (`include/net/tcp_states.h`), numbered from 1, in
/// lower snake case.
pub const STATES: [&str; 11] = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

pub const LISTEN: u8 = 10;

/// Sockets per state, indexed like [`STATES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts(pub [u64; 11]);

impl StateCounts {
    fn add(&mut self, state: u8) {
        if let Some(n) = self.0.get_mut(usize::from(state).wrapping_sub(1)) {
            *n += 1;
        }
    }

    /// The count of a state by its name.
    pub fn get(&self, name: &str) -> Option<u64> {
        let i = STATES.iter().position(|s| *s == name)?;
        Some(self.0[i])
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// One socket as either reader sees it.
#[derive(Debug, Clone, Copy)]
pub struct Socket {
    pub state: u8,
    pub local_port: u16,
    pub remote_port: u16,
    /// The remote address is loopback (127.0.0.0/8, `::1`, mapped 127/8).
    pub remote_loopback: bool,
    /// For a listener: the current accept backlog.
    pub rqueue: u32,
    /// For a listener: the accept backlog limit.
    pub wqueue: u32,
    pub inode: u64,
}

/// Where the sockets were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Netlink,
    Proc,
}

impl Source {
    pub const ALL: [Source; 2] = [Source::Netlink, Source::Proc];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Netlink => "netlink",
            Source::Proc => "proc",
        }
    }
}

/// What one sample counted for one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub source: Source,
    pub port: u16,
    pub inbound: StateCounts,
    /// `None` when the gateway's sockets are unknown (process not found, or
    /// its fds unreadable).
    pub outbound: Option<StateCounts>,
    pub listen_queue_length: u64,
    /// `None` from `/proc/net/tcp`, which does not show a listener's limit.
    pub listen_queue_capacity: Option<u64>,
}

impl Tally {
    pub fn new(source: Source, port: u16, outbound: bool) -> Tally {
        Tally {
            source,
            port,
            inbound: StateCounts::default(),
            outbound: outbound.then(StateCounts::default),
            listen_queue_length: 0,
            listen_queue_capacity: (source == Source::Netlink).then_some(0),
        }
    }

    /// Count one socket by the rules of the module doc.
    pub fn add(&mut self, s: &Socket, owned: &HashSet<u64>) {
        if s.local_port == self.port {
            self.inbound.add(s.state);
            if s.state == LISTEN {
                self.listen_queue_length += u64::from(s.rqueue);
                if let Some(cap) = &mut self.listen_queue_capacity {
                    *cap += u64::from(s.wqueue);
                }
            }
            return;
        }
        let to_own_port = s.remote_loopback && s.remote_port == self.port;
        if s.inode != 0 && !to_own_port && owned.contains(&s.inode) {
            if let Some(out) = &mut self.outbound {
                out.add(s.state);
            }
        }
    }
}

/// Count through netlink. `owned` is `None` when only inbound can be counted;
/// the kernel then copies out only the port's sockets. Otherwise it also
/// copies the other sockets that may be the gateway's, in the same walk of its
/// table.
pub fn count_netlink(
    diag: &mut SockDiag,
    port: u16,
    owned: Option<&HashSet<u64>>,
) -> Result<Tally, DiagError> {
    let filter = match owned {
        // The port's sockets, and every other that may be the gateway's: not
        // a local client of the port, nor (where the kernel can tell) a
        // TIME_WAIT or SYN_RECV mini socket, which no process owns.
        Some(_) if diag.filters_cgroups() => {
            Filter::local_port(port).or(!Filter::loopback_peer_port(port).or(Filter::no_owner()))
        }
        Some(_) => !Filter::loopback_peer_port(port),
        None => Filter::local_port(port),
    };
    let empty = HashSet::new();
    let owned_set = owned.unwrap_or(&empty);
    let mut tally = Tally::new(Source::Netlink, port, owned.is_some());
    diag.dump(sock_diag::ALL_STATES, &filter, |s| {
        tally.add(
            &Socket {
                state: s.state,
                local_port: s.local_port,
                remote_port: s.remote_port,
                // The filter already dropped loopback clients of the port.
                remote_loopback: false,
                rqueue: s.rqueue,
                wqueue: s.wqueue,
                inode: s.inode,
            },
            owned_set,
        )
    })?;
    Ok(tally)
}

/// Count from the `tcp` and `tcp6` tables of a network namespace's `net`
/// folder (`/proc/<pid>/net`).
pub fn count_proc(
    net_dir: &Path,
    port: u16,
    owned: Option<&HashSet<u64>>,
) -> std::io::Result<Tally> {
    let empty = HashSet::new();
    let owned_set = owned.unwrap_or(&empty);
    let mut tally = Tally::new(Source::Proc, port, owned.is_some());
    proc_net::for_each_socket(net_dir, |row| {
        tally.add(
            &Socket {
                state: row.state,
                local_port: row.local_port,
                remote_port: row.remote_port,
                remote_loopback: row.remote_loopback,
                rqueue: row.rx_queue,
                wqueue: 0,
                inode: row.inode,
            },
            owned_set,
        )
    })?;
    Ok(tally)
}

/// Whether `pid` lives in another network namespace than the exporter (a
/// container): its sockets are then only in `/proc/<pid>/net`.
pub fn in_other_namespace(pid: i32) -> bool {
    match (
        crate::proc::net_namespace(pid),
        crate::proc::own_net_namespace(),
    ) {
        (Ok(theirs), Some(ours)) => theirs != ours,
        _ => false,
    }
}

/// Inodes of the sockets that LISTEN on `port`, IPv4 and IPv6, in the network
/// namespace of `pid` (the exporter's own for `None`). Netlink with the port
/// filter in the kernel where it can: reading `/proc/net/tcp` makes the kernel
/// print every socket of the host, milliseconds at a few thousand.
pub fn listen_inodes(port: u16, pid: Option<i32>) -> Vec<u64> {
    if let Some(pid) = pid.filter(|&p| in_other_namespace(p)) {
        let net = Path::new("/proc").join(pid.to_string()).join("net");
        return proc_net::listen_inodes(&net, port);
    }
    let mut inodes = Vec::new();
    let from_netlink = SockDiag::open().and_then(|mut diag| {
        diag.dump(1 << LISTEN, &Filter::local_port(port), |s| {
            if s.state == LISTEN && s.local_port == port {
                inodes.push(s.inode);
            }
        })
    });
    match from_netlink {
        Ok(()) => inodes,
        Err(_) => proc_net::listen_inodes(Path::new("/proc/net"), port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn sock(state: u8, local: u16, remote: u16, inode: u64) -> Socket {
        Socket {
            state,
            local_port: local,
            remote_port: remote,
            remote_loopback: true,
            rqueue: 2,
            wqueue: 511,
            inode,
        }
    }

    #[test]
    fn the_rules() {
        let owned = HashSet::from([1, 2, 3]);
        let mut t = Tally::new(Source::Netlink, 80, true);
        t.add(&sock(LISTEN, 80, 0, 1), &owned);
        t.add(&sock(LISTEN, 80, 0, 9), &owned); // IPv6 listener
        t.add(&sock(6, 80, 5000, 0), &owned); // TIME_WAIT, no owner
        t.add(&sock(1, 40000, 443, 2), &owned); // outbound
        t.add(&sock(1, 40001, 80, 3), &owned); // to its own port: not outbound
        t.add(&sock(1, 40002, 443, 7), &owned); // someone else's
        t.add(&sock(6, 40003, 443, 0), &owned); // TIME_WAIT away from the port
        t.add(&sock(0, 80, 1, 0), &owned); // nonsense state: ignored
        t.add(&sock(12, 80, 1, 0), &owned);
        assert_eq!(t.inbound.get("listen"), Some(2));
        assert_eq!(t.inbound.get("time_wait"), Some(1));
        assert_eq!(t.inbound.total(), 3);
        assert_eq!(t.outbound.unwrap().get("established"), Some(1));
        assert_eq!(t.outbound.unwrap().total(), 1);
        assert_eq!(
            (t.listen_queue_length, t.listen_queue_capacity),
            (4, Some(1022))
        );
        assert_eq!(StateCounts::default().get("nope"), None);
    }

    /// The netlink and /proc readers agree on the same live sockets, v4 and v6.
    #[test]
    fn netlink_and_proc_agree() {
        let l4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l4.local_addr().unwrap().port();
        let l6 = TcpListener::bind(("::1", port)).ok();
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
            held.push(l4.accept().unwrap().0);
        }
        if let Some(l6) = &l6 {
            for _ in 0..3 {
                held.push(TcpStream::connect(("::1", port)).unwrap());
                held.push(l6.accept().unwrap().0);
            }
        }
        // A client whose own port is the gateway's port (127.0.0.2:port ->
        // 127.0.0.1:port): its local port is the port, so it is inbound.
        let odd = {
            use rustix::net::{AddressFamily, SocketType};
            let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
            let from: std::net::SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
            rustix::net::bind(&fd, &from).unwrap();
            rustix::net::connect(&fd, &l4.local_addr().unwrap()).unwrap();
            TcpStream::from(fd)
        };
        held.push(l4.accept().unwrap().0);
        held.push(odd);
        // Outbound: our own connection to another listener.
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        held.push(TcpStream::connect(other.local_addr().unwrap()).unwrap());
        held.push(other.accept().unwrap().0);
        // Clients that closed first leave TIME_WAIT on their side; servers
        // that close first leave it on the port.
        for _ in 0..2 {
            let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (s, _) = l4.accept().unwrap();
            drop(s);
            drop(c);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));

        // Owned: the sockets of this test (tests in other threads have theirs).
        let ino = |fd: std::os::fd::BorrowedFd| rustix::fs::fstat(fd).unwrap().st_ino;
        use std::os::fd::AsFd;
        let mut owned: HashSet<u64> = held.iter().map(|s| ino(s.as_fd())).collect();
        owned.extend([ino(l4.as_fd()), ino(other.as_fd())]);
        owned.extend(l6.iter().map(|l| ino(l.as_fd())));
        let mut diag = SockDiag::open().unwrap();
        let nl = count_netlink(&mut diag, port, Some(&owned)).unwrap();
        let pr = count_proc(Path::new("/proc/self/net"), port, Some(&owned)).unwrap();
        let v6 = if l6.is_some() { 3 } else { 0 };
        assert_eq!(nl.inbound.get("established"), Some(5 + v6 + 2));
        assert_eq!(nl.inbound.get("time_wait"), Some(2));
        assert_eq!(nl.inbound.get("listen"), Some(1 + u64::from(l6.is_some())));
        // Our clients of our own port are ours but not outbound. Both ends of
        // the connection to the other listener are, and that listener.
        assert_eq!(nl.outbound.unwrap().get("established"), Some(2));
        assert_eq!(nl.outbound.unwrap().get("listen"), Some(1));
        assert_eq!(nl.inbound, pr.inbound);
        assert_eq!(nl.outbound, pr.outbound);
        assert_eq!(nl.listen_queue_length, pr.listen_queue_length);
        assert!(nl.listen_queue_capacity.unwrap() >= 128);
        assert_eq!(pr.listen_queue_capacity, None);

        // Without owned sockets, only the port's sockets are asked for.
        let inbound_only = count_netlink(&mut diag, port, None).unwrap();
        assert_eq!(inbound_only.inbound, nl.inbound);
        assert_eq!(inbound_only.outbound, None);
    }
}
