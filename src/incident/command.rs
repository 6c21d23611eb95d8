//! `openclaw-gateway-exporter snapshot`: one snapshot now, with the same
//! config and flags as the exporter. The exporter's series and the last
//! minute of probes come from a running exporter's `/-/incident` endpoint
//! when one answers on the first `--web.listen-address` (plain HTTP,
//! loopback for a wildcard address); else from a one-shot sample taken by
//! this command, which the manifest then says.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::live::{self, Fixed, Live, LiveView};
use super::Snapshotter;
use crate::config::{Config, GatewaySpec};
use crate::exporter::Exporter;
use crate::platform::Platform;
use crate::probe::Prober;
use crate::process_view::ProcessView;

/// The most a running exporter's answer may hold.
const ANSWER_CAP: usize = 8 * 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// Take a `manual` snapshot of the gateway named `name` (the only one when
/// `None`); the folder, or why not.
pub fn run(
    config: &Config,
    name: Option<&str>,
    listen: Option<&str>,
    platform: Arc<dyn Platform>,
) -> Result<PathBuf, String> {
    run_for(config, name, listen, platform, "manual")
}

/// [`run`] with another `reason` than "manual": `recover` takes its
/// snapshot so.
pub fn run_for(
    config: &Config,
    name: Option<&str>,
    listen: Option<&str>,
    platform: Arc<dyn Platform>,
    reason: &str,
) -> Result<PathBuf, String> {
    let spec = pick(config, name)?;
    let url = listen.and_then(exporter_url).map(|base| {
        format!(
            "{base}{}?gateway={}",
            live::ENDPOINT,
            query_escape(&spec.name)
        )
    });
    let view = Arc::new(ProcessView::new(
        platform.clone(),
        ProcessView::DEFAULT_MAX_AGE,
    ));
    let fetched = match &url {
        Some(url) => fetch(url),
        None => Err("no --web.listen-address to ask".to_string()),
    };
    let live = match fetched {
        Ok(v) => Ok(v),
        Err(why) => {
            let one = Config {
                gateways: vec![spec.clone()],
                ..config.clone()
            };
            let mut exporter = Exporter::with_platform(&one, platform);
            exporter.sample_once();
            exporter.live.view(&spec.name).map(|v| LiveView {
                source: format!(
                    "a one-shot sample by the snapshot command, not a running exporter's history ({why})"
                ),
                ..v
            })
        }
    };
    let snapshotter = Snapshotter::new(config.incident.clone(), view, Some(Arc::new(Fixed(live))));
    snapshotter
        .take(&spec, reason)
        .map_err(|e| format!("gateway {:?}: {e}", spec.name))
}

fn pick(config: &Config, name: Option<&str>) -> Result<GatewaySpec, String> {
    let names = || {
        config
            .gateways
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => config
            .gateways
            .iter()
            .find(|g| g.name == n)
            .cloned()
            .ok_or_else(|| format!("no configured gateway {n:?}; configured: {}", names())),
        None => match config.gateways.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(
                "no configured gateway: name one with --gateway.* flags or the config file".into(),
            ),
            _ => Err(format!(
                "several gateways are configured; choose one with --gateway NAME: {}",
                names()
            )),
        },
    }
}

/// `http://<addr>` of a listen address; a wildcard is asked on loopback.
fn exporter_url(listen: &str) -> Option<String> {
    let addr = *crate::config::listen_addresses(listen).ok()?.first()?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip => ip,
    };
    Some(format!(
        "http://{}",
        std::net::SocketAddr::new(ip, addr.port())
    ))
}

fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn fetch(url: &str) -> Result<LiveView, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let prober = Prober::new(FETCH_TIMEOUT, false).map_err(|e| e.to_string())?;
    let answer = runtime
        .block_on(prober.get(url, None, ANSWER_CAP))
        .map_err(|f| format!("{url}: {}", f.reason.as_str()))?;
    if answer.status != 200 {
        return Err(format!("{url}: HTTP {}", answer.status));
    }
    let view: LiveView = serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: {e}"))?;
    Ok(LiveView {
        source: format!("the running exporter at {url}"),
        ..view
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_urls() {
        assert_eq!(
            exporter_url(":9789").as_deref(),
            Some("http://127.0.0.1:9789")
        );
        assert_eq!(
            exporter_url("10.0.0.2:9100").as_deref(),
            Some("http://10.0.0.2:9100")
        );
        assert_eq!(
            exporter_url("[::1]:9100").as_deref(),
            Some("http://[::1]:9100")
        );
        assert_eq!(exporter_url("nonsense"), None);
        assert_eq!(query_escape("a b&c"), "a+b%26c");
    }
}
