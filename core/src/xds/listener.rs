//! Sidecar listeners and route configurations, in local mode (an HTTP proxy on
//! `WORKLOAD_IP:15001`, inbound listeners on `WORKLOAD_IP:PORT`) and in Kubernetes mode
//! (`virtualOutbound`/`virtualInbound` with traffic capture). See the module docs of
//! [`super`] for the conventions.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, TrafficDirection,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, route,
    route_action, route_match, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::dynamic_forward_proxy::v3::{
    FilterConfig as DfpFilterConfig, filter_config,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};

use crate::model::networking::CaptureMode;

use super::authz;
use super::cluster::{self, AppAddress, InboundPort};
use super::registry::{Service, ServicePort, is_http_protocol, parse_protocol};
use super::route::{self as rt, RouteCtx};
use super::scope::{MESH_GATEWAY, Scope};
use super::{
    INBOUND_PORT, OUTBOUND_PORT, ProxyConfig, ProxyInfo, Snapshot, cluster_name, local_app_port,
    proto,
};

pub(super) const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
const ROUTER: &str = "envoy.filters.http.router";
const DFP_FILTER: &str = "envoy.filters.http.dynamic_forward_proxy";

/// The name of the local-mode outbound route configuration.
pub(super) fn local_outbound_route_name() -> String {
    OUTBOUND_PORT.to_string()
}

/// Everything a sidecar receives: its [`sidecar_outbound`] part and its
/// [`sidecar_own`] part.
pub(super) fn sidecar(snap: &Snapshot, proxy: &ProxyInfo) -> ProxyConfig {
    let scope = sidecar_scope(snap, proxy);
    let mut out = ProxyConfig::default();
    sidecar_outbound(&scope, &mut out);
    sidecar_own(&scope, &mut out);
    out
}

/// What a sidecar sees: its scope, bound to the `mesh` gateway.
pub(super) fn sidecar_scope<'s>(snap: &'s Snapshot, proxy: &'s ProxyInfo) -> Scope<'s> {
    let mut scope = Scope::new(snap, proxy);
    scope.bind_gateways(BTreeSet::from([MESH_GATEWAY.to_owned()]));
    scope
}

/// The part of a sidecar's config that does not depend on its address or workload, only
/// on what its scope sees (see [`super::cache`]): outbound clusters and endpoints,
/// `BlackHoleCluster` and `PassthroughCluster`, the outbound route configurations and, in
/// Kubernetes mode, the outbound listeners.
pub(super) fn sidecar_outbound(scope: &Scope<'_>, out: &mut ProxyConfig) {
    cluster::outbound(scope, out);
    cluster::special(scope, out);
    if scope.proxy.local_mode {
        local_outbound_routes(scope, out);
    } else {
        kube_outbound(scope, out);
    }
}

/// The part of a sidecar's config that is its own: inbound clusters and listeners and, in
/// local mode, the outbound listener on the workload's address.
pub(super) fn sidecar_own(scope: &Scope<'_>, out: &mut ProxyConfig) {
    let inbound = inbound_ports(scope);
    cluster::inbound(scope, &inbound, out);
    if scope.proxy.local_mode {
        local_outbound_listener(scope, out);
        local_inbound(scope, &inbound, out);
    } else {
        kube_inbound(scope, &inbound, out);
    }
}

/// The ports the proxy's workload receives traffic on, with where its app listens.
pub(super) fn inbound_ports(scope: &Scope<'_>) -> Vec<InboundPort> {
    let ip = scope.proxy.ip.to_string();
    let local = scope.proxy.local_mode;
    let default_app = |port: u16| -> Option<AppAddress> {
        if local {
            local_app_port(port).map(|p| AppAddress::Socket(ip.clone(), p))
        } else {
            Some(AppAddress::Socket("127.0.0.1".to_owned(), port))
        }
    };
    let mut by_port: BTreeMap<u16, InboundPort> = BTreeMap::new();
    if let Some(sc) = scope.sidecar
        && !sc.spec.ingress.is_empty()
    {
        for ing in &sc.spec.ingress {
            let Some(p) = ing.port.as_ref() else { continue };
            let Ok(port) = u16::try_from(p.number) else {
                continue;
            };
            let protocol = parse_protocol(&p.protocol).unwrap_or("AUTO").to_owned();
            let app = if ing.default_endpoint.is_empty() {
                default_app(port)
            } else {
                app_from_endpoint(&ing.default_endpoint, &ip)
            };
            if let Some(app) = app {
                by_port.entry(port).or_insert(InboundPort {
                    port,
                    protocol,
                    app,
                });
            }
        }
        return by_port.into_values().collect();
    }
    for svc in &scope.snap.registry.services {
        for ep in &svc.endpoints {
            let mine = ep.address == ip
                || (!scope.proxy.workload.is_empty()
                    && ep.workload == scope.proxy.workload
                    && ep.namespace == scope.proxy.namespace);
            if !mine {
                continue;
            }
            for sp in &svc.ports {
                let port = ep.port_for(sp);
                if by_port.contains_key(&port) {
                    continue;
                }
                if let Some(app) = default_app(port) {
                    by_port.insert(
                        port,
                        InboundPort {
                            port,
                            protocol: sp.protocol.clone(),
                            app,
                        },
                    );
                }
            }
        }
    }
    by_port.into_values().collect()
}

/// A Sidecar `defaultEndpoint`: `unix://path`, `0.0.0.0:P` (the workload's address) or
/// `127.0.0.1:P` / `[::1]:P` (itself).
fn app_from_endpoint(ep: &str, workload_ip: &str) -> Option<AppAddress> {
    if let Some(path) = ep.strip_prefix("unix://") {
        return Some(AppAddress::Pipe(path.to_owned()));
    }
    let (host, port) = ep.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "0.0.0.0" | "::" => workload_ip.to_owned(),
        h => h.to_owned(),
    };
    Some(AppAddress::Socket(host, port))
}

fn typed_filter<M: prost::Message + prost::Name>(name: &str, m: &M) -> Filter {
    Filter {
        name: name.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(m))),
    }
}

fn http_filter<M: prost::Message + prost::Name>(name: &str, m: &M) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(proto::any(m))),
        ..Default::default()
    }
}

/// Where an HTTP connection manager gets its routes.
pub(super) enum Routes {
    Rds(String),
    Inline(Box<RouteConfiguration>),
}

/// The outbound HTTP filters: CORS, fault injection, (dynamic forward proxy), router.
pub(super) fn outbound_http_filters(dfp: bool) -> Vec<HttpFilter> {
    let mut filters = vec![
        http_filter(rt::CORS_FILTER, &Cors {}),
        http_filter(rt::FAULT_FILTER, &HttpFault::default()),
    ];
    if dfp {
        filters.push(http_filter(
            DFP_FILTER,
            &DfpFilterConfig {
                implementation_specifier: Some(
                    filter_config::ImplementationSpecifier::DnsCacheConfig(cluster::dfp_cache()),
                ),
                ..Default::default()
            },
        ));
    }
    filters.push(router_filter());
    filters
}

fn router_filter() -> HttpFilter {
    http_filter(ROUTER, &Router::default())
}

/// An HTTP connection manager network filter.
pub(super) fn hcm(
    stat_prefix: &str,
    routes: Routes,
    http_filters: Vec<HttpFilter>,
    connect: bool,
) -> Filter {
    let mut upgrade_configs = vec![http_connection_manager::UpgradeConfig {
        upgrade_type: "websocket".to_owned(),
        ..Default::default()
    }];
    if connect {
        upgrade_configs.push(http_connection_manager::UpgradeConfig {
            upgrade_type: "CONNECT".to_owned(),
            ..Default::default()
        });
    }
    let m = HttpConnectionManager {
        codec_type: http_connection_manager::CodecType::Auto as i32,
        stat_prefix: stat_prefix.to_owned(),
        http_filters,
        http_protocol_options: Some(Http1ProtocolOptions {
            allow_absolute_url: Some(proto::boolv(true)),
            ..Default::default()
        }),
        http2_protocol_options: Some(Http2ProtocolOptions {
            allow_connect: connect,
            ..Default::default()
        }),
        use_remote_address: Some(proto::boolv(false)),
        normalize_path: Some(proto::boolv(true)),
        upgrade_configs,
        route_specifier: Some(match routes {
            Routes::Rds(name) => http_connection_manager::RouteSpecifier::Rds(Rds {
                config_source: Some(proto::ads()),
                route_config_name: name,
            }),
            Routes::Inline(rc) => http_connection_manager::RouteSpecifier::RouteConfig(*rc),
        }),
        ..Default::default()
    };
    typed_filter(HCM, &m)
}

fn tcp_proxy_filter(stat_prefix: &str, cluster: &str) -> Filter {
    tcp_proxy_weighted(stat_prefix, vec![(cluster.to_owned(), 100)])
}

/// A TCP proxy to one cluster, or spread over several by weight.
pub(super) fn tcp_proxy_weighted(stat_prefix: &str, clusters: Vec<(String, u32)>) -> Filter {
    let spec = match clusters.as_slice() {
        [] => tcp_proxy::ClusterSpecifier::Cluster(cluster_name::BLACK_HOLE.to_owned()),
        [(c, _)] => tcp_proxy::ClusterSpecifier::Cluster(c.clone()),
        _ => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: clusters
                .into_iter()
                .map(
                    |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                        name,
                        weight,
                        ..Default::default()
                    },
                )
                .collect(),
        }),
    };
    typed_filter(
        TCP_PROXY,
        &TcpProxy {
            stat_prefix: stat_prefix.to_owned(),
            cluster_specifier: Some(spec),
            ..Default::default()
        },
    )
}

/// The port whose virtual host also answers the host without a port: 80 if the service
/// has it among its HTTP ports, else the lowest-numbered HTTP port.
fn portless_port(ports: &[&ServicePort]) -> Option<u16> {
    let http: Vec<u16> = ports
        .iter()
        .filter(|p| p.is_http())
        .map(|p| p.number)
        .collect();
    if http.contains(&80) {
        Some(80)
    } else {
        http.into_iter().min()
    }
}

/// A virtual host for one service port: routes of its VirtualService for the port, else
/// the default route.
fn service_vhost(
    scope: &Scope<'_>,
    svc: &Service,
    port: &ServicePort,
    portless: bool,
) -> VirtualHost {
    let ctx = RouteCtx {
        scope,
        listen_port: port.number,
        is_tls: false,
    };
    let routes = scope
        .virtual_service_for(&svc.hostname)
        .map(|vs| rt::virtual_service_routes(&ctx, vs))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| vec![rt::default_route(scope, svc, port)]);
    VirtualHost {
        name: format!("{}:{}", svc.hostname, port.number),
        domains: rt::service_domains(svc, port.number, scope.namespace(), portless),
        routes,
        include_request_attempt_count: true,
        ..Default::default()
    }
}

/// Virtual hosts for hosts VirtualServices name that are not in the registry, on `port`.
fn non_registry_vhosts(scope: &Scope<'_>, port: u16, portless: bool) -> Vec<VirtualHost> {
    let ctx = RouteCtx {
        scope,
        listen_port: port,
        is_tls: false,
    };
    let mut out = Vec::new();
    for vs in scope.virtual_services() {
        let hosts: Vec<String> = vs
            .spec
            .hosts
            .iter()
            .map(|h| crate::host::fqdn(h, vs.namespace()))
            .filter(|h| {
                h != "*"
                    && !scope
                        .snap
                        .registry
                        .services
                        .iter()
                        .any(|s| crate::host::matches(h, &s.hostname))
            })
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let routes = rt::virtual_service_routes(&ctx, vs);
        if routes.is_empty() {
            continue;
        }
        let mut domains = Vec::new();
        for h in &hosts {
            if portless {
                domains.push(h.clone());
            }
            domains.push(format!("{h}:{port}"));
        }
        out.push(VirtualHost {
            name: format!("{}:{port}", hosts[0]),
            domains,
            routes,
            include_request_attempt_count: true,
            ..Default::default()
        });
    }
    out
}

/// A virtual host that tunnels `CONNECT host:port` to the service port's cluster, or to
/// where its VirtualService's `tcp`/`tls` rules send it.
fn connect_vhost(scope: &Scope<'_>, svc: &Service, port: &ServicePort) -> VirtualHost {
    let ctx = RouteCtx {
        scope,
        listen_port: port.number,
        is_tls: false,
    };
    let clusters = rt::l4_route(&ctx, svc)
        .unwrap_or_else(|| vec![(cluster_name::outbound(port.number, "", &svc.hostname), 100)]);
    VirtualHost {
        name: format!("{}:{}", svc.hostname, port.number),
        domains: rt::service_domains(svc, port.number, scope.namespace(), false),
        routes: vec![connect_route_to(clusters)],
        ..Default::default()
    }
}

fn connect_route(cluster: String) -> Route {
    connect_route_to(vec![(cluster, 100)])
}

fn connect_route_to(clusters: Vec<(String, u32)>) -> Route {
    let specifier = match clusters.as_slice() {
        [] => route_action::ClusterSpecifier::Cluster(cluster_name::BLACK_HOLE.to_owned()),
        [(c, _)] => route_action::ClusterSpecifier::Cluster(c.clone()),
        _ => route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: clusters
                .into_iter()
                .map(|(name, w)| weighted_cluster::ClusterWeight {
                    name,
                    weight: Some(proto::u32v(w)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
    };
    Route {
        name: "connect".to_owned(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::ConnectMatcher(
                route_match::ConnectMatcher {},
            )),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(specifier),
            timeout: Some(proto::zero_duration()),
            upgrade_configs: vec![route_action::UpgradeConfig {
                upgrade_type: "CONNECT".to_owned(),
                connect_config: Some(route_action::upgrade_config::ConnectConfig::default()),
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The local-mode outbound route configuration `15001`.
fn local_outbound_routes(scope: &Scope<'_>, out: &mut ProxyConfig) {
    let mut vhosts = Vec::new();
    for svc in &scope.services {
        let ports = scope.ports(svc);
        let portless = portless_port(&ports);
        for port in &ports {
            if port.is_http() {
                vhosts.push(service_vhost(
                    scope,
                    svc,
                    port,
                    portless == Some(port.number),
                ));
            } else {
                vhosts.push(connect_vhost(scope, svc, port));
            }
        }
    }
    vhosts.extend(non_registry_vhosts(scope, 80, true));
    let mut catch_all = rt::catch_all_vhost(scope.allow_any);
    if scope.allow_any {
        catch_all
            .routes
            .insert(0, connect_route(cluster_name::PASSTHROUGH.to_owned()));
    }
    vhosts.push(catch_all);
    vhosts.push(loop_guard());
    out.routes.push(rt::route_configuration(
        &local_outbound_route_name(),
        vhosts,
    ));
}

/// The local-mode outbound listener `virtualOutbound` on `WORKLOAD_IP:15001`.
fn local_outbound_listener(scope: &Scope<'_>, out: &mut ProxyConfig) {
    let ip = scope.proxy.ip.to_string();
    let name = local_outbound_route_name();
    out.listeners.push(Listener {
        name: "virtualOutbound".to_owned(),
        address: Some(proto::socket(&ip, OUTBOUND_PORT)),
        filter_chains: vec![FilterChain {
            filters: vec![hcm(
                &format!("outbound_{ip}_{OUTBOUND_PORT}"),
                Routes::Rds(name),
                outbound_http_filters(true),
                true,
            )],
            ..Default::default()
        }],
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    });
}

/// Requests addressed to a sidecar's own outbound port (`*:15001`) would come back to a
/// sidecar through the passthrough cluster, forever: they are answered here instead.
fn loop_guard() -> VirtualHost {
    VirtualHost {
        name: "loop_guard".to_owned(),
        domains: vec![format!("*:{OUTBOUND_PORT}")],
        routes: vec![Route {
            name: "loop_guard".to_owned(),
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            action: Some(route::Action::DirectResponse(
                envoy_types::pb::envoy::config::route::v3::DirectResponseAction {
                    status: 404,
                    body: Some(envoy_types::pb::envoy::config::core::v3::DataSource {
                        specifier: Some(
                            envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(
                                "no route: the request names a sidecar's outbound listener as its host\n"
                                    .to_owned(),
                            ),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The inline route configuration of an inbound HTTP port.
fn inbound_route_config(port: u16) -> RouteConfiguration {
    let cluster = cluster_name::inbound(port);
    rt::route_configuration(
        &cluster.clone(),
        vec![VirtualHost {
            name: format!("inbound|http|{port}"),
            domains: vec!["*".to_owned()],
            routes: vec![Route {
                name: "default".to_owned(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
                    timeout: Some(proto::zero_duration()),
                    max_stream_duration: Some(route_action::MaxStreamDuration {
                        max_stream_duration: Some(proto::zero_duration()),
                        grpc_timeout_header_max: Some(proto::zero_duration()),
                        ..Default::default()
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
    )
}

/// The filters that handle one inbound port: authorization (see [`super::authz`]) and the
/// HTTP connection manager or TCP proxy.
fn inbound_filters(scope: &Scope<'_>, p: &InboundPort, stat_prefix: &str) -> Vec<Filter> {
    if is_http_protocol(&p.protocol) {
        vec![hcm(
            stat_prefix,
            Routes::Inline(Box::new(inbound_route_config(p.port))),
            authz::with_http_filters(scope.snap, scope.proxy, vec![router_filter()]),
            false,
        )]
    } else {
        authz::with_tcp_filters(
            scope.snap,
            scope.proxy,
            tcp_proxy_filter(stat_prefix, &cluster_name::inbound(p.port)),
        )
    }
}

fn local_inbound(scope: &Scope<'_>, ports: &[InboundPort], out: &mut ProxyConfig) {
    let ip = scope.proxy.ip.to_string();
    for p in ports {
        let name = format!("{ip}_{}", p.port);
        let filters = inbound_filters(scope, p, &format!("inbound_{name}"));
        let (filter_chains, inspect) = if scope.proxy.mtls {
            let mode = super::mtls::inbound_mode(scope.snap, scope.proxy, p.port);
            super::mtls::inbound_chains(scope.snap, mode, filters)
        } else {
            (
                vec![FilterChain {
                    filters,
                    ..Default::default()
                }],
                false,
            )
        };
        out.listeners.push(Listener {
            name: name.clone(),
            address: Some(proto::socket(&ip, p.port)),
            filter_chains,
            listener_filters: if inspect {
                vec![super::mtls::tls_inspector()]
            } else {
                Vec::new()
            },
            traffic_direction: TrafficDirection::Inbound as i32,
            ..Default::default()
        });
    }
}

fn original_dst_filter() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.original_dst".to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
            &OriginalDst {},
        ))),
        ..Default::default()
    }
}

/// A Kubernetes-mode TCP listener: address, port, stat name, and weighted clusters.
type TcpListenerPlan = (String, u16, String, Vec<(String, u32)>);

fn kube_outbound(scope: &Scope<'_>, out: &mut ProxyConfig) {
    let passthrough = if scope.allow_any {
        cluster_name::PASSTHROUGH
    } else {
        cluster_name::BLACK_HOLE
    };
    out.listeners.push(Listener {
        name: "virtualOutbound".to_owned(),
        address: Some(proto::socket("0.0.0.0", OUTBOUND_PORT)),
        use_original_dst: Some(proto::boolv(true)),
        default_filter_chain: Some(FilterChain {
            name: passthrough.to_owned(),
            filters: vec![tcp_proxy_filter(passthrough, passthrough)],
            ..Default::default()
        }),
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    });

    // HTTP ports: one listener and one route configuration per port number.
    let mut http_ports: BTreeMap<u16, Vec<VirtualHost>> = BTreeMap::new();
    // TCP ports: one listener per VIP and port, else per port (first service wins).
    let mut tcp: BTreeMap<String, TcpListenerPlan> = BTreeMap::new();
    for svc in &scope.services {
        for port in scope.ports(svc) {
            if port.is_http() {
                http_ports
                    .entry(port.number)
                    .or_default()
                    .push(service_vhost(scope, svc, port, true));
            } else {
                let cluster = cluster_name::outbound(port.number, "", &svc.hostname);
                let ctx = RouteCtx {
                    scope,
                    listen_port: port.number,
                    is_tls: false,
                };
                let targets =
                    rt::l4_route(&ctx, svc).unwrap_or_else(|| vec![(cluster.clone(), 100)]);
                let addrs: Vec<String> = if svc.addresses.is_empty() {
                    vec!["0.0.0.0".to_owned()]
                } else {
                    svc.addresses.iter().map(ToString::to_string).collect()
                };
                for a in addrs {
                    tcp.entry(format!("{a}_{}", port.number)).or_insert((
                        a,
                        port.number,
                        cluster.clone(),
                        targets.clone(),
                    ));
                }
            }
        }
    }
    http_ports.entry(80).or_default();
    for (port, mut vhosts) in http_ports {
        vhosts.extend(non_registry_vhosts(scope, port, true));
        if vhosts.is_empty() && port == 80 {
            continue;
        }
        vhosts.push(rt::catch_all_vhost(scope.allow_any));
        let name = port.to_string();
        out.routes.push(rt::route_configuration(&name, vhosts));
        let lname = format!("0.0.0.0_{port}");
        tcp.remove(&lname);
        out.listeners.push(Listener {
            name: lname.clone(),
            address: Some(proto::socket("0.0.0.0", port)),
            bind_to_port: Some(proto::boolv(false)),
            filter_chains: vec![FilterChain {
                filters: vec![hcm(
                    &format!("outbound_{lname}"),
                    Routes::Rds(name),
                    outbound_http_filters(false),
                    false,
                )],
                ..Default::default()
            }],
            traffic_direction: TrafficDirection::Outbound as i32,
            ..Default::default()
        });
    }
    for (name, (addr, port, cluster, targets)) in tcp {
        out.listeners.push(Listener {
            name: name.clone(),
            address: Some(proto::socket(&addr, port)),
            bind_to_port: Some(proto::boolv(false)),
            filter_chains: vec![FilterChain {
                filters: vec![tcp_proxy_weighted(&cluster, targets)],
                ..Default::default()
            }],
            traffic_direction: TrafficDirection::Outbound as i32,
            ..Default::default()
        });
    }
}

fn kube_inbound(scope: &Scope<'_>, ports: &[InboundPort], out: &mut ProxyConfig) {
    let capture_none = scope.sidecar.is_some_and(|s| {
        !s.spec.ingress.is_empty()
            && s.spec
                .ingress
                .iter()
                .all(|i| i.capture_mode == CaptureMode::None)
    });
    if capture_none {
        // Explicit ingress listeners without capture: bind each port on the pod's IP, with
        // the port's PeerAuthentication chains as in local mode.
        local_inbound(scope, ports, out);
        return;
    }
    let mut chains = Vec::new();
    let mut inspect = false;
    for p in ports {
        let name = cluster_name::inbound(p.port);
        let filters = inbound_filters(scope, p, &format!("inbound_0.0.0.0_{}", p.port));
        let mode = if scope.proxy.mtls {
            super::mtls::inbound_mode(scope.snap, scope.proxy, p.port)
        } else {
            super::mtls::PeerMode::Disable
        };
        inspect |= mode != super::mtls::PeerMode::Disable;
        chains.extend(super::mtls::kube_port_chains(
            scope.snap,
            mode,
            Some(p.port),
            &name,
            filters,
            tcp_proxy_filter(&name, &name),
            tcp_proxy_filter(cluster_name::BLACK_HOLE, cluster_name::BLACK_HOLE),
        ));
    }
    // Ports no Service names pass through to the app, under the workload's own mode (a
    // port-level setting needs a named port): STRICT takes mTLS only and closes anything
    // else, PERMISSIVE also ends mesh mTLS there; DISABLE keeps the default chain alone.
    let workload_mode = if scope.proxy.mtls {
        super::mtls::inbound_mode(scope.snap, scope.proxy, 0)
    } else {
        super::mtls::PeerMode::Disable
    };
    if workload_mode != super::mtls::PeerMode::Disable {
        inspect = true;
        let passthrough =
            || tcp_proxy_filter("InboundPassthrough", cluster_name::INBOUND_PASSTHROUGH);
        chains.extend(super::mtls::kube_port_chains(
            scope.snap,
            workload_mode,
            None,
            "InboundPassthrough",
            vec![passthrough()],
            passthrough(),
            tcp_proxy_filter(cluster_name::BLACK_HOLE, cluster_name::BLACK_HOLE),
        ));
    }
    let mut listener_filters = vec![original_dst_filter()];
    if inspect {
        listener_filters.push(super::mtls::tls_inspector());
    }
    out.listeners.push(Listener {
        name: "virtualInbound".to_owned(),
        address: Some(proto::socket("0.0.0.0", INBOUND_PORT)),
        listener_filters,
        filter_chains: chains,
        default_filter_chain: Some(FilterChain {
            name: cluster_name::PASSTHROUGH.to_owned(),
            filters: vec![tcp_proxy_filter(
                "InboundPassthrough",
                cluster_name::INBOUND_PASSTHROUGH,
            )],
            ..Default::default()
        }),
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    });
}
