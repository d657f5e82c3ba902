//! Mutual TLS in the native engine: what it accepts of xDS's TLS transport sockets, the
//! workload certificate it holds, and the streams it speaks TLS on.
//!
//! This module owns:
//! - the conversion of `envoy.transport_sockets.tls` configs ([`ServerTls`] from a
//!   DownstreamTlsContext, [`UpstreamTls`] from an UpstreamTlsContext): for mesh mTLS only
//!   the SDS secrets `default` (the workload certificate) and `ROOTCA` (the trust bundle)
//!   meshd names are supported, with URI SAN matchers (exact SPIFFE ids, or the trust
//!   domain's `spiffe://TD/` prefix); a cluster with no SDS secret at all is a
//!   DestinationRule's `SIMPLE`/`MUTUAL` origination ([`Origination`]: certificate, key
//!   and CA files, exact DNS SAN matchers); anything else is refused (NACK);
//! - [`Identity`], the holder of the current workload certificate (fed by
//!   [`crate::identity::keep_current`]): rustls configs are built from the certificate in
//!   force and cached for that publication (a rotated certificate, or new roots of the
//!   trust bundle during a root rotation, are used by the next handshake without a
//!   restart, while established connections keep theirs);
//! - [`UpStream`], an upstream connection in plaintext or TLS, and [`PeerTls`], what a
//!   server learnt of its client in the handshake (SPIFFE id, certificate hash) for RBAC
//!   `authenticated` principals and `x-forwarded-client-cert`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext, common_tls_context,
    subject_alt_name_matcher,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use mesh_core::identity::SpiffeId;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::identity::WorkloadCert;

/// The TLS transport socket's name.
pub const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// The plaintext transport socket's name.
pub const RAW_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// The SDS secret holding the workload certificate.
pub const SECRET_DEFAULT: &str = "default";
/// The SDS secret holding the trust bundle.
pub const SECRET_ROOTCA: &str = "ROOTCA";

/// Why a TLS config cannot be applied, or a handshake cannot be set up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("{0}")]
    Unsupported(String),
    #[error("no workload certificate (run with --ca-dir, or the CA has not answered yet)")]
    NoCertificate,
    #[error("the workload certificate cannot be used: {0}")]
    Cert(String),
}

fn unsupported(s: impl Into<String>) -> TlsError {
    TlsError::Unsupported(s.into())
}

/// How a peer's URI SAN must look.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SanMatch {
    /// Exactly this SPIFFE id.
    Exact(SpiffeId),
    /// Starts with this (meshd's `spiffe://TD/`: anyone of the trust domain).
    Prefix(String),
}

/// The client side of a cluster's TLS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    pub sni: String,
    pub sans: Vec<SanMatch>,
    pub alpn: Vec<String>,
    /// TLS origination with files a DestinationRule names (`SIMPLE`/`MUTUAL`) instead of
    /// the workload certificate (`None`: meshd's SDS secrets, mesh mTLS).
    pub origination: Option<Origination>,
}

/// A DestinationRule's `SIMPLE` or `MUTUAL` TLS as meshd translates it: static files, no
/// SDS. Envoy's semantics: without a trusted CA the server is not verified; with one its
/// chain must reach it, and with DNS SAN matchers its certificate must carry one of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origination {
    /// `caCertificates`: the PEM file the server's chain must reach.
    pub trusted_ca: Option<String>,
    /// `subjectAltNames`: DNS names of which the server's certificate must carry one.
    pub dns_sans: Vec<String>,
    /// `MUTUAL`: the client certificate chain and key files presented.
    pub client_cert: Option<(String, String)>,
}

/// Whether a validation context asks for what the native engine does not check: legacy
/// SAN matchers, certificate hash or SPKI pins, a revocation list.
#[allow(deprecated)]
fn pins_or_revocation(
    v: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::CertificateValidationContext,
) -> bool {
    !v.match_subject_alt_names.is_empty()
        || !v.verify_certificate_hash.is_empty()
        || !v.verify_certificate_spki.is_empty()
        || v.crl.is_some()
}

/// A `filename` data source's path.
fn filename(
    d: Option<&envoy_types::pb::envoy::config::core::v3::DataSource>,
    what: &str,
) -> Result<String, TlsError> {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    match d.and_then(|d| d.specifier.as_ref()) {
        Some(Specifier::Filename(f)) => Ok(f.clone()),
        _ => Err(unsupported(format!("{what} must be a file name"))),
    }
}

/// `SIMPLE`/`MUTUAL` origination: static certificate files and a static validation context
/// (or none), DNS SAN matchers.
fn origination(c: &CommonTlsContext) -> Result<Origination, TlsError> {
    let client_cert = match c.tls_certificates.as_slice() {
        [] => None,
        [t] => Some((
            filename(t.certificate_chain.as_ref(), "the client certificate chain")?,
            filename(t.private_key.as_ref(), "the client private key")?,
        )),
        _ => return Err(unsupported("more than one client certificate")),
    };
    use common_tls_context::ValidationContextType as V;
    let (trusted_ca, dns_sans) = match &c.validation_context_type {
        None => (None, Vec::new()),
        Some(V::ValidationContext(v)) => {
            if pins_or_revocation(v) {
                return Err(unsupported(
                    "origination: validation settings other than a trusted CA and DNS SAN \
                     matchers are not supported",
                ));
            }
            let mut sans = Vec::new();
            for m in &v.match_typed_subject_alt_names {
                let exact = match m.matcher.as_ref().and_then(|x| x.match_pattern.as_ref()) {
                    Some(MatchPattern::Exact(e))
                        if m.san_type == subject_alt_name_matcher::SanType::Dns as i32 =>
                    {
                        e.clone()
                    }
                    _ => return Err(unsupported("origination: only exact DNS SAN matchers")),
                };
                sans.push(exact);
            }
            let ca = v
                .trusted_ca
                .as_ref()
                .map(|d| filename(Some(d), "the trusted CA"))
                .transpose()?;
            (ca, sans)
        }
        Some(_) => {
            return Err(unsupported(
                "origination: only a static validation context is supported",
            ));
        }
    };
    Ok(Origination {
        trusted_ca,
        dns_sans,
        client_cert,
    })
}

/// Opens TLS on `tcp` for a cluster that originates TLS with files (no workload
/// certificate needed). The files are read for each new connection, so replaced files
/// apply to the next one.
pub async fn originate(
    up: &UpstreamTls,
    o: &Origination,
    tcp: TcpStream,
) -> std::io::Result<UpStream> {
    let alpn: Vec<&[u8]> = up.alpn.iter().map(String::as_bytes).collect();
    let cfg = crate::mtls::origination_config(
        o.trusted_ca.as_deref(),
        o.dns_sans.clone(),
        o.client_cert
            .as_ref()
            .map(|(c, k)| (c.as_str(), k.as_str())),
        &alpn,
    )
    .map_err(std::io::Error::other)?;
    let name = server_name(&up.sni, &tcp)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?;
    Ok(UpStream::Tls(Box::new(tls)))
}

/// The SNI as rustls names the server: the cluster's SNI, else the peer's address.
fn server_name(
    sni: &str,
    tcp: &TcpStream,
) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
    rustls::pki_types::ServerName::try_from(sni.to_owned())
        .or_else(|_| {
            tcp.peer_addr()
                .map(|a| rustls::pki_types::ServerName::IpAddress(a.ip().into()))
        })
        .map_err(std::io::Error::other)
}

/// The server side of a filter chain's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTls {
    pub require_client_certificate: bool,
    pub sans: Vec<SanMatch>,
    pub alpn: Vec<String>,
}

/// Certificate `default` and validation `ROOTCA` (SDS), URI SAN matchers, ALPN.
fn common(c: &CommonTlsContext) -> Result<(Vec<SanMatch>, Vec<String>), TlsError> {
    if !c.tls_certificates.is_empty() || c.tls_certificate_provider_instance.is_some() {
        return Err(unsupported(
            "static or provider TLS certificates are not supported (only SDS secret \"default\")",
        ));
    }
    match c.tls_certificate_sds_secret_configs.as_slice() {
        [s] if s.name == SECRET_DEFAULT => {}
        [s] => {
            return Err(unsupported(format!(
                "SDS certificate {:?} is not supported (only \"default\")",
                s.name
            )));
        }
        _ => {
            return Err(unsupported(
                "exactly one SDS certificate (\"default\") is supported",
            ));
        }
    }
    use common_tls_context::ValidationContextType as V;
    let combined = match &c.validation_context_type {
        Some(V::CombinedValidationContext(cv)) => cv,
        Some(V::ValidationContextSdsSecretConfig(s)) if s.name == SECRET_ROOTCA => {
            return Ok((Vec::new(), c.alpn_protocols.clone()));
        }
        _ => {
            return Err(unsupported(
                "the validation context must be the SDS secret \"ROOTCA\"",
            ));
        }
    };
    match &combined.validation_context_sds_secret_config {
        Some(s) if s.name == SECRET_ROOTCA => {}
        Some(s) => {
            return Err(unsupported(format!(
                "SDS validation context {:?} is not supported (only \"ROOTCA\")",
                s.name
            )));
        }
        None => {
            return Err(unsupported(
                "the validation context must be the SDS secret \"ROOTCA\"",
            ));
        }
    }
    let mut sans = Vec::new();
    if let Some(d) = &combined.default_validation_context {
        if d.trusted_ca.is_some() || pins_or_revocation(d) {
            return Err(unsupported(
                "validation settings other than URI SAN matchers are not supported",
            ));
        }
        for m in &d.match_typed_subject_alt_names {
            if m.san_type != subject_alt_name_matcher::SanType::Uri as i32 {
                return Err(unsupported("only URI SAN matchers are supported"));
            }
            let sm = m
                .matcher
                .as_ref()
                .ok_or_else(|| unsupported("an empty SAN matcher"))?;
            if sm.ignore_case {
                return Err(unsupported(
                    "case-insensitive SAN matchers are not supported",
                ));
            }
            sans.push(match &sm.match_pattern {
                Some(MatchPattern::Exact(e)) => SanMatch::Exact(
                    e.parse()
                        .map_err(|_| unsupported(format!("SAN {e:?} is not a SPIFFE id")))?,
                ),
                Some(MatchPattern::Prefix(p)) => SanMatch::Prefix(p.clone()),
                _ => {
                    return Err(unsupported(
                        "only exact and prefix SAN matchers are supported",
                    ));
                }
            });
        }
    }
    Ok((sans, c.alpn_protocols.clone()))
}

fn tls_any(ts: &TransportSocket) -> Result<&[u8], TlsError> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    match &ts.config_type {
        Some(ConfigType::TypedConfig(a)) => Ok(a.value.as_slice()),
        None => Err(unsupported("the TLS transport socket has no typed config")),
    }
}

/// A transport socket's TLS: `None` for plaintext.
fn is_tls(ts: Option<&TransportSocket>) -> Result<Option<&TransportSocket>, TlsError> {
    match ts {
        None => Ok(None),
        Some(t) if t.name == RAW_SOCKET => Ok(None),
        Some(t) if t.name == TLS_SOCKET => Ok(Some(t)),
        Some(t) => Err(unsupported(format!(
            "transport socket {:?} is not supported",
            t.name
        ))),
    }
}

impl UpstreamTls {
    /// A cluster's transport socket: `None` for plaintext.
    pub fn from_socket(ts: Option<&TransportSocket>) -> Result<Option<UpstreamTls>, TlsError> {
        let Some(t) = is_tls(ts)? else {
            return Ok(None);
        };
        let ctx = UpstreamTlsContext::decode(tls_any(t)?)
            .map_err(|e| unsupported(format!("bad UpstreamTlsContext: {e}")))?;
        // No common context at all (meshd's cluster for an https jwksUri) is an empty one:
        // origination with no CA, the server not verified, as Envoy does with that config.
        let empty = CommonTlsContext::default();
        let c = ctx.common_tls_context.as_ref().unwrap_or(&empty);
        // No SDS secret at all: a DestinationRule's SIMPLE or MUTUAL with files.
        if c.tls_certificate_sds_secret_configs.is_empty()
            && !matches!(
                c.validation_context_type,
                Some(common_tls_context::ValidationContextType::CombinedValidationContext(_))
                    | Some(
                        common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                            _
                        )
                    )
            )
        {
            return Ok(Some(UpstreamTls {
                sni: ctx.sni,
                sans: Vec::new(),
                alpn: c.alpn_protocols.clone(),
                origination: Some(origination(c)?),
            }));
        }
        let (sans, alpn) = common(c)?;
        Ok(Some(UpstreamTls {
            sni: ctx.sni,
            sans,
            alpn,
            origination: None,
        }))
    }
}

impl ServerTls {
    /// A filter chain's transport socket: `None` for plaintext.
    pub fn from_socket(ts: Option<&TransportSocket>) -> Result<Option<ServerTls>, TlsError> {
        let Some(t) = is_tls(ts)? else {
            return Ok(None);
        };
        let ctx = DownstreamTlsContext::decode(tls_any(t)?)
            .map_err(|e| unsupported(format!("bad DownstreamTlsContext: {e}")))?;
        let c = ctx
            .common_tls_context
            .as_ref()
            .ok_or_else(|| unsupported("DownstreamTlsContext without a common context"))?;
        let (sans, alpn) = common(c)?;
        let require = ctx.require_client_certificate.is_some_and(|b| b.value);
        if !require {
            return Err(unsupported(
                "TLS without a client certificate (require_client_certificate) is not supported",
            ));
        }
        Ok(Some(ServerTls {
            require_client_certificate: require,
            sans,
            alpn,
        }))
    }
}

/// A config and the certificate publication it was made of.
type Made<C> = (Arc<WorkloadCert>, Arc<C>);

/// The current workload certificate and the rustls configs made from it.
pub struct Identity {
    certs: watch::Receiver<Option<Arc<WorkloadCert>>>,
    trust_domain: String,
    /// (the certificate it was made of, config).
    server: Mutex<Option<Made<rustls::ServerConfig>>>,
    clients: Mutex<HashMap<UpstreamTls, Made<rustls::ClientConfig>>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A holder fed by `certs` (see [`crate::identity::keep_current`]).
    pub fn new(certs: watch::Receiver<Option<Arc<WorkloadCert>>>, trust_domain: &str) -> Identity {
        Identity {
            certs,
            trust_domain: trust_domain.to_owned(),
            server: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until a certificate is in force.
    pub async fn ready(&self) {
        let mut rx = self.certs.clone();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// The certificate in force.
    pub fn current(&self) -> Option<Arc<WorkloadCert>> {
        self.certs.borrow().clone()
    }

    /// The server config for the certificate in force.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let cert = self.current().ok_or(TlsError::NoCertificate)?;
        if let Ok(g) = self.server.lock()
            && let Some((made_of, cfg)) = g.as_ref()
            && Arc::ptr_eq(made_of, &cert)
        {
            return Ok(cfg.clone());
        }
        let cfg = Arc::new(
            crate::mtls::server_config(&cert, &self.trust_domain)
                .map_err(|e| TlsError::Cert(e.to_string()))?,
        );
        if let Ok(mut g) = self.server.lock() {
            *g = Some((cert.clone(), cfg.clone()));
        }
        Ok(cfg)
    }

    /// The client config for a cluster's TLS, with the certificate in force.
    pub fn client_config(&self, up: &UpstreamTls) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let cert = self.current().ok_or(TlsError::NoCertificate)?;
        if let Ok(g) = self.clients.lock()
            && let Some((made_of, cfg)) = g.get(up)
            && Arc::ptr_eq(made_of, &cert)
        {
            return Ok(cfg.clone());
        }
        let domain_prefix = format!("spiffe://{}/", self.trust_domain);
        let mut expected = Vec::new();
        for s in &up.sans {
            match s {
                SanMatch::Exact(id) => expected.push(id.clone()),
                SanMatch::Prefix(p) if *p == domain_prefix => {}
                SanMatch::Prefix(p) => {
                    return Err(unsupported(format!(
                        "SAN prefix {p:?} is not the trust domain's {domain_prefix:?}"
                    )));
                }
            }
        }
        // A prefix matcher next to exact ones widens to the whole trust domain.
        if up.sans.iter().any(|s| matches!(s, SanMatch::Prefix(_))) {
            expected.clear();
        }
        let alpn: Vec<&[u8]> = up.alpn.iter().map(String::as_bytes).collect();
        let cfg = Arc::new(
            crate::mtls::client_config(&cert, &self.trust_domain, expected, &alpn)
                .map_err(|e| TlsError::Cert(e.to_string()))?,
        );
        if let Ok(mut g) = self.clients.lock() {
            g.retain(|_, (made_of, _)| Arc::ptr_eq(made_of, &cert));
            g.insert(up.clone(), (cert.clone(), cfg.clone()));
        }
        Ok(cfg)
    }

    /// Opens TLS on `tcp` for a cluster.
    pub async fn connect(&self, up: &UpstreamTls, tcp: TcpStream) -> std::io::Result<UpStream> {
        let cfg = self.client_config(up).map_err(std::io::Error::other)?;
        let name = server_name(&up.sni, &tcp)?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await?;
        Ok(UpStream::Tls(Box::new(tls)))
    }
}

/// What the server learnt of its client in the TLS handshake.
#[derive(Clone, Debug, Default)]
pub struct PeerTls {
    /// The client's SPIFFE id (URI SAN).
    pub peer: Option<SpiffeId>,
    /// SHA-256 of the client's leaf certificate, hex.
    pub hash: String,
    /// The client certificate's subject, as text.
    pub subject: String,
    /// This proxy's own SPIFFE id (XFCC `By`).
    pub local: Option<SpiffeId>,
    /// The server name the client asked for (SNI), for RBAC `requested_server_name`.
    pub sni: Option<String>,
}

impl PeerTls {
    /// From an accepted connection's state.
    pub fn of(conn: &rustls::ServerConnection, local: Option<SpiffeId>) -> PeerTls {
        let certs = conn.peer_certificates();
        let leaf = certs.and_then(|c| c.first());
        PeerTls {
            peer: crate::mtls::peer_identity(certs),
            hash: leaf.map_or_else(String::new, |c| {
                hex(ring::digest::digest(&ring::digest::SHA256, c.as_ref()).as_ref())
            }),
            subject: leaf
                .and_then(|c| {
                    x509_parser::parse_x509_certificate(c.as_ref())
                        .ok()
                        .map(|(_, x)| x.subject().to_string())
                })
                .unwrap_or_default(),
            local,
            sni: conn.server_name().map(str::to_owned),
        }
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// An upstream connection, plaintext or TLS.
#[derive(Debug)]
pub enum UpStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            UpStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, SdsSecretConfig, SubjectAltNameMatcher,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;

    fn socket<M: prost::Message + prost::Name>(m: &M) -> TransportSocket {
        use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
        TransportSocket {
            name: TLS_SOCKET.into(),
            config_type: Some(ConfigType::TypedConfig(
                envoy_types::pb::google::protobuf::Any {
                    type_url: M::type_url(),
                    value: m.encode_to_vec(),
                },
            )),
        }
    }

    fn ctx(cert: &str, root: &str, exact: Option<&str>) -> CommonTlsContext {
        let sds = |n: &str| SdsSecretConfig {
            name: n.into(),
            sds_config: None,
        };
        CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds(cert)],
            validation_context_type: Some(
                common_tls_context::ValidationContextType::CombinedValidationContext(
                    common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: exact
                                .map(|e| SubjectAltNameMatcher {
                                    san_type: subject_alt_name_matcher::SanType::Uri as i32,
                                    matcher: Some(StringMatcher {
                                        match_pattern: Some(MatchPattern::Exact(e.into())),
                                        ignore_case: false,
                                    }),
                                    ..Default::default()
                                })
                                .into_iter()
                                .collect(),
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(sds(root)),
                        ..Default::default()
                    },
                ),
            ),
            alpn_protocols: vec!["h2".into()],
            ..Default::default()
        }
    }

    #[test]
    fn destination_rule_files_convert_to_origination() {
        use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::TlsCertificate;
        let file = |f: &str| DataSource {
            specifier: Some(Specifier::Filename(f.into())),
            ..Default::default()
        };
        let dns = |d: &str| SubjectAltNameMatcher {
            san_type: subject_alt_name_matcher::SanType::Dns as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(MatchPattern::Exact(d.into())),
                ignore_case: false,
            }),
            ..Default::default()
        };
        let mutual = |v: CertificateValidationContext| UpstreamTlsContext {
            common_tls_context: Some(CommonTlsContext {
                tls_certificates: vec![TlsCertificate {
                    certificate_chain: Some(file("/c.pem")),
                    private_key: Some(file("/k.pem")),
                    ..Default::default()
                }],
                validation_context_type: Some(
                    common_tls_context::ValidationContextType::ValidationContext(v),
                ),
                ..Default::default()
            }),
            sni: "db.example.com".into(),
            ..Default::default()
        };
        let ok = mutual(CertificateValidationContext {
            trusted_ca: Some(file("/ca.pem")),
            match_typed_subject_alt_names: vec![dns("db.example.com")],
            ..Default::default()
        });
        let got = UpstreamTls::from_socket(Some(&socket(&ok)))
            .unwrap()
            .unwrap();
        assert_eq!(got.sni, "db.example.com");
        assert_eq!(
            got.origination,
            Some(Origination {
                trusted_ca: Some("/ca.pem".into()),
                dns_sans: vec!["db.example.com".into()],
                client_cert: Some(("/c.pem".into(), "/k.pem".into())),
            })
        );
        // SIMPLE without a CA: nothing to verify with, as Envoy.
        let simple = UpstreamTlsContext {
            common_tls_context: Some(CommonTlsContext::default()),
            ..Default::default()
        };
        let got = UpstreamTls::from_socket(Some(&socket(&simple)))
            .unwrap()
            .unwrap();
        assert_eq!(
            got.origination,
            Some(Origination {
                trusted_ca: None,
                dns_sans: vec![],
                client_cert: None,
            })
        );
        // What origination cannot honour is refused (NACK), not ignored.
        let crl = mutual(CertificateValidationContext {
            trusted_ca: Some(file("/ca.pem")),
            crl: Some(file("/crl.pem")),
            ..Default::default()
        });
        assert!(UpstreamTls::from_socket(Some(&socket(&crl))).is_err());
        let uri_san = mutual(CertificateValidationContext {
            trusted_ca: Some(file("/ca.pem")),
            match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                san_type: subject_alt_name_matcher::SanType::Uri as i32,
                ..dns("spiffe://x/ns/a/sa/b")
            }],
            ..Default::default()
        });
        assert!(UpstreamTls::from_socket(Some(&socket(&uri_san))).is_err());
    }

    #[test]
    fn istio_mutual_clusters_convert_and_other_secrets_are_refused() {
        let id = "spiffe://cluster.local/ns/shop/sa/api";
        let up = UpstreamTlsContext {
            common_tls_context: Some(ctx("default", "ROOTCA", Some(id))),
            sni: "outbound_.9080_._.api.shop.svc.cluster.local".into(),
            ..Default::default()
        };
        let got = UpstreamTls::from_socket(Some(&socket(&up)))
            .unwrap()
            .unwrap();
        assert_eq!(got.sni, up.sni);
        assert_eq!(got.sans, vec![SanMatch::Exact(id.parse().unwrap())]);
        assert_eq!(got.alpn, vec!["h2".to_owned()]);
        let other = UpstreamTlsContext {
            common_tls_context: Some(ctx("file-cert", "ROOTCA", None)),
            ..Default::default()
        };
        let e = UpstreamTls::from_socket(Some(&socket(&other))).unwrap_err();
        assert!(e.to_string().contains("file-cert"), "{e}");
        let root = UpstreamTlsContext {
            common_tls_context: Some(ctx("default", "my-roots", None)),
            ..Default::default()
        };
        assert!(UpstreamTls::from_socket(Some(&socket(&root))).is_err());
        assert_eq!(UpstreamTls::from_socket(None).unwrap(), None);
    }

    #[test]
    fn servers_must_require_a_client_certificate() {
        let mut d = DownstreamTlsContext {
            common_tls_context: Some(ctx("default", "ROOTCA", None)),
            ..Default::default()
        };
        assert!(ServerTls::from_socket(Some(&socket(&d))).is_err());
        d.require_client_certificate =
            Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
        let s = ServerTls::from_socket(Some(&socket(&d))).unwrap().unwrap();
        assert!(s.require_client_certificate);
    }
}
