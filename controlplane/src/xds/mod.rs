//! The ADS server: xDS over one gRPC stream per proxy, state of the world.
//!
//! This module owns the xDS types meshd serves and how a [`ProxyConfig`] is split and
//! encoded into them ([`XdsType`], [`encode`]), the reading of a proxy's identity from its
//! node ([`proxy_info`]), and the gRPC service ([`AdsService`]); [`connection`] owns one
//! stream. Delta xDS answers `Unimplemented`, and Envoy falls back to state of the world.

pub mod connection;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Any, Struct, Value};
use mesh_core::xds::{ProxyConfig, ProxyInfo, type_url};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::metrics::Metrics;
use crate::source::ConfigState;
use crate::status::SyncTable;
use crate::translate::Translator;

/// The xDS types meshd serves, in the order Envoy wants them pushed: clusters before their
/// endpoints, listeners before their routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl XdsType {
    /// Push order.
    pub const ALL: [XdsType; 4] = [
        XdsType::Cluster,
        XdsType::Endpoint,
        XdsType::Listener,
        XdsType::Route,
    ];

    pub fn from_type_url(url: &str) -> Option<XdsType> {
        XdsType::ALL.into_iter().find(|t| t.type_url() == url)
    }

    pub fn type_url(self) -> &'static str {
        match self {
            XdsType::Cluster => type_url::CLUSTER,
            XdsType::Endpoint => type_url::ENDPOINT,
            XdsType::Listener => type_url::LISTENER,
            XdsType::Route => type_url::ROUTE,
        }
    }

    /// `cds`, `eds`, `lds`, `rds`: the keys of `/debug/syncz` and the metric label.
    pub fn short(self) -> &'static str {
        match self {
            XdsType::Cluster => "cds",
            XdsType::Endpoint => "eds",
            XdsType::Listener => "lds",
            XdsType::Route => "rds",
        }
    }

    /// Whether the proxy names the resources it wants (EDS, RDS) rather than taking all of
    /// them (CDS, LDS).
    pub fn by_name(self) -> bool {
        matches!(self, XdsType::Endpoint | XdsType::Route)
    }
}

/// One type's resources, by name, encoded. Shared ([`Interner`]): many proxies receive the
/// same bytes for most resources, and keep them once.
pub type Encoded = BTreeMap<String, Arc<Any>>;

/// A proxy's resources, encoded, indexed by [`XdsType`] (`encoded[t as usize]`). This is
/// what a connection keeps: the bytes it sends, and what `/debug/config_dump` decodes.
pub type EncodedConfig = [Encoded; 4];

/// Encodes one type's resources of a proxy config. Uses mesh-core's deterministic encoders
/// (map entries in key order): prost writes `HashMap` fields in hash order, and change
/// detection compares these bytes, so unstable bytes would mean needless pushes.
pub fn encode(config: &ProxyConfig, t: XdsType) -> Encoded {
    use mesh_core::xds::wire;
    let any = |value: Vec<u8>| {
        Arc::new(Any {
            type_url: t.type_url().to_owned(),
            value,
        })
    };
    match t {
        XdsType::Cluster => config
            .clusters
            .iter()
            .map(|c| (c.name.clone(), any(wire::encode_cluster(c))))
            .collect(),
        XdsType::Endpoint => config
            .endpoints
            .iter()
            .map(|e| (e.cluster_name.clone(), any(wire::encode_endpoints(e))))
            .collect(),
        XdsType::Listener => config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), any(wire::encode_listener(l))))
            .collect(),
        XdsType::Route => config
            .routes
            .iter()
            .map(|r| (r.name.clone(), any(wire::encode_route_configuration(r))))
            .collect(),
    }
}

/// Encodes every type of a proxy config.
pub fn encode_all(config: &ProxyConfig) -> EncodedConfig {
    XdsType::ALL.map(|t| encode(config, t))
}

/// Shares identical encoded resources between proxies: a proxy's config is mostly the same
/// clusters, endpoints and routes as its neighbours', and with a thousand proxies keeping
/// one copy each is most of meshd's memory. Keeps the resources of one config version (the
/// newest it was asked about); proxies still on an older version keep their own copies.
///
/// The trade, measured with `xds-scale` (BENCHMARKS.md): about half the memory, but more
/// CPU per push with glibc's allocator. `MESHD_SHARE_RESOURCES=0` turns sharing off.
#[derive(Default)]
pub struct Interner {
    off: bool,
    state: std::sync::Mutex<InternState>,
}

#[derive(Default)]
struct InternState {
    version: u64,
    /// By a digest of type URL and bytes; equal digests are compared byte for byte.
    resources: HashMap<u64, Vec<Arc<Any>>>,
}

impl Interner {
    /// Replaces each resource of `config` (built from config `version`) by an equal one
    /// already shared, or shares it. Blocking (a lock, no await): call it where the config
    /// is generated.
    pub fn intern(&self, version: u64, mut config: EncodedConfig) -> EncodedConfig {
        if self.off {
            return config;
        }
        let digests: Vec<Vec<u64>> = config
            .iter()
            .map(|resources| resources.values().map(|a| any_digest(a)).collect())
            .collect();
        let Ok(mut state) = self.state.lock() else {
            return config;
        };
        if version > state.version {
            state.version = version;
            state.resources.clear();
        } else if version < state.version {
            return config;
        }
        // The replaced copies are freed after the lock is released.
        let mut replaced: Vec<Arc<Any>> = Vec::new();
        for (resources, digests) in config.iter_mut().zip(digests) {
            for (any, digest) in resources.values_mut().zip(digests) {
                let same = state.resources.entry(digest).or_default();
                match same.iter().find(|s| Arc::ptr_eq(s, any) || ***s == **any) {
                    Some(shared) => replaced.push(std::mem::replace(any, shared.clone())),
                    None => same.push(any.clone()),
                }
            }
        }
        drop(state);
        drop(replaced);
        config
    }
}

/// A fast digest of an encoded resource, eight bytes at a time (equal digests are compared
/// byte for byte, so collisions cost time, never correctness).
fn any_digest(any: &Any) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (any.value.len() as u64) ^ (any.type_url.len() as u64).rotate_left(32);
    let mut mix = |word: u64| h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    for bytes in [any.type_url.as_bytes(), any.value.as_slice()] {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            mix(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        w[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        mix(u64::from_le_bytes(w));
    }
    h
}

/// Who a proxy is: its node id, refined by the node metadata (`NAMESPACE`, `LABELS`,
/// `SERVICE_ACCOUNT`, `WORKLOAD_NAME`, `LOCAL_MODE`).
pub fn proxy_info(node: &Node) -> Result<ProxyInfo, String> {
    let mut info = ProxyInfo::from_node_id(&node.id)?;
    let Some(md) = &node.metadata else {
        return Ok(info);
    };
    let string = |key: &str| md.fields.get(key).and_then(value_string);
    if let Some(ns) = string("NAMESPACE").filter(|s| !s.is_empty()) {
        info.namespace = ns;
    }
    if let Some(w) = string("WORKLOAD_NAME").filter(|s| !s.is_empty()) {
        info.workload = w;
    }
    if let Some(sa) = string("SERVICE_ACCOUNT").filter(|s| !s.is_empty()) {
        info.service_account = sa;
    }
    if let Some(Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }) = md.fields.get("LABELS")
    {
        info.labels = fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), value_string(v)?)))
            .collect();
    }
    match md.fields.get("LOCAL_MODE").map(|v| &v.kind) {
        Some(Some(Kind::BoolValue(b))) => info.local_mode = *b,
        Some(Some(Kind::StringValue(s))) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => info.local_mode = true,
            "false" | "0" | "no" => info.local_mode = false,
            other => {
                return Err(format!(
                    "node metadata LOCAL_MODE {other:?} is not a boolean"
                ));
            }
        },
        _ => {}
    }
    Ok(info)
}

fn value_string(v: &Value) -> Option<String> {
    match &v.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        Some(Kind::BoolValue(b)) => Some(b.to_string()),
        Some(Kind::NumberValue(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// What every ADS connection shares.
pub struct Shared {
    pub translator: Arc<dyn Translator>,
    pub config: watch::Receiver<Arc<ConfigState>>,
    pub status: Arc<SyncTable>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    /// Bounds how many proxies' configs are generated at once (istiod's push throttle).
    pub generate_permits: Semaphore,
    /// Encoded resources shared between proxies.
    pub interner: Interner,
    next_connection: AtomicU64,
    next_nonce: AtomicU64,
}

impl Shared {
    pub fn new(
        translator: Arc<dyn Translator>,
        config: watch::Receiver<Arc<ConfigState>>,
        status: Arc<SyncTable>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            translator,
            config,
            status,
            metrics,
            shutdown,
            generate_permits: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            ),
            interner: Interner {
                off: std::env::var("MESHD_SHARE_RESOURCES").is_ok_and(|v| v == "0"),
                ..Interner::default()
            },
            next_connection: AtomicU64::new(1),
            next_nonce: AtomicU64::new(1),
        }
    }

    fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    fn nonce(&self) -> String {
        self.next_nonce.fetch_add(1, Ordering::Relaxed).to_string()
    }
}

/// The gRPC Aggregated Discovery Service.
#[derive(Clone)]
pub struct AdsService {
    shared: Arc<Shared>,
}

impl AdsService {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdsService { shared }
    }

    pub fn into_server(self) -> AggregatedDiscoveryServiceServer<AdsService> {
        AggregatedDiscoveryServiceServer::new(self).max_decoding_message_size(16 * 1024 * 1024)
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request.remote_addr();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(8);
        let shared = self.shared.clone();
        let id = shared.connection_id();
        tokio::spawn(connection::run(shared, id, peer, inbound, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "meshd serves state-of-the-world xDS only; delta xDS is not built yet",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn s(v: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(v.to_owned())),
        }
    }

    #[test]
    fn node_metadata_refines_the_node_id() {
        let labels = Struct {
            fields: HashMap::from([("app".to_owned(), s("catalog")), ("v".to_owned(), s("1"))]),
        };
        let node = Node {
            id: "sidecar~127.0.0.5~catalog-abc.shop~shop.svc.cluster.local".into(),
            metadata: Some(Struct {
                fields: HashMap::from([
                    ("NAMESPACE".to_owned(), s("shop")),
                    ("WORKLOAD_NAME".to_owned(), s("catalog")),
                    ("SERVICE_ACCOUNT".to_owned(), s("catalog-sa")),
                    (
                        "LABELS".to_owned(),
                        Value {
                            kind: Some(Kind::StructValue(labels)),
                        },
                    ),
                    ("LOCAL_MODE".to_owned(), s("false")),
                ]),
            }),
            ..Node::default()
        };
        let p = proxy_info(&node).unwrap();
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.workload, "catalog");
        assert_eq!(p.service_account, "catalog-sa");
        assert_eq!(p.labels["app"], "catalog");
        assert!(!p.local_mode);
        assert_eq!(p.ip.to_string(), "127.0.0.5");
    }

    #[test]
    fn bare_node_ids_and_bad_ones() {
        let p = proxy_info(&Node {
            id: "sidecar~127.0.0.5~a.b~b.svc.cluster.local".into(),
            ..Node::default()
        })
        .unwrap();
        assert!(p.local_mode);
        assert_eq!(p.service_account, "default");
        assert!(
            proxy_info(&Node {
                id: "nonsense".into(),
                ..Node::default()
            })
            .is_err()
        );
    }

    #[test]
    fn interner_shares_equal_resources_of_one_version() {
        let config = |bytes: &[u8]| -> EncodedConfig {
            let mut c = EncodedConfig::default();
            c[0].insert(
                "a".into(),
                Arc::new(Any {
                    type_url: type_url::CLUSTER.into(),
                    value: bytes.to_vec(),
                }),
            );
            c
        };
        let interner = Interner::default();
        let one = interner.intern(1, config(b"x"));
        let two = interner.intern(1, config(b"x"));
        let other = interner.intern(1, config(b"y"));
        assert!(Arc::ptr_eq(&one[0]["a"], &two[0]["a"]));
        assert!(!Arc::ptr_eq(&one[0]["a"], &other[0]["a"]));
        assert_eq!(other[0]["a"].value, b"y");
        // A newer version starts afresh; an older one is left alone.
        let three = interner.intern(2, config(b"x"));
        assert!(!Arc::ptr_eq(&one[0]["a"], &three[0]["a"]));
        let stale = interner.intern(1, config(b"x"));
        assert!(!Arc::ptr_eq(&three[0]["a"], &stale[0]["a"]));
        assert_eq!(*stale[0]["a"], *three[0]["a"]);
    }

    #[test]
    fn push_order_and_urls() {
        assert_eq!(
            XdsType::ALL.map(XdsType::short),
            ["cds", "eds", "lds", "rds"]
        );
        for t in XdsType::ALL {
            assert_eq!(XdsType::from_type_url(t.type_url()), Some(t));
        }
        assert_eq!(XdsType::from_type_url("type.googleapis.com/x"), None);
    }
}
