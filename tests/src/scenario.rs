//! The scenario format: `testdata/scenarios/NAME/` holds `config/` (the Istio YAML meshd
//! serves) and `scenario.yaml` (which workloads to start, which requests to send and what
//! must come back). This module owns the `scenario.yaml` schema, loading it, and the checks
//! that a scenario is self-consistent before anything is started.
//!
//! The local-mode convention (the translation's, `mesh_core::xds` module docs) is encoded
//! here and nowhere else in the tests: every workload has its own loopback `ip`; its
//! sidecar's outbound listener is `ip:`[`OUTBOUND_PORT`] (HTTP-proxy style); its inbound
//! listeners are `ip:ENDPOINT_PORT` (the Service's targetPort) and its app (mesh-echo)
//! listens on `ip:app_port`, which is `ENDPOINT_PORT + `[`LOCAL_APP_PORT_OFFSET`]; a workload
//! without a proxy serves on its endpoint port itself; meshd listens on `meshd_ip`
//! ([`XDS_PORT`], [`DEBUG_PORT`]). Each scenario uses its own addresses, so scenarios can run
//! side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

/// The sidecar's outbound (HTTP proxy) listener port on the workload's address.
pub const OUTBOUND_PORT: u16 = 15001;
/// The proxy admin port on the workload's address.
pub const ADMIN_PORT: u16 = 15000;
/// Local mode: a sidecar taking endpoint port P forwards to its app on P + this.
pub const LOCAL_APP_PORT_OFFSET: u16 = 10000;
/// meshd's plaintext xDS port on `meshd_ip`.
pub const XDS_PORT: u16 = 15010;
/// meshd's debug API port on `meshd_ip`.
pub const DEBUG_PORT: u16 = 15014;

/// `scenario.yaml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows, one or two sentences.
    pub description: String,
    /// The loopback address meshd listens on (xDS and debug ports).
    pub meshd_ip: IpAddr,
    pub workloads: Vec<Workload>,
    pub requests: Vec<Step>,
    /// meshd runs its CA and Envoy sidecars (agent mode) get workload certificates over
    /// SDS: traffic between sidecars is mutual TLS where the config says so.
    #[serde(default)]
    pub mtls: bool,
    /// The lifetime of workload certificates in an mTLS scenario (meshd's
    /// `--workload-cert-ttl`; default its own, 24 h).
    #[serde(default)]
    pub cert_ttl_secs: Option<u64>,
}

/// What runs at one workload address.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The WorkloadEntry name (for `proxy: none`, just a label for the app).
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub ip: IpAddr,
    /// The app (mesh-echo) listens on `ip:app_port`; none without it.
    #[serde(default)]
    pub app_port: Option<u16>,
    /// The name the app answers with (default: the workload name).
    #[serde(default)]
    pub app_name: Option<String>,
    #[serde(default)]
    pub proxy: ProxyMode,
    /// Ports the proxy's listeners must accept on before requests start (a gateway's server
    /// ports; a sidecar's outbound port is always waited for).
    #[serde(default)]
    pub listen_ports: Vec<u16>,
}

fn default_namespace() -> String {
    "default".to_owned()
}

impl Workload {
    pub fn app_name(&self) -> &str {
        self.app_name.as_deref().unwrap_or(&self.name)
    }

    pub fn app_addr(&self) -> Option<SocketAddr> {
        self.app_port.map(|p| SocketAddr::new(self.ip, p))
    }

    /// Where requests `from` this workload go: its sidecar's outbound listener.
    pub fn outbound_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, OUTBOUND_PORT)
    }

    /// The proxy's admin address, when it has a proxy.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        (self.proxy != ProxyMode::None).then(|| SocketAddr::new(self.ip, ADMIN_PORT))
    }

    /// Addresses the proxy must accept connections on before it counts as ready.
    pub fn ready_addrs(&self) -> Vec<SocketAddr> {
        let mut ports = self.listen_ports.clone();
        if self.proxy == ProxyMode::Sidecar {
            ports.push(OUTBOUND_PORT);
        }
        ports.sort_unstable();
        ports.dedup();
        ports
            .into_iter()
            .map(|p| SocketAddr::new(self.ip, p))
            .collect()
    }
}

/// Which proxy runs beside a workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// A sidecar (node type `sidecar`).
    #[default]
    Sidecar,
    /// A standalone gateway (node type `router`).
    Gateway,
    /// No proxy: an app outside the mesh (an "external" server).
    None,
}

/// One request (sent `repeat` times, or `expect_split.n` times) and what must come back.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    /// Send through this workload's sidecar (`ip:15001`, absolute-form).
    #[serde(default)]
    pub from: Option<String>,
    /// Send straight to `WORKLOAD:PORT` or `IP:PORT` (origin-form), e.g. to a gateway.
    #[serde(default)]
    pub to: Option<String>,
    /// With `from`: open a `CONNECT host:port` tunnel through the sidecar to the URL's
    /// host and port (how a local-mode client reaches a TCP service port) and send the
    /// request inside it as bytes the sidecars do not parse.
    #[serde(default)]
    pub tunnel: bool,
    #[serde(default = "default_method")]
    pub method: String,
    /// `http://host:port/path?query`.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Bound on each request (default 10 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Checked on every response.
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Which apps answered, in percent of the responses.
    #[serde(default)]
    pub expect_split: Option<Split>,
    /// Every response came from the same app (consistent hashing).
    #[serde(default)]
    pub expect_same_backend: bool,
    /// Requests each app saw during this step (mirrors and retries included), by workload.
    #[serde(default)]
    pub expect_counts: BTreeMap<String, Count>,
}

fn default_method() -> String {
    "GET".to_owned()
}

/// The default bound on one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl Step {
    /// How many requests the step sends.
    pub fn count(&self) -> u32 {
        self.expect_split
            .as_ref()
            .map(|s| s.n)
            .or(self.repeat)
            .unwrap_or(1)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }
}

/// What one response must look like. Every field is optional; all given must hold.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: Option<u16>,
    #[serde(default)]
    pub status_in: Vec<u16>,
    /// The app that answered (the echo body's `name`).
    #[serde(alias = "body_name")]
    pub name: Option<String>,
    pub not_name: Option<String>,
    /// Whether the body is an echo reply (false: the proxy answered by itself).
    pub served_by_app: Option<bool>,
    /// The path the app received.
    pub path: Option<String>,
    /// The query the app received.
    pub query: Option<String>,
    /// The Host the app received.
    pub host: Option<Matcher>,
    /// Request headers the app received.
    #[serde(default)]
    pub headers: BTreeMap<String, Matcher>,
    /// Request headers the app must not have received.
    #[serde(default)]
    pub headers_absent: Vec<String>,
    #[serde(default)]
    pub response_headers: BTreeMap<String, Matcher>,
    #[serde(default)]
    pub response_headers_absent: Vec<String>,
    /// The response body text.
    pub body: Option<Matcher>,
    /// The echo app's attempt number for the request's key (retries).
    pub attempt: Option<u64>,
    pub min_duration_ms: Option<u64>,
    pub max_duration_ms: Option<u64>,
    /// The request gets no HTTP response at all (the connection is refused, reset or
    /// closed: a STRICT mTLS port and a plaintext client).
    #[serde(default)]
    pub refused: bool,
}

/// A string check: a plain scalar is exact (`200` and `true` are read as text); a map
/// combines `exact`, `prefix`, `suffix`, `contains` (all given must hold).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "MatcherWire")]
pub enum Matcher {
    Exact(String),
    Parts(MatcherParts),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MatcherWire {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Parts(MatcherParts),
}

impl From<MatcherWire> for Matcher {
    fn from(w: MatcherWire) -> Matcher {
        match w {
            MatcherWire::Text(s) => Matcher::Exact(s),
            MatcherWire::Int(n) => Matcher::Exact(n.to_string()),
            MatcherWire::Float(n) => Matcher::Exact(n.to_string()),
            MatcherWire::Bool(b) => Matcher::Exact(b.to_string()),
            MatcherWire::Parts(p) => Matcher::Parts(p),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatcherParts {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
}

impl Matcher {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(e) => s == e,
            Matcher::Parts(p) => {
                p.exact.as_ref().is_none_or(|e| s == e)
                    && p.prefix.as_ref().is_none_or(|e| s.starts_with(e.as_str()))
                    && p.suffix.as_ref().is_none_or(|e| s.ends_with(e.as_str()))
                    && p.contains.as_ref().is_none_or(|e| s.contains(e.as_str()))
            }
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(e) => write!(f, "{e:?}"),
            Matcher::Parts(p) => {
                let mut parts = Vec::new();
                for (what, v) in [
                    ("exactly", &p.exact),
                    ("starting with", &p.prefix),
                    ("ending with", &p.suffix),
                    ("containing", &p.contains),
                ] {
                    if let Some(v) = v {
                        parts.push(format!("{what} {v:?}"));
                    }
                }
                write!(f, "{}", parts.join(" and "))
            }
        }
    }
}

/// `expect_split: {reviews-v1: 80, reviews-v3: 20, tolerance: 10, n: 200}`: send `n`
/// requests; each app's share must be within `tolerance` percentage points of its weight, and
/// no other app (or proxy-made response) may appear.
#[derive(Clone, Debug, Deserialize)]
pub struct Split {
    pub n: u32,
    /// Percentage points.
    pub tolerance: f64,
    #[serde(flatten)]
    pub weights: BTreeMap<String, f64>,
}

/// An expected request count: exact, or `{min, max}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Count {
    Exact(u64),
    Range {
        #[serde(default)]
        min: Option<u64>,
        #[serde(default)]
        max: Option<u64>,
    },
}

impl Count {
    pub fn min(self) -> u64 {
        match self {
            Count::Exact(n) => n,
            Count::Range { min, .. } => min.unwrap_or(0),
        }
    }

    pub fn max(self) -> Option<u64> {
        match self {
            Count::Exact(n) => Some(n),
            Count::Range { max, .. } => max,
        }
    }

    pub fn holds(self, n: u64) -> bool {
        n >= self.min() && self.max().is_none_or(|m| n <= m)
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min(), self.max()) {
            (a, Some(b)) if a == b => write!(f, "exactly {a}"),
            (0, Some(b)) => write!(f, "at most {b}"),
            (a, Some(b)) => write!(f, "between {a} and {b}"),
            (a, None) => write!(f, "at least {a}"),
        }
    }
}

/// Where a step's requests go, resolved against the scenario's workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Through this sidecar's outbound listener.
    Proxy(SocketAddr),
    /// Through a CONNECT tunnel that this sidecar's outbound listener opens.
    Tunnel(SocketAddr),
    /// Straight to this address.
    Direct(SocketAddr),
}

/// A scenario read from its directory.
#[derive(Clone, Debug)]
pub struct LoadedScenario {
    /// The directory name.
    pub name: String,
    pub dir: PathBuf,
    /// `dir/config`: what meshd, `meshctl validate` and `meshctl analyze` read.
    pub config_dir: PathBuf,
    pub scenario: Scenario,
}

/// `testdata/scenarios` in this workspace.
pub fn scenarios_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/scenarios")
}

/// Every scenario directory under `root`, sorted by name.
pub fn scenario_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let path = entry?.path();
        if path.join("scenario.yaml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Loads every scenario under `root`.
pub fn load_all(root: &Path) -> anyhow::Result<Vec<LoadedScenario>> {
    scenario_dirs(root)?
        .iter()
        .map(|d| LoadedScenario::load(d))
        .collect()
}

impl LoadedScenario {
    /// Reads `dir/scenario.yaml`.
    pub fn load(dir: &Path) -> anyhow::Result<LoadedScenario> {
        let file = dir.join("scenario.yaml");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let scenario = parse(&text).with_context(|| format!("in {}", file.display()))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(LoadedScenario {
            name,
            dir: dir.to_owned(),
            config_dir: dir.join("config"),
            scenario,
        })
    }

    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.scenario.workloads.iter().find(|w| w.name == name)
    }

    pub fn xds_addr(&self) -> SocketAddr {
        SocketAddr::new(self.scenario.meshd_ip, XDS_PORT)
    }

    pub fn debug_addr(&self) -> SocketAddr {
        SocketAddr::new(self.scenario.meshd_ip, DEBUG_PORT)
    }

    /// Where a step's requests go.
    pub fn target(&self, step: &Step) -> anyhow::Result<Target> {
        match (&step.from, &step.to) {
            (Some(from), None) => {
                let w = self
                    .workload(from)
                    .with_context(|| format!("`from: {from}` names no workload"))?;
                if w.proxy != ProxyMode::Sidecar {
                    bail!("`from: {from}`: that workload has no sidecar");
                }
                if step.tunnel {
                    return Ok(Target::Tunnel(w.outbound_addr()));
                }
                Ok(Target::Proxy(w.outbound_addr()))
            }
            (None, Some(_)) if step.tunnel => bail!("`tunnel` needs `from` (a sidecar)"),
            (None, Some(to)) => {
                if let Ok(addr) = to.parse::<SocketAddr>() {
                    return Ok(Target::Direct(addr));
                }
                let (name, port) = to
                    .rsplit_once(':')
                    .with_context(|| format!("`to: {to}` is not WORKLOAD:PORT or IP:PORT"))?;
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("`to: {to}`: bad port"))?;
                let w = self
                    .workload(name)
                    .with_context(|| format!("`to: {to}` names no workload"))?;
                Ok(Target::Direct(SocketAddr::new(w.ip, port)))
            }
            _ => bail!("give exactly one of `from` (a workload with a sidecar) and `to`"),
        }
    }

    /// Every inconsistency in the scenario, as sentences (empty when it is sound).
    pub fn problems(&self) -> Vec<String> {
        let s = &self.scenario;
        let mut out = Vec::new();
        if !s.meshd_ip.is_loopback() {
            out.push(format!("meshd_ip {} is not a loopback address", s.meshd_ip));
        }
        if s.workloads.is_empty() {
            out.push("no workloads".to_owned());
        }
        if s.requests.is_empty() {
            out.push("no requests".to_owned());
        }
        let mut names = BTreeSet::new();
        let mut ips = BTreeSet::from([s.meshd_ip]);
        for w in &s.workloads {
            if !names.insert(w.name.as_str()) {
                out.push(format!("workload {:?} appears twice", w.name));
            }
            if !w.ip.is_loopback() {
                out.push(format!("workload {}: {} is not loopback", w.name, w.ip));
            }
            if !ips.insert(w.ip) {
                out.push(format!(
                    "workload {}: address {} is already used in this scenario",
                    w.name, w.ip
                ));
            }
            if w.proxy == ProxyMode::None && w.app_port.is_none() {
                out.push(format!("workload {}: neither a proxy nor an app", w.name));
            }
            if let Some(p) = w.app_port
                && (p == OUTBOUND_PORT || p == ADMIN_PORT)
            {
                out.push(format!("workload {}: app_port {p} is a proxy port", w.name));
            }
        }
        let mut step_names = BTreeSet::new();
        for step in &s.requests {
            let at = format!("request {:?}", step.name);
            if !step_names.insert(step.name.as_str()) {
                out.push(format!("{at}: the name appears twice"));
            }
            if let Err(e) = self.target(step) {
                out.push(format!("{at}: {e:#}"));
            }
            if let Err(e) = crate::client::build(
                &crate::client::HttpRequest {
                    method: step.method.clone(),
                    url: step.url.clone(),
                    headers: step
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    body: step.body.clone(),
                },
                // Only the request is checked here; nothing is sent.
                crate::client::Via::Proxy(SocketAddr::new(s.meshd_ip, XDS_PORT)),
            ) {
                out.push(format!("{at}: {e:#}"));
            }
            if step.count() == 0 {
                out.push(format!("{at}: sends no request"));
            }
            if step.repeat.is_some() && step.expect_split.is_some() {
                out.push(format!("{at}: give `repeat` or `expect_split.n`, not both"));
            }
            if step.expect.is_none()
                && step.expect_split.is_none()
                && step.expect_counts.is_empty()
                && !step.expect_same_backend
            {
                out.push(format!("{at}: expects nothing"));
            }
            if let Some(split) = &step.expect_split {
                let total: f64 = split.weights.values().sum();
                if (total - 100.0).abs() > 0.001 {
                    out.push(format!(
                        "{at}: expect_split weights add up to {total}, not 100"
                    ));
                }
                if !(0.0..=100.0).contains(&split.tolerance) {
                    out.push(format!(
                        "{at}: tolerance {} is not a percentage",
                        split.tolerance
                    ));
                }
                for name in split.weights.keys() {
                    if !s.workloads.iter().any(|w| w.app_name() == name) {
                        out.push(format!("{at}: expect_split names no app {name:?}"));
                    }
                }
            }
            for name in step.expect_counts.keys() {
                match self.workload(name) {
                    Some(w) if w.app_port.is_some() => {}
                    _ => out.push(format!(
                        "{at}: expect_counts names {name:?}, not a workload with an app"
                    )),
                }
            }
            if let Some(e) = &step.expect
                && let Some(name) = &e.name
                && !s.workloads.iter().any(|w| w.app_name() == name)
            {
                out.push(format!("{at}: expect.name {name:?} is no app"));
            }
        }
        out
    }
}

/// How scenario files are read: YAML 1.2 booleans only, so `yes` in a header value stays
/// text.
pub fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

/// Parses YAML text (one document) into `T` with [`yaml_options`].
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Parses `scenario.yaml` text.
pub fn parse(text: &str) -> anyhow::Result<Scenario> {
    from_yaml(text)
}

/// Addresses used by more than one scenario (scenarios must not share any, so they can run
/// side by side).
pub fn shared_addresses(all: &[LoadedScenario]) -> Vec<String> {
    let mut seen: BTreeMap<IpAddr, &str> = BTreeMap::new();
    let mut out = Vec::new();
    for s in all {
        let ips: BTreeSet<IpAddr> = std::iter::once(s.scenario.meshd_ip)
            .chain(s.scenario.workloads.iter().map(|w| w.ip))
            .collect();
        for ip in ips {
            if let Some(other) = seen.insert(ip, &s.name) {
                out.push(format!("{ip} is used by both {other} and {}", s.name));
            }
        }
    }
    out
}

/// The Istio objects of a config directory, as far as the runner needs them.
#[derive(Clone, Debug, Default)]
pub struct ConfigIndex {
    /// `ns/name` -> WorkloadEntry spec and labels.
    pub workload_entries: BTreeMap<String, WorkloadEntry>,
    /// Addresses of ServiceEntry endpoints.
    pub service_entry_addresses: BTreeSet<String>,
    pub services: Vec<KubeService>,
}

/// What the runner reads from a Kubernetes Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeService {
    pub namespace: String,
    pub name: String,
    pub selector: BTreeMap<String, String>,
    /// The endpoint ports: numeric `targetPort`, else `port`.
    pub target_ports: Vec<u16>,
}

impl KubeService {
    pub fn selects(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespace == namespace
            && !self.selector.is_empty()
            && self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// What the runner reads from a WorkloadEntry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadEntry {
    pub address: String,
    /// The object's labels merged with `spec.labels`.
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
}

/// Reads every YAML document of the `.yaml`/`.yml` files under `dir` (recursively).
pub fn read_config_documents(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut files = Vec::new();
    collect_yaml(dir, &mut files)?;
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        docs.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    Ok(docs)
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl ConfigIndex {
    pub fn from_documents(docs: &[Value]) -> ConfigIndex {
        let mut index = ConfigIndex::default();
        for doc in docs {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            let meta = doc.get("metadata");
            let name = meta
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let ns = meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            let spec = doc.get("spec");
            match kind {
                "WorkloadEntry" => {
                    let mut labels = string_map(meta.and_then(|m| m.get("labels")));
                    labels.extend(string_map(spec.and_then(|s| s.get("labels"))));
                    index.workload_entries.insert(
                        format!("{ns}/{name}"),
                        WorkloadEntry {
                            address: spec
                                .and_then(|s| s.get("address"))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            labels,
                            service_account: spec
                                .and_then(|s| s.get("serviceAccount"))
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        },
                    );
                }
                "Service" => {
                    let ports = spec.and_then(|s| s.get("ports")).and_then(Value::as_array);
                    let target_ports = ports
                        .into_iter()
                        .flatten()
                        .filter_map(|p| {
                            p.get("targetPort")
                                .and_then(Value::as_u64)
                                .or_else(|| p.get("port").and_then(Value::as_u64))
                                .and_then(|n| u16::try_from(n).ok())
                        })
                        .collect();
                    index.services.push(KubeService {
                        namespace: ns.to_owned(),
                        name: name.to_owned(),
                        selector: string_map(spec.and_then(|s| s.get("selector"))),
                        target_ports,
                    });
                }
                "ServiceEntry" => {
                    let endpoints = spec
                        .and_then(|s| s.get("endpoints"))
                        .and_then(Value::as_array);
                    for ep in endpoints.into_iter().flatten() {
                        if let Some(a) = ep.get("address").and_then(Value::as_str) {
                            index.service_entry_addresses.insert(a.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        index
    }

    pub fn load(dir: &Path) -> anyhow::Result<ConfigIndex> {
        Ok(ConfigIndex::from_documents(&read_config_documents(dir)?))
    }

    pub fn workload_entry(&self, w: &Workload) -> Option<&WorkloadEntry> {
        self.workload_entries
            .get(&format!("{}/{}", w.namespace, w.name))
    }

    /// Where `scenario.yaml` and the config disagree: every proxied workload must be a
    /// WorkloadEntry at the same address, and a sidecar's app must listen where its sidecar
    /// forwards (a selecting Service's endpoint port + [`LOCAL_APP_PORT_OFFSET`]).
    pub fn mismatches(&self, s: &Scenario) -> Vec<String> {
        let mut out = Vec::new();
        for w in &s.workloads {
            if w.proxy == ProxyMode::None {
                continue;
            }
            let at = format!("workload {}/{}", w.namespace, w.name);
            let Some(we) = self.workload_entry(w) else {
                out.push(format!("{at} has a proxy but no WorkloadEntry in config/"));
                continue;
            };
            if we.address != w.ip.to_string() {
                out.push(format!(
                    "{at}: scenario.yaml says {}, its WorkloadEntry says {}",
                    w.ip, we.address
                ));
            }
            if let (ProxyMode::Sidecar, Some(app)) = (w.proxy, w.app_port) {
                let expected: Vec<u16> = self
                    .services
                    .iter()
                    .filter(|svc| svc.selects(&w.namespace, &we.labels))
                    .flat_map(|svc| svc.target_ports.iter())
                    .filter_map(|p| p.checked_add(LOCAL_APP_PORT_OFFSET))
                    .collect();
                if !expected.contains(&app) {
                    out.push(format!(
                        "{at}: app_port {app}, but its sidecar forwards to {expected:?} \
                         (endpoint port + {LOCAL_APP_PORT_OFFSET} of the Services selecting it)"
                    ));
                }
            }
        }
        out
    }
}

/// Copies a scenario directory (or the whole scenarios root) with every `127.10.` address
/// moved to `second_octet` (`127.SECOND.`), so a test can run scenarios beside the scenario
/// suites without address clashes (scenario N uses `127.10.N.0/24`, see the README).
/// Test suites that copy: 11 config_dump, 12 describe_meshd, 13 scenarios_native.
pub fn copy_moving_addresses(from: &Path, to: &Path, second_octet: u8) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let target = to.join(path.file_name().context("a file name")?);
        if path.is_dir() {
            copy_moving_addresses(&path, &target, second_octet)?;
        } else {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            std::fs::write(
                &target,
                text.replace("127.10.", &format!("127.{second_octet}.")),
            )
            .with_context(|| format!("writing {}", target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const SAMPLE: &str = r#"
description: Header routing.
meshd_ip: 127.10.200.1
workloads:
  - name: client
    namespace: shop
    ip: 127.10.200.10
  - name: reviews-v1
    namespace: shop
    ip: 127.10.200.21
    app_port: 19080
  - name: ingress
    namespace: istio-system
    ip: 127.10.200.5
    proxy: gateway
    listen_ports: [8080]
requests:
  - name: jason
    from: client
    url: http://reviews.shop:9080/x
    headers: {end-user: jason}
    expect: {status: 200, body_name: reviews-v1, host: {prefix: reviews}}
  - name: split
    from: client
    url: http://reviews.shop:9080/
    expect_split: {reviews-v1: 100, tolerance: 5, n: 20}
    expect_counts: {reviews-v1: 20}
  - name: gateway
    to: ingress:8080
    url: http://shop.example.com/
    expect_counts: {reviews-v1: {min: 1}}
"#;

    fn loaded(text: &str) -> LoadedScenario {
        LoadedScenario {
            name: "sample".into(),
            dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent/config"),
            scenario: parse(text).unwrap(),
        }
    }

    #[test]
    fn sample_parses_and_is_sound() {
        let s = loaded(SAMPLE);
        assert_eq!(s.problems(), Vec::<String>::new());
        let steps = &s.scenario.requests;
        assert_eq!(
            s.target(&steps[0]).unwrap(),
            Target::Proxy("127.10.200.10:15001".parse().unwrap())
        );
        assert_eq!(
            s.target(&steps[2]).unwrap(),
            Target::Direct("127.10.200.5:8080".parse().unwrap())
        );
        assert_eq!(steps[0].count(), 1);
        assert_eq!(steps[1].count(), 20);
        let split = steps[1].expect_split.as_ref().unwrap();
        assert_eq!(split.weights.get("reviews-v1"), Some(&100.0));
        assert_eq!(split.tolerance, 5.0);
        assert_eq!(steps[1].expect_counts["reviews-v1"], Count::Exact(20));
        assert_eq!(
            steps[2].expect_counts["reviews-v1"],
            Count::Range {
                min: Some(1),
                max: None
            }
        );
        let e = steps[0].expect.as_ref().unwrap();
        assert_eq!(e.name.as_deref(), Some("reviews-v1"));
        assert!(e.host.as_ref().unwrap().matches("reviews.shop:9080"));
        let ingress = s.workload("ingress").unwrap();
        assert_eq!(
            ingress.ready_addrs(),
            vec!["127.10.200.5:8080".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            s.workload("client").unwrap().ready_addrs(),
            vec!["127.10.200.10:15001".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn typos_are_refused() {
        let bad = SAMPLE.replace("expect: {status: 200", "expect: {stauts: 200");
        let err = parse(&bad).unwrap_err();
        assert!(format!("{err:#}").contains("stauts"), "{err:#}");
    }

    #[test]
    fn inconsistencies_are_reported() {
        let bad = SAMPLE
            .replace("from: client", "from: nobody")
            .replace("reviews-v1: 100, tolerance", "reviews-v1: 90, tolerance")
            .replace("ip: 127.10.200.21", "ip: 127.10.200.10");
        let problems = loaded(&bad).problems();
        let text = problems.join("\n");
        assert!(text.contains("`from: nobody` names no workload"), "{text}");
        assert!(text.contains("add up to 90"), "{text}");
        assert!(text.contains("already used"), "{text}");
    }

    #[test]
    fn from_a_gateway_or_both_from_and_to_is_refused() {
        let s = loaded(SAMPLE);
        let mut step = s.scenario.requests[0].clone();
        step.from = Some("ingress".into());
        assert!(s.target(&step).is_err());
        step.to = Some("127.0.0.1:1".into());
        assert!(s.target(&step).is_err());
    }

    #[test]
    fn matchers_and_counts() {
        let m = Matcher::Parts(MatcherParts {
            prefix: Some("http://a".into()),
            suffix: Some("/x".into()),
            ..MatcherParts::default()
        });
        assert!(m.matches("http://a:9080/x"));
        assert!(!m.matches("http://b/x"));
        assert_eq!(
            m.to_string(),
            "starting with \"http://a\" and ending with \"/x\""
        );
        assert!(Count::Exact(3).holds(3));
        assert!(!Count::Exact(3).holds(4));
        let r = Count::Range {
            min: Some(2),
            max: None,
        };
        assert!(r.holds(9) && !r.holds(1));
        assert_eq!(r.to_string(), "at least 2");
    }

    #[test]
    fn config_index_reads_workload_entries_and_service_entries() {
        let docs: Vec<Value> = serde_saphyr::from_multiple(
            r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {address: 127.10.200.10, labels: {version: v1}, serviceAccount: sa}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [api.example]
  endpoints: [{address: 127.10.200.30}]
"#,
        )
        .unwrap();
        let index = ConfigIndex::from_documents(&docs);
        let we = &index.workload_entries["shop/client"];
        assert_eq!(we.address, "127.10.200.10");
        assert_eq!(we.labels.len(), 2);
        assert_eq!(we.service_account.as_deref(), Some("sa"));
        assert!(index.service_entry_addresses.contains("127.10.200.30"));
        let s = loaded(SAMPLE);
        let m = index.mismatches(&s.scenario);
        // reviews-v1 and the gateway have no WorkloadEntry here.
        assert_eq!(m.len(), 2, "{m:?}");
    }

    #[test]
    fn a_sidecars_app_must_listen_where_the_sidecar_forwards() {
        let docs: Vec<Value> = serde_saphyr::from_multiple(
            r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: grpc, port: 7070, targetPort: 7071}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec: {address: 127.10.200.21}
"#,
        )
        .unwrap();
        let index = ConfigIndex::from_documents(&docs);
        assert_eq!(index.services[0].target_ports, [9080, 7071]);
        let mut s = loaded(SAMPLE).scenario;
        s.workloads.retain(|w| w.name == "reviews-v1");
        assert_eq!(index.mismatches(&s), Vec::<String>::new());
        s.workloads[0].app_port = Some(9080);
        let m = index.mismatches(&s);
        assert_eq!(m.len(), 1);
        assert!(
            m[0].contains("app_port 9080, but its sidecar forwards to [19080, 17071]"),
            "{m:?}"
        );
    }
}
