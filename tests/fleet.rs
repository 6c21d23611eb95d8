//! Discovery while running, against real processes: fixture gateways as the
//! cells of a fleet (no Docker or Podman here can run a real cell), each as
//! a cell's gateway runs, on port 18789 in a network namespace of its own,
//! published on a loopback port of the host (`common::Published`), listed
//! by the real `openclaw fleet list --json` over a real Fleet registry, and
//! by a stand-in `openclaw` on PATH that prints the JSON shape the package's
//! docs/cli/fleet.md and dist/commands.runtime-*.mjs define, changed by the
//! test; and as the targets of file_sd files.
//! Gateways found are watched and labelled, gateways gone lose their series
//! and their threads, and a broken registry or file is a counted error that
//! keeps the gateways it gave last.
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use openclaw_gateway_exporter::names;

fn g(name: &str) -> [(&str, &str); 1] {
    [("gateway", name)]
}

/// Write `text` to `path` at once (a rename), as an orchestrator should.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `openclaw fleet list --json` as the package writes it (JSON.stringify
/// with 2 spaces), for cells `(tenant, port)`.
fn fleet_json(cells: &[(&str, u16)]) -> String {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|(tenant, port)| {
            serde_json::json!({
                "tenant": tenant,
                "state": "running",
                "port": port,
                "image": "ghcr.io/openclaw/openclaw:latest",
                "created": "2026-11-29T10:00:00.000Z",
            })
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "cells": cells })).unwrap()
}

/// Whether any series of the scrape has `gateway="name"`.
fn has_gateway(s: &Scrape, name: &str) -> bool {
    s.0.iter()
        .any(|x| x.labels.iter().any(|(k, v)| k == "gateway" && v == name))
}

/// How many threads `pid` has.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |t| t.count())
}

/// The exporter's threads whose name ends with `-suffix`.
fn threads_of(pid: u32, suffix: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c.ends_with(&format!("-{suffix}")))
        .collect()
}

const FAST: &str = "collect:\n  connections: 250ms\n  memory: 250ms\n  latency: 250ms\n  event_loop: 1s\n  logs: 250ms\nprobe:\n  timeout: 1s\n  readiness_interval: 250ms\n";

/// The log lines that contain `needle`.
fn logged(exp: &Exporter, needle: &str) -> usize {
    exp.logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

#[test]
fn fleet_cells_are_watched_by_tenant_and_leave_with_their_series() {
    let root = TempDir::new("fleet");
    let state = root.path().join("oc");
    let cell = |tenant: &str| {
        let dir = state.join("fleet/cells").join(tenant);
        std::fs::create_dir_all(&dir).unwrap();
        Published::start(&dir, &[])
    };
    let (acme, beta) = (cell("acme"), cell("beta"));

    // The stand-in `openclaw`: prints list.json, or fails as the CLI does
    // when its registry cannot be read, while `broken` exists.
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let list = root.path().join("list.json");
    let broken = root.path().join("broken");
    let script = bin.join("openclaw");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$*\" = 'fleet list --json' ] || {{ echo \"unexpected: $*\" >&2; exit 64; }}\nif [ -e '{b}' ]; then\n  code=$(cat '{b}.exit')\n  if [ \"$code\" = 0 ]; then cat '{b}'; else cat '{b}' >&2; fi\n  exit \"$code\"\nfi\nexec cat '{l}'\n",
            b = broken.display(),
            l = list.display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", dir_str(&script)])
        .status()
        .unwrap();
    write(&list, &fleet_json(&[("acme", acme.port)]));

    let conf = root.path().join("exporter.yml");
    std::fs::write(
        &conf,
        format!(
            "{FAST}discovery:\n  fleet:\n    interval: 1s\n    state_dir: {}\n",
            state.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(EXPORTER);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    cmd.env("PATH", path);
    let exp = Harness::exporter_via(cmd)
        .args(&["--config.file", dir_str(&conf)])
        .start();
    // The exporter's threads with acme alone, once it is sampled and probed.
    exp.wait_eq("acme ready", names::READY.name(), &g("acme"), 1.0);
    let alone = threads(exp.proc.pid());
    write(
        &list,
        &fleet_json(&[("acme", acme.port), ("beta", beta.port)]),
    );

    // Each cell: labelled with its tenant, its process found by the lock
    // files in its state dir, its RSS the /proc one, ready.
    for (tenant, fx) in [("acme", &acme), ("beta", &beta)] {
        exp.wait_eq(
            &format!("{tenant} listed"),
            names::DISCOVERED_INFO.name(),
            &[("gateway", tenant), ("source", "fleet"), ("tenant", tenant)],
            1.0,
        );
        exp.wait_eq(
            &format!("{tenant} found by its lock file"),
            names::DISCOVERY_METHOD.name(),
            &[("gateway", tenant), ("method", "lock_file")],
            1.0,
        );
        exp.wait(&format!("{tenant}'s own RSS"), |s| {
            let rss = s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), &g(tenant))?;
            let truth = vm_rss(fx.pid()) as f64;
            ((rss - truth).abs() <= truth * 0.05).then_some(())
        });
        exp.wait_eq(
            &format!("{tenant} ready"),
            names::READY.name(),
            &g(tenant),
            1.0,
        );
        // Both cells listen on 18789, each in its own namespace: each is one
        // instance, its listener counted there, not hung.
        exp.wait_eq(
            &format!("{tenant} listens in its namespace"),
            names::TCP_CONNECTIONS.name(),
            &[
                ("gateway", tenant),
                ("direction", "inbound"),
                ("state", "listen"),
            ],
            1.0,
        );
        let s = exp.scrape();
        for (family, want) in [
            (names::INSTANCES.name(), 1.0),
            (names::HUNG.name(), 0.0),
            (names::PORT_OWNER_MISMATCH.name(), 0.0),
        ] {
            assert_eq!(s.get(family, &g(tenant)), Some(want), "{family}: {}", s.1);
        }
    }
    let s = exp.scrape();
    let fleet = [("source", "fleet")];
    assert_eq!(s.get(names::DISCOVERY_TARGETS.name(), &fleet), Some(2.0));
    assert_eq!(
        s.get(names::DISCOVERY_ERRORS_TOTAL.name(), &fleet),
        Some(0.0)
    );
    assert_eq!(s.get(names::DISCOVERY_FAILING.name(), &fleet), Some(0.0));
    // Discovery on and no gateway configured: no default gateway.
    assert!(!has_gateway(&s, "127.0.0.1:18789"), "{}", s.1);
    // One family per name, whichever exporter the series come from.
    let types: Vec<&str> = s.1.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let unique: std::collections::HashSet<&&str> = types.iter().collect();
    assert_eq!(types.len(), unique.len(), "{}", s.1);
    // Both formats, merged from three registries, pass promtool and the
    // strict OpenMetrics parser.
    let out = pipe(&require_tool("promtool"), &["check", "metrics"], &s.1);
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, om) = http_get(
        &exp.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .unwrap();
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1);
    let checker = repo().join("tests/support/check_openmetrics.py");
    let out = pipe(&require_tool("python3"), &[dir_str(&checker)], &om);
    assert!(
        out.status.success(),
        "strict OpenMetrics parse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // beta is removed from the fleet: every series of it leaves, and so do
    // its collectors' threads; acme stays.
    write(&list, &fleet_json(&[("acme", acme.port)]));
    exp.wait("beta's series gone", |s| {
        (!has_gateway(s, "beta")).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), &g("acme")), Some(1.0));
    assert_eq!(s.get(names::DISCOVERY_TARGETS.name(), &fleet), Some(1.0));
    // Its collectors stop: it is probed no more, no thread of it is left,
    // and the exporter has no more threads than with acme alone.
    let probes = |fx: &Fixture| fx.cmd("stats")["probes"].clone();
    std::thread::sleep(Duration::from_secs(1));
    let last = probes(&beta);
    assert!(last["live"].as_u64().unwrap() > 0, "{last}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(probes(&beta), last, "beta is still probed");
    wait_for(Duration::from_secs(30), "beta's threads ended", || {
        let ended = threads_of(exp.proc.pid(), "beta").is_empty();
        (ended && threads(exp.proc.pid()) <= alone).then_some(())
    });
    exp.wait_log("discovered gateway removed");

    // The registry breaks (the CLI fails, then prints what is no list):
    // counted on every listing, logged once, acme kept and still watched.
    write(&broken.with_extension("exit"), "1\n");
    write(&broken, "Error: cannot open the fleet registry\n");
    exp.wait("two failed listings", |s| {
        (s.get(names::DISCOVERY_ERRORS_TOTAL.name(), &fleet)? >= 2.0).then_some(())
    });
    write(&broken.with_extension("exit"), "0\n");
    write(
        &broken,
        "{\"cells\": [{\"tenant\": \"Not A Tenant\", \"port\": 1}]}\n",
    );
    let before = exp
        .scrape()
        .get(names::DISCOVERY_ERRORS_TOTAL.name(), &fleet)
        .unwrap();
    exp.wait("two more failed listings", |s| {
        (s.get(names::DISCOVERY_ERRORS_TOTAL.name(), &fleet)? >= before + 2.0).then_some(())
    });
    let s = exp.scrape();
    assert_eq!(s.get(names::DISCOVERY_FAILING.name(), &fleet), Some(1.0));
    assert_eq!(s.get(names::DISCOVERY_TARGETS.name(), &fleet), Some(1.0));
    assert_eq!(
        s.get(names::DISCOVERED_INFO.name(), &[("gateway", "acme")]),
        Some(1.0)
    );
    assert_eq!(logged(&exp, "discovery source unreadable"), 1);
    let line = exp.wait_log("discovery source unreadable");
    assert!(line.contains("cannot open the fleet registry"), "{line}");
    let t0 = s
        .get(
            names::COLLECTOR_LAST_SAMPLE_TIMESTAMP_SECONDS.name(),
            &[("gateway", "acme"), ("collector", "process")],
        )
        .unwrap();
    exp.wait("acme still sampled", |s| {
        let t = s.get(
            names::COLLECTOR_LAST_SAMPLE_TIMESTAMP_SECONDS.name(),
            &[("gateway", "acme"), ("collector", "process")],
        )?;
        (t > t0).then_some(())
    });

    // The registry mends, with a new cell: it is watched, the source is
    // well again, logged once.
    let gamma = cell("gamma");
    write(
        &list,
        &fleet_json(&[("acme", acme.port), ("gamma", gamma.port)]),
    );
    std::fs::remove_file(&broken).unwrap();
    exp.wait_eq("gamma ready", names::READY.name(), &g("gamma"), 1.0);
    exp.wait_eq("fleet well", names::DISCOVERY_FAILING.name(), &fleet, 0.0);
    exp.wait_log("discovery source readable again");
    assert_eq!(logged(&exp, "discovery source unreadable"), 1);
    let s = exp.scrape();
    assert_eq!(s.get(names::DISCOVERY_TARGETS.name(), &fleet), Some(2.0));
    assert!(!has_gateway(&s, "beta"));

    // acme's gateway dies (its container stops): acme is down, and not
    // taken for gamma's gateway, which has the same title and listens on
    // the same port, in its own namespace.
    drop(acme);
    exp.wait_eq("acme down", names::PROCESS_UP.name(), &g("acme"), 0.0);
    // Instances come from the lifecycle sample, which may tick after the
    // identity watch saw the exit.
    exp.wait_eq("acme no instance", names::INSTANCES.name(), &g("acme"), 0.0);
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), &g("gamma")), Some(1.0));
    assert_eq!(s.get(names::INSTANCES.name(), &g("gamma")), Some(1.0));
}

#[test]
fn file_sd_targets_are_picked_up_when_the_files_change() {
    let root = TempDir::new("file-sd");
    let (sx, x) = Fixture::with_state(&[]);
    let (sy, y) = Fixture::with_state(&[]);
    let yml = root.path().join("targets.yml");
    let json = root.path().join("targets.json");
    write(
        &yml,
        &format!(
            "- targets: ['127.0.0.1:{}']\n  labels: {{gateway: x, tenant: t1, state_dir: '{}'}}\n",
            x.port,
            sx.path().display()
        ),
    );
    write(&json, "[]");
    let conf = root.path().join("exporter.yml");
    std::fs::write(
        &conf,
        format!(
            "{FAST}discovery:\n  file_sd:\n    files: ['{}', '{}']\n    refresh_interval: 200ms\n",
            yml.display(),
            json.display()
        ),
    )
    .unwrap();
    let exp = Harness::exporter()
        .args(&["--config.file", dir_str(&conf)])
        .start();
    let sd = [("source", "file_sd")];

    exp.wait_eq(
        "x listed with its tenant",
        names::DISCOVERED_INFO.name(),
        &[("gateway", "x"), ("source", "file_sd"), ("tenant", "t1")],
        1.0,
    );
    exp.wait_eq(
        "x found by its lock file",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "x"), ("method", "lock_file")],
        1.0,
    );
    exp.wait_eq("x ready", names::READY.name(), &g("x"), 1.0);

    // y is added to the JSON file: picked up.
    write(
        &json,
        &format!(
            r#"[{{"targets": ["http://127.0.0.1:{}"], "labels": {{"gateway": "y", "state_dir": "{}"}}}}]"#,
            y.port,
            sy.path().display()
        ),
    );
    exp.wait_eq(
        "y found by its lock file",
        names::DISCOVERY_METHOD.name(),
        &[("gateway", "y"), ("method", "lock_file")],
        1.0,
    );
    exp.wait("y's own RSS", |s| {
        let rss = s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), &g("y"))?;
        let truth = vm_rss(y.pid()) as f64;
        ((rss - truth).abs() <= truth * 0.05).then_some(())
    });
    exp.wait_eq("two targets", names::DISCOVERY_TARGETS.name(), &sd, 2.0);
    let (status, _, page) = http_get(&exp.addr, "/", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("<td>x</td>") && page.contains("<td>y</td>"),
        "{page}"
    );

    // x is removed from the YAML file: its series leave.
    write(&yml, "[]\n");
    exp.wait("x's series gone", |s| (!has_gateway(s, "x")).then_some(()));
    assert_eq!(exp.scrape().get(names::READY.name(), &g("y")), Some(1.0));

    // The JSON file breaks: one error for this version of it, y kept.
    write(
        &json,
        "[{\"targets\": [\"127.0.0.1:1\"], \"labels\": {\"job\": \"x\"}}]",
    );
    exp.wait_eq("one error", names::DISCOVERY_ERRORS_TOTAL.name(), &sd, 1.0);
    exp.wait_eq("failing", names::DISCOVERY_FAILING.name(), &sd, 1.0);
    let line = exp.wait_log("discovery source unreadable");
    assert!(line.contains("unknown label"), "{line}");
    std::thread::sleep(Duration::from_secs(1));
    let s = exp.scrape();
    assert_eq!(
        s.get(names::DISCOVERY_ERRORS_TOTAL.name(), &sd),
        Some(1.0),
        "an unchanged broken file is counted once"
    );
    assert_eq!(s.get(names::READY.name(), &g("y")), Some(1.0));
    assert_eq!(s.get(names::DISCOVERY_TARGETS.name(), &sd), Some(1.0));

    // A file that goes missing is an error too, with the same gateways kept.
    std::fs::remove_file(&json).unwrap();
    exp.wait_eq("two errors", names::DISCOVERY_ERRORS_TOTAL.name(), &sd, 2.0);
    assert_eq!(exp.scrape().get(names::READY.name(), &g("y")), Some(1.0));
    drop((sx, sy));
}

/// The real `openclaw fleet list --json` (the installed package, run by
/// tests/support/openclaw-cli.sh) over a real Fleet registry, the
/// `fleet_cells` table of its state database, whose rows this test writes as
/// `fleet create` would: no container runtime here can create a cell, so the
/// rows point at fixture gateways, and the CLI lists them with `state`
/// `unknown` (docs/cli/fleet.md: rows stay listed when Docker or Podman is
/// unavailable).
#[test]
fn the_real_fleet_list_over_a_real_registry() {
    let python = require_tool("python3");
    let home = TempDir::new("fleet-real");
    let state = home.path().join(".openclaw");
    let real_dir = std::env::var("OPENCLAW_REAL_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/openclaw-gateway-exporter/openclaw-2026.9.6",
            std::env::var("HOME").unwrap()
        )
    });
    let command = [
        "env".to_string(),
        format!("OPENCLAW_REAL_DIR={real_dir}"),
        format!("HOME={}", home.path().display()),
        format!("OPENCLAW_STATE_DIR={}", state.display()),
        "bash".to_string(),
        repo()
            .join("tests/support/openclaw-cli.sh")
            .display()
            .to_string(),
        "fleet".to_string(),
        "list".to_string(),
        "--json".to_string(),
    ];
    // The state database made, as the CLI makes it: by a `fleet create`
    // that finds no container runtime (no PATH) and so creates no cell.
    let out = Command::new(require_tool("bash"))
        .arg(repo().join("tests/support/openclaw-cli.sh"))
        .args(["fleet", "create", "none", "--no-start"])
        .env("OPENCLAW_REAL_DIR", &real_dir)
        .env("HOME", home.path())
        .env("OPENCLAW_STATE_DIR", &state)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    // An empty fleet.
    let out = Command::new(&command[0])
        .args(&command[1..])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openclaw fleet list (is it installed? tests/support/install-openclaw.sh): {}",
        text(&out)
    );
    let empty: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(empty, serde_json::json!({ "cells": [] }));
    let db = state.join("state/openclaw.sqlite");
    let sql = |statement: &str| {
        let out = Command::new(&python)
            .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
            .args([dir_str(&db), statement])
            .output()
            .unwrap();
        assert!(out.status.success(), "{statement}: {}", text(&out));
    };
    let cell = |tenant: &str| {
        let dir = state.join("fleet/cells").join(tenant);
        std::fs::create_dir_all(&dir).unwrap();
        let fx = Published::start(&dir, &[]);
        sql(&format!(
            "INSERT INTO fleet_cells VALUES ('{tenant}', 1764410000000, 'ghcr.io/openclaw/openclaw:latest', 'docker', {}, 'openclaw-cell-{tenant}', '{}')",
            fx.port,
            dir.display()
        ));
        fx
    };
    let (_acme, _beta) = (cell("acme"), cell("beta"));

    let yaml_list = command
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let conf = home.path().join("exporter.yml");
    std::fs::write(
        &conf,
        format!(
            "{FAST}discovery:\n  fleet:\n    command: [{yaml_list}]\n    interval: 15s\n    timeout: 15s\n    state_dir: '{}'\n",
            state.display()
        ),
    )
    .unwrap();
    let exp = Harness::exporter()
        .args(&["--config.file", dir_str(&conf)])
        .start();
    let long = |what: &str, f: &mut dyn FnMut(&Scrape) -> bool| {
        wait_for(Duration::from_secs(90), what, || {
            f(&exp.scrape()).then_some(())
        })
    };
    for tenant in ["acme", "beta"] {
        long(&format!("{tenant} found by its lock file"), &mut |s| {
            s.get(
                names::DISCOVERY_METHOD.name(),
                &[("gateway", tenant), ("method", "lock_file")],
            ) == Some(1.0)
        });
        exp.wait_eq(
            &format!("{tenant} ready"),
            names::READY.name(),
            &g(tenant),
            1.0,
        );
        assert_eq!(
            exp.scrape().get(
                names::DISCOVERED_INFO.name(),
                &[("gateway", tenant), ("tenant", tenant)]
            ),
            Some(1.0)
        );
    }

    // `fleet rm beta`: its row goes; so do its series.
    sql("DELETE FROM fleet_cells WHERE tenant_id = 'beta'");
    long("beta's series gone", &mut |s| !has_gateway(s, "beta"));
    assert_eq!(exp.scrape().get(names::READY.name(), &g("acme")), Some(1.0));

    // A registry that is no database: the CLI fails, counted, acme kept.
    let saved = std::fs::read(&db).unwrap();
    std::fs::write(&db, "not a database ".repeat(20)).unwrap();
    let fleet = [("source", "fleet")];
    long("a failed listing", &mut |s| {
        s.get(names::DISCOVERY_ERRORS_TOTAL.name(), &fleet) >= Some(1.0)
    });
    let line = exp.wait_log("discovery source unreadable");
    assert!(line.contains("not a database"), "{line}");
    let s = exp.scrape();
    assert_eq!(s.get(names::DISCOVERY_FAILING.name(), &fleet), Some(1.0));
    assert_eq!(s.get(names::READY.name(), &g("acme")), Some(1.0));
    std::fs::write(&db, saved).unwrap();
    long("the registry read again", &mut |s| {
        s.get(names::DISCOVERY_FAILING.name(), &fleet) == Some(0.0)
    });
    assert_eq!(exp.scrape().get(names::READY.name(), &g("acme")), Some(1.0));
}
