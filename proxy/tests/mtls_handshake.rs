//! mesh-proxy's rustls mTLS configurations (`mesh_proxy::mtls`), handshaking in memory:
//! two workloads of one mesh agree and see each other's SPIFFE id; a certificate from
//! another root, of another trust domain, expired, or of an unexpected identity is refused
//! and the error says why.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::identity::SpiffeId;
use mesh_proxy::identity::WorkloadCert;
use mesh_proxy::mtls::{client_config, peer_identity, server_config};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Root {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn root(name: &str) -> Root {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    Root {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

fn workload(root: &Root, trust: &Root, uri: &str, valid: (SystemTime, SystemTime)) -> WorkloadCert {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = valid.0.into();
    p.not_after = valid.1.into();
    let cert = p.signed_by(&key, &root.issuer).unwrap();
    WorkloadCert {
        id: uri.parse().unwrap_or_else(|_| SpiffeId::new("x", "x", "x")),
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        root_pem: trust.pem.clone(),
        serial: String::new(),
        not_before: valid.0,
        not_after: valid.1,
    }
}

fn now_valid() -> (SystemTime, SystemTime) {
    let now = SystemTime::now();
    (
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    )
}

/// Handshakes `client` with `server`: the identities each side saw, or both sides' errors.
async fn handshake(
    client: &WorkloadCert,
    server: &WorkloadCert,
    expected: Vec<SpiffeId>,
) -> Result<(Option<SpiffeId>, Option<SpiffeId>, Option<String>), String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(Arc::new(server_config(server, "cluster.local").unwrap()));
    let connector = TlsConnector::from(Arc::new(
        client_config(client, "cluster.local", expected, &[b"http/1.1"]).unwrap(),
    ));
    let name = ServerName::try_from("outbound_.9080_._.catalog.shop.svc.cluster.local").unwrap();
    let (s, c) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
    match (s, c) {
        (Ok(s), Ok(c)) => {
            let seen_by_server = peer_identity(s.get_ref().1.peer_certificates());
            let seen_by_client = peer_identity(c.get_ref().1.peer_certificates());
            let alpn = c
                .get_ref()
                .1
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            Ok((seen_by_server, seen_by_client, alpn))
        }
        (s, c) => Err(format!(
            "server: {:?}; client: {:?}",
            s.err().map(|e| e.to_string()),
            c.err().map(|e| e.to_string())
        )),
    }
}

const CLIENT: &str = "spiffe://cluster.local/ns/shop/sa/client";
const CATALOG: &str = "spiffe://cluster.local/ns/shop/sa/catalog";

#[tokio::test]
async fn workloads_of_one_mesh_agree_and_see_each_others_identity() {
    let r = root("mesh root");
    let client = workload(&r, &r, CLIENT, now_valid());
    let server = workload(&r, &r, CATALOG, now_valid());
    let (by_server, by_client, alpn) = handshake(&client, &server, vec![CATALOG.parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(by_server.unwrap().to_string(), CLIENT);
    assert_eq!(by_client.unwrap().to_string(), CATALOG);
    assert_eq!(alpn.as_deref(), Some("http/1.1"));
    // Any identity of the trust domain when none is named.
    assert!(handshake(&client, &server, vec![]).await.is_ok());
}

#[tokio::test]
async fn a_certificate_from_another_root_is_refused_as_unknown_issuer() {
    let (r, other) = (root("mesh root"), root("another mesh root"));
    // The client's certificate is signed by another mesh's root (which it trusts).
    let client = workload(&other, &other, CLIENT, now_valid());
    let server = workload(&r, &r, CATALOG, now_valid());
    let err = handshake(&client, &server, vec![]).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    // Trusting our root but presenting another's: the server refuses.
    let client = workload(&other, &r, CLIENT, now_valid());
    let err = handshake(&client, &server, vec![]).await.unwrap_err();
    assert!(
        err.contains("server: Some") && err.contains("UnknownIssuer"),
        "{err}"
    );
}

#[tokio::test]
async fn a_foreign_trust_domain_is_refused_and_named() {
    let r = root("mesh root");
    let client = workload(&r, &r, "spiffe://evil.org/ns/shop/sa/client", now_valid());
    let server = workload(&r, &r, CATALOG, now_valid());
    let err = handshake(&client, &server, vec![]).await.unwrap_err();
    assert!(
        err.contains("spiffe://evil.org/ns/shop/sa/client is outside trust domain cluster.local"),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused_as_expired() {
    let r = root("mesh root");
    let now = SystemTime::now();
    let expired = (
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    );
    let client = workload(&r, &r, CLIENT, expired);
    let server = workload(&r, &r, CATALOG, now_valid());
    let err = handshake(&client, &server, vec![]).await.unwrap_err();
    assert!(err.contains("certificate expired"), "{err}");
}

#[tokio::test]
async fn a_server_with_an_unexpected_identity_is_refused() {
    let r = root("mesh root");
    let client = workload(&r, &r, CLIENT, now_valid());
    let impostor = workload(
        &r,
        &r,
        "spiffe://cluster.local/ns/shop/sa/impostor",
        now_valid(),
    );
    let err = handshake(&client, &impostor, vec![CATALOG.parse().unwrap()])
        .await
        .unwrap_err();
    assert!(
        err.contains("peer spiffe://cluster.local/ns/shop/sa/impostor is not one of spiffe://cluster.local/ns/shop/sa/catalog"),
        "{err}"
    );
}
