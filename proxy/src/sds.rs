//! SDS for Envoy over a Unix socket.
//!
//! This module owns serving the workload's certificate to Envoy in agent mode, as Istio's
//! agent does: `SecretDiscoveryService/StreamSecrets` (state of the world) on a Unix socket
//! the bootstrap's `sds-grpc` cluster names, with two resources, `default` (certificate
//! chain and key) and `ROOTCA` (the trust bundle as a validation context). A stream gets the
//! secrets it asks for as soon as a certificate is there and again on every rotation; an
//! ACK (same names, the last nonce) gets nothing.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::identity::{SDS_DEFAULT, SDS_ROOTCA};
use prost::{Message, Name};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::identity::WorkloadCert;

/// The bootstrap's cluster for SDS.
pub const SDS_CLUSTER: &str = "sds-grpc";

type Certs = watch::Receiver<Option<Arc<WorkloadCert>>>;

fn inline(bytes: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(
            bytes.as_bytes().to_vec(),
        )),
        ..Default::default()
    })
}

/// The secret named `name` from `cert`, if it is one SDS serves.
pub fn secret(name: &str, cert: &WorkloadCert) -> Option<Secret> {
    let r#type = match name {
        SDS_DEFAULT => secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(&cert.chain_pem),
            private_key: inline(&cert.key_pem),
            ..Default::default()
        }),
        SDS_ROOTCA => secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: inline(&cert.root_pem),
            ..Default::default()
        }),
        _ => return None,
    };
    Some(Secret {
        name: name.to_owned(),
        r#type: Some(r#type),
    })
}

/// The SDS service.
pub struct Sds {
    certs: Certs,
}

impl Sds {
    pub fn new(certs: Certs) -> Self {
        Sds { certs }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl SecretDiscoveryService for Sds {
    type DeltaSecretsStream = BoxStream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = BoxStream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented("delta SDS is not served"))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let cert = self
            .certs
            .borrow()
            .clone()
            .ok_or_else(|| Status::unavailable("no certificate yet"))?;
        Ok(Response::new(response(
            &request.get_ref().resource_names,
            &cert,
            1,
        )))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(stream(request.into_inner(), self.certs.clone(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn response(names: &[String], cert: &WorkloadCert, version: u64) -> DiscoveryResponse {
    let resources: Vec<Any> = names
        .iter()
        .filter_map(|n| secret(n, cert))
        .map(|s| Any {
            type_url: Secret::type_url(),
            value: s.encode_to_vec(),
        })
        .collect();
    DiscoveryResponse {
        version_info: version.to_string(),
        resources,
        type_url: Secret::type_url(),
        nonce: format!("{version}-{}", cert.serial),
        ..Default::default()
    }
}

async fn stream(
    mut requests: Streaming<DiscoveryRequest>,
    mut certs: Certs,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let mut names: Option<Vec<String>> = None;
    let mut version = 0u64;
    let mut sent: Option<(Vec<String>, u64)> = None;
    loop {
        let current = certs.borrow_and_update().clone();
        if let (Some(n), Some(cert)) = (&names, current) {
            // Generation of the certificate: the serial changes with every rotation.
            let due = match &sent {
                Some((sent_names, _)) => sent_names != n,
                None => true,
            };
            if due {
                version += 1;
                let resp = response(n, &cert, version);
                debug!(names = ?n, version, serial = %cert.serial, "SDS push");
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
                sent = Some((n.clone(), version));
            }
        }
        tokio::select! {
            msg = requests.message() => match msg {
                Ok(Some(req)) => {
                    if let Some(err) = &req.error_detail {
                        warn!(message = %err.message, "Envoy NACKed a secret");
                    }
                    let mut asked = req.resource_names.clone();
                    asked.sort();
                    names = Some(asked);
                }
                Ok(None) => return,
                Err(e) => {
                    debug!(error = %e, "SDS stream ended");
                    return;
                }
            },
            r = certs.changed() => {
                if r.is_err() {
                    return;
                }
                // A new certificate: push again.
                sent = None;
            }
        }
    }
}

/// Serves SDS on the Unix socket `path` (replacing a stale socket file) until `stop`
/// turns true.
pub async fn serve(
    path: &Path,
    certs: Certs,
    stop: watch::Receiver<bool>,
) -> Result<(), std::io::Error> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let result = serve_listener(listener, certs, stop).await;
    let _ = std::fs::remove_file(path);
    result
}

/// Serves SDS on a bound Unix listener until `stop` turns true.
pub async fn serve_listener(
    listener: UnixListener,
    certs: Certs,
    mut stop: watch::Receiver<bool>,
) -> Result<(), std::io::Error> {
    if let Ok(addr) = listener.local_addr() {
        info!(sds.path = ?addr.as_pathname(), "SDS serving");
    }
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(
            SecretDiscoveryServiceServer::new(Sds::new(certs)),
            UnixListenerStream::new(listener),
            async move {
                let _ = stop.changed().await;
            },
        )
        .await
        .map_err(std::io::Error::other)
}
