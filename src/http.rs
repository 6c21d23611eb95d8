//! The HTTP side: `/metrics` (or `--web.telemetry-path`), a landing page, and
//! the exporter's own `/-/healthy` and `/-/ready`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;

use crate::collector::Health;
use crate::discovery::Target;
use crate::exporter::{Exporter, REVISION, VERSION};
use crate::exposition;
use crate::incident::live::{self, Live};

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub targets: Vec<Arc<Target>>,
    pub health: Vec<Arc<Health>>,
    pub telemetry_path: String,
    /// Gateways found while running, when `discovery:` is configured.
    pub discovered: Option<Arc<crate::sd::Discovered>>,
    /// The configured gateways' series and probe histories, for
    /// `/-/incident` (the `snapshot` command reads them there).
    pub live: Arc<dyn Live>,
}

impl AppState {
    pub fn new(exporter: &Exporter, telemetry_path: &str) -> AppState {
        AppState {
            registry: exporter.registry.clone(),
            targets: exporter.targets.clone(),
            health: exporter.health.clone(),
            telemetry_path: telemetry_path.to_string(),
            discovered: None,
            live: exporter.live.clone(),
        }
    }
}

/// Check a `--web.telemetry-path`: absolute, and not one of our own routes.
pub fn validate_telemetry_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path == "/" || path.starts_with("/-/") {
        return Err(format!(
            "--web.telemetry-path {path:?} must start with '/' and must not be '/' or under '/-/'"
        ));
    }
    Ok(())
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing))
        .route(&state.telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route(live::ENDPOINT, get(incident))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = exposition::negotiate(accept);
    let body = match &state.discovered {
        None => exposition::render(&state.registry, format),
        Some(d) => d.render(&state.registry, format),
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        )
            .into_response(),
    }
}

async fn ready(State(state): State<AppState>) -> Response {
    if Exporter::is_ready(&state.health) {
        (StatusCode::OK, "Ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: collectors have not finished their first sample\n",
        )
            .into_response()
    }
}

/// One configured gateway's series and last minute of probes, as JSON
/// ([`live::LiveView`]): what `openclaw-gateway-exporter snapshot` puts in
/// its folder. Behind the same web config (TLS, basic auth) as the metrics.
async fn incident(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(gateway) = q.get("gateway") else {
        return (StatusCode::BAD_REQUEST, "usage: /-/incident?gateway=NAME\n").into_response();
    };
    if !state.targets.iter().any(|t| &t.spec.name == gateway) {
        return (
            StatusCode::NOT_FOUND,
            format!("no configured gateway {gateway:?}\n"),
        )
            .into_response();
    }
    match state
        .live
        .view(gateway)
        .and_then(|v| serde_json::to_string(&v).map_err(|e| e.to_string()))
    {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let mut rows = String::new();
    let discovered = state.discovered.as_ref().map(|d| d.targets());
    for t in state.targets.iter().chain(discovered.iter().flatten()) {
        let found = match t.current() {
            Some(f) => format!("pid {} (found by {})", f.id.pid, f.method.as_str()),
            None => "not found".to_string(),
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&t.spec.name),
            escape(&t.spec.url),
            escape(&t.spec.state_dir.display().to_string()),
            escape(&found),
        ));
    }
    let path = escape(&state.telemetry_path);
    Html(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>OpenClaw Gateway Exporter</title></head>\n\
<body>\n<h1>OpenClaw Gateway Exporter</h1>\n<p>Version {VERSION} (revision {REVISION})</p>\n\
<h2>Watched gateways</h2>\n<table border=\"1\" cellpadding=\"4\">\n<tr><th>gateway</th><th>url</th><th>state dir</th><th>process</th></tr>\n{rows}</table>\n\
<ul>\n<li><a href=\"{path}\">Metrics</a></li>\n<li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n</ul>\n</body></html>\n"
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
