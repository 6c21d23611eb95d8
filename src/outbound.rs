//! Outbound connections waiting for their upstream: the gateway sent a
//! request (data) after the last data it received, and nothing came back
//! since. Read from each socket's `struct tcp_info` where the platform shows
//! it (Linux netlink sock_diag); elsewhere the series are absent.
//!
//! "Waiting" is simple on purpose: `tcpi_last_data_sent < tcpi_last_data_recv`
//! (both "milliseconds ago"), or data sent and none ever received
//! (`tcpi_data_segs_out > 0`, `tcpi_data_segs_in == 0`); the wait is the time
//! since the last data sent. A connection that is merely idle (its last
//! request was answered) does not wait; one that sent its request and got
//! nothing, or whose peer accepted and never answered, waits from its last
//! send. The kernel starts both clocks at the handshake, so a fresh
//! connection that sent nothing does not wait either, and one that sent its
//! request within the handshake's millisecond (both clocks equal) is told by
//! the segment counts.
//!
//! Counted: established sockets the gateway tree holds, away from the
//! gateway's port, whose local port is not one the tree listens on (the
//! server end of another listener, such as the Node inspector, answers after
//! it receives: it would read as waiting by the rule above), and not a
//! loopback client of the gateway's own port (the gateway talking to
//! itself).

use std::collections::HashSet;

use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics;
use crate::names;
use crate::tcp::{Socket, LISTEN};

/// How long an outbound connection may wait before it counts as stalled: above
/// the long polls of chat channels (Telegram's `getUpdates` holds 30 s) and
/// the first token of most model calls.
pub const STALLED_AFTER_MS: u32 = 60_000;

const ESTABLISHED: u8 = 1;

/// Times since a connection's last data sent and received, in milliseconds
/// (`tcpi_last_data_sent`, `tcpi_last_data_recv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle {
    pub sent_ms: u32,
    pub received_ms: u32,
    /// It sent data and never received any (`tcpi_data_segs_out > 0`,
    /// `tcpi_data_segs_in == 0`; false on kernels before 4.6, which lack
    /// them).
    pub sent_only: bool,
}

impl Idle {
    /// How long the connection has waited for an answer; `None` when it does
    /// not wait (see the module doc).
    pub fn waiting_ms(&self) -> Option<u32> {
        (self.sent_ms < self.received_ms || self.sent_only).then_some(self.sent_ms)
    }
}

/// The gateway's outbound connections that wait for an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    /// Waiting, for any time.
    pub waiting: u64,
    /// Waiting for [`STALLED_AFTER_MS`] or longer.
    pub stalled: u64,
    /// The longest wait, 0 when none waits.
    pub oldest_ms: u64,
}

/// The waits among `sockets` of the gateway on `port`, whose tree holds the
/// inodes `owned`.
pub fn waits<'a>(
    sockets: impl Iterator<Item = &'a Socket> + Clone,
    port: u16,
    owned: &HashSet<u64>,
) -> Waits {
    let held = |s: &Socket| s.inode != 0 && owned.contains(&s.inode);
    let serves: HashSet<u16> = sockets
        .clone()
        .filter(|s| s.state == LISTEN && held(s))
        .map(|s| s.local_port)
        .collect();
    let mut w = Waits::default();
    for s in sockets {
        let outbound = s.state == ESTABLISHED
            && s.local_port != port
            && !serves.contains(&s.local_port)
            && !(s.remote_loopback && s.remote_port == port)
            && held(s);
        let Some(ms) = s.idle.and_then(|i| i.waiting_ms()).filter(|_| outbound) else {
            continue;
        };
        w.waiting += 1;
        if ms >= STALLED_AFTER_MS {
            w.stalled += 1;
        }
        w.oldest_ms = w.oldest_ms.max(u64::from(ms));
    }
    w
}

/// The three families, for each `(gateway, waits)` whose waits are known.
pub fn encode(
    enc: &mut DescriptorEncoder,
    gateways: &[(&str, Option<Waits>)],
) -> Result<(), std::fmt::Error> {
    const HOW: &str = "Established outbound connections of the gateway tree (not the server end of its other listeners) that sent data after the last data they received; absent where the platform does not show it (Linux netlink sock_diag only). Sampled every --collect.connections.interval.";
    let rows = |f: fn(&Waits) -> f64| {
        gateways
            .iter()
            .filter_map(move |(gw, w)| Some(([("gateway", *gw)], f(w.as_ref()?))))
    };
    metrics::gauge(
        enc,
        &names::OUTBOUND_WAITING_CONNECTIONS,
        &format!("Outbound connections waiting for an answer. {HOW}"),
        rows(|w| w.waiting as f64),
    )?;
    metrics::gauge(
        enc,
        &names::OUTBOUND_STALLED_CONNECTIONS,
        &format!("Outbound connections waiting for an answer for 60 s or more. {HOW}"),
        rows(|w| w.stalled as f64),
    )?;
    metrics::gauge(
        enc,
        &names::OUTBOUND_OLDEST_WAIT_SECONDS,
        &format!("The longest an outbound connection has waited for an answer since it last sent data; 0 when none waits. {HOW}"),
        rows(|w| w.oldest_ms as f64 / 1000.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(state: u8, local: u16, remote: u16, inode: u64, idle: Option<(u32, u32)>) -> Socket {
        sock_with(state, local, remote, inode, idle, false)
    }

    fn sock_with(
        state: u8,
        local: u16,
        remote: u16,
        inode: u64,
        idle: Option<(u32, u32)>,
        sent_only: bool,
    ) -> Socket {
        Socket {
            state,
            local_port: local,
            remote_port: remote,
            remote_loopback: true,
            rqueue: 0,
            wqueue: 0,
            inode,
            idle: idle.map(|(sent_ms, received_ms)| Idle {
                sent_ms,
                received_ms,
                sent_only,
            }),
        }
    }

    #[test]
    fn what_waits() {
        let owned = HashSet::from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let socks = [
            sock(ESTABLISHED, 40000, 443, 1, Some((70_000, 90_000))), // stalled
            sock(ESTABLISHED, 40001, 443, 2, Some((5_000, 6_000))),   // waiting
            sock(ESTABLISHED, 40002, 443, 3, Some((9_000, 1_000))),   // answered
            sock(ESTABLISHED, 40003, 443, 4, Some((2_000, 2_000))),   // fresh
            sock(ESTABLISHED, 40004, 443, 99, Some((80_000, 99_000))), // not held
            sock(ESTABLISHED, 40005, 18789, 5, Some((80_000, 99_000))), // to itself
            sock(LISTEN, 9229, 0, 6, None),                           // a listener
            sock(ESTABLISHED, 9229, 50000, 7, Some((1_000, 2_000))),  // its server end
            sock(ESTABLISHED, 18789, 50001, 8, Some((80_000, 99_000))), // inbound
            sock(2, 40006, 443, 3, None),                             // syn_sent
            // Sent its request in the handshake's millisecond, no answer.
            sock_with(ESTABLISHED, 40007, 443, 9, Some((3_000, 3_000)), true),
        ];
        let w = waits(socks.iter(), 18789, &owned);
        assert_eq!(
            w,
            Waits {
                waiting: 3,
                stalled: 1,
                oldest_ms: 70_000
            }
        );
        assert_eq!(waits([].iter(), 18789, &owned), Waits::default());
    }
}
