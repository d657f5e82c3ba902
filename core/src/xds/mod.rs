//! Translation of the validated config model into Envoy's xDS resources.
//!
//! This module owns: the service registry built from Services, Pods, WorkloadEntries and
//! ServiceEntries ([`registry`]); the snapshot of valid config a control plane serves
//! ([`Snapshot`], with the objects it refused and why); and the per-proxy translation
//! ([`generate`]) into Listeners, RouteConfigurations, Clusters and ClusterLoadAssignments
//! named as Istio names them (`outbound|9080|v1|reviews.default.svc.cluster.local`,
//! `inbound|9080||`, `BlackHoleCluster`, `PassthroughCluster`, `virtualOutbound`,
//! `virtualInbound`, `0.0.0.0_9080`, route configs named by port).
//!
//! Pure and deterministic: the same snapshot and proxy give the same resources, sorted by name.
//! A control plane serving many proxies encodes through a [`cache::Cache`], which generates
//! the part of a sidecar's config its neighbours share once for all of them.
//!
//! # Local mode
//!
//! A proxy whose IP is a loopback address ([`ProxyInfo::local_mode`]) runs beside its app on
//! this machine with no traffic capture. The conventions, which meshd, mesh-proxy and the
//! demo share:
//!
//! - Every workload has its own loopback address, `WORKLOAD_IP` (a WorkloadEntry's
//!   `spec.address` or a Pod's `status.podIP`, such as `127.0.0.51`).
//! - **Outbound**: the sidecar's listener `virtualOutbound` on `WORKLOAD_IP:15001` is an
//!   HTTP proxy. The app sends requests in absolute form (`curl -x http://WORKLOAD_IP:15001
//!   http://catalog.shop:7070/`) or with a Host header naming the service (`curl -H 'Host:
//!   catalog.shop:7070' http://WORKLOAD_IP:15001/`). Its routes are the route configuration
//!   `15001`: one virtual host per visible service and HTTP port (`HOST:PORT`), whose domains
//!   are `name` (same namespace only), `name.ns`, `name.ns.svc`,
//!   `name.ns.svc.cluster.local` (ServiceEntries: the host), each with `:PORT`; the forms
//!   without a port go to the service's port 80 if it has one, else to its lowest-numbered
//!   HTTP port. `CONNECT host:port` tunnels reach TCP, TLS and HTTPS ports.
//! - **Inbound**: for each endpoint port of the services selecting the workload (the
//!   Kubernetes targetPort, or the WorkloadEntry's named port), the sidecar listens on
//!   `WORKLOAD_IP:PORT` (listener `WORKLOAD_IP_PORT`) and forwards to cluster
//!   `inbound|PORT||`, which is the app at `WORKLOAD_IP:(PORT + 10000)`
//!   ([`LOCAL_APP_PORT_OFFSET`], [`local_app_port`]). A Sidecar ingress listener selecting
//!   the workload replaces that: its `port.number` is the listener port, its
//!   `defaultEndpoint` the app (`0.0.0.0:P` means `WORKLOAD_IP:P`, `127.0.0.1:P` means
//!   itself).
//! - Service endpoints are `WORKLOAD_IP:PORT`, exactly where the destination's sidecar
//!   listens, so traffic between meshed workloads passes through both sidecars. A workload
//!   without a sidecar (an "external" server written as a WorkloadEntry or ServiceEntry
//!   endpoint) serves on that address itself.
//! - Hosts outside the registry: with `outboundTrafficPolicy` `ALLOW_ANY` (the default) the
//!   virtual host `allow_any` sends them to `PassthroughCluster`, which in local mode is a
//!   dynamic forward proxy cluster (Envoy resolves the request's authority); with
//!   `REGISTRY_ONLY` the virtual host `block_all` answers 502. A request whose host names a
//!   sidecar's outbound port (`*:15001`) gets 404 (`loop_guard`) rather than a loop.
//!   Services a Sidecar's egress hides are, for that proxy, hosts outside the registry: with
//!   `ALLOW_ANY` the dynamic forward proxy tries DNS for them (and fails for cluster names).
//! - Gateways bind their server ports on the gateway's own address (`GATEWAY_IP:PORT`), so
//!   an unprivileged gateway needs server ports of 1024 and above.
//!
//! In Kubernetes mode (non-loopback IPs) the layout is Istio's: `virtualOutbound` on
//! `0.0.0.0:15001` with original-destination handoff to per-port listeners `0.0.0.0_PORT`
//! (route configs named by port), and `virtualInbound` on `0.0.0.0:15006` with a filter
//! chain per inbound port whose cluster is the app on `127.0.0.1:PORT`; other ports pass
//! through `InboundPassthroughCluster` (original destination, connecting from 127.0.0.6,
//! which the capture rules of `mesh-proxy init` exempt, so the connection does not loop back
//! into 15006).
//!
//! # Mutual TLS
//!
//! Proxies holding a workload certificate ([`ProxyInfo::mtls`]) get mTLS as Istio builds it
//! (see [`mtls`]): in local mode each inbound listener carries its port's
//! PeerAuthentication chains; in Kubernetes mode `virtualInbound` carries them per port
//! (`destination_port`, then `tls`/`raw_buffer` and, for PERMISSIVE, the mesh ALPN
//! `istio-peer-exchange`/`istio`/`istio-http/*` that tells mesh mTLS from an app's own
//! TLS). Outbound clusters of sidecars and gateways get auto mTLS or `ISTIO_MUTUAL` with the
//! secrets `default` and `ROOTCA` over SDS, in both modes; a gateway server with
//! `tls.mode: ISTIO_MUTUAL` terminates mTLS with the gateway's own certificate.
//!
//! # Authorization
//!
//! AuthorizationPolicies and RequestAuthentications that select a proxy (root namespace,
//! its namespace, `selector`) become, on each inbound HTTP filter chain and on a gateway's
//! HTTP listeners, `envoy.filters.http.jwt_authn` then `envoy.filters.http.rbac` DENY,
//! ALLOW and AUDIT (LOG) before the other filters, and on inbound TCP chains and a
//! gateway's TCP and TLS-passthrough chains `envoy.filters.network.rbac`; dry-run
//! policies (`istio.io/dry-run: "true"`) become shadow rules. See `authz.rs` for Istio's
//! rules and the attribute mapping. In local mode mesh-proxy's bootstrap makes Envoy
//! connect from the workload's own loopback address, so `ipBlocks` and `source.ip` see
//! which workload called; clusters that may leave the machine (the passthrough, DNS names
//! other than `localhost`, non-loopback endpoints) bind to the unspecified address instead
//! (`local_bind.rs`).
//!
//! # What is not translated (yet)
//!
//! mTLS for proxies that hold no workload certificate (no `MESH_MTLS` node metadata: a
//! proxy started without `--ca-dir`; see [`mtls`]), CUSTOM AuthorizationPolicies (ext_authz; reported as not applied), policies that select
//! by `targetRef` (reported), the `experimental.envoy.filters.*` condition keys (an ALLOW
//! rule using one is dropped, a DENY rule ignores it), EnvoyFilter (reported as not applied), Gateway servers using
//! `credentialName` (reported), locality load balancing, delegate VirtualServices,
//! exponential fault delays, JWT-claim header matches in routes, `DNS_ROUND_ROBIN` (served
//! as `DNS`), Kubernetes EndpointSlices (endpoints come from Pods and WorkloadEntries).

mod authz;
pub mod binding;
pub mod cache;
mod cluster;
mod gateway;
pub mod json;
mod listener;
mod local_bind;
pub mod mtls;
mod proto;
pub mod registry;
mod route;
mod scope;
mod snapshot;
pub mod wire;

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::analysis::{MeshConfig, Store};
use crate::model::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::model::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::resource::Resource;
pub use authz::{PAYLOAD_KEY as JWT_PAYLOAD_KEY, policy_name as authz_policy_name};
pub use registry::Registry;

/// The port of the outbound listener (`virtualOutbound`).
pub const OUTBOUND_PORT: u16 = 15001;
/// The port of the inbound listener (`virtualInbound`, Kubernetes mode).
pub const INBOUND_PORT: u16 = 15006;
/// Local mode: the app behind a sidecar listens on its endpoint port plus this offset.
pub const LOCAL_APP_PORT_OFFSET: u16 = 10000;

/// Local mode: the port the app listens on behind a sidecar that takes `port` (see the
/// module docs). `None` when the sum leaves the port range.
pub fn local_app_port(port: u16) -> Option<u16> {
    port.checked_add(LOCAL_APP_PORT_OFFSET)
}

/// Well-known cluster names.
pub mod cluster_name {
    /// Traffic that must go nowhere.
    pub const BLACK_HOLE: &str = "BlackHoleCluster";
    /// Traffic to destinations outside the registry, when allowed.
    pub const PASSTHROUGH: &str = "PassthroughCluster";
    /// Kubernetes mode: inbound traffic to ports no service names, sent on to the app from
    /// [`INBOUND_PASSTHROUGH_SOURCE`] so the capture rules let it through rather than
    /// redirecting it back to the inbound listener.
    pub const INBOUND_PASSTHROUGH: &str = "InboundPassthroughCluster";
    /// The source address of [`INBOUND_PASSTHROUGH`]'s connections (Istio's 127.0.0.6,
    /// which the capture rules exempt: `-o lo -s 127.0.0.6/32 -j RETURN`).
    pub const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6";

    /// `outbound|PORT|SUBSET|HOST`.
    pub fn outbound(port: u16, subset: &str, host: &str) -> String {
        format!("outbound|{port}|{subset}|{host}")
    }

    /// `inbound|PORT||`.
    pub fn inbound(port: u16) -> String {
        format!("inbound|{port}||")
    }
}

/// Type URLs of the xDS resources meshd serves.
pub mod type_url {
    pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
    pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
}

/// Whether a proxy is a sidecar beside one workload or a standalone gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProxyKind {
    Sidecar,
    Gateway,
}

/// Who a proxy is: what the control plane needs to know to build its config. Parsed from
/// the node id `sidecar~IP~POD.NS~NS.svc.cluster.local` and the node metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyInfo {
    pub kind: ProxyKind,
    /// The node id as the proxy sent it.
    pub id: String,
    pub ip: IpAddr,
    pub namespace: String,
    /// The workload (pod or WorkloadEntry) name.
    pub workload: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Local mode: the proxy runs beside its app on a loopback address, with no traffic
    /// capture; outbound traffic reaches it explicitly on `ip:15001` (HTTP proxy style) and
    /// inbound listeners bind `ip:PORT` rather than `0.0.0.0`.
    pub local_mode: bool,
    /// The proxy holds a workload certificate, served to it over SDS (node metadata
    /// `MESH_MTLS`): it gets mTLS listeners and clusters (see [`mtls`]).
    pub mtls: bool,
}

impl ProxyInfo {
    /// Parses a node id `TYPE~IP~NAME.NS~NS.svc.cluster.local`.
    pub fn from_node_id(id: &str) -> Result<ProxyInfo, String> {
        let parts: Vec<&str> = id.split('~').collect();
        let [kind, ip, name_ns, _domain] = parts.as_slice() else {
            return Err(format!(
                "node id {id:?} is not TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local"
            ));
        };
        let kind = match *kind {
            "sidecar" => ProxyKind::Sidecar,
            "router" => ProxyKind::Gateway,
            other => return Err(format!("node id {id:?}: unknown proxy type {other:?}")),
        };
        let ip: IpAddr = ip
            .parse()
            .map_err(|e| format!("node id {id:?}: bad IP {ip:?}: {e}"))?;
        let (workload, namespace) = name_ns
            .rsplit_once('.')
            .ok_or_else(|| format!("node id {id:?}: {name_ns:?} is not NAME.NAMESPACE"))?;
        Ok(ProxyInfo {
            kind,
            id: id.to_owned(),
            ip,
            namespace: namespace.to_owned(),
            workload: workload.to_owned(),
            labels: BTreeMap::new(),
            service_account: "default".to_owned(),
            local_mode: ip.is_loopback(),
            mtls: false,
        })
    }

    /// The node id for a workload: `sidecar~IP~NAME.NS~NS.svc.cluster.local`.
    pub fn node_id(kind: ProxyKind, ip: IpAddr, workload: &str, namespace: &str) -> String {
        let t = match kind {
            ProxyKind::Sidecar => "sidecar",
            ProxyKind::Gateway => "router",
        };
        format!("{t}~{ip}~{workload}.{namespace}~{namespace}.svc.cluster.local")
    }
}

/// An object the control plane refused to serve, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// `Kind ns/name`.
    pub object: String,
    /// `file:line`.
    pub origin: String,
    pub reason: String,
}

/// A valid Istio object: its typed spec and the object it came from (name, namespace,
/// labels, origin).
#[derive(Clone, Debug)]
pub struct Typed<T> {
    pub resource: Resource,
    pub spec: T,
}

impl<T> Typed<T> {
    pub fn name(&self) -> &str {
        &self.resource.name
    }

    pub fn namespace(&self) -> &str {
        self.resource.ns()
    }

    /// `Kind ns/name`.
    pub fn display_name(&self) -> String {
        self.resource.display_name()
    }
}

/// The config a control plane serves: the registry and every valid routing and policy
/// object, typed. Invalid or conflicting objects are left out and listed in `rejected`.
///
/// Each list keeps the objects in load order, which stands for age where Istio prefers the
/// oldest object (files are read in name order).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub registry: Registry,
    pub mesh: MeshConfig,
    pub rejected: Vec<Rejected>,
    pub virtual_services: Vec<Typed<VirtualService>>,
    pub destination_rules: Vec<Typed<DestinationRule>>,
    pub gateways: Vec<Typed<Gateway>>,
    pub sidecars: Vec<Typed<Sidecar>>,
    pub service_entries: Vec<Typed<ServiceEntry>>,
    pub workload_entries: Vec<Typed<WorkloadEntry>>,
    pub peer_authentications: Vec<Typed<PeerAuthentication>>,
    pub authorization_policies: Vec<Typed<AuthorizationPolicy>>,
    pub request_authentications: Vec<Typed<RequestAuthentication>>,
}

impl Snapshot {
    /// Builds a snapshot from loaded objects: validates each Istio object (skipping and
    /// recording the invalid ones), builds the registry and indexes the rest.
    ///
    /// Conflicts are settled for the older object (load order), the newer one being listed
    /// in `rejected`: two DestinationRules for one host in one namespace (Istio would merge
    /// them), two namespace-wide Sidecars, two definitions of one host in one namespace.
    /// A VirtualService whose mesh host an older one in its namespace already routes is
    /// listed too (its other hosts still apply). EnvoyFilters and Gateway servers needing
    /// Kubernetes secrets are listed as not applied.
    pub fn build(store: &Store, mesh: &MeshConfig) -> Snapshot {
        snapshot::build(store, mesh)
    }
}

/// Everything one proxy receives, each list sorted by resource name.
///
/// Some Envoy messages hold maps (`typed_per_filter_config`,
/// `typed_extension_protocol_options`), which prost keeps in `HashMap`s: their encoding
/// order varies from run to run. Compare resources as messages (`==`), or encode them with
/// [`wire`], whose bytes are the same every time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyConfig {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
}

/// Translates the snapshot for one proxy.
pub fn generate(snapshot: &Snapshot, proxy: &ProxyInfo) -> ProxyConfig {
    let mut out = match proxy.kind {
        ProxyKind::Sidecar => listener::sidecar(snapshot, proxy),
        ProxyKind::Gateway => gateway::generate(snapshot, proxy),
    };
    authz::add_jwks_clusters(snapshot, proxy, &mut out);
    if proxy.local_mode {
        local_bind::unbind_off_host_clusters(&mut out);
    }
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out.routes.sort_by(|a, b| a.name.cmp(&b.name));
    out.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    out.endpoints
        .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    out
}

#[cfg(test)]
mod tests;
