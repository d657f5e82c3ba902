//! mesh-proxy: the meshctl sidecar proxy.
//!
//! Not built yet: the xDS client, data path and admin API arrive with the
//! "mesh-proxy" issue. Until then this binary says so and exits with status 2.

fn main() -> std::process::ExitCode {
    eprintln!(
        "mesh-proxy {}: the proxy is not built yet (see ARCHITECTURE.md, 'Status')",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
