//! End to end against the real OpenClaw gateway, as in the field: the
//! exporter with its default intervals (and the gateway's token, so the RPC
//! probe runs too), Debian's Prometheus running alerts/openclaw-gateway.rules.yml
//! as shipped, scraping and evaluating every 15 s, and Alertmanager with
//! alerts/alertmanager.example.yml as shipped (only its webhook URLs pointed
//! at this test's receiver).
//!
//! Each test has a gateway, an exporter, a Prometheus, an Alertmanager and a
//! receiver of its own, and they run side by side: unlike the other
//! real-gateway tests they do not take [`REAL_GATEWAY_LOCK`], so the binary
//! takes as long as the longer of them (~17 minutes), not their sum.
//!
//! Linux only: it runs the real gateway, Prometheus and Alertmanager, Linux
//! programs here.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::alerting::*;
use common::*;
use openclaw_gateway_exporter::names;

const HUNG: &str = "OpenClawGatewayHung";

/// One real gateway watched as in the field, and where its alerts go.
struct Stack {
    receiver: Receiver,
    /// Prometheus and Alertmanager, host:port.
    prom: String,
    am: String,
    /// When Prometheus first had the gateway's series.
    seen: Instant,
    /// The gateway's name: its `gateway` label, in what the exporter and
    /// this test log.
    name: &'static str,
    _prom: Proc,
    _am: Proc,
    exp: Exporter,
    gw: RealGateway,
    _dir: TempDir,
}

impl Stack {
    /// An exporter for `gw` with its default intervals and the gateway's
    /// token (tests/support/run-openclaw.sh's "t"), Alertmanager and
    /// Prometheus as shipped; returns once Prometheus has the gateway.
    fn start(name: &'static str, gw: RealGateway) -> Stack {
        let prometheus = require_tool("prometheus");
        let alertmanager = require_tool("prometheus-alertmanager");
        let dir = TempDir::new(&format!("e2e-{name}"));
        let token = dir.path().join("token");
        std::fs::write(&token, "t\n").unwrap();
        let exp = Harness::exporter()
            .name(name)
            .url(&gw.url())
            .state_dir(gw.state_dir())
            .token_file(&token)
            .start();
        let receiver = Receiver::start();
        let (am, am_port) = start_alertmanager(&alertmanager, dir.path(), &receiver.addr, true);
        let rules = repo().join("alerts/openclaw-gateway.rules.yml");
        let config = prometheus_config("15s", &rules, am_port, &[&exp.addr]);
        let (prom_proc, prom) = start_prometheus(&prometheus, dir.path(), &config);
        let mut stack = Stack {
            receiver,
            prom,
            am: format!("127.0.0.1:{am_port}"),
            seen: Instant::now(),
            name,
            _prom: prom_proc,
            _am: am,
            exp,
            gw,
            _dir: dir,
        };
        wait_for(
            Duration::from_secs(90),
            "Prometheus to have the gateway's series",
            || (stack.prom(&names::PROCESS_UP) == Some(1.0)).then_some(()),
        );
        stack.seen = Instant::now();
        stack
    }

    /// `family{gateway="NAME"}`, this gateway's series.
    fn series(&self, family: &names::Family) -> String {
        format!("{}{{gateway=\"{}\"}}", family.name(), self.name)
    }

    /// The value of this gateway's `family` in Prometheus.
    fn prom(&self, family: &names::Family) -> Option<f64> {
        prom_value(&self.prom, &self.series(family))
    }

    /// Alerts firing in Prometheus now, as `name (severity)`.
    fn firing(&self) -> Vec<String> {
        let firing = prom_query(&self.prom, "ALERTS{alertstate=\"firing\"}")
            .expect("Prometheus answers ALERTS");
        firing
            .iter()
            .map(|(labels, _)| format!("{} ({})", labels["alertname"], labels["severity"]))
            .collect()
    }
}

/// An alert in one state, in Prometheus (`pending`, `firing`) or in
/// Alertmanager (`active`: it would be notified; `suppressed`: inhibited).
#[derive(Debug, Clone, PartialEq)]
struct Held {
    place: &'static str,
    alertname: String,
    severity: String,
    state: String,
}

/// Every alert Prometheus and Alertmanager hold, polled every second on a
/// thread of its own: each state an alert took, when it was first seen in
/// it and for how many polls in a row.
struct Watch {
    log: Arc<Mutex<Vec<(Instant, Held, u32)>>>,
    stop: Arc<AtomicBool>,
}

impl Watch {
    fn start(stack: &Stack) -> Watch {
        let (prom, am, seen, name) = (stack.prom.clone(), stack.am.clone(), stack.seen, stack.name);
        let log = Arc::new(Mutex::new(Vec::<(Instant, Held, u32)>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (keep, stopped) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last: Vec<Held> = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                // A poll that fails changes nothing.
                if let Some(now) = held(&prom, &am, name) {
                    let mut log = keep.lock().unwrap();
                    for h in &now {
                        if last.contains(h) {
                            if let Some(e) = log.iter_mut().rev().find(|e| &e.1 == h) {
                                e.2 += 1;
                            }
                        } else {
                            eprintln!(
                                "[{name} {:>4.0} s] {} {} ({}) {}",
                                seen.elapsed().as_secs_f64(),
                                h.place,
                                h.alertname,
                                h.severity,
                                h.state
                            );
                            log.push((Instant::now(), h.clone(), 1));
                        }
                    }
                    last = now;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Watch { log, stop }
    }

    /// What was held after `t`, in `place` and `state`: alert names, and
    /// the most polls in a row each was seen so.
    fn seen(&self, t: Instant, place: &str, state: &str) -> Vec<(String, String, u32)> {
        let mut out: Vec<(String, String, u32)> = Vec::new();
        for (at, h, polls) in self.log.lock().unwrap().iter() {
            if *at < t || h.place != place || h.state != state {
                continue;
            }
            match out
                .iter_mut()
                .find(|o| o.0 == h.alertname && o.1 == h.severity)
            {
                Some(o) => o.2 = o.2.max(*polls),
                None => out.push((h.alertname.clone(), h.severity.clone(), *polls)),
            }
        }
        out
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The alerts of gateway `name` in Prometheus and in Alertmanager now.
fn held(prom: &str, am: &str, name: &str) -> Option<Vec<Held>> {
    let get = |addr: &str, path: &str| -> Option<serde_json::Value> {
        let (status, _, body) = http_get(addr, path, &[]).ok()?;
        (status == 200).then_some(())?;
        serde_json::from_str(&body).ok()
    };
    let one = |place, a: &serde_json::Value, state: &serde_json::Value| {
        (a["labels"]["gateway"] == name).then(|| Held {
            place,
            alertname: a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
            severity: a["labels"]["severity"].as_str().unwrap_or("").to_string(),
            state: state.as_str().unwrap_or("").to_string(),
        })
    };
    let in_prom = get(prom, "/api/v1/alerts")?;
    let in_am = get(am, "/api/v2/alerts")?;
    let mut out: Vec<Held> = in_prom["data"]["alerts"]
        .as_array()?
        .iter()
        .filter_map(|a| one("prometheus", a, &a["state"]))
        .collect();
    out.extend(
        in_am
            .as_array()?
            .iter()
            .filter_map(|a| one("alertmanager", a, &a["status"]["state"])),
    );
    Some(out)
}

/// A real gateway left alone, watched as in the field, notifies nobody for
/// 15 minutes, counted from Prometheus's first sample of it (so they include
/// its startup): the receiver gets nothing at all, neither a page nor a
/// ticket, and at the end no alert is firing in Prometheus
/// (`ALERTS{alertstate="firing"}` is empty). Every rule's `for:` is at most
/// 15 m, so each has had its chance. About 16 minutes.
#[test]
fn a_quiet_real_gateway_notifies_nobody_for_15_minutes() {
    let stack = Stack::start("quiet", RealGateway::start(&[]));
    let watch = Watch::start(&stack);
    let quiet = Duration::from_secs(15 * 60);
    std::thread::sleep(quiet.saturating_sub(stack.seen.elapsed()));

    let pending = watch.seen(stack.seen, "prometheus", "pending");
    eprintln!("quiet: pending at some time in 15 minutes: {pending:?}");
    let notes = stack.receiver.notes.lock().unwrap().clone();
    assert!(notes.is_empty(), "a quiet real gateway notified: {notes:?}");
    let firing = stack.firing();
    assert!(
        firing.is_empty(),
        "a quiet real gateway has alerts firing after 15 minutes: {firing:?}"
    );
}

/// Clients of the gateway: each asks /healthz, waits 2 s at most for the
/// answer and, when answered, a second before asking again; unanswered, it
/// gives up and asks again 100 ms later, as a client retrying does. Against a
/// blocked gateway every connection it gives up stays in the accept queue
/// in CLOSE_WAIT, until the queue is full and new ones are not accepted.
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    answered: Arc<AtomicU64>,
    unanswered: Arc<AtomicU64>,
}

impl Clients {
    fn start(addr: &str, n: usize) -> Clients {
        let addr: SocketAddr = addr.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let unanswered = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|_| {
                let (stop, yes, no) = (stop.clone(), answered.clone(), unanswered.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if ask(&addr) {
                            yes.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_secs(1));
                        } else {
                            no.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                })
            })
            .collect();
        Clients {
            stop,
            threads,
            answered,
            unanswered,
        }
    }

    /// Stop them; requests answered and not.
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        (
            self.answered.load(Ordering::Relaxed),
            self.unanswered.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One GET /healthz: answered 200 within 5 s to connect and 2 s to answer.
fn ask(addr: &SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(addr, Duration::from_secs(5)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = Vec::new();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        .is_ok()
        && s.read_to_end(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.1 200")
}

/// How long the gateway's event loop is blocked: the fault matrix.
const BLOCK: Duration = Duration::from_secs(240);

/// The real gateway's event loop blocked for 240 s (a busy loop evaluated
/// inside it through the Node inspector, tests/support/inspect.mjs) while
/// 32 clients keep asking it, so its accept queue fills and CLOSE_WAIT
/// builds up, as in the field:
/// - OpenClawGatewayHung pages, within two liveness probes (2 × 10 s + the
///   5 s timeout) + the 15 s scrape + the 15 s evaluation + its 30 s `for:`
///   + the pager's 10 s group_wait;
/// - while blocked, no event-loop series; once the gateway answers again,
///   openclaw_gateway_eventloop_stall_seconds_total in Prometheus has grown
///   by about the block's 240 s, and at the end by not much more (counted
///   once);
/// - the symptoms (AcceptQueueSaturating, CloseWaitBuildUp) fire in
///   Prometheus, and none pages: Alertmanager never holds a critical alert of
///   the gateway other than Hung un-inhibited (it would page at its group's
///   next flush), neither during the block nor across the recovery, and,
///   a group_interval (5 m) and two evaluations after the gateway answers
///   again, the receiver has had Hung firing and resolved, nothing else.
///
/// About 11 minutes.
#[test]
fn a_blocked_real_gateway_pages_hung_only_and_counts_the_stall() {
    // Its own inspector port: SIGUSR1 opens it there (SIGUSR2 would restart
    // the gateway).
    let inspector = free_port();
    let inspect_port = format!("--inspect-port=127.0.0.1:{inspector}");
    let gw = RealGateway::start(&[("NODE_OPTIONS", &inspect_port)]);
    let started = Instant::now();
    gw.proc.signal("USR1");
    wait_for(Duration::from_secs(10), "the gateway's inspector", || {
        TcpStream::connect(("127.0.0.1", inspector)).ok()
    });
    let stack = Stack::start("blocked", gw);
    let watch = Watch::start(&stack);
    let clients = Clients::start(&stack.gw.addr(), 32);

    // The startup's own stalls (docs/startup.md: settled at most 22 s after
    // the process started) counted and scraped before the block.
    std::thread::sleep(Duration::from_secs(30).saturating_sub(started.elapsed()));
    let stall = &names::EVENTLOOP_STALL_SECONDS_TOTAL;
    let before = wait_for(
        Duration::from_secs(60),
        "Prometheus's stall count equal to the exporter's",
        || {
            let counted = stack
                .exp
                .scrape()
                .get(stall.name(), &[("gateway", stack.name)])?;
            (stack.prom(stall)? == counted).then_some(counted)
        },
    );
    assert!(
        stack.firing().is_empty(),
        "alerts before the block: {:?}",
        stack.firing()
    );

    // The busy loop runs from the next turn of the loop, once the inspector
    // has its answer; the inspector itself would otherwise wait it out.
    let said = inspect(
        inspector,
        &format!(
            "(() => {{ setTimeout(() => {{ const end = Date.now() + {}; while (Date.now() < end) {{}} }}, 0); return 'blocking'; }})()",
            BLOCK.as_millis()
        ),
    );
    assert_eq!(said, "blocking");
    let fault = Instant::now();
    eprintln!("blocked: the event loop for {} s", BLOCK.as_secs());

    let hung_by = Duration::from_secs(2 * 10 + 5 + 15 + 15 + 30 + 10);
    let paged = stack.receiver.wait(
        fault,
        "pager",
        HUNG,
        "firing",
        hung_by + Duration::from_secs(60),
    ) - fault;
    eprintln!(
        "blocked: Hung paged {:.0} s after the block began",
        paged.as_secs_f64()
    );
    assert!(
        paged <= hung_by,
        "Hung paged after {paged:?}, later than {hung_by:?}"
    );
    assert_eq!(
        stack.prom(&names::EVENTLOOP_DELAY_MAX_SECONDS),
        None,
        "a blocked loop has no event-loop series"
    );

    // The gateway answers again once the loop is free.
    std::thread::sleep(BLOCK.saturating_sub(fault.elapsed()));
    let addr = stack.gw.addr();
    wait_for(Duration::from_secs(60), "/healthz answering again", || {
        matches!(http_get(&addr, "/healthz", &[]), Ok((200, _, _))).then_some(())
    });
    let recovered = Instant::now();
    eprintln!(
        "blocked: /healthz answers again {:.1} s after the block began",
        (recovered - fault).as_secs_f64()
    );
    let counted = wait_for(
        Duration::from_secs(60),
        "the block in Prometheus's stall count",
        || stack.prom(stall).filter(|v| *v > before),
    ) - before;
    eprintln!("blocked: stall counted: {counted:.1} s");
    // The first timed-out probe started within a readiness poll (1 s) of the
    // block; the first answer comes once the gateway has worked off its full
    // accept queue (~10 s here).
    let about = BLOCK.as_secs_f64() - 5.0..=BLOCK.as_secs_f64() + 20.0;
    assert!(
        about.contains(&counted),
        "a 240 s block counted as {counted} s"
    );

    // Hung resolves keep_firing_for (2 m) after the verdict clears (a scrape
    // and an evaluation after the answer), and the pager hears of it at its
    // group's next flush (group_interval 5 m): up to 300 + 120 + 30 s after
    // the recovery, 60 s more for a slow machine. Then a group_interval and
    // two evaluations from the recovery for anything else to page.
    stack.receiver.wait(
        fault,
        "pager",
        HUNG,
        "resolved",
        Duration::from_secs(300 + 120 + 30 + 60),
    );
    let settle = Duration::from_secs(300 + 30);
    std::thread::sleep(settle.saturating_sub(recovered.elapsed()));
    let (answered, unanswered) = clients.stop();
    eprintln!("blocked: clients: {answered} requests answered, {unanswered} not");

    // Over the whole test (15 m is longer than it).
    let max = |series: String| {
        prom_value(&stack.prom, &format!("max_over_time({series}[15m])")).unwrap_or(f64::NAN)
    };
    let queue = max(stack.series(&names::LISTEN_QUEUE_USAGE_RATIO));
    let close_wait = max(format!(
        "{}{{gateway=\"{}\", direction=\"inbound\", state=\"close_wait\"}}",
        names::TCP_CONNECTIONS.name(),
        stack.name
    ));
    let total = stack.prom(stall).unwrap() - before;
    eprintln!(
        "blocked: fullest accept queue {:.0}%, CLOSE_WAIT up to {close_wait}, stall counted at the end: {total:.1} s",
        queue * 100.0
    );
    let fired = watch.seen(fault, "prometheus", "firing");
    let would_page: Vec<_> = watch
        .seen(fault, "alertmanager", "active")
        .into_iter()
        .filter(|(name, severity, _)| name != HUNG && severity == "critical")
        .collect();
    eprintln!("blocked: fired in Prometheus: {fired:?}");
    eprintln!("blocked: un-inhibited in Alertmanager (polls in a row): {would_page:?}");
    let notes: Vec<(String, String, String)> = stack
        .receiver
        .since(fault)
        .into_iter()
        .map(|n| (n.receiver, n.alertname, n.status))
        .collect();

    assert!(
        queue > 0.5 && close_wait > 100.0,
        "the clients did not fill the queue: {queue}, CLOSE_WAIT {close_wait}"
    );
    for symptom in [
        "OpenClawGatewayAcceptQueueSaturating",
        "OpenClawGatewayCloseWaitBuildUp",
    ] {
        assert!(
            fired
                .iter()
                .any(|(n, s, _)| n == symptom && s == "critical"),
            "{symptom} never fired: the inhibition was not tested"
        );
    }
    // Counted once: since then, only the short stalls of a loaded machine.
    assert!(
        total - counted < 30.0,
        "the stall counted {counted} s, then {total} s in all: counted twice"
    );
    // A second or more: Alertmanager's inhibitor takes a moment to see a
    // cause that arrives with its symptoms.
    let would_page: Vec<_> = would_page.into_iter().filter(|w| w.2 >= 2).collect();
    assert!(
        would_page.is_empty(),
        "symptoms left un-inhibited, paged at their group's next flush: {would_page:?}"
    );
    assert!(
        notes.iter().all(|n| n.0 == "pager" && n.1 == HUNG),
        "notified besides Hung: {notes:?}"
    );
    assert_eq!(stack.receiver.pages_since(fault), [HUNG]);
    let firing = stack.firing();
    assert!(firing.is_empty(), "still firing at the end: {firing:?}");
}
