//! xds-scale: meshd at scale, with simulated proxies over ADS.
//!
//! Generates a config directory (N services in a few namespaces, M WorkloadEntries on
//! loopback addresses that the services select, a VirtualService with a weighted split and a
//! DestinationRule with subsets for every tenth service), starts the `meshd` binary on it as
//! a child process, and connects P simulated proxies: one ADS stream each, with a distinct
//! node id and node metadata (each is one of the workloads), subscribing as Envoy does (CDS
//! and LDS, then EDS for the EDS clusters CDS named and RDS for the route configurations the
//! listeners named) and ACKing every response. It measures the time until every proxy has
//! ACKed its initial config, then the time from a file write to every proxy ACKing the new
//! version, for a VirtualService weight shift and for an added endpoint; and meshd's
//! resident memory (`VmRSS`, `VmHWM`) and CPU seconds (`utime + stime`) from `/proc`.
//!
//! A benchmark program, not a test: run it on a release build. Every wait is bounded; the
//! child and the generated directory are removed on every path.
//!
//! Usage: xds-scale [--services N] [--endpoints M] [--proxies P] [--namespaces K]
//!                  [--meshd PATH] [--timeout SECS] [--keep DIR]

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const HCM: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// CDS, EDS, LDS, RDS: the index of a type in per-type arrays.
const TYPES: [&str; 4] = [CLUSTER, ENDPOINT, LISTENER, ROUTE];
const SERVICE_PORT: u16 = 8080;

struct Options {
    services: usize,
    endpoints: usize,
    proxies: usize,
    namespaces: usize,
    meshd: PathBuf,
    timeout: Duration,
    keep: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options {
        services: 1_000,
        endpoints: 10_000,
        proxies: 1_000,
        namespaces: 10,
        meshd: sibling("meshd"),
        timeout: Duration::from_secs(300),
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--services" => o.services = value()?.parse().context("--services")?,
            "--endpoints" => o.endpoints = value()?.parse().context("--endpoints")?,
            "--proxies" => o.proxies = value()?.parse().context("--proxies")?,
            "--namespaces" => o.namespaces = value()?.parse().context("--namespaces")?,
            "--meshd" => o.meshd = PathBuf::from(value()?),
            "--timeout" => o.timeout = Duration::from_secs(value()?.parse().context("--timeout")?),
            "--keep" => o.keep = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!(
                    "usage: xds-scale [--services N] [--endpoints M] [--proxies P] [--namespaces K] \
                     [--meshd PATH] [--timeout SECS] [--keep DIR]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if o.services == 0 || o.namespaces == 0 || o.endpoints < o.services {
        bail!("need at least one service, one namespace and one endpoint per service");
    }
    if o.proxies > o.endpoints {
        bail!("every proxy is one of the workloads: --proxies must be at most --endpoints");
    }
    Ok(o)
}

/// A binary next to this one (`target/release/meshd` beside `target/release/xds-scale`).
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

// ---------------------------------------------------------------------------------------
// The generated mesh

/// The mesh's shape: which workload is where.
struct Mesh {
    services: usize,
    endpoints: usize,
    namespaces: usize,
}

impl Mesh {
    fn namespace(&self, service: usize) -> String {
        format!("ns{}", service % self.namespaces)
    }

    /// Workload `w` belongs to service `w % services` (so proxies `0..services` are one
    /// workload of each service).
    fn workload(&self, w: usize) -> (usize, String) {
        let s = w % self.services;
        (s, format!("svc{s}-{}", w / self.services))
    }

    /// A distinct loopback address per workload, away from 127.0.0.0/16.
    fn address(&self, w: usize) -> Ipv4Addr {
        let octets = (w / (250 * 250), (w / 250) % 250, w % 250);
        Ipv4Addr::new(
            127,
            u8::try_from(100 + octets.0).unwrap_or(255),
            u8::try_from(octets.1 + 1).unwrap_or(255),
            u8::try_from(octets.2 + 1).unwrap_or(255),
        )
    }

    fn version_label(&self, w: usize) -> &'static str {
        if (w / self.services).is_multiple_of(2) {
            "v1"
        } else {
            "v2"
        }
    }

    fn workload_entry(&self, w: usize, address: Ipv4Addr) -> String {
        let (s, name) = self.workload(w);
        format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  \
             namespace: {ns}\n  labels:\n    app: svc{s}\n    version: {v}\nspec:\n  address: {address}\n---\n",
            ns = self.namespace(s),
            v = self.version_label(w),
        )
    }

    fn virtual_service(&self, s: usize, v1_weight: u32) -> String {
        let ns = self.namespace(s);
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc{s}\n  \
             namespace: {ns}\nspec:\n  hosts:\n  - svc{s}.{ns}.svc.cluster.local\n  http:\n  - route:\n    \
             - destination:\n        host: svc{s}.{ns}.svc.cluster.local\n        subset: v1\n      \
             weight: {v1_weight}\n    - destination:\n        host: svc{s}.{ns}.svc.cluster.local\n        \
             subset: v2\n      weight: {v2}\n    retries:\n      attempts: 2\n      perTryTimeout: 1s\n    \
             timeout: 5s\n---\n",
            v2 = 100 - v1_weight,
        )
    }

    fn destination_rule(&self, s: usize) -> String {
        let ns = self.namespace(s);
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc{s}\n  \
             namespace: {ns}\n  annotations:\n    galley.istio.io/analyze-suppress: IST0173\nspec:\n  \
             host: svc{s}.{ns}.svc.cluster.local\n  trafficPolicy:\n    loadBalancer:\n      \
             simple: LEAST_REQUEST\n    outlierDetection:\n      consecutive5xxErrors: 5\n      \
             interval: 10s\n  subsets:\n  - name: v1\n    labels:\n      version: v1\n  - name: v2\n    \
             labels:\n      version: v2\n---\n"
        )
    }

    /// Writes the directory; returns how many bytes of YAML and files.
    fn write(&self, dir: &Path) -> anyhow::Result<(usize, usize)> {
        let mut files: Vec<(String, String)> = Vec::new();
        for n in 0..self.namespaces {
            let mut y = format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns{n}\n  labels:\n    \
                 istio-injection: enabled\n---\n"
            );
            for s in (n..self.services).step_by(self.namespaces) {
                let _ = write!(
                    y,
                    "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{s}\n  namespace: ns{n}\n\
                     spec:\n  selector:\n    app: svc{s}\n  ports:\n  - name: http\n    port: {SERVICE_PORT}\n---\n"
                );
            }
            files.push((format!("services-ns{n}.yaml"), y));
            let mut y = String::new();
            for w in (0..self.endpoints).filter(|w| (w % self.services) % self.namespaces == n) {
                y.push_str(&self.workload_entry(w, self.address(w)));
            }
            files.push((format!("workloads-ns{n}.yaml"), y));
        }
        let mut routing = String::new();
        for s in (0..self.services).step_by(10) {
            routing.push_str(&self.destination_rule(s));
            if s != 0 {
                routing.push_str(&self.virtual_service(s, 90));
            }
        }
        files.push(("routing.yaml".into(), routing));
        // The VirtualService the benchmark shifts, alone in its file.
        files.push(("shift.yaml".into(), self.virtual_service(0, 90)));
        let mut bytes = 0;
        for (name, text) in &files {
            bytes += text.len();
            std::fs::write(dir.join(name), text).with_context(|| format!("writing {name}"))?;
        }
        Ok((bytes, files.len()))
    }

    /// One proxy's node: the workload's node id and metadata.
    fn node(&self, w: usize) -> Node {
        let (s, name) = self.workload(w);
        let ns = self.namespace(s);
        let string = |v: &str| Value {
            kind: Some(Kind::StringValue(v.to_owned())),
        };
        let labels = Struct {
            fields: [
                ("app".to_owned(), string(&format!("svc{s}"))),
                ("version".to_owned(), string(self.version_label(w))),
            ]
            .into_iter()
            .collect(),
        };
        Node {
            id: format!(
                "sidecar~{}~{name}.{ns}~{ns}.svc.cluster.local",
                self.address(w)
            ),
            metadata: Some(Struct {
                fields: [
                    ("NAMESPACE".to_owned(), string(&ns)),
                    ("WORKLOAD_NAME".to_owned(), string(&name)),
                    ("SERVICE_ACCOUNT".to_owned(), string("default")),
                    (
                        "LABELS".to_owned(),
                        Value {
                            kind: Some(Kind::StructValue(labels)),
                        },
                    ),
                ]
                .into_iter()
                .collect(),
            }),
            ..Node::default()
        }
    }
}

/// Writes `text` to `path` atomically (a rename), so meshd never reads half a file.
fn replace_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// meshd as a child process

/// The meshd child: killed on drop if still running.
struct MeshdChild {
    child: Child,
}

impl Drop for MeshdChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl MeshdChild {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then at most `grace` for a clean exit, then SIGKILL.
    fn stop(&mut self, grace: Duration) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("exited ({status})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("killed after {grace:?}")
    }
}

/// The generated directory: removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// CPU seconds (user + system) and memory of a process, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn usage(pid: &str, ticks: f64) -> Usage {
    let mut u = Usage::default();
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Fields after the command name (which may hold spaces) start at field 3.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            u.cpu = (field(11) + field(12)) / ticks; // utime, stime (fields 14, 15)
        }
    }
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let kib = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            if line.starts_with("VmRSS:") {
                u.rss_kib = kib(line);
            } else if line.starts_with("VmHWM:") {
                u.hwm_kib = kib(line);
            }
        }
    }
    u
}

/// Waits until `addr` accepts TCP connections, or `timeout`.
async fn wait_listening(
    addr: SocketAddr,
    child: &mut MeshdChild,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.child.try_wait() {
            bail!("meshd exited before listening ({status}); see its log");
        }
        if Instant::now() > deadline {
            bail!("meshd did not listen on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Simulated proxies

/// What a proxy reports to the benchmark.
enum Event {
    /// Proxy `p` ACKed a response of type `t` (index in [`TYPES`]) at config version `version`.
    Acked {
        p: usize,
        t: usize,
        version: u64,
        at: Instant,
    },
    /// Proxy `p` has nothing to ask for type `t` (no EDS clusters, no RDS names).
    Empty {
        p: usize,
        t: usize,
    },
    Failed {
        p: usize,
        error: String,
    },
}

/// Names found in responses, by a digest of the response's resources: proxies that receive
/// identical resources decode them once.
#[derive(Default)]
struct NameCache {
    names: Mutex<HashMap<u64, Arc<BTreeSet<String>>>>,
}

impl NameCache {
    fn names(&self, r: &DiscoveryResponse) -> anyhow::Result<Arc<BTreeSet<String>>> {
        let mut h = DefaultHasher::new();
        r.type_url.hash(&mut h);
        for a in &r.resources {
            a.value.hash(&mut h);
        }
        let key = h.finish();
        if let Some(n) = self
            .names
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .get(&key)
        {
            return Ok(n.clone());
        }
        let names = Arc::new(if r.type_url == CLUSTER {
            eds_names(r)?
        } else {
            rds_names(r)?
        });
        self.names
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(key, names.clone());
        Ok(names)
    }
}

/// The EDS names of the EDS clusters in a CDS response.
fn eds_names(r: &DiscoveryResponse) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for a in &r.resources {
        let c = Cluster::decode(a.value.as_slice())?;
        if c.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)) {
            let service = c
                .eds_cluster_config
                .map(|e| e.service_name)
                .filter(|s| !s.is_empty());
            names.insert(service.unwrap_or(c.name));
        }
    }
    Ok(names)
}

/// The route configuration names the listeners of an LDS response take over RDS.
fn rds_names(r: &DiscoveryResponse) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for a in &r.resources {
        let l = Listener::decode(a.value.as_slice())?;
        for fc in l.filter_chains.iter().chain(l.default_filter_chain.iter()) {
            for f in &fc.filters {
                if let Some(ConfigType::TypedConfig(any)) = &f.config_type
                    && any.type_url == HCM
                {
                    let hcm = HttpConnectionManager::decode(any.value.as_slice())?;
                    if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                        names.insert(rds.route_config_name);
                    }
                }
            }
        }
    }
    Ok(names)
}

struct ProxyCtx {
    p: usize,
    node: Node,
    xds: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    cache: Arc<NameCache>,
    stop: watch::Receiver<bool>,
    /// Connection attempts that failed and were retried, over all proxies.
    retries: Arc<std::sync::atomic::AtomicUsize>,
}

async fn proxy(ctx: ProxyCtx) {
    let (p, events) = (ctx.p, ctx.events.clone());
    if let Err(e) = proxy_session(ctx).await {
        let _ = events.send(Event::Failed {
            p,
            error: format!("{e:#}"),
        });
    }
}

fn request(
    t: usize,
    names: &BTreeSet<String>,
    last: Option<&(String, String)>,
) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: TYPES[t].to_owned(),
        version_info: last.map(|r| r.0.clone()).unwrap_or_default(),
        response_nonce: last.map(|r| r.1.clone()).unwrap_or_default(),
        resource_names: names.iter().cloned().collect(),
        ..DiscoveryRequest::default()
    }
}

/// Opens the ADS stream and asks for CDS and LDS.
async fn open(
    ctx: &ProxyCtx,
) -> anyhow::Result<(
    mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<DiscoveryResponse>,
)> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", ctx.xds))?
        .connect_timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect()
        .await
        .context("connecting")?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(512 * 1024 * 1024);
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(16);
    let none = BTreeSet::new();
    let mut first = request(0, &none, None);
    first.node = Some(ctx.node.clone());
    tx.send(first).await?;
    tx.send(request(2, &none, None)).await?;
    let inbound = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .context("opening the ADS stream")?
        .into_inner();
    Ok((tx, inbound))
}

async fn proxy_session(mut ctx: ProxyCtx) -> anyhow::Result<()> {
    // A thousand connections at once can overflow the listen backlog: retry as Envoy does.
    let mut attempt = 0u32;
    let (tx, mut inbound) = loop {
        match open(&ctx).await {
            Ok(opened) => break opened,
            Err(e) if attempt >= 5 => return Err(e),
            Err(_) => {
                attempt += 1;
                ctx.retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250) * attempt).await;
            }
        }
    };
    // Per type: the names subscribed and the last response's version and nonce.
    let mut names: [Arc<BTreeSet<String>>; 4] = Default::default();
    let mut last: [Option<(String, String)>; 4] = Default::default();
    let mut asked = [true, false, true, false];
    loop {
        let r = tokio::select! {
            m = inbound.message() => match m.context("the ADS stream failed")? {
                Some(r) => r,
                None => bail!("meshd closed the stream"),
            },
            _ = ctx.stop.changed() => return Ok(()),
        };
        let Some(t) = TYPES.iter().position(|u| *u == r.type_url) else {
            continue;
        };
        let version = r.version_info.parse().unwrap_or(0);
        // CDS and LDS name what EDS and RDS must ask for, as Envoy does on each update.
        let dependent = match t {
            0 => Some(1),
            2 => Some(3),
            _ => None,
        };
        if let Some(d) = dependent {
            let wanted = ctx.cache.names(&r)?;
            if wanted.is_empty() {
                let _ = ctx.events.send(Event::Empty { p: ctx.p, t: d });
            } else if wanted != names[d] || !asked[d] {
                names[d] = wanted;
                asked[d] = true;
                tx.send(request(d, &names[d], last[d].as_ref())).await?;
            }
        }
        let acked = (r.version_info, r.nonce);
        tx.send(request(t, &names[t], Some(&acked))).await?;
        let _ = ctx.events.send(Event::Acked {
            p: ctx.p,
            t,
            version,
            at: Instant::now(),
        });
        last[t] = Some(acked);
    }
}

// ---------------------------------------------------------------------------------------
// The measurement

/// Per proxy, per type: the highest version ACKed (`Some(0)` when the type has nothing to
/// ask for).
struct Progress {
    acked: Vec<[Option<u64>; 4]>,
    failures: Vec<String>,
    responses: usize,
}

impl Progress {
    fn apply(&mut self, e: Event) -> Option<(u64, Instant)> {
        match e {
            Event::Acked { p, t, version, at } => {
                self.responses += 1;
                let slot = &mut self.acked[p][t];
                *slot = Some(slot.map_or(version, |v| v.max(version)));
                Some((version, at))
            }
            Event::Empty { p, t } => {
                self.acked[p][t].get_or_insert(0);
                None
            }
            Event::Failed { p, error } => {
                self.failures.push(format!("proxy {p}: {error}"));
                None
            }
        }
    }

    fn all_types(&self) -> usize {
        self.acked
            .iter()
            .filter(|a| a.iter().all(Option::is_some))
            .count()
    }

    fn past(&self, version: u64) -> usize {
        self.acked
            .iter()
            .filter(|a| a.iter().flatten().any(|v| *v > version))
            .count()
    }

    fn max_version(&self) -> u64 {
        self.acked
            .iter()
            .flatten()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// Outcome of one waited-for phase.
struct Phase {
    name: String,
    /// From the start (connect or file write) to the last ACK of the phase.
    last_ack: Option<Duration>,
    /// Proxies done out of all.
    done: usize,
    responses: usize,
    cpu: f64,
    rss_kib: u64,
    note: String,
}

struct Bench {
    events: mpsc::UnboundedReceiver<Event>,
    progress: Progress,
    pid: String,
    ticks: f64,
    timeout: Duration,
}

impl Bench {
    /// Drains events until `done(progress)` holds, then for a quiet `settle` period; returns
    /// the time of the last ACK of a version above `above` and whether `done` held.
    async fn wait(
        &mut self,
        start: Instant,
        above: u64,
        settle: Duration,
        done: impl Fn(&Progress) -> bool,
    ) -> (Option<Duration>, bool) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut last: Option<Instant> = None;
        let mut reached = false;
        loop {
            let until = if reached {
                tokio::time::Instant::now() + settle
            } else {
                deadline
            };
            let e = tokio::time::timeout_at(until.min(deadline), self.events.recv()).await;
            match e {
                Ok(Some(e)) => {
                    if let Some((version, at)) = self.progress.apply(e)
                        && version > above
                    {
                        last = Some(last.map_or(at, |l| l.max(at)));
                    }
                    if !reached && done(&self.progress) {
                        reached = true;
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        (last.map(|l| l.saturating_duration_since(start)), reached)
    }

    fn usage(&self) -> Usage {
        usage(&self.pid, self.ticks)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xds-scale: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let opts = parse_args()?;
    if !opts.meshd.is_file() {
        bail!(
            "no meshd binary at {} (build it: cargo build --release -p mesh-controlplane, or pass --meshd)",
            opts.meshd.display()
        );
    }
    let mesh = Mesh {
        services: opts.services,
        endpoints: opts.endpoints,
        namespaces: opts.namespaces,
    };
    let work = match &opts.keep {
        Some(d) => WorkDir {
            path: d.clone(),
            remove: false,
        },
        None => WorkDir {
            path: std::env::temp_dir().join(format!("xds-scale-{}", std::process::id())),
            remove: true,
        },
    };
    let config = work.path.join("config");
    let _ = std::fs::remove_dir_all(&config);
    std::fs::create_dir_all(&config)?;
    let (bytes, files) = mesh.write(&config)?;
    println!(
        "mesh: {} services in {} namespaces, {} WorkloadEntries, {} VirtualServices, {} DestinationRules; \
         {} files, {} KiB of YAML",
        opts.services,
        opts.namespaces,
        opts.endpoints,
        opts.services.div_ceil(10),
        opts.services.div_ceil(10),
        files,
        bytes / 1024
    );

    let xds = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?);
    let debug = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?);
    let log_path = work.path.join("meshd.log");
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = MeshdChild {
        child: Command::new(&opts.meshd)
            .arg("--config-dir")
            .arg(&config)
            .arg("--xds-address")
            .arg(xds.to_string())
            .arg("--debug-address")
            .arg(debug.to_string())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", opts.meshd.display()))?,
    };
    let result = measure(&opts, &mesh, &config, xds, &mut child, started).await;
    let stopped = child.stop(Duration::from_secs(10));
    println!(
        "meshd {stopped}; log: {}",
        if opts.keep.is_some() {
            log_path.display().to_string()
        } else {
            "(removed)".into()
        }
    );
    if result.is_err()
        && let Ok(text) = std::fs::read_to_string(&log_path)
    {
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        eprintln!("last lines of meshd's log:");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    result
}

async fn measure(
    opts: &Options,
    mesh: &Mesh,
    config: &Path,
    xds: SocketAddr,
    child: &mut MeshdChild,
    started: Instant,
) -> anyhow::Result<()> {
    let pid = child.pid().to_string();
    let ticks = clock_ticks();
    let load_before = load_average();
    wait_listening(xds, child, opts.timeout).await?;
    let startup = started.elapsed();
    let idle = usage(&pid, ticks);

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let cache = Arc::new(NameCache::default());
    let retries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut bench = Bench {
        events: events_rx,
        progress: Progress {
            acked: vec![[None; 4]; opts.proxies],
            failures: Vec::new(),
            responses: 0,
        },
        pid: pid.clone(),
        ticks,
        timeout: opts.timeout,
    };
    let mut phases: Vec<Phase> = Vec::new();

    // Initial sync: every proxy connects at once.
    let before = bench.usage();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(opts.proxies);
    for p in 0..opts.proxies {
        tasks.push(tokio::spawn(proxy(ProxyCtx {
            p,
            node: mesh.node(p),
            xds,
            events: events_tx.clone(),
            cache: cache.clone(),
            stop: stop_rx.clone(),
            retries: retries.clone(),
        })));
    }
    drop(events_tx);
    let n = opts.proxies;
    let (last, reached) = bench
        .wait(t0, 0, Duration::from_secs(1), |pr| {
            pr.all_types() + pr.failures.len() >= n
        })
        .await;
    let after = bench.usage();
    phases.push(Phase {
        name: format!("initial sync, {n} proxies connecting at once"),
        last_ack: last,
        done: bench.progress.all_types(),
        responses: bench.progress.responses,
        cpu: after.cpu - before.cpu,
        rss_kib: after.rss_kib,
        note: if reached {
            String::new()
        } else {
            "timed out".into()
        },
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let synced_idle = bench.usage();

    // Changes: each a file write, then every proxy ACKing a newer version.
    let added_name = format!(
        "endpoint added (WorkloadEntry {} for svc{})",
        mesh.workload(opts.endpoints).1,
        mesh.workload(opts.endpoints).0
    );
    let changes: Vec<(&str, PathBuf, String)> = vec![
        (
            "VirtualService weight shift (svc0 90/10 -> 50/50)",
            config.join("shift.yaml"),
            mesh.virtual_service(0, 50),
        ),
        (
            added_name.as_str(),
            config.join("added.yaml"),
            mesh.workload_entry(opts.endpoints, Ipv4Addr::new(127, 99, 0, 1)),
        ),
        (
            "VirtualService weight shift back (svc0 50/50 -> 90/10)",
            config.join("shift.yaml"),
            mesh.virtual_service(0, 90),
        ),
    ];
    for (name, path, text) in changes {
        let version = bench.progress.max_version();
        let responses = bench.progress.responses;
        let before = bench.usage();
        let t0 = Instant::now();
        replace_file(&path, &text)?;
        let (last, reached) = bench
            .wait(t0, version, Duration::from_secs(1), |pr| {
                pr.past(version) + pr.failures.len() >= n
            })
            .await;
        let after = bench.usage();
        phases.push(Phase {
            name: name.to_owned(),
            last_ack: last,
            done: bench.progress.past(version),
            responses: bench.progress.responses - responses,
            cpu: after.cpu - before.cpu,
            rss_kib: after.rss_kib,
            note: if reached {
                String::new()
            } else {
                "timed out".into()
            },
        });
    }
    let end = bench.usage();
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let own = usage("self", ticks);

    // The table.
    println!();
    println!(
        "meshd {}: {} services, {} endpoints, {} proxies; load average before {}, after {}",
        opts.meshd.display(),
        opts.services,
        opts.endpoints,
        opts.proxies,
        load_before,
        load_average()
    );
    println!();
    println!(
        "| phase | time to all ACKed | proxies done | responses | meshd CPU | meshd RSS after | notes |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| start (first build, until ADS listens) | {:.3} s | - | - | {:.2} s | {} | |",
        startup.as_secs_f64(),
        idle.cpu,
        mib(idle.rss_kib)
    );
    for ph in &phases {
        println!(
            "| {} | {} | {}/{} | {} | {:.2} s | {} | {} |",
            ph.name,
            secs(ph.last_ack),
            ph.done,
            n,
            ph.responses,
            ph.cpu,
            mib(ph.rss_kib),
            ph.note
        );
    }
    println!();
    println!(
        "meshd memory: idle before proxies {}, idle after initial sync {}, peak (VmHWM) {}; \
         CPU total {:.2} s",
        mib(idle.rss_kib),
        mib(synced_idle.rss_kib),
        mib(end.hwm_kib),
        end.cpu
    );
    println!(
        "this program (the {n} simulated proxies): CPU {:.2} s, peak RSS {}",
        own.cpu,
        mib(own.hwm_kib)
    );
    let retries = retries.load(std::sync::atomic::Ordering::Relaxed);
    if retries > 0 {
        println!("connection attempts retried (as Envoy retries): {retries}");
    }
    for f in bench.progress.failures.iter().take(10) {
        println!("failure: {f}");
    }
    if !bench.progress.failures.is_empty() {
        bail!("{} proxies failed", bench.progress.failures.len());
    }
    if phases.iter().any(|p| !p.note.is_empty()) {
        bail!("a phase timed out");
    }
    Ok(())
}
