//! The workload's certificate: request, keep current, rotate.
//!
//! This module owns the proxy's side of meshd's CA: a fresh key (ECDSA P-256) and CSR per
//! request naming the workload's SPIFFE id, `CreateCertificate` called over TLS (meshd's
//! certificate verified against the trust bundle, by the CA's host name when it has one),
//! a token as `authorization: Bearer` (local mode: the CA directory's; Kubernetes: the
//! projected service-account token, re-read on every request as the kubelet rotates it),
//! and on renewal the certificate in force as the TLS client certificate while it is
//! valid (meshd's CA then knows the caller without the token,
//! `mesh_controlplane::ca_peer`; the token is still sent unless
//! [`CaClientOptions::renew_with_certificate_only`], so an older meshd keeps working, and
//! a token that cannot be read does not stop a renewal the certificate can make), and a
//! rotation loop that asks again when 20% of the lifetime is left (retrying with
//! back-off on failure). Between requests the loop reads the trust bundle every second
//! (meshd rewrites it during a root rotation, `mesh_controlplane::ca_rotation`): new roots
//! are published with the certificate in force, and when the bundle's first root (the one
//! meshd signs with) changes, a new certificate is asked for at once. The current certificate is
//! published through a `watch` as [`WorkloadCert`] for SDS ([`crate::sds`]) and the native
//! engine. The unary gRPC call is framed here (five-byte prefix, `grpc-status` trailer):
//! one request per rotation does not need a channel stack.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::identity::{
    CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse, SpiffeId,
};
use prost::Message;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tracing::{debug, info, warn};

/// The trust bundle's file name in the CA directory (as meshd writes it).
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// The token's file name in the CA directory.
pub const TOKEN_FILE: &str = "token";
/// Where Istio's injector mounts the projected service-account token (audience
/// `istio-ca`).
pub const KUBE_TOKEN_FILE: &str = "/var/run/secrets/tokens/istio-token";
/// Where Istio's injector mounts the trust bundle (ConfigMap `istio-ca-root-cert`).
pub const KUBE_ROOT_CERT_FILE: &str = "/var/run/secrets/istio/root-cert.pem";
/// Rotate when this fraction of the lifetime is left.
const ROTATE_LEFT: f64 = 0.2;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the trust bundle is read between requests.
const BUNDLE_POLL: Duration = Duration::from_secs(1);

/// Where the CA is and how to reach it.
#[derive(Clone, Debug)]
pub struct CaClientOptions {
    pub address: SocketAddr,
    /// The trust bundle meshd's certificate is verified with (PEM).
    pub root_cert: PathBuf,
    /// The bearer token, read on every request.
    pub token_file: PathBuf,
    /// The name meshd's certificate must carry (None: the address's IP).
    pub server_name: Option<String>,
    /// Lifetime to ask for (None: the CA's default).
    pub ttl: Option<Duration>,
    /// Renew with the certificate in force alone, without the token (which is then read
    /// only for the first certificate, or when the one in force has expired).
    pub renew_with_certificate_only: bool,
}

impl CaClientOptions {
    /// Local mode: the trust bundle and token of meshd's CA directory `dir`.
    pub fn in_dir(address: SocketAddr, dir: &std::path::Path) -> CaClientOptions {
        CaClientOptions {
            address,
            root_cert: dir.join(ROOT_CERT_FILE),
            token_file: dir.join(TOKEN_FILE),
            server_name: None,
            ttl: None,
            renew_with_certificate_only: false,
        }
    }
}

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the trust bundle {0} holds no certificate")]
    NoRoot(PathBuf),
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("cannot make a key or CSR: {0}")]
    Csr(String),
    #[error("cannot reach the CA at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("the CA refused: {0}")]
    Refused(String),
    #[error("the CA's answer is not usable: {0}")]
    Answer(String),
    #[error("the CA did not answer within {0:?}")]
    Timeout(Duration),
}

/// A workload certificate, its key and the trust bundle, PEM, with what a reader needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadCert {
    pub id: SpiffeId,
    /// The workload certificate first, then the rest of the chain.
    pub chain_pem: String,
    pub key_pem: String,
    /// The trust bundle (roots).
    pub root_pem: String,
    /// The leaf's serial number, hex.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl WorkloadCert {
    /// When to ask for the next one: when 20% of the lifetime is left.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_after - life.mul_f64(ROTATE_LEFT)
    }
}

/// Reads the leaf's serial and validity from a PEM chain.
fn leaf_facts(chain_pem: &str) -> Result<(String, SystemTime, SystemTime), IdentityError> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| IdentityError::Answer("no certificate in the chain".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| IdentityError::Answer(e.to_string()))?;
    let t = |ts: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(ts).unwrap_or(0));
    Ok((
        cert.raw_serial_as_string().replace(':', ""),
        t(cert.validity().not_before.timestamp()),
        t(cert.validity().not_after.timestamp()),
    ))
}

fn read(path: PathBuf) -> Result<String, IdentityError> {
    std::fs::read_to_string(&path).map_err(|source| IdentityError::Read { path, source })
}

/// Asks the CA for a certificate for `id` (a new key each time), with the token.
pub async fn request(opts: &CaClientOptions, id: &SpiffeId) -> Result<WorkloadCert, IdentityError> {
    request_with(opts, id, None).await
}

/// Whether `cert` is within its validity at `now` (only then is it presented).
pub fn is_valid_at(cert: &WorkloadCert, now: SystemTime) -> bool {
    cert.not_before <= now && now < cert.not_after
}

/// How a request authenticates, for the debug log.
fn auth_name(cert: bool, token: bool) -> &'static str {
    match (cert, token) {
        (true, true) => "certificate and token",
        (true, false) => "certificate",
        (false, true) => "token",
        (false, false) => "nothing",
    }
}

/// Asks the CA for a certificate for `id` (a new key each time), presenting `current` as
/// the TLS client certificate when given (renewal) and the token unless
/// [`CaClientOptions::renew_with_certificate_only`] says not to; with `current`, a token
/// that cannot be read is left out instead of failing the request.
pub async fn request_with(
    opts: &CaClientOptions,
    id: &SpiffeId,
    current: Option<&WorkloadCert>,
) -> Result<WorkloadCert, IdentityError> {
    let root_pem = read(opts.root_cert.clone())?;
    let token = match (current, opts.renew_with_certificate_only) {
        (Some(_), true) => None,
        (Some(_), false) => match read(opts.token_file.clone()) {
            Ok(t) => Some(t.trim().to_owned()),
            Err(e) => {
                debug!(identity = %id, error = %e, "no token; renewing with the certificate alone");
                None
            }
        },
        (None, _) => Some(read(opts.token_file.clone())?.trim().to_owned()),
    };
    debug!(
        identity = %id,
        auth = auth_name(current.is_some(), token.is_some()),
        serial = current.map(|c| c.serial.as_str()).unwrap_or(""),
        "asking the CA for a certificate"
    );
    let key = rcgen::KeyPair::generate().map_err(|e| IdentityError::Csr(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names =
        vec![rcgen::SanType::URI(id.to_string().try_into().map_err(
            |e: rcgen::Error| IdentityError::Csr(e.to_string()),
        )?)];
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| IdentityError::Csr(e.to_string()))?;
    let req = IstioCertificateRequest {
        csr,
        validity_duration: opts
            .ttl
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    };
    let call = call(opts, &root_pem, current, token.as_deref(), &req);
    let resp = tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .map_err(|_| IdentityError::Timeout(REQUEST_TIMEOUT))??;
    let mut chain = resp.cert_chain.into_iter();
    let leaf = chain
        .next()
        .ok_or_else(|| IdentityError::Answer("empty chain".into()))?;
    let rest: Vec<String> = chain.collect();
    let (serial, not_before, not_after) = leaf_facts(&leaf)?;
    // The chain without its last element (the root) is what the workload presents.
    let presented: Vec<&String> = std::iter::once(&leaf)
        .chain(rest.iter().take(rest.len().saturating_sub(1)))
        .collect();
    let chain_pem = presented
        .into_iter()
        .map(|p| p.trim_end().to_owned() + "\n")
        .collect();
    Ok(WorkloadCert {
        id: id.clone(),
        chain_pem,
        key_pem: key.serialize_pem(),
        root_pem,
        serial,
        not_before,
        not_after,
    })
}

/// TLS to meshd, verified with the trust bundle, presenting `client` (its chain and key)
/// when given; ALPN h2.
fn connector(root_pem: &str, client: Option<&WorkloadCert>) -> Result<TlsConnector, IdentityError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(root_pem.as_bytes()).flatten() {
        roots
            .add(der)
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(IdentityError::Tls("empty trust bundle".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
                .map_err(|e| IdentityError::Tls(format!("the certificate's key: {e}")))?;
            builder
                .with_client_auth_cert(certs_of(&cert.chain_pem), key)
                .map_err(|e| IdentityError::Tls(e.to_string()))?
        }
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(cfg)))
}

async fn call(
    opts: &CaClientOptions,
    root_pem: &str,
    client: Option<&WorkloadCert>,
    token: Option<&str>,
    req: &IstioCertificateRequest,
) -> Result<IstioCertificateResponse, IdentityError> {
    let addr = opts.address;
    let connect = |reason: String| IdentityError::Connect { addr, reason };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| connect(e.to_string()))?;
    let name = match &opts.server_name {
        Some(n) => ServerName::try_from(n.clone())
            .map_err(|e| IdentityError::Tls(format!("server name {n:?}: {e}")))?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let tls = connector(root_pem, client)?
        .connect(name, tcp)
        .await
        .map_err(|e| connect(format!("TLS: {e}")))?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| connect(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let payload = req.encode_to_vec();
    let mut body = BytesMut::with_capacity(payload.len() + 5);
    body.extend_from_slice(&[0]);
    body.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(&payload);
    let mut http = hyper::Request::post(format!("http://{addr}{CREATE_CERTIFICATE_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        http = http.header("authorization", format!("Bearer {token}"));
    }
    let http = http
        .body(Full::new(body.freeze()))
        .map_err(|e| IdentityError::Answer(e.to_string()))?;
    let result = async {
        let resp = send
            .send_request(http)
            .await
            .map_err(|e| connect(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let collected = body
            .collect()
            .await
            .map_err(|e| IdentityError::Answer(e.to_string()))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let status = |k: &str| {
            trailers
                .get(k)
                .or_else(|| parts.headers.get(k))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match status("grpc-status").as_deref() {
            Some("0") => {}
            Some(code) => {
                return Err(IdentityError::Refused(format!(
                    "grpc-status {code}: {}",
                    percent_decode(&status("grpc-message").unwrap_or_default())
                )));
            }
            None => {
                return Err(IdentityError::Answer(format!(
                    "no grpc-status (HTTP {})",
                    parts.status
                )));
            }
        }
        let mut bytes: Bytes = collected.to_bytes();
        if bytes.len() < 5 || bytes[0] != 0 {
            return Err(IdentityError::Answer(
                "not an uncompressed gRPC frame".into(),
            ));
        }
        bytes.advance(1);
        let len = usize::try_from(bytes.get_u32()).unwrap_or(usize::MAX);
        if bytes.len() < len {
            return Err(IdentityError::Answer("short gRPC frame".into()));
        }
        IstioCertificateResponse::decode(bytes.slice(..len))
            .map_err(|e| IdentityError::Answer(e.to_string()))
    }
    .await;
    conn.abort();
    result
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2); undoes it.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the trust bundle on disk differs from the one in force.
#[derive(Debug, PartialEq, Eq)]
pub enum BundleChange {
    /// The same roots (or the file cannot be read: keep what is in force).
    Same,
    /// Other roots, the same first one: trust them with the certificate in force.
    Roots(String),
    /// Another first root: meshd signs with it; a new certificate is due.
    Signer(String),
}

fn certs_of(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

/// Compares the bundle `on_disk` with `in_force`.
pub fn bundle_change(in_force: &str, on_disk: &str) -> BundleChange {
    let (old, new) = (certs_of(in_force), certs_of(on_disk));
    if new.is_empty() || old == new {
        BundleChange::Same
    } else if old.first() == new.first() {
        BundleChange::Roots(on_disk.to_owned())
    } else {
        BundleChange::Signer(on_disk.to_owned())
    }
}

/// Waits until `until`, reading the trust bundle every second: publishes new roots with
/// the certificate in force, and returns early (true) when a new certificate is due
/// because meshd signs with another root. False at `until`; None when `stop` turns.
async fn watch_bundle(
    opts: &CaClientOptions,
    tx: &watch::Sender<Option<Arc<WorkloadCert>>>,
    until: tokio::time::Instant,
    stop: &mut watch::Receiver<bool>,
) -> Option<bool> {
    loop {
        let tick = (tokio::time::Instant::now() + BUNDLE_POLL).min(until);
        tokio::select! {
            () = tokio::time::sleep_until(tick) => {}
            _ = stop.changed() => return None,
        }
        if tokio::time::Instant::now() >= until {
            return Some(false);
        }
        let Some(cur) = tx.borrow().clone() else {
            continue;
        };
        let path = &opts.root_cert;
        let Ok(on_disk) = std::fs::read_to_string(path) else {
            continue;
        };
        match bundle_change(&cur.root_pem, &on_disk) {
            BundleChange::Same => {}
            BundleChange::Roots(bundle) => {
                info!(
                    identity = %cur.id,
                    roots = certs_of(&bundle).len(),
                    "trust bundle changed"
                );
                let mut next = (*cur).clone();
                next.root_pem = bundle;
                tx.send_replace(Some(Arc::new(next)));
            }
            BundleChange::Signer(bundle) => {
                info!(
                    identity = %cur.id,
                    roots = certs_of(&bundle).len(),
                    "the CA signs with another root: asking for a new certificate now"
                );
                return Some(true);
            }
        }
    }
}

/// Keeps `tx` holding a current certificate for `id` until `stop` turns true: asks now,
/// then again when 20% of the lifetime is left, or at once when the trust bundle's first
/// root changes; on failure retries with back-off (1 s to 30 s) while the current
/// certificate stays published.
pub async fn keep_current(
    opts: CaClientOptions,
    id: SpiffeId,
    tx: watch::Sender<Option<Arc<WorkloadCert>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        // The certificate in force authenticates the renewal while it is valid.
        let current = tx
            .borrow()
            .clone()
            .filter(|c| c.id == id && is_valid_at(c, SystemTime::now()));
        let wait = match request_with(&opts, &id, current.as_deref()).await {
            Ok(cert) => {
                backoff = Duration::from_secs(1);
                let wait = cert
                    .renew_at()
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_secs(1));
                info!(identity = %id, serial = %cert.serial, renew_in = ?wait, "certificate received");
                tx.send_replace(Some(Arc::new(cert)));
                wait
            }
            Err(e) => {
                warn!(identity = %id, error = %e, retry_in = ?backoff, "certificate request failed");
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                w
            }
        };
        let until = tokio::time::Instant::now() + wait;
        if watch_bundle(&opts, &tx, until, &mut stop).await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn renewal_is_due_with_a_fifth_of_the_lifetime_left() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = WorkloadCert {
            id: SpiffeId::new("cluster.local", "a", "b"),
            chain_pem: String::new(),
            key_pem: String::new(),
            root_pem: String::new(),
            serial: String::new(),
            not_before: t0,
            not_after: t0 + Duration::from_secs(100),
        };
        assert_eq!(c.renew_at(), t0 + Duration::from_secs(80));
    }

    #[test]
    fn bundle_changes_tell_new_roots_from_a_new_signer() {
        let pem = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.self_signed(&key).unwrap().pem()
        };
        let (a, b) = (pem("a"), pem("b"));
        let ab = format!("{a}{b}");
        let ba = format!("{b}{a}");
        assert_eq!(bundle_change(&a, &a), BundleChange::Same);
        assert_eq!(bundle_change(&a, ""), BundleChange::Same);
        assert_eq!(bundle_change(&a, &ab), BundleChange::Roots(ab.clone()));
        assert_eq!(bundle_change(&ab, &ba), BundleChange::Signer(ba.clone()));
        assert_eq!(bundle_change(&ba, &b), BundleChange::Roots(b.clone()));
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("no%20workload%3A x%"), "no workload: x%");
    }
}
