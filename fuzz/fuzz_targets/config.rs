//! The YAML config file: `config::parse_file` and the validation after it
//! must return an error, never panic, and never take long (the bracket
//! nesting guard keeps libyaml linear).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_gateway_exporter::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = config::parse_file("fuzz.yml", text) else {
        return;
    };
    let _ = config::discovery(file.discovery);
    let _ = config::build_with_patterns(file.collect, file.gateways, &file.log_patterns);
});
