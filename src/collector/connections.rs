//! Network view, on `--collect.connections.interval` (default 10s): the
//! gateway's TCP connections by direction and state, its accept queue, its fds
//! by type, and the host's listen overflow and drop counters.
//!
//! Each sample finds the gateway process again, reads the socket fds of it and
//! its descendants (its own sockets, for the outbound side), then counts the
//! sockets through netlink sock_diag. A gateway in another network namespace
//! than the exporter (a container), or a host without sock_diag, is read from
//! `/proc/<pid>/net/tcp{,6}` instead; `openclaw_gateway_connections_source`
//! says which. Rules: [`crate::tcp`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{SampleError, Sampler, Skipped};
use crate::discovery::Target;
use crate::metrics::{self, Latest};
use crate::names;
use crate::proc::{self, FdTypes, ProcError};
use crate::proc_net::{self, ListenCounters};
use crate::sock_diag::{DiagError, SockDiag};
use crate::tcp::{self, Source, Tally, STATES};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionsSample {
    pub tally: Tally,
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

/// The host's listen counters: one slot, written by every gateway's sampler.
pub type HostSlot = Latest<ListenCounters>;

pub struct ConnectionsSampler {
    slot: Arc<ConnectionsSlot>,
    host: Arc<HostSlot>,
    diag: Option<SockDiag>,
    /// Set once sock_diag proved unavailable (no permission, not built in).
    netlink_unavailable: bool,
    own_netns: Option<PathBuf>,
    /// Problems already logged, so each is logged once.
    logged: HashSet<String>,
    skipped: Skipped,
}

impl ConnectionsSampler {
    pub fn new(slot: Arc<ConnectionsSlot>, host: Arc<HostSlot>) -> Self {
        ConnectionsSampler {
            slot,
            host,
            diag: None,
            netlink_unavailable: false,
            own_netns: proc::own_net_namespace(),
            logged: HashSet::new(),
            skipped: Skipped::default(),
        }
    }

    fn log_once(&mut self, key: &str, message: &dyn std::fmt::Display) {
        if self.logged.insert(key.to_string()) {
            tracing::warn!(gateway = %self.slot.target.spec.name, "{message}");
        }
    }

    /// Count a skipped read of the gateway's `/proc`, and log it the first time.
    fn skip(&mut self, key: &str, e: &ProcError, message: &dyn std::fmt::Display) {
        self.skipped.add(e);
        self.log_once(key, message);
    }

    /// The socket inodes of the gateway and its descendants, and the
    /// gateway's own fds by type. `Err` when the gateway's fds are unreadable.
    fn scan_tree(&mut self, pid: i32) -> Result<(HashSet<u64>, FdTypes), ProcError> {
        let mut owned = HashSet::new();
        let types = proc::scan_fds(pid, &mut owned)?;
        for child in proc::descendants(pid) {
            match proc::scan_fds(child, &mut owned) {
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

    /// Whether `pid` runs in another network namespace than the exporter, or
    /// that cannot be told: then only `/proc/<pid>/net` is sure to be its own.
    fn other_netns(&self, pid: i32) -> bool {
        match (&self.own_netns, proc::net_namespace(pid)) {
            (Some(own), Ok(theirs)) => *own != theirs,
            _ => true,
        }
    }

    fn netlink(&mut self) -> Option<&mut SockDiag> {
        if self.diag.is_none() && !self.netlink_unavailable {
            match SockDiag::open() {
                Ok(d) => self.diag = Some(d),
                Err(e) => self.netlink_failed(e),
            }
        }
        self.diag.as_mut()
    }

    fn netlink_failed(&mut self, e: DiagError) {
        self.diag = None;
        if matches!(e, DiagError::Unavailable(_)) {
            self.netlink_unavailable = true;
        }
        self.log_once(
            "netlink",
            &format_args!("{e}; reading /proc/<pid>/net/tcp instead"),
        );
    }

    /// Count the sockets of the port, from netlink when it can see them.
    fn count(
        &mut self,
        pid: Option<i32>,
        owned: Option<&HashSet<u64>>,
    ) -> Result<Tally, SampleError> {
        let port = self.slot.target.spec.port;
        if !pid.is_some_and(|p| self.other_netns(p)) {
            if let Some(diag) = self.netlink() {
                match tcp::count_netlink(diag, port, owned) {
                    Ok(t) => return Ok(t),
                    Err(e) => self.netlink_failed(e),
                }
            }
        }
        let net_dir = match pid {
            Some(p) => Path::new("/proc").join(p.to_string()).join("net"),
            None => PathBuf::from("/proc/self/net"),
        };
        tcp::count_proc(&net_dir, port, owned)
            .map_err(|e| SampleError::Failed(format!("reading {}: {e}", net_dir.display())))
    }

    fn sample_host(&mut self) {
        match std::fs::read_to_string("/proc/net/netstat") {
            Ok(text) => match proc_net::parse_listen_counters(&text) {
                Some(c) => self.host.set(c),
                None => self.log_once(
                    "netstat",
                    &"/proc/net/netstat has no TcpExt ListenOverflows/ListenDrops; host listen counters are skipped",
                ),
            },
            Err(e) => self.log_once(
                "netstat",
                &format_args!("cannot read /proc/net/netstat ({e}); host listen counters are skipped"),
            ),
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
                if pid.is_none() {
                    // No gateway process: it has no outbound connections.
                    tally.outbound = Some(Default::default());
                }
                self.slot.latest.set(Some(ConnectionsSample {
                    tally,
                    fds: tree.map(|(_, types)| types),
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
            let inbound = STATES.iter().zip(s.tally.inbound.0).map(move |(state, n)| {
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
            &format!("TCP sockets of the gateway by direction and state, IPv4 and IPv6. inbound: local port is the gateway's port (TIME_WAIT and SYN_RECV included, LISTEN sockets too); outbound: sockets of the gateway process and its descendants on any other port (a socket in TIME_WAIT has no owner, so outbound time_wait is 0). {EVERY}"),
            connections,
        )?;
        metrics::gauge(
            &mut enc,
            &names::LISTEN_QUEUE_LENGTH,
            &format!("Connections waiting in the accept queue of the LISTEN sockets on the gateway's port, summed over IPv4 and IPv6. {EVERY}"),
            samples
                .iter()
                .map(|(gw, s)| ([("gateway", *gw)], s.tally.listen_queue_length as f64)),
        )?;
        metrics::gauge(
            &mut enc,
            &names::LISTEN_QUEUE_CAPACITY,
            &format!("Accept queue limit (the effective listen backlog) of the LISTEN sockets on the gateway's port, summed over IPv4 and IPv6; absent when read from /proc/<pid>/net/tcp, which does not show it. {EVERY}"),
            samples.iter().filter_map(|(gw, s)| {
                Some(([("gateway", *gw)], s.tally.listen_queue_capacity? as f64))
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
            &format!("1 for where the last connections sample was read: netlink (sock_diag) or proc (/proc/<pid>/net/tcp{{,6}}, used for a gateway in another network namespace or when netlink is unavailable). {EVERY}"),
            sources,
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
