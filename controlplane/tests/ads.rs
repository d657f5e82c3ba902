//! The ADS protocol, driven by a gRPC client in the test (no Envoy): state-of-the-world
//! responses by type, ACK and NACK bookkeeping, stale nonces, EDS/RDS subscriptions,
//! pushes of only the changed types on a config change, the debug API, and shutdown.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mesh_core::xds::type_url;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const NODE_ID: &str = "sidecar~127.0.0.2~web.default~default.svc.cluster.local";

fn node() -> Node {
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    Node {
        id: NODE_ID.into(),
        metadata: Some(Struct {
            fields: HashMap::from([
                ("NAMESPACE".into(), s("default")),
                ("WORKLOAD_NAME".into(), s("web")),
            ]),
        }),
        ..Node::default()
    }
}

struct Client {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let mut c = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let rx = c
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Client { tx, rx }
    }

    async fn send(&self, req: DiscoveryRequest) {
        self.tx.send(req).await.unwrap();
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(5), self.rx.message())
            .await
            .expect("no response in 5s")
            .expect("stream failed")
            .expect("stream ended")
    }

    async fn nothing_for(&mut self, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, self.rx.message()).await {
            panic!("expected no response, got {m:?}");
        }
    }

    /// Requests a type for the first time and returns the response.
    async fn subscribe(&mut self, url: &str, names: &[&str]) -> DiscoveryResponse {
        self.send(DiscoveryRequest {
            node: Some(node()),
            type_url: url.into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..DiscoveryRequest::default()
        })
        .await;
        let r = self.recv().await;
        assert_eq!(r.type_url, url);
        r
    }

    async fn ack(&self, r: &DiscoveryResponse, names: &[&str]) {
        self.send(DiscoveryRequest {
            type_url: r.type_url.clone(),
            version_info: r.version_info.clone(),
            response_nonce: r.nonce.clone(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            ..DiscoveryRequest::default()
        })
        .await;
    }
}

fn names<M: Message + Default>(r: &DiscoveryResponse, name: impl Fn(&M) -> String) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| name(&M::decode(a.value.as_slice()).unwrap()))
        .collect()
}

fn cluster_names(r: &DiscoveryResponse) -> Vec<String> {
    names::<Cluster>(r, |c| c.name.clone())
}

const CATALOG: &str = "outbound|7070||catalog.shop";
const ORDERS: &str = "outbound|7070||orders.shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ads_state_of_the_world() {
    let dir = TempDir::new("ads");
    dir.write(
        "catalog.yaml",
        &service_entry("catalog", "catalog.shop", 7070, &["127.0.0.10"]),
    );
    let meshd = start_meshd(dir.path(), Arc::new(TestTranslator)).await;
    let mut c = Client::connect(meshd.xds).await;

    // CDS, EDS, LDS, RDS in Envoy's order, each ACKed.
    let cds = c.subscribe(type_url::CLUSTER, &[]).await;
    assert_eq!(cds.version_info, "1");
    assert_eq!(cluster_names(&cds), [CATALOG]);
    let eds = c.subscribe(type_url::ENDPOINT, &[CATALOG]).await;
    assert_eq!(
        names::<ClusterLoadAssignment>(&eds, |c| c.cluster_name.clone()),
        [CATALOG]
    );
    c.ack(&cds, &[]).await;
    c.ack(&eds, &[CATALOG]).await;
    let lds = c.subscribe(type_url::LISTENER, &[]).await;
    assert_eq!(lds.resources.len(), 1);
    let rds = c.subscribe(type_url::ROUTE, &["7070"]).await;
    assert_eq!(
        names::<RouteConfiguration>(&rds, |r| r.name.clone()),
        ["7070"]
    );
    c.ack(&lds, &[]).await;
    c.ack(&rds, &["7070"]).await;
    let entry = eventually("all types synced", Duration::from_secs(5), || async {
        syncz_entry(meshd.debug).await.filter(all_synced)
    })
    .await;
    assert_eq!(entry["proxy"], NODE_ID);
    assert_eq!(entry["namespace"], "default");
    assert_eq!(entry["workload"], "web");
    assert_eq!(
        entry["types"]["eds"]["subscribed"],
        serde_json::json!([CATALOG])
    );
    assert_eq!(entry["types"]["cds"]["versionAcked"], "1");
    assert_eq!(entry["types"]["cds"]["nonceAcked"], cds.nonce.as_str());

    // A new service on the same port: clusters and routes change; endpoints (not asked for
    // yet) and listeners do not, so only CDS then RDS are pushed.
    let t0 = Instant::now();
    dir.write(
        "orders.yaml",
        &service_entry("orders", "orders.shop", 7070, &["127.0.0.11"]),
    );
    let cds2 = c.recv().await;
    assert_eq!(cds2.type_url, type_url::CLUSTER);
    assert_eq!(cds2.version_info, "2");
    assert_eq!(cluster_names(&cds2), [CATALOG, ORDERS]);
    let rds2 = c.recv().await;
    assert_eq!(rds2.type_url, type_url::ROUTE);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "push took {:?}",
        t0.elapsed()
    );
    c.nothing_for(Duration::from_millis(300)).await;
    c.ack(&cds2, &[]).await;
    c.ack(&rds2, &["7070"]).await;

    // A request with a stale nonce is ignored, even with new names.
    c.send(DiscoveryRequest {
        type_url: type_url::ENDPOINT.into(),
        response_nonce: "stale".into(),
        resource_names: vec![CATALOG.into(), ORDERS.into()],
        ..DiscoveryRequest::default()
    })
    .await;
    c.nothing_for(Duration::from_millis(300)).await;
    // With the current nonce, the new names are answered.
    c.ack(&eds, &[CATALOG, ORDERS]).await;
    let eds2 = c.recv().await;
    assert_eq!(eds2.type_url, type_url::ENDPOINT);
    assert_eq!(eds2.resources.len(), 2);
    c.ack(&eds2, &[CATALOG, ORDERS]).await;

    // A NACK is recorded with its detail and not answered.
    c.send(DiscoveryRequest {
        type_url: type_url::LISTENER.into(),
        version_info: lds.version_info.clone(),
        response_nonce: lds.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "listener rejected: test".into(),
            details: vec![],
        }),
        ..DiscoveryRequest::default()
    })
    .await;
    c.nothing_for(Duration::from_millis(200)).await;
    let entry = eventually("NACK recorded", Duration::from_secs(5), || async {
        syncz_entry(meshd.debug)
            .await
            .filter(|e| e["types"]["lds"]["state"] == "NACKED")
    })
    .await;
    let nack = &entry["types"]["lds"]["lastNack"];
    assert_eq!(nack["detail"], "listener rejected: test");
    assert_eq!(nack["version"], "1");
    assert_eq!(nack["nonce"], lds.nonce.as_str());
    let (_, metrics) = http_get(meshd.debug, "/metrics").await;
    assert!(
        metrics.contains("meshd_xds_nacks_total{type=\"lds\"} 1"),
        "{metrics}"
    );

    // Endpoints change only: only EDS is pushed.
    dir.write(
        "orders.yaml",
        &service_entry("orders", "orders.shop", 7070, &["127.0.0.11", "127.0.0.12"]),
    );
    let eds3 = c.recv().await;
    assert_eq!(eds3.type_url, type_url::ENDPOINT);
    assert_eq!(eds3.version_info, "3");
    c.nothing_for(Duration::from_millis(300)).await;
    c.ack(&eds3, &[CATALOG, ORDERS]).await;

    // The debug API: the config dump in Envoy's shape, at the versions sent.
    let dump = get_json(
        meshd.debug,
        &format!("/debug/config_dump?proxyID={}", NODE_ID.replace('~', "%7E")),
    )
    .await;
    let section = |dump: &serde_json::Value, kind: &str| {
        dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["@type"] == format!("type.googleapis.com/envoy.admin.v3.{kind}"))
            .cloned()
    };
    let names = |list: &serde_json::Value, pointer: &str| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|item| item.pointer(pointer).unwrap().as_str().unwrap().to_owned())
            .collect()
    };
    let clusters = section(&dump, "ClustersConfigDump").unwrap();
    // Clusters were last sent at version 2 (version 3 changed endpoints only).
    assert_eq!(clusters["version_info"], cds2.version_info.as_str());
    assert_eq!(
        names(&clusters["dynamic_active_clusters"], "/cluster/name"),
        [CATALOG, ORDERS]
    );
    let catalog = &clusters["dynamic_active_clusters"][0];
    assert_eq!(catalog["cluster"]["@type"], type_url::CLUSTER);
    assert!(
        catalog["cluster"]["connect_timeout"]
            .as_str()
            .unwrap()
            .ends_with('s')
    );
    assert!(catalog["last_updated"].as_str().unwrap().ends_with('Z'));
    let listeners = section(&dump, "ListenersConfigDump").unwrap();
    assert_eq!(
        names(&listeners["dynamic_listeners"], "/name"),
        ["0.0.0.0_7070"]
    );
    let routes = section(&dump, "RoutesConfigDump").unwrap();
    assert_eq!(
        names(&routes["dynamic_route_configs"], "/route_config/name"),
        ["7070"]
    );
    // Endpoints only when asked for, as Envoy.
    assert!(section(&dump, "EndpointsConfigDump").is_none());
    let with_eds = get_json(
        meshd.debug,
        "/debug/config_dump?proxyID=web.default&include_eds",
    )
    .await;
    let endpoints = section(&with_eds, "EndpointsConfigDump").unwrap();
    assert_eq!(
        endpoints["dynamic_endpoint_configs"][0]["version_info"],
        "3"
    );
    assert_eq!(
        names(
            &endpoints["dynamic_endpoint_configs"],
            "/endpoint_config/cluster_name"
        ),
        [CATALOG, ORDERS]
    );
    let offline = get_json(
        meshd.debug,
        "/debug/config_dump?proxyID=sidecar~127.0.0.9~other.default~default.svc.cluster.local",
    )
    .await;
    let clusters = section(&offline, "ClustersConfigDump").unwrap();
    assert_eq!(
        names(&clusters["dynamic_active_clusters"], "/cluster/name"),
        [CATALOG, ORDERS]
    );
    // Generated on the fly: never sent, so no version.
    assert!(clusters.get("version_info").is_none());
    let (status, _) = http_get(meshd.debug, "/debug/config_dump").await;
    assert_eq!(status, 400);
    let (status, _) = http_get(meshd.debug, "/debug/config_dump?proxyID=nobody").await;
    assert_eq!(status, 404);
    // Every loaded object, with its origin, for `meshctl describe --controlplane`.
    let loaded = get_json(meshd.debug, "/debug/resourcesz").await;
    assert_eq!(loaded["version"], 3);
    let orders = loaded["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"]["metadata"]["name"] == "orders")
        .unwrap();
    assert_eq!(orders["object"]["kind"], "ServiceEntry");
    assert!(
        orders["origin"]
            .as_str()
            .unwrap()
            .ends_with("orders.yaml:1")
    );
    assert_eq!(
        orders["object"]["spec"]["endpoints"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let registry = get_json(meshd.debug, "/debug/registryz").await;
    let hosts: Vec<&str> = registry["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["catalog.shop", "orders.shop"]);
    let (status, body) = http_get(meshd.debug, "/ready").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (_, metrics) = http_get(meshd.debug, "/metrics").await;
    for want in [
        "meshd_xds_connected_proxies 1",
        "meshd_xds_pushes_total{type=\"cds\"} 2",
        "meshd_xds_pushes_total{type=\"eds\"} 3",
        "meshd_xds_pushes_total{type=\"rds\"} 2",
        "meshd_xds_push_latency_seconds_count 3",
        "meshd_config_version 3",
    ] {
        assert!(metrics.contains(want), "{want} missing from\n{metrics}");
    }

    // Shutdown closes the stream and meshd returns cleanly.
    meshd.stop().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), c.rx.message())
        .await
        .expect("stream still open after shutdown");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_proxies_get_everything() {
    let dir = TempDir::new("reconnect");
    dir.write(
        "catalog.yaml",
        &service_entry("catalog", "catalog.shop", 7070, &["127.0.0.10"]),
    );
    let meshd = start_meshd(dir.path(), Arc::new(TestTranslator)).await;
    let mut c = Client::connect(meshd.xds).await;
    // As Envoy does after losing its stream: the version and nonce of the old stream.
    c.send(DiscoveryRequest {
        node: Some(node()),
        type_url: type_url::CLUSTER.into(),
        version_info: "41".into(),
        response_nonce: "977".into(),
        ..DiscoveryRequest::default()
    })
    .await;
    let cds = c.recv().await;
    assert_eq!(cluster_names(&cds), [CATALOG]);
    c.send(DiscoveryRequest {
        type_url: type_url::ROUTE.into(),
        version_info: "41".into(),
        response_nonce: "978".into(),
        resource_names: vec!["7070".into()],
        ..DiscoveryRequest::default()
    })
    .await;
    let rds = c.recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert_eq!(rds.resources.len(), 1);
    meshd.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_is_skipped_and_listed() {
    let dir = TempDir::new("configz");
    dir.write(
        "catalog.yaml",
        &service_entry("catalog", "catalog.shop", 7070, &["127.0.0.10"]),
    );
    let refused = service_entry("refused", "refused.shop", 7071, &["127.0.0.10"]).replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    test.meshctl.dev/reject: conflicts with catalog\n",
    );
    dir.write("refused.yaml", &refused);
    dir.write("broken.yaml", "apiVersion: v1\nkind: [unclosed\n");
    let meshd = start_meshd(dir.path(), Arc::new(TestTranslator)).await;
    let configz = get_json(meshd.debug, "/debug/configz").await;
    assert_eq!(configz["version"], 1);
    let served: Vec<&str> = configz["served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["object"].as_str().unwrap())
        .collect();
    assert_eq!(served, ["ServiceEntry default/catalog"]);
    let rejected = configz["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected.iter().any(|r| r["object"].is_null()
        && r["origin"].as_str().unwrap().contains("broken.yaml")));
    let r = rejected
        .iter()
        .find(|r| r["object"] == "ServiceEntry default/refused")
        .unwrap();
    assert_eq!(r["reason"], "conflicts with catalog");
    assert!(
        r["origin"].as_str().unwrap().ends_with("refused.yaml:1"),
        "{r}"
    );
    // Only the valid service is served.
    let mut c = Client::connect(meshd.xds).await;
    let cds = c.subscribe(type_url::CLUSTER, &[]).await;
    assert_eq!(cluster_names(&cds), [CATALOG]);
    // Endpoints asked for that the config lacks come back empty rather than not at all.
    let eds = c
        .subscribe(type_url::ENDPOINT, &[CATALOG, "outbound|1||missing.shop"])
        .await;
    let got: Vec<(String, usize)> = eds
        .resources
        .iter()
        .map(|a| {
            let cla = ClusterLoadAssignment::decode(a.value.as_slice()).unwrap();
            (
                cla.cluster_name,
                cla.endpoints.iter().map(|l| l.lb_endpoints.len()).sum(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("outbound|1||missing.shop".to_owned(), 0),
            (CATALOG.to_owned(), 1),
        ]
    );
    let (_, metrics) = http_get(meshd.debug, "/metrics").await;
    assert!(
        metrics.contains("meshd_config_rejected_objects 2"),
        "{metrics}"
    );
    meshd.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_nodes_and_delta_are_refused() {
    let dir = TempDir::new("refuse");
    let meshd = start_meshd(dir.path(), Arc::new(TestTranslator)).await;
    let mut c = Client::connect(meshd.xds).await;
    c.send(DiscoveryRequest {
        node: Some(Node {
            id: "not-a-node-id".into(),
            ..Node::default()
        }),
        type_url: type_url::CLUSTER.into(),
        ..DiscoveryRequest::default()
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(5), c.rx.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("not-a-node-id"), "{status:?}");

    let mut c = Client::connect(meshd.xds).await;
    c.send(DiscoveryRequest {
        type_url: type_url::CLUSTER.into(),
        ..DiscoveryRequest::default()
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(5), c.rx.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", meshd.xds))
        .await
        .unwrap();
    let (_tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(1);
    let err = client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let syncz = get_json(meshd.debug, "/debug/syncz").await;
    assert_eq!(syncz, serde_json::json!([]));
    meshd.stop().await.unwrap();
}

#[tokio::test]
async fn startup_errors() {
    let dir = TempDir::new("startup");
    let opts = mesh_controlplane::Options::new(
        dir.path().to_owned(),
        "0.0.0.0:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let err = mesh_controlplane::Meshd::bind(opts, Arc::new(TestTranslator))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    let opts = mesh_controlplane::Options::new(
        dir.path().join("missing"),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
    );
    let err = mesh_controlplane::Meshd::bind(opts, Arc::new(TestTranslator))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("missing"), "{err}");
}

/// Many proxies, many services: how long a change takes to reach every proxy (ACKed).
/// Ignored by default (a measurement, not a check): `cargo test -p mesh-controlplane --test
/// ads -- --ignored --nocapture scale`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn scale_smoke() {
    let services: usize = std::env::var("MESHD_SCALE_SERVICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let proxies: usize = std::env::var("MESHD_SCALE_PROXIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = TempDir::new("scale");
    let mut yaml = String::new();
    for i in 0..services {
        let eps: Vec<String> = (0..10)
            .map(|e| format!("127.1.{}.{}", i % 250, e + 1))
            .collect();
        let eps: Vec<&str> = eps.iter().map(String::as_str).collect();
        yaml.push_str(&service_entry(
            &format!("svc{i}"),
            &format!("svc{i}.shop"),
            8000,
            &eps,
        ));
        yaml.push_str("---\n");
    }
    dir.write("services.yaml", &yaml);
    let meshd = start_meshd(dir.path(), Arc::new(TestTranslator)).await;
    let (done_tx, mut done_rx) = mpsc::channel::<(usize, String)>(proxies * 4);
    let t0 = Instant::now();
    for p in 0..proxies {
        let addr = meshd.xds;
        let done = done_tx.clone();
        tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut n = node();
            n.id = format!("sidecar~127.0.0.2~p{p}.default~default.svc.cluster.local");
            c.send(DiscoveryRequest {
                node: Some(n),
                type_url: type_url::CLUSTER.into(),
                ..DiscoveryRequest::default()
            })
            .await;
            c.send(DiscoveryRequest {
                type_url: type_url::LISTENER.into(),
                ..DiscoveryRequest::default()
            })
            .await;
            let mut eds_subscribed = false;
            let mut rds_subscribed = false;
            loop {
                let Ok(Some(r)) = c.rx.message().await else {
                    return;
                };
                // Names are known; decoding every response would measure the client.
                let names: Vec<String> =
                    if r.type_url == type_url::CLUSTER || r.type_url == type_url::ENDPOINT {
                        (0..services)
                            .map(|i| format!("outbound|8000||svc{i}.shop"))
                            .collect()
                    } else if r.type_url == type_url::ROUTE {
                        vec!["8000".into()]
                    } else {
                        vec![]
                    };
                let names_ref: Vec<&str> = names.iter().map(String::as_str).collect();
                if r.type_url == type_url::CLUSTER {
                    c.ack(&r, &[]).await;
                    let req = DiscoveryRequest {
                        type_url: type_url::ENDPOINT.into(),
                        resource_names: names.clone(),
                        ..DiscoveryRequest::default()
                    };
                    if !eds_subscribed {
                        eds_subscribed = true;
                        c.send(req).await;
                    }
                } else if r.type_url == type_url::LISTENER {
                    c.ack(&r, &[]).await;
                    if !rds_subscribed {
                        rds_subscribed = true;
                        c.send(DiscoveryRequest {
                            type_url: type_url::ROUTE.into(),
                            resource_names: vec!["8000".into()],
                            ..DiscoveryRequest::default()
                        })
                        .await;
                    }
                } else {
                    c.ack(&r, &names_ref).await;
                }
                let _ = done
                    .send((p, format!("{}@{}", r.type_url, r.version_info)))
                    .await;
            }
        });
    }
    // Wait for every proxy to have all four types at version 1.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < proxies * 4 {
        let (p, what) = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
            .await
            .expect("initial sync took over 120 s")
            .unwrap();
        seen.insert((p, what));
    }
    eprintln!(
        "{proxies} proxies x {services} services ({} endpoints): initial sync {:?}",
        services * 10,
        t0.elapsed()
    );
    // One endpoint changes: every proxy gets (and ACKs) new endpoints.
    let t0 = Instant::now();
    dir.write(
        "services.yaml",
        &yaml.replacen("127.1.0.1", "127.1.0.99", 1),
    );
    let mut got = std::collections::HashSet::new();
    while got.len() < proxies {
        let (p, what) = tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
            .await
            .expect("push took over 120 s")
            .unwrap();
        if what == format!("{}@2", type_url::ENDPOINT) {
            got.insert(p);
        }
    }
    eprintln!(
        "endpoint change pushed to {proxies} proxies in {:?}",
        t0.elapsed()
    );
    let (_, metrics) = http_get(meshd.debug, "/metrics").await;
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("meshd_xds_push_latency_seconds_"))
    {
        eprintln!("{l}");
    }
    meshd.stop().await.unwrap();
}
