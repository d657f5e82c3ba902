//! Gateway proxies: the Gateways whose selector matches the proxy's labels, one listener
//! per server address and port (`0.0.0.0_PORT`, or `GATEWAY_IP_PORT` in local mode and
//! for servers with a `bind`), and the VirtualServices bound to those Gateways.
//!
//! - HTTP servers share the route configuration `http.PORT`: one virtual host per host a
//!   bound VirtualService routes and a server on the port admits (`ns/host` forms checked
//!   against the VirtualService's namespace), matched without regard to the request's port.
//!   `httpsRedirect` makes a server's virtual hosts answer with a redirect to https. A port
//!   with no routable host answers 404 (`blackhole:PORT`).
//! - HTTPS servers terminating TLS with certificate files get a filter chain each (SNI from
//!   their hosts) and the route configuration `https.PORT.PORTNAME.GATEWAY.NS`.
//! - TLS `PASSTHROUGH` servers route by SNI with the VirtualServices' `tls` rules; TCP
//!   servers (and TLS servers terminating TLS with files) with their `tcp` rules.
//! - A Service selecting the gateway workload maps a server's port to the port the
//!   workload listens on (its targetPort), as Istio binds it; route matches and redirects
//!   still see the server's port.
//! - Servers on one port must agree on the kind (HTTP, terminated HTTPS, passthrough TLS,
//!   TCP); the first server (Gateways in load order) decides and the others are left out.
//!   Servers needing Kubernetes secrets are left out (and listed by [`super::Snapshot`]).
//! - Mutual TLS with the mesh's certificates (a gateway holding a workload certificate,
//!   [`ProxyInfo::mtls`]): its clusters get auto mTLS / `ISTIO_MUTUAL` as a sidecar's do
//!   (the gateway's own SPIFFE identity, so a backend's AuthorizationPolicy can admit its
//!   principal), and a server with `tls.mode: ISTIO_MUTUAL` terminates mutual TLS with the
//!   gateway's certificate, requires the client's (verified against the trust bundle) and
//!   passes its identity on in `x-forwarded-client-cert` (`SANITIZE_SET`). A gateway with
//!   no certificate leaves `ISTIO_MUTUAL` servers out.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteMatch, VirtualHost, route, route_match, virtual_host,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
    TlsParameters, common_tls_context,
};

use crate::host;
use crate::model::networking::{
    RouteDestination, Server, ServerTlsMode, ServerTlsSettings, VirtualService,
};

use super::authz;
use super::listener::{Routes, hcm, outbound_http_filters, tcp_proxy_weighted};
use super::registry::parse_protocol;
use super::route::{self as rt, RouteCtx};
use super::scope::{Scope, qualify_gateway};
use super::snapshot::needs_secret;
use super::{ProxyConfig, ProxyInfo, Snapshot, Typed, cluster, proto};

/// What a gateway server does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Http,
    Https,
    Passthrough,
    Tcp,
}

fn server_kind(s: &Server) -> Option<Kind> {
    let proto = s.port.as_ref().map(|p| p.protocol.as_str()).unwrap_or("");
    let protocol = parse_protocol(proto).unwrap_or("");
    let passthrough = s.tls.as_ref().is_some_and(|t| {
        matches!(
            t.mode,
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        )
    });
    match protocol {
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-Web" => Some(Kind::Http),
        "HTTPS" if passthrough => Some(Kind::Passthrough),
        "HTTPS" => Some(Kind::Https),
        "TLS" if passthrough => Some(Kind::Passthrough),
        "TLS" => Some(Kind::Tcp),
        "TCP" | "Mongo" | "MySQL" | "Redis" => Some(Kind::Tcp),
        _ => None,
    }
}

/// One server of one Gateway.
struct GwServer<'s> {
    gateway: &'s Typed<crate::model::networking::Gateway>,
    server: &'s Server,
    kind: Kind,
    /// The server's port number (the gateway Service's port).
    port: u16,
}

impl GwServer<'_> {
    fn gateway_name(&self) -> String {
        format!("{}/{}", self.gateway.namespace(), self.gateway.name())
    }
}

/// Everything a gateway receives.
pub(super) fn generate(snap: &Snapshot, proxy: &ProxyInfo) -> ProxyConfig {
    let mut scope = Scope::new(snap, proxy);
    let gateways: Vec<&Typed<crate::model::networking::Gateway>> = snap
        .gateways
        .iter()
        .filter(|g| crate::analysis::json::selector_matches(&g.spec.selector, &scope.labels))
        .collect();
    let names: BTreeSet<String> = gateways
        .iter()
        .map(|g| format!("{}/{}", g.namespace(), g.name()))
        .collect();
    scope.bind_gateways(names);

    let mut out = ProxyConfig::default();
    cluster::outbound(&scope, &mut out);
    cluster::special(&scope, &mut out);

    let default_bind = if proxy.local_mode {
        proxy.ip.to_string()
    } else {
        "0.0.0.0".to_owned()
    };
    let ip = proxy.ip.to_string();
    let mut target_ports: BTreeMap<u16, u16> = BTreeMap::new();
    for svc in &snap.registry.services {
        for ep in svc.endpoints.iter().filter(|e| e.address == ip) {
            for p in &svc.ports {
                target_ports.entry(p.number).or_insert(ep.port_for(p));
            }
        }
    }
    // Servers by listener address and port, in Gateway load order.
    let mut by_listener: BTreeMap<(String, u16), Vec<GwServer<'_>>> = BTreeMap::new();
    for gw in &gateways {
        for server in &gw.spec.servers {
            let Some(port) = server
                .port
                .as_ref()
                .and_then(|p| u16::try_from(p.number).ok())
                .filter(|p| *p != 0)
            else {
                continue;
            };
            let Some(kind) = server_kind(server) else {
                continue;
            };
            if kind == Kind::Https && server.tls.as_ref().is_none_or(needs_secret) {
                continue;
            }
            // ISTIO_MUTUAL needs the gateway's own workload certificate.
            if server.tls.as_ref().is_some_and(is_istio_mutual) && !proxy.mtls {
                continue;
            }
            // A TLS server that terminates TLS needs its certificate files.
            if kind == Kind::Tcp && server.tls.as_ref().is_some_and(needs_secret) {
                continue;
            }
            let bind = if server.bind.is_empty() {
                default_bind.clone()
            } else {
                server.bind.clone()
            };
            // A Service selecting the gateway maps its port to the port the gateway
            // workload listens on (Kubernetes targetPort), as Istio binds it.
            let listen = target_ports.get(&port).copied().unwrap_or(port);
            let list = by_listener.entry((bind, listen)).or_default();
            if list.first().is_some_and(|first| first.kind != kind) {
                continue;
            }
            list.push(GwServer {
                gateway: gw,
                server,
                kind,
                port,
            });
        }
    }

    for ((bind, port), servers) in &by_listener {
        let name = format!("{bind}_{port}");
        let mut listener = Listener {
            name: name.clone(),
            address: Some(proto::socket(bind, *port)),
            traffic_direction: envoy_types::pb::envoy::config::core::v3::TrafficDirection::Outbound
                as i32,
            ..Default::default()
        };
        match servers[0].kind {
            Kind::Http => {
                let rc_name = format!("http.{port}");
                let vhosts = http_vhosts(&scope, servers, servers[0].port, false);
                out.routes
                    .push(rt::route_configuration_ignoring_port(&rc_name, vhosts));
                listener.filter_chains.push(FilterChain {
                    filters: vec![hcm(
                        &format!("outbound_{name}"),
                        Routes::Rds(rc_name),
                        authz::with_http_filters(snap, proxy, outbound_http_filters(false)),
                        false,
                    )],
                    ..Default::default()
                });
            }
            Kind::Https => {
                for s in servers {
                    let Some(tls) = &s.server.tls else { continue };
                    let pname = s
                        .server
                        .port
                        .as_ref()
                        .map(|p| p.name.as_str())
                        .unwrap_or("");
                    let rc_name = format!(
                        "https.{port}.{pname}.{}.{}",
                        s.gateway.name(),
                        s.gateway.namespace()
                    );
                    let vhosts = http_vhosts(&scope, std::slice::from_ref(s), s.port, true);
                    out.routes
                        .push(rt::route_configuration_ignoring_port(&rc_name, vhosts));
                    listener.filter_chains.push(FilterChain {
                        name: rc_name.clone(),
                        filter_chain_match: Some(FilterChainMatch {
                            server_names: sni_names(&s.server.hosts),
                            ..Default::default()
                        }),
                        transport_socket: Some(server_tls(snap, tls)),
                        filters: vec![client_cert(
                            tls,
                            hcm(
                                &format!("outbound_{name}"),
                                Routes::Rds(rc_name),
                                authz::with_http_filters(snap, proxy, outbound_http_filters(false)),
                                false,
                            ),
                        )],
                        ..Default::default()
                    });
                }
                listener.listener_filters.push(tls_inspector());
                dedupe_server_names(&mut listener.filter_chains);
            }
            Kind::Passthrough => {
                listener.filter_chains = passthrough_chains(&scope, servers, servers[0].port);
                listener.listener_filters.push(tls_inspector());
            }
            Kind::Tcp => {
                if let Some(f) = tcp_filter(&scope, servers, servers[0].port) {
                    // Protocol TLS with SIMPLE or MUTUAL: terminate TLS, then proxy TCP.
                    let tls = servers[0].server.tls.as_ref().filter(|t| {
                        !t.server_certificate.is_empty()
                            || !t.tls_certificates.is_empty()
                            || is_istio_mutual(t)
                    });
                    listener.filter_chains.push(FilterChain {
                        transport_socket: tls.map(|t| server_tls(snap, t)),
                        filters: authz::with_tcp_filters(snap, proxy, f),
                        ..Default::default()
                    });
                }
            }
        }
        if !listener.filter_chains.is_empty() {
            out.listeners.push(listener);
        }
    }
    out
}

/// SNI names for a filter chain: the server's hosts without namespaces; none when a host is
/// `*` (the chain then matches any name).
fn sni_names(hosts: &[String]) -> Vec<String> {
    let names: Vec<String> = hosts
        .iter()
        .map(|h| host::split_namespaced(h).1.to_owned())
        .collect();
    if names.iter().any(|n| n == "*") {
        Vec::new()
    } else {
        names
    }
}

/// Envoy refuses two filter chains with the same match: later duplicates are dropped.
fn dedupe_server_names(chains: &mut Vec<FilterChain>) {
    let mut seen = BTreeSet::new();
    chains.retain(|c| {
        let key = c
            .filter_chain_match
            .as_ref()
            .map(|m| m.server_names.join(","))
            .unwrap_or_default();
        seen.insert(key)
    });
}

fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
            &TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..Default::default()
    }
}

fn is_istio_mutual(tls: &ServerTlsSettings) -> bool {
    tls.mode == ServerTlsMode::IstioMutual
}

/// A server's TLS: the mesh certificate for `ISTIO_MUTUAL`, else its certificate files.
fn server_tls(snap: &Snapshot, tls: &ServerTlsSettings) -> TransportSocket {
    if is_istio_mutual(tls) {
        super::mtls::gateway_server_socket(snap)
    } else {
        downstream_tls(tls)
    }
}

/// Behind an `ISTIO_MUTUAL` server the connection manager passes on the client's
/// identity (`x-forwarded-client-cert`).
fn client_cert(tls: &ServerTlsSettings, f: Filter) -> Filter {
    if is_istio_mutual(tls) {
        super::mtls::gateway_client_cert(f)
    } else {
        f
    }
}

fn downstream_tls(tls: &ServerTlsSettings) -> TransportSocket {
    let mut common = CommonTlsContext {
        alpn_protocols: vec!["h2".to_owned(), "http/1.1".to_owned()],
        ..Default::default()
    };
    if !tls.server_certificate.is_empty() {
        common.tls_certificates.push(TlsCertificate {
            certificate_chain: Some(file(&tls.server_certificate)),
            private_key: Some(file(&tls.private_key)),
            ..Default::default()
        });
    }
    for c in &tls.tls_certificates {
        common.tls_certificates.push(TlsCertificate {
            certificate_chain: Some(file(&c.server_certificate)),
            private_key: Some(file(&c.private_key)),
            ..Default::default()
        });
    }
    let versions = (
        tls.min_protocol_version as i32,
        tls.max_protocol_version as i32,
    );
    if versions != (0, 0) || !tls.cipher_suites.is_empty() {
        common.tls_params = Some(TlsParameters {
            tls_minimum_protocol_version: versions.0,
            tls_maximum_protocol_version: versions.1,
            cipher_suites: tls.cipher_suites.clone(),
            ..Default::default()
        });
    }
    let mutual = matches!(
        tls.mode,
        ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if mutual && !tls.ca_certificates.is_empty() {
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(&tls.ca_certificates)),
                    crl: (!tls.ca_crl.is_empty()).then(|| file(&tls.ca_crl)),
                    ..Default::default()
                },
            ),
        );
    }
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(proto::boolv(tls.mode == ServerTlsMode::Mutual)),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(&ctx))),
    }
}

/// Whether a VirtualService in `vs_ns` may use a server host `ns/host`, and the host the
/// two have in common with `vs_host`.
pub(super) fn common_host(
    server_host: &str,
    gw_ns: &str,
    vs_ns: &str,
    vs_host: &str,
) -> Option<String> {
    let (ns, h) = host::split_namespaced(server_host);
    let ns_ok = match ns {
        "*" => true,
        "." => vs_ns == gw_ns,
        other => vs_ns == other,
    };
    if !ns_ok {
        return None;
    }
    if host::subset_of(vs_host, h) {
        Some(vs_host.to_owned())
    } else if host::subset_of(h, vs_host) {
        Some(h.to_owned())
    } else {
        None
    }
}

/// The hosts a VirtualService routes through these servers.
fn vs_hosts_for(servers: &[GwServer<'_>], vs: &Typed<VirtualService>) -> Vec<(String, usize)> {
    let vs_gateways: BTreeSet<String> = vs
        .spec
        .gateways
        .iter()
        .map(|g| qualify_gateway(g, vs.namespace()))
        .collect();
    let mut out = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        if !vs_gateways.contains(&s.gateway_name()) {
            continue;
        }
        for vh in &vs.spec.hosts {
            let vh = host::fqdn(vh, vs.namespace());
            for sh in &s.server.hosts {
                if let Some(h) = common_host(sh, s.gateway.namespace(), vs.namespace(), &vh)
                    && !out.iter().any(|(o, _)| *o == h)
                {
                    out.push((h, i));
                }
            }
        }
    }
    out
}

fn http_vhosts(
    scope: &Scope<'_>,
    servers: &[GwServer<'_>],
    port: u16,
    is_tls: bool,
) -> Vec<VirtualHost> {
    let ctx = RouteCtx {
        scope,
        listen_port: port,
        is_tls,
    };
    let mut vhosts: Vec<VirtualHost> = Vec::new();
    for vs in scope.virtual_services() {
        let hosts = vs_hosts_for(servers, vs);
        if hosts.is_empty() {
            continue;
        }
        let routes = rt::virtual_service_routes(&ctx, vs);
        if routes.is_empty() {
            continue;
        }
        for (h, server) in hosts {
            if vhosts.iter().any(|v| v.domains.contains(&h)) {
                continue;
            }
            let redirect = !is_tls
                && servers[server]
                    .server
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.https_redirect);
            vhosts.push(VirtualHost {
                name: format!("{h}:{port}"),
                domains: vec![h],
                routes: routes.clone(),
                require_tls: if redirect {
                    virtual_host::TlsRequirementType::All as i32
                } else {
                    0
                },
                include_request_attempt_count: true,
                ..Default::default()
            });
        }
    }
    if vhosts.is_empty() {
        vhosts.push(VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".to_owned()],
            routes: vec![Route {
                name: "default".to_owned(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
                    ..Default::default()
                }),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: 404,
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    vhosts
}

fn tcp_proxy_to(
    scope: &Scope<'_>,
    vs_ns: &str,
    routes: &[RouteDestination],
    port: u16,
    stat: &str,
) -> Filter {
    let ctx = RouteCtx {
        scope,
        listen_port: port,
        is_tls: false,
    };
    tcp_proxy_weighted(stat, rt::l4_clusters(&ctx, vs_ns, routes))
}

/// Filter chains of a TLS passthrough port: one per SNI set of the VirtualServices' `tls`
/// rules.
fn passthrough_chains(scope: &Scope<'_>, servers: &[GwServer<'_>], port: u16) -> Vec<FilterChain> {
    let mut chains = Vec::new();
    let mut seen = BTreeSet::new();
    for vs in scope.virtual_services() {
        let hosts = vs_hosts_for(servers, vs);
        if hosts.is_empty() {
            continue;
        }
        for rule in &vs.spec.tls {
            let applies = rule.r#match.iter().find(|m| {
                (m.port == 0 || m.port == u32::from(port))
                    && (m.gateways.is_empty()
                        || m.gateways.iter().any(|g| {
                            scope
                                .gateway_names
                                .contains(&qualify_gateway(g, vs.namespace()))
                        }))
            });
            let Some(m) = applies else { continue };
            let snis: Vec<String> = m
                .sni_hosts
                .iter()
                .filter(|s| hosts.iter().any(|(h, _)| host::matches(h, s)))
                .cloned()
                .collect();
            if snis.is_empty() || rule.route.is_empty() {
                continue;
            }
            if !seen.insert(snis.join(",")) {
                continue;
            }
            chains.push(FilterChain {
                name: format!("{}:{port}", snis[0]),
                filter_chain_match: Some(FilterChainMatch {
                    server_names: snis.clone(),
                    ..Default::default()
                }),
                filters: authz::with_tcp_filters(
                    scope.snap,
                    scope.proxy,
                    tcp_proxy_to(
                        scope,
                        vs.namespace(),
                        &rule.route,
                        port,
                        &format!("outbound|{port}||{}", snis[0]),
                    ),
                ),
                ..Default::default()
            });
        }
    }
    chains
}

/// The TCP proxy of a TCP port: the first `tcp` rule of a bound VirtualService for it.
fn tcp_filter(scope: &Scope<'_>, servers: &[GwServer<'_>], port: u16) -> Option<Filter> {
    for vs in scope.virtual_services() {
        if vs_hosts_for(servers, vs).is_empty() {
            continue;
        }
        for rule in &vs.spec.tcp {
            let applies = rule.r#match.is_empty()
                || rule.r#match.iter().any(|m| {
                    (m.port == 0 || m.port == u32::from(port))
                        && (m.gateways.is_empty()
                            || m.gateways.iter().any(|g| {
                                scope
                                    .gateway_names
                                    .contains(&qualify_gateway(g, vs.namespace()))
                            }))
                });
            if applies && !rule.route.is_empty() {
                return Some(tcp_proxy_to(
                    scope,
                    vs.namespace(),
                    &rule.route,
                    port,
                    &format!("outbound_tcp_{port}"),
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
    use std::path::Path;

    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::filter;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use prost::Message;

    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::xds::{ProxyKind, generate};

    /// The `gateway-mtls` scenario's config: a STRICT backend, a gateway with an HTTP server
    /// on 8080 and an `ISTIO_MUTUAL` server on 8443.
    fn snap() -> Snapshot {
        snap_with("")
    }

    /// The scenario's config and `extra` YAML documents.
    fn snap_with(extra: &str) -> Snapshot {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/scenarios/gateway-mtls/config/mesh.yaml");
        let text = std::fs::read_to_string(file).unwrap();
        let loaded =
            crate::source::load_bytes("mesh.yaml", format!("{text}---\n{extra}").as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let s = Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default());
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        s
    }

    fn gateway(s: &Snapshot, mtls: bool) -> ProxyConfig {
        let w = s
            .registry
            .workload("istio-system", "ingressgateway")
            .unwrap();
        let mut p = ProxyInfo::from_node_id(&ProxyInfo::node_id(
            ProxyKind::Gateway,
            w.address.parse().unwrap(),
            "ingressgateway",
            "istio-system",
        ))
        .unwrap();
        p.labels = w.labels.clone();
        p.service_account = "istio-ingressgateway-service-account".to_owned();
        p.mtls = mtls;
        generate(s, &p)
    }

    fn upstream_tls(c: &Cluster) -> Option<UpstreamTlsContext> {
        let Some(transport_socket::ConfigType::TypedConfig(any)) =
            &c.transport_socket.as_ref()?.config_type
        else {
            return None;
        };
        Some(UpstreamTlsContext::decode(any.value.as_slice()).unwrap())
    }

    #[test]
    fn a_gateway_with_a_certificate_sends_mtls_and_serves_istio_mutual() {
        let s = snap();
        let cfg = gateway(&s, true);
        let backend = cfg
            .clusters
            .iter()
            .find(|c| c.name == "outbound|9080||productpage.shop.svc.cluster.local")
            .unwrap();
        let ctx = upstream_tls(backend).expect("auto mTLS to the STRICT backend");
        assert_eq!(
            ctx.sni,
            "outbound_.9080_._.productpage.shop.svc.cluster.local"
        );
        let common = ctx.common_tls_context.unwrap();
        assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");

        let mesh = cfg
            .listeners
            .iter()
            .find(|l| l.name == "127.10.41.5_8443")
            .expect("the ISTIO_MUTUAL server's listener");
        let chain = &mesh.filter_chains[0];
        let Some(transport_socket::ConfigType::TypedConfig(any)) =
            &chain.transport_socket.as_ref().unwrap().config_type
        else {
            panic!("no TLS context")
        };
        let down = DownstreamTlsContext::decode(any.value.as_slice()).unwrap();
        assert_eq!(down.require_client_certificate, Some(proto::boolv(true)));
        let common = down.common_tls_context.unwrap();
        assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
        assert!(matches!(
            common.validation_context_type,
            Some(common_tls_context::ValidationContextType::CombinedValidationContext(_))
        ));
        let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
            panic!()
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        assert_eq!(
            hcm.forward_client_cert_details,
            http_connection_manager::ForwardClientCertDetails::SanitizeSet as i32
        );
        // The plaintext server stays plaintext.
        let plain = cfg
            .listeners
            .iter()
            .find(|l| l.name == "127.10.41.5_8080")
            .unwrap();
        assert!(plain.filter_chains[0].transport_socket.is_none());
    }

    #[test]
    fn a_tls_server_with_istio_mutual_terminates_mtls_before_the_tcp_proxy() {
        let s = snap_with(
            "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-mesh, namespace: shop}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9443, name: tls-mesh, protocol: TLS}
    tls: {mode: ISTIO_MUTUAL}
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-mesh, namespace: shop}
spec:
  hosts: [\"*\"]
  gateways: [tcp-mesh]
  tcp:
  - route:
    - destination: {host: productpage.shop.svc.cluster.local, port: {number: 9080}}
",
        );
        let cfg = gateway(&s, true);
        let l = cfg
            .listeners
            .iter()
            .find(|l| l.name == "127.10.41.5_9443")
            .expect("the TLS server's listener");
        let chain = &l.filter_chains[0];
        assert_eq!(
            chain.transport_socket,
            Some(super::super::mtls::gateway_server_socket(&s))
        );
        assert!(
            chain
                .filters
                .iter()
                .any(|f| f.name == "envoy.filters.network.tcp_proxy")
        );
        // Without a certificate the server is left out.
        let cfg = gateway(&s, false);
        assert!(cfg.listeners.iter().all(|l| l.name != "127.10.41.5_9443"));
    }

    #[test]
    fn a_gateway_without_a_certificate_stays_plaintext_and_leaves_istio_mutual_out() {
        let s = snap();
        let cfg = gateway(&s, false);
        let backend = cfg
            .clusters
            .iter()
            .find(|c| c.name == "outbound|9080||productpage.shop.svc.cluster.local")
            .unwrap();
        assert!(upstream_tls(backend).is_none());
        let names: Vec<&str> = cfg.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["127.10.41.5_8080"]);
    }
}
