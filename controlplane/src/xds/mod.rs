//! The ADS server: xDS over one gRPC stream per proxy, state of the world.
//!
//! This module owns the xDS types meshd serves ([`XdsType`]), the reading of a proxy's
//! identity from its node ([`proxy_info`]), what all streams share ([`Shared`], with the
//! interned subscriptions, [`NameSets`]); [`grpc`] owns the gRPC method ([`AdsServer`]) and
//! the framing of responses, [`connection`] one stream. Proxies' resources come encoded from
//! the translation (`mesh_core::xds::cache`): the part proxies of one outbound key share is
//! generated and encoded once per config version and held once, whatever the number of
//! proxies. Delta xDS answers `Unimplemented`, and Envoy falls back to state of the world.

pub mod connection;
pub mod grpc;

pub use grpc::AdsServer;

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use mesh_core::xds::cache::ResourceKind;
use mesh_core::xds::{ProxyInfo, type_url};
use prost::Message;
use tokio::sync::{Semaphore, watch};

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

    /// mesh-core's name for the type.
    pub fn kind(self) -> ResourceKind {
        match self {
            XdsType::Cluster => ResourceKind::Cluster,
            XdsType::Endpoint => ResourceKind::Endpoint,
            XdsType::Listener => ResourceKind::Listener,
            XdsType::Route => ResourceKind::Route,
        }
    }

    /// Whether the proxy names the resources it wants (EDS, RDS) rather than taking all of
    /// them (CDS, LDS).
    pub fn by_name(self) -> bool {
        matches!(self, XdsType::Endpoint | XdsType::Route)
    }
}

/// An encoded resource of type `t` as protobuf debug text (for
/// `/debug/config_dump?full=true`).
pub fn debug_text(t: XdsType, bytes: &[u8]) -> String {
    fn text<M: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> String {
        match M::decode(bytes) {
            Ok(m) => format!("{m:#?}"),
            Err(e) => format!("(cannot decode: {e})"),
        }
    }
    match t {
        XdsType::Cluster => text::<Cluster>(bytes),
        XdsType::Endpoint => text::<ClusterLoadAssignment>(bytes),
        XdsType::Listener => text::<Listener>(bytes),
        XdsType::Route => text::<RouteConfiguration>(bytes),
    }
}

/// Who a proxy is: its node id, refined by the node metadata (`NAMESPACE`, `LABELS`,
/// `SERVICE_ACCOUNT`, `WORKLOAD_NAME`, `LOCAL_MODE`, `MESH_MTLS`).
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
    // MESH_MTLS: the proxy's agent serves it a workload certificate over SDS.
    info.mtls = string("MESH_MTLS").is_some_and(|s| s.eq_ignore_ascii_case("true"));
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

/// Sets of subscribed resource names, shared between the connections that ask for the same
/// ones: every sidecar of an outbound key asks EDS for the same thousand cluster names.
#[derive(Debug, Default)]
pub struct NameSets {
    /// By a digest of the names; equal digests are compared name by name.
    sets: std::sync::Mutex<HashMap<u64, Vec<Weak<BTreeSet<String>>>>>,
}

impl NameSets {
    /// The shared set equal to `names`, or `names`, now shared.
    pub fn intern(&self, names: BTreeSet<String>) -> Arc<BTreeSet<String>> {
        let mut h = DefaultHasher::new();
        names.hash(&mut h);
        let digest = h.finish();
        let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        let same = sets.entry(digest).or_default();
        same.retain(|w| w.strong_count() > 0);
        if let Some(set) = same.iter().filter_map(Weak::upgrade).find(|s| **s == names) {
            return set;
        }
        let set = Arc::new(names);
        same.push(Arc::downgrade(&set));
        if sets.len() > 4096 {
            sets.retain(|_, v| v.iter().any(|w| w.strong_count() > 0));
        }
        set
    }

    /// How many distinct sets are held by someone.
    pub fn len(&self) -> usize {
        let sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
        sets.values()
            .flatten()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// Subscribed resource names, one copy per distinct set.
    pub name_sets: NameSets,
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
            name_sets: NameSets::default(),
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
    fn equal_name_sets_are_shared_while_held() {
        let sets = NameSets::default();
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let a = sets.intern(set(&["x", "y"]));
        let b = sets.intern(set(&["y", "x"]));
        let c = sets.intern(set(&["x"]));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(sets.len(), 2);
        drop((a, b));
        assert_eq!(sets.len(), 1);
        let again = sets.intern(set(&["x", "y"]));
        assert_eq!(*again, set(&["x", "y"]));
        assert_eq!(sets.len(), 2);
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
