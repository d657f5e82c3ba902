//! meshd's injection webhook in Kubernetes mode follows the cluster's
//! `istio-sidecar-injector` ConfigMap (against the fake API server; no live cluster): the
//! sidecar's image comes from its `values` (hub, tag, image), an edit reaches the next Pod
//! without a restart, `policy: disabled` in its `config` leaves Pods that do not ask for a
//! sidecar alone, and without the ConfigMap the defaults apply.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/support/fake_api.rs"]
mod fake_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use mesh_controlplane::ca::CaOptions;
use mesh_controlplane::kube_source::KubeClient;
use mesh_controlplane::{MeshTranslator, Meshd, Options};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value as J, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONFIGMAP: &str = "/api/v1/namespaces/istio-system/configmaps/istio-sidecar-injector";

fn injector_configmap(hub: &str, tag: &str, policy: &str) -> J {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
        "data": {
            "values": json!({"global": {"hub": hub, "tag": tag, "proxy": {"image": "mesh-proxy"}}}).to_string(),
            "config": format!("policy: {policy}\n"),
        },
    })
}

fn pod_review(uid: &str) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
        }
    })
    .to_string()
}

/// POSTs an AdmissionReview to `/inject` over TLS, trusting `root_pem`.
async fn inject(addr: SocketAddr, root_pem: &str, body: &str) -> J {
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
    let name = ServerName::try_from("meshd.istio-system.svc").unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let req = format!(
        "POST /inject HTTP/1.1\r\nHost: meshd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    serde_json::from_str(&resp[resp.find("\r\n\r\n").unwrap() + 4..]).unwrap()
}

/// The sidecar image the answer's patch sets (None: the Pod was admitted unchanged).
fn sidecar_image(answer: &J) -> Option<String> {
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patch = answer["response"].get("patch")?;
    let bytes: k8s_openapi::ByteString = serde_json::from_value(patch.clone()).unwrap();
    let ops: J = serde_json::from_slice(&bytes.0).unwrap();
    let spec = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/spec")
        .map(|op| op["value"].clone())?;
    spec["initContainers"]
        .as_array()
        .into_iter()
        .chain(spec["containers"].as_array())
        .flatten()
        .find(|c| c["name"] == "istio-proxy")
        .map(|c| c["image"].as_str().unwrap().to_owned())
}

#[test]
fn the_injector_follows_the_istio_sidecar_injector_configmap() {
    let fake = FakeApi::start();
    for ns in ["istio-system", "shop"] {
        fake.put(
            &format!("/api/v1/namespaces/{ns}"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    fake.put(
        CONFIGMAP,
        injector_configmap("registry.example/mesh", "1.0.0", "enabled"),
    );
    let dir = std::env::temp_dir().join(format!("meshd-kube-injector-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut opts = Options::new(dir.join("unused"), any, any);
        opts.kube = Some(KubeClient::for_url(&format!("http://{}", fake.addr)).unwrap());
        opts.webhook_address = Some(any);
        opts.ca = Some((CaOptions::new(dir.join("ca")), any));
        let meshd = Meshd::bind(opts, Arc::new(MeshTranslator)).await.unwrap();
        let webhook = meshd.webhook_address().unwrap();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(meshd.run(async {
            let _ = stop_rx.await;
        }));
        let root = std::fs::read_to_string(dir.join("ca/root-cert.pem")).unwrap();

        let answer = inject(webhook, &root, &pod_review("a")).await;
        assert_eq!(
            sidecar_image(&answer).as_deref(),
            Some("registry.example/mesh/mesh-proxy:1.0.0")
        );

        // An edit applies to the next Pod, without a restart.
        fake.put(
            CONFIGMAP,
            injector_configmap("registry.example/mesh", "1.1.0", "enabled"),
        );
        let wait_for = |want: Option<&'static str>| {
            let root = root.clone();
            async move {
                let start = Instant::now();
                loop {
                    let got = sidecar_image(&inject(webhook, &root, &pod_review("b")).await);
                    if got.as_deref() == want {
                        return;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(15),
                        "still {got:?}, want {want:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        wait_for(Some("registry.example/mesh/mesh-proxy:1.1.0")).await;
        // policy: disabled leaves a Pod that does not ask for a sidecar alone.
        fake.put(
            CONFIGMAP,
            injector_configmap("registry.example/mesh", "1.1.0", "disabled"),
        );
        wait_for(None).await;
        // Without the ConfigMap, the defaults.
        fake.remove(CONFIGMAP);
        wait_for(Some("ghcr.io/meshctl/mesh-proxy:latest")).await;

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
