//! rustls configurations for mutual TLS with the workload certificate.
//!
//! This module owns how mesh-proxy's own data plane speaks mTLS (used through
//! `native::tls`, which holds the current certificate): a server config that presents
//! the workload certificate, requires a client certificate chaining to the trust bundle
//! and whose SPIFFE id is in the mesh's trust domain; a client config that presents the
//! workload certificate and accepts a server whose chain reaches the trust bundle and
//! whose SPIFFE id is one of those expected (the SNI is Istio's `outbound_.PORT_...` name,
//! not a DNS name, so the identity, not the name, is checked, as Envoy's
//! `match_typed_subject_alt_names` does). Every refusal is logged with its reason (expired,
//! unknown issuer, foreign trust domain, unexpected identity) and carried in the rustls
//! error. [`peer_identity`] reads the peer's SPIFFE id for RBAC principals and
//! `x-forwarded-client-cert`. [`origination_config`] is a DestinationRule's `SIMPLE` or
//! `MUTUAL` TLS to a server outside the mesh, with the files the rule names.

use std::sync::Arc;

use mesh_core::identity::SpiffeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tracing::warn;

use crate::identity::WorkloadCert;

/// ALPN a server offers, in preference order (as the translation's inbound chains).
pub const SERVER_ALPN: [&[u8]; 4] = [b"h2", b"http/1.1", b"istio-peer-exchange", b"istio"];

/// Why a TLS config could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MtlsError {
    #[error("the workload certificate: {0}")]
    Cert(String),
    #[error("the trust bundle: {0}")]
    Roots(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn chain(cert: &WorkloadCert) -> Result<Vec<CertificateDer<'static>>, MtlsError> {
    chain_of(&cert.chain_pem)
}

fn chain_of(pem: &str) -> Result<Vec<CertificateDer<'static>>, MtlsError> {
    let chain: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| MtlsError::Cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(MtlsError::Cert("no certificate".into()));
    }
    Ok(chain)
}

fn key(cert: &WorkloadCert) -> Result<PrivateKeyDer<'static>, MtlsError> {
    key_of(&cert.key_pem)
}

fn key_of(pem: &str) -> Result<PrivateKeyDer<'static>, MtlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| MtlsError::Cert(format!("key: {e}")))
}

fn roots(cert: &WorkloadCert) -> Result<Arc<RootCertStore>, MtlsError> {
    roots_of(&cert.root_pem)
}

fn roots_of(pem: &str) -> Result<Arc<RootCertStore>, MtlsError> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| MtlsError::Roots(e.to_string()))?;
        roots
            .add(der)
            .map_err(|e| MtlsError::Roots(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(MtlsError::Roots("no certificate".into()));
    }
    Ok(Arc::new(roots))
}

/// The SPIFFE id a certificate carries (its URI SAN), if any.
pub fn spiffe_id_of(der: &[u8]) -> Option<SpiffeId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => u.parse().ok(),
        _ => None,
    })
}

/// The peer's SPIFFE id on an established connection.
pub fn peer_identity(certs: Option<&[CertificateDer<'_>]>) -> Option<SpiffeId> {
    certs?.first().and_then(|c| spiffe_id_of(c))
}

/// Checks the identity of an already chain-verified leaf.
fn check_identity(
    der: &[u8],
    trust_domain: &str,
    allowed: &[SpiffeId],
) -> Result<SpiffeId, String> {
    let id = spiffe_id_of(der).ok_or_else(|| "the certificate has no SPIFFE id".to_owned())?;
    if id.trust_domain != trust_domain {
        return Err(format!("peer {id} is outside trust domain {trust_domain}"));
    }
    if !allowed.is_empty() && !allowed.contains(&id) {
        let want: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        return Err(format!("peer {id} is not one of {}", want.join(", ")));
    }
    Ok(id)
}

fn refused(side: &str, e: rustls::Error) -> rustls::Error {
    warn!(side, reason = %e, "peer certificate refused");
    e
}

/// The inbound side: presents `cert`, requires a client certificate of the trust domain.
pub fn server_config(
    cert: &WorkloadCert,
    trust_domain: &str,
) -> Result<rustls::ServerConfig, MtlsError> {
    let provider = provider();
    let inner = WebPkiClientVerifier::builder_with_provider(roots(cert)?, provider.clone())
        .build()
        .map_err(|e| MtlsError::Roots(e.to_string()))?;
    let verifier = Arc::new(SpiffeClientVerifier {
        inner,
        trust_domain: trust_domain.to_owned(),
    });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(cert)?, key(cert)?)?;
    cfg.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// The outbound side: presents `cert`, accepts a server of the trust domain whose identity
/// is one of `expected` (any of the trust domain when empty); offers `alpn`.
pub fn client_config(
    cert: &WorkloadCert,
    trust_domain: &str,
    expected: Vec<SpiffeId>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, MtlsError> {
    let provider = provider();
    let verifier = Arc::new(PeerServerVerifier {
        roots: Some(roots(cert)?),
        check: ServerCheck::Spiffe {
            trust_domain: trust_domain.to_owned(),
            expected,
        },
        provider: provider.clone(),
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain(cert)?, key(cert)?)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A client verifier: webpki's chain check, then the trust domain.
#[derive(Debug)]
struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| refused("client", e))?;
        check_identity(end_entity, &self.trust_domain, &[])
            .map_err(|why| refused("client", rustls::Error::General(why)))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// TLS origination as a DestinationRule's `SIMPLE`/`MUTUAL` asks, with Envoy's semantics:
/// the server's chain must reach `trusted_ca` (PEM file) when one is given (not verified
/// otherwise), and its certificate must carry one of `dns_sans` when any are given; the
/// client certificate and key files are presented for `MUTUAL`. Offers `alpn`.
pub fn origination_config(
    trusted_ca: Option<&str>,
    dns_sans: Vec<String>,
    client_cert: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, MtlsError> {
    let read = |path: &str, what: fn(String) -> MtlsError| {
        std::fs::read_to_string(path).map_err(|e| what(format!("{path}: {e}")))
    };
    let roots = trusted_ca
        .map(|p| read(p, MtlsError::Roots).and_then(|pem| roots_of(&pem)))
        .transpose()?;
    let provider = provider();
    let verifier = Arc::new(PeerServerVerifier {
        roots,
        check: ServerCheck::Dns(dns_sans),
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match client_cert {
        Some((chain, key)) => builder.with_client_auth_cert(
            chain_of(&read(chain, MtlsError::Cert)?)?,
            key_of(&read(key, MtlsError::Cert)?)?,
        )?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// What a server's certificate must show once its chain is verified.
#[derive(Debug)]
enum ServerCheck {
    /// A SPIFFE id of the trust domain, one of `expected` when any (not the name).
    Spiffe {
        trust_domain: String,
        expected: Vec<SpiffeId>,
    },
    /// One of these DNS SANs (any certificate when empty).
    Dns(Vec<String>),
}

/// A server verifier: the chain to `roots` (none: not verified, TLS origination without a
/// CA, as Envoy), then [`ServerCheck`].
#[derive(Debug)]
struct PeerServerVerifier {
    roots: Option<Arc<RootCertStore>>,
    check: ServerCheck,
    provider: Arc<CryptoProvider>,
}

/// The DNS SANs of a certificate.
fn dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let parsed =
                ParsedCertificate::try_from(end_entity).map_err(|e| refused("server", e))?;
            verify_server_cert_signed_by_trust_anchor(
                &parsed,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )
            .map_err(|e| refused("server", e))?;
        }
        match &self.check {
            ServerCheck::Spiffe {
                trust_domain,
                expected,
            } => {
                check_identity(end_entity, trust_domain, expected)
                    .map_err(|why| refused("server", rustls::Error::General(why)))?;
            }
            ServerCheck::Dns(want) if !want.is_empty() => {
                let have = dns_names(end_entity);
                if !have.iter().any(|h| want.contains(h)) {
                    let why = format!(
                        "the server's DNS names [{}] include none of [{}]",
                        have.join(", "),
                        want.join(", ")
                    );
                    return Err(refused("server", rustls::Error::General(why)));
                }
            }
            ServerCheck::Dns(_) => {}
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
