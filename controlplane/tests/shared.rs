//! meshd with mesh-core's translation serves every proxy exactly what `generate` gives it,
//! although proxies of one outbound key share their outbound part; and a change pushes
//! only to the proxies whose resources it changed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use mesh_controlplane::MeshTranslator;
use mesh_controlplane::xds::proxy_info;
use mesh_core::xds::cache::{ResourceKind, encode};
use mesh_core::xds::{generate, type_url};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

fn workloads() -> String {
    let mut y = String::new();
    for (ns, svc, port) in [("a", "api", 8080), ("a", "web", 80), ("b", "db", 9000)] {
        y.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: {ns}}}\nspec:\n  selector: {{app: {svc}}}\n  ports:\n  - {{name: http, port: {port}}}\n---\n"
        ));
    }
    for (ns, name, ip, labels) in [
        ("a", "api-v1", "127.0.1.1", "{app: api, version: v1}"),
        ("a", "api-v2", "127.0.1.2", "{app: api, version: v2}"),
        ("a", "web-1", "127.0.1.3", "{app: web, track: stable}"),
        ("a", "web-2", "127.0.1.4", "{app: web, track: stable}"),
        ("a", "web-3", "127.0.1.5", "{app: web, track: canary}"),
        ("b", "db-1", "127.0.2.1", "{app: db}"),
    ] {
        y.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{address: {ip}, labels: {labels}}}\n---\n"
        ));
    }
    y.push_str(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api, namespace: a}\nspec:\n  host: api\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
    );
    y
}

/// Canary web proxies go to `canary_subset`, the others to v1.
fn routing(canary_subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: api, namespace: a}}\nspec:\n  hosts: [api]\n  http:\n  - match:\n    - sourceLabels: {{track: canary}}\n    route:\n    - destination: {{host: api, subset: {canary_subset}}}\n  - route:\n    - destination: {{host: api, subset: v1}}\n"
    )
}

/// Namespace, workload, address, labels.
type ProxySpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PROXIES: [ProxySpec; 4] = [
    (
        "a",
        "web-1",
        "127.0.1.3",
        &[("app", "web"), ("track", "stable")],
    ),
    (
        "a",
        "web-2",
        "127.0.1.4",
        &[("app", "web"), ("track", "stable")],
    ),
    (
        "a",
        "web-3",
        "127.0.1.5",
        &[("app", "web"), ("track", "canary")],
    ),
    ("b", "db-1", "127.0.2.1", &[("app", "db")]),
];

fn node(ns: &str, name: &str, ip: &str, labels: &[(&str, &str)]) -> Node {
    let s = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    Node {
        id: format!("sidecar~{ip}~{name}.{ns}~{ns}.svc.cluster.local"),
        metadata: Some(Struct {
            fields: HashMap::from([
                ("NAMESPACE".into(), s(ns)),
                ("WORKLOAD_NAME".into(), s(name)),
                (
                    "LABELS".into(),
                    Value {
                        kind: Some(Kind::StructValue(Struct {
                            fields: labels.iter().map(|(k, v)| ((*k).into(), s(v))).collect(),
                        })),
                    },
                ),
            ]),
        }),
        ..Node::default()
    }
}

struct Proxy {
    node: Node,
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Proxy {
    async fn connect(addr: std::net::SocketAddr, node: Node) -> Proxy {
        let mut c = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let rx = c
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        Proxy { node, tx, rx }
    }

    async fn request(&self, url: &str, names: &[String], ack: Option<&DiscoveryResponse>) {
        let req = DiscoveryRequest {
            node: Some(self.node.clone()),
            type_url: url.into(),
            resource_names: names.to_vec(),
            version_info: ack.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: ack.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..DiscoveryRequest::default()
        };
        self.tx.send(req).await.unwrap();
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("no response in 10s")
            .expect("stream failed")
            .expect("stream ended")
    }

    async fn nothing_for(&mut self, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, self.rx.message()).await {
            panic!("{}: expected no response, got {m:?}", self.node.id);
        }
    }
}

/// Asserts a response carries, in order, the bytes `generate` gives the proxy for its type
/// (EDS and RDS: the names asked for).
fn assert_generated(dir: &Path, node: &Node, r: &DiscoveryResponse) {
    let version: u64 = r.version_info.parse().unwrap();
    let state = mesh_controlplane::source::build(dir, &MeshTranslator, version).unwrap();
    let info = proxy_info(node).unwrap();
    let expected = encode(&generate(&state.snapshot, &info));
    let kind = match r.type_url.as_str() {
        type_url::CLUSTER => ResourceKind::Cluster,
        type_url::ENDPOINT => ResourceKind::Endpoint,
        type_url::LISTENER => ResourceKind::Listener,
        type_url::ROUTE => ResourceKind::Route,
        other => panic!("type {other}"),
    };
    let want: Vec<&[u8]> = expected.list(kind).iter().map(|e| &e.value[..]).collect();
    let got: Vec<&[u8]> = r.resources.iter().map(|a| a.value.as_slice()).collect();
    assert!(!want.is_empty());
    assert!(
        got == want,
        "{}: {} differs from generate ({} vs {} resources)",
        node.id,
        r.type_url,
        got.len(),
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_get_what_generate_gives_and_only_changes_are_pushed() {
    let dir = TempDir::new("shared");
    dir.write("workloads.yaml", &workloads());
    dir.write("routing.yaml", &routing("v1"));
    let meshd = start_meshd(dir.path(), Arc::new(MeshTranslator)).await;

    let mut proxies = Vec::new();
    let mut routes = Vec::new();
    for (ns, name, ip, labels) in PROXIES {
        let mut p = Proxy::connect(meshd.xds, node(ns, name, ip, labels)).await;
        p.request(type_url::CLUSTER, &[], None).await;
        let cds = p.recv().await;
        assert_generated(dir.path(), &p.node, &cds);
        p.request(type_url::CLUSTER, &[], Some(&cds)).await;
        p.request(type_url::LISTENER, &[], None).await;
        let lds = p.recv().await;
        assert_generated(dir.path(), &p.node, &lds);
        p.request(type_url::LISTENER, &[], Some(&lds)).await;
        let names = vec!["15001".to_owned()];
        p.request(type_url::ROUTE, &names, None).await;
        let rds = p.recv().await;
        assert_generated(dir.path(), &p.node, &rds);
        p.request(type_url::ROUTE, &names, Some(&rds)).await;
        routes.push(rds);
        proxies.push(p);
    }
    // The stable web proxies share one outbound key: their routes are the same bytes; the
    // canary's (sourceLabels) and the other namespace's differ.
    assert_eq!(routes[0].resources, routes[1].resources);
    assert_ne!(routes[0].resources, routes[2].resources);
    assert_ne!(routes[0].resources, routes[3].resources);
    // Listeners are per proxy (the outbound listener binds the workload's address).
    let dump = get_json(meshd.debug, "/debug/config_dump?proxyID=web-1.a").await;
    let listeners = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.ListenersConfigDump")
        .unwrap();
    assert!(
        listeners["dynamic_listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "virtualOutbound"
                && l["active_state"]["listener"]["address"]["socket_address"]["address"]
                    == "127.0.1.3"),
        "{dump}"
    );

    // Canary traffic moves to v2: only the canary proxy's routes change.
    dir.write("routing.yaml", &routing("v2"));
    let rds = proxies[2].recv().await;
    assert_eq!(rds.type_url, type_url::ROUTE);
    assert_ne!(rds.version_info, routes[2].version_info);
    assert_generated(dir.path(), &proxies[2].node, &rds);
    assert_ne!(rds.resources, routes[2].resources);
    for p in &mut proxies {
        p.nothing_for(Duration::from_millis(500)).await;
    }
    meshd.stop().await.unwrap();
}
