//! The report's "recent incidents" and "recent remediations": a gateway's
//! newest incident snapshot folders ([`crate::incident`]) and the
//! watchdog's newest remediations of it, from its state file
//! ([`crate::remediation::state`]).

use std::path::Path;

use serde::Serialize;

use crate::incident::{file_safe, retention};
use crate::remediation::state::{Entry, State};

/// How many of each the report lists.
pub const RECENT: usize = 5;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Remediation {
    /// RFC 3339, UTC.
    pub time: String,
    pub action: String,
    pub cause: String,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The newest snapshot folders of `gateway` in `dir`, newest first.
pub fn incidents(dir: &Path, gateway: &str) -> Vec<String> {
    // `TIME-<gateway>-<reason>`; a reason has no `-`, a gateway may.
    let name = file_safe(gateway);
    let of_gateway = |folder: &str| {
        folder
            .get(21..)
            .and_then(|rest| rest.rsplit_once('-'))
            .is_some_and(|(g, _)| g == name)
    };
    retention::list(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(of_gateway)
        })
        .take(RECENT)
        .map(|p| p.display().to_string())
        .collect()
}

/// The newest remediations of `gateway` in the state file, newest first;
/// or why the file could not be read.
pub fn remediations(state_file: &Path, gateway: &str) -> Result<Vec<Remediation>, String> {
    let state = State::load(state_file).map_err(|e| e.to_string())?;
    let Some(g) = state.gateways.get(gateway) else {
        return Ok(Vec::new());
    };
    Ok(g.history.iter().rev().take(RECENT).map(row).collect())
}

fn row(e: &Entry) -> Remediation {
    let time = std::time::UNIX_EPOCH + crate::remediation::state::from_unix(e.at);
    Remediation {
        time: crate::incident::rfc3339(time),
        action: e.action.clone(),
        cause: e.cause.clone(),
        result: e.result.clone(),
        recovery_seconds: e.recovery_seconds,
        snapshot: e.snapshot.as_ref().map(|p| p.display().to_string()),
        detail: e.detail.clone(),
    }
}

/// The printed lines, two-space indented as the report's.
pub fn print(incidents: &[String], remediations: &Result<Vec<Remediation>, String>) -> String {
    let mut out = String::new();
    if !incidents.is_empty() {
        out.push_str("  recent incidents:\n");
        for i in incidents {
            out.push_str(&format!("    {i}\n"));
        }
    }
    match remediations {
        Ok(list) if list.is_empty() => {}
        Ok(list) => {
            out.push_str("  recent remediations:\n");
            for r in list {
                let took = r
                    .recovery_seconds
                    .map(|s| format!(", ready {s:.0} s after the hang"))
                    .unwrap_or_default();
                let detail = match r.detail.is_empty() {
                    true => String::new(),
                    false => format!(": {}", r.detail),
                };
                out.push_str(&format!(
                    "    {} {} ({}) {}{took}{detail}\n",
                    r.time, r.action, r.cause, r.result
                ));
            }
        }
        Err(e) => out.push_str(&format!("  recent remediations: unknown: {e}\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_gateways_own_newest_first() {
        let dir = std::env::temp_dir().join(format!("ocgx-diag-rem-{}", std::process::id()));
        let inc = dir.join("incidents");
        for name in [
            "20261129T100000.000Z-gw-hung",
            "20261129T110000.000Z-gw-watchdog",
            "20261129T120000.000Z-other-hung",
            "20261129T130000.000Z-gw-2-hung",
            "not-a-snapshot",
        ] {
            std::fs::create_dir_all(inc.join(name)).unwrap();
        }
        let got = incidents(&inc, "gw");
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].ends_with("20261129T110000.000Z-gw-watchdog"));
        assert!(incidents(&dir.join("none"), "gw").is_empty());

        let file = dir.join("remediation.json");
        assert_eq!(remediations(&file, "gw"), Ok(Vec::new()));
        let mut s = State::new();
        for (at, result) in [(1.0e9, "success"), (1.0e9 + 60.0, "failed")] {
            s.gateway("gw").record(Entry {
                at,
                action: "restart".into(),
                cause: "hung".into(),
                result: result.into(),
                recovery_seconds: (result == "success").then_some(75.2),
                snapshot: None,
                detail: String::new(),
            });
        }
        s.save(&file).unwrap();
        let got = remediations(&file, "gw").unwrap();
        assert_eq!(got[0].result, "failed");
        assert_eq!(got[1].time, "2001-09-09T01:46:40.000Z");
        let text = print(&[], &Ok(got));
        assert!(
            text.contains("restart (hung) success, ready 75 s after the hang"),
            "{text}"
        );
        std::fs::write(&file, "{").unwrap();
        let err = remediations(&file, "gw");
        assert!(print(&[], &err).contains("recent remediations: unknown:"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
