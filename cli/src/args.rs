//! Command-line flags of every meshctl command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mesh_core::analysis::Level;

/// meshctl: lint, validate and analyze Istio-compatible service mesh configuration.
///
/// Exit codes: 0 clean, 79 findings at or above the failure threshold, 64 bad usage,
/// 65 input that could not be read.
#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyze mesh configuration for problems that span objects (Istio's IST codes).
    #[command(after_help = ANALYZE_EXAMPLES)]
    Analyze(AnalyzeArgs),
    /// Validate each object against Istio's schema and rules, with file:line and field path.
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate(ValidateArgs),
    /// Show a proxy's clusters, listeners, routes, endpoints, secrets, bootstrap or log levels.
    #[command(name = "proxy-config", visible_alias = "pc")]
    ProxyConfig(crate::proxy_config::ProxyConfigArgs),
    /// Show whether each proxy has what meshd sent it (CDS, LDS, EDS, RDS); with a proxy,
    /// diff meshd's config against the proxy's own.
    #[command(visible_alias = "ps", after_help = crate::proxy_status::EXAMPLES)]
    ProxyStatus(crate::proxy_status::ProxyStatusArgs),
    /// Run a whole sample mesh (bookinfo) on this machine: meshd, the apps and a sidecar for
    /// each on loopback addresses, with traffic; no root, no cluster, no Docker.
    #[command(after_help = crate::demo::EXAMPLES)]
    Demo(crate::demo::DemoArgs),
    /// Show the config that applies to a workload or a service (services, routes, subsets,
    /// gateways, mTLS mode, authorization policies, analyzer messages), or which
    /// VirtualServices bind to a Gateway and why others do not.
    #[command(after_help = DESCRIBE_EXAMPLES)]
    Describe(crate::describe::DescribeArgs),
    /// List the effective service registry: services (from Kubernetes Services and
    /// ServiceEntries alike) with their endpoints, and workloads, as meshd builds them.
    #[command(after_help = crate::get::EXAMPLES)]
    Get(crate::get::GetArgs),
    /// Add the sidecar and its init step to the pods of a manifest (no cluster needed).
    #[command(name = "kube-inject")]
    KubeInject(crate::inject::KubeInjectArgs),
    /// Show what a config change would do to every proxy's xDS and to analyzer messages,
    /// before applying it (against a directory or a running meshd).
    Diff(crate::diff::DiffArgs),
    /// Generate the Kubernetes objects of an installation (CRDs, RBAC, meshd, webhooks,
    /// gateways) from a profile and --set overrides.
    Manifest(crate::manifest::ManifestArgs),
    /// Install the mesh into a Kubernetes cluster (server-side apply; waits for readiness).
    #[command(after_help = crate::cluster::install::EXAMPLES)]
    Install(crate::cluster::install::InstallArgs),
    /// Remove the mesh from a Kubernetes cluster (CRDs only with --purge).
    #[command(after_help = crate::cluster::uninstall::EXAMPLES)]
    Uninstall(crate::cluster::uninstall::UninstallArgs),
    /// Check a cluster before installing (version, permissions) or after (meshd, CRDs,
    /// webhooks, proxies in sync).
    #[command(after_help = crate::cluster::check::EXAMPLES)]
    Check(crate::cluster::check::CheckArgs),
    /// Open a proxy's Envoy admin page or meshd's debug API in a cluster on a local port
    /// (port-forward through the API server) until Ctrl-C.
    #[command(after_help = crate::cluster::dashboard::EXAMPLES)]
    Dashboard(crate::cluster::dashboard::DashboardArgs),
    /// Show requests per second, success rate, latency percentiles, bytes and mTLS share per
    /// workload or route, scraped from the proxies (no Prometheus server needed).
    #[command(after_help = crate::stat::STAT_EXAMPLES)]
    Stat(crate::stat::StatArgs),
    /// `stat` as a view that refreshes every window until Ctrl-C.
    #[command(after_help = crate::stat::TOP_EXAMPLES)]
    Top(crate::stat::TopArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print meshctl's version.
    Version {
        /// Output format.
        #[arg(short, long, value_enum)]
        output: Option<DataFormat>,
    },
}

const ANALYZE_EXAMPLES: &str = "\
Examples:
  # Analyze the bundled sample mesh
  meshctl analyze testdata/bookinfo/

  # Fail CI on warnings too, and annotate the pull request
  meshctl analyze -o github --failure-threshold Warning manifests/

  # Suppress one finding, with globs
  meshctl analyze --suppress 'IST0102=Namespace frod' --suppress 'IST01*=Pod *' config/

  # Run one analyzer; list them all
  meshctl analyze --analyzer virtualservice.DestinationHostAnalyzer config/
  meshctl analyze --list-analyzers

  # From stdin
  kubectl get vs,dr,svc -A -o yaml | meshctl analyze -";

const DESCRIBE_EXAMPLES: &str = "\
Examples:
  meshctl describe pod reviews-v1.bookinfo -f testdata/bookinfo/
  meshctl describe service reviews -n bookinfo -f testdata/bookinfo/ -o yaml
  meshctl describe workload client.shop      # from the running meshd (127.0.0.1:15014)
  meshctl describe gateway bookinfo-gateway -f testdata/bookinfo/   # which VirtualServices bind";

const VALIDATE_EXAMPLES: &str = "\
Examples:
  meshctl validate -f samples/virtual-service.yaml
  meshctl validate -f manifests/            # a directory, recursively
  cat vs.yaml | meshctl validate -f -";

/// Output formats of `meshctl analyze`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AnalyzeFormat {
    /// One line per message: `Level [CODE] (Kind ns/name file:line) text`.
    Log,
    /// A JSON array of {code, level, message, origin, reference, documentationUrl}.
    Json,
    /// The same array as YAML.
    Yaml,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// GitHub Actions workflow commands (annotations on the pull request).
    Github,
}

/// Output formats for plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Json,
    Yaml,
}

/// When to color terminal output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Files or directories of YAML/JSON to analyze (`-` reads stdin). Directories are read
    /// recursively unless --recursive=false.
    #[arg(value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = AnalyzeFormat::Log)]
    pub output: AnalyzeFormat,

    /// Exit 79 when any message is at or above this level (Info, Warning, Error).
    #[arg(long, value_name = "LEVEL", default_value = "Error", value_parser = parse_level)]
    pub failure_threshold: Level,

    /// Print only messages at or above this level (Info, Warning, Error).
    #[arg(long, value_name = "LEVEL", default_value = "Info", value_parser = parse_level)]
    pub output_threshold: Level,

    /// Suppress messages: 'CODE=Kind ns/name'; `*` matches any text in either part.
    /// Repeatable. A suppression that matches nothing is reported on stderr.
    #[arg(short = 'S', long, value_name = "CODE=RESOURCE")]
    pub suppress: Vec<String>,

    /// Report only objects in this namespace (files-only analysis reports all by default).
    #[arg(short, long, value_name = "NS", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,

    /// Report objects in every namespace (the default for files-only analysis).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Mesh config (a MeshConfig YAML document) to analyze against.
    #[arg(
        long = "meshConfigFile",
        alias = "mesh-config-file",
        value_name = "FILE"
    )]
    pub mesh_config_file: Option<PathBuf>,

    /// Mesh networks (a MeshNetworks YAML document) to analyze against.
    #[arg(
        long = "meshNetworksFile",
        alias = "mesh-networks-file",
        value_name = "FILE"
    )]
    pub mesh_networks_file: Option<PathBuf>,

    /// Read directories recursively.
    #[arg(short = 'R', long, value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub recursive: bool,

    /// Run only this analyzer (Istio's name, e.g. virtualservice.DestinationHostAnalyzer).
    /// Repeatable.
    #[arg(long, value_name = "NAME")]
    pub analyzer: Vec<String>,

    /// List the analyzers with the codes they report, then exit.
    #[arg(long)]
    pub list_analyzers: bool,

    /// Analyze the cluster (kubeconfig) with the files overlaid: a file's object replaces
    /// the cluster's of the same kind, namespace and name. Reports the context's namespace
    /// unless -n or -A says otherwise.
    #[arg(long)]
    pub use_kube: bool,

    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,

    /// Color the log output.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,

    /// Add each message type's description to log output.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories to validate (`-` reads stdin). Repeatable.
    #[arg(short, long = "filename", value_name = "FILE|DIR|-", required = true)]
    pub files: Vec<PathBuf>,

    /// Output format (default: one line per problem).
    #[arg(short, long, value_enum)]
    pub output: Option<DataFormat>,

    /// Read directories recursively.
    #[arg(short = 'R', long, value_name = "BOOL", default_value_t = true,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          action = clap::ArgAction::Set)]
    pub recursive: bool,

    /// Treat warnings as failures (exit 79).
    #[arg(long)]
    pub strict: bool,
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse()
}
