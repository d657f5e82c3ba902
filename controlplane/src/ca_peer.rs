//! A CA caller's client certificate: asking for it, and who it proves the caller is.
//!
//! This module owns the mutual-TLS half of the CA on 15012. The handshake asks every
//! caller for a certificate but needs none ([`OptionalClientCert`]): a workload's first
//! request has no certificate yet and authenticates with its token. A certificate that is
//! presented must be backed by its key (the handshake's signature is checked as usual);
//! whether it chains to the mesh is decided after the handshake ([`verify_peer`]) against
//! the trust bundle as it is *then* (`root-cert.pem` in the CA directory: during a root
//! rotation both roots), so a rotation needs no new TLS config, and so a certificate that
//! does not verify (expired, another mesh's root, a dropped root) is reported with its
//! reason and leaves the caller to its token, exactly as at first issuance, instead of
//! failing the handshake with an alert the caller cannot act on.
//!
//! Istio's istiod verifies the client certificate in the handshake
//! (`VerifyClientCertIfGiven`), so an unverifiable certificate fails the connection there;
//! meshd falls back to the token instead. A presented certificate that does not verify
//! never authenticates anybody either way.

use std::sync::Arc;

use mesh_core::identity::SpiffeId;
use rustls::DigitallySignedStruct;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

use crate::ca::{Ca, ROOT_CERT_FILE};

/// Asks for a client certificate, accepts the handshake with or without one, and checks
/// only that a presented certificate's key signed the handshake; the chain is judged by
/// [`verify_peer`].
#[derive(Debug)]
pub struct OptionalClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl OptionalClientCert {
    pub fn new(provider: &rustls::crypto::CryptoProvider) -> Self {
        OptionalClientCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Deferred to verify_peer, after the handshake, with the bundle of that moment.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What the caller's client certificate says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerCert {
    /// No certificate was presented.
    None,
    /// A certificate of the mesh: the caller is this identity.
    Verified(SpiffeId),
    /// A certificate was presented and does not verify; why.
    Refused(String),
}

/// The trust bundle client certificates are verified with: the CA directory's
/// `root-cert.pem` (every root trusted now), else the signing root.
pub async fn trust_bundle(ca: &Ca) -> String {
    match tokio::fs::read_to_string(ca.dir().join(ROOT_CERT_FILE)).await {
        Ok(pem) if pem.contains("BEGIN CERTIFICATE") => pem,
        _ => ca.root_pem(),
    }
}

/// Judges the certificates a caller presented (`None` or empty: none) against the trust
/// bundle `bundle_pem` at `now`: the chain must lead to one of its roots, every
/// certificate must be within its validity, the leaf must be for client authentication
/// and carry exactly one SPIFFE id.
pub fn verify_peer(
    presented: Option<&[CertificateDer<'_>]>,
    bundle_pem: &str,
    now: UnixTime,
) -> PeerCert {
    let Some((leaf, intermediates)) = presented.and_then(<[_]>::split_first) else {
        return PeerCert::None;
    };
    match verify_chain(leaf, intermediates, bundle_pem, now).and_then(|()| spiffe_id(leaf)) {
        Ok(id) => PeerCert::Verified(id),
        Err(why) => PeerCert::Refused(why),
    }
}

fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    bundle_pem: &str,
    now: UnixTime,
) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()).flatten() {
        roots
            .add(der)
            .map_err(|e| format!("the trust bundle: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("the trust bundle: {e}"))?;
    verifier
        .verify_client_cert(leaf, intermediates, now)
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(why) => describe(&why),
            other => format!("client certificate: {other}"),
        })
}

/// Why a client certificate did not verify, for the log and the refusal.
fn describe(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let what = match e {
        E::ExpiredContext { time, not_after } => format!(
            "expired at {} (unix seconds; now {})",
            not_after.as_secs(),
            time.as_secs()
        ),
        E::Expired => "expired".to_owned(),
        E::NotValidYetContext { time, not_before } => format!(
            "not valid before {} (unix seconds; now {})",
            not_before.as_secs(),
            time.as_secs()
        ),
        E::NotValidYet => "not valid yet".to_owned(),
        // webpki finds the issuer by name: a root of the same name that did not sign it
        // shows as a bad signature.
        E::UnknownIssuer | E::BadSignature => {
            format!("does not chain to a root of the trust bundle ({e:?})")
        }
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            "is not for client authentication".to_owned()
        }
        other => format!("{other:?}"),
    };
    format!("client certificate {what}")
}

fn spiffe_id(leaf: &CertificateDer<'_>) -> Result<SpiffeId, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("client certificate: {e}"))?;
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(format!(
            "client certificate: {} URI SANs, not one SPIFFE id",
            uris.len()
        ));
    };
    uri.parse()
        .map_err(|e| format!("client certificate: URI SAN {uri}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::time::{Duration, SystemTime};

    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };

    use super::*;

    struct Root {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn root() -> Root {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Root {
            pem: cert.pem(),
            issuer: Issuer::from_ca_cert_der(cert.der(), key).unwrap(),
        }
    }

    fn leaf(
        root: &Root,
        uris: &[&str],
        eku: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        p.extended_key_usages = vec![eku];
        let now = SystemTime::now();
        if expired {
            p.not_before = (now - Duration::from_secs(7200)).into();
            p.not_after = (now - Duration::from_secs(3600)).into();
        } else {
            p.not_before = (now - Duration::from_secs(60)).into();
            p.not_after = (now + Duration::from_secs(3600)).into();
        }
        p.signed_by(&key, &root.issuer).unwrap().der().clone()
    }

    const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";

    fn judge(cert: CertificateDer<'static>, bundle: &str) -> PeerCert {
        verify_peer(Some(&[cert]), bundle, UnixTime::now())
    }

    #[test]
    fn a_workload_certificate_of_a_trusted_root_names_its_identity() {
        let (a, b) = (root(), root());
        let cert = leaf(&a, &[WEB], ExtendedKeyUsagePurpose::ClientAuth, false);
        let want = PeerCert::Verified(SpiffeId::new("cluster.local", "shop", "web"));
        assert_eq!(judge(cert.clone(), &a.pem), want);
        // During a root rotation the bundle holds both roots, in either order.
        assert_eq!(judge(cert.clone(), &format!("{}{}", b.pem, a.pem)), want);
        assert_eq!(verify_peer(None, &a.pem, UnixTime::now()), PeerCert::None);
        assert_eq!(
            verify_peer(Some(&[]), &a.pem, UnixTime::now()),
            PeerCert::None
        );
    }

    #[test]
    fn foreign_expired_server_only_and_id_less_certificates_are_refused_with_why() {
        let (a, b) = (root(), root());
        let refused = |p: PeerCert| match p {
            PeerCert::Refused(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let foreign = leaf(&b, &[WEB], ExtendedKeyUsagePurpose::ClientAuth, false);
        let why = refused(judge(foreign, &a.pem));
        assert!(why.contains("does not chain to a root"), "{why}");
        let expired = leaf(&a, &[WEB], ExtendedKeyUsagePurpose::ClientAuth, true);
        let why = refused(judge(expired, &a.pem));
        assert!(why.contains("client certificate expired at"), "{why}");
        let server = leaf(&a, &[WEB], ExtendedKeyUsagePurpose::ServerAuth, false);
        let why = refused(judge(server, &a.pem));
        assert!(why.contains("not for client authentication"), "{why}");
        let none = leaf(&a, &[], ExtendedKeyUsagePurpose::ClientAuth, false);
        let why = refused(judge(none, &a.pem));
        assert!(why.contains("0 URI SANs"), "{why}");
        let two = leaf(
            &a,
            &[WEB, "spiffe://cluster.local/ns/shop/sa/db"],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        );
        let why = refused(judge(two, &a.pem));
        assert!(why.contains("2 URI SANs"), "{why}");
        let http = leaf(
            &a,
            &["https://example.com/x"],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        );
        assert!(matches!(judge(http, &a.pem), PeerCert::Refused(_)));
    }
}
