//! The proxy's runtime configuration: one immutable [`Config`] per applied xDS update,
//! shared as `Arc<Config>` so that a request keeps the generation it started with while a
//! newer one is swapped in.
//!
//! Applying a response of one type builds the next generation from the current one
//! ([`Config::with_clusters`], [`Config::with_endpoints`], [`Config::with_listeners`],
//! [`Config::with_routes`]). As in Envoy, a resource that cannot be converted keeps its last
//! good state (or stays absent) while the others apply; the errors come back in
//! [`Applied`] for the NACK, and the type's version moves only when everything applied.
//!
//! Listeners: refused (NACK) are Kubernetes-mode traffic capture (`use_original_dst`,
//! `bind_to_port: false`, the `original_dst` listener filter), filter chains other than
//! one TLS chain and one plaintext chain told apart by `tls_inspector` (PERMISSIVE mTLS;
//! TLS as [`super::tls`] accepts it), Unix-socket addresses, network filters other than
//! RBAC ([`super::rbac`]) in front of one `tcp_proxy`, or one `http_connection_manager`,
//! HTTP filters other than router, fault, CORS, the dynamic forward proxy, jwt_authn
//! ([`super::jwt`]) and RBAC (unless marked optional), scoped routes, HTTP/3, and
//! authorization config those modules cannot evaluate. Ignored:
//! access-log, tracing and stats settings, codec tuning, path normalization flags,
//! `use_remote_address`, upgrade configs (HTTP/1.1 upgrades such as websocket are always
//! passed through, CONNECT where a route allows it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::core::v3::{TrafficDirection, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use prost::Message;

use super::cluster::{Cluster, ClusterShared, ClusterSpec, HostAddr, assignment_hosts};
use super::jwt::JwtFilter;
use super::rbac::RbacFilter;
use super::route::RouteTable;
use super::tls::{Identity, ServerTls};

const NETWORK_RBAC: &str = "envoy.filters.network.rbac";
const NETWORK_RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";
const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

/// Whether a listener takes traffic in or out of its workload (for metrics' reporter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug)]
pub enum RouteSource {
    Rds(String),
    Inline(Arc<RouteTable>),
}

#[derive(Debug)]
pub struct HttpSpec {
    pub routes: RouteSource,
    pub fault: bool,
    pub cors: bool,
    pub forward_proxy: bool,
    pub stat_prefix: String,
    /// The authorization filters in chain order (jwt_authn, then RBAC DENY, ALLOW, LOG),
    /// evaluated before route selection as in Envoy's filter chain.
    pub authz: Vec<HttpAuthz>,
    /// How long a client may take to send a request's headers (the HCM's
    /// `request_headers_timeout`, else [`DEFAULT_HEADERS_TIMEOUT`]); then the connection is
    /// closed.
    pub headers_timeout: std::time::Duration,
    /// The HCM's `use_remote_address`: the client address is the peer's; otherwise the
    /// last `x-forwarded-for` address when there is one (RBAC `remote_ip`).
    pub use_remote_address: bool,
    /// `x-forwarded-client-cert` handling (the HCM's `forward_client_cert_details`).
    pub xfcc: Xfcc,
}

/// What the connection manager does with `x-forwarded-client-cert`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XfccMode {
    /// Removed.
    #[default]
    Sanitize,
    /// Forwarded as received on mTLS connections; removed otherwise.
    ForwardOnly,
    /// The client's details appended on mTLS connections; removed otherwise.
    AppendForward,
    /// Replaced by the client's details on mTLS connections; removed otherwise.
    SanitizeSet,
    /// Always forwarded as received.
    AlwaysForwardOnly,
}

/// `forward_client_cert_details` and the `set_current_client_cert_details` fields the
/// native engine writes (`By` and `Hash` always).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Xfcc {
    pub mode: XfccMode,
    pub subject: bool,
    pub uri: bool,
    pub dns: bool,
}

/// The header-read timeout when the HCM sets none (Envoy has none by default; the native
/// engine bounds slow clients anyway).
pub const DEFAULT_HEADERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One authorization HTTP filter.
#[derive(Debug)]
pub enum HttpAuthz {
    Jwt(Arc<JwtFilter>),
    Rbac(Arc<RbacFilter>),
}

#[derive(Debug)]
pub struct TcpSpec {
    pub targets: Vec<(String, u32)>,
    pub stat_prefix: String,
    /// Network RBAC filters in front of the TCP proxy, in chain order.
    pub rbac: Vec<Arc<RbacFilter>>,
}

#[derive(Debug)]
pub enum ListenerKind {
    Http(HttpSpec),
    Tcp(TcpSpec),
}

/// A converted Listener.
#[derive(Debug)]
pub struct ListenerSpec {
    pub name: String,
    pub addr: SocketAddr,
    pub direction: Direction,
    /// The serving filters (the TLS chain's when there is one).
    pub kind: ListenerKind,
    /// The TLS chain's server side: connections starting with a TLS handshake get it.
    pub tls: Option<ServerTls>,
    /// Whether plaintext connections are taken (not under STRICT mTLS).
    pub plaintext: bool,
    /// The plaintext chain's client-certificate forwarding.
    pub plain_xfcc: Xfcc,
    /// How long `tls_inspector` waits for the client's first bytes (`listener_filters_timeout`,
    /// Envoy's default 15 s; zero: no limit), and whether the connection then goes on as
    /// plaintext (`continue_on_listener_filters_timeout`) rather than being closed.
    pub inspect_timeout: Option<std::time::Duration>,
    pub continue_on_inspect_timeout: bool,
}

/// Envoy's default `listener_filters_timeout`.
pub const DEFAULT_INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Why a listener cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("listener {listener:?}: {reason}")]
pub struct ListenerError {
    pub listener: String,
    pub reason: String,
}

fn lerr(l: &str, reason: impl Into<String>) -> ListenerError {
    ListenerError {
        listener: l.to_owned(),
        reason: reason.into(),
    }
}

impl TryFrom<&Listener> for ListenerSpec {
    type Error = ListenerError;

    fn try_from(l: &Listener) -> Result<Self, ListenerError> {
        let n = l.name.as_str();
        let addr = match l.address.as_ref().and_then(|a| a.address.as_ref()) {
            Some(address::Address::SocketAddress(sa)) => {
                let ip = sa
                    .address
                    .parse()
                    .map_err(|_| lerr(n, format!("address {:?} is not an IP", sa.address)))?;
                let port = match sa.port_specifier {
                    Some(socket_address::PortSpecifier::PortValue(p)) => {
                        u16::try_from(p).map_err(|_| lerr(n, format!("bad port {p}")))?
                    }
                    _ => return Err(lerr(n, "named ports are not supported")),
                };
                SocketAddr::new(ip, port)
            }
            _ => return Err(lerr(n, "only TCP socket addresses are supported")),
        };
        if l.use_original_dst.as_ref().is_some_and(|b| b.value)
            || l.bind_to_port.as_ref().is_some_and(|b| !b.value)
        {
            return Err(lerr(
                n,
                "traffic capture (original destination, unbound listeners) is not supported by the native engine; run it in local mode",
            ));
        }
        let mut inspector = false;
        for lf in &l.listener_filters {
            let typed = |t: &str| matches!(&lf.config_type, Some(listener_filter::ConfigType::TypedConfig(a)) if a.type_url.ends_with(t));
            if lf.name == "envoy.filters.listener.tls_inspector" || typed("TlsInspector") {
                inspector = true;
                continue;
            }
            let ok = lf.name == "envoy.filters.listener.http_inspector" || typed("HttpInspector");
            if !ok {
                return Err(lerr(
                    n,
                    format!("listener filter {:?} is not supported", lf.name),
                ));
            }
        }
        let mut chains: Vec<_> = l.filter_chains.iter().collect();
        if let Some(d) = &l.default_filter_chain {
            chains.push(d);
        }
        let (chain, tls, plaintext) = select_chains(&chains, inspector, n)?;
        let plain_xfcc = match plaintext {
            Some(c) => xfcc_of(c, n)?,
            None => Xfcc::default(),
        };
        let kind = chain_kind(chain, n)?;
        let direction = match TrafficDirection::try_from(l.traffic_direction) {
            Ok(TrafficDirection::Inbound) => Direction::Inbound,
            _ => Direction::Outbound,
        };
        Ok(ListenerSpec {
            name: l.name.clone(),
            addr,
            direction,
            kind,
            tls,
            plaintext: plaintext.is_some(),
            plain_xfcc,
            inspect_timeout: match super::route::optional_duration(
                l.listener_filters_timeout.as_ref(),
            ) {
                None => Some(DEFAULT_INSPECT_TIMEOUT),
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
            },
            continue_on_inspect_timeout: l.continue_on_listener_filters_timeout,
        })
    }
}

/// The filter chains a listener may have: one (plaintext or TLS, matching nothing but its
/// own transport protocol), or a TLS chain and a plaintext one told apart by
/// `tls_inspector` (`transport_protocol` `tls` / `raw_buffer`) whose filters are the same
/// apart from the connection manager's client-certificate forwarding (PERMISSIVE). Returns
/// the chain whose filters serve (the TLS one when there is one), its TLS, and the
/// plaintext chain when plaintext connections are taken.
fn select_chains<'a>(
    chains: &[&'a FilterChain],
    inspector: bool,
    n: &str,
) -> Result<(&'a FilterChain, Option<ServerTls>, Option<&'a FilterChain>), ListenerError> {
    let mut tls_chain = None;
    let mut plain_chain = None;
    for c in chains {
        let protocol = match &c.filter_chain_match {
            None => "",
            Some(m) => {
                let rest = FilterChainMatch {
                    transport_protocol: String::new(),
                    ..m.clone()
                };
                if rest != FilterChainMatch::default() {
                    return Err(lerr(
                        n,
                        "filter chain matches other than transport_protocol are not supported",
                    ));
                }
                m.transport_protocol.as_str()
            }
        };
        let tls = ServerTls::from_socket(c.transport_socket.as_ref())
            .map_err(|e| lerr(n, format!("filter chain {:?}: {e}", c.name)))?;
        match (protocol, tls) {
            ("tls" | "", Some(t)) if tls_chain.is_none() => tls_chain = Some((*c, t)),
            ("raw_buffer" | "", None) if plain_chain.is_none() => plain_chain = Some(*c),
            (p, t) => {
                return Err(lerr(
                    n,
                    format!(
                        "filter chain {:?} ({} transport, match {p:?}) is not supported here: at most one TLS chain and one plaintext chain",
                        c.name,
                        if t.is_some() { "TLS" } else { "plaintext" }
                    ),
                ));
            }
        }
    }
    let matched = chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.transport_protocol.is_empty())
    });
    if matched && !inspector {
        return Err(lerr(
            n,
            "transport_protocol matches need the tls_inspector listener filter",
        ));
    }
    match (tls_chain, plain_chain) {
        (None, None) => Err(lerr(n, "no filter chain")),
        (None, Some(p)) => Ok((p, None, Some(p))),
        (Some((t, tls)), None) => Ok((t, Some(tls), None)),
        (Some((t, tls)), Some(p)) => {
            if chains.len() == 2 && chains.iter().all(|c| c.filter_chain_match.is_none()) {
                return Err(lerr(n, "two filter chains without a match"));
            }
            if normalized(&t.filters) != normalized(&p.filters) {
                return Err(lerr(
                    n,
                    "the TLS and plaintext filter chains differ in their filters (only client-certificate forwarding may differ)",
                ));
            }
            Ok((t, Some(tls), Some(p)))
        }
    }
}

/// Filters with the connection manager's client-certificate forwarding cleared.
fn normalized(filters: &[Filter]) -> Vec<Filter> {
    filters
        .iter()
        .map(|f| {
            let mut f = f.clone();
            if let Some(filter::ConfigType::TypedConfig(a)) = &mut f.config_type
                && (f.name == HCM || a.type_url == HCM_TYPE)
                && let Ok(mut m) = HttpConnectionManager::decode(a.value.as_slice())
            {
                m.forward_client_cert_details = 0;
                m.set_current_client_cert_details = None;
                a.value = m.encode_to_vec();
            }
            f
        })
        .collect()
}

/// The client-certificate forwarding of a chain's connection manager (default: sanitize).
fn xfcc_of(chain: &FilterChain, n: &str) -> Result<Xfcc, ListenerError> {
    for f in &chain.filters {
        if let Some(filter::ConfigType::TypedConfig(a)) = &f.config_type
            && (f.name == HCM || a.type_url == HCM_TYPE)
        {
            let m = HttpConnectionManager::decode(a.value.as_slice())
                .map_err(|e| lerr(n, format!("bad http_connection_manager: {e}")))?;
            return xfcc(&m, n);
        }
    }
    Ok(Xfcc::default())
}

fn xfcc(m: &HttpConnectionManager, n: &str) -> Result<Xfcc, ListenerError> {
    use http_connection_manager::ForwardClientCertDetails as F;
    let mode = match F::try_from(m.forward_client_cert_details) {
        Ok(F::Sanitize) => XfccMode::Sanitize,
        Ok(F::ForwardOnly) => XfccMode::ForwardOnly,
        Ok(F::AppendForward) => XfccMode::AppendForward,
        Ok(F::SanitizeSet) => XfccMode::SanitizeSet,
        Ok(F::AlwaysForwardOnly) => XfccMode::AlwaysForwardOnly,
        Err(_) => return Err(lerr(n, "unknown forward_client_cert_details")),
    };
    let set = m.set_current_client_cert_details.unwrap_or_default();
    if set.cert || set.chain {
        return Err(lerr(
            n,
            "x-forwarded-client-cert with the certificate or chain (Cert, Chain) is not supported",
        ));
    }
    Ok(Xfcc {
        mode,
        subject: set.subject.is_some_and(|b| b.value),
        uri: set.uri,
        dns: set.dns,
    })
}

/// A filter chain's network filters as a listener kind.
fn chain_kind(chain: &FilterChain, n: &str) -> Result<ListenerKind, ListenerError> {
    // Network RBAC filters may come first; then one http_connection_manager or tcp_proxy.
    let Some((f, front)) = chain.filters.split_last() else {
        return Err(lerr(
            n,
            "exactly one network filter (http_connection_manager or tcp_proxy) is supported",
        ));
    };
    let mut rbac = Vec::new();
    for rf in front {
        let any = match &rf.config_type {
            Some(filter::ConfigType::TypedConfig(a)) => a,
            _ => return Err(lerr(n, format!("filter {:?} has no typed config", rf.name))),
        };
        if rf.name != NETWORK_RBAC && any.type_url != NETWORK_RBAC_TYPE {
            return Err(lerr(
                n,
                format!(
                    "network filter {:?} is not supported (only RBAC may precede the last filter)",
                    rf.name
                ),
            ));
        }
        rbac.push(Arc::new(
            RbacFilter::network_from_any(any.value.as_slice())
                .map_err(|e| lerr(n, e.to_string()))?,
        ));
    }
    let any = match &f.config_type {
        Some(filter::ConfigType::TypedConfig(a)) => a,
        _ => return Err(lerr(n, format!("filter {:?} has no typed config", f.name))),
    };
    let kind = if f.name == HCM || any.type_url == HCM_TYPE {
        let m = HttpConnectionManager::decode(any.value.as_slice())
            .map_err(|e| lerr(n, format!("bad http_connection_manager: {e}")))?;
        if !rbac.is_empty() {
            return Err(lerr(
                n,
                "network RBAC in front of an http_connection_manager is not supported",
            ));
        }
        ListenerKind::Http(http_spec(&m, n)?)
    } else if f.name == TCP_PROXY || any.type_url == TCP_PROXY_TYPE {
        let t = TcpProxy::decode(any.value.as_slice())
            .map_err(|e| lerr(n, format!("bad tcp_proxy: {e}")))?;
        let targets = match &t.cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => vec![(c.clone(), 1)],
            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => w
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight))
                .collect(),
            None => return Err(lerr(n, "tcp_proxy without a cluster")),
        };
        if targets.iter().all(|(_, w)| *w == 0) {
            return Err(lerr(n, "tcp_proxy weights add up to 0"));
        }
        ListenerKind::Tcp(TcpSpec {
            targets,
            stat_prefix: t.stat_prefix,
            rbac,
        })
    } else {
        return Err(lerr(
            n,
            format!("network filter {:?} is not supported", f.name),
        ));
    };
    Ok(kind)
}

fn http_spec(m: &HttpConnectionManager, n: &str) -> Result<HttpSpec, ListenerError> {
    if m.codec_type == http_connection_manager::CodecType::Http3 as i32 {
        return Err(lerr(n, "HTTP/3 is not supported"));
    }
    let routes = match &m.route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(r)) => {
            RouteSource::Rds(r.route_config_name.clone())
        }
        Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(
            Arc::new(RouteTable::try_from(rc).map_err(|e| lerr(n, e.to_string()))?),
        ),
        _ => return Err(lerr(n, "scoped routes are not supported")),
    };
    let mut spec = HttpSpec {
        routes,
        fault: false,
        cors: false,
        forward_proxy: false,
        stat_prefix: m.stat_prefix.clone(),
        authz: Vec::new(),
        headers_timeout: super::route::optional_duration(m.request_headers_timeout.as_ref())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_HEADERS_TIMEOUT),
        use_remote_address: m.use_remote_address.as_ref().is_some_and(|b| b.value),
        xfcc: xfcc(m, n)?,
    };
    let mut router = false;
    for f in &m.http_filters {
        if f.disabled {
            continue;
        }
        let url = match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(a)) => a.type_url.as_str(),
            _ => "",
        };
        let is = |name: &str, ty: &str| f.name == name || url.ends_with(ty);
        if is("envoy.filters.http.router", ".router.v3.Router") {
            router = true;
        } else if is("envoy.filters.http.fault", ".fault.v3.HTTPFault") {
            spec.fault = true;
        } else if is("envoy.filters.http.cors", ".cors.v3.Cors") {
            spec.cors = true;
        } else if is(
            "envoy.filters.http.dynamic_forward_proxy",
            ".dynamic_forward_proxy.v3.FilterConfig",
        ) {
            spec.forward_proxy = true;
        } else if is(
            "envoy.filters.http.jwt_authn",
            ".jwt_authn.v3.JwtAuthentication",
        ) {
            let Some(http_filter::ConfigType::TypedConfig(a)) = &f.config_type else {
                return Err(lerr(n, "the jwt_authn filter has no typed config"));
            };
            let j = JwtFilter::from_any(a.value.as_slice()).map_err(|e| lerr(n, e.to_string()))?;
            spec.authz.push(HttpAuthz::Jwt(Arc::new(j)));
        } else if is("envoy.filters.http.rbac", ".rbac.v3.RBAC") {
            let Some(http_filter::ConfigType::TypedConfig(a)) = &f.config_type else {
                return Err(lerr(n, "the RBAC filter has no typed config"));
            };
            let r = RbacFilter::http_from_any(a.value.as_slice())
                .map_err(|e| lerr(n, e.to_string()))?;
            spec.authz.push(HttpAuthz::Rbac(Arc::new(r)));
        } else if !f.is_optional {
            return Err(lerr(
                n,
                format!("HTTP filter {:?} is not supported", f.name),
            ));
        }
    }
    if !router {
        return Err(lerr(n, "the HTTP filter chain has no router"));
    }
    Ok(spec)
}

/// Versions per type, as last applied, and when.
#[derive(Clone, Debug, Default)]
pub struct Versions {
    pub clusters: String,
    pub endpoints: String,
    pub listeners: String,
    pub routes: String,
    pub clusters_at: Option<std::time::SystemTime>,
    pub endpoints_at: Option<std::time::SystemTime>,
    pub listeners_at: Option<std::time::SystemTime>,
    pub routes_at: Option<std::time::SystemTime>,
}

/// One generation of the proxy's configuration.
#[derive(Debug, Default)]
pub struct Config {
    pub listeners: BTreeMap<String, Arc<ListenerSpec>>,
    pub routes: HashMap<String, Arc<RouteTable>>,
    pub clusters: HashMap<String, Arc<Cluster>>,
    /// Endpoints by EDS name.
    pub endpoints: HashMap<String, Arc<Vec<HostAddr>>>,
    pub versions: Versions,
    /// What was applied, as received (for `/config_dump`).
    pub raw_listeners: BTreeMap<String, Listener>,
    pub raw_clusters: Vec<PbCluster>,
    pub raw_routes: BTreeMap<String, RouteConfiguration>,
    pub raw_endpoints: BTreeMap<String, ClusterLoadAssignment>,
    /// Whether CDS and LDS have been applied once.
    pub cds_applied: bool,
    pub lds_applied: bool,
    /// The source address of upstream connections of clusters without their own bind
    /// (local mode: the workload's address, as the bootstrap's `upstream_bind_config`).
    pub upstream_bind: Option<std::net::IpAddr>,
    /// The workload certificate's holder, for TLS clusters (`None`: no `--ca-dir`).
    pub identity: Option<Arc<Identity>>,
}

impl Config {
    fn next(&self) -> Config {
        Config {
            listeners: self.listeners.clone(),
            routes: self.routes.clone(),
            clusters: self.clusters.clone(),
            endpoints: self.endpoints.clone(),
            versions: self.versions.clone(),
            raw_listeners: self.raw_listeners.clone(),
            raw_clusters: self.raw_clusters.clone(),
            raw_routes: self.raw_routes.clone(),
            raw_endpoints: self.raw_endpoints.clone(),
            cds_applied: self.cds_applied,
            lds_applied: self.lds_applied,
            upstream_bind: self.upstream_bind,
            identity: self.identity.clone(),
        }
    }

    /// The EDS names the clusters need.
    pub fn eds_names(&self) -> BTreeSet<String> {
        self.clusters
            .values()
            .filter_map(|c| c.spec.eds_name.clone())
            .collect()
    }

    /// What is applied, as the xDS messages it came from (sorted by name).
    pub fn proxy_config(&self) -> mesh_core::xds::ProxyConfig {
        let listeners: Vec<Listener> = self.raw_listeners.values().cloned().collect();
        let mut clusters = self.raw_clusters.clone();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        mesh_core::xds::ProxyConfig {
            listeners,
            routes: self.raw_routes.values().cloned().collect(),
            clusters,
            endpoints: self.raw_endpoints.values().cloned().collect(),
        }
    }

    /// The route configuration names the listeners need.
    pub fn rds_names(&self) -> BTreeSet<String> {
        self.listeners
            .values()
            .filter_map(|l| match &l.kind {
                ListenerKind::Http(h) => match &h.routes {
                    RouteSource::Rds(n) => Some(n.clone()),
                    RouteSource::Inline(_) => None,
                },
                ListenerKind::Tcp(_) => None,
            })
            .collect()
    }

    /// Whether the first full config is in: clusters, listeners, and every route
    /// configuration and endpoint set they name.
    pub fn initialized(&self) -> bool {
        self.cds_applied
            && self.lds_applied
            && self.rds_names().iter().all(|n| self.routes.contains_key(n))
            && self
                .eds_names()
                .iter()
                .all(|n| self.endpoints.contains_key(n))
    }

    /// A cluster's upstream source address: its own `upstream_bind_config` (the
    /// unspecified address: the kernel's choice), else the proxy's [`Config::upstream_bind`].
    fn bind_for(&self, spec: &ClusterSpec) -> Option<std::net::IpAddr> {
        match spec
            .proto
            .upstream_bind_config
            .as_ref()
            .and_then(|b| b.source_address.as_ref())
        {
            Some(sa) => sa
                .address
                .parse::<std::net::IpAddr>()
                .ok()
                .filter(|ip| !ip.is_unspecified()),
            None => self.upstream_bind,
        }
    }

    fn build_cluster(&self, spec: Arc<ClusterSpec>) -> Arc<Cluster> {
        let bind = self.bind_for(&spec);
        let shared = self
            .clusters
            .get(&spec.name)
            .filter(|old| {
                old.spec.connect_timeout == spec.connect_timeout
                    && old.shared.bind == bind
                    && old.spec.tls == spec.tls
            })
            .map_or_else(
                || {
                    Arc::new(ClusterShared::secured(
                        spec.connect_timeout,
                        bind,
                        spec.tls.clone(),
                        self.identity.clone(),
                    ))
                },
                |old| old.shared.clone(),
            );
        let hosts: Vec<HostAddr> = match &spec.eds_name {
            Some(eds) => self
                .endpoints
                .get(eds)
                .map(|h| h.as_ref().clone())
                .unwrap_or_default(),
            None => spec.static_hosts.clone(),
        };
        Arc::new(Cluster::new(spec, &hosts, shared))
    }

    /// The next generation with this CDS state of the world. As Envoy does, clusters that
    /// cannot be applied are reported and left as they were (absent when new); the others
    /// are applied. The version moves only when everything applied.
    pub fn with_clusters(&self, clusters: Vec<PbCluster>, version: &str) -> Applied {
        let mut next = self.next();
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        next.clusters = HashMap::new();
        for c in &clusters {
            if !seen.insert(c.name.clone()) {
                errors.push(format!("cluster {:?} appears twice", c.name));
                continue;
            }
            let spec = match ClusterSpec::try_from(c) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    errors.push(e.to_string());
                    if let Some(old) = self.clusters.get(&c.name) {
                        next.clusters.insert(c.name.clone(), old.clone());
                    }
                    continue;
                }
            };
            // An unchanged cluster keeps its generation (and so its hash ring).
            let same = self
                .clusters
                .get(&c.name)
                .filter(|old| old.spec.proto == spec.proto)
                .cloned();
            let cl = match same {
                Some(cl) => cl,
                None => self.build_cluster(spec),
            };
            next.clusters.insert(c.name.clone(), cl);
        }
        let needed = next.eds_names();
        next.endpoints.retain(|k, _| needed.contains(k));
        next.raw_endpoints.retain(|k, _| needed.contains(k));
        let mut raw: Vec<PbCluster> = next
            .clusters
            .values()
            .map(|c| c.spec.proto.clone())
            .collect();
        raw.sort_by(|a, b| a.name.cmp(&b.name));
        next.raw_clusters = raw;
        if errors.is_empty() {
            next.versions.clusters = version.to_owned();
        }
        next.versions.clusters_at = Some(std::time::SystemTime::now());
        next.cds_applied = true;
        Applied {
            config: next,
            errors,
        }
    }

    /// The next generation with these endpoints (by name; others are kept). Assignments
    /// that cannot be applied are reported and left as they were.
    pub fn with_endpoints(
        &self,
        assignments: Vec<ClusterLoadAssignment>,
        version: &str,
    ) -> Applied {
        let mut next = self.next();
        let mut errors = Vec::new();
        let mut changed = BTreeSet::new();
        for cla in assignments {
            let hosts = match assignment_hosts(&cla, &cla.cluster_name) {
                Ok(h) => h,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            changed.insert(cla.cluster_name.clone());
            next.endpoints
                .insert(cla.cluster_name.clone(), Arc::new(hosts));
            next.raw_endpoints.insert(cla.cluster_name.clone(), cla);
        }
        let rebuild: Vec<Arc<ClusterSpec>> = next
            .clusters
            .values()
            .filter(|c| {
                c.spec
                    .eds_name
                    .as_ref()
                    .is_some_and(|n| changed.contains(n))
            })
            .map(|c| c.spec.clone())
            .collect();
        for spec in rebuild {
            let c = next.build_cluster(spec);
            next.clusters.insert(c.spec.name.clone(), c);
        }
        if errors.is_empty() {
            next.versions.endpoints = version.to_owned();
        }
        next.versions.endpoints_at = Some(std::time::SystemTime::now());
        Applied {
            config: next,
            errors,
        }
    }

    /// The next generation with this LDS state of the world. As Envoy does, listeners that
    /// cannot be applied are reported and left as they were (absent when new).
    pub fn with_listeners(&self, listeners: Vec<Listener>, version: &str) -> Applied {
        let mut next = self.next();
        let mut errors = Vec::new();
        next.listeners = BTreeMap::new();
        next.raw_listeners = BTreeMap::new();
        for l in listeners {
            if next.listeners.contains_key(&l.name) {
                errors.push(format!("listener {:?} appears twice", l.name));
                continue;
            }
            let spec = match ListenerSpec::try_from(&l) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(e.to_string());
                    if let (Some(old), Some(raw)) =
                        (self.listeners.get(&l.name), self.raw_listeners.get(&l.name))
                    {
                        next.listeners.insert(l.name.clone(), old.clone());
                        next.raw_listeners.insert(l.name.clone(), raw.clone());
                    }
                    continue;
                }
            };
            if let Some(other) = next.listeners.values().find(|o| o.addr == spec.addr) {
                errors.push(format!(
                    "listener {:?}: address {} is taken by listener {:?}",
                    l.name, spec.addr, other.name
                ));
                continue;
            }
            next.listeners.insert(l.name.clone(), Arc::new(spec));
            next.raw_listeners.insert(l.name.clone(), l);
        }
        let needed = next.rds_names();
        next.routes.retain(|k, _| needed.contains(k));
        next.raw_routes.retain(|k, _| needed.contains(k));
        if errors.is_empty() {
            next.versions.listeners = version.to_owned();
        }
        next.versions.listeners_at = Some(std::time::SystemTime::now());
        next.lds_applied = true;
        Applied {
            config: next,
            errors,
        }
    }

    /// Takes out a listener that could not be bound.
    pub fn drop_listener(&mut self, name: &str) {
        self.listeners.remove(name);
        self.raw_listeners.remove(name);
    }

    /// The next generation with these route configurations (by name; others are kept).
    /// Route configurations that cannot be applied are reported and left as they were.
    pub fn with_routes(&self, routes: Vec<RouteConfiguration>, version: &str) -> Applied {
        let mut next = self.next();
        let mut errors = Vec::new();
        for rc in routes {
            match RouteTable::try_from(&rc) {
                Ok(t) => {
                    next.routes.insert(rc.name.clone(), Arc::new(t));
                    next.raw_routes.insert(rc.name.clone(), rc);
                }
                Err(e) => errors.push(format!("route configuration {:?}: {e}", rc.name)),
            }
        }
        if errors.is_empty() {
            next.versions.routes = version.to_owned();
        }
        next.versions.routes_at = Some(std::time::SystemTime::now());
        Applied {
            config: next,
            errors,
        }
    }
}

/// A new generation and what of the update could not be applied (a NACK's detail).
#[derive(Debug)]
pub struct Applied {
    pub config: Config,
    pub errors: Vec<String>,
}

impl Applied {
    /// The config, when everything applied.
    pub fn ok(self) -> Result<Config, String> {
        if self.errors.is_empty() {
            Ok(self.config)
        } else {
            Err(self.errors.join("; "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, ListenerFilter};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpFilter, Rds,
    };
    use envoy_types::pb::google::protobuf::{Any, BoolValue};

    fn any<M: Message>(url: &str, m: &M) -> Any {
        Any {
            type_url: url.into(),
            value: m.encode_to_vec(),
        }
    }

    fn listener(filters: Vec<HttpFilter>) -> Listener {
        let hcm = HttpConnectionManager {
            stat_prefix: "s".into(),
            route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
                route_config_name: "15001".into(),
                ..Default::default()
            })),
            http_filters: filters,
            ..Default::default()
        };
        Listener {
            name: "virtualOutbound".into(),
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: "127.0.0.9".into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(15001)),
                    ..Default::default()
                })),
            }),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: HCM.into(),
                    config_type: Some(filter::ConfigType::TypedConfig(any(HCM_TYPE, &hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn hf(name: &str, optional: bool) -> HttpFilter {
        HttpFilter {
            name: name.into(),
            is_optional: optional,
            ..Default::default()
        }
    }

    #[test]
    fn nack_decisions_for_listeners() {
        let ok = listener(vec![
            hf("envoy.filters.http.fault", false),
            hf("envoy.filters.http.router", false),
        ]);
        let spec = ListenerSpec::try_from(&ok).unwrap();
        assert_eq!(spec.addr, "127.0.0.9:15001".parse().unwrap());
        let ListenerKind::Http(h) = &spec.kind else {
            panic!()
        };
        assert!(h.fault && !h.cors);
        assert!(matches!(&h.routes, RouteSource::Rds(n) if n == "15001"));

        // Unknown filters are refused unless optional; a chain needs a router.
        let e = ListenerSpec::try_from(&listener(vec![
            hf("envoy.filters.http.lua", false),
            hf("envoy.filters.http.router", false),
        ]))
        .unwrap_err();
        assert!(e.reason.contains("lua"), "{e}");
        assert!(
            ListenerSpec::try_from(&listener(vec![
                hf("envoy.filters.http.lua", true),
                hf("envoy.filters.http.router", false)
            ]))
            .is_ok()
        );
        assert!(ListenerSpec::try_from(&listener(vec![])).is_err());

        // Traffic capture is refused.
        let mut capture = ok.clone();
        capture.use_original_dst = Some(BoolValue { value: true });
        assert!(
            ListenerSpec::try_from(&capture)
                .unwrap_err()
                .reason
                .contains("capture")
        );
        let mut od = ok.clone();
        od.listener_filters.push(ListenerFilter {
            name: "envoy.filters.listener.original_dst".into(),
            ..Default::default()
        });
        assert!(ListenerSpec::try_from(&od).is_err());
    }

    #[test]
    fn bad_resources_keep_their_last_good_state_and_the_rest_applies() {
        let router = || hf("envoy.filters.http.router", false);
        let c = Config::default();
        let good = c
            .with_listeners(vec![listener(vec![router()])], "1")
            .ok()
            .unwrap();
        assert_eq!(good.rds_names().into_iter().collect::<Vec<_>>(), ["15001"]);
        assert!(!good.initialized());

        // A listener that cannot be applied stays as it was; the version does not move.
        let bad = good.with_listeners(vec![listener(vec![hf("x", false), router()])], "2");
        assert_eq!(bad.errors.len(), 1, "{:?}", bad.errors);
        assert!(bad.errors[0].contains("\"x\""), "{:?}", bad.errors);
        assert_eq!(bad.config.versions.listeners, "1");
        assert!(Arc::ptr_eq(
            &bad.config.listeners["virtualOutbound"],
            &good.listeners["virtualOutbound"]
        ));
        assert_eq!(bad.config.raw_listeners.len(), 1);

        // Twice the same name: the first applies, the second is reported.
        let dup = good.with_listeners(
            vec![listener(vec![router()]), listener(vec![router()])],
            "3",
        );
        assert_eq!(dup.errors.len(), 1);
        assert_eq!(dup.config.listeners.len(), 1);

        // A new cluster that cannot be applied is left out; the good one applies.
        let tls = PbCluster {
            name: "tls".into(),
            transport_socket: Some(envoy_types::pb::envoy::config::core::v3::TransportSocket {
                name: "envoy.transport_sockets.tls".into(),
                config_type: None,
            }),
            ..Default::default()
        };
        let plain = PbCluster {
            name: "plain".into(),
            ..Default::default()
        };
        let a = good.with_clusters(vec![tls.clone(), plain.clone()], "7");
        assert_eq!(a.errors.len(), 1);
        assert!(a.config.clusters.contains_key("plain"));
        assert!(!a.config.clusters.contains_key("tls"));
        assert_eq!(a.config.versions.clusters, "");
        // A cluster that was good and turns bad keeps its last good state.
        let first = good.with_clusters(vec![plain.clone()], "8").ok().unwrap();
        let mut now_tls = tls;
        now_tls.name = "plain".into();
        let b = first.with_clusters(vec![now_tls], "9");
        assert_eq!(b.errors.len(), 1);
        assert!(b.config.clusters["plain"].spec.proto == plain);
        assert_eq!(b.config.versions.clusters, "8");
    }
}

/// The current generation, swapped whole on every applied update.
#[derive(Debug)]
pub struct Store {
    tx: tokio::sync::watch::Sender<Arc<Config>>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            tx: tokio::sync::watch::Sender::new(Arc::new(Config::default())),
        }
    }
}

impl Store {
    /// The generation in force now.
    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().clone()
    }

    pub fn set(&self, c: Config) {
        self.tx.send_replace(Arc::new(c));
    }

    /// Notified on every new generation.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Config>> {
        self.tx.subscribe()
    }
}
