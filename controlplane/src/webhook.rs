//! meshd's admission webhooks (port 15017): validation of Istio objects with mesh-core's
//! validator, so a cluster refuses what `meshctl validate` refuses, with the same field
//! paths and messages.
//!
//! This module owns the AdmissionReview exchange (admission.k8s.io/v1): `/validate`
//! answers allowed or denied with every error, and warnings as admission warnings.
//! `/inject` answers with the JSONPatch that injects the sidecar ([`crate::webhook_inject`],
//! mesh-core's injector, the one `meshctl kube-inject` uses).
//!
//! The server speaks HTTP/1.1, over TLS when meshd has a CA ([`serve_tls`], the serving
//! certificate from [`crate::webhook_tls`]; the API server calls webhooks over TLS only) or
//! plain ([`serve`]) otherwise. Tests post real AdmissionReview JSON.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mesh_core::source::load_bytes;
use mesh_core::validate::{self, Severity};
use serde_json::{Value as J, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

/// The default webhook address in a cluster (DESIGN.md: webhooks on 15017).
pub const DEFAULT_WEBHOOK_PORT: u16 = 15017;

/// Largest AdmissionReview accepted (the API server's own request limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Why a request is not an AdmissionReview meshd can answer.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReviewError {
    #[error("not an AdmissionReview: {0}")]
    NotAReview(String),
}

pub(crate) fn request_of(review: &J) -> Result<(&J, &str), ReviewError> {
    if review["kind"] != "AdmissionReview" {
        return Err(ReviewError::NotAReview(
            "kind is not AdmissionReview".into(),
        ));
    }
    let request = review
        .get("request")
        .filter(|r| r.is_object())
        .ok_or_else(|| ReviewError::NotAReview("no request".into()))?;
    let uid = request["uid"]
        .as_str()
        .ok_or_else(|| ReviewError::NotAReview("request without uid".into()))?;
    Ok((request, uid))
}

pub(crate) fn answer(
    review: &J,
    uid: &str,
    allowed: bool,
    message: Option<String>,
    warnings: Vec<String>,
) -> J {
    let api_version = review["apiVersion"]
        .as_str()
        .unwrap_or("admission.k8s.io/v1");
    let mut response = json!({"uid": uid, "allowed": allowed});
    if let Some(m) = message {
        response["status"] = json!({"code": 400, "reason": "BadRequest", "message": m});
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

/// Answers a validation AdmissionReview.
pub fn validate_review(review: &J) -> Result<J, ReviewError> {
    let (request, uid) = request_of(review)?;
    let object = &request["object"];
    if !object.is_object() {
        // DELETE carries no object: nothing to check.
        return Ok(answer(review, uid, true, None, Vec::new()));
    }
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"]
        .as_str()
        .or(request["name"].as_str())
        .unwrap_or("?");
    let origin = format!("admission/{kind}/{name}");
    let loaded = load_bytes(&origin, object.to_string().as_bytes());
    let mut errors: Vec<String> = loaded.errors.iter().map(|e| e.message.clone()).collect();
    let mut warnings = Vec::new();
    for res in &loaded.resources {
        for f in validate::validate(res) {
            let text = if f.path.is_empty() {
                f.message.clone()
            } else {
                format!("{}: {}", f.path, f.message)
            };
            match f.severity {
                Severity::Error => errors.push(text),
                Severity::Warning => warnings.push(text),
            }
        }
    }
    if errors.is_empty() {
        Ok(answer(review, uid, true, None, warnings))
    } else {
        let message = format!("configuration is invalid: {}", errors.join("; "));
        debug!(object = %origin, %message, "denied");
        Ok(answer(review, uid, false, Some(message), warnings))
    }
}

/// Answers an injection AdmissionReview: the Pod's JSONPatch from mesh-core's injector
/// ([`crate::webhook_inject`]), with meshd's settings for its namespace.
pub fn inject_review(review: &J) -> Result<J, ReviewError> {
    crate::webhook_inject::inject_review_with(
        review,
        &crate::webhook_inject::settings(&crate::webhook_tls::namespace()),
    )
}

fn respond(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    injector: &crate::webhook_inject::InjectorConfig,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let inject = match (req.method().as_str(), path.as_str()) {
        ("POST", "/validate") => false,
        ("POST", "/inject") => true,
        _ => {
            return respond(
                StatusCode::NOT_FOUND,
                json!({"error": "POST /validate or /inject"}).to_string(),
            );
        }
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return respond(
                StatusCode::BAD_REQUEST,
                json!({"error": e.to_string()}).to_string(),
            );
        }
    };
    let parsed: J = match serde_json::from_slice(&body) {
        Ok(j) => j,
        Err(e) => {
            return respond(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("not JSON: {e}")}).to_string(),
            );
        }
    };
    let answered = if inject {
        crate::webhook_inject::inject_review_with(&parsed, &injector.settings())
    } else {
        validate_review(&parsed)
    };
    match answered {
        Ok(answer) => respond(StatusCode::OK, answer.to_string()),
        Err(e) => respond(
            StatusCode::BAD_REQUEST,
            json!({"error": e.to_string()}).to_string(),
        ),
    }
}

fn default_injector() -> crate::webhook_inject::InjectorConfig {
    crate::webhook_inject::InjectorConfig::defaults(&crate::webhook_tls::namespace())
}

/// Serves the webhooks on `listener` until `stop` turns true (injecting with the default
/// settings).
pub async fn serve(listener: TcpListener, stop: watch::Receiver<bool>) {
    serve_with(listener, None, default_injector(), stop).await;
}

/// Serves the webhooks over TLS (as the API server calls them) until `stop` turns true
/// (injecting with the default settings).
pub async fn serve_tls(
    listener: TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    stop: watch::Receiver<bool>,
) {
    serve_with(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(tls)),
        default_injector(),
        stop,
    )
    .await;
}

/// Serves the webhooks, over TLS when `tls` is given, injecting with `injector`'s
/// settings, until `stop` turns true.
pub async fn serve_with_injector(
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    injector: crate::webhook_inject::InjectorConfig,
    stop: watch::Receiver<bool>,
) {
    serve_with(
        listener,
        tls.map(tokio_rustls::TlsAcceptor::from),
        injector,
        stop,
    )
    .await;
}

async fn serve_with(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    injector: crate::webhook_inject::InjectorConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "webhook accept failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        debug!(client.addr = %peer, "webhook connection");
        let (tls, injector) = (tls.clone(), injector.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let injector = injector.clone();
                async move { Ok::<_, Infallible>(handle(req, &injector).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(s)) => {
                            let _ = http.serve_connection(TokioIo::new(s), service).await;
                        }
                        Ok(Err(e)) => {
                            warn!(client.addr = %peer, reason = %e, "webhook TLS handshake failed");
                        }
                        Err(_) => warn!(client.addr = %peer, "webhook TLS handshake timed out"),
                    }
                }
            }
        });
    }
}
