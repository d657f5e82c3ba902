//! meshd: the meshctl control plane.
//!
//! Thin binary: flags, tracing, [`mesh_controlplane::Meshd`], an exit code (0 after a
//! clean shutdown on SIGTERM/SIGINT, 1 when meshd cannot start or fails, 2 for bad usage).
//! `meshd ca rotate-root` stages a next root for a running meshd (0 staged, 1 refused).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mesh_controlplane::server::{self, DEFAULT_DEBUG_ADDRESS, DEFAULT_XDS_ADDRESS};

/// mimalloc rather than glibc's allocator: measured with `xds-scale` (BENCHMARKS.md), glibc
/// kept hundreds of MiB of freed memory after each push.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mesh_controlplane::ca::CaOptions;
use mesh_controlplane::{MeshTranslator, Meshd, Options};

#[derive(Parser)]
#[command(
    name = "meshd",
    version,
    about = "The meshctl control plane",
    args_conflicts_with_subcommands = true,
    after_help = ROTATION_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory of Istio and Kubernetes YAML to serve (read recursively, watched).
    #[arg(long, conflicts_with = "kube")]
    config_dir: Option<PathBuf>,
    /// Serve what a Kubernetes cluster holds (kubeconfig, else the pod's service account).
    /// The default in a pod when no --config-dir is given. Replicas elect a leader on the
    /// Lease meshd-leader in $POD_NAMESPACE (holder $POD_NAME, else the host name); only
    /// the leader writes to the cluster (caBundle, root ConfigMaps, the CA Secret).
    #[arg(long)]
    kube: bool,
    /// Where the admission webhooks (/validate, /inject) listen (default with --kube:
    /// 0.0.0.0:15017; otherwise not served): over TLS with a certificate from the CA for
    /// meshd's Service names in $POD_NAMESPACE (default istio-system) when meshd has a CA,
    /// else plain HTTP.
    #[arg(long)]
    webhook_address: Option<SocketAddr>,
    /// Where ADS (gRPC, plaintext) listens.
    #[arg(long, default_value = DEFAULT_XDS_ADDRESS)]
    xds_address: SocketAddr,
    /// Where the debug API and /metrics listen.
    #[arg(long, default_value = DEFAULT_DEBUG_ADDRESS)]
    debug_address: SocketAddr,
    /// Run the CA with this directory: the root (created on first start unless
    /// --ca-cert/--ca-key), the trust bundle `root-cert.pem` and the caller `token` that
    /// sidecars read (`mesh-proxy run --ca-dir`). Without it there is no CA and sidecars
    /// talk plaintext; with --kube it defaults to $TMPDIR/meshd-ca (the webhooks need TLS,
    /// and meshd writes the root into the webhook configurations' caBundle), the root is
    /// Secret cacerts or istio-ca-secret in $POD_NAMESPACE (created by the leader when
    /// neither exists, so a new pod keeps it), and callers authenticate with service-account
    /// tokens (TokenReview, audience istio-ca). In both modes a renewal presenting a valid
    /// workload certificate of the mesh needs no token and gets that identity only.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Where the CA (Istio's CreateCertificate over mutual TLS) listens [default: the xDS
    /// address's IP, port 15012].
    #[arg(long, requires = "ca_dir")]
    ca_address: Option<SocketAddr>,
    /// A root certificate (PEM) to sign with, instead of meshd's own.
    #[arg(long, requires_all = ["ca_key", "ca_dir"])]
    ca_cert: Option<PathBuf>,
    /// The key (PEM) of --ca-cert.
    #[arg(long, requires = "ca_cert")]
    ca_key: Option<PathBuf>,
    /// Lifetime of workload certificates (e.g. 24h, 30m, 90s).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    workload_cert_ttl: Duration,
    /// After a root rotation, how long the old root stays trusted once meshd signs with
    /// the new one [default: --workload-cert-ttl, so every certificate the old root signed
    /// has expired by then]. `meshd ca rotate-root --overlap` overrides it per rotation.
    #[arg(long, requires = "ca_dir", value_parser = parse_duration)]
    root_overlap: Option<Duration>,
}

const ROTATION_HELP: &str = "Root rotation: `meshd ca rotate-root --ca-dir DIR` stages a new root \
(or --root-cert/--root-key) in the CA directory. The meshd serving that directory adds it to \
the trust bundle (root-cert.pem), signs with it 5 s later (sidecars then ask for new \
certificates at once), and drops the old root after the overlap (--root-overlap).";

#[derive(Subcommand)]
enum Command {
    /// Maintain the CA directory.
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(Subcommand)]
enum CaCommand {
    /// Stage a next root for the meshd serving DIR: it trusts it beside the current root,
    /// signs with it 5 s later, and drops the old root after the overlap.
    RotateRoot {
        /// The CA directory of the meshd to rotate (its --ca-dir).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The next root's certificate (PEM) [default: a new self-signed root].
        #[arg(long, requires = "root_key")]
        root_cert: Option<PathBuf>,
        /// The key (PEM) of --root-cert.
        #[arg(long, requires = "root_cert")]
        root_key: Option<PathBuf>,
        /// How long the old root stays trusted once the new one signs [default: meshd's
        /// --root-overlap].
        #[arg(long, value_parser = parse_duration)]
        overlap: Option<Duration>,
    },
}

fn rotate_root(command: CaCommand) -> ExitCode {
    let CaCommand::RotateRoot {
        ca_dir,
        root_cert,
        root_key,
        overlap,
    } = command;
    match mesh_controlplane::ca_rotation::stage(&ca_dir, root_cert.zip(root_key), overlap) {
        Ok(staged) => {
            println!(
                "staged root {} as {}; the meshd serving {} trusts it within a second and \
                 signs with it {:?} later",
                staged.serial,
                staged.cert.display(),
                ca_dir.display(),
                mesh_controlplane::ca_rotation::TRUST_PROPAGATION
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshd ca rotate-root: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `90s`, `30m`, `24h`, `2d` or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 24h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    if secs == 0 {
        return Err("the lifetime must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Ca(command)) = cli.command {
        return rotate_root(command);
    }
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
    // In a pod with no directory given, the cluster is the source.
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let use_kube = cli.kube || (cli.config_dir.is_none() && in_cluster);
    let Some(config_dir) = cli.config_dir.or(use_kube.then(PathBuf::new)) else {
        eprintln!("meshd: give --config-dir DIR, or --kube to serve a Kubernetes cluster");
        return ExitCode::from(2);
    };
    let mut opts = Options::new(config_dir, cli.xds_address, cli.debug_address);
    opts.webhook_address = cli.webhook_address.or(use_kube.then(|| {
        SocketAddr::from((
            [0, 0, 0, 0],
            mesh_controlplane::webhook::DEFAULT_WEBHOOK_PORT,
        ))
    }));
    if use_kube {
        let client = runtime.block_on(async {
            let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
            kube::Client::try_from(config).map_err(|e| e.to_string())
        });
        match client {
            Ok(c) => opts.kube = Some(mesh_controlplane::kube_source::KubeClient(c)),
            Err(e) => {
                eprintln!("meshd: --kube: no kubeconfig and not in a cluster: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let ca_dir = cli
        .ca_dir
        .clone()
        .or_else(|| use_kube.then(|| std::env::temp_dir().join("meshd-ca")));
    if let Some(dir) = ca_dir {
        let mut ca = CaOptions::new(dir);
        ca.root = cli.ca_cert.clone().zip(cli.ca_key.clone());
        ca.workload_ttl = cli.workload_cert_ttl;
        ca.root_overlap = cli.root_overlap;
        let addr = cli.ca_address.unwrap_or_else(|| {
            let port = if cli.xds_address.port() == 0 {
                0
            } else {
                15012
            };
            SocketAddr::new(cli.xds_address.ip(), port)
        });
        opts.ca = Some((ca, addr));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_root_is_a_subcommand_of_its_own() {
        let cli = Cli::try_parse_from([
            "meshd",
            "ca",
            "rotate-root",
            "--ca-dir",
            "/ca",
            "--overlap",
            "10m",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Ca(CaCommand::RotateRoot { overlap: Some(d), root_cert: None, .. }))
                if d == Duration::from_secs(600)
        ));
        // Serving flags and the subcommand do not mix; a supplied root needs its key.
        for bad in [
            &[
                "meshd",
                "--config-dir",
                "/c",
                "ca",
                "rotate-root",
                "--ca-dir",
                "/ca",
            ][..],
            &[
                "meshd",
                "ca",
                "rotate-root",
                "--ca-dir",
                "/ca",
                "--root-cert",
                "/r.pem",
            ],
            &["meshd", "--config-dir", "/c", "--root-overlap", "1h"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let serve = Cli::try_parse_from([
            "meshd",
            "--config-dir",
            "/c",
            "--ca-dir",
            "/ca",
            "--root-overlap",
            "1h",
        ])
        .unwrap();
        assert_eq!(serve.root_overlap, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn lifetimes_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in ["", "0s", "h", "1w", "1.5h", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
