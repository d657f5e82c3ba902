//! meshd's CA in Kubernetes mode against the fake API server (test code; no live
//! cluster), with mesh-proxy's certificate client as the caller:
//! - a workload presenting its service-account token (read from a file, as the projected
//!   token is) gets a certificate for its own identity, after a TokenReview with audience
//!   `istio-ca`; a token of another service account, an unknown token and a token for
//!   another audience are each refused with the reason, which meshd also logs (and an
//!   API server that cannot review tokens gives Unavailable);
//! - the root is stored as Secret `istio-ca-secret` and a meshd restarted with an empty CA
//!   directory (a new pod) keeps it; the trust bundle is published as ConfigMap
//!   `istio-ca-root-cert` in every namespace;
//! - a plugged-in `cacerts` Secret (root + intermediate) is used when present: the
//!   workload's chain is leaf, intermediate, and the trust bundle is the plugged root; that
//!   chain, presented on renewal, authenticates the workload without a TokenReview.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/meshd.rs"]
mod support;

#[path = "../../cli/tests/support/fake_api.rs"]
mod fake_api;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use fake_api::FakeApi;
use mesh_controlplane::Options;
use mesh_controlplane::ca::CaOptions;
use mesh_controlplane::kube_source::KubeClient;
use mesh_core::identity::SpiffeId;
use mesh_proxy::identity::{self, CaClientOptions, IdentityError, WorkloadCert};
use serde_json::{Value as J, json};
use support::Running;

const SECRETS: &str = "/api/v1/namespaces/istio-system/secrets";

fn namespace(fake: &FakeApi, name: &str) {
    fake.put(
        &format!("/api/v1/namespaces/{name}"),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    );
}

fn fake_cluster() -> FakeApi {
    let fake = FakeApi::start();
    namespace(&fake, "istio-system");
    namespace(&fake, "shop");
    fake.add_token("web-token", "system:serviceaccount:shop:web", &["istio-ca"]);
    fake.add_token("db-token", "system:serviceaccount:shop:db", &["istio-ca"]);
    fake.add_token(
        "api-token",
        "system:serviceaccount:shop:web",
        &["https://kubernetes.default.svc.cluster.local"],
    );
    fake
}

/// The root meshd `m` serves (its CA directory's trust bundle).
fn root_of(m: &Running) -> String {
    std::fs::read_to_string(m.dir.join("root-cert.pem")).unwrap()
}

/// meshd --kube against `fake`, its CA directory `dir` (a pod's emptyDir).
async fn meshd(fake: &FakeApi, dir: &Path) -> Running {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut opts = Options::new(dir.join("unused"), any, any);
    opts.kube = Some(KubeClient::for_url(&format!("http://{}", fake.addr)).unwrap());
    opts.ca = Some((CaOptions::new(dir.to_owned()), any));
    support::start(opts, dir.to_owned(), false).await
}

/// Whether a logged refusal carries `reason`.
fn logged_refusal(reason: &str) -> bool {
    support::log_text()
        .lines()
        .any(|l| l.contains("certificate request refused") && l.contains(reason))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mesh-ca-kube-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A sidecar's view: the trust bundle as the ConfigMap mount holds it, the token file,
/// meshd reached by its Service name.
fn client(m: &Running, pod: &Path, root_pem: &str, token: &str) -> CaClientOptions {
    std::fs::create_dir_all(pod).unwrap();
    std::fs::write(pod.join("root-cert.pem"), root_pem).unwrap();
    std::fs::write(pod.join("istio-token"), token).unwrap();
    CaClientOptions {
        address: m.ca,
        root_cert: pod.join("root-cert.pem"),
        token_file: pod.join("istio-token"),
        server_name: Some("meshd.istio-system.svc".to_owned()),
        ttl: None,
        renew_with_certificate_only: false,
    }
}

fn ders(pem: &str) -> Vec<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// `child` (DER) is signed by `parent` (DER).
fn signed_by(child: &[u8], parent: &[u8]) -> bool {
    let (_, c) = x509_parser::parse_x509_certificate(child).unwrap();
    let (_, p) = x509_parser::parse_x509_certificate(parent).unwrap();
    c.verify_signature(Some(p.public_key())).is_ok()
}

fn leaf_uri(cert: &WorkloadCert) -> String {
    let der = &ders(&cert.chain_pem)[0];
    let (_, leaf) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    format!("{:?}", san.value.general_names)
}

fn refused(r: Result<WorkloadCert, IdentityError>) -> String {
    match r {
        Err(IdentityError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn secret_data(fake: &FakeApi, name: &str, key: &str) -> Option<String> {
    let s = fake.object(&format!("{SECRETS}/{name}"))?;
    let b64 = s.pointer(&format!("/data/{key}"))?.as_str()?.to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(String::from_utf8(bytes).unwrap())
}

/// Waits (bounded) for the root ConfigMap of `ns`.
async fn root_configmap(fake: &FakeApi, ns: &str) -> J {
    let path = format!("/api/v1/namespaces/{ns}/configmaps/istio-ca-root-cert");
    let start = Instant::now();
    loop {
        if let Some(cm) = fake.object(&path) {
            return cm;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {path} within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn service_account_tokens_get_their_own_identity_and_nothing_else() {
    let fake = fake_cluster();
    runtime().block_on(service_account_tokens_get_their_own_identity_and_nothing_else_with(&fake));
}

async fn service_account_tokens_get_their_own_identity_and_nothing_else_with(fake: &FakeApi) {
    support::capture_logs(tracing::Level::WARN);
    let dir = tmp("tokens");
    let m = meshd(fake, &dir.join("ca")).await;

    // Every namespace gets the trust bundle as Istio's ConfigMap.
    let cm = root_configmap(fake, "shop").await;
    let root = cm["data"]["root-cert.pem"].as_str().unwrap().to_owned();
    assert_eq!(root, root_of(&m));
    root_configmap(fake, "istio-system").await;
    // A namespace made later gets it too (the Namespace watch triggers a rebuild).
    namespace(fake, "late");
    let cm = root_configmap(fake, "late").await;
    assert_eq!(cm["data"]["root-cert.pem"], root.as_str());

    let web = SpiffeId::new("cluster.local", "shop", "web");
    let pod = dir.join("pod");
    let c = client(&m, &pod, &root, "web-token\n");
    let cert = identity::request(&c, &web).await.unwrap();
    assert_eq!(cert.id, web);
    assert!(
        leaf_uri(&cert).contains("spiffe://cluster.local/ns/shop/sa/web"),
        "{}",
        leaf_uri(&cert)
    );
    assert!(signed_by(&ders(&cert.chain_pem)[0], &ders(&root)[0]));
    // meshd asked the API server, with the token the sidecar sent.
    let reviews = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/apis/authentication.k8s.io/v1/tokenreviews")
        .count();
    assert_eq!(reviews, 1);

    // The token file is read again on each request (projected tokens rotate): now it
    // holds another service account's token, which may not have web's identity.
    std::fs::write(&c.token_file, "db-token").unwrap();
    let why = refused(identity::request(&c, &web).await);
    assert!(
        why.contains("grpc-status 7")
            && why.contains("system:serviceaccount:shop:db")
            && why.contains("spiffe://cluster.local/ns/shop/sa/web"),
        "{why}"
    );
    assert!(logged_refusal(
        "the caller is system:serviceaccount:shop:db; the CSR asks for spiffe://cluster.local/ns/shop/sa/web"
    ));
    // ...but may have its own.
    let db = identity::request(&c, &SpiffeId::new("cluster.local", "shop", "db"))
        .await
        .unwrap();
    assert!(leaf_uri(&db).contains("/ns/shop/sa/db"));

    // A token the API server does not know.
    std::fs::write(&c.token_file, "forged-token").unwrap();
    let why = refused(identity::request(&c, &web).await);
    assert!(
        why.contains("grpc-status 16") && why.contains("invalid bearer token"),
        "{why}"
    );
    assert!(logged_refusal("invalid bearer token"));
    // A real token of web, for the API server's audience rather than istio-ca.
    std::fs::write(&c.token_file, "api-token").unwrap();
    let why = refused(identity::request(&c, &web).await);
    assert!(
        why.contains("grpc-status 16") && why.contains("istio-ca") && why.contains("audiences"),
        "{why}"
    );
    assert!(logged_refusal("is invalid for the target audiences"));
    // No token at all.
    std::fs::write(&c.token_file, "").unwrap();
    let why = refused(identity::request(&c, &web).await);
    assert!(
        why.contains("grpc-status 16") && why.contains("no bearer token"),
        "{why}"
    );
    assert!(logged_refusal("no bearer token"));
    // The API server cannot review tokens: Unavailable (the sidecar retries), with why.
    fake.with(|s| s.fail_token_reviews = true);
    std::fs::write(&c.token_file, "web-token").unwrap();
    let why = refused(identity::request(&c, &web).await);
    assert!(
        why.contains("grpc-status 14") && why.contains("cannot review the token"),
        "{why}"
    );
    assert!(logged_refusal("the token authenticator is unavailable"));
    fake.with(|s| s.fail_token_reviews = false);
    identity::request(&c, &web).await.unwrap();
    m.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_root_is_kept_in_a_secret_across_restarts() {
    let fake = fake_cluster();
    runtime().block_on(the_root_is_kept_in_a_secret_across_restarts_with(&fake));
}

async fn the_root_is_kept_in_a_secret_across_restarts_with(fake: &FakeApi) {
    let dir = tmp("restart");
    let first = meshd(fake, &dir.join("pod1")).await;
    let root = root_of(&first);
    // Stored as Istio's self-signed CA secret, created (not applied over another's).
    assert_eq!(
        secret_data(fake, "istio-ca-secret", "ca-cert.pem").unwrap(),
        root
    );
    assert!(
        secret_data(fake, "istio-ca-secret", "ca-key.pem")
            .unwrap()
            .contains("PRIVATE KEY")
    );
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "POST" && r.path == SECRETS)
    );
    first.stop().await;

    // A new pod: an empty CA directory, the same cluster.
    let second = meshd(fake, &dir.join("pod2")).await;
    assert_eq!(root_of(&second), root, "the root survived the restart");
    let c = client(&second, &dir.join("sidecar"), &root, "web-token");
    let cert = identity::request(&c, &SpiffeId::new("cluster.local", "shop", "web"))
        .await
        .unwrap();
    assert!(signed_by(&ders(&cert.chain_pem)[0], &ders(&root)[0]));
    second.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A root and an intermediate signed by it, PEM: (root cert, intermediate cert,
/// intermediate key).
fn plugged_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_params = |cn: &str| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("plugged root").self_signed(&root_key).unwrap();
    let issuer = Issuer::new(ca_params("plugged root"), root_key);
    let mid_key = KeyPair::generate().unwrap();
    let mid = ca_params("plugged intermediate")
        .signed_by(&mid_key, &issuer)
        .unwrap();
    (root.pem(), mid.pem(), mid_key.serialize_pem())
}

#[test]
fn a_plugged_in_cacerts_secret_is_used() {
    let fake = fake_cluster();
    runtime().block_on(a_plugged_in_cacerts_secret_is_used_with(&fake));
}

async fn a_plugged_in_cacerts_secret_is_used_with(fake: &FakeApi) {
    let (root, mid, mid_key) = plugged_ca();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    fake.put(
        &format!("{SECRETS}/cacerts"),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "cacerts", "namespace": "istio-system"},
            "data": {
                "ca-cert.pem": b64(&mid),
                "ca-key.pem": b64(&mid_key),
                "root-cert.pem": b64(&root),
                "cert-chain.pem": b64(&format!("{mid}{root}")),
            },
        }),
    );
    let dir = tmp("plugged");
    let m = meshd(fake, &dir.join("ca")).await;
    // The trust bundle is the plugged root, everywhere.
    assert_eq!(ders(&root_of(&m)), ders(&root));
    let cm = root_configmap(fake, "shop").await;
    assert_eq!(
        ders(cm["data"]["root-cert.pem"].as_str().unwrap()),
        ders(&root)
    );
    assert!(
        fake.object(&format!("{SECRETS}/istio-ca-secret")).is_none(),
        "no self-signed root is made when cacerts exists"
    );

    let c = client(&m, &dir.join("pod"), &root, "web-token");
    let cert = identity::request(&c, &SpiffeId::new("cluster.local", "shop", "web"))
        .await
        .unwrap();
    // The workload presents leaf + intermediate; the leaf is signed by the intermediate,
    // the intermediate by the root.
    let chain = ders(&cert.chain_pem);
    assert_eq!(chain.len(), 2, "{}", cert.chain_pem);
    assert_eq!(chain[1], ders(&mid)[0]);
    assert!(signed_by(&chain[0], &chain[1]));
    assert!(signed_by(&chain[1], &ders(&root)[0]));
    assert!(!signed_by(&chain[0], &ders(&root)[0]));
    // Renewal over mutual TLS: the leaf and its intermediate verify against the plugged
    // root and authenticate the caller; its token is not even reviewed.
    let reviews = || {
        fake.requests()
            .into_iter()
            .filter(|r| r.path == "/apis/authentication.k8s.io/v1/tokenreviews")
            .count()
    };
    let before = reviews();
    std::fs::write(&c.token_file, "forged-token").unwrap();
    let renewed = identity::request_with(
        &c,
        &SpiffeId::new("cluster.local", "shop", "web"),
        Some(&cert),
    )
    .await
    .unwrap();
    assert_ne!(renewed.serial, cert.serial);
    assert_eq!(
        reviews(),
        before,
        "no TokenReview for a certificate renewal"
    );
    m.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replica_that_loses_the_race_to_store_the_root_uses_the_winners() {
    let fake = fake_cluster();
    runtime().block_on(async {
        // Another meshd stores its root just after this one looked (the fake hides the
        // Secret from the first GET): this one's create answers 409 AlreadyExists, and it
        // loads the stored root instead of keeping its own.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let winner = params.self_signed(&key).unwrap().pem();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let path = format!("{SECRETS}/istio-ca-secret");
        fake.put(
            &path,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "istio-ca-secret", "namespace": "istio-system"},
                "data": {"ca-cert.pem": b64(&winner), "ca-key.pem": b64(&key.serialize_pem())},
            }),
        );
        fake.with(|s| s.hide_next_get.insert(path.clone()));
        let dir = tmp("race");
        let m = meshd(&fake, &dir.join("ca")).await;
        let creates = fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path == SECRETS)
            .count();
        assert_eq!(creates, 1, "it tried to store its own root");
        assert_eq!(root_of(&m), winner, "and then took the stored one");
        let c = client(&m, &dir.join("pod"), &winner, "web-token");
        let cert = identity::request(&c, &SpiffeId::new("cluster.local", "shop", "web"))
            .await
            .unwrap();
        assert!(signed_by(&ders(&cert.chain_pem)[0], &ders(&winner)[0]));
        m.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
