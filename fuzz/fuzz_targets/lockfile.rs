//! The gateway's lock files are written by another process and may be
//! anything: `lockfile::parse` must return an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_gateway_exporter::lockfile;

fuzz_target!(|data: &[u8]| {
    if let Ok(lock) = lockfile::parse(data) {
        // What it accepts is a usable pid.
        assert!(lock.pid > 0 && lock.pid <= i32::MAX as u32);
    }
});
