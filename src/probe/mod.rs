//! Active HTTP probes of a gateway, shared by the liveness (`/healthz`) and
//! readiness (`/readyz`) collectors, and the `openclaw_gateway_probe_*`
//! metrics both feed.
//!
//! A liveness probe opens a fresh connection every time (a pooled connection
//! would hide a listener that no longer accepts); the readiness poll, which
//! runs every second, keeps one connection to the gateway open between polls
//! ([`Prober::keep_alive`]), since liveness already proves the listener
//! accepts. Every probe ignores proxies, follows no redirect, never retries
//! (but sends once more on a fresh connection when a kept one turns out
//! closed before any answer), reads at most a capped body, and must finish
//! within the probe timeout. A failed probe has one of a few bounded
//! [`Reason`]s.
//!
//! Each collector holds a [`Probe`] per URL ([`Prober::target`]). An
//! `http://` gateway is probed by the small HTTP/1.1 client of `http1.rs`:
//! the request bytes built once, its own kept connection, one reused read
//! buffer, `httparse` for the head; at one poll a second per gateway, a
//! general client's URL parse, header maps and pool per request were most
//! of the probes' CPU. `https://` gateways (TLS) go through reqwest.

mod client;
pub mod history;
mod http1;
mod metrics;
pub mod rpc;
mod window;

pub use client::{Answer, ClientError, Failure, Probe, Prober, Reason};
pub use metrics::{Endpoint, Last, ProbeMetrics, ProbeStats, DURATION_BUCKETS};
pub use window::{within, ErrorWindow, MAX_WINDOW_EVENTS};
