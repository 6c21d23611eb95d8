//! Sockets on Linux: netlink sock_diag, with the `/proc/<pid>/net/tcp{,6}`
//! streamer for a gateway in another network namespace or a host without
//! sock_diag. The counting rules are [`crate::tcp`]'s.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc;
use super::proc_net;
use super::sock_diag::{self, DiagError, Filter, SockDiag};
use crate::outbound;
use crate::platform::{Identity, Owned, Pid, ProcError, SocketReader};
use crate::tcp::{Socket, Source, Tally, LISTEN};

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
                idle: None,
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
                idle: None,
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

/// Processes holding a LISTEN socket on `port`. The usual case (the gateway
/// itself holds them all) costs one fd-table read; only a socket nobody known
/// holds triggers a scan of every process.
///
/// `listen_inodes` reads the LISTEN sockets of the port in the network
/// namespace of a process, the exporter's own for `None` ([`listen_inodes`],
/// or the table the connections samples of this round read);
/// `socket_inodes` reads the socket inodes of one process (the platform's fd
/// table, shared with the connections sample).
pub fn listen_owners(
    known: &[Identity],
    listen_inodes: &dyn Fn(Option<i32>) -> Vec<u64>,
    socket_inodes: &dyn Fn(i32) -> Result<HashSet<u64>, ProcError>,
) -> Vec<Identity> {
    // The namespaces the known processes are in; the exporter's own one
    // when none is known. A listener on the same port in a namespace none of
    // them is in is another host's, as far as this gateway goes (another
    // container's gateway, or the host's own).
    let (foreign, here): (Vec<&Identity>, Vec<&Identity>) =
        known.iter().partition(|id| in_other_namespace(id.pid));
    let mut listen: HashSet<u64> = HashSet::new();
    if known.is_empty() || !here.is_empty() {
        listen.extend(listen_inodes(None));
    }
    for id in foreign {
        listen.extend(listen_inodes(Some(id.pid)));
    }
    if listen.is_empty() {
        return Vec::new();
    }
    let mut owners = Vec::new();
    let holds = |own: Result<HashSet<u64>, ProcError>, listen: &HashSet<u64>| {
        own.map(|own| {
            listen
                .iter()
                .filter(|i| own.contains(i))
                .copied()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    };
    let mut read = HashSet::new();
    for id in known {
        // The lock owner is usually the gateway found: one fd-table read.
        if listen.is_empty() || !read.insert(id.pid) {
            continue;
        }
        let held = holds(socket_inodes(id.pid), &listen);
        if !held.is_empty() {
            owners.push(*id);
            for i in held {
                listen.remove(&i);
            }
        }
    }
    if listen.is_empty() {
        return owners;
    }
    for pid in proc::all_pids() {
        if owners.iter().any(|o| o.pid == pid) {
            continue;
        }
        // Not kept: this reads every process's fd table.
        if !holds(proc::socket_inodes(pid), &listen).is_empty() {
            if let Ok(id) = proc::identity(pid) {
                owners.push(id);
            }
        }
    }
    owners
}

/// The socket tables of each network namespace, shared by every reader of
/// one platform: N gateways in one namespace cost one netlink dump (or one
/// read of its `/proc/<pid>/net/tcp{,6}`) a round, not N, and one netlink
/// socket in all.
#[derive(Debug, Default)]
pub(super) struct Tables(Mutex<TablesState>);

#[derive(Debug, Default)]
struct TablesState {
    diag: Option<SockDiag>,
    /// Set once sock_diag proved unavailable (no permission, not built in).
    netlink_unavailable: bool,
    /// By network namespace (the link of `/proc/<pid>/ns/net`).
    tables: HashMap<PathBuf, Arc<Table>>,
    /// Every port counted so far: a netlink dump keeps their sockets.
    ports: BTreeSet<u16>,
    /// Tables read so far.
    reads: u64,
}

/// The sockets of one network namespace as read at `taken`.
#[derive(Debug)]
struct Table {
    taken: Instant,
    source: Source,
    /// The ports whose sockets it has in full; `None`: every port.
    ports: Option<BTreeSet<u16>>,
    sockets: Vec<Socket>,
    /// Its sockets by local port and by inode, made at its first tally.
    index: std::sync::OnceLock<Index>,
}

/// A table's sockets (their places in it) by local port and by inode. A
/// gateway's tally counts only the sockets on its port and those its
/// processes hold (`Tally::add`, `outbound::waits`): with the index it reads
/// those, not every socket of the namespace, so N gateways sharing one
/// table cost N small tallies a round, not N walks of a table that grows
/// with N.
#[derive(Debug, Default)]
struct Index {
    by_port: HashMap<u16, Vec<u32>>,
    by_inode: HashMap<u64, u32>,
    /// An inode seen twice (never in a kernel's table): tallies then walk
    /// every socket.
    ambiguous: bool,
}

impl Index {
    fn of(sockets: &[Socket]) -> Index {
        let mut index = Index::default();
        for (i, s) in sockets.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else {
                index.ambiguous = true;
                break;
            };
            index.by_port.entry(s.local_port).or_default().push(i);
            if s.inode != 0 && index.by_inode.insert(s.inode, i).is_some() {
                index.ambiguous = true;
            }
        }
        index
    }
}

impl Table {
    fn new(
        taken: Instant,
        source: Source,
        ports: Option<BTreeSet<u16>>,
        sockets: Vec<Socket>,
    ) -> Table {
        Table {
            taken,
            source,
            ports,
            sockets,
            index: std::sync::OnceLock::new(),
        }
    }

    fn serves(&self, port: u16, max_age: Duration) -> bool {
        self.taken.elapsed() < max_age && self.ports.as_ref().is_none_or(|p| p.contains(&port))
    }

    fn tally(&self, port: u16, owned: Option<&HashSet<u64>>) -> Tally {
        let index = self.index.get_or_init(|| Index::of(&self.sockets));
        if index.ambiguous {
            return tally_of(self.source, self.sockets.iter(), port, owned);
        }
        // The sockets on the port and those the gateway holds, in the
        // table's order.
        let mut mine: Vec<u32> = index.by_port.get(&port).cloned().unwrap_or_default();
        mine.extend(
            owned
                .into_iter()
                .flatten()
                .filter_map(|i| index.by_inode.get(i)),
        );
        mine.sort_unstable();
        mine.dedup();
        let sockets = mine.iter().map(|&i| &self.sockets[i as usize]);
        tally_of(self.source, sockets, port, owned)
    }
}

/// Count `sockets` for the gateway on `port` whose processes hold `owned`.
fn tally_of<'a>(
    source: Source,
    sockets: impl Iterator<Item = &'a Socket> + Clone,
    port: u16,
    owned: Option<&HashSet<u64>>,
) -> Tally {
    let empty = HashSet::new();
    let owned_set = owned.unwrap_or(&empty);
    let mut tally = Tally::new(source, port, owned.is_some());
    for s in sockets.clone() {
        tally.add(s, owned_set);
    }
    // Only netlink reads tcp_info.
    if source == Source::Netlink && owned.is_some() {
        tally.outbound_waits = Some(outbound::waits(sockets, port, owned_set));
    }
    tally
}

impl TablesState {
    fn netlink(&mut self, notices: &mut Vec<(&'static str, String)>) -> Option<&mut SockDiag> {
        if self.diag.is_none() && !self.netlink_unavailable {
            match SockDiag::open() {
                Ok(d) => self.diag = Some(d.tcp_info()),
                Err(e) => self.netlink_failed(e, notices),
            }
        }
        self.diag.as_mut()
    }

    fn netlink_failed(&mut self, e: DiagError, notices: &mut Vec<(&'static str, String)>) {
        self.diag = None;
        if matches!(e, DiagError::Unavailable(_)) {
            self.netlink_unavailable = true;
        }
        notices.push((
            "netlink",
            format!("{e}; reading /proc/<pid>/net/tcp instead"),
        ));
    }

    /// Dump the exporter's namespace through netlink. With one port, the
    /// kernel leaves out the local clients of that port (the gateway's own
    /// are inbound) and, where it can tell, mini sockets elsewhere; with
    /// more, a local client of one gateway may be another's outbound
    /// connection, so only mini sockets away from the ports are left out.
    fn dump(&mut self, notices: &mut Vec<(&'static str, String)>) -> Option<Table> {
        let taken = Instant::now();
        let ports = self.ports.clone();
        let diag = self.netlink(notices)?;
        let cgroups = diag.filters_cgroups();
        let on_ports = ports
            .iter()
            .map(|&p| Filter::local_port(p))
            .reduce(Filter::or);
        let filter = match (ports.first(), ports.len(), on_ports) {
            (Some(&port), 1, _) if cgroups => Filter::local_port(port)
                .or(!Filter::loopback_peer_port(port).or(Filter::no_owner())),
            (Some(&port), 1, _) => !Filter::loopback_peer_port(port),
            (_, _, Some(on_ports)) if cgroups => (!Filter::no_owner()).or(on_ports),
            _ => Filter::all(),
        };
        let mut sockets = Vec::new();
        let dumped = diag.dump(sock_diag::ALL_STATES, &filter, |s| {
            sockets.push(Socket {
                state: s.state,
                local_port: s.local_port,
                remote_port: s.remote_port,
                remote_loopback: s.remote_loopback,
                rqueue: s.rqueue,
                wqueue: s.wqueue,
                inode: s.inode,
                idle: s.idle,
            })
        });
        match dumped {
            Ok(()) => Some(Table::new(
                taken,
                Source::Netlink,
                (ports.len() == 1).then_some(ports),
                sockets,
            )),
            Err(e) => {
                self.netlink_failed(e, notices);
                None
            }
        }
    }
}

/// Read a namespace's `tcp` and `tcp6` tables from its `net` folder.
fn read_proc(net_dir: &Path) -> Result<Table, String> {
    let taken = Instant::now();
    let mut sockets = Vec::new();
    proc_net::for_each_socket(net_dir, |row| {
        sockets.push(Socket {
            state: row.state,
            local_port: row.local_port,
            remote_port: row.remote_port,
            remote_loopback: row.remote_loopback,
            rqueue: row.rx_queue,
            wqueue: 0,
            inode: row.inode,
            idle: None,
        })
    })
    .map_err(|e| format!("reading {}: {e}", net_dir.display()))?;
    Ok(Table::new(taken, Source::Proc, None, sockets))
}

impl Tables {
    /// The inodes of the sockets that LISTEN on `port` in the table of
    /// `netns`, when one younger than `max_age` has that port's sockets;
    /// `None`: read them anew.
    pub(super) fn listening(&self, netns: &Path, port: u16, max_age: Duration) -> Option<Vec<u64>> {
        let st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let table = st.tables.get(netns).filter(|t| t.serves(port, max_age))?;
        Some(
            table
                .sockets
                .iter()
                .filter(|s| s.state == LISTEN && s.local_port == port)
                .map(|s| s.inode)
                .collect(),
        )
    }

    /// The table of the namespace `netns` that `pid` (or the exporter, for
    /// `None`) runs in, read now unless one that serves `port` is younger
    /// than `max_age`. Readers that come while it is read wait for it.
    fn get(
        &self,
        netns: PathBuf,
        own: bool,
        port: u16,
        pid: Option<Pid>,
        max_age: Duration,
        notices: &mut Vec<(&'static str, String)>,
    ) -> Result<Arc<Table>, String> {
        let mut st = self.0.lock().unwrap_or_else(|e| e.into_inner());
        st.ports.insert(port);
        if let Some(t) = st.tables.get(&netns).filter(|t| t.serves(port, max_age)) {
            return Ok(t.clone());
        }
        let table = match own.then(|| st.dump(notices)).flatten() {
            Some(t) => t,
            None => read_proc(&net_dir(pid))?,
        };
        let table = Arc::new(table);
        st.reads += 1;
        st.tables.retain(|_, t| t.taken.elapsed() < max_age);
        st.tables.insert(netns, table.clone());
        Ok(table)
    }
}

fn net_dir(pid: Option<Pid>) -> PathBuf {
    match pid {
        Some(p) => Path::new("/proc").join(p.to_string()).join("net"),
        None => PathBuf::from("/proc/self/net"),
    }
}

/// Counts through netlink sock_diag; a gateway in another network namespace
/// than the exporter (a container), or a host without sock_diag, is read from
/// `/proc/<pid>/net/tcp{,6}` instead. Tables are shared with the platform's
/// other readers for `max_age` ([`SocketReader::share`]).
pub(super) struct Sockets {
    tables: Arc<Tables>,
    own_netns: Option<PathBuf>,
    max_age: Duration,
    notices: Vec<(&'static str, String)>,
}

impl Sockets {
    pub(super) fn new(tables: Arc<Tables>) -> Sockets {
        Sockets {
            tables,
            own_netns: proc::own_net_namespace(),
            max_age: Duration::ZERO,
            notices: Vec::new(),
        }
    }
}

impl SocketReader for Sockets {
    fn count(
        &mut self,
        port: u16,
        pid: Option<Pid>,
        owned: Option<&Owned>,
    ) -> Result<Tally, String> {
        let owned = owned.map(|o| &o.inodes);
        let netns = match pid {
            Some(p) => proc::net_namespace(p).ok(),
            None => self.own_netns.clone(),
        };
        // A namespace that cannot be told (the process just went, or its
        // link is unreadable): only `/proc/<pid>/net` is sure to be its own.
        let Some(netns) = netns else {
            return Ok(read_proc(&net_dir(pid))?.tally(port, owned));
        };
        let own = self.own_netns.as_ref() == Some(&netns);
        let table = self
            .tables
            .get(netns, own, port, pid, self.max_age, &mut self.notices)?;
        Ok(table.tally(port, owned))
    }

    fn take_notices(&mut self) -> Vec<(&'static str, String)> {
        std::mem::take(&mut self.notices)
    }

    fn share(&mut self, max_age: Duration) {
        self.max_age = max_age;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A gateway's tally from the table's index (its port's sockets and the
    /// ones it holds) is the tally of every socket of the table, for mixed
    /// tables: every state, listeners of other gateways, local clients of
    /// its port, mini sockets (inode 0), outbound waits; and a table with an
    /// inode twice is walked whole.
    #[test]
    fn indexed_tallies_count_what_whole_tables_do() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let ports = [18789u16, 18790, 18791];
        for round in 0..40 {
            let mut sockets = Vec::new();
            for i in 0..(50 + rand(300)) {
                let pick = |r: u64, ephemeral: u16| match r {
                    0..=2 => ports[r as usize],
                    3 => 443,
                    _ => ephemeral,
                };
                sockets.push(Socket {
                    state: 1 + rand(11) as u8,
                    local_port: pick(rand(6), 40000 + i as u16),
                    remote_port: pick(rand(6), 50000 + i as u16),
                    remote_loopback: rand(2) == 0,
                    rqueue: rand(5) as u32,
                    wqueue: rand(5) as u32,
                    inode: if rand(4) == 0 { 0 } else { 1000 + i },
                    idle: (rand(2) == 0).then(|| crate::tcp::Idle {
                        sent_ms: rand(60_000) as u32,
                        received_ms: rand(60_000) as u32,
                        sent_only: rand(3) == 0,
                    }),
                });
            }
            if round % 10 == 9 {
                // The same inode twice.
                let twin = Socket {
                    inode: 1000,
                    ..sockets[1]
                };
                sockets.push(twin);
            }
            for source in [Source::Netlink, Source::Proc] {
                let table = Table::new(Instant::now(), source, None, sockets.clone());
                for port in ports.into_iter().chain([443, 1]) {
                    let owned: HashSet<u64> = (0..rand(60)).map(|_| 990 + rand(400)).collect();
                    for owned in [None, Some(&owned)] {
                        assert_eq!(
                            table.tally(port, owned),
                            tally_of(source, sockets.iter(), port, owned),
                            "round {round}, {source:?}, port {port}, owned {}",
                            owned.is_some()
                        );
                    }
                }
            }
        }
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

    /// Two gateways' readers in one namespace share the dump: the second
    /// port makes one more (the first kept only its own port's sockets),
    /// then every count reads the shared table. From it, gateway B's client
    /// of gateway A's port is B's outbound connection and A's inbound one
    /// only by its server end.
    #[test]
    fn readers_share_one_table_and_count_their_own() {
        use std::os::fd::AsFd;
        let ino = |fd: std::os::fd::BorrowedFd| rustix::fs::fstat(fd).unwrap().st_ino;
        let la = TcpListener::bind("127.0.0.1:0").unwrap();
        let lb = TcpListener::bind("127.0.0.1:0").unwrap();
        let (pa, pb) = (
            la.local_addr().unwrap().port(),
            lb.local_addr().unwrap().port(),
        );
        let b_to_a = TcpStream::connect(("127.0.0.1", pa)).unwrap();
        let (a_end, _) = la.accept().unwrap();
        let own_a = Owned {
            inodes: HashSet::from([ino(la.as_fd()), ino(a_end.as_fd())]),
            ..Default::default()
        };
        let own_b = Owned {
            inodes: HashSet::from([ino(lb.as_fd()), ino(b_to_a.as_fd())]),
            ..Default::default()
        };
        let tables = Arc::new(Tables::default());
        let (mut a, mut b) = (Sockets::new(tables.clone()), Sockets::new(tables.clone()));
        a.share(Duration::from_secs(60));
        b.share(Duration::from_secs(60));
        let first = a.count(pa, None, Some(&own_a)).unwrap();
        for _ in 0..3 {
            let ta = a.count(pa, None, Some(&own_a)).unwrap();
            let tb = b.count(pb, None, Some(&own_b)).unwrap();
            assert_eq!(ta.inbound, first.inbound);
            assert_eq!(ta.inbound.get("established"), Some(1));
            assert_eq!(ta.inbound.get("listen"), Some(1));
            assert_eq!(ta.outbound.unwrap().total(), 0);
            assert_eq!(tb.inbound.get("listen"), Some(1));
            assert_eq!(tb.inbound.get("established"), Some(0));
            assert_eq!(tb.outbound.unwrap().get("established"), Some(1));
        }
        assert_eq!(tables.0.lock().unwrap().reads, 2);
        // A reader that does not share reads anew.
        let mut alone = Sockets::new(tables.clone());
        alone.count(pa, None, None).unwrap();
        assert_eq!(tables.0.lock().unwrap().reads, 3);
    }
}
