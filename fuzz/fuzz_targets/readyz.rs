//! A /readyz body comes from the network and may be anything:
//! `collector::readiness::parse` must return `None` or a value whose figures
//! are finite and not negative, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_gateway_exporter::collector::readiness;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = readiness::parse(data) {
        let el = r.event_loop;
        for v in [el.delay_p99_ms, el.delay_max_ms, el.utilization, el.cpu_core_ratio, el.interval_ms, r.uptime_ms]
            .into_iter()
            .flatten()
        {
            assert!(v.is_finite() && v >= 0.0, "{v}");
        }
    }
});
