//! `meshctl proxy-config` (alias `pc`): one proxy's clusters, listeners, routes, endpoints,
//! secrets, bootstrap and log levels, with istioctl's columns and filters, from the proxy's
//! admin API, a workload name (local mode, through meshd's debug API) or a saved
//! `/config_dump`. Owns the flags of the command and turns a parsed command line into the
//! text it prints; [`source`] finds and reads the proxy, [`dump`] reads the JSON, [`views`],
//! [`secret`] and [`log`] make the tables.

pub mod dump;
pub mod log;
pub mod secret;
pub mod source;
pub mod table;
pub mod views;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

use dump::ConfigDump;
use source::{Error, Source};
use views::{ClusterFilter, EndpointFilter, ListenerFilter, RouteFilter};

/// `meshctl proxy-config KIND [TARGET] ...`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ProxyConfigArgs {
    #[command(subcommand)]
    pub kind: Kind,
}

const EXAMPLES: &str = "\
Examples:
  # Clusters of a workload's sidecar (local mode: meshd's debug API gives its address)
  meshctl proxy-config cluster productpage-v1.default

  # Straight from a proxy's admin API, only the v1 subset on port 9080
  meshctl pc cluster --admin 127.0.0.51:15000 --port 9080 --subset v1

  # From a saved dump (`curl IP:15000/config_dump?include_eds > dump.json`)
  meshctl pc route --file dump.json --name 9080 -o yaml

  # Turn up HTTP logging on a live proxy
  meshctl pc log reviews-v1.default --level http:debug,router:debug

  # In a cluster: the pod's admin API through a port-forward
  meshctl pc listener reviews-v1-5b4f.bookinfo --use-kube";

/// Output formats of `proxy-config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table (bootstrap: JSON).
    Short,
    /// The selected resources as JSON, filtered.
    Json,
    /// The selected resources as YAML, filtered.
    Yaml,
}

/// Which proxy, and how to print.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The workload whose proxy to read, NAME.NAMESPACE (or a node id); meshd's debug API
    /// says where its proxy is (local mode: admin API on the workload's IP, port 15000).
    #[arg(value_name = "NAME.NAMESPACE")]
    pub target: Option<String>,

    /// The proxy's admin API address (IP:PORT; port 15000 when left out).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,

    /// A saved /config_dump JSON (`-` reads stdin); `endpoint` also reads a saved
    /// /clusters?format=json.
    #[arg(short, long, value_name = "FILE|-")]
    pub file: Option<PathBuf>,

    /// meshd's debug API, used to find a workload's proxy.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:15014")]
    pub controlplane: String,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Short)]
    pub output: Format,

    /// Reach the workload's pod (NAME.NAMESPACE) through the Kubernetes API server
    /// (port-forward to its admin port 15000).
    #[arg(long, requires = "target")]
    pub use_kube: bool,

    /// With --use-kube: port-forward (the default, as kubectl), or api-proxy (HTTP through
    /// the API server's proxy subresource, for clusters where websocket upgrades are blocked).
    #[arg(long, value_enum, default_value_t, requires = "use_kube")]
    pub kube_transport: crate::cluster::forward::Transport,

    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

#[derive(Debug, Subcommand)]
pub enum Kind {
    /// Clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.
    #[command(alias = "clusters", alias = "c")]
    Cluster {
        #[command(flatten)]
        source: SourceArgs,
        /// Only clusters whose name contains this FQDN.
        #[arg(long, value_name = "FQDN")]
        fqdn: Option<String>,
        /// Only clusters of this port.
        #[arg(long)]
        port: Option<u32>,
        /// Only clusters of this subset.
        #[arg(long)]
        subset: Option<String>,
        /// Only inbound or outbound clusters.
        #[arg(long, value_name = "inbound|outbound")]
        direction: Option<String>,
    },
    /// Listeners: ADDRESSES, PORT, MATCH, DESTINATION (one row per filter chain).
    #[command(alias = "listeners", alias = "l")]
    Listener {
        #[command(flatten)]
        source: SourceArgs,
        /// Only listeners on this address.
        #[arg(long)]
        address: Option<String>,
        /// Only listeners on this port.
        #[arg(long)]
        port: Option<u32>,
        /// Only listeners of this type: HTTP, TCP, HTTP+TCP or UNKNOWN.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
    },
    /// Routes: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE.
    #[command(alias = "routes", alias = "r")]
    Route {
        #[command(flatten)]
        source: SourceArgs,
        /// Only the route configuration of this name (Istio names them by port: 9080).
        #[arg(long)]
        name: Option<String>,
    },
    /// Endpoints: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER (live health from /clusters;
    /// from a saved dump, the endpoints the control plane sent).
    #[command(alias = "endpoints", alias = "ep")]
    Endpoint {
        #[command(flatten)]
        source: SourceArgs,
        /// Only endpoints with this IP address.
        #[arg(long)]
        address: Option<String>,
        /// Only endpoints on this port.
        #[arg(long)]
        port: Option<u32>,
        /// Only endpoints of this cluster (its full name).
        #[arg(long)]
        cluster: Option<String>,
        /// Only endpoints in this health state (HEALTHY, UNHEALTHY, DRAINING, ...).
        #[arg(long)]
        status: Option<String>,
    },
    /// Secrets: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE.
    #[command(alias = "secrets", alias = "s")]
    Secret {
        #[command(flatten)]
        source: SourceArgs,
    },
    /// The bootstrap the proxy started with (the BootstrapConfigDump).
    #[command(alias = "b")]
    Bootstrap {
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Logger levels of a live proxy; --level changes them.
    #[command(alias = "o")]
    Log {
        #[command(flatten)]
        source: SourceArgs,
        /// New levels: LEVEL for every logger, or NAME:LEVEL[,NAME:LEVEL...]. Levels: trace,
        /// debug, info, warning, error, critical, off.
        #[arg(long, value_name = "LEVEL|NAME:LEVEL,...")]
        level: Option<String>,
    },
    /// Every table (cluster, listener, route, endpoint, secret); -o json|yaml prints the
    /// whole dump.
    #[command(alias = "a")]
    All {
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// What a run prints: stdout, and notes for stderr.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub notes: Vec<String>,
}

/// Runs the command; prints and returns the exit code.
pub fn run(args: &ProxyConfigArgs) -> u8 {
    match execute(args) {
        Ok(out) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.stdout.as_bytes());
            let _ = stdout.flush();
            for n in out.notes {
                eprintln!("{n}");
            }
            crate::exit::OK
        }
        Err(e) => {
            let e = through_kube(e, args.kind.source());
            eprintln!("Error: {e}");
            e.exit_code()
        }
    }
}

/// With --use-kube the admin address is meshctl's own end of the port-forward, so the
/// local-mode advice of [`Error::AdminUnreachable`] would mislead: say what was forwarded.
fn through_kube(e: Error, source: &SourceArgs) -> Error {
    match (e, &source.target) {
        (Error::AdminUnreachable { reason, .. }, Some(target)) if source.use_kube => {
            Error::KubeAdminUnreachable {
                target: target.clone(),
                reason,
            }
        }
        (e, _) => e,
    }
}

impl Kind {
    /// The proxy every subcommand reads.
    fn source(&self) -> &SourceArgs {
        match self {
            Kind::Cluster { source, .. }
            | Kind::Listener { source, .. }
            | Kind::Route { source, .. }
            | Kind::Endpoint { source, .. }
            | Kind::Secret { source, .. }
            | Kind::Bootstrap { source, .. }
            | Kind::Log { source, .. }
            | Kind::All { source, .. } => source,
        }
    }
}

/// The proxy being looked at, read at most once per kind of answer.
struct Proxy {
    source: Source,
    file: Option<Value>,
    /// With --use-kube: the relay to the pod's admin port, kept alive while it is read.
    _relay: Option<crate::cluster::forward::Forward>,
}

impl Proxy {
    fn open(args: &SourceArgs) -> Result<Proxy, Error> {
        if let (true, Some(target)) = (args.use_kube, &args.target) {
            use crate::cluster::forward::{Forward, Upstream};
            let name_ns = target.split('~').nth(2).unwrap_or(target);
            let Some((pod, ns)) = name_ns.rsplit_once('.') else {
                return Err(Error::Usage(format!(
                    "--use-kube: {target:?} is not NAME.NAMESPACE"
                )));
            };
            let pod = Upstream::Pod {
                namespace: ns.to_owned(),
                name: pod.to_owned(),
            };
            let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let relay = Forward::start(&args.cluster, &pod, 15000, args.kube_transport, local)
                .map_err(|e| Error::BadInput {
                    what: "--use-kube".into(),
                    reason: format!("{e:#}"),
                })?;
            return Ok(Proxy {
                source: Source::Admin(relay.addr.to_string()),
                file: None,
                _relay: Some(relay),
            });
        }
        let source = source::resolve(
            args.target.as_deref(),
            args.admin.as_deref(),
            args.file.as_deref(),
            &args.controlplane,
        )?;
        let file = match &source {
            Source::File(p) => Some(source::parse_json(
                &p.display().to_string(),
                &source::read_file(p)?,
            )?),
            Source::Admin(_) => None,
        };
        Ok(Proxy {
            source,
            file,
            _relay: None,
        })
    }

    fn what(&self) -> String {
        match &self.source {
            Source::Admin(a) => format!("http://{a}/config_dump"),
            Source::File(p) if p.as_os_str() == "-" => "stdin".to_owned(),
            Source::File(p) => p.display().to_string(),
        }
    }

    fn dump(&self) -> Result<ConfigDump, Error> {
        let value = match (&self.source, &self.file) {
            (_, Some(v)) => {
                if v.get("cluster_statuses").is_some() {
                    return Err(Error::BadInput {
                        what: self.what(),
                        reason: "this is Envoy's /clusters output, which only `proxy-config \
                                 endpoint` reads; save /config_dump?include_eds for this view"
                            .to_owned(),
                    });
                }
                v.clone()
            }
            (Source::Admin(a), None) => source::parse_json(
                &self.what(),
                &source::admin_get(a, "/config_dump?include_eds")?,
            )?,
            (Source::File(_), None) => Value::Null,
        };
        ConfigDump::from_value(value).map_err(|reason| Error::BadInput {
            what: self.what(),
            reason,
        })
    }

    /// Endpoint rows and the filtered JSON they came from.
    fn endpoints(
        &self,
        filter: &EndpointFilter,
    ) -> Result<(Vec<views::EndpointRow>, Value), Error> {
        let clusters = match (&self.source, &self.file) {
            (Source::Admin(a), _) => Some(source::parse_json(
                &format!("http://{a}/clusters?format=json"),
                &source::admin_get(a, "/clusters?format=json")?,
            )?),
            (_, Some(v)) if v.get("cluster_statuses").is_some() => Some(v.clone()),
            _ => None,
        };
        Ok(match clusters {
            Some(c) => (
                views::select_endpoints(views::endpoints_from_clusters(&c), filter),
                views::filter_clusters_json(&c, filter),
            ),
            None => {
                let dump = self.dump()?;
                (
                    views::select_endpoints(views::endpoints_from_dump(&dump), filter),
                    views::filter_endpoint_configs(&dump, filter),
                )
            }
        })
    }
}

fn data(value: &Value, format: Format) -> String {
    match format {
        Format::Yaml => crate::output::to_yaml(value),
        Format::Json | Format::Short => {
            let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

fn list(items: &[&Value]) -> Value {
    Value::Array(items.iter().map(|v| (*v).clone()).collect())
}

/// Computes what the command prints, without printing it.
pub fn execute(args: &ProxyConfigArgs) -> Result<Output, Error> {
    execute_at(args, secret::now())
}

/// [`execute`] with certificate validity judged at `now` (seconds since the epoch).
pub fn execute_at(args: &ProxyConfigArgs, now: i64) -> Result<Output, Error> {
    let mut out = Output::default();
    match &args.kind {
        Kind::Cluster {
            source,
            fqdn,
            port,
            subset,
            direction,
        } => {
            let dump = Proxy::open(source)?.dump()?;
            let filter = ClusterFilter {
                fqdn: fqdn.clone(),
                port: *port,
                subset: subset.clone(),
                direction: direction.clone(),
            };
            let cs = views::clusters(&dump, &filter);
            out.stdout = match source.output {
                Format::Short => views::cluster_table(&cs).render(),
                f => data(&list(&cs), f),
            };
        }
        Kind::Listener {
            source,
            address,
            port,
            kind,
        } => {
            let dump = Proxy::open(source)?.dump()?;
            let filter = ListenerFilter {
                address: address.clone(),
                port: *port,
                kind: kind.clone(),
            };
            let ls = views::listeners(&dump, &filter);
            out.stdout = match source.output {
                Format::Short => views::listener_table(&ls).render(),
                f => data(&list(&ls), f),
            };
        }
        Kind::Route { source, name } => {
            let dump = Proxy::open(source)?.dump()?;
            let rs = views::routes(&dump, &RouteFilter { name: name.clone() });
            out.stdout = match source.output {
                Format::Short => views::route_table(&rs).render(),
                f => data(&list(&rs), f),
            };
        }
        Kind::Endpoint {
            source,
            address,
            port,
            cluster,
            status,
        } => {
            let filter = EndpointFilter {
                address: address.clone(),
                port: *port,
                cluster: cluster.clone(),
                status: status.clone(),
            };
            let (rows, json) = Proxy::open(source)?.endpoints(&filter)?;
            out.stdout = match source.output {
                Format::Short => views::endpoint_table(&rows).render(),
                f => data(&json, f),
            };
        }
        Kind::Secret { source } => {
            let dump = Proxy::open(source)?.dump()?;
            let secrets = dump.secrets();
            out.stdout = match source.output {
                Format::Short => secret::secret_table(&secrets, now).render(),
                f => data(
                    &Value::Array(secrets.iter().map(|s| s.raw.clone()).collect()),
                    f,
                ),
            };
        }
        Kind::Bootstrap { source } => {
            let proxy = Proxy::open(source)?;
            let dump = proxy.dump()?;
            let b = dump.bootstrap().ok_or_else(|| Error::BadInput {
                what: proxy.what(),
                reason: "the dump has no BootstrapConfigDump".to_owned(),
            })?;
            out.stdout = data(b, source.output);
        }
        Kind::Log { source, level } => {
            let proxy = Proxy::open(source)?;
            let Source::Admin(admin) = &proxy.source else {
                return Err(Error::Usage(
                    "log levels are read from a live proxy: name a workload or --admin ADDR"
                        .to_owned(),
                ));
            };
            if let Some(spec) = level {
                let changes = log::parse_levels(spec).map_err(Error::Usage)?;
                for c in &changes {
                    source::admin_post(admin, &c.path()).map_err(|e| match e {
                        // Envoy answers 400 to a logger it does not have.
                        Error::Rejected {
                            status: 400, body, ..
                        } => Error::Usage(format!(
                            "the proxy at {admin} refused {c}: {}; `meshctl proxy-config log` \
                             lists its loggers",
                            body.lines()
                                .next()
                                .unwrap_or_default()
                                .trim_start_matches("error: ")
                        )),
                        e => e,
                    })?;
                }
            }
            let text = source::admin_post(admin, "/logging")?;
            let levels = log::parse_active(&String::from_utf8_lossy(&text));
            out.stdout = match source.output {
                Format::Short => log::render(&levels),
                f => {
                    let map: serde_json::Map<String, Value> = levels
                        .into_iter()
                        .map(|(n, l)| (n, Value::String(l)))
                        .collect();
                    data(&Value::Object(map), f)
                }
            };
        }
        Kind::All { source } => {
            let proxy = Proxy::open(source)?;
            let dump = proxy.dump()?;
            if source.output != Format::Short {
                let whole = serde_json::json!({ "configs": dump.sections() });
                out.stdout = data(&whole, source.output);
                return Ok(out);
            }
            let (endpoints, _) = proxy.endpoints(&EndpointFilter::default())?;
            let tables = [
                views::cluster_table(&views::clusters(&dump, &ClusterFilter::default())),
                views::listener_table(&views::listeners(&dump, &ListenerFilter::default())),
                views::route_table(&views::routes(&dump, &RouteFilter::default())),
                views::endpoint_table(&endpoints),
                secret::secret_table(&dump.secrets(), now),
            ];
            out.stdout = tables
                .iter()
                .map(table::Table::render)
                .collect::<Vec<_>>()
                .join("\n");
            let unknown = dump.unknown_sections();
            if !unknown.is_empty() {
                out.notes.push(format!(
                    "note: sections not shown as tables (see -o json): {}",
                    unknown.join(", ")
                ));
            }
        }
    }
    Ok(out)
}
