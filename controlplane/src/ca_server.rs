//! Istio's CA service on 15012, over mutual TLS.
//!
//! This module owns serving `istio.v1.auth.IstioCertificateService/CreateCertificate`:
//! TLS with meshd's serving certificate (signed by the mesh root, so sidecars verify meshd
//! with the trust bundle), HTTP/2, one unary gRPC method decoded and encoded by tonic's
//! server codec. The handshake asks for a client certificate without requiring one
//! ([`crate::ca_peer`]). A caller is authenticated, in this order:
//! - by its client certificate, when it presents a workload certificate of the mesh
//!   (chaining to a root of the trust bundle, both during a root rotation, and not
//!   expired): the caller is that SPIFFE id and may ask for that same id only, token or
//!   not (renewal, as Istio's CA allows);
//! - otherwise by `authorization: Bearer TOKEN` (first issuance, or a certificate that did
//!   not verify, whose reason is logged): in local mode the token of the CA directory, and
//!   the CSR's identity must belong to a workload of the current registry; in Kubernetes
//!   mode its service-account token, reviewed by the API server ([`crate::ca_kube`]), and
//!   the CSR may only ask for that service account's identity.
//!
//! Either way the identity must be in the mesh's trust domain. Every refusal is logged
//! with why. The server also runs the root rotation ([`crate::ca_rotation::keep`]) and,
//! when the signing root changes, serves a certificate from the new root to the next
//! connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::identity::SpiffeId;
use mesh_core::identity::{
    CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tonic::Status;
use tracing::{debug, info, warn};

use crate::ca::{Ca, CaError, registry_knows};
use crate::ca_kube::{self, ServiceAccount, TokenError};
use crate::ca_peer::{OptionalClientCert, PeerCert};
use crate::source::ConfigState;

/// The default CA address (DESIGN.md: 15012, mTLS + CA).
pub const DEFAULT_CA_ADDRESS: &str = "127.0.0.1:15012";
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS config: meshd's serving certificate, a client certificate asked for
/// (not required), ALPN h2.
pub fn tls_config(ca: &Ca, ip: std::net::IpAddr) -> Result<rustls::ServerConfig, CaError> {
    let (chain, key) = ca.serving_identity(ip)?;
    server_config(chain, key)
}

/// The server's TLS config for DNS names `names` as well as `ip` (in a cluster sidecars
/// dial meshd's Service by name: `meshd.NAMESPACE.svc`).
pub fn tls_config_named(
    ca: &Ca,
    names: Vec<String>,
    ip: std::net::IpAddr,
) -> Result<rustls::ServerConfig, CaError> {
    let (chain, key) = ca.serving_identity_for(names, &[ip])?;
    server_config(chain, key)
}

fn server_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, CaError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clients = Arc::new(OptionalClientCert::new(&provider));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Sign(e.to_string()))?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)
        .map_err(|e| CaError::Sign(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// How callers are authenticated.
#[derive(Clone)]
pub enum CallerAuth {
    /// Local mode: the CA directory's token.
    Token(String),
    /// Kubernetes mode: a service-account token, reviewed by the API server.
    Kube(kube::Client),
}

/// What the method needs: the CA, the current config (trust domain, registry), how
/// callers prove who they are and, per connection, the caller's client certificate.
#[derive(Clone)]
struct Handler {
    ca: Arc<Ca>,
    config: watch::Receiver<Arc<ConfigState>>,
    auth: CallerAuth,
    peer: PeerCert,
}

/// Who a caller turned out to be.
#[derive(Debug)]
enum Caller {
    /// Its workload certificate of the mesh names this identity.
    Certificate(SpiffeId),
    /// Local mode: it knows the CA directory's token.
    LocalToken,
    /// Kubernetes mode: its token belongs to this service account.
    ServiceAccount(ServiceAccount),
}

impl Caller {
    fn may_ask_for(&self, id: &SpiffeId, config: &ConfigState) -> bool {
        match self {
            Caller::Certificate(own) => own == id,
            Caller::LocalToken => registry_knows(&config.snapshot.registry, id),
            Caller::ServiceAccount(sa) => sa.owns(id),
        }
    }

    /// Who the caller is, for a refusal's reason (None: the local token, which may ask for
    /// any identity a workload runs as).
    fn named(&self) -> Option<String> {
        match self {
            Caller::Certificate(id) => Some(format!("the caller's certificate is for {id}")),
            Caller::LocalToken => None,
            Caller::ServiceAccount(sa) => Some(format!("the caller is {sa}")),
        }
    }
}

impl tonic::server::UnaryService<IstioCertificateRequest> for Handler {
    type Response = IstioCertificateResponse;
    type Future = Pin<
        Box<dyn Future<Output = Result<tonic::Response<IstioCertificateResponse>, Status>> + Send>,
    >;

    fn call(&mut self, req: tonic::Request<IstioCertificateRequest>) -> Self::Future {
        let handler = self.clone();
        Box::pin(async move { handler.create(req).await.map(tonic::Response::new) })
    }
}

impl Handler {
    /// Who the caller is: the identity of its verified client certificate, else whoever
    /// its token says.
    async fn authenticate(
        &self,
        req: &tonic::Request<IstioCertificateRequest>,
    ) -> Result<Caller, Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        // Why the certificate did not count, added to a token refusal.
        let cert_note = match &self.peer {
            PeerCert::Verified(id) => {
                debug!(identity = %id, token = presented.is_some(), "caller authenticated by its certificate");
                return Ok(Caller::Certificate(id.clone()));
            }
            PeerCert::Refused(why) => {
                warn!(reason = %why, token = presented.is_some(), "client certificate not accepted; the token decides");
                format!(" (the client certificate was not accepted: {why})")
            }
            PeerCert::None => String::new(),
        };
        match &self.auth {
            CallerAuth::Token(token) => {
                if presented == Some(token.as_str()) {
                    debug!("caller authenticated by the local token");
                    return Ok(Caller::LocalToken);
                }
                warn!(
                    reason = "missing or wrong token",
                    "certificate request refused"
                );
                Err(Status::unauthenticated(format!(
                    "authenticate with the token in meshd's CA directory{cert_note}"
                )))
            }
            CallerAuth::Kube(client) => {
                let result = match presented {
                    None => Err(TokenError::Missing),
                    Some(token) => ca_kube::review_token(client, token).await,
                };
                result.map(Caller::ServiceAccount).map_err(|e| {
                    warn!(reason = %e, "certificate request refused");
                    match e {
                        TokenError::Review(_) => Status::unavailable(e.to_string()),
                        _ => Status::unauthenticated(format!("{e}{cert_note}")),
                    }
                })
            }
        }
    }

    async fn create(
        self,
        req: tonic::Request<IstioCertificateRequest>,
    ) -> Result<IstioCertificateResponse, Status> {
        let caller = self.authenticate(&req).await?;
        let msg = req.get_ref();
        let requested = u64::try_from(msg.validity_duration)
            .ok()
            .map(Duration::from_secs);
        let config = self.config.borrow().clone();
        let td = config.snapshot.mesh.trust_domain().to_owned();
        // A certificate's holder may ask for its own identity only, and so may a service
        // account; a local token holder for any identity a workload of the registry runs as.
        let allowed = |id: &SpiffeId| caller.may_ask_for(id, &config);
        match self.ca.sign_workload(&msg.csr, requested, &td, allowed) {
            Ok((id, cert_chain)) => {
                let by = match &caller {
                    Caller::Certificate(_) => "certificate",
                    Caller::LocalToken | Caller::ServiceAccount(_) => "token",
                };
                let serial = cert_chain
                    .first()
                    .map(|c| crate::ca_rotation::serial_of(c))
                    .unwrap_or_default();
                info!(identity = %id, serial = %serial, auth = by, "certificate issued");
                Ok(IstioCertificateResponse { cert_chain })
            }
            Err(CaError::Unknown(asked)) if caller.named().is_some() => {
                let who = caller.named().unwrap_or_default();
                let reason = format!("{who}; the CSR asks for {asked}");
                warn!(reason = %reason, "certificate request refused");
                Err(Status::permission_denied(reason))
            }
            Err(e) => {
                warn!(reason = %e, "certificate request refused");
                Err(match e {
                    CaError::Unknown(_) | CaError::TrustDomain { .. } => {
                        Status::permission_denied(e.to_string())
                    }
                    CaError::Sign(_) | CaError::Io { .. } | CaError::Root { .. } => {
                        Status::internal(e.to_string())
                    }
                    _ => Status::invalid_argument(e.to_string()),
                })
            }
        }
    }

    async fn route(self, req: Request<Incoming>) -> Response<tonic::body::Body> {
        if req.uri().path() != CREATE_CERTIFICATE_PATH {
            return Status::unimplemented(format!("{} is not served", req.uri().path()))
                .into_http();
        }
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
        grpc.unary(self, req).await
    }
}

fn ca_generation_changed(ca: &Ca, seen: &mut u64) -> bool {
    let now = ca.generation();
    std::mem::replace(seen, now) != now
}

/// Serves the CA on `listener` until `stop` turns true. `names`: the DNS names of the serving
/// certificate when it is made again from a rotated root (None: [`tls_config`]'s).
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    ca: Arc<Ca>,
    auth: CallerAuth,
    names: Option<Vec<String>>,
    config: watch::Receiver<Arc<ConfigState>>,
    mut stop: watch::Receiver<bool>,
) {
    let rotation = tokio::spawn(crate::ca_rotation::keep(ca.clone(), stop.clone()));
    let mut acceptor = TlsAcceptor::from(Arc::new(tls));
    let mut generation = ca.generation();
    let handler = Handler {
        ca,
        config,
        auth,
        peer: PeerCert::None,
    };
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "CA accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => {
                let _ = rotation.await;
                return;
            }
        };
        // A rotated root: meshd's own certificate comes from it from now on, so sidecars
        // that trust only the new root still reach the CA.
        if ca_generation_changed(&handler.ca, &mut generation)
            && let Ok(local) = listener.local_addr()
        {
            let tls = match &names {
                Some(names) => tls_config_named(&handler.ca, names.clone(), local.ip()),
                None => tls_config(&handler.ca, local.ip()),
            };
            match tls {
                Ok(tls) => acceptor = TlsAcceptor::from(Arc::new(tls)),
                Err(e) => warn!(error = %e, "CA serving certificate from the new root failed"),
            }
        }
        let (acceptor, mut handler, mut stop) = (acceptor.clone(), handler.clone(), stop.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    warn!(client.addr = %peer, reason = %e, "CA TLS handshake failed");
                    return;
                }
                Err(_) => {
                    warn!(client.addr = %peer, "CA TLS handshake timed out");
                    return;
                }
            };
            // The client certificate, judged against the trust bundle of this moment.
            if let Some(certs) = tls.get_ref().1.peer_certificates() {
                let bundle = crate::ca_peer::trust_bundle(&handler.ca).await;
                handler.peer = crate::ca_peer::verify_peer(
                    Some(certs),
                    &bundle,
                    rustls::pki_types::UnixTime::now(),
                );
            }
            let svc = hyper::service::service_fn(move |req| {
                let h = handler.clone();
                async move { Ok::<_, Infallible>(h.route(req).await) }
            });
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r {
                    warn!(client.addr = %peer, error = %e, "CA connection ended");
                },
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}
