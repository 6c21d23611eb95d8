//! What libproc answers, decoded: a socket's `struct socket_fdinfo`
//! (`proc_pidfdinfo(PROC_PIDFDSOCKETINFO)`), an fd's `proc_fdtype`, and CPU
//! time in Mach time units. Layouts are xnu's `bsd/sys/proc_info.h`. Pure, so
//! tested on every platform.

use crate::platform::{FdTypes, TcpState};

/// `sizeof(struct socket_fdinfo)`, `PROC_PIDFDSOCKETINFO_SIZE`: the kernel
/// answers with exactly this many bytes.
pub const SOCKET_FDINFO_SIZE: usize = 792;

// Offsets in `struct socket_fdinfo`: a `proc_fileinfo` (24 bytes), then the
// `socket_info`, whose `vinfo_stat` takes 136 bytes. Checked against the
// header's structs compiled by a C compiler (sizes 792, `in_sockinfo` 80,
// `tcp_sockinfo` 120).
const PSI: usize = 24;
/// `soi_so`: the socket's opaque handle, the same in every process holding it.
const SOI_SO: usize = PSI + 136;
/// `soi_qlen`, `soi_incqlen`, `soi_qlimit` (`short`): a listener's accept
/// queue, its incomplete (SYN received) queue, and its backlog limit.
const SOI_QLEN: usize = PSI + 170;
const SOI_INCQLEN: usize = PSI + 172;
const SOI_QLIMIT: usize = PSI + 174;
const SOI_KIND: usize = PSI + 232;
/// `soi_proto`: for `SOCKINFO_TCP` a `tcp_sockinfo`, which starts with the
/// `in_sockinfo`.
const SOI_PROTO: usize = PSI + 240;
const INSI_FPORT: usize = SOI_PROTO;
const INSI_LPORT: usize = SOI_PROTO + 4;
const INSI_VFLAG: usize = SOI_PROTO + 24;
/// `insi_faddr`: an `in4in6_addr` (IPv4 in its last 4 bytes) or `in6_addr`.
const INSI_FADDR: usize = SOI_PROTO + 32;
const TCPSI_STATE: usize = SOI_PROTO + 80;

const SOCKINFO_TCP: i32 = 2;
const INI_IPV4: u8 = 0x1;
const INI_IPV6: u8 = 0x2;

/// One TCP socket a process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSock {
    /// `soi_so`: tells a socket shared by several fds or processes apart.
    pub handle: u64,
    pub state: TcpState,
    pub local_port: u16,
    pub remote_port: u16,
    pub remote_loopback: bool,
    /// For a listener: connections accepted by the kernel, not yet by the
    /// process (`soi_qlen`).
    pub accept_queue: u32,
    /// For a listener: connections still in their handshake (`soi_incqlen`).
    pub syn_queue: u32,
    /// For a listener: the backlog limit (`soi_qlimit`).
    pub backlog: u32,
}

fn bytes<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut b = [0; N];
    b.copy_from_slice(&buf[at..at + N]);
    b
}

fn int(buf: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(bytes(buf, at))
}

/// A `short` count, negative read as 0.
fn count(buf: &[u8], at: usize) -> u32 {
    u32::try_from(i16::from_ne_bytes(bytes(buf, at))).unwrap_or(0)
}

/// An `insi_*port`: an `int` holding the port in network byte order.
fn port(buf: &[u8], at: usize) -> u16 {
    u16::from_be(int(buf, at) as u16)
}

/// The socket in a `socket_fdinfo`; `None` when it is not TCP, its state is
/// unknown, or `buf` is not a whole `socket_fdinfo`.
pub fn tcp_socket(buf: &[u8]) -> Option<TcpSock> {
    if buf.len() != SOCKET_FDINFO_SIZE || int(buf, SOI_KIND) != SOCKINFO_TCP {
        return None;
    }
    let faddr: [u8; 16] = bytes(buf, INSI_FADDR);
    let vflag = buf[INSI_VFLAG];
    let remote_loopback = if vflag & INI_IPV4 != 0 {
        faddr[12] == 127
    } else if vflag & INI_IPV6 != 0 {
        let v6 = std::net::Ipv6Addr::from(faddr);
        v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
    } else {
        false
    };
    Some(TcpSock {
        handle: u64::from_ne_bytes(bytes(buf, SOI_SO)),
        state: tcp_state(int(buf, TCPSI_STATE))?,
        local_port: port(buf, INSI_LPORT),
        remote_port: port(buf, INSI_FPORT),
        remote_loopback,
        accept_queue: count(buf, SOI_QLEN),
        syn_queue: count(buf, SOI_INCQLEN),
        backlog: count(buf, SOI_QLIMIT),
    })
}

/// A `TSI_S_*` state as ours; `None` for `TSI_S_RESERVED` and unknown ones.
pub fn tcp_state(tsi: i32) -> Option<TcpState> {
    use TcpState::*;
    Some(match tsi {
        0 => Close,
        1 => Listen,
        2 => SynSent,
        3 => SynRecv,
        4 => Established,
        5 => CloseWait,
        6 => FinWait1,
        7 => Closing,
        8 => LastAck,
        9 => FinWait2,
        10 => TimeWait,
        _ => return None,
    })
}

// `proc_fdinfo.proc_fdtype` values (`PROX_FDTYPE_*`).
pub const PROX_FDTYPE_VNODE: u32 = 1;
pub const PROX_FDTYPE_SOCKET: u32 = 2;
pub const PROX_FDTYPE_PSHM: u32 = 3;
pub const PROX_FDTYPE_KQUEUE: u32 = 5;
pub const PROX_FDTYPE_PIPE: u32 = 6;
pub const PROX_FDTYPE_FSEVENTS: u32 = 7;

/// Fds by type from their `proc_fdtype`s. Vnodes (files, directories,
/// devices) and POSIX shared memory are files, as paths and memfds are on
/// Linux; kqueues and fsevents, the event fds, are `anon_inode` as epoll and
/// inotify are; semaphores, network policy, channels and the rest are other.
pub fn fd_types(types: impl IntoIterator<Item = u32>) -> FdTypes {
    let mut t = FdTypes::default();
    for ty in types {
        *match ty {
            PROX_FDTYPE_SOCKET => &mut t.socket,
            PROX_FDTYPE_PIPE => &mut t.pipe,
            PROX_FDTYPE_VNODE | PROX_FDTYPE_PSHM => &mut t.file,
            PROX_FDTYPE_KQUEUE | PROX_FDTYPE_FSEVENTS => &mut t.anon_inode,
            _ => &mut t.other,
        } += 1;
    }
    t
}

/// Seconds from `proc_taskinfo`'s `pti_total_user + pti_total_system`, which
/// are Mach absolute time units: nanoseconds on Intel (timebase 1/1), 24 MHz
/// ticks on Apple silicon (125/3). `mach_timebase_info` gives the ratio.
pub fn cpu_seconds(units: u64, numer: u32, denom: u32) -> f64 {
    if denom == 0 {
        return units as f64 / 1e9;
    }
    units as f64 * f64::from(numer) / f64::from(denom) / 1e9
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A `socket_fdinfo` laid out as `proc_info.h` lays it out.
    pub struct Fdinfo(pub Vec<u8>);

    impl Fdinfo {
        pub fn tcp(state: i32, local: u16, remote: u16) -> Fdinfo {
            let mut f = Fdinfo(vec![0; SOCKET_FDINFO_SIZE]);
            f.put(SOI_KIND, &SOCKINFO_TCP.to_ne_bytes());
            f.put(TCPSI_STATE, &state.to_ne_bytes());
            f.put(INSI_LPORT, &i32::from(local.to_be()).to_ne_bytes());
            f.put(INSI_FPORT, &i32::from(remote.to_be()).to_ne_bytes());
            f
        }
        pub fn put(&mut self, at: usize, b: &[u8]) -> &mut Fdinfo {
            self.0[at..at + b.len()].copy_from_slice(b);
            self
        }
        pub fn handle(&mut self, h: u64) -> &mut Fdinfo {
            self.put(SOI_SO, &h.to_ne_bytes())
        }
        pub fn remote_v4(&mut self, a: [u8; 4]) -> &mut Fdinfo {
            self.put(INSI_VFLAG, &[INI_IPV4]).put(INSI_FADDR + 12, &a)
        }
        pub fn remote_v6(&mut self, a: std::net::Ipv6Addr) -> &mut Fdinfo {
            self.put(INSI_VFLAG, &[INI_IPV6])
                .put(INSI_FADDR, &a.octets())
        }
        pub fn queues(&mut self, qlen: i16, incqlen: i16, qlimit: i16) -> &mut Fdinfo {
            self.put(SOI_QLEN, &qlen.to_ne_bytes())
                .put(SOI_INCQLEN, &incqlen.to_ne_bytes())
                .put(SOI_QLIMIT, &qlimit.to_ne_bytes())
        }
    }

    #[test]
    fn a_tcp_socket_by_offsets() {
        // A listener on 18789 with 3 connections to accept, 1 in its
        // handshake, backlog 511 (Node's default).
        let mut l = Fdinfo::tcp(1, 18789, 0);
        l.handle(0xfeed).queues(3, 1, 511);
        assert_eq!(
            tcp_socket(&l.0),
            Some(TcpSock {
                handle: 0xfeed,
                state: TcpState::Listen,
                local_port: 18789,
                remote_port: 0,
                remote_loopback: false,
                accept_queue: 3,
                syn_queue: 1,
                backlog: 511,
            })
        );
        // An outbound connection to 443, and one over loopback.
        let mut out = Fdinfo::tcp(4, 50123, 443);
        out.remote_v4([93, 184, 216, 34]);
        let s = tcp_socket(&out.0).unwrap();
        assert_eq!(
            (s.state, s.local_port, s.remote_port),
            (TcpState::Established, 50123, 443)
        );
        assert!(!s.remote_loopback);
        out.remote_v4([127, 0, 0, 1]);
        assert!(tcp_socket(&out.0).unwrap().remote_loopback);
        for (a, yes) in [
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("2001:db8::1", false),
        ] {
            out.remote_v6(a.parse().unwrap());
            assert_eq!(tcp_socket(&out.0).unwrap().remote_loopback, yes, "{a}");
        }
        // A negative queue length is read as 0.
        l.queues(-1, 0, 5);
        assert_eq!(tcp_socket(&l.0).unwrap().accept_queue, 0);
    }

    #[test]
    fn not_tcp_or_not_whole() {
        let mut udp = Fdinfo::tcp(4, 1, 2);
        udp.put(SOI_KIND, &1i32.to_ne_bytes()); // SOCKINFO_IN
        assert_eq!(tcp_socket(&udp.0), None);
        let tcp = Fdinfo::tcp(4, 1, 2);
        assert_eq!(tcp_socket(&tcp.0[..SOCKET_FDINFO_SIZE - 1]), None);
        assert_eq!(tcp_socket(&[]), None);
        assert_eq!(tcp_socket(&Fdinfo::tcp(11, 1, 2).0), None); // TSI_S_RESERVED
    }

    #[test]
    fn states_by_name() {
        for (tsi, name) in [
            (0, "close"),
            (1, "listen"),
            (2, "syn_sent"),
            (3, "syn_recv"),
            (4, "established"),
            (5, "close_wait"),
            (6, "fin_wait1"),
            (7, "closing"),
            (8, "last_ack"),
            (9, "fin_wait2"),
            (10, "time_wait"),
        ] {
            assert_eq!(tcp_state(tsi).map(TcpState::as_str), Some(name));
        }
        assert_eq!(tcp_state(-1), None);
    }

    #[test]
    fn fds_by_type() {
        let types = [1, 1, 2, 2, 2, 3, 4, 5, 6, 6, 7, 9, 10, 11, 0];
        assert_eq!(
            fd_types(types),
            FdTypes {
                socket: 3,
                pipe: 2,
                file: 3,
                anon_inode: 2,
                other: 5,
            }
        );
    }

    #[test]
    fn cpu_in_mach_units() {
        // Intel: nanoseconds.
        assert_eq!(cpu_seconds(1_500_000_000, 1, 1), 1.5);
        // Apple silicon: 24 MHz ticks, timebase 125/3.
        assert!((cpu_seconds(36_000_000, 125, 3) - 1.5).abs() < 1e-9);
        assert_eq!(cpu_seconds(2_000_000_000, 1, 0), 2.0);
    }
}
