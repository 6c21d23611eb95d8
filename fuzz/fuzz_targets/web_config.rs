//! The `--web.config.file`: parsing and building (inline PEM certificates
//! and keys included) must return an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_gateway_exporter::web::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = config::parse("fuzz.yml", text) else {
        return;
    };
    // No file is read: relative names point into an empty folder.
    let _ = config::build(file, std::path::Path::new("/nonexistent"));
});
