//! One exporter watching three gateways, as in the field report's deployment
//! (three gateways behind nginx): each is found, labelled and followed on its
//! own, and one going down or hanging leaves the other two alone.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use openclaw_gateway_exporter::names;

fn g(name: &str) -> [(&str, &str); 1] {
    [("gateway", name)]
}

#[test]
fn three_gateways_each_under_its_own_label() {
    let states: Vec<TempDir> = (0..3).map(|i| TempDir::new(&format!("gw{i}"))).collect();
    let fixtures: Vec<Fixture> = states.iter().map(|st| Fixture::start_in(st, &[])).collect();
    let mut yaml = String::from(
        "collect:\n  connections: 250ms\n  memory: 250ms\n  latency: 250ms\n  event_loop: 1s\nprobe:\n  timeout: 1s\n  readiness_interval: 250ms\ngateways:\n",
    );
    for (i, (fx, st)) in fixtures.iter().zip(&states).enumerate() {
        yaml += &format!(
            "  - name: gw-{}\n    url: http://127.0.0.1:{}\n    state_dir: {}\n",
            i + 1,
            fx.port,
            st.path().display()
        );
    }
    let conf = TempDir::new("conf");
    let file = conf.path().join("exporter.yml");
    std::fs::write(&file, yaml).unwrap();
    let exp = Harness::exporter()
        .args(&["--config.file", dir_str(&file)])
        .start();

    let names = ["gw-1", "gw-2", "gw-3"];
    for (name, fx) in names.iter().zip(&fixtures) {
        exp.wait_eq(
            &format!("{name} found by its lock file"),
            names::DISCOVERY_METHOD.name(),
            &[("gateway", name), ("method", "lock_file")],
            1.0,
        );
        exp.wait(&format!("{name}'s own RSS"), |s| {
            let rss = s.get(names::PROCESS_RESIDENT_MEMORY_BYTES.name(), &g(name))?;
            let truth = vm_rss(fx.pid()) as f64;
            ((rss - truth).abs() <= truth * 0.05).then_some(())
        });
        exp.wait_eq(&format!("{name} ready"), names::READY.name(), &g(name), 1.0);
    }
    // gw-2 hangs, gw-3 dies: gw-1 stays up and well.
    fixtures[1].proc.signal("STOP");
    fixtures[2].proc.signal("KILL");
    exp.wait_eq("gw-2 hung", names::HUNG.name(), &g("gw-2"), 1.0);
    exp.wait_eq("gw-3 down", names::PROCESS_UP.name(), &g("gw-3"), 0.0);
    let s = exp.scrape();
    assert_eq!(s.get(names::PROCESS_UP.name(), &g("gw-1")), Some(1.0));
    assert_eq!(s.get(names::HUNG.name(), &g("gw-1")), Some(0.0));
    assert_eq!(s.get(names::READY.name(), &g("gw-1")), Some(1.0));
    assert_eq!(
        s.get(
            names::PROBE_SUCCESS.name(),
            &[("gateway", "gw-1"), ("endpoint", "live")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(names::HUNG.name(), &g("gw-3")),
        Some(0.0),
        "down, not hung"
    );
    assert_eq!(s.get(names::PROCESS_UP.name(), &g("gw-2")), Some(1.0));
    fixtures[1].proc.signal("CONT");
}
