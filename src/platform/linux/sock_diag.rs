//! TCP sockets straight from the kernel: netlink `sock_diag` (INET_DIAG) dumps
//! with a port filter in the request, so the kernel copies out only the
//! sockets that match.
//!
//! Why not the `netlink-packet-sock-diag` crate: its `InetRequest` has no way
//! to carry the `INET_DIAG_REQ_BYTECODE` attribute (the in-kernel filter this
//! module exists for), and its decoder builds an owned attribute list for every
//! socket, where a count of 50k sockets needs five fixed fields of each. A
//! request is a header, a fixed 56- or 60-byte body and the bytecode; the
//! reply's `inet_diag_msg` is 72 bytes: stable kernel ABI (`linux/inet_diag.h`,
//! `linux/sock_diag.h`), written here over a plain netlink socket from `rustix`
//! (no `unsafe`).
//!
//! The socket lives in the exporter's network namespace: it sees only sockets
//! of that namespace. Callers read another namespace from `/proc/<pid>/net`.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::tcp::Idle;

/// `AF_INET` and `AF_INET6`, as the kernel numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4 = 2,
    V6 = 10,
}

/// The fields of one socket a count needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagSocket {
    pub family: Family,
    /// Kernel TCP state number (`TCP_ESTABLISHED` = 1 ... `TCP_CLOSING` = 11).
    pub state: u8,
    pub local_port: u16,
    pub remote_port: u16,
    /// The remote address is loopback: 127.0.0.0/8, `::1`, or 127.0.0.0/8
    /// mapped into IPv6.
    pub remote_loopback: bool,
    /// For a listener: the current accept backlog. Otherwise unread bytes.
    pub rqueue: u32,
    /// For a listener: the accept backlog limit. Otherwise unsent bytes.
    pub wqueue: u32,
    /// 0 for sockets no file refers to (TIME_WAIT, SYN_RECV, orphans).
    pub inode: u64,
    /// From `struct tcp_info` (the `INET_DIAG_INFO` attribute), when the
    /// dump asked for it ([`SockDiag::tcp_info`]) and the socket is a full
    /// one: mini sockets (TIME_WAIT, SYN_RECV) have none.
    pub idle: Option<Idle>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// Netlink sock_diag cannot be used here (no permission, not built in,
    /// seccomp); the caller falls back to `/proc/net/tcp`.
    #[error("netlink sock_diag is unavailable: {0}")]
    Unavailable(Errno),
    #[error("netlink sock_diag {what}: {errno}")]
    Io { what: &'static str, errno: Errno },
    #[error("netlink sock_diag answered a malformed message")]
    Malformed,
}

impl DiagError {
    /// Errors that mean "this host or sandbox does not offer sock_diag".
    fn from_open(errno: Errno) -> DiagError {
        match errno {
            Errno::ACCESS
            | Errno::PERM
            | Errno::PROTONOSUPPORT
            | Errno::AFNOSUPPORT
            | Errno::NOSYS
            | Errno::INVAL => DiagError::Unavailable(errno),
            e => DiagError::Io {
                what: "socket",
                errno: e,
            },
        }
    }
}

// linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const TCPDIAG_GETSOCK: u16 = 18;
const IPPROTO_TCP: u8 = 6;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const NLMSG_HDR_LEN: usize = 16;
const REQ_V1_LEN: usize = 60;
const REQ_V2_LEN: usize = 56;
const DIAG_MSG_LEN: usize = 72;
/// The `INET_DIAG_INFO` attribute (`struct tcp_info`), and its bit in a
/// request's `idiag_ext` (bit N-1 for attribute N).
const INET_DIAG_INFO: u16 = 2;
const EXT_INFO: u8 = 1 << (INET_DIAG_INFO - 1);
/// `struct tcp_info` (`linux/tcp.h`): `tcpi_last_data_sent` and
/// `tcpi_last_data_recv`, milliseconds ago, at these offsets; every kernel
/// since 2.6 fills at least the first 104 bytes.
const TCPI_LAST_DATA_SENT: usize = 44;
const TCPI_LAST_DATA_RECV: usize = 52;
/// `tcpi_data_segs_in` and `tcpi_data_segs_out` (Linux 4.6), when the struct
/// is long enough to hold them.
const TCPI_DATA_SEGS_IN: usize = 152;
const TCPI_DATA_SEGS_OUT: usize = 156;

/// Every TCP state, as the `idiag_states` bit mask (bit N for state N).
pub const ALL_STATES: u32 = 0xFFF;

/// An open `NETLINK_SOCK_DIAG` socket and its receive buffer, reused across
/// samples.
///
/// A dump walks the kernel's whole TCP hash table, and a per-family request
/// (`SOCK_DIAG_BY_FAMILY`) sees one family per walk, so IPv4 plus IPv6 costs
/// two walks. The older `TCPDIAG_GETSOCK` request (still served by every
/// kernel, as `inet_diag_rcv_msg_compat`) dumps both families in one walk,
/// which at 100k sockets saves about 30% of the time (docs/benchmarks.md). It is tried first; a
/// kernel that refuses it gets the two per-family dumps from then on.
#[derive(Debug)]
pub struct SockDiag {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    one_walk: bool,
    cgroup_cond: Option<bool>,
    /// The `idiag_ext` bits of each request: [`EXT_INFO`] or none.
    ext: u8,
}

/// Which request a dump sends.
#[derive(Debug, Clone, Copy)]
enum Request {
    /// `TCPDIAG_GETSOCK` + `struct inet_diag_req`: both families.
    BothFamilies,
    /// `SOCK_DIAG_BY_FAMILY` + `struct inet_diag_req_v2`.
    Family(Family),
}

impl SockDiag {
    pub fn open() -> Result<SockDiag, DiagError> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )
        .map_err(DiagError::from_open)?;
        // The kernel always answers a dump; the timeout only guards a sample
        // against the unexpected, so it can never hang a collector.
        rustix::net::sockopt::set_socket_timeout(
            &fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(5)),
        )
        .map_err(|errno| DiagError::Io {
            what: "setsockopt",
            errno,
        })?;
        Ok(SockDiag {
            fd,
            // Large reads let the kernel fill up to 32 KiB per dump step.
            buf: vec![0; 64 * 1024],
            seq: 0,
            one_walk: true,
            cgroup_cond: None,
            ext: 0,
        })
    }

    /// Ask for each full socket's `struct tcp_info` too, for
    /// [`DiagSocket::idle`]. It costs about 90 more bytes copied per socket
    /// that passes the filter (the kernel fills the whole struct; the reply
    /// carries it in an attribute).
    pub fn tcp_info(mut self) -> SockDiag {
        self.ext = EXT_INFO;
        self
    }

    /// Use the two per-family dumps even where one walk would do (tests, and
    /// the benchmark's comparison).
    pub fn per_family(mut self) -> SockDiag {
        self.one_walk = false;
        self
    }

    /// Whether this kernel filters on cgroups ([`Filter::no_owner`]). Asked
    /// once, with a dump of listeners only, which skips the table of
    /// connections.
    pub fn filters_cgroups(&mut self) -> bool {
        if let Some(yes) = self.cgroup_cond {
            return yes;
        }
        let yes = self.dump(1 << 10, &Filter::no_owner(), |_| {}).is_ok();
        self.cgroup_cond = Some(yes);
        yes
    }

    /// Dump the IPv4 and IPv6 TCP sockets whose state is in `states` (bit N
    /// for state N) and that pass `filter`, calling `f` for each.
    pub fn dump(
        &mut self,
        states: u32,
        filter: &Filter,
        mut f: impl FnMut(&DiagSocket),
    ) -> Result<(), DiagError> {
        if self.one_walk {
            let mut seen = 0u64;
            match self.dump_one(Request::BothFamilies, states, filter, &mut |s| {
                seen += 1;
                f(s)
            }) {
                Ok(()) => return Ok(()),
                // Refused before any socket came: this kernel lacks it.
                Err(DiagError::Io { what: "dump", .. }) if seen == 0 => {
                    tracing::debug!("TCPDIAG_GETSOCK refused; dumping each family on its own");
                    self.one_walk = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.dump_one(Request::Family(Family::V4), states, filter, &mut f)?;
        self.dump_one(Request::Family(Family::V6), states, filter, &mut f)
    }

    fn dump_one(
        &mut self,
        kind: Request,
        states: u32,
        filter: &Filter,
        f: &mut dyn FnMut(&DiagSocket),
    ) -> Result<(), DiagError> {
        self.seq = self.seq.wrapping_add(1);
        let req = request(self.seq, kind, states, self.ext, &filter.0);
        rustix::net::sendto(
            &self.fd,
            &req,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(|errno| match errno {
            Errno::PERM | Errno::ACCESS => DiagError::Unavailable(errno),
            errno => DiagError::Io {
                what: "send",
                errno,
            },
        })?;
        loop {
            let (_, n) = rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::empty())
                .map_err(|errno| DiagError::Io {
                    what: "recv",
                    errno,
                })?;
            let n = n.min(self.buf.len());
            match parse_chunk(&self.buf[..n], self.seq, f)? {
                Chunk::More => {}
                Chunk::Done => return Ok(()),
            }
        }
    }
}

enum Chunk {
    More,
    Done,
}

/// Walk the netlink messages of one datagram.
fn parse_chunk(
    mut data: &[u8],
    seq: u32,
    f: &mut dyn FnMut(&DiagSocket),
) -> Result<Chunk, DiagError> {
    while data.len() >= NLMSG_HDR_LEN {
        let len = u32_ne(data, 0) as usize;
        let kind = u16_ne(data, 4);
        let msg_seq = u32_ne(data, 8);
        if len < NLMSG_HDR_LEN || len > data.len() {
            return Err(DiagError::Malformed);
        }
        let payload = &data[NLMSG_HDR_LEN..len];
        if msg_seq == seq {
            match kind {
                NLMSG_DONE => return Ok(Chunk::Done),
                NLMSG_ERROR => {
                    let code = payload.get(..4).map(|b| i32_ne(b, 0)).unwrap_or(-1);
                    return match code {
                        0 => Ok(Chunk::Done),
                        // No handler for this family (IPv6 not built or not
                        // loaded): there are no such sockets.
                        c if -c == Errno::NOENT.raw_os_error() => Ok(Chunk::Done),
                        // Kernel errors are -1..-4095; anything else is junk.
                        c if (-4095..0).contains(&c) => Err(DiagError::Io {
                            what: "dump",
                            errno: Errno::from_raw_os_error(-c),
                        }),
                        _ => Err(DiagError::Malformed),
                    };
                }
                SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => f(&parse_socket(payload)?),
                _ => {}
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        data = data.get(next..).unwrap_or(&[]);
    }
    Ok(Chunk::More)
}

/// `struct inet_diag_msg`, and the `INET_DIAG_INFO` attribute after it if
/// any. The remote address, `id.idiag_dst`, is at bytes 24..40 (an IPv4
/// address in its first 4).
fn parse_socket(p: &[u8]) -> Result<DiagSocket, DiagError> {
    if p.len() < DIAG_MSG_LEN {
        return Err(DiagError::Malformed);
    }
    let family = match p[0] {
        2 => Family::V4,
        10 => Family::V6,
        _ => return Err(DiagError::Malformed),
    };
    Ok(DiagSocket {
        family,
        state: p[1],
        local_port: u16::from_be_bytes([p[4], p[5]]),
        remote_port: u16::from_be_bytes([p[6], p[7]]),
        remote_loopback: match family {
            Family::V4 => p[24] == 127,
            Family::V6 => {
                let dst = &p[24..40];
                let one = dst[..15].iter().all(|&b| b == 0) && dst[15] == 1;
                let mapped = dst[..10].iter().all(|&b| b == 0) && dst[10..12] == [0xff, 0xff];
                one || mapped && dst[12] == 127
            }
        },
        rqueue: u32_ne(p, 56),
        wqueue: u32_ne(p, 60),
        inode: u64::from(u32_ne(p, 68)),
        idle: tcp_info(&p[DIAG_MSG_LEN..]).map(|info| Idle {
            sent_ms: u32_ne(info, TCPI_LAST_DATA_SENT),
            received_ms: u32_ne(info, TCPI_LAST_DATA_RECV),
            sent_only: info.len() >= TCPI_DATA_SEGS_OUT + 4
                && u32_ne(info, TCPI_DATA_SEGS_IN) == 0
                && u32_ne(info, TCPI_DATA_SEGS_OUT) > 0,
        }),
    })
}

/// The payload of the `INET_DIAG_INFO` attribute among `attrs` (`struct
/// rtattr { u16 len; u16 type; }` then the payload, each 4-byte aligned),
/// when it is long enough for the fields read; a malformed list is ignored.
fn tcp_info(mut attrs: &[u8]) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16_ne(attrs, 0));
        if len < 4 || len > attrs.len() {
            return None;
        }
        if u16_ne(attrs, 2) == INET_DIAG_INFO {
            return Some(&attrs[4..len]).filter(|p| p.len() >= TCPI_LAST_DATA_RECV + 4);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn i32_ne(b: &[u8], at: usize) -> i32 {
    u32_ne(b, at) as i32
}

/// `nlmsghdr`, the request body (socket id zero: any socket), and the
/// bytecode attribute.
fn request(seq: u32, kind: Request, states: u32, ext: u8, bytecode: &[u8]) -> Vec<u8> {
    let (msg_type, body_len) = match kind {
        Request::BothFamilies => (TCPDIAG_GETSOCK, REQ_V1_LEN),
        Request::Family(_) => (SOCK_DIAG_BY_FAMILY, REQ_V2_LEN),
    };
    let attr_len = 4 + bytecode.len();
    let attr_space = if bytecode.is_empty() {
        0
    } else {
        (attr_len + 3) & !3
    };
    let total = NLMSG_HDR_LEN + body_len + attr_space;
    let mut req = Vec::with_capacity(total);
    req.extend_from_slice(&(total as u32).to_ne_bytes());
    req.extend_from_slice(&msg_type.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    match kind {
        // inet_diag_req: family (ignored: both are dumped), src_len, dst_len,
        // ext, inet_diag_sockid, states, dbs.
        Request::BothFamilies => {
            req.extend_from_slice(&[Family::V4 as u8, 0, 0, ext]);
            req.extend_from_slice(&[0; 48]);
            req.extend_from_slice(&states.to_ne_bytes());
            req.extend_from_slice(&0u32.to_ne_bytes());
        }
        // inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid.
        Request::Family(family) => {
            req.extend_from_slice(&[family as u8, IPPROTO_TCP, ext, 0]);
            req.extend_from_slice(&states.to_ne_bytes());
            req.extend_from_slice(&[0; 48]);
        }
    }
    if attr_space > 0 {
        req.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        req.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        req.extend_from_slice(bytecode);
        req.resize(total, 0);
    }
    req
}

/// An in-kernel socket filter: `inet_diag` bytecode, as `ss` compiles it.
///
/// Every fragment below follows one convention: a socket that matches runs off
/// the fragment's end; one that does not jumps 4 bytes past it. The kernel
/// accepts a socket whose program ends exactly at its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter(Vec<u8>);

// inet_diag_bc_op codes.
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_D_COND: u8 = 8;
const BC_CGROUP_COND: u8 = 13;

impl Filter {
    /// Every socket.
    pub fn all() -> Filter {
        Filter(Vec::new())
    }

    /// Local port == `port`. Written as `>= port && <= port`, which every
    /// kernel with inet_diag has (`S_EQ` came only in 4.16).
    pub fn local_port(port: u16) -> Filter {
        let mut b = Vec::with_capacity(16);
        op(&mut b, BC_S_GE, 8, 20);
        op(&mut b, 0, 0, port);
        op(&mut b, BC_S_LE, 8, 12);
        op(&mut b, 0, 0, port);
        Filter(b)
    }

    /// The remote end is `port` on a loopback address (127.0.0.0/8, ::1, or
    /// 127.0.0.0/8 mapped into IPv6): the client end of a local connection
    /// to that port.
    pub fn loopback_peer_port(port: u16) -> Filter {
        let v4 = d_cond(AddressFamily::INET, 8, &[127, 0, 0, 0], port);
        let mut one = [0u8; 16];
        one[15] = 1;
        let v6 = d_cond(AddressFamily::INET6, 128, &one, port);
        v4.or(v6)
    }

    /// A socket no process owns: TIME_WAIT or SYN_RECV. These mini sockets
    /// have no cgroup (id 0); every full socket has one (the root's id is 1).
    /// Needs `INET_DIAG_BC_CGROUP_COND` (Linux 5.9): see
    /// [`SockDiag::filters_cgroups`].
    pub fn no_owner() -> Filter {
        let mut b = Vec::with_capacity(12);
        op(&mut b, BC_CGROUP_COND, 12, 16);
        b.extend_from_slice(&0u64.to_ne_bytes());
        Filter(b)
    }

    /// Both filters match: not (not one or not the other), since a fragment
    /// that fails jumps past its own end.
    pub fn and(self, other: Filter) -> Filter {
        !((!self).or(!other))
    }

    /// Either filter matches.
    pub fn or(self, other: Filter) -> Filter {
        let mut b = self.0;
        let skip = u16::try_from(other.0.len() + 4).unwrap_or(u16::MAX);
        op(&mut b, BC_JMP, 4, skip);
        b.extend_from_slice(&other.0);
        Filter(b)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The filter does not match: `!filter`.
impl std::ops::Not for Filter {
    type Output = Filter;

    fn not(self) -> Filter {
        let mut b = self.0;
        op(&mut b, BC_JMP, 4, 8);
        Filter(b)
    }
}

/// `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }`
fn op(b: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    b.push(code);
    b.push(yes);
    b.extend_from_slice(&no.to_ne_bytes());
}

/// `INET_DIAG_BC_D_COND` + `struct inet_diag_hostcond { u8 family; u8
/// prefix_len; int port; __be32 addr[]; }`.
fn d_cond(family: AddressFamily, prefix_len: u8, addr: &[u8], port: u16) -> Filter {
    let len = 4 + 8 + addr.len();
    let mut b = Vec::with_capacity(len);
    op(&mut b, BC_D_COND, len as u8, len as u16 + 4);
    b.push(family.as_raw() as u8);
    b.push(prefix_len);
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&i32::from(port).to_ne_bytes());
    b.extend_from_slice(addr);
    Filter(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// Dump with one walk, and check that the per-family dumps agree on the
    /// sockets of `port`.
    fn dump(diag: &mut SockDiag, filter: &Filter, port: u16) -> Vec<DiagSocket> {
        let mut out = Vec::new();
        diag.dump(ALL_STATES, filter, |s| out.push(*s)).unwrap();
        let mut per_family = Vec::new();
        let mut other = SockDiag::open().unwrap().per_family();
        other
            .dump(ALL_STATES, filter, |s| per_family.push(*s))
            .unwrap();
        let mine = |v: &[DiagSocket]| {
            let mut k: Vec<_> = v
                .iter()
                .filter(|s| s.local_port == port || s.remote_port == port)
                .map(|s| (s.family, s.inode, s.local_port, s.remote_port, s.state))
                .collect();
            k.sort_unstable_by_key(|k| (k.1, k.2, k.3, k.4));
            k
        };
        assert_eq!(mine(&out), mine(&per_family));
        out
    }

    #[test]
    fn the_port_filter_returns_exactly_the_port() {
        let mut diag = SockDiag::open().expect("sock_diag on the test machine");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let _other = TcpListener::bind("127.0.0.1:0").unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let servers: Vec<_> = (0..3).map(|_| l.accept().unwrap().0).collect();

        let mine = dump(&mut diag, &Filter::local_port(port), port);
        assert!(mine.iter().all(|s| s.local_port == port), "{mine:?}");
        assert_eq!(mine.iter().filter(|s| s.state == 10).count(), 1);
        assert_eq!(mine.iter().filter(|s| s.state == 1).count(), 3);
        let listener = mine.iter().find(|s| s.state == 10).unwrap();
        assert_eq!((listener.rqueue, listener.family), (0, Family::V4));
        assert!(listener.wqueue >= 128, "backlog limit {}", listener.wqueue);

        // The complement: everything but the port, minus the local clients.
        let rest = dump(
            &mut diag,
            &!Filter::local_port(port).or(Filter::loopback_peer_port(port)),
            port,
        );
        assert!(rest.iter().all(|s| s.local_port != port));
        let client_ports: Vec<u16> = clients
            .iter()
            .map(|c| c.local_addr().unwrap().port())
            .collect();
        assert!(rest
            .iter()
            .all(|s| !(client_ports.contains(&s.local_port) && s.remote_port == port)));
        // ... but the clients are there without the loopback exclusion.
        let not_port = dump(&mut diag, &!Filter::local_port(port), port);
        for p in &client_ports {
            assert!(not_port
                .iter()
                .any(|s| s.local_port == *p && s.remote_port == port));
        }
        drop((clients, servers));
    }

    #[test]
    fn sockets_without_an_owner() {
        let mut diag = SockDiag::open().unwrap();
        assert!(diag.filters_cgroups(), "Linux >= 5.9 with cgroups");
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = l.accept().unwrap();
        let _held = (
            TcpStream::connect(("127.0.0.1", port)).unwrap(),
            l.accept().unwrap(),
        );
        // The server closes first: its end goes to TIME_WAIT.
        drop(s);
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(c);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut states = |f: Filter| {
            let mut v = Vec::new();
            diag.dump(ALL_STATES, &Filter::local_port(port).and(f), |s| {
                v.push(s.state)
            })
            .unwrap();
            v.sort_unstable();
            v
        };
        assert_eq!(states(Filter::no_owner()), vec![6]);
        assert_eq!(states(!Filter::no_owner()), vec![1, 10]);
    }

    #[test]
    fn ipv6_and_mapped_loopback_peers() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this host
        };
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(("::1", port)).unwrap();
        let (_s, _) = l.accept().unwrap();
        let mut diag = SockDiag::open().unwrap();
        let mine = dump(&mut diag, &Filter::local_port(port), port);
        assert_eq!(mine.iter().filter(|s| s.family == Family::V6).count(), 2);
        let rest = dump(&mut diag, &Filter::loopback_peer_port(port), port);
        let cp = c.local_addr().unwrap().port();
        assert_eq!(
            rest.iter()
                .filter(|s| s.local_port == cp && s.remote_port == port)
                .count(),
            1
        );
    }

    /// tcp_info's times on real sockets: a client that sent a request and got
    /// nothing waits from its send; once answered it does not; a fresh
    /// connection does not; without the extension there is no tcp_info.
    #[test]
    fn tcp_info_times() {
        use std::io::{Read, Write};
        use std::time::Duration;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut asked = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = l.accept().unwrap();
        // Its request in the handshake's millisecond: both clocks equal.
        let mut at_once = TcpStream::connect(("127.0.0.1", port)).unwrap();
        at_once.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let _at_once_server = l.accept().unwrap();
        let fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _fresh_server = l.accept().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        asked.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let mut diag = SockDiag::open().unwrap().tcp_info();
        let idle_of = |diag: &mut SockDiag, local: u16| {
            let mut found = None;
            diag.dump(ALL_STATES, &Filter::local_port(local), |s| {
                found = Some(s.idle)
            })
            .unwrap();
            found.expect("the socket").expect("tcp_info")
        };
        let a = asked.local_addr().unwrap().port();
        let waited = idle_of(&mut diag, a).waiting_ms().expect("waits");
        assert!((300..2000).contains(&waited), "{waited} ms");
        let f = fresh.local_addr().unwrap().port();
        assert_eq!(idle_of(&mut diag, f).waiting_ms(), None);
        let o = at_once.local_addr().unwrap().port();
        let at_once_idle = idle_of(&mut diag, o);
        assert!(at_once_idle.sent_only, "{at_once_idle:?}");
        assert!(at_once_idle.waiting_ms().is_some());
        // Answered: no longer waiting.
        let mut buf = [0; 64];
        let _ = server.read(&mut buf).unwrap();
        server.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        let _ = asked.read(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(idle_of(&mut diag, a).waiting_ms(), None);
        // The server end answered after it received: it does not wait either.
        let mut plain = SockDiag::open().unwrap();
        let mut idles = Vec::new();
        plain
            .dump(ALL_STATES, &Filter::local_port(port), |s| {
                idles.push(s.idle)
            })
            .unwrap();
        assert!(!idles.is_empty() && idles.iter().all(Option::is_none));
    }

    #[test]
    fn tcp_info_attributes_are_bounded() {
        // Too short, a bad length, another attribute only: none is read.
        assert_eq!(tcp_info(&[8, 0, 2, 0, 1, 2, 3, 4]), None);
        assert_eq!(tcp_info(&[200, 0, 2, 0, 1, 2, 3, 4]), None);
        assert_eq!(tcp_info(&[3, 0, 2, 0]), None);
        let mut other = vec![8, 0, 9, 0, 0, 0, 0, 0];
        let mut info = vec![0u8; 4 + 104];
        info[..2].copy_from_slice(&108u16.to_ne_bytes());
        info[2..4].copy_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        other.extend_from_slice(&info);
        assert_eq!(tcp_info(&other).map(<[u8]>::len), Some(104));
    }

    #[test]
    fn requests_are_aligned() {
        for f in [
            Filter::all(),
            Filter::local_port(1),
            !Filter::loopback_peer_port(2),
        ] {
            for kind in [Request::BothFamilies, Request::Family(Family::V6)] {
                let r = request(1, kind, ALL_STATES, EXT_INFO, f.bytes());
                assert_eq!(r.len() % 4, 0);
                assert_eq!(u32_ne(&r, 0) as usize, r.len());
            }
        }
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let mut seen = 0;
        let mut f = |_: &DiagSocket| seen += 1;
        // A header claiming more bytes than there are.
        let mut bad = vec![0u8; 20];
        bad[..4].copy_from_slice(&100u32.to_ne_bytes());
        assert!(matches!(
            parse_chunk(&bad, 0, &mut f),
            Err(DiagError::Malformed)
        ));
        // A socket message too short for inet_diag_msg.
        let mut short = vec![0u8; 24];
        short[..4].copy_from_slice(&24u32.to_ne_bytes());
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        assert!(matches!(
            parse_chunk(&short, 0, &mut f),
            Err(DiagError::Malformed)
        ));
        // Trailing junk shorter than a header is ignored.
        assert!(matches!(
            parse_chunk(&[1, 2, 3], 0, &mut f),
            Ok(Chunk::More)
        ));
        assert_eq!(seen, 0);
    }

    #[test]
    fn random_answers_never_panic() {
        // xorshift: deterministic garbage, some of it with plausible headers.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 16 && next() % 2 == 0 {
                let claimed = (next() % (len as u64 + 8)) as u32;
                buf[..4].copy_from_slice(&claimed.to_ne_bytes());
                let kind = [
                    NLMSG_DONE,
                    NLMSG_ERROR,
                    SOCK_DIAG_BY_FAMILY,
                    TCPDIAG_GETSOCK,
                ][(next() % 4) as usize];
                buf[4..6].copy_from_slice(&kind.to_ne_bytes());
                buf[8..12].copy_from_slice(&7u32.to_ne_bytes());
            }
            let _ = parse_chunk(&buf, 7, &mut |_| {});
        }
    }
}
