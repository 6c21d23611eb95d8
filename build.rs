//! Records the git revision for `openclaw_gateway_exporter_build_info`.
fn main() {
    let revision = std::env::var("OCGX_REVISION").ok().unwrap_or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    });
    println!("cargo:rustc-env=OCGX_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=OCGX_REVISION");
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
