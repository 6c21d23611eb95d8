//! Entry point of `cargo bench --bench exporter`. The bench, `benches/exporter.rs`,
//! reads /proc, so it is compiled on Linux only; elsewhere this says so.

#[cfg(target_os = "linux")]
#[path = "../exporter.rs"]
mod bench;

#[cfg(target_os = "linux")]
fn main() {
    bench::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the exporter bench reads /proc: it runs on Linux only");
}
