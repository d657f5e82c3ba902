//! `meshctl dashboard envoy|meshd`: a local URL for a proxy's admin page or meshd's debug
//! API in a cluster, as istioctl's `dashboard envoy` and `dashboard controlz` give.
//!
//! This module owns the command: it port-forwards (see [`super::forward`]) a local port to
//! the pod's admin port 15000 (or meshd's debug port 15014, through the meshd Service's
//! Ready pod), checks once that the far end answers HTTP (`/ready`), prints the URL on
//! stdout, opens a browser only when asked and stdout is a terminal, and runs until
//! Ctrl-C or SIGTERM.
//!
//! Exit codes: 0 after Ctrl-C; 64 bad usage (a target that is not POD or deploy/NAME);
//! 69 when the cluster, the pod or its port cannot be reached (a pod not Running, a port
//! refused: the reason is on stderr).

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};

use super::ClusterArgs;
use super::forward::{Forward, Transport, Upstream};
use crate::exit;
use crate::proxy_status::{UNAVAILABLE, http};

/// A proxy's admin port.
pub const ADMIN_PORT: u16 = 15000;
/// meshd's debug API port.
pub const DEBUG_PORT: u16 = 15014;

/// How long the first check through the forward may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// `dashboard --help` examples.
pub const EXAMPLES: &str = "\
Examples:
  # The Envoy admin page of a pod's sidecar (prints http://localhost:PORT)
  meshctl dashboard envoy productpage-v1-7d9c.bookinfo

  # Of a Ready pod of a Deployment, on a fixed port, without opening a browser
  meshctl dashboard envoy deploy/productpage-v1 -n bookinfo --port 15000 --browser=false

  # meshd's debug API (syncz, config_dump, registryz, configz, metrics)
  meshctl dashboard meshd

Runs until Ctrl-C. Exit codes: 0 stopped by Ctrl-C, 64 bad usage, 69 the pod or its
port could not be reached (the reason is printed).";

#[derive(Debug, Args)]
pub struct DashboardArgs {
    #[command(subcommand)]
    pub kind: DashboardKind,
}

#[derive(Debug, Subcommand)]
pub enum DashboardKind {
    /// A sidecar's Envoy admin page (port 15000) through a port-forward to its pod.
    Envoy {
        /// The pod: NAME, NAME.NAMESPACE, pod/NAME, or deploy/NAME (a Ready pod of it).
        #[arg(value_name = "POD|deploy/NAME")]
        target: String,
        /// The pod's namespace (default: NAME.NAMESPACE's, else the kubeconfig context's).
        #[arg(short, long)]
        namespace: Option<String>,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// meshd's debug API (port 15014) through a port-forward to a Ready pod behind the meshd
    /// Service.
    Meshd {
        /// meshd's namespace.
        #[arg(short = 'i', long = "istio-namespace", default_value = "istio-system")]
        istio_namespace: String,
        #[command(flatten)]
        local: LocalArgs,
    },
}

/// The local end, shared by every dashboard.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// The local address to listen on.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_address)]
    pub address: IpAddr,
    /// The local port (0: a free one).
    #[arg(short, long, default_value_t = 0)]
    pub port: u16,
    /// Open the URL in a browser (only when stdout is a terminal); --browser=false never does.
    #[arg(
        long,
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub browser: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

fn parse_address(text: &str) -> Result<IpAddr, String> {
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address (or localhost)"))
}

/// Runs the command; returns the exit code (after Ctrl-C, or at once on an error).
pub fn run(args: &DashboardArgs) -> u8 {
    let (upstream, port, local, path) = match &args.kind {
        DashboardKind::Envoy {
            target,
            namespace,
            local,
        } => {
            let default_ns = if namespace.is_some() {
                String::new()
            } else {
                match context_namespace(&local.cluster) {
                    Ok(ns) => ns,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return UNAVAILABLE;
                    }
                }
            };
            match Upstream::parse(target, namespace.as_deref(), &default_ns) {
                Ok(u) => (u, ADMIN_PORT, local, ""),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return exit::USAGE;
                }
            }
        }
        DashboardKind::Meshd {
            istio_namespace,
            local,
        } => (
            Upstream::Service {
                namespace: istio_namespace.clone(),
                name: "meshd".into(),
            },
            DEBUG_PORT,
            local,
            "/debug/syncz",
        ),
    };
    let bind = SocketAddr::new(local.address, local.port);
    let forward = match Forward::start(
        &local.cluster,
        &upstream,
        port,
        Transport::PortForward,
        bind,
    ) {
        Ok(f) => f,
        // The errors name the pod, Service or Deployment.
        Err(e) => {
            eprintln!("error: {e:#}");
            return UNAVAILABLE;
        }
    };
    // One request through the forward: a pod whose port is closed fails here, not later in
    // the browser. Any HTTP answer (a 503 from an Envoy still starting) shows the path works.
    let probe = format!("{}/ready", forward.url());
    match http::block_on(http::get(&probe, PROBE_TIMEOUT)) {
        Ok(Ok(resp)) => {
            if resp.status != 200 {
                eprintln!(
                    "note: {} answered /ready with {}",
                    forward.target, resp.status
                );
            }
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!(
                "error: cannot reach {} through the port-forward: {e:#}",
                forward.target
            );
            return UNAVAILABLE;
        }
    }
    let host = match local.address {
        IpAddr::V4(a) if a.is_loopback() => "localhost".to_owned(),
        IpAddr::V6(a) if a.is_loopback() => "localhost".to_owned(),
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let url = format!("http://{host}:{}{path}", forward.addr.port());
    println!("{url}");
    eprintln!(
        "Forwarding {} to {} (Ctrl-C to stop)",
        forward.addr, forward.target
    );
    if local.browser && std::io::stdout().is_terminal() {
        open_browser(&url);
    }
    match http::block_on(shutdown_signal()) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            UNAVAILABLE
        }
    }
}

/// The kubeconfig context's namespace (`default` when it names none).
fn context_namespace(cluster: &ClusterArgs) -> anyhow::Result<String> {
    http::block_on(async {
        let client = cluster.client().await?;
        anyhow::Ok(client.default_namespace().to_owned())
    })?
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("note: could not open a browser ({opener}: {e}); open {url} yourself");
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
