//! Renewal over mutual TLS: mesh-proxy's certificate client presents its workload
//! certificate to meshd's CA, both in-process (local mode):
//! - a valid certificate of the mesh renews without any token, and the CA logs that the
//!   certificate authenticated the caller; the agent's rotation loop renews that way once
//!   the token is gone, also across a root rotation (the certificate from the old root
//!   verified while both roots are trusted);
//! - a certificate of one identity asking for another is PermissionDenied, even with a
//!   valid token, and the reason is logged;
//! - an expired certificate and one of another mesh's root authenticate nobody: the CA logs
//!   why and the token decides, as at first issuance (refused without one, issued with it);
//! - the first certificate still needs the token.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/meshd.rs"]
mod support;

use std::time::{Duration, SystemTime};

use mesh_core::identity::SpiffeId;
use mesh_proxy::identity::{self, CaClientOptions, IdentityError, WorkloadCert};
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
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db, namespace: shop}
spec: {address: 127.0.0.21, labels: {app: db}, serviceAccount: db}
";

async fn meshd(name: &str, ttl: Duration, root_overlap: Option<Duration>) -> Running {
    support::capture_logs(tracing::Level::INFO);
    support::local("mesh-ca-mtls", name, CONFIG, ttl, root_overlap).await
}

/// A sidecar's view of meshd `m`: its trust bundle and its token, copied into a directory
/// of the sidecar's own so a test can take the token away.
fn client(m: &Running, name: &str) -> CaClientOptions {
    let own = m.dir.join(format!("sidecar-{name}"));
    std::fs::create_dir_all(&own).unwrap();
    std::fs::copy(m.ca_dir().join("token"), own.join("token")).unwrap();
    let mut c = CaClientOptions::in_dir(m.ca, &m.ca_dir());
    c.token_file = own.join("token");
    c
}

fn without_token(c: &CaClientOptions) {
    std::fs::remove_file(&c.token_file).unwrap();
}

/// Whether a log line carries every one of `parts`.
fn logged(parts: &[&str]) -> bool {
    support::log_text()
        .lines()
        .any(|l| parts.iter().all(|p| l.contains(p)))
}

fn refused(r: Result<WorkloadCert, IdentityError>) -> String {
    match r {
        Err(IdentityError::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn web() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "web")
}

/// A certificate for `id` signed by the root in CA directory `dir`, valid from `from` to
/// `to` (as the CA would issue it, but with any validity).
fn forged_by_root(
    dir: &std::path::Path,
    id: &SpiffeId,
    from: SystemTime,
    to: SystemTime,
) -> WorkloadCert {
    let root = std::fs::read_to_string(dir.join("root-cert.pem")).unwrap();
    let root_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("root-key.pem")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&root, root_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![rcgen::SanType::URI(id.to_string().try_into().unwrap())];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.not_before = from.into();
    p.not_after = to.into();
    let cert = p.signed_by(&key, &issuer).unwrap();
    WorkloadCert {
        id: id.clone(),
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        root_pem: root,
        serial: String::new(),
        not_before: from,
        not_after: to,
    }
}

#[tokio::test]
async fn a_valid_certificate_renews_without_a_token() {
    let m = meshd("renew", Duration::from_secs(3600), None).await;
    let c = client(&m, "renew");
    let first = identity::request(&c, &web()).await.unwrap();
    assert!(logged(&[
        "certificate issued",
        &first.serial,
        "auth=\"token\""
    ]));
    without_token(&c);
    // Without the certificate the token is missed at once.
    assert!(matches!(
        identity::request(&c, &web()).await,
        Err(IdentityError::Read { .. })
    ));
    let second = identity::request_with(&c, &web(), Some(&first))
        .await
        .unwrap();
    assert_eq!(second.id, web());
    assert_ne!(second.serial, first.serial);
    assert_ne!(second.key_pem, first.key_pem);
    assert!(logged(&[
        "certificate issued",
        &second.serial,
        "auth=\"certificate\""
    ]));
    // The renewed certificate renews in turn; the flag leaves the (restored) token home.
    std::fs::copy(m.ca_dir().join("token"), &c.token_file).unwrap();
    let mut only = c.clone();
    only.renew_with_certificate_only = true;
    let third = identity::request_with(&only, &web(), Some(&second))
        .await
        .unwrap();
    assert!(logged(&[
        "certificate issued",
        &third.serial,
        "auth=\"certificate\""
    ]));
    m.stop().await;
}

#[tokio::test]
async fn a_certificate_may_not_ask_for_another_identity() {
    let m = meshd("other-id", Duration::from_secs(3600), None).await;
    let c = client(&m, "other-id");
    let db = SpiffeId::new("cluster.local", "shop", "db");
    let web_cert = identity::request(&c, &web()).await.unwrap();
    // The token may ask for db (a workload runs as it); web's certificate may not, token
    // or no token: the certificate says who the caller is.
    identity::request(&c, &db).await.unwrap();
    for token in [true, false] {
        if !token {
            without_token(&c);
        }
        let why = refused(identity::request_with(&c, &db, Some(&web_cert)).await);
        assert!(why.contains("grpc-status 7"), "{why}");
        assert!(
            why.contains("certificate is for spiffe://cluster.local/ns/shop/sa/web")
                && why.contains("asks for spiffe://cluster.local/ns/shop/sa/db"),
            "{why}"
        );
    }
    assert!(logged(&[
        "certificate request refused",
        "certificate is for spiffe://cluster.local/ns/shop/sa/web",
        "asks for spiffe://cluster.local/ns/shop/sa/db"
    ]));
    m.stop().await;
}

#[tokio::test]
async fn expired_and_foreign_certificates_leave_the_decision_to_the_token() {
    let m = meshd("fallback", Duration::from_secs(3600), None).await;
    let other = meshd("fallback-other", Duration::from_secs(3600), None).await;
    let c = client(&m, "fallback");
    let now = SystemTime::now();
    let expired = forged_by_root(
        &m.ca_dir(),
        &web(),
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    );
    // The forging itself is sound: the same certificate, valid now, renews.
    let valid = forged_by_root(
        &m.ca_dir(),
        &web(),
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    );
    let foreign = identity::request(&client(&other, "foreign"), &web())
        .await
        .unwrap();

    // With the token: issued, and the log says why the certificate did not count.
    for (cert, why) in [
        (&expired, "client certificate expired at"),
        (&foreign, "does not chain to a root of the trust bundle"),
    ] {
        identity::request_with(&c, &web(), Some(cert))
            .await
            .unwrap();
        assert!(
            logged(&["client certificate not accepted", why, "token=true"]),
            "{why} logged: {}",
            support::log_text()
        );
    }
    // Without it: refused as an unauthenticated caller, with the certificate's reason.
    without_token(&c);
    for (cert, why) in [
        (&expired, "client certificate expired at"),
        (&foreign, "does not chain to a root of the trust bundle"),
    ] {
        let answer = refused(identity::request_with(&c, &web(), Some(cert)).await);
        assert!(answer.contains("grpc-status 16"), "{answer}");
        assert!(answer.contains(why), "{answer}");
        assert!(logged(&[
            "client certificate not accepted",
            why,
            "token=false"
        ]));
    }
    identity::request_with(&c, &web(), Some(&valid))
        .await
        .unwrap();
    m.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn the_first_certificate_still_needs_the_token() {
    let m = meshd("first", Duration::from_secs(3600), None).await;
    let mut c = client(&m, "first");
    c.renew_with_certificate_only = true;
    std::fs::write(&c.token_file, "not-the-token").unwrap();
    let why = refused(identity::request(&c, &web()).await);
    assert!(why.contains("grpc-status 16"), "{why}");
    assert!(why.contains("token in meshd's CA directory"), "{why}");
    without_token(&c);
    assert!(matches!(
        identity::request(&c, &web()).await,
        Err(IdentityError::Read { .. })
    ));
    std::fs::copy(m.ca_dir().join("token"), &c.token_file).unwrap();
    identity::request(&c, &web()).await.unwrap();
    m.stop().await;
}

fn signed_by_first(leaf_pem: &str, bundle_pem: &str) -> bool {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let first = |pem: &str| {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
    };
    let (leaf, root) = (first(leaf_pem), first(bundle_pem));
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let (_, root) = x509_parser::parse_x509_certificate(&root).unwrap();
    leaf.verify_signature(Some(root.public_key())).is_ok()
}

#[tokio::test]
async fn the_agent_renews_with_its_certificate_once_the_token_is_gone() {
    // 10 s certificates: the next one is due after 8 s; then a root rotation asks for one
    // at once, presented from the old root while both are trusted.
    let m = meshd(
        "agent",
        Duration::from_secs(10),
        Some(Duration::from_secs(30)),
    )
    .await;
    let c = client(&m, "agent");
    let (tx, mut rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(identity::keep_current(c.clone(), web(), tx, stop_rx));
    let first = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(Option::is_some))
        .await
        .expect("a first certificate")
        .unwrap()
        .clone()
        .unwrap();
    without_token(&c);
    let second = tokio::time::timeout(
        Duration::from_secs(15),
        rx.wait_for(|c| c.as_ref().is_some_and(|c| c.serial != first.serial)),
    )
    .await
    .expect("a renewal without the token")
    .unwrap()
    .clone()
    .unwrap();
    assert!(logged(&[
        "certificate issued",
        &second.serial,
        "auth=\"certificate\""
    ]));

    let staged = mesh_controlplane::ca_rotation::stage(&m.ca_dir(), None, None).unwrap();
    let next_root = std::fs::read_to_string(&staged.cert).unwrap();
    let rotated = tokio::time::timeout(
        Duration::from_secs(12),
        rx.wait_for(|c| {
            c.as_ref()
                .is_some_and(|c| signed_by_first(&c.chain_pem, &next_root))
        }),
    )
    .await
    .expect("a certificate from the new root, without the token")
    .unwrap()
    .clone()
    .unwrap();
    assert!(logged(&[
        "certificate issued",
        &rotated.serial,
        "auth=\"certificate\""
    ]));
    stop_tx.send_replace(true);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap();
    m.stop().await;
}
