//! meshd: the meshctl control plane.
//!
//! Not built yet: the xDS server, config sources and registry arrive with the
//! "xDS translation and the meshd control plane" issue. Until then this binary
//! says so and exits with status 2 rather than pretending to serve anything.

fn main() -> std::process::ExitCode {
    eprintln!(
        "meshd {}: the control plane is not built yet (see ARCHITECTURE.md, 'Status')",
        env!("CARGO_PKG_VERSION")
    );
    std::process::ExitCode::from(2)
}
