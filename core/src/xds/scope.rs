//! What one proxy sees: its workload, the Sidecar that applies to it, the services it may
//! reach (exportTo and Sidecar egress), the DestinationRule for each host and the
//! VirtualServices bound to it, chosen as Istio chooses them.
//!
//! - Sidecar: the oldest one in the proxy's namespace whose `workloadSelector` matches its
//!   labels, else the namespace's Sidecar without selector, else the root namespace's.
//!   Gateways get none.
//! - Services: exported to the proxy's namespace and, under a Sidecar with egress listeners,
//!   named by one of their hosts (`ns/host`, `*`, `.`, `~`) for the port. When several
//!   namespaces define the same host, the proxy's own namespace wins, else the first.
//! - DestinationRule for a host: from the proxy's namespace (a `workloadSelector` one
//!   matching the proxy first), then from the service's namespace, then from the root
//!   namespace, each exported to the proxy's namespace; within a namespace the exact host
//!   beats wildcards and a longer wildcard beats a shorter one.
//! - VirtualServices: those bound to the proxy's gateways (`mesh` for sidecars) and exported
//!   to its namespace, the proxy's namespace first, then load order. For a host, a
//!   VirtualService naming it exactly beats one matching it by wildcard (the most specific
//!   wildcard wins); ties go to the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::analysis::json::selector_matches;
use crate::host;
use crate::model::networking::{DestinationRule, OutboundTrafficMode, Sidecar, VirtualService};

use super::registry::{Service, ServicePort, mesh_default_export, resolve_export_to};
use super::snapshot::binds_mesh;
use super::{ProxyInfo, ProxyKind, Snapshot, Typed};

/// The gateway name sidecars answer to.
pub(super) const MESH_GATEWAY: &str = "mesh";

pub(super) struct Scope<'s> {
    pub snap: &'s Snapshot,
    pub proxy: &'s ProxyInfo,
    /// The proxy's labels (from its node metadata, else from its workload).
    pub labels: BTreeMap<String, String>,
    pub sidecar: Option<&'s Typed<Sidecar>>,
    /// Visible services, one per hostname, sorted by hostname.
    pub services: Vec<&'s Service>,
    /// Whether traffic to hosts outside the registry is allowed.
    pub allow_any: bool,
    /// Gateway names VirtualServices must be bound to (`mesh`, or `ns/name` of gateways).
    pub gateway_names: BTreeSet<String>,
    virtual_services: Vec<&'s Typed<VirtualService>>,
    /// Hosts of the bound VirtualServices: exact hosts (first VirtualService wins) and
    /// wildcard hosts in precedence order.
    vs_exact: HashMap<String, &'s Typed<VirtualService>>,
    vs_wildcards: Vec<(String, &'s Typed<VirtualService>)>,
    drs: DrIndex<'s>,
    /// The mesh's `defaultHttpRetryPolicy`, if set.
    pub default_retry: Option<crate::model::networking::HttpRetry>,
    /// The mesh's `connectTimeout` (default 10s).
    pub connect_timeout: std::time::Duration,
}

impl<'s> Scope<'s> {
    pub fn new(snap: &'s Snapshot, proxy: &'s ProxyInfo) -> Scope<'s> {
        let mut scope = Scope::workload(snap, proxy);
        scope.drs = DrIndex::new(snap, &proxy.namespace, &scope.labels);
        scope.services = scope.visible_services();
        scope
    }

    /// The proxy's workload side only: labels, Sidecar, mesh settings; no visible services,
    /// DestinationRules or VirtualServices. Enough for the proxy's own (inbound) part,
    /// which the shared path builds once per proxy.
    pub fn workload(snap: &'s Snapshot, proxy: &'s ProxyInfo) -> Scope<'s> {
        let labels = proxy_labels(snap, proxy);
        let sidecar = match proxy.kind {
            ProxyKind::Sidecar => find_sidecar(snap, &proxy.namespace, &labels),
            ProxyKind::Gateway => None,
        };
        let mesh_mode = snap
            .mesh
            .json
            .pointer("/outboundTrafficPolicy/mode")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("ALLOW_ANY");
        let allow_any = match sidecar
            .and_then(|s| s.spec.outbound_traffic_policy.as_ref())
            .map(|p| p.mode)
        {
            Some(OutboundTrafficMode::AllowAny) => true,
            Some(OutboundTrafficMode::RegistryOnly) => false,
            None => !mesh_mode.eq_ignore_ascii_case("REGISTRY_ONLY"),
        };
        Scope {
            snap,
            proxy,
            labels,
            sidecar,
            services: Vec::new(),
            allow_any,
            gateway_names: BTreeSet::new(),
            virtual_services: Vec::new(),
            vs_exact: HashMap::new(),
            vs_wildcards: Vec::new(),
            drs: DrIndex::default(),
            default_retry: snap
                .mesh
                .json
                .get("defaultHttpRetryPolicy")
                .and_then(|v| crate::model::parse_value(v).ok()),
            connect_timeout: snap
                .mesh
                .json
                .get("connectTimeout")
                .and_then(serde_json::Value::as_str)
                .and_then(|s| crate::model::parse_duration(s).ok())
                .unwrap_or(std::time::Duration::from_secs(10)),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.proxy.namespace
    }

    pub fn root_namespace(&self) -> &str {
        self.snap.mesh.root_namespace()
    }

    /// Sets the gateways whose VirtualServices apply and indexes those VirtualServices.
    pub fn bind_gateways(&mut self, names: BTreeSet<String>) {
        let ns = self.proxy.namespace.clone();
        let default_export = mesh_default_export(&self.snap.mesh, "defaultVirtualServiceExportTo");
        let mut local = Vec::new();
        let mut others = Vec::new();
        for vs in &self.snap.virtual_services {
            let exported = resolve_export_to(&vs.spec.export_to, vs.namespace(), &default_export);
            if !exported.iter().any(|e| e == "*" || *e == ns) {
                continue;
            }
            let bound = vs_gateways(vs).iter().any(|g| names.contains(g));
            if !bound || !self.egress_allows_vs(vs) {
                continue;
            }
            if vs.namespace() == ns {
                local.push(vs);
            } else {
                others.push(vs);
            }
        }
        local.extend(others);
        self.vs_exact.clear();
        self.vs_wildcards.clear();
        for vs in &local {
            for h in &vs.spec.hosts {
                let h = host::fqdn(h, vs.namespace());
                if host::is_wildcard(&h) {
                    self.vs_wildcards.push((h, vs));
                } else {
                    self.vs_exact.entry(h).or_insert(vs);
                }
            }
        }
        self.virtual_services = local;
        self.gateway_names = names;
    }

    /// VirtualServices bound to this proxy, in precedence order.
    pub fn virtual_services(&self) -> &[&'s Typed<VirtualService>] {
        &self.virtual_services
    }

    /// The service with this hostname, if visible.
    pub fn service(&self, hostname: &str) -> Option<&'s Service> {
        self.services
            .binary_search_by(|s| s.hostname.as_str().cmp(hostname))
            .ok()
            .map(|i| self.services[i])
    }

    /// The ports of a visible service this proxy may reach.
    pub fn ports(&self, svc: &'s Service) -> Vec<&'s ServicePort> {
        svc.ports
            .iter()
            .filter(|p| self.egress_allows(svc, p.number))
            .collect()
    }

    /// Whether the Sidecar's egress hosts name one of a VirtualService's hosts (in the
    /// VirtualService's namespace).
    fn egress_allows_vs(&self, vs: &Typed<VirtualService>) -> bool {
        let Some(sc) = self.sidecar else {
            return true;
        };
        if sc.spec.egress.is_empty() {
            return true;
        }
        sc.spec.egress.iter().flat_map(|l| &l.hosts).any(|pattern| {
            let (ns, h) = host::split_namespaced(pattern);
            let ns_ok = match ns {
                "*" => true,
                "." => vs.namespace() == self.proxy.namespace,
                "~" => false,
                other => vs.namespace() == other,
            };
            ns_ok
                && vs
                    .spec
                    .hosts
                    .iter()
                    .any(|vh| h == "*" || host::matches(h, &host::fqdn(vh, vs.namespace())))
        })
    }

    fn egress_allows(&self, svc: &Service, port: u16) -> bool {
        let Some(sc) = self.sidecar else {
            return true;
        };
        if sc.spec.egress.is_empty() {
            return true;
        }
        sc.spec.egress.iter().any(|l| {
            let port_ok = l
                .port
                .as_ref()
                .is_none_or(|p| p.number == 0 || p.number == u32::from(port));
            port_ok
                && l.hosts
                    .iter()
                    .any(|h| egress_host_matches(h, svc, &self.proxy.namespace))
        })
    }

    fn visible_services(&self) -> Vec<&'s Service> {
        let ns = self.proxy.namespace.as_str();
        let mut by_host: BTreeMap<&str, &'s Service> = BTreeMap::new();
        for svc in &self.snap.registry.services {
            if !svc.visible_from(ns) {
                continue;
            }
            if !svc.ports.iter().any(|p| self.egress_allows(svc, p.number)) {
                continue;
            }
            match by_host.get(svc.hostname.as_str()) {
                Some(existing) if existing.namespace == ns || svc.namespace != ns => {}
                _ => {
                    by_host.insert(&svc.hostname, svc);
                }
            }
        }
        by_host.into_values().collect()
    }

    /// The DestinationRule that applies to traffic from this proxy to `svc`.
    pub fn destination_rule(&self, svc: &Service) -> Option<&'s Typed<DestinationRule>> {
        let ns = self.proxy.namespace.as_str();
        self.drs
            .lookup(ns, true, &svc.hostname)
            .or_else(|| self.drs.lookup(&svc.namespace, false, &svc.hostname))
            .or_else(|| self.drs.lookup(self.root_namespace(), false, &svc.hostname))
    }

    /// The VirtualService that routes `hostname`, if any.
    pub fn virtual_service_for(&self, hostname: &str) -> Option<&'s Typed<VirtualService>> {
        if let Some(vs) = self.vs_exact.get(hostname) {
            return Some(vs);
        }
        let mut best: Option<(usize, &'s Typed<VirtualService>)> = None;
        for (h, vs) in &self.vs_wildcards {
            if host::subset_of(hostname, h) && best.is_none_or(|(len, _)| h.len() > len) {
                best = Some((h.len(), vs));
            }
        }
        best.map(|(_, vs)| vs)
    }
}

/// The labels a proxy is selected by: those of its node metadata, else its workload's
/// (found by namespace and name, else by address).
pub(super) fn proxy_labels(snap: &Snapshot, proxy: &ProxyInfo) -> BTreeMap<String, String> {
    if !proxy.labels.is_empty() {
        return proxy.labels.clone();
    }
    snap.registry
        .workload(&proxy.namespace, &proxy.workload)
        .or_else(|| snap.registry.workload_by_address(&proxy.ip.to_string()))
        .map(|w| w.labels.clone())
        .unwrap_or_default()
}

/// Wildcard hosts and their DestinationRules, in load order.
type WildcardRules<'s> = Vec<(String, &'s Typed<DestinationRule>)>;

/// DestinationRules that may apply to one proxy, indexed by namespace and host.
#[derive(Default)]
struct DrIndex<'s> {
    /// (namespace, host, rank) -> the first rule; rank 0 for rules whose workloadSelector
    /// matches the proxy, 1 for rules without selector.
    exact: HashMap<(String, String, u8), &'s Typed<DestinationRule>>,
    /// (namespace, rank) -> wildcard hosts and their rules, in load order.
    wildcard: HashMap<(String, u8), WildcardRules<'s>>,
}

impl<'s> DrIndex<'s> {
    fn new(snap: &'s Snapshot, proxy_ns: &str, labels: &BTreeMap<String, String>) -> DrIndex<'s> {
        let default_export = mesh_default_export(&snap.mesh, "defaultDestinationRuleExportTo");
        let mut idx = DrIndex::default();
        for dr in &snap.destination_rules {
            let exported = resolve_export_to(&dr.spec.export_to, dr.namespace(), &default_export);
            if dr.namespace() != proxy_ns && !exported.iter().any(|e| e == "*" || e == proxy_ns) {
                continue;
            }
            let rank = match &dr.spec.workload_selector {
                Some(sel) if !sel.match_labels.is_empty() => {
                    if dr.namespace() != proxy_ns || !selector_matches(&sel.match_labels, labels) {
                        continue;
                    }
                    0
                }
                _ => 1,
            };
            let h = host::fqdn(&dr.spec.host, dr.namespace());
            if host::is_wildcard(&h) {
                idx.wildcard
                    .entry((dr.namespace().to_owned(), rank))
                    .or_default()
                    .push((h, dr));
            } else {
                idx.exact
                    .entry((dr.namespace().to_owned(), h, rank))
                    .or_insert(dr);
            }
        }
        idx
    }

    fn lookup(
        &self,
        ns: &str,
        allow_selector: bool,
        hostname: &str,
    ) -> Option<&'s Typed<DestinationRule>> {
        let ranks: &[u8] = if allow_selector { &[0, 1] } else { &[1] };
        for &rank in ranks {
            if let Some(dr) = self.exact.get(&(ns.to_owned(), hostname.to_owned(), rank)) {
                return Some(dr);
            }
            let mut best: Option<(usize, &'s Typed<DestinationRule>)> = None;
            for (h, dr) in self
                .wildcard
                .get(&(ns.to_owned(), rank))
                .map_or(&[][..], Vec::as_slice)
            {
                if host::subset_of(hostname, h) && best.is_none_or(|(len, _)| h.len() > len) {
                    best = Some((h.len(), dr));
                }
            }
            if let Some((_, dr)) = best {
                return Some(dr);
            }
        }
        None
    }
}

/// The gateways a VirtualService is bound to, as `ns/name` (or `mesh`).
pub(super) fn vs_gateways(vs: &Typed<VirtualService>) -> Vec<String> {
    if binds_mesh(&vs.spec) && vs.spec.gateways.is_empty() {
        return vec![MESH_GATEWAY.to_owned()];
    }
    vs.spec
        .gateways
        .iter()
        .map(|g| qualify_gateway(g, vs.namespace()))
        .collect()
}

/// `name` -> `ns/name`; `mesh` and `ns/name` stay.
pub(super) fn qualify_gateway(g: &str, ns: &str) -> String {
    if g == MESH_GATEWAY || g.contains('/') {
        g.to_owned()
    } else {
        format!("{ns}/{g}")
    }
}

fn egress_host_matches(pattern: &str, svc: &Service, proxy_ns: &str) -> bool {
    let (ns, h) = host::split_namespaced(pattern);
    let ns_ok = match ns {
        "*" => true,
        "." => svc.namespace == proxy_ns,
        "~" => false,
        other => svc.namespace == other,
    };
    ns_ok && (h == "*" || host::matches(h, &svc.hostname))
}

fn find_sidecar<'s>(
    snap: &'s Snapshot,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> Option<&'s Typed<Sidecar>> {
    let selects = |s: &Typed<Sidecar>| {
        s.spec
            .workload_selector
            .as_ref()
            .is_some_and(|w| !w.labels.is_empty())
    };
    snap.sidecars
        .iter()
        .find(|s| {
            s.namespace() == ns
                && selects(s)
                && s.spec
                    .workload_selector
                    .as_ref()
                    .is_some_and(|w| selector_matches(&w.labels, labels))
        })
        .or_else(|| {
            snap.sidecars
                .iter()
                .find(|s| s.namespace() == ns && !selects(s))
        })
        .or_else(|| {
            let root = snap.mesh.root_namespace();
            snap.sidecars
                .iter()
                .find(|s| s.namespace() == root && !selects(s))
        })
}
