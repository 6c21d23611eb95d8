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
//!   IPv6; and the fullest listener on its own (clients may reach only one of
//!   them, 127.0.0.1 say, so a full queue there is half of the sum).

use std::collections::HashSet;

pub use crate::outbound::{Idle, Waits};

#[cfg(target_os = "linux")]
pub use crate::platform::linux::sockets::{
    count_netlink, count_proc, in_other_namespace, listen_inodes,
};

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
    /// Times since the last data sent and received, where the source shows
    /// them (netlink sock_diag's `tcp_info`): [`crate::outbound`].
    pub idle: Option<Idle>,
}

/// Where the sockets were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Netlink,
    Proc,
    /// The OS's TCP table with owner pids (the portable backend).
    TcpTable,
    /// The sockets the gateway's processes hold, fd by fd (macOS:
    /// `proc_pidfdinfo`).
    Pidfdinfo,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Netlink,
        Source::Proc,
        Source::TcpTable,
        Source::Pidfdinfo,
    ];

    /// Whether the source sees sockets no process holds, TIME_WAIT ones: a
    /// socket table does; the fds of processes (macOS) do not, so their
    /// inbound time_wait is absent rather than 0.
    pub fn sees_unheld(self) -> bool {
        self != Source::Pidfdinfo
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Netlink => "netlink",
            Source::Proc => "proc",
            Source::TcpTable => "tcp_table",
            Source::Pidfdinfo => "proc_pidfdinfo",
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
    /// The listener whose queue is the largest share of its own limit, as
    /// (length, limit); `None` where the limit is not shown or no listener
    /// was seen.
    pub listen_queue_fullest: Option<(u32, u32)>,
    /// The gateway's outbound connections waiting for an answer; `None`
    /// where the source does not show it (everywhere but netlink) or the
    /// gateway's sockets are unknown. Set by the reader: [`crate::outbound`].
    pub outbound_waits: Option<Waits>,
}

impl Tally {
    pub fn new(source: Source, port: u16, outbound: bool) -> Tally {
        Tally {
            source,
            port,
            inbound: StateCounts::default(),
            outbound: outbound.then(StateCounts::default),
            listen_queue_length: 0,
            // sock_diag and macOS's `soi_qlimit` show a listener's limit.
            listen_queue_capacity: matches!(source, Source::Netlink | Source::Pidfdinfo)
                .then_some(0),
            listen_queue_fullest: None,
            outbound_waits: None,
        }
    }

    /// The fullest listener's queue over its own limit. A listen backlog of
    /// 0 still queues one connection (the kernel's queue is full above its
    /// limit), so a limit of 0 counts as 1.
    pub fn listen_queue_usage_ratio(&self) -> Option<f64> {
        let (len, cap) = self.listen_queue_fullest?;
        Some(f64::from(len) / f64::from(cap.max(1)))
    }

    /// Count one socket by the rules of the module doc.
    pub fn add(&mut self, s: &Socket, owned: &HashSet<u64>) {
        self.add_owned(s, s.inode != 0 && owned.contains(&s.inode));
    }

    /// Count one socket, `owned` when the gateway tree holds it (by inode,
    /// or by owner pid where the socket table names it).
    pub fn add_owned(&mut self, s: &Socket, owned: bool) {
        if s.local_port == self.port {
            self.inbound.add(s.state);
            if s.state == LISTEN {
                self.listen_queue_length += u64::from(s.rqueue);
                if let Some(cap) = &mut self.listen_queue_capacity {
                    *cap += u64::from(s.wqueue);
                    // len / cap > l / c, without division.
                    let fuller = |(l, c): (u32, u32)| {
                        u64::from(s.rqueue) * u64::from(c.max(1))
                            > u64::from(l) * u64::from(s.wqueue.max(1))
                    };
                    if self.listen_queue_fullest.is_none_or(fuller) {
                        self.listen_queue_fullest = Some((s.rqueue, s.wqueue));
                    }
                }
            }
            return;
        }
        let to_own_port = s.remote_loopback && s.remote_port == self.port;
        if owned && !to_own_port {
            if let Some(out) = &mut self.outbound {
                out.add(s.state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(state: u8, local: u16, remote: u16, inode: u64) -> Socket {
        Socket {
            state,
            local_port: local,
            remote_port: remote,
            remote_loopback: true,
            rqueue: 2,
            wqueue: 511,
            inode,
            idle: None,
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
        assert_eq!(t.listen_queue_fullest, Some((2, 511)));
        // A hung gateway reached on 127.0.0.1 only: its IPv4 queue is full
        // (one above the limit), the IPv6 one empty. The sum reads 0.501,
        // the listener 1.002.
        let mut hung = Tally::new(Source::Netlink, 80, false);
        for (rq, inode) in [(512, 1), (0, 9)] {
            let l = Socket {
                rqueue: rq,
                ..sock(LISTEN, 80, 0, inode)
            };
            hung.add(&l, &owned);
        }
        assert_eq!(hung.listen_queue_fullest, Some((512, 511)));
        assert!(hung.listen_queue_usage_ratio().unwrap() > 1.0);
        // The IPv6 listener first makes no difference.
        let mut rev = Tally::new(Source::Netlink, 80, false);
        for (rq, inode) in [(0, 9), (512, 1)] {
            let l = Socket {
                rqueue: rq,
                ..sock(LISTEN, 80, 0, inode)
            };
            rev.add(&l, &owned);
        }
        assert_eq!(rev.listen_queue_fullest, Some((512, 511)));
        // No limit shown (/proc): no ratio.
        let mut pr = Tally::new(Source::Proc, 80, false);
        pr.add(&sock(LISTEN, 80, 0, 1), &owned);
        assert_eq!(pr.listen_queue_usage_ratio(), None);
        assert_eq!(StateCounts::default().get("nope"), None);
    }

    #[test]
    fn only_process_fds_miss_time_wait() {
        let blind: Vec<_> = Source::ALL
            .into_iter()
            .filter(|s| !s.sees_unheld())
            .collect();
        assert_eq!(blind, [Source::Pidfdinfo]);
    }
}
