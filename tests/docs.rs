//! The documents against the code: docs/metrics.md names exactly the metric
//! families a real scrape shows, with their types; every relative link in
//! README.md, DEVELOPERS.md and docs/*.md leads to a file, and to a heading
//! of it, that exists; README.md stays at most 20 KB.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

/// name -> type from the tables of docs/metrics.md whose header starts with
/// `| metric |`: the first cell is the family name in backticks, the second
/// its type (the text format's, so `_total` on counters).
fn documented() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("| metric |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1]
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|n| {
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .unwrap_or_else(|| panic!("docs/metrics.md: not a `metric_name` cell: {line}"));
        let kind = cells[2].split_whitespace().next().unwrap_or("").to_string();
        let dup = out.insert(name.to_string(), kind);
        assert!(dup.is_none(), "docs/metrics.md lists {name} twice");
    }
    assert!(out.len() > 40, "docs/metrics.md: only {} names", out.len());
    out
}

/// name -> type from the `# TYPE` lines of the text format 0.0.4, where a
/// counter's family name carries `_total`.
fn families(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').expect("# TYPE name type");
            (name.to_string(), kind.to_string())
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "runs node (the fixture gateway), a Linux program here"
)]
fn metrics_md_names_every_family_of_a_real_scrape_and_nothing_else() {
    let state = TempDir::new("docs");
    let log = state.path().join("openclaw-2026-11-29.log");
    let fx = Fixture::start_in(&state, &["--log-file", dir_str(&log)]);

    // A stale lock, for openclaw_gateway_lock_stale_age_seconds: the test's
    // own pid with a start time it never had, i.e. a pid reused since.
    let locks = state.path().join("tmp/openclaw-docs");
    std::fs::create_dir_all(&locks).unwrap();
    std::fs::write(
        locks.join("gateway.0000dead.lock"),
        format!(
            r#"{{"pid":{},"port":{},"startTime":1}}"#,
            std::process::id(),
            fx.port
        ),
    )
    .unwrap();

    // The same fixture once more as a discovered gateway, for the
    // discovery series.
    let targets = state.path().join("targets.yml");
    std::fs::write(
        &targets,
        format!(
            "- targets: ['127.0.0.1:{}']\n  labels: {{gateway: fx-sd, tenant: docs}}\n",
            fx.port
        ),
    )
    .unwrap();
    // A token, for the RPC probe's series.
    let token = state.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    // The gateway is listed in the file, with a remediation block (a dry
    // run that never confirms) for the watchdog's series.
    let conf = state.path().join("exporter.yml");
    std::fs::write(
        &conf,
        format!(
            "discovery:\n  file_sd:\n    files: ['{}']\nremediation:\n  state_file: {}\ngateways:\n  - name: fx\n    url: {}\n    state_dir: {}\n    log_path: {}\n    token_file: {}\n    remediation: {{method: {{kind: argv, argv: [\"true\"]}}, confirm: 1h, dry_run: true}}\n",
            targets.display(),
            state.path().join("remediation.json").display(),
            fx.url(),
            state.path().display(),
            log.display(),
            token.display(),
        ),
    )
    .unwrap();
    let exp = Harness::exporter()
        .args(&["--config.file", dir_str(&conf)])
        .fast()
        .every("logs", "200ms")
        .every("latency", "200ms")
        .start();
    // A failing readiness check, for openclaw_gateway_readiness_failing, and
    // log lines at two levels, one matching a field-report pattern.
    fx.cmd("ready?value=false&failing=startup-sidecars");
    fx.cmd("log?level=WARN&message=Event%20loop%20delay%20120ms%20exceeds%20threshold");
    fx.cmd("log?level=ERROR&message=boom");

    let docs = documented();
    let expected: BTreeSet<&str> = docs.keys().map(String::as_str).collect();
    let start = Instant::now();
    let (exported, body) = loop {
        let (status, _, body) = http_get(&exp.addr, "/metrics", &[]).unwrap();
        assert_eq!(status, 200, "{body}");
        let f = families(&body);
        let all_there = expected.iter().all(|n| f.contains_key(*n));
        if all_there || start.elapsed() > Duration::from_secs(30) {
            break (f, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    let undocumented: Vec<&String> = exported.keys().filter(|n| !docs.contains_key(*n)).collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in docs/metrics.md: {undocumented:?}"
    );
    let absent: Vec<&&str> = expected
        .iter()
        .filter(|n| !exported.contains_key(**n))
        .collect();
    assert!(
        absent.is_empty(),
        "in docs/metrics.md but not exported (after 30 s of a gateway with a stale lock, a failing check and log lines): {absent:?}\n{body}"
    );
    for (name, kind) in &exported {
        assert_eq!(
            &docs[name], kind,
            "docs/metrics.md gives {name} the type {:?}, the scrape {kind:?}",
            docs[name]
        );
    }
}

/// src/names.rs, the catalogue the code names its metrics by, lists exactly
/// the families of docs/metrics.md (and so of a real scrape, above), with
/// the same types.
#[test]
fn the_catalogue_of_names_is_what_metrics_md_documents() {
    let catalogue: BTreeMap<String, String> = openclaw_gateway_exporter::names::ALL
        .iter()
        .map(|f| (f.name().to_string(), f.text_type().to_string()))
        .collect();
    assert_eq!(catalogue, documented());
}

/// The documents whose links are checked.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![repo().join("README.md"), repo().join("DEVELOPERS.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    docs.sort();
    docs
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchors for the headings of a Markdown file: lower case, only
/// alphanumerics, `-` and `_` kept, spaces as `-`, repeats numbered.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut out = BTreeSet::new();
    for line in prose(text) {
        if !line.starts_with('#') {
            continue;
        }
        let Some(title) = line.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of `[text](target)` links, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading_that_exist() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        for target in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                doc.clone()
            } else {
                dir.join(path)
            };
            let name = doc.strip_prefix(repo()).unwrap().display().to_string();
            if !file.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if !anchor.is_empty() && file.extension().is_some_and(|x| x == "md") {
                let heads = anchors(&std::fs::read_to_string(&file).unwrap());
                if !heads.contains(anchor) {
                    broken.push(format!("{name}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 20, "only {checked} relative links found");
}

#[test]
fn readme_is_at_most_20_kb() {
    let size = std::fs::metadata(repo().join("README.md")).unwrap().len();
    assert!(size <= 20_000, "README.md is {size} bytes, over 20 KB");
}

#[test]
fn the_anchor_rules_match_github() {
    let a = anchors(
        "# Benchmarks\n## One gateway: `cargo bench --bench exporter`\n\
         ### Event-loop window: `stat=\"last\"` and `stat=\"peak\"`\n\
         ## Side by side: ours against node_exporter + process-exporter\n\
         ## The exporter's own process\n### Results\n### Results\n\
         ```sh\n# not a heading\n```\n",
    );
    let want = [
        "benchmarks",
        "one-gateway-cargo-bench---bench-exporter",
        "event-loop-window-statlast-and-statpeak",
        "side-by-side-ours-against-node_exporter--process-exporter",
        "the-exporters-own-process",
        "results",
        "results-1",
    ];
    assert_eq!(a, want.iter().map(|s| s.to_string()).collect());
}

#[test]
fn every_table_row_has_its_header_s_cells() {
    let mut bad = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo()).unwrap().display().to_string();
        let mut header: Option<usize> = None;
        for line in prose(&text) {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            // A `|` inside a code span does not split cells.
            let cells = line
                .split('`')
                .step_by(2)
                .map(|s| s.matches('|').count())
                .sum();
            match header {
                None => header = Some(cells),
                Some(n) if n != cells => bad.push(format!("{name}: {line}")),
                Some(_) => {}
            }
        }
    }
    assert!(
        bad.is_empty(),
        "rows with more or fewer cells than their header:\n{}",
        bad.join("\n")
    );
}
