//! Clusters and endpoints: `outbound|PORT|SUBSET|HOST` for every visible service port and
//! DestinationRule subset, with the DestinationRule's traffic policy; `inbound|PORT||` for
//! the proxy's own workload; `BlackHoleCluster` and `PassthroughCluster`.
//!
//! Traffic policy follows Istio: the rule's top-level policy, overridden by its port-level
//! settings for the port (which replace load balancer, connection pool, outlier detection
//! and TLS as a whole), then by the subset's policy field by field, then by the subset's
//! port-level settings. Circuit breakers always carry Istio's defaults (every limit at
//! 2^32-1, `track_remaining`), lowered where the connection pool says. Load balancing
//! defaults to LEAST_REQUEST. TLS: SIMPLE and MUTUAL originate TLS with the files the rule
//! names (no `caCertificates` means no server verification: meshd does not know the
//! proxy's system trust store); ISTIO_MUTUAL and DISABLE send plaintext.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as EnvoyOutlier, UpstreamConnectionOptions,
    circuit_breakers::Thresholds, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, DataSource, Http1ProtocolOptions, Http2ProtocolOptions,
    HttpProtocolOptions as CoreHttpOptions, SocketAddress, TcpKeepalive, TransportSocket,
    data_source, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::clusters::dynamic_forward_proxy::v3::{
    ClusterConfig as DfpClusterConfig, cluster_config,
};
use envoy_types::pb::envoy::extensions::common::dynamic_forward_proxy::v3::DnsCacheConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::Percent;

use crate::analysis::json::selector_matches;
use crate::model::networking::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, SimpleLb, TrafficPolicy,
};

use super::registry::{Endpoint, Resolution, Service, ServicePort, is_http2_protocol};
use super::scope::Scope;
use super::{ProxyConfig, Typed, cluster_name, proto};

/// The key of the upstream HTTP protocol options in `typed_extension_protocol_options`.
const HTTP_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// The custom cluster type of Envoy's dynamic forward proxy.
const DFP_CLUSTER_TYPE: &str = "envoy.clusters.dynamic_forward_proxy";
/// The DNS cache shared by the dynamic forward proxy filter and clusters.
pub(super) const DFP_CACHE_NAME: &str = "dynamic_forward_proxy_cache_config";

/// The DNS cache config of the dynamic forward proxy; filter and clusters must agree on it.
pub(super) fn dfp_cache() -> DnsCacheConfig {
    DnsCacheConfig {
        name: DFP_CACHE_NAME.to_owned(),
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        ..Default::default()
    }
}

/// The parts of a traffic policy that apply to one cluster.
#[derive(Clone, Copy, Default)]
pub(super) struct Policy<'a> {
    pub lb: Option<&'a LoadBalancerSettings>,
    pub pool: Option<&'a ConnectionPoolSettings>,
    pub outlier: Option<&'a OutlierDetection>,
    pub tls: Option<&'a ClientTlsSettings>,
}

impl<'a> Policy<'a> {
    fn overlay(&mut self, p: &'a TrafficPolicy, port: u16) {
        if p.load_balancer.is_some() {
            self.lb = p.load_balancer.as_ref();
        }
        if p.connection_pool.is_some() {
            self.pool = p.connection_pool.as_ref();
        }
        if p.outlier_detection.is_some() {
            self.outlier = p.outlier_detection.as_ref();
        }
        if p.tls.is_some() {
            self.tls = p.tls.as_ref();
        }
        if let Some(pl) = p.port_level_settings.iter().find(|s| {
            s.port
                .as_ref()
                .is_some_and(|sel| sel.number == u32::from(port))
        }) {
            self.lb = pl.load_balancer.as_ref();
            self.pool = pl.connection_pool.as_ref();
            self.outlier = pl.outlier_detection.as_ref();
            self.tls = pl.tls.as_ref();
        }
    }
}

/// The policy for `port`, from a rule's top-level policy and a subset's policy.
pub(super) fn policy_for<'a>(
    top: Option<&'a TrafficPolicy>,
    subset: Option<&'a TrafficPolicy>,
    port: u16,
) -> Policy<'a> {
    let mut p = Policy::default();
    if let Some(t) = top {
        p.overlay(t, port);
    }
    if let Some(s) = subset {
        p.overlay(s, port);
    }
    p
}

/// Adds the outbound clusters (and their endpoints) for every visible service port.
pub(super) fn outbound(scope: &Scope<'_>, out: &mut ProxyConfig) {
    let timeout = scope.connect_timeout;
    for svc in &scope.services {
        let dr = scope.destination_rule(svc);
        let top = dr.and_then(|d| d.spec.traffic_policy.as_ref());
        for port in scope.ports(svc) {
            let name = cluster_name::outbound(port.number, "", &svc.hostname);
            let policy = policy_for(top, None, port.number);
            let eps: Vec<&Endpoint> = svc.endpoints.iter().collect();
            push_outbound(scope, out, name, svc, port, &policy, &eps, timeout, dr);
            let Some(dr) = dr else { continue };
            for subset in &dr.spec.subsets {
                let name = cluster_name::outbound(port.number, &subset.name, &svc.hostname);
                let policy = policy_for(top, subset.traffic_policy.as_ref(), port.number);
                let eps: Vec<&Endpoint> = svc
                    .endpoints
                    .iter()
                    .filter(|e| selector_matches(&subset.labels, &e.labels))
                    .collect();
                push_outbound(
                    scope,
                    out,
                    name,
                    svc,
                    port,
                    &policy,
                    &eps,
                    timeout,
                    Some(dr),
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn push_outbound(
    scope: &Scope<'_>,
    out: &mut ProxyConfig,
    name: String,
    svc: &Service,
    port: &ServicePort,
    policy: &Policy<'_>,
    endpoints: &[&Endpoint],
    timeout: std::time::Duration,
    dr: Option<&Typed<DestinationRule>>,
) {
    let mut c = Cluster {
        name: name.clone(),
        connect_timeout: Some(proto::duration(timeout)),
        metadata: dr
            .map(|d| proto::istio_config_metadata("destination-rule", d.namespace(), d.name())),
        ..Default::default()
    };
    let passthrough = svc.resolution == Resolution::None
        || policy.lb.and_then(|l| l.simple) == Some(SimpleLb::Passthrough);
    if passthrough {
        if scope.proxy.local_mode {
            set_dfp(&mut c);
        } else {
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::OriginalDst as i32,
            ));
            c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
        }
    } else {
        match svc.resolution {
            Resolution::Static => {
                c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Eds as i32,
                ));
                c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                    eds_config: Some(proto::ads()),
                    service_name: name.clone(),
                });
                out.endpoints
                    .push(load_assignment(&name, port, endpoints, true));
            }
            Resolution::Dns | Resolution::None => {
                c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::StrictDns as i32,
                ));
                c.dns_lookup_family = cluster::DnsLookupFamily::V4Preferred as i32;
                c.load_assignment = Some(load_assignment(&name, port, endpoints, false));
            }
        }
        apply_load_balancer(&mut c, policy.lb);
    }
    apply_connection_pool(&mut c, policy.pool, port);
    apply_outlier_detection(&mut c, policy.outlier);
    if !passthrough {
        apply_tls(&mut c, policy.tls, svc);
        // Istio's SNI for mesh clusters is the cluster name with `|` as `_.`.
        super::mtls::apply_client(
            &mut c,
            scope.snap,
            scope.proxy,
            svc,
            endpoints,
            |ep| ep.port_for(port),
            policy.tls,
            &port.protocol,
            &name.replace('|', "_."),
        );
    }
    out.clusters.push(c);
}

/// A cluster of Envoy's dynamic forward proxy type (resolves each request's authority).
fn set_dfp(c: &mut Cluster) {
    let config = DfpClusterConfig {
        cluster_implementation_specifier: Some(
            cluster_config::ClusterImplementationSpecifier::DnsCacheConfig(dfp_cache()),
        ),
        ..Default::default()
    };
    c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::ClusterType(
        cluster::CustomClusterType {
            name: DFP_CLUSTER_TYPE.to_owned(),
            typed_config: Some(proto::any(&config)),
        },
    ));
    c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
}

/// Endpoints of a cluster. EDS endpoints must be IP addresses; others may be DNS names.
fn load_assignment(
    name: &str,
    port: &ServicePort,
    endpoints: &[&Endpoint],
    ip_only: bool,
) -> ClusterLoadAssignment {
    let mut addrs: Vec<(String, u16)> = endpoints
        .iter()
        .filter(|e| !ip_only || e.address.parse::<IpAddr>().is_ok())
        .map(|e| (e.address.clone(), e.port_for(port)))
        .collect();
    addrs.sort();
    addrs.dedup();
    static_assignment(name, &addrs)
}

fn static_assignment(name: &str, addrs: &[(String, u16)]) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = addrs
        .iter()
        .map(|(a, p)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                address: Some(proto::socket(a, *p)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

fn apply_load_balancer(c: &mut Cluster, lb: Option<&LoadBalancerSettings>) {
    let slow_start = lb
        .and_then(|l| {
            l.warmup
                .as_ref()
                .and_then(|w| w.duration)
                .or(l.warmup_duration_secs)
        })
        .map(|d| cluster::SlowStartConfig {
            slow_start_window: Some(proto::duration(d.0)),
            ..Default::default()
        });
    let simple = lb.and_then(|l| l.simple);
    match simple {
        Some(SimpleLb::Random) => c.lb_policy = cluster::LbPolicy::Random as i32,
        Some(SimpleLb::RoundRobin) => {
            c.lb_policy = cluster::LbPolicy::RoundRobin as i32;
            if let Some(ss) = slow_start {
                c.lb_config = Some(cluster::LbConfig::RoundRobinLbConfig(
                    cluster::RoundRobinLbConfig {
                        slow_start_config: Some(ss),
                    },
                ));
            }
        }
        _ => {
            c.lb_policy = cluster::LbPolicy::LeastRequest as i32;
            if let Some(ss) = slow_start {
                c.lb_config = Some(cluster::LbConfig::LeastRequestLbConfig(
                    cluster::LeastRequestLbConfig {
                        slow_start_config: Some(ss),
                        ..Default::default()
                    },
                ));
            }
        }
    }
    let Some(ch) = lb.and_then(|l| l.consistent_hash.as_ref()) else {
        return;
    };
    if let Some(m) = &ch.maglev {
        c.lb_policy = cluster::LbPolicy::Maglev as i32;
        c.lb_config = (m.table_size != 0).then(|| {
            cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                table_size: Some(proto::u64v(m.table_size)),
            })
        });
    } else {
        let size = ch
            .ring_hash
            .as_ref()
            .map(|r| r.minimum_ring_size)
            .filter(|s| *s != 0)
            .or((ch.minimum_ring_size != 0).then_some(ch.minimum_ring_size))
            .unwrap_or(1024);
        c.lb_policy = cluster::LbPolicy::RingHash as i32;
        c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
            cluster::RingHashLbConfig {
                minimum_ring_size: Some(proto::u64v(size)),
                ..Default::default()
            },
        ));
    }
}

fn default_thresholds() -> Thresholds {
    Thresholds {
        max_connections: Some(proto::u32v(u32::MAX)),
        max_pending_requests: Some(proto::u32v(u32::MAX)),
        max_requests: Some(proto::u32v(u32::MAX)),
        max_retries: Some(proto::u32v(u32::MAX)),
        track_remaining: true,
        ..Default::default()
    }
}

fn positive(v: i32) -> Option<u32> {
    u32::try_from(v).ok().filter(|v| *v > 0)
}

fn apply_connection_pool(
    c: &mut Cluster,
    pool: Option<&ConnectionPoolSettings>,
    port: &ServicePort,
) {
    let mut t = default_thresholds();
    let mut common = CoreHttpOptions::default();
    let mut has_common = false;
    let http = pool.and_then(|p| p.http.as_ref());
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    if let Some(h) = http {
        if let Some(v) = positive(h.http2_max_requests) {
            t.max_requests = Some(proto::u32v(v));
        }
        if let Some(v) = positive(h.http1_max_pending_requests) {
            t.max_pending_requests = Some(proto::u32v(v));
        }
        if let Some(v) = positive(h.max_retries) {
            t.max_retries = Some(proto::u32v(v));
        }
        if let Some(d) = h.idle_timeout {
            common.idle_timeout = Some(proto::duration(d.0));
            has_common = true;
        }
        if let Some(v) = positive(h.max_requests_per_connection) {
            common.max_requests_per_connection = Some(proto::u32v(v));
            has_common = true;
        }
    }
    if let Some(tcp) = tcp {
        if let Some(d) = tcp.connect_timeout {
            c.connect_timeout = Some(proto::duration(d.0));
        }
        if let Some(v) = positive(tcp.max_connections) {
            t.max_connections = Some(proto::u32v(v));
        }
        if let Some(d) = tcp.max_connection_duration {
            common.max_connection_duration = Some(proto::duration(d.0));
            has_common = true;
        }
        if common.idle_timeout.is_none()
            && let Some(d) = tcp.idle_timeout
        {
            common.idle_timeout = Some(proto::duration(d.0));
            has_common = true;
        }
        if let Some(ka) = &tcp.tcp_keepalive {
            c.upstream_connection_options = Some(UpstreamConnectionOptions {
                tcp_keepalive: Some(TcpKeepalive {
                    keepalive_probes: (ka.probes > 0).then(|| proto::u32v(ka.probes)),
                    keepalive_time: ka
                        .time
                        .map(|d| proto::u32v(u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX))),
                    keepalive_interval: ka
                        .interval
                        .map(|d| proto::u32v(u32::try_from(d.0.as_secs()).unwrap_or(u32::MAX))),
                }),
                ..Default::default()
            });
        }
    }
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![t],
        ..Default::default()
    });

    if !port.is_http() {
        return;
    }
    let h2_policy = http.map(|h| h.h2_upgrade_policy);
    let use_client = http.is_some_and(|h| h.use_client_protocol);
    let upstream = if use_client
        || (port.protocol == "AUTO" && h2_policy != Some(H2UpgradePolicy::Upgrade))
    {
        Some(
            http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                http_protocol_options::UseDownstreamHttpConfig {
                    http_protocol_options: Some(Http1ProtocolOptions::default()),
                    http2_protocol_options: Some(h2_options(http)),
                    ..Default::default()
                },
            ),
        )
    } else if (is_http2_protocol(&port.protocol)
        && h2_policy != Some(H2UpgradePolicy::DoNotUpgrade))
        || h2_policy == Some(H2UpgradePolicy::Upgrade)
    {
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        h2_options(http),
                    ),
                ),
            },
        ))
    } else if has_common {
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                        Http1ProtocolOptions::default(),
                    ),
                ),
            },
        ))
    } else {
        None
    };
    if let Some(upstream) = upstream {
        let opts = HttpProtocolOptions {
            common_http_protocol_options: has_common.then_some(common),
            upstream_protocol_options: Some(upstream),
            ..Default::default()
        };
        c.typed_extension_protocol_options
            .insert(HTTP_OPTIONS_KEY.to_owned(), proto::any(&opts));
    }
}

fn h2_options(http: Option<&crate::model::networking::HttpSettings>) -> Http2ProtocolOptions {
    Http2ProtocolOptions {
        max_concurrent_streams: http
            .and_then(|h| positive(h.max_concurrent_streams))
            .map(proto::u32v),
        ..Default::default()
    }
}

fn apply_outlier_detection(c: &mut Cluster, od: Option<&OutlierDetection>) {
    let Some(od) = od else { return };
    let mut out = EnvoyOutlier {
        enforcing_success_rate: Some(proto::u32v(0)),
        ..Default::default()
    };
    // The deprecated `consecutiveErrors` counts gateway errors, as Istio reads it.
    let consecutive_5xx = od.consecutive_5xx_errors;
    let gateway = od
        .consecutive_gateway_errors
        .or_else(|| u32::try_from(od.consecutive_errors).ok().filter(|v| *v > 0));
    if let Some(v) = consecutive_5xx {
        out.consecutive_5xx = Some(proto::u32v(v));
        out.enforcing_consecutive_5xx = Some(proto::u32v(if v > 0 { 100 } else { 0 }));
    }
    if let Some(v) = gateway {
        out.consecutive_gateway_failure = Some(proto::u32v(v));
        out.enforcing_consecutive_gateway_failure = Some(proto::u32v(if v > 0 { 100 } else { 0 }));
    }
    out.interval = od.interval.map(|d| proto::duration(d.0));
    out.base_ejection_time = od.base_ejection_time.map(|d| proto::duration(d.0));
    if let Some(v) = positive(od.max_ejection_percent) {
        out.max_ejection_percent = Some(proto::u32v(v));
    }
    if od.split_external_local_origin_errors {
        out.split_external_local_origin_errors = true;
        if let Some(v) = od.consecutive_local_origin_failures.filter(|v| *v > 0) {
            out.consecutive_local_origin_failure = Some(proto::u32v(v));
            out.enforcing_consecutive_local_origin_failure = Some(proto::u32v(100));
        }
        out.enforcing_local_origin_success_rate = Some(proto::u32v(0));
    }
    c.outlier_detection = Some(out);
    let common = c.common_lb_config.get_or_insert_with(Default::default);
    common.healthy_panic_threshold = Some(Percent {
        value: f64::from(od.min_health_percent.max(0)),
    });
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..Default::default()
    }
}

fn apply_tls(c: &mut Cluster, tls: Option<&ClientTlsSettings>, svc: &Service) {
    let Some(tls) = tls else { return };
    if !matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) {
        return;
    }
    let mut common = CommonTlsContext::default();
    if tls.mode == ClientTlsMode::Mutual
        && !tls.client_certificate.is_empty()
        && !tls.private_key.is_empty()
    {
        common.tls_certificates.push(TlsCertificate {
            certificate_chain: Some(file(&tls.client_certificate)),
            private_key: Some(file(&tls.private_key)),
            ..Default::default()
        });
    }
    let skip_verify = tls.insecure_skip_verify == Some(true);
    if !skip_verify && !tls.ca_certificates.is_empty() {
        let sans = tls
            .subject_alt_names
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|s| SubjectAltNameMatcher {
                san_type: subject_alt_name_matcher::SanType::Dns as i32,
                matcher: Some(proto::exact_matcher(s)),
                ..Default::default()
            })
            .collect();
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(&tls.ca_certificates)),
                    match_typed_subject_alt_names: sans,
                    crl: (!tls.ca_crl.is_empty()).then(|| file(&tls.ca_crl)),
                    ..Default::default()
                },
            ),
        );
    }
    let sni = if !tls.sni.is_empty() {
        tls.sni.clone()
    } else if !crate::host::is_wildcard(&svc.hostname) {
        svc.hostname.clone()
    } else {
        String::new()
    };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(common),
        sni,
        ..Default::default()
    };
    c.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(&ctx))),
    });
}

/// `BlackHoleCluster` and `PassthroughCluster` (a dynamic forward proxy in local mode,
/// ORIGINAL_DST otherwise), and in Kubernetes mode `InboundPassthroughCluster`.
pub(super) fn special(scope: &Scope<'_>, out: &mut ProxyConfig) {
    let timeout = scope.connect_timeout;
    out.clusters.push(Cluster {
        name: cluster_name::BLACK_HOLE.to_owned(),
        connect_timeout: Some(proto::duration(timeout)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        ..Default::default()
    });
    let mut pass = Cluster {
        name: cluster_name::PASSTHROUGH.to_owned(),
        connect_timeout: Some(proto::duration(timeout)),
        ..Default::default()
    };
    if scope.proxy.local_mode {
        set_dfp(&mut pass);
    } else {
        pass.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        ));
        pass.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
    }
    if !scope.proxy.local_mode && scope.proxy.kind == super::ProxyKind::Sidecar {
        let mut inbound = pass.clone();
        inbound.name = cluster_name::INBOUND_PASSTHROUGH.to_owned();
        inbound.upstream_bind_config = Some(BindConfig {
            source_address: Some(SocketAddress {
                address: cluster_name::INBOUND_PASSTHROUGH_SOURCE.to_owned(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        });
        out.clusters.push(inbound);
    }
    out.clusters.push(pass);
}

/// Where the app behind an inbound port listens.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum AppAddress {
    Socket(String, u16),
    Pipe(String),
}

/// One inbound port of the proxy's workload.
#[derive(Clone, Debug)]
pub(super) struct InboundPort {
    /// The port traffic arrives on (the endpoint port).
    pub port: u16,
    pub protocol: String,
    pub app: AppAddress,
}

/// `inbound|PORT||` clusters, STATIC, pointing at the app.
pub(super) fn inbound(scope: &Scope<'_>, ports: &[InboundPort], out: &mut ProxyConfig) {
    let timeout = scope.connect_timeout;
    for p in ports {
        let name = cluster_name::inbound(p.port);
        let mut c = Cluster {
            name: name.clone(),
            connect_timeout: Some(proto::duration(timeout)),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            )),
            lb_policy: cluster::LbPolicy::RoundRobin as i32,
            ..Default::default()
        };
        let address = match &p.app {
            AppAddress::Socket(a, port) => proto::socket(a, *port),
            AppAddress::Pipe(path) => proto::pipe(path),
        };
        c.load_assignment = Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                        address: Some(address),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        });
        c.circuit_breakers = Some(CircuitBreakers {
            thresholds: vec![default_thresholds()],
            ..Default::default()
        });
        let port = ServicePort {
            name: String::new(),
            number: p.port,
            protocol: p.protocol.clone(),
            target_port: p.port,
        };
        if port.is_http() && (is_http2_protocol(&p.protocol) || p.protocol == "AUTO") {
            apply_connection_pool(&mut c, None, &port);
        }
        out.clusters.push(c);
    }
}

/// Istio's hash policy inputs for a destination: the consistent-hash settings of the
/// DestinationRule that applies to it (subset and port-level settings first).
pub(super) fn consistent_hash<'a>(
    top: Option<&'a TrafficPolicy>,
    subset: Option<&'a TrafficPolicy>,
    port: u16,
) -> Option<&'a crate::model::networking::ConsistentHashLb> {
    policy_for(top, subset, port)
        .lb
        .and_then(|l| l.consistent_hash.as_ref())
}
