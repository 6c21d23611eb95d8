//! Alerting end to end: a webhook receiver that records what Alertmanager
//! sends, Alertmanager with the example config, Prometheus's configuration
//! and instant queries. Used by tests/e2e_alerts.rs (the fixture) and
//! tests/real_gateway_e2e.rs (the real gateway).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_yaml::Value;

use super::*;

/// One notification as Alertmanager sent it.
#[derive(Debug, Clone)]
pub struct Note {
    pub receiver: String,
    pub alertname: String,
    pub gateway: String,
    pub status: String,
    pub at: Instant,
}

/// A webhook receiver: records every alert of every notification.
pub struct Receiver {
    pub addr: String,
    pub notes: Arc<Mutex<Vec<Note>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let sink = notes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    continue;
                };
                let mut notes = sink.lock().unwrap();
                for a in v["alerts"].as_array().into_iter().flatten() {
                    let note = Note {
                        receiver: path.trim_start_matches('/').to_string(),
                        alertname: a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                        gateway: a["labels"]["gateway"].as_str().unwrap_or("").to_string(),
                        status: a["status"].as_str().unwrap_or("").to_string(),
                        at: Instant::now(),
                    };
                    eprintln!(
                        "[receiver] {} {} {}",
                        note.receiver, note.status, note.alertname
                    );
                    notes.push(note);
                }
            }
        });
        Receiver { addr, notes }
    }

    pub fn since(&self, t: Instant) -> Vec<Note> {
        self.notes
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.at >= t)
            .cloned()
            .collect()
    }

    /// Wait until `receiver` got `alertname` with `status` after `t`; when.
    pub fn wait(
        &self,
        t: Instant,
        receiver: &str,
        alertname: &str,
        status: &str,
        timeout: Duration,
    ) -> Instant {
        wait_for(
            timeout,
            &format!("{receiver} to get {alertname} {status}"),
            || {
                self.since(t)
                    .into_iter()
                    .find(|n| {
                        n.receiver == receiver && n.alertname == alertname && n.status == status
                    })
                    .map(|n| n.at)
            },
        )
    }

    /// Alerts that paged (firing on the pager receiver) after `t`.
    pub fn pages_since(&self, t: Instant) -> Vec<String> {
        let mut v: Vec<String> = self
            .since(t)
            .into_iter()
            .filter(|n| n.receiver == "pager" && n.status == "firing")
            .map(|n| n.alertname)
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The example Alertmanager config, its receivers pointed at this test,
/// its waits shortened unless `as_shipped`.
pub fn alertmanager_config(receiver: &str, as_shipped: bool) -> String {
    let text = std::fs::read_to_string(repo().join("alerts/alertmanager.example.yml")).unwrap();
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    for r in doc["receivers"].as_sequence_mut().unwrap() {
        let name = r["name"].as_str().unwrap().to_string();
        let path = if name.contains("pager") {
            "pager"
        } else {
            "tickets"
        };
        r["webhook_configs"][0]["url"] = Value::from(format!("http://{receiver}/{path}"));
    }
    if as_shipped {
        return serde_yaml::to_string(&doc).unwrap();
    }
    let fast = |route: &mut Value| {
        for (k, v) in [
            ("group_wait", "1s"),
            ("group_interval", "1s"),
            ("repeat_interval", "1h"),
        ] {
            if route.get(k).is_some() || k != "repeat_interval" {
                route[k] = Value::from(v);
            }
        }
    };
    fast(&mut doc["route"]);
    for r in doc["route"]["routes"].as_sequence_mut().unwrap() {
        fast(r);
    }
    serde_yaml::to_string(&doc).unwrap()
}

/// Alertmanager on a free port, delivering to `receiver` with
/// [`alertmanager_config`], its files in `dir`; returns it and its port.
pub fn start_alertmanager(
    alertmanager: &Path,
    dir: &Path,
    receiver: &str,
    as_shipped: bool,
) -> (Proc, u16) {
    let am_port = free_port();
    std::fs::write(
        dir.join("am.yml"),
        alertmanager_config(receiver, as_shipped),
    )
    .unwrap();
    let am = spawn_logged(
        "alertmanager",
        Command::new(alertmanager)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address="),
    );
    (am, am_port)
}

/// A prometheus.yml: scrape and evaluate every `interval`, the rules in
/// `rules`, alerts to the Alertmanager on `am_port`, the exporters at
/// `targets` (host:port) as job openclaw-gateway-exporter.
pub fn prometheus_config(interval: &str, rules: &Path, am_port: u16, targets: &[&str]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\nrule_files: [{rules}]\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\nscrape_configs:\n  - job_name: openclaw-gateway-exporter\n    static_configs:\n      - targets: [{targets}]\n",
        rules = rules.display(),
        targets = targets.join(", "),
    )
}

/// `query` percent-encoded for a URL.
pub fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every result of an instant query: its labels and value; `None` when
/// Prometheus does not answer it.
pub fn prom_query(prom: &str, query: &str) -> Option<Vec<(serde_json::Value, f64)>> {
    let (_, _, body) =
        http_get(prom, &format!("/api/v1/query?query={}", encode(query)), &[]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"]
        .as_array()?
        .iter()
        .map(|r| Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?)))
        .collect()
}

/// The value of an instant query's first result; `None` when it has none.
pub fn prom_value(prom: &str, query: &str) -> Option<f64> {
    prom_query(prom, query)?.first().map(|r| r.1)
}
