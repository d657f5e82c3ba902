//! Reaching HTTP APIs inside a cluster (meshd's debug API, a proxy's admin API) from
//! meshctl through the API server's proxy subresource
//! (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/...`, `.../pods/NAME:PORT/proxy/...`).
//!
//! [`Forward`] listens on 127.0.0.1 (a free port) and relays each HTTP request to one such
//! target, so the commands that speak to `IP:PORT` in local mode (proxy-status,
//! proxy-config) work unchanged against a cluster. This is plain HTTP over the API server's
//! proxy, not the SPDY/websocket port-forward; the API server must be allowed to reach the
//! pod (it is on most clusters; `pods/proxy` and `services/proxy` RBAC apply).

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kube::Client;

use super::ClusterArgs;

/// The proxy path of a Service port.
pub fn service_target(namespace: &str, service: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy")
}

/// The proxy path of a pod port.
pub fn pod_target(namespace: &str, pod: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy")
}

/// A running relay; it stops when dropped.
pub struct Forward {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Forward {
    /// Connects to the cluster and starts relaying 127.0.0.1:PORT to `target` (a path
    /// from [`service_target`] or [`pod_target`]). Runs on its own thread, so callers may
    /// use it from blocking code or from another runtime.
    pub fn start(cluster: &ClusterArgs, target: String) -> Result<Forward> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the relay's runtime")?;
        // The client belongs to the runtime it is created on.
        let (client, listener) = runtime.block_on(async {
            let client = cluster.client().await?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .context("binding the local relay")?;
            anyhow::Ok((client, listener))
        })?;
        let addr = listener.local_addr().context("the relay's address")?;
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, target) = (client.clone(), target.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (client, target) = (client.clone(), target.clone());
                        async move { Ok::<_, Infallible>(relay(&client, &target, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Forward {
            addr,
            runtime: Some(runtime),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn plain(code: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = code;
    r
}

async fn relay(client: &Client, target: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let method = req.method().clone();
    let content_type = req.headers().get(hyper::header::CONTENT_TYPE).cloned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut out = Request::builder()
        .method(method)
        .uri(format!("{target}{path}"));
    if let Some(ct) = content_type {
        out = out.header(hyper::header::CONTENT_TYPE, ct);
    }
    let out = match out.body(kube::client::Body::from(body)) {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let resp = match client.send(out).await {
        Ok(r) => r,
        Err(e) => {
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("through the API server: {e}"),
            );
        }
    };
    let status = resp.status();
    let content_type = resp.headers().get(hyper::header::CONTENT_TYPE).cloned();
    let bytes = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return plain(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    r
}
