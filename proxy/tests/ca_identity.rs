//! mesh-proxy's certificate client against meshd's CA, both in-process: issuance over TLS
//! with the token, refusals (wrong token, identity no workload runs as, foreign trust
//! domain) with the CA's reason, rotation when 20% of the lifetime is left, and a root
//! rotation followed through its three steps (new roots trusted with the same certificate,
//! a new certificate at once from the new root, the old root dropped, the CA still
//! reachable with only the new root trusted).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/meshd.rs"]
mod support;

use std::time::{Duration, SystemTime};

use mesh_core::identity::SpiffeId;
use mesh_proxy::identity::{self, CaClientOptions, IdentityError};
use support::Running;
use tokio::sync::watch;

const CONFIG: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web, namespace: shop}
spec: {address: 127.0.0.20, labels: {app: web}, serviceAccount: web}
";

async fn meshd(name: &str, ttl: Duration) -> Running {
    meshd_with(name, ttl, None).await
}

async fn meshd_with(name: &str, ttl: Duration, root_overlap: Option<Duration>) -> Running {
    support::local("mesh-ca-test", name, CONFIG, ttl, root_overlap).await
}

fn client(m: &Running) -> CaClientOptions {
    CaClientOptions::in_dir(m.ca, &m.dir.join("ca"))
}

#[tokio::test]
async fn a_known_workload_gets_a_certificate_for_its_identity() {
    let m = meshd("issue", Duration::from_secs(3600)).await;
    let id = SpiffeId::new("cluster.local", "shop", "web");
    let cert = identity::request(&client(&m), &id).await.unwrap();
    assert_eq!(cert.id, id);
    let life = cert.not_after.duration_since(cert.not_before).unwrap();
    assert!((3600..=3660).contains(&life.as_secs()), "lifetime {life:?}");
    assert!(cert.not_after > SystemTime::now() + Duration::from_secs(3000));
    assert!(cert.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(cert.chain_pem.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(
        cert.root_pem,
        std::fs::read_to_string(m.dir.join("ca/root-cert.pem")).unwrap()
    );
    // The leaf names the identity and chains to the root.
    let der = rustls_pemfile_first(&cert.chain_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(
        format!("{:?}", san.value.general_names).contains("spiffe://cluster.local/ns/shop/sa/web")
    );
    let root = rustls_pemfile_first(&cert.root_pem);
    let (_, root) = x509_parser::parse_x509_certificate(&root).unwrap();
    leaf.verify_signature(Some(root.public_key())).unwrap();
    // A shorter lifetime may be asked for.
    let mut short = client(&m);
    short.ttl = Some(Duration::from_secs(600));
    let cert = identity::request(&short, &id).await.unwrap();
    let life = cert.not_after.duration_since(cert.not_before).unwrap();
    assert!((600..=660).contains(&life.as_secs()), "lifetime {life:?}");
    m.stop().await;
}

fn rustls_pemfile_first(pem: &str) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn the_ca_refuses_wrong_tokens_unknown_identities_and_foreign_trust_domains() {
    let m = meshd("refuse", Duration::from_secs(3600)).await;
    let refused = |r: Result<identity::WorkloadCert, IdentityError>| match r {
        Err(IdentityError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let why = refused(
        identity::request(
            &client(&m),
            &SpiffeId::new("cluster.local", "shop", "admin"),
        )
        .await,
    );
    assert!(
        why.contains("grpc-status 7") && why.contains("no workload"),
        "{why}"
    );
    let why =
        refused(identity::request(&client(&m), &SpiffeId::new("evil.org", "shop", "web")).await);
    assert!(why.contains("trust domain cluster.local"), "{why}");
    // Another token: a copy of the CA dir with the token changed.
    let other = m.dir.join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(m.dir.join("ca/root-cert.pem"), other.join("root-cert.pem")).unwrap();
    std::fs::write(other.join("token"), "not-the-token").unwrap();
    let mut c = client(&m);
    c.root_cert = other.join("root-cert.pem");
    c.token_file = other.join("token");
    let why = refused(identity::request(&c, &SpiffeId::new("cluster.local", "shop", "web")).await);
    assert!(why.contains("grpc-status 16"), "{why}");
    m.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_root_does_not_talk_to_the_ca() {
    let m = meshd("trust", Duration::from_secs(3600)).await;
    let other = meshd("trust-other", Duration::from_secs(3600)).await;
    // The token is right, the trust bundle is another mesh's.
    let dir = m.dir.join("mixed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        other.dir.join("ca/root-cert.pem"),
        dir.join("root-cert.pem"),
    )
    .unwrap();
    std::fs::copy(m.dir.join("ca/token"), dir.join("token")).unwrap();
    let mut c = client(&m);
    c.root_cert = dir.join("root-cert.pem");
    c.token_file = dir.join("token");
    match identity::request(&c, &SpiffeId::new("cluster.local", "shop", "web")).await {
        Err(IdentityError::Connect { reason, .. }) => {
            assert!(
                reason.contains("TLS") && reason.contains("certificate"),
                "{reason}"
            )
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    m.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn certificates_rotate_when_a_fifth_of_the_lifetime_is_left() {
    // 10 s certificates (the CA's minimum): the next one is due after 8 s.
    let m = meshd("rotate", Duration::from_secs(10)).await;
    let (tx, mut rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(identity::keep_current(
        client(&m),
        SpiffeId::new("cluster.local", "shop", "web"),
        tx,
        stop_rx,
    ));
    let first = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .expect("a first certificate")
        .unwrap()
        .clone()
        .unwrap();
    let started = std::time::Instant::now();
    let second = tokio::time::timeout(
        Duration::from_secs(15),
        rx.wait_for(|c| c.as_ref().is_some_and(|c| c.serial != first.serial)),
    )
    .await
    .expect("a rotated certificate")
    .unwrap()
    .clone()
    .unwrap();
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(5) && after <= Duration::from_secs(10),
        "rotated after {after:?}"
    );
    assert_ne!(
        first.key_pem, second.key_pem,
        "a new key with each certificate"
    );
    assert!(second.not_after > first.not_after);
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    m.stop().await;
}

fn roots(pem: &str) -> usize {
    pem.matches("BEGIN CERTIFICATE").count()
}

fn signed_by_first(leaf_pem: &str, bundle_pem: &str) -> bool {
    let leaf = rustls_pemfile_first(leaf_pem);
    let root = rustls_pemfile_first(bundle_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let (_, root) = x509_parser::parse_x509_certificate(&root).unwrap();
    leaf.verify_signature(Some(root.public_key())).is_ok()
}

#[tokio::test]
async fn the_agent_follows_a_root_rotation_and_still_reaches_the_ca_after_it() {
    // Hour-long certificates: only the rotation can make the agent ask again.
    let m = meshd_with(
        "rootrot",
        Duration::from_secs(3600),
        Some(Duration::from_secs(2)),
    )
    .await;
    let id = SpiffeId::new("cluster.local", "shop", "web");
    let (tx, mut rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(identity::keep_current(client(&m), id.clone(), tx, stop_rx));
    let first = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .expect("a first certificate")
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(roots(&first.root_pem), 1);
    let staged = mesh_controlplane::ca_rotation::stage(&m.dir.join("ca"), None, None).unwrap();
    let next_root = std::fs::read_to_string(&staged.cert).unwrap();

    // 1. Both roots trusted, the same certificate.
    let trusting = tokio::time::timeout(
        Duration::from_secs(4),
        rx.wait_for(|c| c.as_ref().is_some_and(|c| roots(&c.root_pem) == 2)),
    )
    .await
    .expect("the new root trusted")
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(trusting.serial, first.serial);
    assert!(trusting.root_pem.ends_with(&next_root));

    // 2. A new certificate from the new root, seconds later.
    let renewed = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|c| c.as_ref().is_some_and(|c| c.serial != first.serial)),
    )
    .await
    .expect("a certificate from the new root")
    .unwrap()
    .clone()
    .unwrap();
    assert!(
        renewed.root_pem.starts_with(&next_root),
        "the new root first"
    );
    assert_eq!(roots(&renewed.root_pem), 2);
    assert!(signed_by_first(&renewed.chain_pem, &next_root));
    assert!(!signed_by_first(&renewed.chain_pem, &first.root_pem));

    // 3. The old root dropped after the 2 s overlap, the certificate kept.
    let dropped = tokio::time::timeout(
        Duration::from_secs(6),
        rx.wait_for(|c| c.as_ref().is_some_and(|c| roots(&c.root_pem) == 1)),
    )
    .await
    .expect("the old root dropped")
    .unwrap()
    .clone()
    .unwrap();
    assert_eq!(dropped.serial, renewed.serial);
    assert_eq!(dropped.root_pem, next_root);
    // meshd's own 15012 certificate now comes from the new root: a client trusting only it
    // still gets certificates.
    let again = identity::request(&client(&m), &id).await.unwrap();
    assert!(signed_by_first(&again.chain_pem, &next_root));
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    m.stop().await;
}
