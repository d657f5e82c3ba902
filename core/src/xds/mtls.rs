//! Mutual TLS between sidecars and gateways: PeerAuthentication on the server side, auto
//! mTLS and DestinationRule `ISTIO_MUTUAL` on the client side, Gateway servers with
//! `tls.mode: ISTIO_MUTUAL`.
//!
//! This module owns:
//! - the effective PeerAuthentication mode of a workload and port, resolved as Istio does:
//!   the oldest workload policy (selector) in the workload's namespace, then the namespace
//!   policy (no selector), then the mesh-wide policy (no selector, root namespace), `UNSET`
//!   inheriting from the level above, `portLevelMtls` (workload policies only) overriding
//!   per endpoint port; PERMISSIVE when nothing says otherwise;
//! - inbound filter chains for a mode: STRICT one TLS chain (client certificate required,
//!   verified against the trust bundle `ROOTCA`), PERMISSIVE a TLS chain and a plaintext
//!   one told apart by `tls_inspector`, DISABLE plaintext only; the HTTP connection manager
//!   of the TLS chain forwards the client's identity in `x-forwarded-client-cert`;
//! - the client side: a cluster whose endpoints all run a sidecar (label
//!   `security.istio.io/tlsMode: istio`, as Istio's injector sets it) and do not DISABLE
//!   mTLS on that port gets an `ISTIO_MUTUAL` transport socket (auto mTLS), as does one a
//!   DestinationRule sets to `ISTIO_MUTUAL`; the server's SPIFFE ids are verified;
//! - Kubernetes mode: `virtualInbound`'s chains per port and mode ([`kube_port_chains`]),
//!   and the mesh ALPN clients offer there ([`MESH_ALPN`]);
//! - gateways: the `ISTIO_MUTUAL` server socket ([`gateway_server_socket`]) and its
//!   `x-forwarded-client-cert` handling ([`gateway_client_cert`]).
//!
//! Certificates come over SDS from the proxy's agent (secrets `default` and `ROOTCA` on the
//! bootstrap's `sds-grpc` cluster), so all of this applies only to proxies that announce
//! one ([`super::ProxyInfo::mtls`], node metadata `MESH_MTLS`); the others keep the
//! plaintext config. Departures from Istio: a cluster whose endpoints are partly meshed
//! stays plaintext, rather than choosing per endpoint with `transport_socket_matches`; in
//! Kubernetes mode, ports no Service names pass through `virtualInbound`'s default chain
//! in plaintext whatever the mode (Istio applies STRICT there too).

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{
    ApiConfigSource, ConfigSource, GrpcService, TransportSocket, api_config_source, config_source,
    grpc_service, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::Filter;
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use prost::Message;

use super::registry::{Endpoint, Service};
use super::{ProxyInfo, Snapshot, proto};
use crate::analysis::json::selector_matches;
use crate::identity::{SDS_DEFAULT, SDS_ROOTCA, SpiffeId};
use crate::model::networking::{ClientTlsMode, ClientTlsSettings};
use crate::model::security::{MtlsMode, PeerAuthentication};

/// The bootstrap's SDS cluster (mesh-proxy's agent serves it on a Unix socket).
pub const SDS_CLUSTER: &str = "sds-grpc";
/// The label Istio's injector sets on workloads that run a sidecar.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// ALPN a server offers (its order is the preference).
const SERVER_ALPN: [&str; 4] = ["h2", "http/1.1", "istio-peer-exchange", "istio"];
/// ALPN of sidecar-to-sidecar TCP.
const TCP_ALPN: [&str; 2] = ["istio-peer-exchange", "istio"];
/// The transport socket name Envoy knows TLS by.
const TLS_SOCKET: &str = "envoy.transport_sockets.tls";

/// The effective mode of a port (never `Unset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMode {
    Strict,
    Permissive,
    Disable,
}

fn mode_of(m: &MtlsMode) -> Option<PeerMode> {
    match m {
        MtlsMode::Strict => Some(PeerMode::Strict),
        MtlsMode::Permissive => Some(PeerMode::Permissive),
        MtlsMode::Disable => Some(PeerMode::Disable),
        _ => None,
    }
}

fn policy_mode(pa: &PeerAuthentication) -> Option<PeerMode> {
    pa.mtls.as_ref().and_then(|m| mode_of(&m.mode))
}

/// The effective PeerAuthentication mode for a workload (namespace, labels) on an
/// endpoint port.
pub fn peer_mode(
    snap: &Snapshot,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    port: u16,
) -> PeerMode {
    let root = snap.mesh.root_namespace();
    let unselected = |pa: &&super::Typed<PeerAuthentication>| {
        pa.spec
            .selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
    };
    // Load order stands in for creation time: the oldest wins, as in Istio.
    let mesh = snap
        .peer_authentications
        .iter()
        .filter(|pa| pa.namespace() == root)
        .find(unselected);
    let ns = snap
        .peer_authentications
        .iter()
        .filter(|pa| pa.namespace() == namespace && namespace != root)
        .find(unselected);
    let workload = snap
        .peer_authentications
        .iter()
        .filter(|pa| pa.namespace() == namespace)
        .find(|pa| {
            pa.spec.selector.as_ref().is_some_and(|s| {
                !s.match_labels.is_empty() && selector_matches(&s.match_labels, labels)
            })
        });
    let mut mode = PeerMode::Permissive;
    for pa in [mesh, ns, workload].into_iter().flatten() {
        if let Some(m) = policy_mode(&pa.spec) {
            mode = m;
        }
    }
    if let Some(pa) = workload
        && let Some(m) = pa
            .spec
            .port_level_mtls
            .as_ref()
            .and_then(|p| p.get(&u32::from(port)))
            .and_then(|m| mode_of(&m.mode))
    {
        mode = m;
    }
    mode
}

/// The mode of this proxy's own inbound port.
pub fn inbound_mode(snap: &Snapshot, proxy: &ProxyInfo, port: u16) -> PeerMode {
    peer_mode(snap, &proxy.namespace, &proxy.labels, port)
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ConfigSource {
            resource_api_version: proto_api_v3(),
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: api_config_source::ApiType::Grpc as i32,
                    transport_api_version: proto_api_v3(),
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: SDS_CLUSTER.to_owned(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }],
                    set_node_on_first_message_only: true,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    }
}

fn proto_api_v3() -> i32 {
    envoy_types::pb::envoy::config::core::v3::ApiVersion::V3 as i32
}

/// Certificate `default`, trust bundle `ROOTCA`, the peer's SANs checked against `sans`
/// (URI prefix `spiffe://TD/` when `sans` is empty).
fn istio_common(trust_domain: &str, sans: &[String], alpn: &[&str]) -> CommonTlsContext {
    let matchers: Vec<SubjectAltNameMatcher> = if sans.is_empty() {
        vec![SubjectAltNameMatcher {
            san_type: subject_alt_name_matcher::SanType::Uri as i32,
            matcher: Some(proto::prefix_matcher(&format!("spiffe://{trust_domain}/"))),
            ..Default::default()
        }]
    } else {
        sans.iter()
            .map(|s| SubjectAltNameMatcher {
                san_type: subject_alt_name_matcher::SanType::Uri as i32,
                matcher: Some(proto::exact_matcher(s)),
                ..Default::default()
            })
            .collect()
    };
    CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![sds(SDS_DEFAULT)],
        validation_context_type: Some(
            common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: matchers,
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds(SDS_ROOTCA)),
                    ..Default::default()
                },
            ),
        ),
        alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

fn tls_socket<M: prost::Message + prost::Name>(ctx: &M) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(ctx))),
    }
}

/// The inbound filter chains for `mode`, from the plaintext chain's filters, and whether
/// the listener needs `tls_inspector`. The HTTP connection manager of the TLS chain
/// forwards the client's certificate details (`x-forwarded-client-cert`: `By`, `Hash`,
/// `URI`), as Istio's sidecars do.
pub fn inbound_chains(
    snap: &Snapshot,
    mode: PeerMode,
    filters: Vec<Filter>,
) -> (Vec<FilterChain>, bool) {
    let plain = |filters: Vec<Filter>, matched: bool| FilterChain {
        filter_chain_match: matched.then(|| FilterChainMatch {
            transport_protocol: "raw_buffer".to_owned(),
            ..Default::default()
        }),
        filters,
        name: if matched {
            "plaintext".to_owned()
        } else {
            String::new()
        },
        ..Default::default()
    };
    if mode == PeerMode::Disable {
        return (vec![plain(filters, false)], false);
    }
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(istio_common(snap.mesh.trust_domain(), &[], &SERVER_ALPN)),
        require_client_certificate: Some(proto::boolv(true)),
        ..Default::default()
    };
    let tls = FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: "tls".to_owned(),
            ..Default::default()
        }),
        filters: filters.iter().cloned().map(forward_client_cert).collect(),
        transport_socket: Some(tls_socket(&ctx)),
        name: "mtls".to_owned(),
        ..Default::default()
    };
    let chains = match mode {
        PeerMode::Strict => vec![tls],
        _ => vec![tls, plain(filters, true)],
    };
    (chains, true)
}

/// The transport socket of a gateway server with `tls.mode: ISTIO_MUTUAL`: the gateway's
/// own workload certificate (`default`), the client's certificate required and verified
/// against the trust bundle (any SPIFFE id of the trust domain; AuthorizationPolicies on
/// the gateway narrow it).
pub fn gateway_server_socket(snap: &Snapshot) -> TransportSocket {
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(istio_common(
            snap.mesh.trust_domain(),
            &[],
            &["h2", "http/1.1"],
        )),
        require_client_certificate: Some(proto::boolv(true)),
        ..Default::default()
    };
    tls_socket(&ctx)
}

/// A gateway's HTTP connection manager behind an `ISTIO_MUTUAL` server: it replaces any
/// `x-forwarded-client-cert` the client sent with the client's verified identity
/// (`SANITIZE_SET`, Istio's default for gateways), so the backend sees who called the
/// gateway; other filters unchanged.
pub fn gateway_client_cert(f: Filter) -> Filter {
    with_client_cert(
        f,
        http_connection_manager::ForwardClientCertDetails::SanitizeSet,
    )
}

/// ALPN a meshed client offers in Kubernetes mode, by which `virtualInbound` tells mesh
/// mTLS from an app's own TLS (Istio's list).
pub const MESH_ALPN: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

/// Kubernetes mode: the `virtualInbound` filter chains of one inbound port for `mode`, all
/// matching the port (`destination_port`), as Istio builds them:
/// - STRICT: TLS (`transport_protocol: tls`) is mTLS (a non-mesh TLS client fails the
///   handshake); anything else on the port matches a chain that closes the connection
///   (`BlackHoleCluster`), so plaintext never reaches the passthrough chain;
/// - PERMISSIVE: TLS offering a mesh ALPN ([`MESH_ALPN`]) is mTLS, plaintext
///   (`raw_buffer`) keeps the port's filters, and TLS without a mesh ALPN (the app's own
///   TLS) is proxied to the app untouched (`passthrough`, a TCP proxy to `inbound|PORT||`);
/// - DISABLE: one chain for the port, the port's filters.
///
/// `name` prefixes the chains' names (`inbound|PORT||`). With `port` `None` the chains match
/// every port no other chain names: `virtualInbound`'s passthrough under the workload's
/// mode, so STRICT refuses plaintext on a port no Service names too.
pub fn kube_port_chains(
    snap: &Snapshot,
    mode: PeerMode,
    port: Option<u16>,
    name: &str,
    filters: Vec<Filter>,
    passthrough: Filter,
    refuse: Filter,
) -> Vec<FilterChain> {
    let matching = |transport: &str, alpn: &[&str]| FilterChainMatch {
        destination_port: port.map(|p| proto::u32v(u32::from(p))),
        transport_protocol: transport.to_owned(),
        application_protocols: alpn.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    };
    let chain = |suffix: &str, m: FilterChainMatch, filters: Vec<Filter>| FilterChain {
        name: format!("{name}{suffix}"),
        filter_chain_match: Some(m),
        filters,
        ..Default::default()
    };
    if mode == PeerMode::Disable {
        return vec![chain("", matching("", &[]), filters)];
    }
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(istio_common(snap.mesh.trust_domain(), &[], &SERVER_ALPN)),
        require_client_certificate: Some(proto::boolv(true)),
        ..Default::default()
    };
    let tls_filters: Vec<Filter> = filters.iter().cloned().map(forward_client_cert).collect();
    match mode {
        PeerMode::Strict => vec![
            FilterChain {
                transport_socket: Some(tls_socket(&ctx)),
                ..chain("-mtls", matching("tls", &[]), tls_filters)
            },
            chain("-refused", matching("", &[]), vec![refuse]),
        ],
        _ => vec![
            FilterChain {
                transport_socket: Some(tls_socket(&ctx)),
                ..chain("-mtls", matching("tls", &MESH_ALPN), tls_filters)
            },
            chain("-plaintext", matching("raw_buffer", &[]), filters),
            chain("-passthrough", matching("tls", &[]), vec![passthrough]),
        ],
    }
}

/// `tls_inspector`, which tells TLS from plaintext for the chains' match.
pub fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
            &TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// An HTTP connection manager that appends the client's identity to
/// `x-forwarded-client-cert`; other filters unchanged.
fn forward_client_cert(f: Filter) -> Filter {
    with_client_cert(
        f,
        http_connection_manager::ForwardClientCertDetails::AppendForward,
    )
}

fn with_client_cert(
    mut f: Filter,
    how: http_connection_manager::ForwardClientCertDetails,
) -> Filter {
    const HCM: &str = "envoy.filters.network.http_connection_manager";
    if f.name != HCM {
        return f;
    }
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return f;
    };
    let Ok(mut hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
        return f;
    };
    hcm.forward_client_cert_details = how as i32;
    hcm.set_current_client_cert_details =
        Some(http_connection_manager::SetCurrentClientCertDetails {
            uri: true,
            dns: true,
            subject: Some(proto::boolv(true)),
            ..Default::default()
        });
    f.config_type = Some(filter::ConfigType::TypedConfig(proto::any(&hcm)));
    f
}

/// Whether an endpoint takes mTLS on `port`: it runs a sidecar (tlsMode label) whose
/// PeerAuthentication does not DISABLE the port.
pub fn endpoint_takes_mtls(snap: &Snapshot, ep: &Endpoint, port: u16) -> bool {
    ep.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")
        && peer_mode(snap, &ep.namespace, &ep.labels, port) != PeerMode::Disable
}

fn spiffe_of(snap: &Snapshot, ep: &Endpoint) -> String {
    let sa = if ep.service_account.is_empty() {
        "default"
    } else {
        &ep.service_account
    };
    SpiffeId::new(snap.mesh.trust_domain(), &ep.namespace, sa).to_string()
}

/// Sets the client side of mTLS on an outbound cluster: a DestinationRule's
/// `ISTIO_MUTUAL`, else auto mTLS when every endpoint takes it. `tls` is the
/// DestinationRule's setting for the cluster (SIMPLE and MUTUAL are set elsewhere; an
/// explicit DISABLE keeps plaintext). `http2`: the cluster speaks HTTP/2 upstream.
#[allow(clippy::too_many_arguments)]
pub fn apply_client(
    c: &mut Cluster,
    snap: &Snapshot,
    proxy: &ProxyInfo,
    svc: &Service,
    endpoints: &[&Endpoint],
    endpoint_port: impl Fn(&Endpoint) -> u16,
    tls: Option<&ClientTlsSettings>,
    protocol: &str,
    sni: &str,
) {
    if !proxy.mtls {
        return;
    }
    let explicit = match tls.map(|t| &t.mode) {
        Some(ClientTlsMode::IstioMutual) => true,
        Some(_) => return,
        None => false,
    };
    if !explicit
        && (svc.mesh_external
            || endpoints.is_empty()
            || !endpoints
                .iter()
                .all(|ep| endpoint_takes_mtls(snap, ep, endpoint_port(ep))))
    {
        return;
    }
    let sans: Vec<String> = match tls.and_then(|t| t.subject_alt_names.clone()) {
        Some(s) if !s.is_empty() => s,
        _ => endpoints
            .iter()
            .map(|ep| spiffe_of(snap, ep))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    // HTTP clusters offer no ALPN: the server's connection manager then tells HTTP/1.1
    // from HTTP/2 by the first bytes, whichever codec the cluster was given; ALPN `h2`
    // on an HTTP/1.1 cluster would make the server expect HTTP/2.
    // In Kubernetes mode the server's `virtualInbound` tells mesh mTLS from an app's own
    // TLS by ALPN: clients offer Istio's mesh protocols, which no server codec acts on.
    let alpn: &[&str] = if !proxy.local_mode {
        if super::registry::is_http2_protocol(protocol) {
            &["istio-h2", "istio"]
        } else if super::registry::is_http_protocol(protocol) {
            &["istio-http/1.1", "istio"]
        } else {
            &TCP_ALPN
        }
    } else if super::registry::is_http_protocol(protocol) {
        &[]
    } else {
        &TCP_ALPN
    };
    let sni = tls
        .map(|t| t.sni.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| sni.to_owned());
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(istio_common(snap.mesh.trust_domain(), &sans, alpn)),
        sni,
        ..Default::default()
    };
    c.transport_socket = Some(tls_socket(&ctx));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::xds::{ProxyConfig, ProxyKind, generate};
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;

    /// `web` (127.0.0.20) calls `api` (127.0.0.21, endpoint port 9090) in `shop`.
    const BASE: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080, targetPort: 9090}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v1, namespace: shop}
spec: {address: 127.0.0.21, labels: {app: api, security.istio.io/tlsMode: istio}, serviceAccount: api}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web, namespace: shop}
spec: {address: 127.0.0.20, labels: {app: web}, serviceAccount: web}
";

    fn snap(extra: &str) -> Snapshot {
        let loaded = crate::source::load_bytes("t.yaml", format!("{BASE}---\n{extra}").as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let s = Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default());
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        s
    }

    fn proxy(s: &Snapshot, name: &str, mtls: bool) -> ProxyInfo {
        let w = s.registry.workload("shop", name).unwrap();
        let mut p = ProxyInfo::from_node_id(&ProxyInfo::node_id(
            ProxyKind::Sidecar,
            w.address.parse().unwrap(),
            name,
            "shop",
        ))
        .unwrap();
        p.labels = w.labels.clone();
        p.mtls = mtls;
        p
    }

    fn pa(ns: &str, name: &str, body: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {body}\n---\n"
        )
    }

    fn api_mode(s: &Snapshot, port: u16) -> PeerMode {
        let w = s.registry.workload("shop", "api-v1").unwrap();
        peer_mode(s, "shop", &w.labels, port)
    }

    #[test]
    fn modes_resolve_mesh_then_namespace_then_workload_then_port() {
        let istio_ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\n";
        assert_eq!(api_mode(&snap(""), 9090), PeerMode::Permissive);
        let mesh = format!(
            "{istio_ns}{}",
            pa("istio-system", "m", "{mtls: {mode: STRICT}}")
        );
        assert_eq!(api_mode(&snap(&mesh), 9090), PeerMode::Strict);
        let ns = format!("{mesh}{}", pa("shop", "n", "{mtls: {mode: DISABLE}}"));
        assert_eq!(api_mode(&snap(&ns), 9090), PeerMode::Disable);
        // UNSET inherits from the namespace; a port-level mode wins on its port only.
        let wl = format!(
            "{ns}{}",
            pa(
                "shop",
                "w",
                "{selector: {matchLabels: {app: api}}, mtls: {mode: UNSET}, portLevelMtls: {9090: {mode: STRICT}}}"
            )
        );
        let s = snap(&wl);
        assert_eq!(api_mode(&s, 9090), PeerMode::Strict);
        assert_eq!(api_mode(&s, 9091), PeerMode::Disable);
        // A selector that does not match leaves the namespace's mode.
        let other = format!(
            "{ns}{}",
            pa(
                "shop",
                "w",
                "{selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}"
            )
        );
        assert_eq!(api_mode(&snap(&other), 9090), PeerMode::Disable);
    }

    fn inbound(cfg: &ProxyConfig) -> &envoy_types::pb::envoy::config::listener::v3::Listener {
        cfg.listeners
            .iter()
            .find(|l| l.name == "127.0.0.21_9090")
            .expect("inbound listener")
    }

    #[test]
    fn inbound_chains_follow_the_mode_only_for_proxies_with_certificates() {
        let strict = snap(&pa("shop", "n", "{mtls: {mode: STRICT}}"));
        let cfg = generate(&strict, &proxy(&strict, "api-v1", true));
        let l = inbound(&cfg);
        assert_eq!(l.listener_filters.len(), 1);
        assert_eq!(l.filter_chains.len(), 1);
        let chain = &l.filter_chains[0];
        assert_eq!(
            chain
                .filter_chain_match
                .as_ref()
                .unwrap()
                .transport_protocol,
            "tls"
        );
        let Some(ConfigType::TypedConfig(any)) =
            &chain.transport_socket.as_ref().unwrap().config_type
        else {
            panic!("no TLS context")
        };
        let ctx = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
        assert_eq!(ctx.require_client_certificate, Some(proto::boolv(true)));
        let common = ctx.common_tls_context.unwrap();
        assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
        assert!(common.alpn_protocols.contains(&"h2".to_owned()));
        let Some(filter::ConfigType::TypedConfig(hcm)) = &chain.filters[0].config_type else {
            panic!()
        };
        let hcm = HttpConnectionManager::decode(hcm.value.as_slice()).unwrap();
        assert_eq!(
            hcm.forward_client_cert_details,
            http_connection_manager::ForwardClientCertDetails::AppendForward as i32
        );

        let permissive = snap("");
        let cfg = generate(&permissive, &proxy(&permissive, "api-v1", true));
        let protocols: Vec<_> = inbound(&cfg)
            .filter_chains
            .iter()
            .map(|c| c.filter_chain_match.clone().unwrap().transport_protocol)
            .collect();
        assert_eq!(protocols, ["tls", "raw_buffer"]);

        let disable = snap(&pa("shop", "n", "{mtls: {mode: DISABLE}}"));
        let cfg = generate(&disable, &proxy(&disable, "api-v1", true));
        assert!(inbound(&cfg).listener_filters.is_empty());
        assert!(inbound(&cfg).filter_chains[0].transport_socket.is_none());

        // Without certificates the proxy keeps the plaintext listener, even under STRICT.
        let cfg = generate(&strict, &proxy(&strict, "api-v1", false));
        assert!(inbound(&cfg).listener_filters.is_empty());
        assert!(inbound(&cfg).filter_chains[0].transport_socket.is_none());
    }

    fn api_cluster_tls(s: &Snapshot, mtls: bool) -> Option<UpstreamTlsContext> {
        let cfg = generate(s, &proxy(s, "web", mtls));
        let c = cfg
            .clusters
            .iter()
            .find(|c| c.name == "outbound|8080||api.shop.svc.cluster.local")
            .expect("api cluster");
        let ts = c.transport_socket.as_ref()?;
        let Some(ConfigType::TypedConfig(any)) = &ts.config_type else {
            return None;
        };
        Some(UpstreamTlsContext::decode(any.value.as_slice()).unwrap())
    }

    fn dr(mode: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: api, namespace: shop}}\nspec: {{host: api.shop.svc.cluster.local, trafficPolicy: {{tls: {{mode: {mode}}}}}}}\n---\n"
        )
    }

    #[test]
    fn clients_send_mtls_to_meshed_endpoints_and_verify_their_identity() {
        let s = snap("");
        let ctx = api_cluster_tls(&s, true).expect("auto mTLS");
        assert_eq!(ctx.sni, "outbound_.8080_._.api.shop.svc.cluster.local");
        let common = ctx.common_tls_context.unwrap();
        let Some(common_tls_context::ValidationContextType::CombinedValidationContext(v)) =
            common.validation_context_type
        else {
            panic!("no validation context")
        };
        let sans = v
            .default_validation_context
            .unwrap()
            .match_typed_subject_alt_names;
        assert_eq!(sans.len(), 1);
        assert_eq!(
            sans[0].matcher,
            Some(proto::exact_matcher(
                "spiffe://cluster.local/ns/shop/sa/api"
            ))
        );
        assert_eq!(
            v.validation_context_sds_secret_config.unwrap().name,
            "ROOTCA"
        );
        // A client without certificates, an explicit DISABLE, or a server that disables
        // mTLS on the port: plaintext.
        assert!(api_cluster_tls(&s, false).is_none());
        assert!(api_cluster_tls(&snap(&dr("DISABLE")), true).is_none());
        let off = pa(
            "shop",
            "w",
            "{selector: {matchLabels: {app: api}}, portLevelMtls: {9090: {mode: DISABLE}}}",
        );
        assert!(api_cluster_tls(&snap(&off), true).is_none());
    }

    #[test]
    fn istio_mutual_applies_without_the_sidecar_label() {
        let unlabeled = r"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v2, namespace: shop}
spec: {address: 127.0.0.22, labels: {app: api}, serviceAccount: api2}
---
";
        // One endpoint without a sidecar: auto mTLS stays off for the whole cluster ...
        assert!(api_cluster_tls(&snap(unlabeled), true).is_none());
        // ... unless the DestinationRule asks for ISTIO_MUTUAL.
        let ctx = api_cluster_tls(&snap(&format!("{unlabeled}{}", dr("ISTIO_MUTUAL"))), true)
            .expect("ISTIO_MUTUAL");
        let Some(common_tls_context::ValidationContextType::CombinedValidationContext(v)) =
            ctx.common_tls_context.unwrap().validation_context_type
        else {
            panic!()
        };
        assert_eq!(
            v.default_validation_context
                .unwrap()
                .match_typed_subject_alt_names
                .len(),
            2
        );
    }
}
