//! meshd: the meshctl control plane.
//!
//! Thin binary: flags, tracing, [`mesh_controlplane::Meshd`], an exit code (0 after a
//! clean shutdown on SIGTERM/SIGINT, 1 when meshd cannot start or fails, 2 for bad usage).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mesh_controlplane::server::{self, DEFAULT_DEBUG_ADDRESS, DEFAULT_XDS_ADDRESS};

/// mimalloc rather than glibc's allocator: measured with `xds-scale` (BENCHMARKS.md), glibc
/// kept hundreds of MiB of freed memory after each push.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mesh_controlplane::{MeshTranslator, Meshd, Options};

#[derive(Parser)]
#[command(name = "meshd", version, about = "The meshctl control plane")]
struct Cli {
    /// Directory of Istio and Kubernetes YAML to serve (read recursively, watched).
    #[arg(long)]
    config_dir: PathBuf,
    /// Where ADS (gRPC, plaintext) listens.
    #[arg(long, default_value = DEFAULT_XDS_ADDRESS)]
    xds_address: SocketAddr,
    /// Where the debug API and /metrics listen.
    #[arg(long, default_value = DEFAULT_DEBUG_ADDRESS)]
    debug_address: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = Options::new(cli.config_dir, cli.xds_address, cli.debug_address);
    let result = runtime.block_on(async {
        let meshd = Meshd::bind(opts, Arc::new(MeshTranslator)).await?;
        meshd.run(server::signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshd: {e}");
            ExitCode::FAILURE
        }
    }
}
