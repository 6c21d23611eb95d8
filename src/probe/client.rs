//! The HTTP clients that send probes, the body cap, and why a probe failed.
//! `http://` targets go through the small client of [`super::http1`];
//! `https://` ones (and URLs with credentials in them) through reqwest.

use std::sync::Arc;
use std::time::Duration;

use super::http1::Endpoint;
use crate::config::Token;

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

    pub(super) fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
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
/// [`Prober::keep_alive`]; then each [`Probe`] made by [`Prober::target`]
/// keeps its own.
#[derive(Debug, Clone)]
pub struct Prober {
    client: reqwest::Client,
    timeout: Duration,
    /// How long an idle connection is kept between probes.
    idle: Option<Duration>,
}

/// The probes of one URL: its request built once, its kept connection.
#[derive(Debug)]
pub struct Probe {
    prober: Prober,
    url: String,
    /// `None` when the URL is for reqwest.
    http: Option<Endpoint>,
}

impl Probe {
    /// GET the URL, sending `token` as a bearer token when given, and read at
    /// most `cap` bytes of body, all within the probe timeout.
    pub async fn get(&mut self, token: Option<&Token>, cap: usize) -> Result<Answer, Failure> {
        let timeout = self.prober.timeout;
        let untimed = async {
            match &mut self.http {
                Some(http) => http.get(token, cap, self.prober.idle).await,
                None => self.prober.get_untimed(&self.url, token, cap).await,
            }
        };
        match tokio::time::timeout(timeout, untimed).await {
            Ok(result) => result,
            // The kept connection, if any, went with the dropped future.
            Err(_) => Err(Failure::new(Reason::Timeout, None)),
        }
    }
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
            idle,
        })
    }

    /// The probes of `url`, for a collector that sends them again and again.
    pub fn target(&self, url: String) -> Probe {
        Probe {
            prober: self.clone(),
            http: Endpoint::new(&url),
            url,
        }
    }

    /// GET `url` once, sending `token` as a bearer token when given, and read
    /// at most `cap` bytes of body, all within the probe timeout.
    pub async fn get(
        &self,
        url: &str,
        token: Option<&Token>,
        cap: usize,
    ) -> Result<Answer, Failure> {
        self.target(url.to_string()).get(token, cap).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
