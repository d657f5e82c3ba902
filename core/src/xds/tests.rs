//! Unit tests of the translation, one feature at a time, from small YAML meshes.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, VirtualHost, header_matcher, query_parameter_matcher, redirect_action,
    route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use prost::Message;

use super::registry::Resolution;
use super::*;
use crate::analysis::{MeshConfig, Store};

const NS_HEADER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";

fn snap(yaml: &str) -> Snapshot {
    snap_with(yaml, MeshConfig::default())
}

fn snap_with(yaml: &str, mesh: MeshConfig) -> Snapshot {
    let loaded =
        crate::source::load_bytes("test.yaml", format!("{NS_HEADER}---\n{yaml}").as_bytes());
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    Snapshot::build(&Store::new(loaded.resources), &mesh)
}

/// A small mesh: `web` (127.0.0.20) calls `api` (v1 127.0.0.21, v2 127.0.0.22) in `shop`.
const BASE: &str = r"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080, targetPort: 9090}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http-web, port: 80}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v1, namespace: shop}
spec: {address: 127.0.0.21, labels: {app: api, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v2, namespace: shop}
spec: {address: 127.0.0.22, labels: {app: api, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web, namespace: shop}
spec: {address: 127.0.0.20, labels: {app: web}, serviceAccount: web}
";

fn with_base(extra: &str) -> Snapshot {
    snap(&format!("{BASE}---\n{extra}"))
}

fn proxy_of(s: &Snapshot, kind: ProxyKind, ns: &str, name: &str) -> ProxyInfo {
    let w = s.registry.workload(ns, name).expect("workload");
    let mut p = ProxyInfo::from_node_id(&ProxyInfo::node_id(
        kind,
        w.address.parse().unwrap(),
        name,
        ns,
    ))
    .unwrap();
    p.labels = w.labels.clone();
    p
}

fn web(s: &Snapshot) -> ProxyConfig {
    assert!(
        s.rejected.is_empty(),
        "unexpected rejections: {:#?}",
        s.rejected
    );
    generate(s, &proxy_of(s, ProxyKind::Sidecar, "shop", "web"))
}

fn cluster<'c>(cfg: &'c ProxyConfig, name: &str) -> &'c Cluster {
    cfg.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = cfg.clusters.iter().map(|c| &c.name).collect();
            panic!("no cluster {name} in {names:?}")
        })
}

fn listener<'c>(cfg: &'c ProxyConfig, name: &str) -> &'c Listener {
    cfg.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

fn vhost<'c>(cfg: &'c ProxyConfig, rc: &str, name: &str) -> &'c VirtualHost {
    let rc = cfg
        .routes
        .iter()
        .find(|r| r.name == rc)
        .unwrap_or_else(|| panic!("no route config {rc}"));
    rc.virtual_hosts
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| {
            let names: Vec<_> = rc.virtual_hosts.iter().map(|v| &v.name).collect();
            panic!("no virtual host {name} in {names:?}")
        })
}

const API: &str = "api.shop.svc.cluster.local:8080";

fn api_routes(cfg: &ProxyConfig) -> &[Route] {
    &vhost(cfg, "15001", API).routes
}

fn action(r: &Route) -> &RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("not a route action: {other:?}"),
    }
}

fn cluster_of(r: &Route) -> &str {
    match &action(r).cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("not a single cluster: {other:?}"),
    }
}

fn hcm(l: &Listener) -> HttpConnectionManager {
    let f = &l.filter_chains[0].filters[0];
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("no config")
    };
    HttpConnectionManager::decode(any.value.as_slice()).expect("hcm")
}

fn endpoints_of(cfg: &ProxyConfig, name: &str) -> Vec<(String, u32)> {
    let cla = cfg
        .endpoints
        .iter()
        .find(|e| e.cluster_name == name)
        .unwrap_or_else(|| panic!("no endpoints for {name}"));
    let mut out = Vec::new();
    for l in &cla.endpoints {
        for e in &l.lb_endpoints {
            if let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier
                && let Some(address::Address::SocketAddress(sa)) =
                    ep.address.as_ref().and_then(|a| a.address.as_ref())
                && let Some(socket_address::PortSpecifier::PortValue(p)) = sa.port_specifier
            {
                out.push((sa.address.clone(), p));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Registry and snapshot

#[test]
fn registry_from_services_pods_and_workload_entries() {
    let s = snap(
        r"
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports:
  - {name: tcp-pg, port: 5432, targetPort: pg}
  - {port: 8080, appProtocol: http2}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec:
  serviceAccountName: db
  containers:
  - name: pg
    ports: [{name: pg, containerPort: 5433}]
status: {podIP: 10.0.0.5, phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: shop, labels: {app: db}}
spec: {containers: [{name: pg}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-vm, namespace: shop}
spec: {address: 10.0.0.9, labels: {app: db}, ports: {tcp-pg: 6000}}
",
    );
    let svc = &s.registry.services[0];
    assert_eq!(svc.hostname, "db.shop.svc.cluster.local");
    assert_eq!(svc.ports[0].protocol, "TCP");
    assert_eq!(svc.ports[1].protocol, "HTTP2");
    assert_eq!(svc.resolution, Resolution::Static);
    // The Pod without an IP is no endpoint; the named targetPort resolves per workload.
    let eps: Vec<(&str, u16)> = svc
        .endpoints
        .iter()
        .map(|e| (e.address.as_str(), e.port_for(&svc.ports[0])))
        .collect();
    assert_eq!(eps, vec![("10.0.0.5", 5433), ("10.0.0.9", 6000)]);
    assert_eq!(svc.endpoints[0].service_account, "db");
    assert_eq!(s.registry.workloads.len(), 2);
}

#[test]
fn registry_from_service_entries() {
    let s = snap(
        r"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: shop}
spec:
  hosts: [a.example.com, b.example.com]
  exportTo: ['.']
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: shop}
spec:
  hosts: [s.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  endpoints:
  - {address: 10.1.1.1}
  - {address: 10.1.1.2, ports: {http: 9000}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: shop}
spec:
  hosts: [vm.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1, namespace: shop}
spec: {address: 10.2.2.2, labels: {app: vm}, ports: {http: 8081}}
",
    );
    let by = |h: &str| {
        s.registry
            .services
            .iter()
            .find(|x| x.hostname == h)
            .unwrap()
    };
    let a = by("a.example.com");
    assert_eq!(a.resolution, Resolution::Dns);
    assert!(a.mesh_external);
    assert_eq!(a.export_to, vec!["shop"]);
    assert_eq!(a.endpoints[0].address, "a.example.com");
    assert_eq!(by("b.example.com").endpoints[0].address, "b.example.com");
    let st = by("s.example.com");
    assert!(!st.mesh_external);
    let ports: Vec<u16> = st
        .endpoints
        .iter()
        .map(|e| e.port_for(&st.ports[0]))
        .collect();
    assert_eq!(ports, vec![8080, 9000]);
    let vm = by("vm.example.com");
    assert_eq!(vm.endpoints[0].address, "10.2.2.2");
    assert_eq!(vm.endpoints[0].port_for(&vm.ports[0]), 8081);
}

#[test]
fn invalid_and_conflicting_objects_are_rejected_with_reasons() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: shop}
spec:
  hosts: [api]
  http:
  - match: [{uri: {regex: '('}}]
    route:
    - destination: {host: api}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: first, namespace: shop}
spec: {host: api}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: second, namespace: shop}
spec: {host: api.shop.svc.cluster.local}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: one, namespace: shop}
spec: {egress: [{hosts: ['./*']}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: two, namespace: shop}
spec: {egress: [{hosts: ['*/*']}]}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: ef, namespace: shop}
spec: {}
",
    );
    let reasons: Vec<String> = s
        .rejected
        .iter()
        .map(|r| format!("{}: {}", r.object, r.reason))
        .collect();
    let has = |obj: &str, needle: &str| {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(obj) && r.contains(needle)),
            "{obj} / {needle} not in {reasons:#?}"
        );
    };
    has("VirtualService shop/bad", "invalid");
    has("DestinationRule shop/second", "DestinationRule shop/first");
    has("Sidecar shop/two", "Sidecar shop/one");
    has("EnvoyFilter shop/ef", "not applied");
    assert!(s.virtual_services.is_empty());
    assert_eq!(s.destination_rules.len(), 1);
    assert_eq!(s.sidecars.len(), 1);
    assert!(
        s.rejected
            .iter()
            .all(|r| r.origin.starts_with("test.yaml:"))
    );
}

#[test]
fn snapshot_is_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Snapshot>();
    send_sync::<ProxyConfig>();
}

// ---------------------------------------------------------------------------------------
// Clusters and endpoints

#[test]
fn clusters_per_port_and_subset_with_filtered_endpoints() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
",
    );
    let cfg = web(&s);
    let c = cluster(&cfg, "outbound|8080||api.shop.svc.cluster.local");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    let eds = c.eds_cluster_config.as_ref().unwrap();
    assert_eq!(eds.service_name, c.name);
    assert_eq!(c.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    assert_eq!(
        endpoints_of(&cfg, "outbound|8080||api.shop.svc.cluster.local"),
        vec![("127.0.0.21".into(), 9090), ("127.0.0.22".into(), 9090)]
    );
    assert_eq!(
        endpoints_of(&cfg, "outbound|8080|v2|api.shop.svc.cluster.local"),
        vec![("127.0.0.22".into(), 9090)]
    );
    for name in [cluster_name::BLACK_HOLE, cluster_name::PASSTHROUGH] {
        cluster(&cfg, name);
    }
    // Every EDS cluster has its endpoints, and resources are sorted.
    let names: Vec<&str> = cfg.clusters.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for c in &cfg.clusters {
        if c.eds_cluster_config.is_some() {
            assert!(cfg.endpoints.iter().any(|e| e.cluster_name == c.name));
        }
    }
}

#[test]
fn resolution_decides_the_cluster_type() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: shop}
spec:
  hosts: [dns.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: shop}
spec:
  hosts: ['*.none.example.com']
  resolution: NONE
  ports: [{number: 443, name: tls, protocol: TLS}]
",
    );
    let local = web(&s);
    let dns = cluster(&local, "outbound|80||dns.example.com");
    assert_eq!(
        dns.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32
        ))
    );
    assert_eq!(
        dns.load_assignment.as_ref().unwrap().cluster_name,
        "outbound|80||dns.example.com"
    );
    // NONE: a dynamic forward proxy in local mode, the original destination otherwise.
    let none = cluster(&local, "outbound|443||*.none.example.com");
    assert!(matches!(
        &none.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::ClusterType(t)) if t.name == "envoy.clusters.dynamic_forward_proxy"
    ));
    let mut p = proxy_of(&s, ProxyKind::Sidecar, "shop", "web");
    p.ip = "10.0.0.20".parse().unwrap();
    p.local_mode = false;
    let kube = generate(&s, &p);
    let none = cluster(&kube, "outbound|443||*.none.example.com");
    assert_eq!(
        none.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32
        ))
    );
    assert_eq!(none.lb_policy, cluster::LbPolicy::ClusterProvided as i32);
}

#[test]
fn destination_rule_traffic_policy() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 7, connectTimeout: 250ms}
      http: {http1MaxPendingRequests: 3, http2MaxRequests: 9, maxRetries: 2, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 4, interval: 2s, baseEjectionTime: 1m, maxEjectionPercent: 40}
    portLevelSettings:
    - port: {number: 9999}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 128}}
",
    );
    let cfg = web(&s);
    let c = cluster(&cfg, "outbound|8080||api.shop.svc.cluster.local");
    assert_eq!(c.lb_policy, cluster::LbPolicy::RoundRobin as i32);
    assert_eq!(c.connect_timeout.unwrap().nanos, 250_000_000);
    let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.unwrap().value, 7);
    assert_eq!(t.max_pending_requests.unwrap().value, 3);
    assert_eq!(t.max_requests.unwrap().value, 9);
    assert_eq!(t.max_retries.unwrap().value, 2);
    let od = c.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx.unwrap().value, 4);
    assert_eq!(od.enforcing_consecutive_5xx.unwrap().value, 100);
    assert_eq!(od.base_ejection_time.unwrap().seconds, 60);
    assert_eq!(od.max_ejection_percent.unwrap().value, 40);
    let any = &c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    let opts = HttpProtocolOptions::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        opts.common_http_protocol_options
            .unwrap()
            .max_requests_per_connection
            .unwrap()
            .value,
        1
    );
    // Subsets override field by field; connection pool and outlier detection stay.
    let v1 = cluster(&cfg, "outbound|8080|v1|api.shop.svc.cluster.local");
    assert_eq!(v1.lb_policy, cluster::LbPolicy::Random as i32);
    assert!(v1.outlier_detection.is_some());
    let v2 = cluster(&cfg, "outbound|8080|v2|api.shop.svc.cluster.local");
    assert_eq!(v2.lb_policy, cluster::LbPolicy::RingHash as i32);
    assert!(matches!(
        &v2.lb_config,
        Some(cluster::LbConfig::RingHashLbConfig(r)) if r.minimum_ring_size.unwrap().value == 128
    ));
    // Defaults where nothing is said: Istio's circuit breakers at their maximum.
    let w = cluster(&cfg, "outbound|80||web.shop.svc.cluster.local");
    let t = &w.circuit_breakers.as_ref().unwrap().thresholds[0];
    assert_eq!(t.max_connections.unwrap().value, u32::MAX);
    assert!(t.track_remaining);
    assert_eq!(w.connect_timeout.unwrap().seconds, 10);
}

#[test]
fn port_level_settings_replace_the_policy_for_their_port() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 4}
    portLevelSettings:
    - port: {number: 8080}
      loadBalancer: {simple: RANDOM}
",
    );
    let cfg = web(&s);
    let c = cluster(&cfg, "outbound|8080||api.shop.svc.cluster.local");
    assert_eq!(c.lb_policy, cluster::LbPolicy::Random as i32);
    assert!(
        c.outlier_detection.is_none(),
        "port level settings do not inherit"
    );
}

#[test]
fn http2_ports_and_tls_origination() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: g, namespace: shop}
spec:
  hosts: [grpc.example.com]
  resolution: DNS
  ports: [{number: 443, name: grpc, protocol: GRPC}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: g, namespace: shop}
spec:
  host: grpc.example.com
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: /etc/ca.pem, subjectAltNames: [grpc.example.com]}
",
    );
    let cfg = web(&s);
    let c = cluster(&cfg, "outbound|443||grpc.example.com");
    let any = &c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    let opts = HttpProtocolOptions::decode(any.value.as_slice()).unwrap();
    assert!(matches!(
        opts.upstream_protocol_options,
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(ref e))
            if matches!(e.protocol_config, Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_)))
    ));
    let ts = c.transport_socket.as_ref().expect("tls");
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        panic!()
    };
    let ctx =
        envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext::decode(
            any.value.as_slice(),
        )
        .unwrap();
    assert_eq!(ctx.sni, "grpc.example.com");
}

#[test]
fn inbound_listener_and_cluster_follow_the_local_convention() {
    let s = with_base("");
    let p = proxy_of(&s, ProxyKind::Sidecar, "shop", "api-v1");
    let cfg = generate(&s, &p);
    // The sidecar takes the endpoint port (targetPort 9090), the app listens 10000 above.
    let l = listener(&cfg, "127.0.0.21_9090");
    assert_eq!(l.address, Some(proto::socket("127.0.0.21", 9090)));
    let c = cluster(&cfg, "inbound|9090||");
    assert_eq!(
        c.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0].host_identifier,
        Some(lb_endpoint::HostIdentifier::Endpoint(
            envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                address: Some(proto::socket("127.0.0.21", 19090)),
                ..Default::default()
            }
        ))
    );
    let h = hcm(l);
    let Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) = &h.route_specifier else {
        panic!("inline routes")
    };
    assert_eq!(cluster_of(&rc.virtual_hosts[0].routes[0]), "inbound|9090||");
    // Outbound: the HTTP proxy listener on the workload's address, routes by RDS.
    let out = listener(&cfg, "virtualOutbound");
    assert_eq!(out.address, Some(proto::socket("127.0.0.21", 15001)));
    let h = hcm(out);
    assert!(matches!(
        &h.route_specifier,
        Some(http_connection_manager::RouteSpecifier::Rds(r)) if r.route_config_name == "15001"
    ));
    let names: Vec<&str> = h.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.cors",
            "envoy.filters.http.fault",
            "envoy.filters.http.dynamic_forward_proxy",
            "envoy.filters.http.router"
        ]
    );
}

#[test]
fn sidecar_ingress_overrides_the_app_address() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: api, namespace: shop}
spec:
  workloadSelector: {labels: {app: api}}
  ingress:
  - port: {number: 7000, protocol: HTTP, name: http}
    defaultEndpoint: 0.0.0.0:3000
  - port: {number: 7001, protocol: TCP, name: tcp}
    defaultEndpoint: 127.0.0.1:3001
",
    );
    let cfg = generate(&s, &proxy_of(&s, ProxyKind::Sidecar, "shop", "api-v2"));
    listener(&cfg, "127.0.0.22_7000");
    listener(&cfg, "127.0.0.22_7001");
    assert!(!cfg.listeners.iter().any(|l| l.name == "127.0.0.22_9090"));
    let addr = |n: &str| {
        cluster(&cfg, n).load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0]
            .host_identifier
            .clone()
    };
    let ep = |a: &str, p: u16| {
        Some(lb_endpoint::HostIdentifier::Endpoint(
            envoy_types::pb::envoy::config::endpoint::v3::Endpoint {
                address: Some(proto::socket(a, p)),
                ..Default::default()
            },
        ))
    };
    assert_eq!(addr("inbound|7000||"), ep("127.0.0.22", 3000));
    assert_eq!(addr("inbound|7001||"), ep("127.0.0.1", 3001));
}

// ---------------------------------------------------------------------------------------
// Visibility

#[test]
fn export_to_and_sidecar_egress_limit_what_a_proxy_sees() {
    let s = with_base(
        r"
apiVersion: v1
kind: Service
metadata:
  name: hidden
  namespace: other
  annotations: {networking.istio.io/exportTo: '.'}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: other}
spec:
  ports: [{name: http, port: 80}]
",
    );
    let cfg = web(&s);
    assert!(
        cfg.clusters
            .iter()
            .any(|c| c.name == "outbound|80||far.other.svc.cluster.local")
    );
    assert!(!cfg.clusters.iter().any(|c| c.name.contains("hidden")));

    let s = with_base(
        r"
apiVersion: v1
kind: Service
metadata: {name: far, namespace: other}
spec:
  ports: [{name: http, port: 80}, {name: http-admin, port: 81}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress:
  - port: {number: 81, protocol: HTTP, name: admin}
    hosts: ['other/*']
  - hosts: ['./*']
",
    );
    let cfg = web(&s);
    let names: Vec<&str> = cfg.clusters.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"outbound|8080||api.shop.svc.cluster.local"));
    assert!(names.contains(&"outbound|81||far.other.svc.cluster.local"));
    assert!(!names.contains(&"outbound|80||far.other.svc.cluster.local"));
}

#[test]
fn destination_rule_lookup_prefers_the_proxy_namespace() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: from-root, namespace: istio-system}
spec:
  host: '*.shop.svc.cluster.local'
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: client-side, namespace: client}
spec:
  host: api.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: c, namespace: client}
spec: {address: 127.0.0.30, labels: {app: c}}
",
    );
    let lb = |ns: &str, name: &str| {
        let cfg = generate(&s, &proxy_of(&s, ProxyKind::Sidecar, ns, name));
        cluster(&cfg, "outbound|8080||api.shop.svc.cluster.local").lb_policy
    };
    assert_eq!(lb("client", "c"), cluster::LbPolicy::RoundRobin as i32);
    assert_eq!(lb("shop", "web"), cluster::LbPolicy::Random as i32);
}

// ---------------------------------------------------------------------------------------
// Routes

#[test]
fn domains_and_default_routes() {
    let s = with_base(
        r"
apiVersion: v1
kind: Service
metadata: {name: multi, namespace: other}
spec:
  ports: [{name: http-a, port: 9000}, {name: http-b, port: 8000}, {name: tcp, port: 7000}]
",
    );
    let cfg = web(&s);
    let api = vhost(&cfg, "15001", API);
    assert_eq!(
        api.domains,
        [
            "api.shop.svc.cluster.local",
            "api.shop.svc.cluster.local:8080",
            "api.shop",
            "api.shop:8080",
            "api.shop.svc",
            "api.shop.svc:8080",
            "api",
            "api:8080"
        ]
    );
    let r = &api.routes[0];
    assert_eq!(r.name, "default");
    assert_eq!(cluster_of(r), "outbound|8080||api.shop.svc.cluster.local");
    let a = action(r);
    assert_eq!(a.timeout, Some(proto::zero_duration()));
    let retry = a.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 2);
    assert_eq!(retry.retriable_status_codes, [503]);
    assert_eq!(
        retry.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    // Another namespace: no short name; the lowest HTTP port also answers without a port.
    let low = vhost(&cfg, "15001", "multi.other.svc.cluster.local:8000");
    assert!(low.domains.contains(&"multi.other".to_owned()));
    assert!(
        !low.domains
            .iter()
            .any(|d| d == "multi" || d == "multi:8000")
    );
    let high = vhost(&cfg, "15001", "multi.other.svc.cluster.local:9000");
    assert!(!high.domains.contains(&"multi.other".to_owned()));
    // TCP ports are reached by CONNECT.
    let tcp = vhost(&cfg, "15001", "multi.other.svc.cluster.local:7000");
    assert!(matches!(
        tcp.routes[0].r#match.as_ref().unwrap().path_specifier,
        Some(route_match::PathSpecifier::ConnectMatcher(_))
    ));
}

#[test]
fn outbound_traffic_policy() {
    let allow = web(&with_base(""));
    let any = vhost(&allow, "15001", "allow_any");
    assert_eq!(any.domains, ["*"]);
    assert_eq!(cluster_of(&any.routes[1]), cluster_name::PASSTHROUGH);

    let mesh = MeshConfig::from_json(
        serde_json::json!({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}),
    );
    let blocked = web(&snap_with(BASE, mesh));
    let block = vhost(&blocked, "15001", "block_all");
    assert!(matches!(
        &block.routes[0].action,
        Some(route::Action::DirectResponse(d)) if d.status == 502
    ));
}

#[test]
fn matches_translate_as_istio_translates_them() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - name: r
    match:
    - name: m
      uri: {exact: /a}
      method: {exact: GET}
      headers:
        x-b: {prefix: pre}
        x-a: {regex: 'v[0-9]'}
        x-c: {}
      queryParams:
        q: {exact: '1'}
        p: {}
      withoutHeaders:
        x-no: {exact: 'yes'}
      ignoreUriCase: true
    - uri: {prefix: /b}
    - uri: {regex: '/c.*'}
    - uri: {prefix: /d}
      port: 9999
    - uri: {prefix: /e}
      sourceLabels: {app: other}
    - uri: {prefix: /f}
      sourceLabels: {app: web}
    route:
    - destination: {host: api}
",
    );
    let cfg = web(&s);
    let routes = api_routes(&cfg);
    let paths: Vec<_> = routes
        .iter()
        .map(|r| r.r#match.as_ref().unwrap().path_specifier.clone())
        .collect();
    assert_eq!(
        routes.len(),
        4,
        "port 9999 and other source labels are left out"
    );
    assert_eq!(routes[0].name, "r.m");
    assert_eq!(
        paths[0],
        Some(route_match::PathSpecifier::Path("/a".into()))
    );
    assert_eq!(
        paths[1],
        Some(route_match::PathSpecifier::Prefix("/b".into()))
    );
    assert!(
        matches!(&paths[2], Some(route_match::PathSpecifier::SafeRegex(r)) if r.regex == "/c.*")
    );
    assert_eq!(
        paths[3],
        Some(route_match::PathSpecifier::Prefix("/f".into()))
    );
    let m = routes[0].r#match.as_ref().unwrap();
    assert_eq!(m.case_sensitive, Some(proto::boolv(false)));
    let headers: Vec<(&str, bool)> = m
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.invert_match))
        .collect();
    assert_eq!(
        headers,
        [
            ("x-a", false),
            ("x-b", false),
            ("x-c", false),
            ("x-no", true),
            (":method", false)
        ]
    );
    assert!(matches!(
        &m.headers[1].header_match_specifier,
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(sm))
            if sm.match_pattern == Some(string_matcher::MatchPattern::Prefix("pre".into()))
    ));
    assert_eq!(
        m.headers[2].header_match_specifier,
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(true))
    );
    assert!(m.headers[3].treat_missing_header_as_empty);
    let qp: Vec<_> = m
        .query_parameters
        .iter()
        .map(|q| (q.name.as_str(), q.query_parameter_match_specifier.clone()))
        .collect();
    assert_eq!(
        qp[0],
        (
            "p",
            Some(query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true))
        ),
        "an empty match asks for presence"
    );
    assert_eq!(qp[1].0, "q");
}

#[test]
fn weights_subsets_and_catch_all_rules() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {host: api, subset: v1}
      weight: 90
    - destination: {host: api, subset: v2}
      weight: 10
    - destination: {host: api, subset: v3}
      weight: 0
  - name: never
    route:
    - destination: {host: api}
",
    );
    let cfg = web(&s);
    let routes = api_routes(&cfg);
    assert_eq!(routes.len(), 1, "nothing after a catch-all rule");
    let Some(route_action::ClusterSpecifier::WeightedClusters(w)) =
        &action(&routes[0]).cluster_specifier
    else {
        panic!("weighted")
    };
    let ws: Vec<(&str, u32)> = w
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        ws,
        [
            ("outbound|8080|v1|api.shop.svc.cluster.local", 90),
            ("outbound|8080|v2|api.shop.svc.cluster.local", 10)
        ]
    );
}

#[test]
fn virtual_service_that_leaves_no_route_falls_back_to_the_default() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - match: [{sourceLabels: {app: nobody}}]
    route: [{destination: {host: api, subset: v2}}]
",
    );
    let cfg = web(&s);
    assert_eq!(api_routes(&cfg)[0].name, "default");
}

#[test]
fn rewrites_redirects_and_direct_responses() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: x.example.com, scheme: https, port: 443, redirectCode: 308}
  - match: [{uri: {prefix: /here}}]
    redirect: {uri: /there, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {prefix: /bytes}}]
    directResponse: {status: 503, body: {bytes: aGk=}}
  - match: [{uri: {prefix: /re}}]
    rewrite: {uriRegexRewrite: {match: '^/re/(.*)$', rewrite: '/\1'}}
    route: [{destination: {host: api}}]
  - rewrite: {uri: /v2, authority: api.internal}
    route: [{destination: {host: api}}]
",
    );
    let cfg = web(&s);
    let r = api_routes(&cfg);
    let Some(route::Action::Redirect(rd)) = &r[0].action else {
        panic!()
    };
    assert_eq!(rd.host_redirect, "x.example.com");
    assert_eq!(rd.port_redirect, 0, "443 is https' default");
    assert_eq!(
        rd.response_code,
        redirect_action::RedirectResponseCode::PermanentRedirect as i32
    );
    assert_eq!(
        rd.scheme_rewrite_specifier,
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            "https".into()
        ))
    );
    let Some(route::Action::Redirect(rd)) = &r[1].action else {
        panic!()
    };
    assert_eq!(rd.port_redirect, 8080);
    let Some(route::Action::DirectResponse(d)) = &r[2].action else {
        panic!()
    };
    assert_eq!(d.status, 503);
    assert_eq!(
        d.body.as_ref().unwrap().specifier,
        Some(
            envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineBytes(
                b"hi".to_vec()
            )
        )
    );
    let re = action(&r[3]).regex_rewrite.as_ref().unwrap();
    assert_eq!(re.pattern.as_ref().unwrap().regex, "^/re/(.*)$");
    assert_eq!(re.substitution, "/\\1");
    let a = action(&r[4]);
    assert_eq!(a.prefix_rewrite, "/v2");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "api.internal".into()
        ))
    );
}

#[test]
fn retries_timeouts_and_mesh_default_retry() {
    let vs = r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - match: [{uri: {prefix: /a}}]
    timeout: 2.5s
    retries: {attempts: 5, perTryTimeout: 300ms, retryOn: 'gateway-error,429,503'}
    route: [{destination: {host: api}}]
  - match: [{uri: {prefix: /b}}]
    retries: {attempts: 0}
    route: [{destination: {host: api}}]
  - route: [{destination: {host: api}}]
";
    let cfg = web(&with_base(vs));
    let r = api_routes(&cfg);
    let a = action(&r[0]);
    assert_eq!(
        a.timeout,
        Some(proto::duration(std::time::Duration::from_millis(2500)))
    );
    let rp = a.retry_policy.as_ref().unwrap();
    assert_eq!(rp.num_retries.unwrap().value, 5);
    assert_eq!(rp.retry_on, "gateway-error,retriable-status-codes");
    assert_eq!(rp.retriable_status_codes, [429, 503]);
    assert_eq!(rp.per_try_timeout.unwrap().nanos, 300_000_000);
    assert!(action(&r[1]).retry_policy.is_none());

    let mesh = MeshConfig::from_json(serde_json::json!({
        "defaultHttpRetryPolicy": {"attempts": 1, "retryOn": "reset"}
    }));
    let cfg = web(&snap_with(&format!("{BASE}---\n{vs}"), mesh));
    let rp = action(&api_routes(&cfg)[2]).retry_policy.clone().unwrap();
    assert_eq!(rp.num_retries.unwrap().value, 1);
    assert_eq!(rp.retry_on, "reset");
}

#[test]
fn faults_mirrors_headers_and_cors() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - fault:
      delay: {fixedDelay: 5s, percentage: {value: 0.5}}
      abort: {httpStatus: 418, percentage: {value: 100}}
    mirror: {host: web}
    mirrorPercentage: {value: 33.3}
    headers:
      request:
        set: {x-a: '1', host: other.example.com}
        add: {x-b: '2'}
        remove: [x-c]
      response:
        add: {x-d: '3'}
    corsPolicy:
      allowOrigins: [{exact: 'https://a.example.com'}]
      allowMethods: [GET, PUT]
      maxAge: 1m
    route: [{destination: {host: api}}]
",
    );
    let cfg = web(&s);
    let r = &api_routes(&cfg)[0];
    let fault = HttpFault::decode(
        r.typed_per_filter_config["envoy.filters.http.fault"]
            .value
            .as_slice(),
    )
    .unwrap();
    let delay = fault.delay.unwrap();
    assert_eq!(delay.percentage.unwrap().numerator, 5000);
    let abort = fault.abort.unwrap();
    assert_eq!(
        abort.error_type,
        Some(fault_abort::ErrorType::HttpStatus(418))
    );
    assert_eq!(abort.percentage.unwrap().numerator, 1_000_000);
    let a = action(r);
    let m = &a.request_mirror_policies[0];
    assert_eq!(m.cluster, "outbound|80||web.shop.svc.cluster.local");
    assert_eq!(
        m.runtime_fraction
            .as_ref()
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        333_000
    );
    let keys: Vec<(&str, i32)> = r
        .request_headers_to_add
        .iter()
        .map(|h| (h.header.as_ref().unwrap().key.as_str(), h.append_action))
        .collect();
    assert_eq!(
        keys,
        [("x-a", 2), ("x-b", 0)],
        "set overwrites, add appends"
    );
    assert_eq!(r.request_headers_to_remove, ["x-c"]);
    assert_eq!(r.response_headers_to_add.len(), 1);
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "other.example.com".into()
        ))
    );
    let cors = CorsPolicy::decode(
        r.typed_per_filter_config["envoy.filters.http.cors"]
            .value
            .as_slice(),
    )
    .unwrap();
    assert_eq!(cors.allow_methods, "GET,PUT");
    assert_eq!(cors.max_age, "60");
    assert_eq!(cors.allow_origin_string_match.len(), 1);
}

#[test]
fn consistent_hash_adds_a_route_hash_policy() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy:
    loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}}}
",
    );
    let cfg = web(&s);
    let c = cluster(&cfg, "outbound|8080||api.shop.svc.cluster.local");
    assert_eq!(c.lb_policy, cluster::LbPolicy::RingHash as i32);
    let a = action(&api_routes(&cfg)[0]);
    assert_eq!(a.hash_policy.len(), 1);
    assert!(
        a.retry_policy
            .as_ref()
            .unwrap()
            .retry_host_predicate
            .is_empty(),
        "hashing keeps retries on the same host"
    );
}

#[test]
fn hosts_outside_the_registry_get_a_port_80_virtual_host() {
    let s = with_base(
        r"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy, namespace: shop}
spec:
  hosts: [legacy.example.com]
  http:
  - route: [{destination: {host: api}}]
",
    );
    let cfg = web(&s);
    let v = vhost(&cfg, "15001", "legacy.example.com:80");
    assert_eq!(v.domains, ["legacy.example.com", "legacy.example.com:80"]);
    assert_eq!(
        cluster_of(&v.routes[0]),
        "outbound|8080||api.shop.svc.cluster.local"
    );
}

// ---------------------------------------------------------------------------------------
// Gateways

const GATEWAY: &str = r"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: gw, namespace: edge}
spec: {address: 127.0.0.9, labels: {istio: ingress}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: ingress}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ['shop/www.example.com', 'edge/admin.example.com']
  - port: {number: 8081, name: http-redirect, protocol: HTTP}
    hosts: ['edge/*']
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: other, namespace: edge}
spec:
  selector: {istio: somebody-else}
  servers:
  - port: {number: 9000, name: http, protocol: HTTP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public, namespace: shop}
spec:
  hosts: [www.example.com]
  gateways: [edge/gw]
  http:
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sneaky, namespace: shop}
spec:
  hosts: [admin.example.com]
  gateways: [edge/gw]
  http:
  - route: [{destination: {host: api}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: shop}
spec:
  hosts: [api]
  http:
  - route: [{destination: {host: api, subset: v1}}]
";

#[test]
fn gateway_listeners_routes_and_host_namespaces() {
    let s = with_base(GATEWAY);
    let cfg = generate(&s, &proxy_of(&s, ProxyKind::Gateway, "edge", "gw"));
    let names: Vec<&str> = cfg.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["127.0.0.9_8080", "127.0.0.9_8081"]);
    let h = hcm(listener(&cfg, "127.0.0.9_8080"));
    assert!(matches!(
        &h.route_specifier,
        Some(http_connection_manager::RouteSpecifier::Rds(r)) if r.route_config_name == "http.8080"
    ));
    let rc = cfg.routes.iter().find(|r| r.name == "http.8080").unwrap();
    assert!(rc.ignore_port_in_host_matching);
    let hosts: Vec<&str> = rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    // admin.example.com is only admitted from namespace edge: shop's VirtualService is out.
    assert_eq!(hosts, ["www.example.com:8080"]);
    assert_eq!(
        cluster_of(&rc.virtual_hosts[0].routes[0]),
        "outbound|80||web.shop.svc.cluster.local"
    );
    // A port with no routable host answers 404; httpsRedirect asks for TLS.
    let rc = cfg.routes.iter().find(|r| r.name == "http.8081").unwrap();
    assert_eq!(rc.virtual_hosts[0].name, "blackhole:8081");
    // Sidecars do not get gateway-bound VirtualServices.
    let side = web(&s);
    assert!(
        !side.routes[0]
            .virtual_hosts
            .iter()
            .any(|v| v.name.starts_with("www."))
    );
}

#[test]
fn gateway_https_redirect() {
    let s = with_base(&GATEWAY.replace("hosts: ['edge/*']", "hosts: ['*']"));
    let cfg = generate(&s, &proxy_of(&s, ProxyKind::Gateway, "edge", "gw"));
    let rc = cfg.routes.iter().find(|r| r.name == "http.8081").unwrap();
    assert_eq!(
        rc.virtual_hosts[0].require_tls,
        envoy_types::pb::envoy::config::route::v3::virtual_host::TlsRequirementType::All as i32
    );
}
