//! Active HTTP probes of a gateway, shared by the liveness (`/healthz`) and
//! readiness (`/readyz`) collectors, and the `openclaw_gateway_probe_*`
//! metrics both feed.
//!
//! A liveness probe opens a fresh connection every time (a pooled connection
//! would hide a listener that no longer accepts); the readiness poll, which
//! runs every second, keeps one connection to the gateway open between polls
//! ([`Prober::keep_alive`]), since liveness already proves the listener
//! accepts. Every probe ignores proxies, follows no redirect, never retries,
//! reads at most a capped body, and must finish within the probe timeout. A
//! failed probe has one of a few bounded [`Reason`]s.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::config::Token;
use crate::metrics;

/// Upper bounds of the probe duration histogram, in seconds. They bracket the
/// field report's response-time thresholds: 100 ms normal, 500 ms danger.
pub const DURATION_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Why a probe failed. The set is closed, so the `reason` label is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No complete answer within the probe timeout (connect, headers or body).
    Timeout,
    /// The connection was refused: nothing listens.
    ConnectRefused,
    /// Any other transport error: connecting failed otherwise, or the
    /// connection broke before the answer's headers arrived.
    ConnectError,
    /// An HTTP status the endpoint does not answer when it works.
    HttpStatus,
    /// The body was broken off, or is not what the endpoint answers.
    BadBody,
    /// The body was longer than the cap.
    TooLarge,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Timeout,
        Reason::ConnectRefused,
        Reason::ConnectError,
        Reason::HttpStatus,
        Reason::BadBody,
        Reason::TooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::ConnectRefused => "connect_refused",
            Reason::ConnectError => "connect_error",
            Reason::HttpStatus => "http_status",
            Reason::BadBody => "bad_body",
            Reason::TooLarge => "too_large",
        }
    }

    fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The probed endpoint: the `endpoint` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Live,
    Ready,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Live => "live",
            Endpoint::Ready => "ready",
        }
    }
}

/// A complete HTTP answer: any status, and a body within the cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A failed probe: why, and the HTTP status if one arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failure {
    pub reason: Reason,
    pub status: Option<u16>,
}

impl Failure {
    pub fn new(reason: Reason, status: Option<u16>) -> Failure {
        Failure { reason, status }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Sends probes. Holds no connection between probes, unless made with
/// [`Prober::keep_alive`].
#[derive(Debug, Clone)]
pub struct Prober {
    client: reqwest::Client,
    timeout: Duration,
}

impl Prober {
    /// `https`: whether the gateway's URL is https. Only then are the system's
    /// CA certificates loaded (rustls with the ring provider), so a plain-http
    /// exporter runs on a machine that has none.
    pub fn new(timeout: Duration, https: bool) -> Result<Prober, ClientError> {
        Prober::build(timeout, https, None)
    }

    /// A prober that keeps one idle connection for up to `idle` between
    /// probes. `idle` must stay below the gateway's keep-alive timeout (Node's
    /// default is 5 s), or a probe could race the server closing it.
    pub fn keep_alive(
        timeout: Duration,
        https: bool,
        idle: Duration,
    ) -> Result<Prober, ClientError> {
        Prober::build(timeout, https, Some(idle))
    }

    fn build(
        timeout: Duration,
        https: bool,
        idle: Option<Duration>,
    ) -> Result<Prober, ClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!(
                "openclaw-gateway-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .pool_max_idle_per_host(usize::from(idle.is_some()))
            .pool_idle_timeout(idle)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .http1_only()
            .referer(false);
        if https {
            // reqwest then verifies with the system's roots; installing the
            // provider a second time is a no-op.
            let _ = rustls::crypto::ring::default_provider().install_default();
        } else {
            // Never used for http: a TLS setup that needs no certificates.
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(tls);
        }
        Ok(Prober {
            client: builder.build()?,
            timeout,
        })
    }

    /// GET `url`, sending `token` as a bearer token when given, and read at
    /// most `cap` bytes of body, all within the probe timeout.
    pub async fn get(
        &self,
        url: &str,
        token: Option<&Token>,
        cap: usize,
    ) -> Result<Answer, Failure> {
        match tokio::time::timeout(self.timeout, self.get_untimed(url, token, cap)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(Reason::Timeout, None)),
        }
    }

    async fn get_untimed(
        &self,
        url: &str,
        token: Option<&Token>,
        cap: usize,
    ) -> Result<Answer, Failure> {
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = token {
            // bearer_auth marks the header sensitive.
            request = request.bearer_auth(token.expose());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Failure::new(classify(&e), None))?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(Failure::new(Reason::TooLarge, Some(status)));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > cap {
                        // Dropping the response closes the connection.
                        return Err(Failure::new(Reason::TooLarge, Some(status)));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(Answer { status, body }),
                // The connection broke mid-body (the timeout is `get`'s).
                Err(_) => return Err(Failure::new(Reason::BadBody, Some(status))),
            }
        }
    }
}

/// The reason of an error that happened before the answer's headers arrived
/// (the client itself has no timeout: `get` enforces it).
fn classify(e: &reqwest::Error) -> Reason {
    if refused(e) {
        Reason::ConnectRefused
    } else {
        Reason::ConnectError
    }
}

fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// The failure ratio of the probes finished within a sliding window.
#[derive(Debug)]
pub struct ErrorWindow {
    span: Duration,
    /// When each probe finished, and how many probes had failed by then (it
    /// included); oldest first. A scrape finds the window's start by binary
    /// search and its failures by one subtraction.
    events: VecDeque<(Instant, u64)>,
    /// Failures by the newest probe, and by the probe before the oldest kept.
    failed: u64,
    failed_before: u64,
}

/// Most samples a window keeps, whatever its span and cadence: bounds memory.
pub const MAX_WINDOW_EVENTS: usize = 100_000;

impl ErrorWindow {
    pub fn new(span: Duration) -> ErrorWindow {
        ErrorWindow {
            span,
            events: VecDeque::new(),
            failed: 0,
            failed_before: 0,
        }
    }

    pub fn record(&mut self, at: Instant, failed: bool) {
        while self
            .events
            .front()
            .is_some_and(|(t, _)| !within(*t, at, self.span))
            || self.events.len() >= MAX_WINDOW_EVENTS
        {
            if let Some((_, f)) = self.events.pop_front() {
                self.failed_before = f;
            }
        }
        self.failed += u64::from(failed);
        self.events.push_back((at, self.failed));
    }

    /// Failed / all probes that finished in `(now - span, now]`; `None` when
    /// there were none.
    pub fn ratio(&self, now: Instant) -> Option<f64> {
        let first = self
            .events
            .partition_point(|(t, _)| !within(*t, now, self.span));
        let total = self.events.len() - first;
        if total == 0 {
            return None;
        }
        let before = match first {
            0 => self.failed_before,
            i => self.events[i - 1].1,
        };
        Some((self.failed - before) as f64 / total as f64)
    }
}

/// Whether `at` lies in the window of length `span` that ends at `now`.
pub fn within(at: Instant, now: Instant, span: Duration) -> bool {
    now.saturating_duration_since(at) < span
}

/// The probe metrics of one endpoint of one gateway.
#[derive(Debug)]
pub struct ProbeStats {
    pub gateway: String,
    pub endpoint: Endpoint,
    durations: Histogram,
    counts: Mutex<Counts>,
}

#[derive(Debug)]
struct Counts {
    total: u64,
    failures: [u64; Reason::ALL.len()],
    last: Option<Last>,
    window: ErrorWindow,
}

/// The last probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Last {
    pub success: bool,
    pub duration_seconds: f64,
    /// 0 when no HTTP answer arrived.
    pub status: u16,
}

impl ProbeStats {
    /// `error_window` is the error-ratio window (`--collect.errors.interval`).
    pub fn new(gateway: &str, endpoint: Endpoint, error_window: Duration) -> ProbeStats {
        ProbeStats {
            gateway: gateway.to_string(),
            endpoint,
            durations: Histogram::new(DURATION_BUCKETS),
            counts: Mutex::new(Counts {
                total: 0,
                failures: [0; Reason::ALL.len()],
                last: None,
                window: ErrorWindow::new(error_window),
            }),
        }
    }

    /// Record one finished probe. Durations go to the histogram unless the
    /// probe never reached the gateway (refused or failed to connect), so a
    /// gateway that is down does not look fast.
    pub fn record(&self, elapsed: Duration, result: Result<u16, Failure>) {
        let seconds = elapsed.as_secs_f64();
        let reached = !matches!(
            result,
            Err(Failure {
                reason: Reason::ConnectRefused | Reason::ConnectError,
                ..
            })
        );
        if reached {
            self.durations.observe(seconds);
        }
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total += 1;
        if let Err(f) = result {
            c.failures[f.reason.index()] += 1;
        }
        c.window.record(Instant::now(), result.is_err());
        c.last = Some(Last {
            success: result.is_ok(),
            duration_seconds: seconds,
            status: match result {
                Ok(status) => status,
                Err(f) => f.status.unwrap_or(0),
            },
        });
    }

    pub fn last(&self) -> Option<Last> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).last
    }

    fn with<R>(&self, f: impl FnOnce(&Counts) -> R) -> R {
        f(&self.counts.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Exposes the probe metrics of every endpoint of every gateway.
#[derive(Debug)]
pub struct ProbeMetrics(pub Vec<Arc<ProbeStats>>);

const SAMPLED: &str = "Liveness (endpoint=\"live\", GET /healthz) every --collect.latency.interval; readiness (endpoint=\"ready\", GET /readyz) every --probe.readiness-interval.";

impl ProbeMetrics {
    fn rows<'a>(
        &'a self,
        f: impl Fn(&Counts) -> Option<f64> + 'a,
    ) -> impl Iterator<Item = (metrics::Labels<'a, 2>, f64)> + 'a {
        self.0.iter().filter_map(move |s| {
            let v = s.with(&f)?;
            Some((
                [
                    ("gateway", s.gateway.as_str()),
                    ("endpoint", s.endpoint.as_str()),
                ],
                v,
            ))
        })
    }
}

impl Collector for ProbeMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.0.is_empty() {
            let mut family = enc.encode_descriptor(
                "openclaw_gateway_probe_duration",
                &format!("Duration of the probes that reached the gateway (refused and failed connections are left out; timeouts are in). {SAMPLED}"),
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for s in &self.0 {
                let labels = [
                    ("gateway", s.gateway.as_str()),
                    ("endpoint", s.endpoint.as_str()),
                ];
                s.durations.encode(family.encode_family(&labels)?)?;
            }
        }
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_probe_last_duration",
            &format!("Duration of the last probe, failed or not. {SAMPLED}"),
            Some(&Unit::Seconds),
            self.rows(|c| c.last.map(|l| l.duration_seconds)),
        )?;
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_probe_success",
            &format!("Whether the last probe succeeded (1) or failed (0). A readiness answer of 503 is a success: the gateway answered that it is not ready. {SAMPLED}"),
            None,
            self.rows(|c| c.last.map(|l| if l.success { 1.0 } else { 0.0 })),
        )?;
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_probe_http_status_code",
            &format!("HTTP status of the last probe's answer; 0 when none arrived. {SAMPLED}"),
            None,
            self.rows(|c| c.last.map(|l| f64::from(l.status))),
        )?;
        metrics::counter(
            &mut enc,
            "openclaw_gateway_probes",
            &format!("Probes sent. The error rate is rate(openclaw_gateway_probe_failures_total) / rate(openclaw_gateway_probes_total). {SAMPLED}"),
            None,
            self.rows(|c| Some(c.total as f64)),
        )?;
        let failures = self.0.iter().flat_map(|s| {
            let counts = s.with(|c| c.failures);
            Reason::ALL.into_iter().map(move |r| {
                (
                    [
                        ("gateway", s.gateway.as_str()),
                        ("endpoint", s.endpoint.as_str()),
                        ("reason", r.as_str()),
                    ],
                    counts[r.index()] as f64,
                )
            })
        });
        metrics::counter(
            &mut enc,
            "openclaw_gateway_probe_failures",
            &format!("Failed probes by reason: timeout, connect_refused, connect_error, http_status, bad_body, too_large. {SAMPLED}"),
            None,
            failures,
        )?;
        let now = Instant::now();
        metrics::gauge(
            &mut enc,
            "openclaw_gateway_probe_error",
            &format!("Failed / all probes that finished within the last --collect.errors.interval (sliding window); absent while there were none. {SAMPLED}"),
            Some(&metrics::ratio()),
            self.rows(|c| c.window.ratio(now)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_window_slides() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = ErrorWindow::new(s(60));
        assert_eq!(w.ratio(t0), None);
        // One probe a second for a minute, one of them failed.
        for i in 0..60 {
            w.record(t0 + s(i), i == 30);
        }
        let r = w.ratio(t0 + s(59)).unwrap();
        assert!((r - 1.0 / 60.0).abs() < 1e-12, "{r}");
        assert!(
            r < 0.02,
            "one failure in 60 probes stays below the 2% danger line"
        );
        // 31 s later the failure has left the window; so have 31 good probes.
        assert_eq!(w.ratio(t0 + s(90)), Some(0.0));
        assert_eq!(w.ratio(t0 + s(89)).map(|r| r > 0.0), Some(true));
        // Much later, nothing is left in the window.
        assert_eq!(w.ratio(t0 + s(200)), None);
        w.record(t0 + s(200), true);
        assert_eq!(w.ratio(t0 + s(200)), Some(1.0));
        assert_eq!(w.events.len(), 1, "old probes are dropped on record");
    }

    #[test]
    fn error_window_is_bounded() {
        let t0 = Instant::now();
        let mut w = ErrorWindow::new(Duration::from_secs(3600));
        for i in 0..(MAX_WINDOW_EVENTS as u64 + 10) {
            w.record(t0 + Duration::from_micros(i), false);
        }
        assert_eq!(w.events.len(), MAX_WINDOW_EVENTS);
    }

    #[test]
    fn stats_count_and_bucket() {
        let st = ProbeStats::new("g", Endpoint::Live, Duration::from_secs(60));
        st.record(Duration::from_millis(50), Ok(200));
        st.record(Duration::from_millis(600), Ok(200));
        st.record(
            Duration::from_millis(1),
            Err(Failure::new(Reason::ConnectRefused, None)),
        );
        st.record(
            Duration::from_millis(30),
            Err(Failure::new(Reason::HttpStatus, Some(500))),
        );
        st.with(|c| {
            assert_eq!(c.total, 4);
            assert_eq!(c.failures[Reason::HttpStatus.index()], 1);
            assert_eq!(c.failures[Reason::ConnectRefused.index()], 1);
            assert_eq!(c.window.ratio(Instant::now()), Some(0.5));
        });
        assert_eq!(
            st.last(),
            Some(Last {
                success: false,
                duration_seconds: 0.03,
                status: 500
            })
        );
        // The refused probe never reached the gateway: not in the histogram.
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProbeMetrics(vec![Arc::new(st)])));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let labels = r#"gateway="g",endpoint="live""#;
        for line in [
            format!(r#"openclaw_gateway_probe_duration_seconds_count{{{labels}}} 3"#),
            format!(r#"openclaw_gateway_probe_duration_seconds_bucket{{le="0.025",{labels}}} 0"#),
            format!(r#"openclaw_gateway_probe_duration_seconds_bucket{{le="0.05",{labels}}} 2"#),
            format!(r#"openclaw_gateway_probe_duration_seconds_bucket{{le="0.5",{labels}}} 2"#),
            format!(r#"openclaw_gateway_probe_duration_seconds_bucket{{le="1.0",{labels}}} 3"#),
            format!(r#"openclaw_gateway_probes_total{{{labels}}} 4"#),
            format!(r#"openclaw_gateway_probe_failures_total{{{labels},reason="too_large"}} 0"#),
            format!(r#"openclaw_gateway_probe_failures_total{{{labels},reason="http_status"}} 1"#),
            format!(r#"openclaw_gateway_probe_http_status_code{{{labels}}} 500"#),
            format!(r#"openclaw_gateway_probe_success{{{labels}}} 0"#),
            format!(r#"openclaw_gateway_probe_error_ratio{{{labels}}} 0.5"#),
        ] {
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn reasons_are_distinct() {
        let names: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    /// A loopback listener that treats each connection with `serve`.
    fn server(serve: fn(std::net::TcpStream)) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve(stream));
            }
        });
        port
    }

    fn read_request(stream: &mut std::net::TcpStream) {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
    }

    #[tokio::test]
    async fn failures_are_classified() {
        use std::io::Write;
        let prober = Prober::new(Duration::from_millis(500), false).unwrap();
        let get = |port: u16| {
            let prober = prober.clone();
            async move {
                prober
                    .get(&format!("http://127.0.0.1:{port}/healthz"), None, 1024)
                    .await
            }
        };

        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(get(free).await.unwrap_err().reason, Reason::ConnectRefused);

        let silent = server(|mut s| {
            read_request(&mut s);
            std::thread::sleep(Duration::from_secs(3));
        });
        let t = Instant::now();
        assert_eq!(
            get(silent).await.unwrap_err(),
            Failure::new(Reason::Timeout, None)
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

        let garbage = server(|mut s| {
            read_request(&mut s);
            let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n");
        });
        assert_eq!(get(garbage).await.unwrap_err().reason, Reason::ConnectError);

        let announced = server(|mut s| {
            read_request(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
        });
        assert_eq!(
            get(announced).await.unwrap_err(),
            Failure::new(Reason::TooLarge, Some(200))
        );

        let streamed = server(|mut s| {
            read_request(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for _ in 0..10 {
                let _ = s.write_all(b"100\r\n");
                let _ = s.write_all(&[b'a'; 256]);
                let _ = s.write_all(b"\r\n");
            }
        });
        assert_eq!(
            get(streamed).await.unwrap_err(),
            Failure::new(Reason::TooLarge, Some(200))
        );

        let cut = server(|mut s| {
            read_request(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ok\"");
        });
        assert_eq!(
            get(cut).await.unwrap_err(),
            Failure::new(Reason::BadBody, Some(200))
        );

        let fine = server(|mut s| {
            read_request(&mut s);
            let _ = s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}");
        });
        assert_eq!(
            get(fine).await,
            Ok(Answer {
                status: 503,
                body: b"{}".to_vec()
            })
        );
    }

    /// https builds with the system's CA certificates (Debian's
    /// ca-certificates) and a server that does not speak TLS is a
    /// connect error.
    #[tokio::test]
    async fn https_without_tls_on_the_other_side_is_a_connect_error() {
        use std::io::Write;
        let prober = Prober::new(Duration::from_secs(2), true).unwrap();
        let port = server(|mut s| {
            read_request(&mut s);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        });
        let got = prober
            .get(&format!("https://127.0.0.1:{port}/healthz"), None, 1024)
            .await;
        assert_eq!(got.unwrap_err().reason, Reason::ConnectError);
    }
}
