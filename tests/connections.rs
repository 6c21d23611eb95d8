//! Network view against real sockets: the fixture gateway, the real OpenClaw
//! gateway, and a gateway in its own network namespace. Ground truth is the
//! test's own sockets and `ss` (iproute2) reading the kernel on its own.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

/// An exporter watching the gateway on `port` as `name`, with fast
/// connection sampling, and probes only at startup: a probe is itself an
/// inbound connection (and, while the gateway is stopped, one more entry in
/// its accept queue), which would blur the exact counts these tests check.
/// `watch` waits for those startup probes.
fn exporter(port: u16, state_dir: &str, name: &str) -> Exporter {
    Harness::exporter()
        .port(port)
        .state_dir(state_dir)
        .name(name)
        .fast()
        .every("latency", "1h")
        .every("event-loop", "1h")
        .args(&["--probe.readiness-interval", "1h"])
        .start()
}

/// A fixture and an exporter watching it through its state dir.
fn watched(fixture_args: &[&str]) -> (TempDir, Fixture, Exporter) {
    let (state, fx) = Fixture::with_state(fixture_args);
    let exp = watch(fx.port, dir_str(state.path()), "fx");
    (state, fx, exp)
}

/// An exporter watching the gateway on `port`, once its startup probes are
/// over and their connections are gone.
fn watch(port: u16, state_dir: &str, name: &str) -> Exporter {
    let exp = exporter(port, state_dir, name);
    // The startup probes must be over before a test counts: one that lands
    // after the test stopped the gateway is one more queued connection, and
    // one more CLOSE_WAIT when it times out.
    let probed = |s: &Scrape, endpoint: &str| {
        s.get(
            names::PROBES_TOTAL.name(),
            &[("gateway", name), ("endpoint", endpoint)],
        )
        .is_some_and(|n| n >= 1.0)
    };
    exp.wait("gateway found, connections sampled, probed once", |s| {
        (s.get(names::PROCESS_UP.name(), &[("gateway", name)]) == Some(1.0)
            && s.get(
                names::CONNECTIONS_SOURCE.name(),
                &[("gateway", name), ("source", "netlink")],
            )
            .is_some()
            && probed(s, "live")
            && probed(s, "ready"))
        .then_some(())
    });
    // The probes' connections close on their own; stopping the gateway before
    // it has closed its end would leave one more CLOSE_WAIT.
    wait_for(
        Duration::from_secs(30),
        "the probes' connections gone",
        || {
            ss(&["-Htan", &format!("( sport = :{port} )")])
                .lines()
                .all(|l| l.starts_with("LISTEN") || l.starts_with("TIME-WAIT"))
                .then_some(())
        },
    );
    exp
}

fn conns(s: &Scrape, gw: &str, direction: &str, state: &str) -> Option<f64> {
    s.get(
        names::TCP_CONNECTIONS.name(),
        &[("gateway", gw), ("direction", direction), ("state", state)],
    )
}

/// Wait until the exporter's count of `direction`/`state` equals `want`.
fn wait_conns(exp: &Exporter, gw: &str, direction: &str, state: &str, want: u64) {
    exp.wait(&format!("{direction} {state} == {want}"), |s| {
        (conns(s, gw, direction, state) == Some(want as f64)).then_some(())
    });
}

// ---------------------------------------------------------------- ground truth

fn ss(args: &[&str]) -> String {
    let out = Command::new(require_tool("ss"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ss {args:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Sockets in `state` (ss's spelling: established, time-wait, close-wait)
/// whose local port is `port`, IPv4 and IPv6, as `ss` sees them.
fn ss_count(state: &str, port: u16) -> u64 {
    ss(&["-Htan", "state", state, &format!("( sport = :{port} )")])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

/// Recv-Q and Send-Q summed over the listeners on `port`.
fn ss_listen_queue(port: u16) -> (u64, u64) {
    ss(&["-Hltn", &format!("( sport = :{port} )")])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.get(1)?.parse::<u64>().ok()?,
                f.get(2)?.parse::<u64>().ok()?,
            ))
        })
        .fold((0, 0), |(a, b), (r, s)| (a + r, b + s))
}

/// The exporter's value agrees with `ss`, read right after the scrape (the
/// kernel moves on its own; retry until a scrape and `ss` see the same).
fn agrees_with_ss(exp: &Exporter, gw: &str, state: &str, ss_state: &str, port: u16) -> f64 {
    exp.wait(&format!("inbound {state} to match ss"), |s| {
        let got = conns(s, gw, "inbound", state)?;
        (got == ss_count(ss_state, port) as f64).then_some(got)
    })
}

/// A connect that does not wait: for a stopped gateway, the kernel completes
/// the handshake into the accept queue, or drops the SYN when it is full.
fn connect_nowait(addr: std::net::SocketAddr) -> OwnedFd {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    // CLOEXEC: a fixture that another test spawns meanwhile must not inherit
    // this socket, or that gateway owns a copy and counts it as outbound.
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(family, SocketType::STREAM, flags, None).unwrap();
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => fd,
        Err(e) => panic!("connect {addr}: {e}"),
    }
}

/// One HTTP request with `Connection: close`: the gateway answers and closes
/// first, so its end of the connection goes to TIME_WAIT.
fn request_and_close(addr: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = Vec::new();
    s.read_to_end(&mut body).unwrap();
    assert!(body.starts_with(b"HTTP/1.1 200"), "{body:?}");
}

// ---------------------------------------------------------------- tests

const G: &str = "fx";

#[test]
fn inbound_established_moves_by_n_on_ipv4_and_ipv6_and_time_wait_follows() {
    let (_state, fx, exp) = watched(&["--host", "127.0.0.1", "--host", "::1"]);
    let port = fx.port;
    // Two listeners, one per family, both counted.
    wait_conns(&exp, G, "inbound", "listen", 2);
    wait_conns(&exp, G, "inbound", "established", 0);

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    wait_conns(&exp, G, "inbound", "established", 20);
    for _ in 0..15 {
        held.push(TcpStream::connect(("::1", port)).unwrap());
    }
    wait_conns(&exp, G, "inbound", "established", 35);
    assert_eq!(
        agrees_with_ss(&exp, G, "established", "established", port),
        35.0
    );
    // The test's own ends are not the gateway's: nothing outbound.
    assert_eq!(
        conns(&exp.scrape(), G, "outbound", "established"),
        Some(0.0)
    );

    // The clients close first: the gateway's ends close after them and leave
    // no TIME_WAIT (that stays on the clients' side, which is not inbound).
    drop(held);
    wait_conns(&exp, G, "inbound", "established", 0);

    // The gateway closes first (Connection: close): its ends go to TIME_WAIT.
    let before = agrees_with_ss(&exp, G, "time_wait", "time-wait", port);
    for _ in 0..6 {
        request_and_close(&format!("127.0.0.1:{port}"));
        request_and_close(&format!("[::1]:{port}"));
    }
    let after = exp.wait("inbound time_wait to rise by 12", |s| {
        conns(s, G, "inbound", "time_wait").filter(|v| *v >= before + 12.0)
    });
    assert_eq!(
        after,
        before + 12.0,
        "time_wait moved by {}",
        after - before
    );
    agrees_with_ss(&exp, G, "time_wait", "time-wait", port);

    // Every state of both directions is there, zero included.
    let s = exp.scrape();
    for direction in ["inbound", "outbound"] {
        for state in [
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
        ] {
            assert!(
                conns(&s, G, direction, state).is_some(),
                "{direction} {state} missing"
            );
        }
    }
}

#[test]
fn the_gateways_outbound_connections_are_counted() {
    let (_state, fx, exp) = watched(&["--children", "1"]);
    // Local "dependencies" the fixture calls, IPv4 and IPv6; they accept and hold.
    let (deps, accepted) = holding_listeners();
    let p4 = deps[0].local_addr().unwrap().port();
    let p6 = deps[1].local_addr().unwrap().port();
    let a = fx.cmd(&format!("outbound?port={p4}&n=7&host=127.0.0.1"));
    assert_eq!(a["opened"], 7, "{a}");
    let b = fx.cmd(&format!("outbound?port={p6}&n=4&host=::1"));
    assert_eq!(b["opened"], 4, "{b}");
    wait_conns(&exp, G, "outbound", "established", 11);
    // The listeners are the test's, on other ports: not the gateway's.
    assert_eq!(conns(&exp.scrape(), G, "outbound", "listen"), Some(0.0));
    // Sockets of the gateway by type: the 11 outbound are among them.
    let sockets = exp.wait("fds by type", |s| {
        s.get(
            names::PROCESS_OPEN_FDS_BY_TYPE.name(),
            &[("gateway", G), ("type", "socket")],
        )
    });
    assert!(sockets >= 12.0, "sockets {sockets}");

    let closed = fx.cmd("close-outbound");
    assert_eq!(closed["closed"], 11, "{closed}");
    // The gateway closed first: its ends linger in FIN_WAIT/TIME_WAIT without
    // an owner, so nothing is established and no TIME_WAIT is outbound.
    wait_conns(&exp, G, "outbound", "established", 0);
    assert_eq!(conns(&exp.scrape(), G, "outbound", "time_wait"), Some(0.0));
    drop(deps);
    drop(accepted);
}

#[test]
fn fds_by_type_match_the_fd_table() {
    let (_state, fx, exp) = watched(&[]);
    let truth = || {
        let mut t = [0u64; 5];
        for e in std::fs::read_dir(format!("/proc/{}/fd", fx.pid()))
            .unwrap()
            .flatten()
        {
            let Ok(link) = std::fs::read_link(e.path()) else {
                continue;
            };
            let link = link.to_string_lossy().to_string();
            let i = if link.starts_with("socket:") {
                0
            } else if link.starts_with("pipe:") {
                1
            } else if link.starts_with('/') {
                2
            } else if link.starts_with("anon_inode:") {
                3
            } else {
                4
            };
            t[i] += 1;
        }
        t
    };
    let types = ["socket", "pipe", "file", "anon_inode", "other"];
    let get = |s: &Scrape| -> Option<[u64; 5]> {
        let mut v = [0u64; 5];
        for (i, t) in types.iter().enumerate() {
            v[i] = s.get(
                names::PROCESS_OPEN_FDS_BY_TYPE.name(),
                &[("gateway", G), ("type", t)],
            )? as u64;
        }
        Some(v)
    };
    exp.wait("fds by type equal to the fd table", |s| {
        (get(s)? == truth()).then_some(())
    });
    fx.cmd("open-fds?n=100");
    exp.wait("100 more files, and equal to the fd table", |s| {
        let v = get(s)?;
        (v == truth() && v[2] >= 100).then_some(())
    });
    // The process collector's count of all fds agrees, once both collectors
    // have sampled after the change (they sample one after the other).
    exp.wait("open fds equal to the sum by type", |s| {
        let by_type: u64 = get(s)?.iter().sum();
        let open = s.get(names::PROCESS_OPEN_FDS.name(), &[("gateway", G)])? as u64;
        (by_type >= 100 && by_type.abs_diff(open) <= 3).then_some(())
    });
}

#[test]
fn a_stopped_gateway_fills_its_accept_queue_and_close_wait_piles_up() {
    let (_state, fx, exp) = watched(&["--backlog", "511"]);
    let port = fx.port;
    exp.wait_eq(
        "capacity 511",
        names::LISTEN_QUEUE_CAPACITY.name(),
        &[("gateway", G)],
        511.0,
    );
    assert_eq!(ss_listen_queue(port).1, 511);

    fx.proc.signal("STOP");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut clients: Vec<OwnedFd> = (0..100).map(|_| connect_nowait(addr)).collect();
    exp.wait("listen queue 100, as ss says", |s| {
        let q = s.get(names::LISTEN_QUEUE_LENGTH.name(), &[("gateway", G)])?;
        (q == 100.0 && ss_listen_queue(port).0 == 100).then_some(())
    });
    // Queued connections are established, though nobody accepted them.
    wait_conns(&exp, G, "inbound", "established", 100);

    // 30 clients give up while the gateway is stopped: their queued
    // connections sit in CLOSE_WAIT on the gateway's side.
    clients.drain(..30);
    wait_conns(&exp, G, "inbound", "close_wait", 30);
    assert_eq!(
        agrees_with_ss(&exp, G, "close_wait", "close-wait", port),
        30.0
    );
    wait_conns(&exp, G, "inbound", "established", 70);

    fx.proc.signal("CONT");
    exp.wait_eq(
        "the queue drains",
        names::LISTEN_QUEUE_LENGTH.name(),
        &[("gateway", G)],
        0.0,
    );
    wait_conns(&exp, G, "inbound", "close_wait", 0);
    wait_conns(&exp, G, "inbound", "established", 70);
    assert_eq!(ss_listen_queue(port).0, 0);
    drop(clients);
}

/// A hung gateway listening on 127.0.0.1 and ::1, as the real one does,
/// with clients that reach only 127.0.0.1: the sums over both listeners read
/// half full (21/40), the fullest listener full (21/20).
#[test]
fn a_stopped_gateway_on_two_listeners_reads_full_on_the_one_reached() {
    let (_state, fx, exp) = watched(&["--host", "127.0.0.1", "--host", "::1", "--backlog", "20"]);
    fx.proc.signal("STOP");
    let addr = format!("127.0.0.1:{}", fx.port).parse().unwrap();
    let clients: Vec<OwnedFd> = (0..60).map(|_| connect_nowait(addr)).collect();
    let (sum, fullest) = exp.wait("the IPv4 queue full, the IPv6 one empty", |s| {
        let q = s.get(names::LISTEN_QUEUE_LENGTH.name(), &[("gateway", G)])?;
        let cap = s.get(names::LISTEN_QUEUE_CAPACITY.name(), &[("gateway", G)])?;
        let fullest = s.get(names::LISTEN_QUEUE_USAGE_RATIO.name(), &[("gateway", G)])?;
        (q == 21.0 && cap == 40.0).then_some((q / cap, fullest))
    });
    fx.proc.signal("CONT");
    drop(clients);
    assert!(sum < 0.53, "summed over both listeners: {sum}");
    assert_eq!(fullest, 21.0 / 20.0, "the reached listener on its own");
}

#[test]
fn a_full_accept_queue_is_capped_and_overflows_are_counted() {
    let (_state, fx, exp) = watched(&["--backlog", "20"]);
    let port = fx.port;
    let overflows = |s: &Scrape| s.get(names::HOST_LISTEN_OVERFLOWS_TOTAL.name(), &[]);
    let before = exp.wait("host overflows", overflows);

    fx.proc.signal("STOP");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let clients: Vec<OwnedFd> = (0..100).map(|_| connect_nowait(addr)).collect();
    // Linux queues one more than the backlog, then drops SYNs.
    exp.wait("listen queue capped at 21, as ss says", |s| {
        let q = s.get(names::LISTEN_QUEUE_LENGTH.name(), &[("gateway", G)])?;
        let cap = s.get(names::LISTEN_QUEUE_CAPACITY.name(), &[("gateway", G)])?;
        (q == 21.0 && cap == 20.0 && ss_listen_queue(port) == (21, 20)).then_some(())
    });
    exp.wait("overflows counted", |s| {
        overflows(s).filter(|v| *v > before)
    });
    fx.proc.signal("CONT");
    drop(clients);
}

#[test]
fn a_gateway_that_is_down_has_inbound_counts_but_no_fds() {
    let (_state, fx, exp) = watched(&[]);
    exp.wait("fds by type", |s| {
        s.get(
            names::PROCESS_OPEN_FDS_BY_TYPE.name(),
            &[("gateway", G), ("type", "socket")],
        )
    });
    fx.cmd("crash");
    drop(fx);
    exp.wait_eq("down", names::PROCESS_UP.name(), &[("gateway", G)], 0.0);
    exp.wait("no listener, no fds", |s| {
        (conns(s, G, "inbound", "listen") == Some(0.0)
            && s.get(
                names::PROCESS_OPEN_FDS_BY_TYPE.name(),
                &[("gateway", G), ("type", "socket")],
            )
            .is_none())
        .then_some(())
    });
    let s = exp.scrape();
    assert_eq!(conns(&s, G, "outbound", "established"), Some(0.0));
    assert_eq!(
        s.get(
            names::COLLECTOR_SUCCESS.name(),
            &[("gateway", G), ("collector", "connections")]
        ),
        Some(1.0)
    );
}

/// A gateway in its own network namespace (a container) is read from
/// `/proc/<pid>/net/tcp`: the exporter's netlink socket cannot see it.
#[test]
fn a_gateway_in_another_network_namespace_is_read_from_proc() {
    let state = TempDir::new("state");
    let state_dir = state.path().to_str().unwrap().to_string();
    let port = free_port();
    let script = format!(
        "ip link set lo up && exec node {} --port {port} --state-dir {state_dir} --children 0",
        repo().join("tests/fixture/gateway.js").display()
    );
    let mut unshare = Command::new(require_tool("unshare"));
    unshare.args(["--net", "sh", "-c", &script]);
    let gw = Fixture::spawn(unshare);
    let pid = gw.pid();
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap(),
        std::fs::read_link("/proc/self/ns/net").unwrap()
    );

    let exp = exporter(port, &state_dir, "ns");
    exp.wait_eq(
        "read from proc",
        names::CONNECTIONS_SOURCE.name(),
        &[("gateway", "ns"), ("source", "proc")],
        1.0,
    );
    wait_conns(&exp, "ns", "inbound", "listen", 1);
    // /proc/net/tcp has no backlog limit: capacity is absent, not wrong.
    let s = exp.scrape();
    assert_eq!(
        s.get(names::LISTEN_QUEUE_CAPACITY.name(), &[("gateway", "ns")]),
        None
    );

    // Clients inside the namespace.
    let mut clients = Command::new(require_tool("nsenter"))
        .args(["-t", &pid.to_string(), "-n", "node", "-e"])
        .arg(format!(
            "const net=require('net');const s=[];for(let i=0;i<9;i++)s.push(net.connect({port},'127.0.0.1'));setInterval(()=>{{}},1000)"
        ))
        .spawn()
        .unwrap();
    wait_conns(&exp, "ns", "inbound", "established", 9);
    let _ = clients.kill();
    let _ = clients.wait();
    wait_conns(&exp, "ns", "inbound", "established", 0);
}

/// The real OpenClaw gateway: inbound on both of its listeners, its accept
/// queue while stopped, CLOSE_WAIT and TIME_WAIT. One start (~10 s, 700 MB).
#[test]
fn real_gateway_connections() {
    let _one_at_a_time = REAL_GATEWAY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let gw = RealGateway::start(&[]);
    let port = gw.port;
    let exp = watch(port, gw.state_dir().to_str().unwrap(), "real");
    const R: &str = "real";
    wait_conns(&exp, R, "inbound", "listen", 2);
    exp.wait("capacity of both listeners", |s| {
        let cap = s.get(names::LISTEN_QUEUE_CAPACITY.name(), &[("gateway", R)])?;
        (cap == ss_listen_queue(port).1 as f64).then_some(cap)
    });

    // N held connections on each family move established by exactly 2N.
    let base = agrees_with_ss(&exp, R, "established", "established", port);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
        held.push(TcpStream::connect(("::1", port)).unwrap());
    }
    wait_conns(&exp, R, "inbound", "established", base as u64 + 20);
    drop(held);
    wait_conns(&exp, R, "inbound", "established", base as u64);

    // The gateway closes first: TIME_WAIT on its side.
    let before = agrees_with_ss(&exp, R, "time_wait", "time-wait", port);
    for _ in 0..5 {
        request_and_close(&gw.addr());
    }
    exp.wait("time_wait up by 5", |s| {
        conns(s, R, "inbound", "time_wait").filter(|v| *v >= before + 5.0)
    });
    agrees_with_ss(&exp, R, "time_wait", "time-wait", port);

    // Stopped: the accept queue fills, quitters sit in CLOSE_WAIT.
    gw.proc.signal("STOP");
    let addr = gw.addr().parse().unwrap();
    let mut clients: Vec<OwnedFd> = (0..100).map(|_| connect_nowait(addr)).collect();
    exp.wait("listen queue 100", |s| {
        let q = s.get(names::LISTEN_QUEUE_LENGTH.name(), &[("gateway", R)])?;
        (q == 100.0 && ss_listen_queue(port).0 == 100).then_some(())
    });
    clients.drain(..40);
    wait_conns(&exp, R, "inbound", "close_wait", 40);
    gw.proc.signal("CONT");
    exp.wait_eq(
        "the queue drains",
        names::LISTEN_QUEUE_LENGTH.name(),
        &[("gateway", R)],
        0.0,
    );
    wait_conns(&exp, R, "inbound", "close_wait", 0);
    drop(clients);
}
