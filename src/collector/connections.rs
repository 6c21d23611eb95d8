//! Network view, on `--collect.connections.interval` (default 10s): the
//! gateway's TCP connections by direction and state, its accept queue, its fds
//! by type, and the host's listen overflow and drop counters.
//!
//! Each sample finds the gateway process again, reads the socket fds of it and
//! its descendants (its own sockets, for the outbound side), then counts the
//! sockets through the platform's [`SocketReader`] (on Linux netlink
//! sock_diag, or the `tcp{,6}` tables of the gateway's network namespace);
//! `openclaw_gateway_connections_source` says which. Rules: [`crate::tcp`].

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{SampleError, Sampler, Skipped};
use crate::discovery::Target;
use crate::metrics::{self, Latest};
use crate::names;
use crate::platform::{FdTypes, ListenCounters, Owned, Pid, ProcError, SocketReader};
use crate::tcp::{Source, Tally, STATES};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionsSample {
    pub tally: Tally,
    /// Whether the platform reads the accept queue: without it the queue
    /// length is absent, not zero.
    pub listen_queue_known: bool,
    /// The gateway process's fds by type; `None` while it is not found or its
    /// fds cannot be read.
    pub fds: Option<FdTypes>,
}

/// One gateway's connections slot, shared by its sampler and the exposition.
#[derive(Debug)]
pub struct ConnectionsSlot {
    pub target: Arc<Target>,
    /// `None` after a sample that could read no socket table at all.
    pub latest: Latest<Option<ConnectionsSample>>,
}

/// The host's listen counters: one slot, read by the first gateway's sampler for all.
pub type HostSlot = Latest<ListenCounters>;

pub struct ConnectionsSampler {
    slot: Arc<ConnectionsSlot>,
    /// Where to put the host's counters; `None` when another gateway's
    /// sampler reads them (one read a round, however many gateways).
    host: Option<Arc<HostSlot>>,
    sockets: Box<dyn SocketReader>,
    /// Problems already logged, so each is logged once.
    logged: HashSet<String>,
    skipped: Skipped,
}

impl ConnectionsSampler {
    pub fn new(slot: Arc<ConnectionsSlot>, host: Option<Arc<HostSlot>>) -> Self {
        let mut sockets = slot.target.platform.socket_reader();
        // Every gateway's sample of a round reads the same dump.
        sockets.share(slot.target.view.max_age());
        ConnectionsSampler {
            slot,
            host,
            sockets,
            logged: HashSet::new(),
            skipped: Skipped::default(),
        }
    }

    fn log_once(&mut self, key: &str, message: &dyn std::fmt::Display) {
        if self.logged.insert(key.to_string()) {
            tracing::warn!(gateway = %self.slot.target.spec.name, "{message}");
        }
    }

    /// Count a skipped read of the gateway process, and log it the first time.
    fn skip(&mut self, key: &str, e: &ProcError, message: &dyn std::fmt::Display) {
        self.skipped.add(e);
        self.log_once(key, message);
    }

    /// The sockets of the gateway and its descendants, and the gateway's own
    /// fds by type where the platform has them. `Err` when the gateway's fds
    /// are unreadable.
    fn scan_tree(&mut self, pid: Pid) -> Result<(Owned, Option<FdTypes>), ProcError> {
        let p = self.slot.target.platform.clone();
        let mut owned = Owned::default();
        let types = p.scan_fds(pid, &mut owned)?;
        for child in self.slot.target.descendants(pid) {
            match p.scan_fds(child, &mut owned) {
                Ok(_) | Err(ProcError::Gone(_)) => {}
                Err(e) => self.skip(
                    "child-fds",
                    &e,
                    &format_args!("cannot read the fds of a gateway worker ({e}); its outbound connections are not counted"),
                ),
            }
        }
        Ok((owned, types))
    }

    /// Count the sockets of the port, and log once what the reader noticed
    /// (a fallback taken).
    fn count(&mut self, pid: Option<Pid>, owned: Option<&Owned>) -> Result<Tally, SampleError> {
        let port = self.slot.target.spec.port;
        let counted = self.sockets.count(port, pid, owned);
        for (key, message) in self.sockets.take_notices() {
            self.log_once(key, &message);
        }
        counted.map_err(SampleError::Failed)
    }

    fn sample_host(&mut self) {
        let Some(host) = self.host.clone() else {
            return;
        };
        if !self.slot.target.platform.caps().host_listen_counters {
            return;
        }
        match self.slot.target.platform.host_listen_counters() {
            Ok(c) => host.set(c),
            Err(message) => self.log_once("netstat", &message),
        }
    }
}

impl Sampler for ConnectionsSampler {
    fn name(&self) -> &'static str {
        "connections"
    }

    fn take_skipped(&mut self) -> Skipped {
        std::mem::take(&mut self.skipped)
    }

    fn sample(&mut self) -> Result<(), SampleError> {
        self.sample_host();
        let found = self.slot.target.resolve();
        let mut pid = found.map(|f| f.id.pid);
        let mut tree = None;
        if let Some(p) = pid {
            match self.scan_tree(p) {
                Ok(t) => tree = Some(t),
                // It exited since it was found: the gateway is down.
                Err(ProcError::Gone(_)) => pid = None,
                Err(e) => self.skip(
                    "fds",
                    &e,
                    &format_args!("{e}; outbound connections and fds by type are skipped"),
                ),
            }
        }
        let result = self.count(pid, tree.as_ref().map(|(owned, _)| owned));
        match result {
            Ok(mut tally) => {
                let caps = self.slot.target.platform.caps();
                if !caps.outbound {
                    tally.outbound = None;
                } else if pid.is_none() {
                    // No gateway process: it has no outbound connections.
                    tally.outbound = Some(Default::default());
                    tally.outbound_waits = (tally.source == Source::Netlink).then(Default::default);
                }
                if !caps.outbound {
                    tally.outbound_waits = None;
                }
                if !caps.listen_queue_capacity {
                    tally.listen_queue_capacity = None;
                    tally.listen_queue_fullest = None;
                }
                self.slot.latest.set(Some(ConnectionsSample {
                    tally,
                    listen_queue_known: caps.listen_queue_length,
                    fds: tree.and_then(|(_, types)| types),
                }));
                Ok(())
            }
            Err(e) => {
                self.slot.latest.set(None);
                Err(e)
            }
        }
    }
}

/// Exposes the connections slots of every gateway and the host counters.
#[derive(Debug)]
pub struct ConnectionsMetrics {
    pub slots: Vec<Arc<ConnectionsSlot>>,
    pub host: Arc<HostSlot>,
}

impl ConnectionsMetrics {
    /// `(gateway name, sample)` of every gateway with a sample.
    fn samples(&self) -> Vec<(&str, ConnectionsSample)> {
        self.slots
            .iter()
            .filter_map(|slot| {
                let s = slot.latest.get().flatten()?;
                Some((slot.target.spec.name.as_str(), s))
            })
            .collect()
    }
}

const EVERY: &str = "Sampled every --collect.connections.interval.";

impl Collector for ConnectionsMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples = self.samples();
        let connections = samples.iter().flat_map(|(gw, s)| {
            // TIME_WAIT sockets have no owner: absent where only owned
            // sockets are read (macOS).
            let unheld = s.tally.source.sees_unheld();
            let inbound = STATES
                .iter()
                .zip(s.tally.inbound.0)
                .filter(move |(state, _)| unheld || **state != "time_wait")
                .map(move |(state, n)| {
                    (
                        [
                            ("gateway", *gw),
                            ("direction", "inbound"),
                            ("state", *state),
                        ],
                        n as f64,
                    )
                });
            let outbound = s.tally.outbound.into_iter().flat_map(move |out| {
                STATES.iter().zip(out.0).map(move |(state, n)| {
                    (
                        [
                            ("gateway", *gw),
                            ("direction", "outbound"),
                            ("state", *state),
                        ],
                        n as f64,
                    )
                })
            });
            inbound.chain(outbound)
        });
        metrics::gauge(
            &mut enc,
            &names::TCP_CONNECTIONS,
            &format!("TCP sockets of the gateway by direction and state, IPv4 and IPv6. inbound: local port is the gateway's port (TIME_WAIT and SYN_RECV included, LISTEN sockets too); outbound: sockets of the gateway process and its descendants on any other port (a socket in TIME_WAIT has no owner, so outbound time_wait is 0). On macOS only the sockets the gateway's processes hold are seen, and its listeners' queues: inbound time_wait is absent there. {EVERY}"),
            connections,
        )?;
        metrics::gauge(
            &mut enc,
            &names::LISTEN_QUEUE_LENGTH,
            &format!("Connections waiting in the accept queue of the LISTEN sockets on the gateway's port, summed over IPv4 and IPv6. {EVERY}"),
            samples.iter().filter(|(_, s)| s.listen_queue_known).map(|(gw, s)| ([("gateway", *gw)], s.tally.listen_queue_length as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::LISTEN_QUEUE_CAPACITY,
            &format!("Accept queue limit (the effective listen backlog) of the LISTEN sockets on the gateway's port, summed over IPv4 and IPv6; absent when read from /proc/<pid>/net/tcp, which does not show it. {EVERY}"),
            samples.iter().filter_map(|(gw, s)| {
                Some(([("gateway", *gw)], s.tally.listen_queue_capacity? as f64))
            }),
        )?;
        metrics::gauge(
            &mut enc,
            &names::LISTEN_QUEUE_USAGE_RATIO,
            &format!("Accept queue of the fullest LISTEN socket on the gateway's port over its own limit (IPv4 and IPv6 listeners judged apart: clients may reach only one); above 1 when full. Absent where the limit is not shown. {EVERY}"),
            samples.iter().filter_map(|(gw, s)| {
                Some(([("gateway", *gw)], s.tally.listen_queue_usage_ratio()?))
            }),
        )?;
        let fds = samples.iter().flat_map(|(gw, s)| {
            s.fds.into_iter().flat_map(move |types| {
                FdTypes::NAMES
                    .into_iter()
                    .zip(types.values())
                    .map(move |(name, n)| ([("gateway", *gw), ("type", name)], n as f64))
            })
        });
        metrics::gauge(
            &mut enc,
            &names::PROCESS_OPEN_FDS_BY_TYPE,
            &format!("Open file descriptors of the gateway process by what they point to: socket, pipe, file (a path), anon_inode (epoll, eventfd, timerfd), other. {EVERY}"),
            fds,
        )?;
        let sources = samples.iter().flat_map(|(gw, s)| {
            Source::ALL.into_iter().map(move |src| {
                (
                    [("gateway", *gw), ("source", src.as_str())],
                    if s.tally.source == src { 1.0 } else { 0.0 },
                )
            })
        });
        metrics::gauge(
            &mut enc,
            &names::CONNECTIONS_SOURCE,
            &format!("1 for where the last connections sample was read: netlink (sock_diag), proc (/proc/<pid>/net/tcp{{,6}}, used for a gateway in another network namespace or when netlink is unavailable), tcp_table (the OS's TCP table with owner pids: the portable platform backend), or proc_pidfdinfo (the sockets the gateway's processes hold, on macOS). {EVERY}"),
            sources,
        )?;
        crate::outbound::encode(
            &mut enc,
            &samples
                .iter()
                .map(|(gw, s)| (*gw, s.tally.outbound_waits))
                .collect::<Vec<_>>(),
        )?;
        let host = self.host.get();
        metrics::counter_unlabelled(
            &mut enc,
            &names::HOST_LISTEN_OVERFLOWS_TOTAL,
            &format!("Host-wide (the exporter's network namespace), not per gateway: connections dropped because an accept queue was full (TcpExt ListenOverflows in /proc/net/netstat). {EVERY}"),
            host.map(|c| c.overflows as f64),
        )?;
        metrics::counter_unlabelled(
            &mut enc,
            &names::HOST_LISTEN_DROPS_TOTAL,
            &format!("Host-wide (the exporter's network namespace), not per gateway: connections dropped at any listener for any reason, overflows included (TcpExt ListenDrops in /proc/net/netstat). {EVERY}"),
            host.map(|c| c.drops as f64),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Target;

    /// The exposition of one gateway's sample read from `source`.
    fn exposed(source: Source) -> String {
        let spec = crate::config::build(crate::config::Intervals::default(), vec![])
            .unwrap()
            .gateways
            .remove(0);
        let slot = Arc::new(ConnectionsSlot {
            target: Arc::new(Target::new(spec)),
            latest: Latest::new(),
        });
        let mut tally = Tally::new(source, 18789, true);
        tally.inbound.0[5] = 3; // time_wait
        tally.inbound.0[7] = 2; // close_wait
        slot.latest.set(Some(ConnectionsSample {
            tally,
            listen_queue_known: true,
            fds: None,
        }));
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ConnectionsMetrics {
            slots: vec![slot],
            host: Arc::new(Latest::new()),
        }));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    /// The value of the connections row of `direction` and `state`.
    fn row(text: &str, direction: &str, state: &str) -> Option<f64> {
        let needle = format!("direction=\"{direction}\",state=\"{state}\"}}");
        let line = text.lines().find(|l| l.contains(&needle))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    #[test]
    fn inbound_time_wait_absent_where_only_held_sockets_are_read() {
        let table = exposed(Source::Netlink);
        assert_eq!(row(&table, "inbound", "time_wait"), Some(3.0));
        let fds = exposed(Source::Pidfdinfo);
        assert_eq!(row(&fds, "inbound", "time_wait"), None);
        // Every other row is there, with its own count.
        assert_eq!(row(&fds, "inbound", "close_wait"), Some(2.0));
        assert_eq!(row(&fds, "inbound", "closing"), Some(0.0));
        assert_eq!(row(&fds, "outbound", "time_wait"), Some(0.0));
        assert!(fds.contains("source=\"proc_pidfdinfo\"} 1"), "{fds}");
    }
}
