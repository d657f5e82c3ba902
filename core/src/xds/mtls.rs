//! Mutual TLS between sidecars: PeerAuthentication on the server side, auto mTLS and
//! DestinationRule `ISTIO_MUTUAL` on the client side.
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
//!   DestinationRule sets to `ISTIO_MUTUAL`; the server's SPIFFE ids are verified.
//!
//! Certificates come over SDS from the proxy's agent (secrets `default` and `ROOTCA` on the
//! bootstrap's `sds-grpc` cluster), so all of this applies only to proxies that announce
//! one ([`super::ProxyInfo::mtls`], node metadata `MESH_MTLS`); the others keep the
//! plaintext config. Departure from Istio: a cluster whose endpoints are partly meshed
//! stays plaintext, rather than choosing per endpoint with `transport_socket_matches`.

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
fn forward_client_cert(mut f: Filter) -> Filter {
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
    hcm.forward_client_cert_details =
        http_connection_manager::ForwardClientCertDetails::AppendForward as i32;
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
    let alpn: &[&str] = if super::registry::is_http_protocol(protocol) {
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
