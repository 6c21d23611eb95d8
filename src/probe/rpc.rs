//! The RPC probe's client: one WebSocket connection to the gateway's control
//! plane per probe, the handshake, one `health` call, and why it failed.
//!
//! The protocol, from the installed gateway (OpenClaw 2026.9.6,
//! `node_modules/openclaw/docs/gateway/protocol/`):
//! - `transport.md`: WebSocket on the HTTP port, text frames of JSON.
//!   Request `{type:"req", id, method, params}`, response
//!   `{type:"res", id, ok, payload|error}`, event `{type:"event", event,
//!   payload}`; errors are `{code, message, details?}`.
//! - `handshake.md`: the gateway first sends the event `connect.challenge`;
//!   the client answers with the request `connect` (protocol range, client
//!   id and mode, role, scopes, `auth.token`); the response's payload is
//!   `hello-ok`.
//! - `auth.md`: a wrong shared token fails `connect` with
//!   `error.details.code` `AUTH_TOKEN_MISMATCH` (`AUTH_*` in general), and the
//!   gateway closes with 1008 "unauthorized: ...".
//!
//! The client connects as the gateway's own status probe does
//! (`dist/probe-*.mjs`, what `openclaw status` runs): role `operator`, mode
//! `probe`, scopes `["operator.read"]`, the least-privileged operator scope
//! and the one `health` is filed under (`dist/method-scopes-*.mjs`,
//! CORE_GATEWAY_METHOD_SPECS). No device identity is sent: a client
//! without one may ask for no more than that (`auth.md`, "Omitting device
//! identity"), and `health` is answered to any authenticated connection
//! (`dist/server-methods-*.mjs`, authorizeGatewayMethod). `health` rather
//! than `status`: it returns the gateway's cached health snapshot (about
//! 1.5 KB; `docs/gateway/health.md`), where `status` summarises the
//! session stores; `params.probe` is left out, so no channel is probed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::Token;

/// The most one message or frame may hold. The gateway's `hello-ok` is the
/// largest the probe reads: about 15 KB (its method list and snapshot).
pub const MESSAGE_CAP: usize = 1 << 20;

/// Why an RPC probe failed. The set is closed, so the `reason` label is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcReason {
    /// No answer to `health` within the probe timeout, wherever it stopped:
    /// connecting, the upgrade, the handshake, or the call; also a gateway
    /// that drips frames without answering.
    Timeout,
    /// No handshake: the connection or the WebSocket upgrade failed, or the
    /// gateway refused `connect` for another reason than the token, or
    /// closed the connection before `hello-ok`.
    Handshake,
    /// The gateway refused the token.
    Auth,
    /// `health` answered with an error, or the connection closed after
    /// `hello-ok` without an answer.
    RpcError,
    /// A frame that is not the protocol's: binary, not a JSON object, too
    /// large, or a WebSocket protocol error.
    BadFrame,
}

impl RpcReason {
    pub const ALL: [RpcReason; 5] = [
        RpcReason::Timeout,
        RpcReason::Handshake,
        RpcReason::Auth,
        RpcReason::RpcError,
        RpcReason::BadFrame,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RpcReason::Timeout => "timeout",
            RpcReason::Handshake => "handshake",
            RpcReason::Auth => "auth",
            RpcReason::RpcError => "rpc_error",
            RpcReason::BadFrame => "bad_frame",
        }
    }

    pub fn index(self) -> usize {
        RpcReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Where the gateway's control plane listens.
#[derive(Debug, Clone)]
pub struct RpcTarget {
    /// `ws://` or `wss://`, from the gateway's base URL.
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl RpcTarget {
    /// The WebSocket endpoint of a gateway whose base URL is `url`.
    pub fn new(url: &str, host: &str, port: u16) -> RpcTarget {
        let url = match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}/"),
            None => format!("ws://{}/", url.strip_prefix("http://").unwrap_or(url)),
        };
        RpcTarget {
            url,
            host: host.to_string(),
            port,
        }
    }

    fn tls(&self) -> bool {
        self.url.starts_with("wss:")
    }
}

/// Sends RPC probes: a fresh connection each time, within the probe timeout.
#[derive(Clone)]
pub struct RpcClient {
    timeout: Duration,
    /// For `wss://`: the platform's certificate verifier.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl RpcClient {
    pub fn new(timeout: Duration, https: bool) -> Result<RpcClient, rustls::Error> {
        let tls = match https {
            true => {
                use rustls_platform_verifier::BuilderVerifierExt;
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_platform_verifier()?
                .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            false => None,
        };
        Ok(RpcClient { timeout, tls })
    }

    /// Connect, complete the handshake with `token` and call `health`, all
    /// within the probe timeout; only the answer to `connect` may take up
    /// to [`REFUSAL_PENALTY`] more.
    pub async fn health(&self, target: &RpcTarget, token: &Token) -> Result<(), RpcReason> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let whole = self.timeout + REFUSAL_PENALTY;
        tokio::time::timeout(whole, self.health_by(deadline, target, token))
            .await
            .unwrap_or(Err(RpcReason::Timeout))
    }

    async fn health_by(
        &self,
        deadline: Deadline,
        target: &RpcTarget,
        token: &Token,
    ) -> Result<(), RpcReason> {
        let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
        let tcp = within(deadline, async {
            connect.await.map_err(|_| RpcReason::Handshake)
        })
        .await?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, target.tls()) {
            (Some(tls), true) => {
                let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                    .map_err(|_| RpcReason::Handshake)?;
                let stream = within(deadline, async {
                    tls.connect(name, tcp)
                        .await
                        .map_err(|_| RpcReason::Handshake)
                })
                .await?;
                converse(stream, deadline, &target.url, token).await
            }
            (None, false) => converse(tcp, deadline, &target.url, token).await,
            // The client was built for the other scheme.
            _ => Err(RpcReason::Handshake),
        }
    }
}

/// How long the gateway may hold its answer to a refused token: on loopback
/// (exempt from its rate limit) each failure is delayed 250 ms, doubling
/// per recent failure, up to 5 s (dist/auth-rate-limit-*.mjs,
/// recordFailureAndDelay, LOOPBACK_FAILURE_DELAY_MAX_MS). A probe with a
/// wrong token reaches that cap after five probes; the answer to `connect`
/// is awaited that much longer than the probe timeout, so that a wrong
/// token stays an `auth` failure and never looks like a hang.
pub const REFUSAL_PENALTY: Duration = Duration::from_millis(5500);

type Deadline = tokio::time::Instant;

/// `step`, or a timeout at `deadline`.
async fn within<T>(
    deadline: Deadline,
    step: impl std::future::Future<Output = Result<T, RpcReason>>,
) -> Result<T, RpcReason> {
    tokio::time::timeout_at(deadline, step)
        .await
        .unwrap_or(Err(RpcReason::Timeout))
}

const CONNECT_ID: &str = "ocgx-connect";
const HEALTH_ID: &str = "ocgx-health";

/// The WebSocket upgrade, the handshake and the call, over `stream`.
async fn converse<S>(
    stream: S,
    deadline: Deadline,
    url: &str,
    token: &Token,
) -> Result<(), RpcReason>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(MESSAGE_CAP))
        .max_frame_size(Some(MESSAGE_CAP));
    let upgrade = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
    let (mut ws, _) = within(deadline, async {
        upgrade.await.map_err(|e| match e {
            WsError::Capacity(_) => RpcReason::BadFrame,
            _ => RpcReason::Handshake,
        })
    })
    .await?;

    // The challenge first (handshake.md: "Always wait for connect.challenge").
    let handshake = closed_as(RpcReason::Handshake);
    within(deadline, async {
        loop {
            let frame = next_frame(&mut ws).await.map_err(&handshake)?;
            match frame_type(&frame)? {
                "event" if frame["event"] == "connect.challenge" => return Ok(()),
                "event" => continue,
                _ => return Err(RpcReason::BadFrame),
            }
        }
    })
    .await?;
    let connect = json!({
        "type": "req",
        "id": CONNECT_ID,
        "method": "connect",
        "params": {
            // The gateway's own probe client accepts protocols 3 and 4
            // (dist/client-*.mjs: minProtocol 3 for mode "probe").
            "minProtocol": 3,
            "maxProtocol": 4,
            "client": {
                "id": "openclaw-probe",
                "version": env!("CARGO_PKG_VERSION"),
                "platform": std::env::consts::OS,
                "mode": "probe",
            },
            "role": "operator",
            "scopes": ["operator.read"],
            "caps": [],
            "auth": { "token": token.expose() },
            "userAgent": concat!("openclaw-gateway-exporter/", env!("CARGO_PKG_VERSION")),
        },
    });
    let hello = within(deadline + REFUSAL_PENALTY, async {
        send(&mut ws, &connect).await.map_err(&handshake)?;
        response(&mut ws, CONNECT_ID).await.map_err(&handshake)
    })
    .await?;
    if hello["ok"] != true {
        return Err(connect_refusal(&hello["error"]));
    }
    if !hello["payload"].is_object() {
        return Err(RpcReason::BadFrame);
    }

    let health = json!({ "type": "req", "id": HEALTH_ID, "method": "health", "params": {} });
    let rpc_error = closed_as(RpcReason::RpcError);
    let answer = within(deadline, async {
        send(&mut ws, &health).await.map_err(&rpc_error)?;
        response(&mut ws, HEALTH_ID).await.map_err(&rpc_error)
    })
    .await?;
    if answer["ok"] != true {
        return Err(RpcReason::RpcError);
    }
    if !answer["payload"].is_object() {
        return Err(RpcReason::BadFrame);
    }
    // A polite close, in what is left of the time; the connection is
    // dropped right after either way.
    let _ = tokio::time::timeout_at(deadline, ws.close(None)).await;
    Ok(())
}

/// Why reading or sending stopped: the protocol was broken, or the
/// connection closed (whose reason depends on how far the probe got), or
/// the gateway closed it for the token.
enum Stop {
    Reason(RpcReason),
    Closed,
}

fn closed_as(reason: RpcReason) -> impl Fn(Stop) -> RpcReason {
    move |stop| match stop {
        Stop::Reason(r) => r,
        Stop::Closed => reason,
    }
}

type Ws<S> = tokio_tungstenite::WebSocketStream<S>;

async fn send<S>(ws: &mut Ws<S>, frame: &Value) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(ws_error)
}

/// The next response to request `id`; events and other frames in between
/// are skipped (the probe's timeout bounds how many).
async fn response<S>(ws: &mut Ws<S>, id: &str) -> Result<Value, Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let frame = next_frame(ws).await?;
        if frame_type(&frame).map_err(Stop::Reason)? == "res" && frame["id"] == id {
            return Ok(frame);
        }
    }
}

/// The next text frame, as a JSON object. Pings are answered by the
/// WebSocket layer.
async fn next_frame<S>(ws: &mut Ws<S>) -> Result<Value, Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let message = match ws.next().await {
            None => return Err(Stop::Closed),
            Some(m) => m.map_err(ws_error)?,
        };
        match message {
            Message::Text(text) => {
                return match serde_json::from_str::<Value>(&text) {
                    Ok(v) if v.is_object() => Ok(v),
                    _ => Err(Stop::Reason(RpcReason::BadFrame)),
                }
            }
            Message::Binary(_) => return Err(Stop::Reason(RpcReason::BadFrame)),
            Message::Close(Some(close)) if unauthorized(&close.reason) => {
                return Err(Stop::Reason(RpcReason::Auth))
            }
            Message::Close(_) => return Err(Stop::Closed),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        }
    }
}

fn frame_type(frame: &Value) -> Result<&str, RpcReason> {
    frame["type"].as_str().ok_or(RpcReason::BadFrame)
}

fn ws_error(e: WsError) -> Stop {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Io(_) => Stop::Closed,
        _ => Stop::Reason(RpcReason::BadFrame),
    }
}

/// The gateway's close reason after a refused token: "unauthorized: gateway
/// token mismatch (...)" (dist/message-handler-*.mjs).
fn unauthorized(reason: &str) -> bool {
    reason.starts_with("unauthorized")
}

/// A refused `connect`: the token (`error.details.code` `AUTH_*`, e.g.
/// `AUTH_TOKEN_MISMATCH`, `AUTH_TOKEN_MISSING`, `AUTH_RATE_LIMITED`; or the
/// message "unauthorized: ..."), or anything else (protocol range, pairing,
/// startup not finished).
fn connect_refusal(error: &Value) -> RpcReason {
    let code = error["details"]["code"].as_str().unwrap_or("");
    let message = error["message"].as_str().unwrap_or("");
    if code.starts_with("AUTH_") || unauthorized(message) {
        RpcReason::Auth
    } else {
        RpcReason::Handshake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct() {
        let names: std::collections::HashSet<_> =
            RpcReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), RpcReason::ALL.len());
        for (i, r) in RpcReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn websocket_urls() {
        assert_eq!(
            RpcTarget::new("http://127.0.0.1:18789", "127.0.0.1", 18789).url,
            "ws://127.0.0.1:18789/"
        );
        let t = RpcTarget::new("https://gw.example:443", "gw.example", 443);
        assert_eq!(t.url, "wss://gw.example:443/");
        assert!(t.tls());
    }

    #[test]
    fn refusals() {
        // What the real gateway answers to a wrong token.
        let wrong = json!({"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch (provide gateway auth token)", "details": {"code": "AUTH_TOKEN_MISMATCH"}});
        assert_eq!(connect_refusal(&wrong), RpcReason::Auth);
        let pairing = json!({"code": "NOT_PAIRED", "message": "pairing required", "details": {"code": "PAIRING_REQUIRED"}});
        assert_eq!(connect_refusal(&pairing), RpcReason::Handshake);
        assert_eq!(connect_refusal(&Value::Null), RpcReason::Handshake);
    }
}
