//! Translation work shared between proxies, as istiod's xDS cache shares it.
//!
//! This module owns the encoded form of a proxy's config ([`EncodedConfig`]: resources as
//! the bytes a control plane sends, each with a digest) and the [`Cache`] that builds it
//! once per group of proxies that would receive the same thing.
//!
//! Most of a sidecar's config (its outbound clusters and endpoints, `BlackHoleCluster` and
//! `PassthroughCluster`, the outbound route configurations and, in Kubernetes mode, the
//! outbound listeners) depends on the proxy only through its namespace, whether it runs in
//! local mode, and its labels; and the labels only matter through the label selectors the
//! translation evaluates against them: Sidecar `workloadSelector`s, DestinationRule
//! `workloadSelector`s and VirtualService `sourceLabels` (HTTP, TLS and TCP matches). The
//! [`OutboundKey`] of a proxy is exactly that: namespace, local mode, and which of the
//! snapshot's selectors match its labels. Two proxies with one key get identical outbound
//! parts, so the cache generates and encodes that part once per key, and every proxy of
//! the key holds the same [`Arc`]. The rest (inbound clusters and listeners, which depend
//! on the services selecting the workload, and the local-mode outbound listener bound to
//! the workload's address) is generated per proxy and is small. Gateways are generated
//! whole, per proxy.
//!
//! A cache serves one [`Snapshot`]: a new snapshot needs a new cache. The parts it holds
//! are then generated at most once per key, on first use. [`Cache::generate`] gives the same
//! resources as encoding [`generate`](super::generate)'s output with [`encode`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use prost::bytes::Bytes;

use crate::analysis::json::selector_matches;

use super::listener::{sidecar_outbound, sidecar_own, sidecar_scope};
use super::scope::{Scope, proxy_labels};
use super::{ProxyConfig, ProxyInfo, ProxyKind, Snapshot, wire};

/// The four resource types a proxy receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    Listener,
    Route,
    Cluster,
    Endpoint,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 4] = [
        ResourceKind::Listener,
        ResourceKind::Route,
        ResourceKind::Cluster,
        ResourceKind::Endpoint,
    ];
}

/// One resource, encoded (deterministically, see [`wire`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedResource {
    /// The resource name (the cluster name of a ClusterLoadAssignment).
    pub name: String,
    /// The protobuf encoding of the resource message; cheap to clone (reference counted),
    /// so a control plane can send it without copying.
    pub value: Bytes,
    /// A digest of name and bytes: equal resources have equal digests, so comparing digests
    /// tells which resources changed without touching the bytes.
    pub digest: u64,
}

impl EncodedResource {
    pub fn new(name: String, value: Vec<u8>) -> EncodedResource {
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        value.hash(&mut h);
        EncodedResource {
            name,
            value: Bytes::from(value),
            digest: h.finish(),
        }
    }
}

/// Encoded resources of each type, each list sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodedPart {
    pub listeners: Vec<EncodedResource>,
    pub routes: Vec<EncodedResource>,
    pub clusters: Vec<EncodedResource>,
    pub endpoints: Vec<EncodedResource>,
}

impl EncodedPart {
    /// The resources of one type, sorted by name.
    pub fn list(&self, kind: ResourceKind) -> &[EncodedResource] {
        match kind {
            ResourceKind::Listener => &self.listeners,
            ResourceKind::Route => &self.routes,
            ResourceKind::Cluster => &self.clusters,
            ResourceKind::Endpoint => &self.endpoints,
        }
    }

    /// How many resources of every type, and how many bytes.
    pub fn size(&self) -> (usize, usize) {
        ResourceKind::ALL
            .iter()
            .map(|k| self.list(*k))
            .fold((0, 0), |(n, b), l| {
                (
                    n + l.len(),
                    b + l.iter().map(|r| r.value.len()).sum::<usize>(),
                )
            })
    }
}

/// Encodes a config (deterministically, see [`wire`]), each type sorted by name.
pub fn encode(config: &ProxyConfig) -> EncodedPart {
    fn sorted(mut v: Vec<EncodedResource>) -> Vec<EncodedResource> {
        // Stable: resources of one name keep generation order, as `generate` keeps it.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
    EncodedPart {
        listeners: sorted(
            config
                .listeners
                .iter()
                .map(|l| EncodedResource::new(l.name.clone(), wire::encode_listener(l)))
                .collect(),
        ),
        routes: sorted(
            config
                .routes
                .iter()
                .map(|r| EncodedResource::new(r.name.clone(), wire::encode_route_configuration(r)))
                .collect(),
        ),
        clusters: sorted(
            config
                .clusters
                .iter()
                .map(|c| EncodedResource::new(c.name.clone(), wire::encode_cluster(c)))
                .collect(),
        ),
        endpoints: sorted(
            config
                .endpoints
                .iter()
                .map(|e| EncodedResource::new(e.cluster_name.clone(), wire::encode_endpoints(e)))
                .collect(),
        ),
    }
}

/// A proxy's config, encoded: the part it shares with every proxy of its [`OutboundKey`]
/// and its own part. Each type is the union of both, in name order ([`EncodedConfig::iter`]).
#[derive(Clone, Debug, Default)]
pub struct EncodedConfig {
    pub shared: Arc<EncodedPart>,
    pub own: EncodedPart,
}

impl EncodedConfig {
    /// A config with nothing shared.
    pub fn unshared(config: &ProxyConfig) -> EncodedConfig {
        EncodedConfig {
            shared: Arc::default(),
            own: encode(config),
        }
    }

    /// The resources of one type, in name order.
    pub fn iter(&self, kind: ResourceKind) -> Merged<'_> {
        Merged {
            a: self.shared.list(kind),
            b: self.own.list(kind),
        }
    }

    /// The resource of one type with this name (the first, should two share it).
    pub fn get(&self, kind: ResourceKind, name: &str) -> Option<&EncodedResource> {
        let find = |l: &'_ [EncodedResource]| -> Option<usize> {
            let i = l.partition_point(|r| r.name.as_str() < name);
            (l.get(i).is_some_and(|r| r.name == name)).then_some(i)
        };
        let shared = self.shared.list(kind);
        let own = self.own.list(kind);
        find(shared)
            .map(|i| &shared[i])
            .or_else(|| find(own).map(|i| &own[i]))
    }

    /// How many resources of one type.
    pub fn len(&self, kind: ResourceKind) -> usize {
        self.shared.list(kind).len() + self.own.list(kind).len()
    }

    /// Whether the config has no resource of any type.
    pub fn is_empty(&self) -> bool {
        ResourceKind::ALL.iter().all(|k| self.len(*k) == 0)
    }
}

/// Two name-sorted lists of resources, merged in name order (on equal names the shared
/// one first, as `generate` lists outbound resources before the proxy's own).
#[derive(Clone, Debug)]
pub struct Merged<'a> {
    a: &'a [EncodedResource],
    b: &'a [EncodedResource],
}

impl<'a> Iterator for Merged<'a> {
    type Item = &'a EncodedResource;

    fn next(&mut self) -> Option<&'a EncodedResource> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(a), Some(b)) => a.name <= b.name,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(first)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.a.len() + self.b.len();
        (n, Some(n))
    }
}

/// What a sidecar's outbound part depends on (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboundKey {
    pub namespace: String,
    pub local_mode: bool,
    /// The proxy takes part in mTLS (its outbound clusters may carry TLS).
    pub mtls: bool,
    /// Indexes of the snapshot's label selectors (see [`Cache`]) the proxy's labels match.
    pub selectors: Vec<u32>,
}

/// Every distinct non-empty label selector the translation evaluates against a sidecar's
/// labels.
fn label_selectors(snap: &Snapshot) -> Vec<BTreeMap<String, String>> {
    let mut set: BTreeSet<&BTreeMap<String, String>> = BTreeSet::new();
    for sc in &snap.sidecars {
        if let Some(w) = &sc.spec.workload_selector {
            set.insert(&w.labels);
        }
    }
    for dr in &snap.destination_rules {
        if let Some(w) = &dr.spec.workload_selector {
            set.insert(&w.match_labels);
        }
    }
    for vs in &snap.virtual_services {
        let spec = &vs.spec;
        set.extend(
            spec.http
                .iter()
                .flat_map(|r| &r.r#match)
                .map(|m| &m.source_labels),
        );
        set.extend(
            spec.tcp
                .iter()
                .flat_map(|r| &r.r#match)
                .map(|m| &m.source_labels),
        );
        set.extend(
            spec.tls
                .iter()
                .flat_map(|r| &r.r#match)
                .map(|m| &m.source_labels),
        );
    }
    set.into_iter().filter(|s| !s.is_empty()).cloned().collect()
}

/// One generated outbound part, filled by the first proxy of its key.
type Slot = Arc<OnceLock<Arc<EncodedPart>>>;

/// Outbound parts of one snapshot's sidecars, by [`OutboundKey`], each generated and
/// encoded once (see the module docs). Safe to share between threads: proxies of one key
/// wait for the first one to finish its part; proxies of other keys go on.
#[derive(Debug, Default)]
pub struct Cache {
    selectors: OnceLock<Vec<BTreeMap<String, String>>>,
    parts: Mutex<HashMap<OutboundKey, Slot>>,
}

impl Cache {
    /// An empty cache, for one snapshot.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// The key of a proxy's outbound part; `None` for gateways, which share nothing.
    pub fn key(&self, snap: &Snapshot, proxy: &ProxyInfo) -> Option<OutboundKey> {
        if proxy.kind != ProxyKind::Sidecar {
            return None;
        }
        let labels = proxy_labels(snap, proxy);
        let selectors = self
            .selectors
            .get_or_init(|| label_selectors(snap))
            .iter()
            .zip(0u32..)
            .filter(|(s, _)| selector_matches(s, &labels))
            .map(|(_, i)| i)
            .collect();
        Some(OutboundKey {
            namespace: proxy.namespace.clone(),
            local_mode: proxy.local_mode,
            mtls: proxy.mtls,
            selectors,
        })
    }

    /// One proxy's config, encoded: the same resources as `encode(&generate(snap, proxy))`,
    /// with the outbound part shared with every proxy of its key. `snap` must be the
    /// snapshot this cache was made for.
    pub fn generate(&self, snap: &Snapshot, proxy: &ProxyInfo) -> EncodedConfig {
        let Some(key) = self.key(snap, proxy) else {
            return EncodedConfig::unshared(&super::generate(snap, proxy));
        };
        let slot = {
            let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
            parts.entry(key).or_default().clone()
        };
        let shared = slot
            .get_or_init(|| {
                let mut out = ProxyConfig::default();
                sidecar_outbound(&sidecar_scope(snap, proxy), &mut out);
                if proxy.local_mode {
                    super::local_bind::unbind_off_host_clusters(&mut out);
                }
                Arc::new(encode(&out))
            })
            .clone();
        let mut own = ProxyConfig::default();
        sidecar_own(&Scope::workload(snap, proxy), &mut own);
        // JWKS clusters follow the RequestAuthentications selecting this workload; one the
        // shared part already holds is not repeated, as `generate` does not repeat it.
        let before = own.clusters.len();
        super::authz::add_jwks_clusters(snap, proxy, &mut own);
        let added = own.clusters.split_off(before);
        let shared_clusters = shared.list(ResourceKind::Cluster);
        own.clusters.extend(added.into_iter().filter(|c| {
            shared_clusters
                .binary_search_by(|r| r.name.as_str().cmp(&c.name))
                .is_err()
        }));
        if proxy.local_mode {
            super::local_bind::unbind_off_host_clusters(&mut own);
        }
        EncodedConfig {
            shared,
            own: encode(&own),
        }
    }

    /// How many outbound parts the cache holds (one per key met so far).
    pub fn len(&self) -> usize {
        self.parts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
