//! mesh-proxy: the meshctl sidecar proxy.
//!
//! Thin binary: flags, tracing, the library, an exit code. `bootstrap` prints the Envoy
//! bootstrap for a workload; `run` (`--engine native`, the default) runs mesh-proxy's own
//! data plane; `run --engine envoy` runs Envoy under supervision; `init` installs (or with
//! `--dry-run` prints) the pod's traffic-capture iptables rules.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mesh_core::xds::ProxyKind;
use mesh_proxy::agent::{self, AgentOptions};
use mesh_proxy::bootstrap::{self, BootstrapOptions, Workload, XdsAddress};
use mesh_proxy::init;

#[derive(Parser)]
#[command(name = "mesh-proxy", version, about = "The meshctl sidecar proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Envoy bootstrap JSON for a workload.
    Bootstrap(Identity),
    /// Run the proxy for a workload.
    Run(RunArgs),
    /// Install the iptables rules that send a pod's traffic through the sidecar (the init
    /// container's step; needs NET_ADMIN). `--dry-run` prints them instead.
    Init(InitArgs),
}

// Aliases, so clap parses one comma-separated value rather than a repeated flag.
type CidrList = Vec<init::Cidr>;
type PortList = Vec<u16>;

#[derive(Args)]
struct InitArgs {
    /// Print the rules (iptables-restore input) instead of applying them.
    #[arg(long)]
    dry_run: bool,
    /// The outbound listener's port.
    #[arg(long, default_value_t = init::DEFAULT_PROXY_PORT)]
    proxy_port: u16,
    /// The inbound listener's port.
    #[arg(long, default_value_t = init::DEFAULT_INBOUND_PORT)]
    inbound_port: u16,
    /// The uid the proxy runs as (its traffic is not captured).
    #[arg(long, default_value_t = init::DEFAULT_PROXY_UID)]
    proxy_uid: u32,
    /// The gid the proxy runs as (default: the uid).
    #[arg(long)]
    proxy_gid: Option<u32>,
    /// Outbound IPv4 ranges to capture: `*` or CIDRs, comma-separated (empty: none).
    #[arg(long, default_value = "*", value_parser = init::Ranges::parse)]
    include_outbound_ip_ranges: init::Ranges,
    /// Outbound IPv4 ranges never captured, comma-separated CIDRs.
    #[arg(long, default_value = "", value_parser = init::parse_cidr_list)]
    exclude_outbound_ip_ranges: CidrList,
    /// Inbound ports to capture: `*` or ports, comma-separated (empty: none).
    #[arg(long, default_value = "*", value_parser = init::Ports::parse)]
    include_inbound_ports: init::Ports,
    /// Inbound ports never captured, comma-separated.
    #[arg(long, default_value = "", value_parser = init::parse_port_list)]
    exclude_inbound_ports: PortList,
    /// Outbound destination ports never captured, comma-separated.
    #[arg(long, default_value = "", value_parser = init::parse_port_list)]
    exclude_outbound_ports: PortList,
    /// Interfaces whose incoming traffic is treated as outbound (KubeVirt), comma-separated.
    #[arg(long, default_value = "", value_parser = parse_interfaces)]
    reroute_virtual_interfaces: Interfaces,
    /// Only check that the capture rules are installed (by a CNI plugin); exit 1 if not.
    #[arg(long)]
    check: bool,
    /// The iptables-restore program.
    #[arg(long, default_value = "iptables-restore")]
    iptables_restore: PathBuf,
}

type Interfaces = Vec<String>;

fn parse_interfaces(s: &str) -> Result<Interfaces, String> {
    Ok(s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect())
}

#[derive(Args, Clone)]
struct Identity {
    /// meshd's xDS address: IP:PORT, or HOST:PORT (resolved on every connection attempt;
    /// Envoy gets a STRICT_DNS cluster).
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds_address: XdsAddress,
    /// The workload, as NAMESPACE/NAME.
    #[arg(long)]
    workload: Workload,
    /// The workload's IP (a loopback address means local mode).
    #[arg(long)]
    ip: IpAddr,
    /// The admin port, on the workload's IP.
    #[arg(long, default_value_t = bootstrap::DEFAULT_ADMIN_PORT)]
    admin_port: u16,
    /// The workload's service account.
    #[arg(long, default_value = "default")]
    service_account: String,
    /// A workload label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = bootstrap::parse_label)]
    labels: Vec<(String, String)>,
    /// A sidecar, or a standalone gateway (node type `router`).
    #[arg(long, value_enum, default_value_t = Kind::Sidecar)]
    proxy_type: Kind,
}

#[derive(Args)]
struct RunArgs {
    /// The data plane: mesh-proxy's own (native) or Envoy (agent mode).
    #[arg(long, value_enum, default_value_t = Engine::Native)]
    engine: Engine,
    #[command(flatten)]
    identity: Identity,
    /// The Envoy binary (default: $MESH_ENVOY_BIN, else `envoy` on PATH).
    #[arg(long)]
    envoy_bin: Option<PathBuf>,
    /// Envoy's log level (with --engine envoy).
    #[arg(long, default_value = "warning")]
    log_level: String,
    /// The health port (`/healthz/ready`), on the workload's IP (native engine).
    #[arg(long, default_value_t = mesh_proxy::native::HEALTH_PORT)]
    health_port: u16,
    /// No access log line per request on stdout (native engine).
    #[arg(long)]
    no_access_log: bool,
    #[command(flatten)]
    ca: CaArgs,
}

#[derive(Args, Clone)]
#[group(id = "ca_source", multiple = false)]
struct CaSource {
    /// meshd's CA directory (trust bundle `root-cert.pem`, `token`): with it the proxy gets
    /// a workload certificate and takes part in mTLS (local mode).
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Kubernetes mode: the trust bundle meshd's CA is verified with (Istio's injector
    /// mounts ConfigMap `istio-ca-root-cert` at /var/run/secrets/istio/root-cert.pem);
    /// with it the proxy gets a workload certificate, authenticated by its
    /// service-account token (--ca-token-file).
    #[arg(long)]
    ca_root_cert: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct CaArgs {
    #[command(flatten)]
    source: CaSource,
    /// With --ca-root-cert: the projected service-account token (audience istio-ca),
    /// re-read on every certificate request (the kubelet rotates it).
    #[arg(long, default_value = mesh_proxy::identity::KUBE_TOKEN_FILE, requires = "ca_root_cert")]
    ca_token_file: PathBuf,
    /// meshd's CA address, IP:PORT or HOST:PORT [default: the xDS address's host, port
    /// 15012; a name is resolved once at start-up; with --ca-root-cert meshd's
    /// certificate must carry it].
    #[arg(long, requires = "ca_source")]
    ca_address: Option<XdsAddress>,
    /// The mesh's trust domain.
    #[arg(long, default_value = mesh_core::identity::DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// Certificate lifetime to ask for, in seconds [default: the CA's].
    #[arg(long, requires = "ca_source")]
    cert_ttl_secs: Option<u64>,
    /// Renew the workload certificate with the certificate in force alone (mutual TLS to
    /// meshd's CA), not sending the token, which is then needed only for the first
    /// certificate and after one expired [default: the certificate and the token, which a
    /// meshd without client-certificate authentication needs].
    #[arg(long, requires = "ca_source")]
    ca_renew_with_certificate_only: bool,
}

impl CaArgs {
    fn options(&self, xds: &XdsAddress) -> Result<Option<agent::CaClientOptions>, String> {
        let ca = self
            .ca_address
            .clone()
            .unwrap_or_else(|| xds.with_port(15012));
        let resolve = || -> Result<std::net::SocketAddr, String> {
            ca.resolve_blocking()
                .map_err(|e| {
                    format!("cannot resolve the CA address {ca} (or give --ca-address): {e}")
                })?
                .into_iter()
                .next()
                .ok_or_else(|| format!("{ca} has no addresses"))
        };
        let mut client = match (&self.source.ca_dir, &self.source.ca_root_cert) {
            (Some(dir), _) => mesh_proxy::identity::CaClientOptions::in_dir(resolve()?, dir),
            // In a cluster meshd is dialled through its Service and known by that name.
            (None, Some(root)) => mesh_proxy::identity::CaClientOptions {
                address: resolve()?,
                root_cert: root.clone(),
                token_file: self.ca_token_file.clone(),
                server_name: match &ca {
                    XdsAddress::Name { host, .. } => Some(host.clone()),
                    XdsAddress::Ip(_) => None,
                },
                ttl: None,
                renew_with_certificate_only: false,
            },
            (None, None) => return Ok(None),
        };
        client.ttl = self.cert_ttl_secs.map(std::time::Duration::from_secs);
        client.renew_with_certificate_only = self.ca_renew_with_certificate_only;
        Ok(Some(agent::CaClientOptions {
            client,
            trust_domain: Some(self.trust_domain.clone()),
        }))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Engine {
    Envoy,
    Native,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Sidecar,
    Router,
}

impl Identity {
    fn options(&self) -> BootstrapOptions {
        BootstrapOptions {
            kind: match self.proxy_type {
                Kind::Sidecar => ProxyKind::Sidecar,
                Kind::Router => ProxyKind::Gateway,
            },
            xds_address: self.xds_address.clone(),
            workload: self.workload.clone(),
            ip: self.ip,
            admin_port: self.admin_port,
            service_account: self.service_account.clone(),
            labels: self.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        }
    }
}

fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, reload) = tracing_subscriber::reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    let set_level: mesh_proxy::native::LogLevelSetter = Box::new(move |level: &str| {
        let f = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        reload.modify(|old| *old = f).map_err(|e| e.to_string())
    });
    match cli.command {
        Command::Bootstrap(id) => {
            let json = bootstrap::bootstrap(&id.options());
            match serde_json::to_string_pretty(&json) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mesh-proxy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => run(args, set_level),
        Command::Init(args) => init_step(args),
    }
}

fn init_step(args: InitArgs) -> ExitCode {
    let cfg = init::CaptureConfig {
        proxy_port: args.proxy_port,
        inbound_port: args.inbound_port,
        proxy_uid: args.proxy_uid,
        proxy_gid: args.proxy_gid.unwrap_or(args.proxy_uid),
        include_outbound_ranges: args.include_outbound_ip_ranges,
        exclude_outbound_ranges: args.exclude_outbound_ip_ranges,
        include_inbound_ports: args.include_inbound_ports,
        exclude_inbound_ports: args.exclude_inbound_ports,
        exclude_outbound_ports: args.exclude_outbound_ports,
        reroute_interfaces: args.reroute_virtual_interfaces,
    };
    if args.check {
        return match init::check(None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mesh-proxy init --check: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rules = init::rules(&cfg);
    if args.dry_run {
        print!("{rules}");
        return ExitCode::SUCCESS;
    }
    match init::apply(&rules, Some(args.iptables_restore)) {
        Ok(()) => {
            tracing::info!(rules = rules.lines().count(), "capture rules installed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mesh-proxy init: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("mesh-proxy: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn run(args: RunArgs, set_level: mesh_proxy::native::LogLevelSetter) -> ExitCode {
    if let Engine::Native = args.engine {
        let ca = match args.ca.options(&args.identity.xds_address) {
            Ok(ca) => ca,
            Err(e) => {
                eprintln!("mesh-proxy: {e}");
                return ExitCode::FAILURE;
            }
        };
        let opts = mesh_proxy::native::NativeOptions {
            identity: args.identity.options(),
            health_port: args.health_port,
            access_log: !args.no_access_log,
            log_level: std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            set_log_level: set_level,
            ca,
        };
        let runtime = match runtime() {
            Ok(rt) => rt,
            Err(code) => return code,
        };
        return match runtime.block_on(mesh_proxy::native::run(opts, agent::signal())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mesh-proxy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let envoy_bin = args
        .envoy_bin
        .or_else(|| mesh_core::envoy::locate().ok().flatten())
        .unwrap_or_else(|| PathBuf::from("envoy"));
    let mut opts = AgentOptions::new(args.identity.options(), envoy_bin);
    opts.log_level = args.log_level;
    opts.ca = match args.ca.options(&args.identity.xds_address) {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!("mesh-proxy: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(agent::run(&opts, agent::signal())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mesh-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn ca_of(args: &[&str]) -> Result<Option<agent::CaClientOptions>, String> {
        let mut all = vec![
            "mesh-proxy",
            "run",
            "--workload",
            "shop/web",
            "--ip",
            "10.0.0.5",
            "--xds-address",
            "localhost:15010",
        ];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        let Command::Run(run) = cli.command else {
            panic!("not run");
        };
        run.ca.options(&run.identity.xds_address)
    }

    #[test]
    fn kubernetes_mode_reads_the_projected_token_and_checks_meshds_name() {
        let ca = ca_of(&["--ca-root-cert", "/r/root-cert.pem"])
            .unwrap()
            .unwrap();
        assert_eq!(ca.client.root_cert, PathBuf::from("/r/root-cert.pem"));
        assert_eq!(
            ca.client.token_file,
            PathBuf::from("/var/run/secrets/tokens/istio-token")
        );
        // The xDS host on 15012, verified by name.
        assert_eq!(ca.client.address.port(), 15012);
        assert_eq!(ca.client.server_name.as_deref(), Some("localhost"));
        let ca = ca_of(&[
            "--ca-root-cert",
            "/r/root-cert.pem",
            "--ca-token-file",
            "/t/token",
            "--ca-address",
            "127.0.0.1:9999",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(ca.client.token_file, PathBuf::from("/t/token"));
        assert_eq!(ca.client.address, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(ca.client.server_name, None);
    }

    #[test]
    fn local_mode_uses_the_ca_directory_and_modes_do_not_mix() {
        let ca = ca_of(&["--ca-dir", "/ca"]).unwrap().unwrap();
        assert_eq!(ca.client.root_cert, PathBuf::from("/ca/root-cert.pem"));
        assert_eq!(ca.client.token_file, PathBuf::from("/ca/token"));
        assert_eq!(ca.client.server_name, None);
        assert!(!ca.client.renew_with_certificate_only);
        let ca = ca_of(&["--ca-dir", "/ca", "--ca-renew-with-certificate-only"])
            .unwrap()
            .unwrap();
        assert!(ca.client.renew_with_certificate_only);
        let alone = ca_of(&["--ca-renew-with-certificate-only"]).unwrap_err();
        assert!(alone.contains("required"), "{alone}");
        assert!(ca_of(&[]).unwrap().is_none());
        let both = ca_of(&["--ca-dir", "/ca", "--ca-root-cert", "/r.pem"]).unwrap_err();
        assert!(both.contains("cannot be used with"), "{both}");
        let token_alone = ca_of(&["--ca-token-file", "/t"]).unwrap_err();
        assert!(token_alone.contains("--ca-root-cert"), "{token_alone}");
        let address_alone = ca_of(&["--ca-address", "127.0.0.1:1"]).unwrap_err();
        assert!(address_alone.contains("required"), "{address_alone}");
    }
}
