//! The server around the axum app: TLS, basic auth and extra headers from
//! `--web.config.file` (reloaded on SIGHUP), and limits that keep slow or
//! idle clients from pinning connections.
//!
//! One accept loop per listener serves the same [`axum::Router`] with
//! hyper's HTTP/1.1 server, over TLS (tokio-rustls) when the web config says
//! so. Every connection picks up the web config current when it is accepted;
//! every request, the users and headers current when it arrives.

pub mod auth;
pub mod config;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub use config::WebConfig;

use crate::config::ConfigError;

/// The web config in force, and what reloads it.
pub struct Web {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebConfig>>,
    verifier: auth::Verifier,
}

impl Web {
    /// Load `path`, or run plain HTTP without auth when there is none.
    pub fn load(path: Option<&Path>) -> Result<Web, ConfigError> {
        let current = match path {
            Some(p) => config::load(p)?,
            None => WebConfig::default(),
        };
        Ok(Web {
            path: path.map(Path::to_path_buf),
            current: RwLock::new(Arc::new(current)),
            verifier: auth::Verifier::default(),
        })
    }

    pub fn current(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_tls(&self) -> bool {
        self.current().tls.is_some()
    }

    /// Read the file again. On any error the config in force stays. Turning
    /// TLS on or off needs a restart: scrapers would have to change scheme.
    pub fn reload(&self) -> Result<ReloadOutcome, String> {
        let Some(path) = &self.path else {
            return Ok(ReloadOutcome::NoFile);
        };
        let new = config::load(path).map_err(|e| e.to_string())?;
        if new.tls.is_some() != self.is_tls() {
            return Err(format!(
                "{}: turning TLS on or off needs a restart; keeping the current web config",
                path.display()
            ));
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(ReloadOutcome::Reloaded)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    NoFile,
    Reloaded,
}

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to finish the TLS handshake and send a request's
    /// headers (on a kept-alive connection: to start its next request); a
    /// client that takes none of a response for this long is cut off too.
    pub client_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

/// Time in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Add basic auth and the configured headers in front of `app`.
pub fn wrap(app: Router, web: Arc<Web>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(web, guard))
}

/// Basic auth (when users are configured) and extra headers, on every
/// route: the toolkit protects everything, `/-/healthy` included.
async fn guard(State(web): State<Arc<Web>>, req: Request, next: Next) -> Response {
    let cfg = web.current();
    let mut res = if cfg.users.is_empty() || web.verifier.check(&cfg.users, req.headers()).await {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"))],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &cfg.headers.0 {
        res.headers_mut().insert(name.clone(), value.clone());
    }
    res
}

/// Resolves once `shutdown` turns true (or its sender is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// A listener and its scheme, for the "listening on" line.
pub fn url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// Serve `app` on `listener` until `shutdown` turns true, then give
/// in-flight requests [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    web: Arc<Web>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut accept_errors_logged = false;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopping(&mut shutdown) => break,
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of fds, usually: back off instead of spinning.
                    if !accept_errors_logged {
                        tracing::warn!("accept failed (logged once): {e}");
                        accept_errors_logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopping(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let stream = StallGuard::new(stream, limits.client_timeout);
        let tls = web.current().tls.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.client_timeout);
            match tls {
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    let handshake =
                        tokio::time::timeout(limits.client_timeout, acceptor.accept(stream));
                    // A failed handshake (plain HTTP on the TLS port, no or
                    // a wrong client certificate) is the client's problem.
                    let Ok(Ok(stream)) = handshake.await else {
                        return;
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// A connection whose writes may stall for at most `timeout`: a client that
/// stops reading (while pipelining requests, say) gets an error instead of
/// holding its connection forever. Reads pass through untouched; hyper's
/// header timeout bounds those.
struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> StallGuard<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        StallGuard {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After the inner write said Pending: Pending until the stall lasts
    /// `timeout`, then an error. Progress resets the clock.
    fn on_pending<R>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if res.is_ready() {
            self.stalled = None;
            return res;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.on_pending(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.on_pending(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        this.on_pending(cx, res)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.on_pending(cx, res)
    }
}
