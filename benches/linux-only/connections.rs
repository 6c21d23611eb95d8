//! Entry point of `cargo bench --bench connections`. The bench, `benches/connections.rs`,
//! reads /proc, so it is compiled on Linux only; elsewhere this says so.

#[cfg(target_os = "linux")]
#[path = "../connections.rs"]
mod bench;

#[cfg(target_os = "linux")]
fn main() {
    bench::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the connections bench reads /proc: it runs on Linux only");
}
