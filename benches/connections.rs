//! Cost of counting a gateway's connections at 10k and 50k loopback
//! connections: `bash bench/connections.sh` (or `cargo bench --bench
//! connections` with a raised fd limit). Needs python3 and, for the
//! comparison, Debian's `prometheus-node-exporter`.
//!
//! For each count, `bench/hold_connections.py` starts a "gateway" process whose
//! children accept on one port with SO_REUSEPORT (one process holds at most
//! ~20000 fds here), and client processes that connect from 127.0.0.10,
//! 127.0.0.11, ... Then it times, as the median of several runs:
//! - our count: one netlink sock_diag dump, as the collector does it (one walk
//!   for both families), and the same with one dump per family;
//! - reading the gateway's fds (its socket inodes, for the outbound side);
//! - one whole sample of the connections collector (find the process, read
//!   its fds, count);
//! - the same count parsed from `/proc/<pid>/net/tcp{,6}` (the fallback);
//! - a scrape of node_exporter with only `--collector.tcpstat`, and the time
//!   it reports for that collector.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_gateway_exporter::collector::connections::{ConnectionsSampler, ConnectionsSlot};
use openclaw_gateway_exporter::collector::Sampler;
use openclaw_gateway_exporter::config::{self, GatewayFile, Intervals};
use openclaw_gateway_exporter::discovery::Target;
use openclaw_gateway_exporter::metrics::Latest;
use openclaw_gateway_exporter::proc;
use openclaw_gateway_exporter::sock_diag::SockDiag;
use openclaw_gateway_exporter::tcp;

const COUNTS: [u64; 2] = [10_000, 50_000];
const RUNS: usize = 11;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Median wall time of `RUNS` runs of `f`, in ms.
fn median_ms(mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let mut t: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[RUNS / 2]
}

fn tree_sockets(pid: i32) -> HashSet<u64> {
    let mut owned = HashSet::new();
    let _ = proc::scan_fds(pid, &mut owned);
    for c in proc::descendants(pid) {
        let _ = proc::scan_fds(c, &mut owned);
    }
    owned
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// node_exporter with only the tcpstat collector, or `None` when missing.
fn node_exporter() -> Option<(Killed, String)> {
    let bin = "/usr/bin/prometheus-node-exporter";
    if !Path::new(bin).exists() {
        eprintln!("{bin} not found (apt-get install prometheus-node-exporter); skipping it");
        return None;
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(bin)
        .args([
            &format!("--web.listen-address={addr}"),
            "--collector.disable-defaults",
            "--collector.tcpstat",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let ne = Killed(child);
    for _ in 0..100 {
        if TcpStream::connect(&addr).is_ok() {
            return Some((ne, addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// node_exporter's own account of the tcpstat collector's time, in ms.
fn tcpstat_duration_ms(body: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with("node_scrape_collector_duration_seconds{collector=\"tcpstat\"}"))?
        .rsplit_once(' ')?
        .1
        .trim()
        .parse::<f64>()
        .ok()
        .map(|s| s * 1000.0)
}

struct Row {
    n: u64,
    sockets: u64,
    count: f64,
    walk: f64,
    count_per_family: f64,
    fd_scan: f64,
    sample: f64,
    proc_net: f64,
    node_scrape: Option<f64>,
    node_tcpstat: Option<f64>,
}

fn measure(n: u64, node: Option<&str>) -> Row {
    let repo = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new("python3")
        .arg(format!("{repo}/bench/hold_connections.py"))
        .args(["--connections", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs bench/hold_connections.py");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let held = Killed(child);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!("hold_connections.py said {line:?}: {e} (fd limit? run bench/connections.sh)")
    });
    let port = v["port"].as_u64().unwrap() as u16;
    let pid = v["gateway_pid"].as_i64().unwrap() as i32;

    // Until the listeners accepted every connection.
    let owned = loop {
        let owned = tree_sockets(pid);
        if owned.len() as u64 >= n {
            break owned;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    let mut diag = SockDiag::open().expect("netlink sock_diag");
    let tally = tcp::count_netlink(&mut diag, port, Some(&owned)).unwrap();
    assert_eq!(tally.inbound.get("established"), Some(n), "{tally:?}");
    let count = median_ms(|| {
        tcp::count_netlink(&mut diag, port, Some(&owned)).unwrap();
    });
    // The kernel's share: walking its table with nothing to copy (port 0
    // matches no socket).
    let walk = median_ms(|| {
        tcp::count_netlink(&mut diag, 0, None).unwrap();
    });
    let mut per_family = SockDiag::open().unwrap().per_family();
    let count_per_family = median_ms(|| {
        tcp::count_netlink(&mut per_family, port, Some(&owned)).unwrap();
    });
    let fd_scan = median_ms(|| {
        tree_sockets(pid);
    });
    let net_dir = Path::new("/proc").join(pid.to_string()).join("net");
    // /proc/net/tcp is read in chunks, not as one snapshot: a socket moving
    // in the table between two chunks (other sockets churn on a shared
    // machine) can be seen twice or missed. The port's sockets are still.
    let mut seen = Vec::new();
    let agrees = (0..5).any(|_| {
        let inbound = tcp::count_proc(&net_dir, port, Some(&owned))
            .unwrap()
            .inbound;
        seen.push(inbound.0);
        inbound == tally.inbound
    });
    if !agrees {
        eprintln!(
            "warning: /proc/net/tcp counted {seen:?} inbound, netlink {:?}",
            tally.inbound.0
        );
    }
    let proc_net = median_ms(|| {
        tcp::count_proc(&net_dir, port, Some(&owned)).unwrap();
    });

    let spec = GatewayFile {
        name: Some("bench".into()),
        url: Some(format!("http://127.0.0.1:{port}")),
        pid: Some(pid as u32),
        ..Default::default()
    };
    let cfg = config::build(Intervals::default(), vec![spec]).unwrap();
    let slot = Arc::new(ConnectionsSlot {
        target: Arc::new(Target::new(cfg.gateways[0].clone())),
        latest: Latest::new(),
    });
    let mut sampler = ConnectionsSampler::new(slot.clone(), Some(Arc::new(Latest::new())));
    let sample = median_ms(|| sampler.sample().unwrap());
    let s = slot.latest.get().flatten().unwrap();
    assert_eq!(s.tally.inbound.get("established"), Some(n));

    let (node_scrape, node_tcpstat) = match node {
        Some(addr) => {
            let mut reported = Vec::new();
            let wall = median_ms(|| reported.extend(tcpstat_duration_ms(&http_get(addr))));
            reported.sort_by(f64::total_cmp);
            (Some(wall), reported.get(reported.len() / 2).copied())
        }
        None => (None, None),
    };
    drop(held);
    Row {
        n,
        sockets: tally.inbound.total(),
        count,
        walk,
        count_per_family,
        fd_scan,
        sample,
        proc_net,
        node_scrape,
        node_tcpstat,
    }
}

pub fn main() {
    // `cargo bench` passes --bench; nothing to filter here.
    let node = node_exporter();
    let node_addr = node.as_ref().map(|(_, a)| a.as_str());
    let rows: Vec<Row> = COUNTS.iter().map(|&n| measure(n, node_addr)).collect();
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));

    println!();
    println!("| connections | our count (netlink, one walk) | of which the kernel's walk alone | netlink, one dump per family | fd scan of the gateway tree | whole connections sample | /proc/<pid>/net/tcp{{,6}} | node_exporter tcpstat scrape | node_exporter's tcpstat time |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} ({} gateway sockets) | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} ms | {} ms |",
            r.n,
            r.sockets,
            r.count,
            r.walk,
            r.count_per_family,
            r.fd_scan,
            r.sample,
            r.proc_net,
            ms(r.node_scrape),
            ms(r.node_tcpstat),
        );
    }
    println!();
    println!("Medians of {RUNS} runs, wall time. Each connection is two sockets on this host (both ends are local).");
}
