//! The `fleet` source: the cells `openclaw fleet list --json` lists, one
//! gateway each.
//!
//! What the package (openclaw 2026.9.6) defines, in
//! `node_modules/openclaw/`:
//! - `docs/cli/fleet.md`, "fleet list": cells in tenant-ID order with
//!   `tenant`, `state`, `port` (the loopback host port mapped to the cell's
//!   gateway), `image` and `created`; rows stay listed when Docker or Podman
//!   is unavailable, with `state` `unknown`. "Tenant IDs": they match
//!   `^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`.
//! - `dist/commands.runtime-C4tYq_s0.mjs`, `runFleetListCommand`: `--json`
//!   writes `{ cells }` with `JSON.stringify(value, undefined, 2)`; each
//!   cell is `{ tenant, state, port: record.hostPort, image, created }`
//!   (`fleetService.list()`), `created` an ISO time, `state` Docker's or
//!   Podman's `State.Status`, or `missing` / `unknown`.
//! - `docs/gateway/multi-tenant-hosting.md`, "Architecture": the runtime
//!   publishes the cell's port 18789 only on `127.0.0.1:<port>`; its state
//!   is `<state-dir>/fleet/cells/<tenant>/`, mounted at `/home/node/.openclaw`.
//!
//! Every cell listed is watched, whatever its state: a stopped cell is a
//! gateway that is down. A cell leaves when the list no longer has it.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Found;
use crate::config::{self, Fleet, GatewayFile};

/// At most this much of the command's output is read.
pub const MAX_OUTPUT_BYTES: u64 = 4 << 20;

#[derive(Debug, Deserialize)]
struct List {
    cells: Vec<Cell>,
}

/// One cell as listed. Fields the exporter does not use (`image`,
/// `created`) are allowed and ignored.
#[derive(Debug, Deserialize)]
struct Cell {
    tenant: String,
    port: u16,
    #[serde(default)]
    state: Option<String>,
}

/// A tenant ID as `docs/cli/fleet.md` defines it.
pub fn valid_tenant(t: &str) -> bool {
    let b = t.as_bytes();
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=40).contains(&b.len())
        && b.first().is_some_and(inner)
        && b.last().is_some_and(inner)
        && b.iter().all(|c| inner(c) || *c == b'-')
}

/// The gateways of the cells in `json`, the output of `fleet list --json`:
/// probed on the published port, their process found by the port their
/// gateway listens on inside the container, `gateway_port`.
/// Anything malformed fails the whole list: a cell dropped by mistake would
/// lose its series.
pub fn parse(json: &str, state_dir: &Path, gateway_port: u16) -> Result<Vec<Found>, String> {
    let list: List = serde_json::from_str(json).map_err(|e| format!("not a fleet list: {e}"))?;
    let mut out: Vec<Found> = Vec::with_capacity(list.cells.len());
    for cell in list.cells {
        if !valid_tenant(&cell.tenant) {
            return Err(format!("invalid tenant id {:?}", cell.tenant));
        }
        if cell.port == 0 {
            return Err(format!("tenant {}: port 0", cell.tenant));
        }
        if out.iter().any(|f| f.spec.name == cell.tenant) {
            return Err(format!("tenant {} listed twice", cell.tenant));
        }
        let g = GatewayFile {
            name: Some(cell.tenant.clone()),
            url: Some(format!("http://127.0.0.1:{}", cell.port)),
            listen_port: Some(gateway_port),
            state_dir: Some(state_dir.join("fleet/cells").join(&cell.tenant)),
            // Its log is inside the container (/tmp/openclaw), which Fleet
            // does not mount: the cell's state dir holds none.
            log_path: Some(state_dir.join("fleet/cells").join(&cell.tenant)),
            ..Default::default()
        };
        let spec = config::gateway_spec(g).map_err(|e| e.to_string())?;
        tracing::trace!(tenant = cell.tenant, state = cell.state, "fleet cell");
        out.push(Found {
            spec,
            tenant: Some(cell.tenant),
        });
    }
    Ok(out)
}

/// Run the fleet command and parse what it prints.
pub fn list(fleet: &Fleet) -> Result<Vec<Found>, String> {
    let out = run(&fleet.command, fleet.timeout)?;
    parse(&out, &fleet.state_dir, fleet.gateway_port)
}

/// Run `command`; its standard output, if it exits 0 within `timeout`.
/// Otherwise the reason, with the first line of its standard error.
pub fn run(command: &[String], timeout: Duration) -> Result<String, String> {
    let (program, args) = command.split_first().ok_or("no command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // Each pipe is drained by a thread of its own, so that a command that
    // writes much to one never blocks on it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::Builder::new()
            .name("fleet-output".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut bytes = Vec::new();
                if let Some(p) = pipe {
                    let _ = p.take(MAX_OUTPUT_BYTES + 1).read_to_end(&mut bytes);
                }
                bytes
            })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {timeout:?}"));
            }
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    };
    let join = |t: std::io::Result<std::thread::JoinHandle<Vec<u8>>>| {
        t.ok().and_then(|t| t.join().ok()).unwrap_or_default()
    };
    let (out, err) = (join(stdout), join(stderr));
    if !status.success() {
        // The first lines of its standard error: the CLI says "failed",
        // then why.
        let err = String::from_utf8_lossy(&err);
        let mut lines = err.lines().map(str::trim).filter(|l| !l.is_empty());
        let why: Vec<&str> = lines.by_ref().take(2).collect();
        let why: String = why.join(" ").chars().take(300).collect();
        return Err(format!("{program} failed ({status}): {why}"));
    }
    if out.len() as u64 > MAX_OUTPUT_BYTES {
        return Err(format!(
            "{program} printed more than {MAX_OUTPUT_BYTES} bytes"
        ));
    }
    String::from_utf8(out).map_err(|_| format!("{program} printed bytes that are not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENTED: &str = r#"{
  "cells": [
    {
      "tenant": "acme",
      "state": "running",
      "port": 19100,
      "image": "ghcr.io/openclaw/openclaw:latest",
      "created": "2026-11-29T10:00:00.000Z"
    },
    {
      "tenant": "b-2",
      "state": "exited",
      "port": 19101,
      "image": "ghcr.io/openclaw/openclaw:latest",
      "created": "2026-11-29T10:05:00.000Z"
    }
  ]
}"#;

    #[test]
    fn the_documented_shape() {
        let cells = parse(DOCUMENTED, Path::new("/srv/oc"), 18789).unwrap();
        assert_eq!(cells.len(), 2);
        let acme = &cells[0];
        assert_eq!(acme.tenant.as_deref(), Some("acme"));
        assert_eq!(acme.spec.name, "acme");
        assert_eq!(acme.spec.url, "http://127.0.0.1:19100");
        // Probed on the published port, found by the container's port.
        assert_eq!(acme.spec.port, 18789);
        assert_eq!(acme.spec.state_dir, Path::new("/srv/oc/fleet/cells/acme"));
        assert_eq!(cells[1].spec.url, "http://127.0.0.1:19101");
        assert!(parse(r#"{"cells": []}"#, Path::new("/"), 18789)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        for bad in [
            "",
            "null",
            "[]",
            "{}",
            "No fleet cells.",
            r#"{"cells": null}"#,
            r#"{"cells": [{"tenant": "acme"}]}"#,
            r#"{"cells": [{"tenant": "acme", "port": "19100"}]}"#,
            r#"{"cells": [{"tenant": "acme", "port": 0}]}"#,
            r#"{"cells": [{"tenant": "acme", "port": 70000}]}"#,
            r#"{"cells": [{"tenant": "acme", "port": -1}]}"#,
            r#"{"cells": [{"tenant": "../acme", "port": 19100}]}"#,
            r#"{"cells": [{"tenant": "Acme", "port": 19100}]}"#,
            r#"{"cells": [{"tenant": "", "port": 19100}]}"#,
            r#"{"cells": [{"tenant": "acme-", "port": 19100}]}"#,
            r#"{"cells": [{"tenant": 7, "port": 19100}]}"#,
            r#"{"cells": [{"tenant": "a", "port": 1}, {"tenant": "a", "port": 2}]}"#,
            r#"{"cells": [{"tenant": "acme", "port": 19100}"#,
            "\u{0}\u{ffff}",
        ] {
            assert!(parse(bad, Path::new("/s"), 18789).is_err(), "{bad:?}");
        }
        let long = format!(
            r#"{{"cells": [{{"tenant": "{}", "port": 1}}]}}"#,
            "a".repeat(41)
        );
        assert!(parse(&long, Path::new("/s"), 18789).is_err());
    }

    #[test]
    fn tenant_ids() {
        for ok in ["a", "acme", "a-b", "0", "a1-2b", &"x".repeat(40)] {
            assert!(valid_tenant(ok), "{ok:?}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "a/b",
            " a",
            &"x".repeat(41),
        ] {
            assert!(!valid_tenant(bad), "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_command_fails_clearly() {
        let sh = |script: &str| {
            run(
                &["sh".into(), "-c".into(), script.into()],
                Duration::from_secs(5),
            )
        };
        assert_eq!(sh("printf ok").unwrap(), "ok");
        let err = sh("echo 'Docker is not running' >&2; exit 3").unwrap_err();
        assert!(
            err.contains("exit status: 3") && err.contains("Docker is not running"),
            "{err}"
        );
        let err = run(
            &["sh".into(), "-c".into(), "sleep 5".into()],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.contains("did not finish"), "{err}");
        let err = run(&["/nonexistent/openclaw".into()], Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
        assert!(sh("printf '\\377'").unwrap_err().contains("not UTF-8"));
    }
}
