//! meshd's admission webhooks over HTTP with real AdmissionReview JSON: a valid object is
//! allowed, an invalid one denied with the validator's field paths, DELETE allowed,
//! malformed requests refused with 400; `/inject` answers a Pod with the JSONPatch that injects
//! it, and admits unchanged what is already injected or opted out.
//! Plain HTTP here (TLS: `webhook_tls.rs`).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value as J, json};

struct Server {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn start() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    rt.spawn(mesh_controlplane::webhook::serve(listener, stop_rx));
    Server {
        addr,
        stop,
        rt: Some(rt),
    }
}

/// POSTs `body` and returns (status code, parsed JSON body).
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, J) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: meshd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code: u16 = resp[9..12].parse().unwrap();
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    (code, serde_json::from_str(body).unwrap_or(J::Null))
}

fn review(operation: &str, object: J) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "requestKind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "name": "reviews",
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "admin", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false,
        }
    })
    .to_string()
}

fn virtual_service(weights: [i64; 2]) -> J {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": weights[0]},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": weights[1]},
            ]}],
        },
    })
}

#[test]
fn validation_allows_valid_and_denies_invalid_objects() {
    let server = start();
    let (code, answer) = post(
        server.addr,
        "/validate",
        &review("CREATE", virtual_service([80, 20])),
    );
    assert_eq!(code, 200);
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(
        answer["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let (code, answer) = post(
        server.addr,
        "/validate",
        &review("UPDATE", virtual_service([-5, 0])),
    );
    assert_eq!(code, 200);
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("configuration is invalid: "),
        "{message}"
    );
    assert!(message.contains("weight -5 < 0"), "{message}");
    assert!(
        message.contains("spec.http[0].route[0].weight"),
        "{message}"
    );
    assert_eq!(answer["response"]["status"]["code"], 400);

    // An unknown kind in an Istio group is refused by the loader, as by meshctl validate.
    let mut bad_kind = virtual_service([100, 0]);
    bad_kind["kind"] = json!("VirtualServise");
    let (_, answer) = post(server.addr, "/validate", &review("CREATE", bad_kind));
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("VirtualServise"),
        "{answer}"
    );

    // DELETE carries no object.
    let (code, answer) = post(server.addr, "/validate", &review("DELETE", J::Null));
    assert_eq!(code, 200);
    assert_eq!(answer["response"]["allowed"], true);
}

#[test]
fn malformed_requests_are_refused() {
    let server = start();
    let (code, answer) = post(server.addr, "/validate", "{not json");
    assert_eq!(code, 400);
    assert!(answer["error"].as_str().unwrap().starts_with("not JSON"));
    let (code, answer) = post(
        server.addr,
        "/validate",
        &json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}).to_string(),
    );
    assert_eq!(code, 400);
    assert_eq!(answer["error"], "not an AdmissionReview: no request");
    let (code, _) = post(server.addr, "/mutate", "{}");
    assert_eq!(code, 404);
}

/// Applies a JSONPatch of top-level `add`/`replace`/`remove` ops (what `/inject` sends).
fn apply_patch(mut doc: J, response: &J) -> J {
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes: k8s_openapi::ByteString = serde_json::from_value(response["patch"].clone()).unwrap();
    let ops: Vec<J> = serde_json::from_slice(&bytes.0).unwrap();
    for op in ops {
        let key = op["path"].as_str().unwrap().strip_prefix('/').unwrap();
        assert!(!key.contains('/'), "not top-level: {op}");
        match op["op"].as_str().unwrap() {
            "add" | "replace" => doc[key] = op["value"].clone(),
            "remove" => {
                doc.as_object_mut().unwrap().remove(key);
            }
            other => panic!("unexpected op {other}"),
        }
    }
    doc
}

fn pod_review(pod: &J) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "a1b2",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": pod,
        }
    })
    .to_string()
}

fn names(list: &J) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn injection_patches_the_pod() {
    let server = start();
    // As a Deployment's ReplicaSet creates it: generateName, no namespace in the object.
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "reviews-v1-7d9f-", "labels": {"app": "reviews", "version": "v1"}},
        "spec": {"containers": [{"name": "app", "image": "reviews:1", "ports": [{"containerPort": 9080}],
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 9080}}}]}});
    let (code, answer) = post(server.addr, "/inject", &pod_review(&pod));
    assert_eq!(code, 200);
    assert_eq!(answer["response"]["uid"], "a1b2");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let injected = apply_patch(pod.clone(), &answer["response"]);
    let spec = &injected["spec"];
    let all: Vec<String> = [names(&spec["initContainers"]), names(&spec["containers"])].concat();
    assert!(all.contains(&"istio-proxy".to_owned()), "{all:?}");
    assert!(all.contains(&"istio-init".to_owned()), "{all:?}");
    assert!(all.contains(&"app".to_owned()), "{all:?}");
    let status = injected["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .unwrap();
    assert!(status.contains("istio-proxy"), "{status}");
    assert_eq!(injected["metadata"]["labels"]["app"], "reviews");
    // The app's HTTP probe now goes through the agent's status port.
    let app = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "app")
        .unwrap();
    assert_eq!(app["readinessProbe"]["httpGet"]["port"], 15020, "{app}");
    // The sidecar reaches meshd by its Service name.
    assert!(
        injected
            .to_string()
            .contains("meshd.istio-system.svc:15010")
    );

    // Already injected: admitted unchanged.
    let (_, again) = post(server.addr, "/inject", &pod_review(&injected));
    assert_eq!(again["response"]["allowed"], true);
    assert!(again["response"].get("patch").is_none(), "{again}");
    // Opted out: admitted unchanged.
    let mut off = pod.clone();
    off["metadata"]["annotations"] = json!({"sidecar.istio.io/inject": "false"});
    let (_, answer) = post(server.addr, "/inject", &pod_review(&off));
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none(), "{answer}");
    // A malformed capture annotation: denied with the field.
    let mut bad = pod;
    bad["metadata"]["annotations"] =
        json!({"traffic.sidecar.istio.io/excludeInboundPorts": "80,http"});
    let (_, answer) = post(server.addr, "/inject", &pod_review(&bad));
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("excludeInboundPorts"), "{message}");
}
