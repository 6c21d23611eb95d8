//! TCP on macOS: the sockets the gateway's processes hold, read fd by fd
//! (`PROC_PIDLISTFDS`, then `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` for each
//! socket fd), as `lsof -i` reads them. netstat2 does not build here and the
//! system's PCB list (`net.inet.tcp.pcblist_n`) names no owners.
//!
//! The rules are [`crate::tcp`]'s, applied to what the processes hold:
//! - inbound: the sockets on the gateway's port its processes hold (the
//!   listeners, accepted connections), plus the connections waiting in a
//!   listener's queues, which no fd holds yet: `soi_qlen` of them counted
//!   established and `soi_incqlen` syn_recv, as Linux's socket table shows
//!   them. TIME_WAIT and any other socket no process holds (closed by the
//!   gateway, still in FIN_WAIT or LAST_ACK) are absent, not zero;
//! - outbound: the tree's other sockets;
//! - a socket several processes hold (inherited by a worker) counts once, by
//!   its handle (`soi_so`);
//! - the accept queue: `soi_qlen` and `soi_qlimit` of the listeners.

use std::collections::HashSet;

use super::decode::TcpSock;
use crate::platform::{Pid, TcpState};
use crate::tcp::{Socket, Source, Tally};

/// Count the sockets `held` by the gateway's processes for `port`;
/// `outbound` when `held` is the whole tree's.
pub fn tally(port: u16, held: &[TcpSock], outbound: bool) -> Tally {
    let mut t = Tally::new(Source::Pidfdinfo, port, outbound);
    let mut seen = HashSet::new();
    let sock = |state: TcpState, s: &TcpSock| Socket {
        state: state as u8,
        local_port: s.local_port,
        remote_port: s.remote_port,
        remote_loopback: s.remote_loopback,
        rqueue: s.accept_queue,
        wqueue: s.backlog,
        inode: 0,
        idle: None,
    };
    for s in held.iter().filter(|s| seen.insert(s.handle)) {
        t.add_owned(&sock(s.state, s), true);
        if s.state == TcpState::Listen && s.local_port == port {
            let queued = TcpSock {
                accept_queue: 0,
                backlog: 0,
                ..*s
            };
            for _ in 0..s.accept_queue {
                t.add_owned(&sock(TcpState::Established, &queued), true);
            }
            for _ in 0..s.syn_queue {
                t.add_owned(&sock(TcpState::SynRecv, &queued), true);
            }
        }
    }
    t
}

/// Whether `held` has a LISTEN socket on `port`.
pub fn listens(held: &[TcpSock], port: u16) -> bool {
    held.iter()
        .any(|s| s.state == TcpState::Listen && s.local_port == port)
}

/// The processes holding a listener: the `known` ones that do; only when
/// none does, a search of `all` others. A second listener beside a known
/// holder's (`SO_REUSEPORT`, another address) is therefore not searched for:
/// with no socket table naming owners, that search reads every process's
/// fds, so it runs only while no known process listens.
pub fn owners(
    known: &[Pid],
    all: impl FnOnce() -> Vec<Pid>,
    holds: impl Fn(Pid) -> bool,
) -> Vec<Pid> {
    let found: Vec<Pid> = known.iter().copied().filter(|&p| holds(p)).collect();
    if !found.is_empty() {
        return found;
    }
    all()
        .into_iter()
        .filter(|p| !known.contains(p))
        .filter(|&p| holds(p))
        .collect()
}

#[cfg(target_os = "macos")]
pub use native::*;

#[cfg(target_os = "macos")]
mod native {
    use super::super::{decode, ffi};
    use super::*;
    use crate::platform::{Owned, ProcError, SocketReader};

    /// The TCP sockets `pid` holds.
    pub fn held_by(pid: Pid) -> Result<Vec<TcpSock>, ProcError> {
        let mut held = Vec::new();
        for (fd, ty) in ffi::list_fds(pid)? {
            if ty != decode::PROX_FDTYPE_SOCKET {
                continue;
            }
            if let Some(buf) = ffi::socket_fdinfo(pid, fd)? {
                held.extend(decode::tcp_socket(&buf));
            }
        }
        Ok(held)
    }

    /// Whether `pid` holds a LISTEN socket on `port`.
    pub fn holds_listener(pid: Pid, port: u16) -> bool {
        held_by(pid).is_ok_and(|h| listens(&h, port))
    }

    #[derive(Debug, Default)]
    pub struct FdReader;

    impl SocketReader for FdReader {
        fn count(
            &mut self,
            port: u16,
            pid: Option<Pid>,
            owned: Option<&Owned>,
        ) -> Result<Tally, String> {
            let mut held = Vec::new();
            match (owned, pid) {
                (Some(tree), _) => {
                    for &p in &tree.pids {
                        match held_by(p) {
                            Ok(h) => held.extend(h),
                            // Gone, or a worker the tree scan already
                            // reported: its sockets are left out.
                            Err(_) => continue,
                        }
                    }
                }
                (None, Some(p)) => {
                    held = held_by(p)
                        .map_err(|e| format!("{e}; the gateway's connections cannot be counted"))?
                }
                // No gateway process: whoever holds sockets on the port.
                (None, None) => {
                    for p in ffi::all_pids() {
                        if let Ok(h) = held_by(p) {
                            held.extend(h.into_iter().filter(|s| s.local_port == port));
                        }
                    }
                }
            }
            Ok(tally(port, &held, owned.is_some()))
        }

        fn take_notices(&mut self) -> Vec<(&'static str, String)> {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::*;

    fn s(handle: u64, state: TcpState, local: u16, remote: u16, loopback: bool) -> TcpSock {
        TcpSock {
            handle,
            state,
            local_port: local,
            remote_port: remote,
            remote_loopback: loopback,
            accept_queue: 0,
            syn_queue: 0,
            backlog: 0,
        }
    }

    #[test]
    fn what_the_tree_holds() {
        let mut v4 = s(1, Listen, 18789, 0, false);
        (v4.accept_queue, v4.syn_queue, v4.backlog) = (2, 1, 511);
        let mut v6 = s(2, Listen, 18789, 0, false);
        v6.backlog = 511;
        let held = [
            v4,
            v6,
            v4, // the same listener, inherited by a worker
            s(3, Established, 18789, 50000, true),
            s(4, CloseWait, 18789, 50001, true),
            s(5, Established, 50002, 443, false),  // outbound
            s(6, Established, 50003, 18789, true), // to its own port
            s(7, SynSent, 50004, 443, false),
        ];
        let t = tally(18789, &held, true);
        assert_eq!(t.source, Source::Pidfdinfo);
        assert_eq!(t.inbound.get("listen"), Some(2));
        // One accepted, two waiting in the accept queue.
        assert_eq!(t.inbound.get("established"), Some(3));
        assert_eq!(t.inbound.get("syn_recv"), Some(1));
        assert_eq!(t.inbound.get("close_wait"), Some(1));
        // No process holds a TIME_WAIT socket.
        assert_eq!(t.inbound.get("time_wait"), Some(0));
        assert_eq!(t.inbound.total(), 7);
        let out = t.outbound.unwrap();
        assert_eq!(
            (out.get("established"), out.get("syn_sent")),
            (Some(1), Some(1))
        );
        assert_eq!(out.total(), 2);
        assert_eq!(
            (t.listen_queue_length, t.listen_queue_capacity),
            (2, Some(1022))
        );
        // The gateway alone: no outbound.
        assert_eq!(tally(18789, &held, false).outbound, None);
    }

    #[test]
    fn listeners_on_the_port() {
        let held = [s(1, Listen, 80, 0, false), s(2, Established, 81, 1, false)];
        assert!(listens(&held, 80));
        assert!(!listens(&held, 81));
        assert!(!listens(&[], 80));
    }

    #[test]
    fn known_owners_first() {
        let holds = |p: Pid| p == 7 || p == 9;
        // A known holder: nothing else is searched.
        let none = || -> Vec<Pid> { panic!("searched every process") };
        assert_eq!(owners(&[5, 7], none, holds), [7]);
        // No known holder: every process is searched.
        assert_eq!(owners(&[5], || vec![1, 5, 7, 9], holds), [7, 9]);
        assert_eq!(owners(&[], Vec::new, holds), Vec::<Pid>::new());
    }
}
