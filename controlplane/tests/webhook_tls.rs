//! meshd in Kubernetes mode with its CA, against the fake API server: it writes the CA
//! root into the caBundle of every webhook of `istio-sidecar-injector` and
//! `istio-validator-istio-system` (a JSON merge patch), and serves the webhooks over TLS
//! with a certificate for `meshd.istio-system.svc` that a client trusting exactly that
//! caBundle accepts (as the API server would); an AdmissionReview POSTed over it is
//! answered, and plain HTTP on the port gets no answer. No live cluster is involved.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/support/fake_api.rs"]
mod fake_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use kube::{Client, Config};
use mesh_controlplane::ca::CaOptions;
use mesh_controlplane::kube_source::KubeClient;
use mesh_controlplane::{MeshTranslator, Meshd, Options};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value as J, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INJECTOR: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector";
const VALIDATOR: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-istio-system";

/// The webhook configurations as `meshctl manifest generate` writes them (the parts that
/// matter here), with no caBundle yet.
fn hook(name: &str, path: &str) -> J {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "meshd", "namespace": "istio-system", "path": path, "port": 15017}},
        "failurePolicy": "Fail",
        "sideEffects": "None",
    })
}

fn put_webhooks(fake: &FakeApi) {
    fake.put(
        INJECTOR,
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector"},
            "webhooks": [
                hook("rev.namespace.sidecar-injector.istio.io", "/inject"),
                hook("rev.object.sidecar-injector.istio.io", "/inject"),
                hook("namespace.sidecar-injector.istio.io", "/inject"),
                hook("object.sidecar-injector.istio.io", "/inject"),
            ],
        }),
    );
    fake.put(
        VALIDATOR,
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "istio-validator-istio-system"},
            "webhooks": [hook("rev.validation.istio.io", "/validate")],
        }),
    );
}

/// Every webhook's caBundle, decoded (None while one is unset).
fn bundles(fake: &FakeApi) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for path in [INJECTOR, VALIDATOR] {
        let obj = fake.object(path)?;
        for h in obj["webhooks"].as_array()? {
            let b = h.pointer("/clientConfig/caBundle")?.clone();
            let bytes: k8s_openapi::ByteString = serde_json::from_value(b).ok()?;
            out.push(String::from_utf8(bytes.0).ok()?);
        }
    }
    Some(out)
}

fn review(object: J) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "name": "reviews",
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": object,
        }
    })
    .to_string()
}

fn virtual_service(weight: i64) -> J {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews"}, "weight": weight}]}],
        },
    })
}

/// POSTs `body` over TLS to `addr` as `server_name`, trusting only `root_pem`.
async fn post_tls(addr: SocketAddr, server_name: &str, root_pem: &str, body: &str) -> (u16, J) {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let req = format!(
        "POST /validate?timeout=10s HTTP/1.1\r\nHost: {server_name}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let code: u16 = resp[9..12].parse().unwrap();
    let body = &resp[resp.find("\r\n\r\n").unwrap() + 4..];
    (code, serde_json::from_str(body).unwrap_or(J::Null))
}

#[test]
fn kube_meshd_sets_the_ca_bundle_and_serves_webhooks_over_tls() {
    let fake = FakeApi::start();
    fake.put(
        "/api/v1/namespaces/istio-system",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    );
    put_webhooks(&fake);
    let dir = std::env::temp_dir().join(format!("meshd-webhook-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::try_from(Config::new(
            format!("http://{}", fake.addr).parse().unwrap(),
        ))
        .unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut opts = Options::new(dir.join("unused"), any, any);
        opts.kube = Some(KubeClient(client));
        opts.webhook_address = Some(any);
        opts.ca = Some((CaOptions::new(dir.join("ca")), any));
        let meshd = Meshd::bind(opts, Arc::new(MeshTranslator)).await.unwrap();
        let webhook = meshd.webhook_address().unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(meshd.run(async {
            let _ = stop_rx.await;
        }));

        // The caBundle of all five webhooks becomes the CA's root.
        let start = Instant::now();
        let found = loop {
            if let Some(b) = bundles(&fake) {
                break b;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "caBundle not set: {:?} {:?}",
                fake.object(INJECTOR),
                fake.object(VALIDATOR)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let root = std::fs::read_to_string(dir.join("ca/root-cert.pem")).unwrap();
        assert_eq!(found.len(), 5);
        assert!(found.iter().all(|b| *b == root), "{found:?}");
        // Through a merge patch, leaving the rest of each webhook as it was.
        let patches: Vec<_> = fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path.contains("/admissionregistration.k8s.io/"))
            .collect();
        assert!(
            patches
                .iter()
                .all(|r| r.content_type == "application/merge-patch+json"),
            "{:?}",
            patches.iter().map(|r| &r.content_type).collect::<Vec<_>>()
        );
        assert_eq!(patches.len(), 2);
        let injector = fake.object(INJECTOR).unwrap();
        assert_eq!(injector["webhooks"][3]["failurePolicy"], "Fail");
        assert_eq!(
            injector["webhooks"][3]["clientConfig"]["service"]["path"],
            "/inject"
        );

        // A client trusting only that bundle reaches the webhooks by the Service's name.
        let (code, answer) = post_tls(
            webhook,
            "meshd.istio-system.svc",
            &found[0],
            &review(virtual_service(100)),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(
            answer["response"]["uid"],
            "0df28fbd-5f5f-11e8-bc74-36e6bb280816"
        );
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        let (_, answer) = post_tls(
            webhook,
            "meshd.istio-system.svc",
            &found[0],
            &review(virtual_service(-5)),
        )
        .await;
        assert_eq!(answer["response"]["allowed"], false, "{answer}");

        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut tcp = tokio::net::TcpStream::connect(webhook).await.unwrap();
        tcp.write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(
            !String::from_utf8_lossy(&buf).starts_with("HTTP/"),
            "plain HTTP answered"
        );

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
