//! meshd's admission webhooks over HTTP with real AdmissionReview JSON: a valid object is
//! allowed, an invalid one denied with the validator's field paths, DELETE allowed,
//! malformed requests refused with 400, and `/inject` admits unchanged with a warning.
//! Plain HTTP: meshd has no TLS for the webhooks yet.
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
fn malformed_requests_and_injection() {
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

    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                     "spec": {"containers": [{"name": "app", "image": "app"}]}});
    let (code, answer) = post(server.addr, "/inject", &review("CREATE", pod));
    assert_eq!(code, 200);
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("meshctl kube-inject")
    );
}
