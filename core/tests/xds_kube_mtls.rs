//! Kubernetes-mode mutual TLS (`core/tests/xds/kube-mtls`): `virtualInbound`'s per-port
//! PeerAuthentication filter chains (STRICT, PERMISSIVE and DISABLE ports of one Pod), auto
//! mTLS on the outbound clusters with Istio's mesh ALPN, the SDS secret names of local mode;
//! golden files of a client and a server, and `envoy --mode validate` on every proxy.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Address, Node, Pipe, address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::xds::{ProxyConfig, ProxyInfo, ProxyKind, Snapshot, generate};
use prost::Message;
use xds_support::*;

const KUBE_MTLS: &[&str] = &["core/tests/xds/kube-mtls"];

fn mtls_proxy(snap: &Snapshot, name: &str) -> ProxyInfo {
    let mut p = proxy(snap, ProxyKind::Sidecar, "shop", name);
    p.mtls = true;
    p
}

fn virtual_inbound(cfg: &ProxyConfig) -> &Listener {
    cfg.listeners
        .iter()
        .find(|l| l.name == "virtualInbound")
        .expect("virtualInbound")
}

/// `(name, destination port, transport protocol, ALPN, has TLS)` of each chain.
fn chains(l: &Listener) -> Vec<(String, u32, String, Vec<String>, bool)> {
    l.filter_chains
        .iter()
        .map(|c| {
            let m = c.filter_chain_match.clone().unwrap_or_default();
            (
                c.name.clone(),
                m.destination_port.map(|p| p.value).unwrap_or(0),
                m.transport_protocol,
                m.application_protocols,
                c.transport_socket.is_some(),
            )
        })
        .collect()
}

/// The cluster a `tcp_proxy` network filter sends to.
fn tcp_proxy_cluster(f: &Filter) -> String {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("{} has no typed config", f.name);
    };
    match TcpProxy::decode(any.value.as_slice())
        .expect("a tcp_proxy")
        .cluster_specifier
    {
        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("tcp_proxy sends to {other:?}"),
    }
}

#[test]
fn virtual_inbound_has_a_chain_set_per_port_mode() {
    let snap = snapshot(KUBE_MTLS);
    assert!(snap.rejected.is_empty(), "{:?}", snap.rejected);
    let cfg = generate(&snap, &mtls_proxy(&snap, "catalog-v1-5f6d7c-abcde"));
    let l = virtual_inbound(&cfg);
    let names: Vec<&str> = l.listener_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.listener.original_dst",
            "envoy.filters.listener.tls_inspector"
        ]
    );
    let mesh_alpn: Vec<String> = mesh_core::xds::mtls::MESH_ALPN
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        chains(l),
        [
            // DISABLE: the port's filters only.
            (s("inbound|5000||"), 5000, s(""), vec![], false),
            // STRICT: TLS is mTLS, anything else is closed.
            (s("inbound|9080||-mtls"), 9080, s("tls"), vec![], true),
            (s("inbound|9080||-refused"), 9080, s(""), vec![], false),
            // PERMISSIVE: mesh ALPN is mTLS, plaintext served, the app's own TLS passed on.
            (s("inbound|9090||-mtls"), 9090, s("tls"), mesh_alpn, true),
            (
                s("inbound|9090||-plaintext"),
                9090,
                s("raw_buffer"),
                vec![],
                false
            ),
            (
                s("inbound|9090||-passthrough"),
                9090,
                s("tls"),
                vec![],
                false
            ),
            // Any other port under the workload's STRICT: mTLS passes through to the app,
            // anything else is closed.
            (s("InboundPassthrough-mtls"), 0, s("tls"), vec![], true),
            (s("InboundPassthrough-refused"), 0, s(""), vec![], false),
        ]
    );
    let cluster_of = |chain: &str| {
        let c = l.filter_chains.iter().find(|c| c.name == chain).unwrap();
        tcp_proxy_cluster(&c.filters[0])
    };
    assert_eq!(
        cluster_of("InboundPassthrough-mtls"),
        "InboundPassthroughCluster"
    );
    assert_eq!(cluster_of("InboundPassthrough-refused"), "BlackHoleCluster");
    // Without a certificate the proxy keeps plaintext chains, one per port.
    let mut plain = mtls_proxy(&snap, "catalog-v1-5f6d7c-abcde");
    plain.mtls = false;
    let cfg = generate(&snap, &plain);
    let l = virtual_inbound(&cfg);
    assert_eq!(l.listener_filters.len(), 1);
    assert!(chains(l).iter().all(|c| c.2.is_empty() && !c.4));
    assert_eq!(chains(l).len(), 3);
}

fn upstream_tls(cfg: &ProxyConfig, name: &str) -> Option<UpstreamTlsContext> {
    let c = cfg
        .clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"));
    let ts = c.transport_socket.as_ref()?;
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        return None;
    };
    Some(UpstreamTlsContext::decode(any.value.as_slice()).unwrap())
}

#[test]
fn outbound_clusters_get_auto_mtls_with_the_mesh_alpn() {
    let snap = snapshot(KUBE_MTLS);
    let cfg = generate(&snap, &mtls_proxy(&snap, "frontend-7d4b9c-abcde"));
    let http = upstream_tls(&cfg, "outbound|9080||catalog.shop.svc.cluster.local")
        .expect("auto mTLS to STRICT catalog");
    assert_eq!(http.sni, "outbound_.9080_._.catalog.shop.svc.cluster.local");
    let common = http.common_tls_context.unwrap();
    assert_eq!(common.alpn_protocols, ["istio-http/1.1", "istio"]);
    assert_eq!(common.tls_certificate_sds_secret_configs[0].name, "default");
    // PERMISSIVE takes mTLS too; DISABLE and a Pod without a sidecar get plaintext.
    assert!(upstream_tls(&cfg, "outbound|9090||catalog.shop.svc.cluster.local").is_some());
    assert!(upstream_tls(&cfg, "outbound|5000||catalog.shop.svc.cluster.local").is_none());
    assert!(upstream_tls(&cfg, "outbound|8080||legacy.shop.svc.cluster.local").is_none());
}

#[test]
fn kube_mtls_frontend() {
    let snap = snapshot(KUBE_MTLS);
    let cfg = generate(&snap, &mtls_proxy(&snap, "frontend-7d4b9c-abcde"));
    assert_golden("kube-mtls-frontend.txt", &render(&cfg));
}

#[test]
fn kube_mtls_catalog() {
    let snap = snapshot(KUBE_MTLS);
    let cfg = generate(&snap, &mtls_proxy(&snap, "catalog-v1-5f6d7c-abcde"));
    assert_golden("kube-mtls-catalog.txt", &render(&cfg));
}

/// The bootstrap's SDS cluster, as mesh-proxy's agent writes it (HTTP/2 on a Unix socket).
fn sds_cluster() -> Cluster {
    let mut c = Cluster {
        name: mesh_core::xds::mtls::SDS_CLUSTER.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: mesh_core::xds::mtls::SDS_CLUSTER.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(Address {
                            address: Some(address::Address::Pipe(Pipe {
                                path: "/tmp/mesh-validate-sds.sock".to_owned(),
                                ..Default::default()
                            })),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                        Default::default(),
                    ),
                ),
            },
        )),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
        Any {
            type_url: <HttpProtocolOptions as prost::Name>::type_url(),
            value: http2.encode_to_vec(),
        },
    );
    c
}

/// `envoy --mode validate` on the config with the SDS cluster and a node (SDS needs the
/// node's id and cluster); `Err` carries Envoy's output.
fn validate_with_sds(envoy: &std::path::Path, cfg: &ProxyConfig, id: &str) -> Result<(), String> {
    let mut cfg = cfg.clone();
    cfg.clusters.push(sds_cluster());
    let mut bootstrap = to_bootstrap(&cfg);
    bootstrap.node = Some(Node {
        id: id.to_owned(),
        cluster: "catalog.shop".to_owned(),
        ..Default::default()
    });
    let dir = std::env::temp_dir().join(format!("mesh-kube-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.pb", id.replace(['/', '~', ' '], "_")));
    std::fs::write(&file, bootstrap.encode_to_vec()).unwrap();
    let out = std::process::Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn envoy_accepts_every_kubernetes_mtls_proxy() {
    let Some(envoy) = envoy_bin() else { return };
    let snap = snapshot(KUBE_MTLS);
    let mut failures = Vec::new();
    for w in &snap.registry.workloads {
        let p = mtls_proxy(&snap, &w.name);
        let cfg = generate(&snap, &p);
        if let Err(e) = validate_with_sds(&envoy, &cfg, &p.id) {
            failures.push(format!("{}:\n{e}", p.id));
        }
    }
    assert_eq!(snap.registry.workloads.len(), 3);
    assert!(
        failures.is_empty(),
        "Envoy rejected:\n{}",
        failures.join("\n\n")
    );
}
