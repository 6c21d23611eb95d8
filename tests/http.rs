//! The HTTP surface: routes through `oneshot`, format negotiation, and the
//! exposition checked by promtool and a strict OpenMetrics parser.

mod common;

use std::process::Command;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use openclaw_gateway_exporter::config;
use openclaw_gateway_exporter::exporter::Exporter as Lib;
use openclaw_gateway_exporter::http::{app, AppState};
use openclaw_gateway_exporter::names;

use common::*;

/// An exporter for one gateway that does not exist, sampled once (outside the
/// test's runtime: `sample_once` blocks).
fn state() -> AppState {
    std::thread::spawn(sampled_state).join().unwrap()
}

fn sampled_state() -> AppState {
    let port = free_port();
    let gw = config::GatewayFile {
        name: Some("gw-a".into()),
        url: Some(format!("http://127.0.0.1:{port}")),
        state_dir: Some(std::env::temp_dir().join("ocgx-no-such-state-dir")),
        ..Default::default()
    };
    let cfg = config::build(config::Intervals::default(), vec![gw]).unwrap();
    let mut exporter = Lib::new(&cfg);
    exporter.sample_once();
    AppState::new(&exporter, "/metrics")
}

async fn get(state: AppState, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::builder().uri(path);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let res = app(state)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn landing_health_and_ready() {
    let st = state();
    let (status, _, body) = get(st.clone(), "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("gw-a") && body.contains("href=\"/metrics\""),
        "{body}"
    );
    assert!(body.contains(env!("CARGO_PKG_VERSION")));
    let (status, _, _) = get(st.clone(), "/-/healthy", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(st.clone(), "/-/ready", None).await;
    assert_eq!(status, StatusCode::OK, "ready after the first samples");
    let (status, _, _) = get(st, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn not_ready_before_the_first_sample() {
    let cfg = config::build(config::Intervals::default(), vec![]).unwrap();
    let exporter = Lib::new(&cfg);
    let (status, _, _) = get(AppState::new(&exporter, "/metrics"), "/-/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn negotiates_openmetrics_or_classic_text() {
    let st = state();
    let (_, ctype, text) = get(st.clone(), "/metrics", None).await;
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    assert!(
        text.contains(&format!("# TYPE {} counter", names::PROCESS_RESTARTS_TOTAL)),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}{{gateway=\"gw-a\"}} 0", names::PROCESS_UP)),
        "{text}"
    );
    assert!(text.contains(&format!("# TYPE {} gauge", names::EXPORTER_BUILD_INFO)));

    let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (_, ctype, om) = get(st, "/metrics", Some(prom)).await;
    assert!(
        ctype.starts_with("application/openmetrics-text; version=1.0.0"),
        "{ctype}"
    );
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains(&format!(
        "# TYPE {} counter",
        names::PROCESS_RESTARTS_TOTAL.base()
    )));
    assert!(om.contains(&format!(
        "# TYPE {} info",
        names::EXPORTER_BUILD_INFO.base()
    )));
    // Every family shown is in the catalogue, and its `# UNIT` line is the
    // catalogue's unit: present exactly when it has one.
    let mut shown = 0;
    for line in om.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (family, _) = line.split_once(' ').unwrap();
        let entry = names::ALL
            .iter()
            .find(|f| {
                let unit = f.base_unit().map(|u| format!("_{}", u.as_str()));
                format!("{}{}", f.base(), unit.unwrap_or_default()) == family
            })
            .unwrap_or_else(|| panic!("{family} is not in src/names.rs"));
        let unit_line = om
            .lines()
            .filter_map(|l| l.strip_prefix("# UNIT "))
            .find_map(|l| l.strip_prefix(family).and_then(|u| u.strip_prefix(' ')));
        assert_eq!(unit_line, entry.base_unit().map(|u| u.as_str()), "{family}");
        shown += 1;
    }
    assert!(shown > 10, "{om}");
}

/// Both formats of a real exporter watching a real (fixture) gateway pass
/// promtool and the strict OpenMetrics parser.
#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs promtool and python3, a Linux program here"
)]
fn exposition_passes_promtool_and_a_strict_openmetrics_parser() {
    let promtool = require_tool("promtool");
    let python = require_tool("python3");
    let (state, fx) = Fixture::with_state(&[]);
    let exp = Harness::exporter().fixture(&state, &fx).fast().start();
    exp.wait("memory sampled", |s| {
        s.get(&names::PROCESS_RESIDENT_MEMORY_BYTES, &[])
    });

    let (_, _, text) = http_get(&exp.addr, "/metrics", &[]).unwrap();
    let out = pipe(&promtool, &["check", "metrics"], &text);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
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
    assert!(om.ends_with("# EOF\n"));
    let checker = repo().join("tests/support/check_openmetrics.py");
    let out = pipe(&python, &[checker.to_str().unwrap()], &om);
    assert!(
        out.status.success(),
        "strict OpenMetrics parse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A malformed exposition is caught by the same checkers: they can fail.
    let bad = pipe(
        &python,
        &[checker.to_str().unwrap()],
        "# TYPE x counter\nx 1\n",
    );
    assert!(!bad.status.success());
    let bad = pipe(
        &promtool,
        &["check", "metrics"],
        "# TYPE x_seconds counter\nx_seconds 1\n",
    );
    assert!(!bad.status.success() || !bad.stdout.is_empty() || !bad.stderr.is_empty());
}

#[test]
fn config_errors_exit_2_with_file_and_line() {
    let dir = TempDir::new("cfg");
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "gateways:\n  - name: a\n    url: http://127.0.0.1:1\n    colour: blue\n",
    )
    .unwrap();
    let out = Command::new(EXPORTER)
        .args(["--config.file", path.to_str().unwrap(), "--config.check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:4:", path.display())) && err.contains("unknown field `colour`"),
        "{err}"
    );

    let good = dir.path().join("good.yml");
    std::fs::write(&good, "collect:\n  memory: 15s\ngateways:\n  - {name: a, url: 'http://127.0.0.1:18789', state_dir: /srv/a}\n  - {name: b, url: 'http://127.0.0.1:18790', state_dir: /srv/b}\n  - {name: c, url: 'http://127.0.0.1:18791', state_dir: /srv/c}\n").unwrap();
    let out = Command::new(EXPORTER)
        .args(["--config.file", good.to_str().unwrap(), "--config.check"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 gateway(s)"));

    // Flags for the single default gateway conflict with a file that lists gateways.
    let out = Command::new(EXPORTER)
        .args([
            "--config.file",
            good.to_str().unwrap(),
            "--gateway.url",
            "http://x:1",
            "--config.check",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(EXPORTER)
        .args(["--collect.memory.interval", "soon", "--config.check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(EXPORTER)
        .args(["--config.file", "/nonexistent/x.yml", "--config.check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
