//! Reaching ports inside a cluster (meshd's debug API, a proxy's admin API) from meshctl.
//!
//! This module owns the local end of those connections. [`Forward`] listens on a local
//! address (127.0.0.1 and a free port unless told otherwise) and carries each accepted
//! connection to one pod port, so the commands that speak to `IP:PORT` in local mode
//! (proxy-status, proxy-config, dashboard) work unchanged against a cluster. Two ways:
//!
//! - [`Transport::PortForward`], the default and what istioctl and kubectl do: the pod's
//!   `portforward` subresource (`/api/v1/namespaces/NS/pods/NAME/portforward?ports=P`)
//!   upgraded to a websocket by kube's client (`Client::connect`, subprotocol
//!   `v4.channel.k8s.io`, the framing kube's `Api::<Pod>::portforward` speaks, relayed here
//!   so the error channel is never lost, see [`relay_stream`]). Every local connection gets
//!   its own forwarded stream; bytes flow both ways until either side closes. A message on
//!   the port's error channel (the kubelet could not connect to the port, for one) is
//!   printed on stderr and ends that connection. Needs `create` on `pods/portforward`;
//!   works where the API server cannot reach pod IPs.
//! - [`Transport::ApiProxy`]: plain HTTP through the API server's proxy subresource
//!   (`.../pods/NAME:PORT/proxy/...`, `.../services/NAME:PORT/proxy/...`), request by
//!   request. A fallback for clusters where websocket upgrades are blocked on the way to
//!   the API server; it needs the API server to reach the pod network and `get` on
//!   `pods/proxy` or `services/proxy`.
//!
//! It also resolves what to forward to: a pod by name (which must be Running), or a Ready
//! pod behind a Deployment's or a Service's selector.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::ClusterArgs;

/// How long closing one forwarded stream may take once both local directions are done.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long the API server may take to answer a lookup or a port-forward upgrade.
const API_TIMEOUT: Duration = Duration::from_secs(30);
/// The pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How meshctl reaches a port inside the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// The pod's portforward subresource over a websocket (kubectl port-forward).
    #[default]
    PortForward,
    /// HTTP through the API server's proxy subresource (needs the API server to reach
    /// pod IPs).
    ApiProxy,
}

/// What to forward to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A pod by name; it must be Running.
    Pod { namespace: String, name: String },
    /// A Ready pod of a Deployment (its `spec.selector.matchLabels`).
    Deployment { namespace: String, name: String },
    /// A Ready pod behind a Service (its `spec.selector`), the Service port mapped to the
    /// pod's target port.
    Service { namespace: String, name: String },
}

impl Upstream {
    pub fn namespace(&self) -> &str {
        match self {
            Upstream::Pod { namespace, .. }
            | Upstream::Deployment { namespace, .. }
            | Upstream::Service { namespace, .. } => namespace,
        }
    }

    /// Parses `NAME`, `pod/NAME`, `deploy/NAME` or `deployment/NAME` (kubectl's forms);
    /// `NAME.NAMESPACE` names the namespace when `namespace` is not given.
    pub fn parse(text: &str, namespace: Option<&str>, default_ns: &str) -> Result<Upstream> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => (kind, name),
            None => ("pod", text),
        };
        if name.is_empty() {
            bail!("{text:?}: no name");
        }
        // The last dot, as istioctl and proxy-status split NAME.NAMESPACE.
        let (name, ns) = match (namespace, name.rsplit_once('.')) {
            (Some(ns), _) => (name.to_owned(), ns.to_owned()),
            (None, Some((n, ns))) if kind == "pod" || kind == "po" || kind == "pods" => {
                (n.to_owned(), ns.to_owned())
            }
            (None, _) => (name.to_owned(), default_ns.to_owned()),
        };
        match kind {
            "pod" | "po" | "pods" => Ok(Upstream::Pod {
                namespace: ns,
                name,
            }),
            "deploy" | "deployment" | "deployments" => Ok(Upstream::Deployment {
                namespace: ns,
                name,
            }),
            "svc" | "service" | "services" => Ok(Upstream::Service {
                namespace: ns,
                name,
            }),
            other => bail!("{text:?}: {other:?} is not pod, deploy or svc"),
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Pod { namespace, name } => write!(f, "pod {namespace}/{name}"),
            Upstream::Deployment { namespace, name } => {
                write!(f, "deployment {namespace}/{name}")
            }
            Upstream::Service { namespace, name } => write!(f, "service {namespace}/{name}"),
        }
    }
}

/// The proxy path of a Service port.
pub fn service_target(namespace: &str, service: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy")
}

/// The proxy path of a pod port.
pub fn pod_target(namespace: &str, pod: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy")
}

/// Where a forward ends: one port of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPort {
    pub namespace: String,
    pub pod: String,
    pub port: u16,
}

impl std::fmt::Display for PodPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pod {}/{} port {}", self.namespace, self.pod, self.port)
    }
}

/// The errors a running forward met, each printed on stderr once.
#[derive(Debug, Default, Clone)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl Errors {
    fn report(&self, message: String) {
        let mut seen = match self.0.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !seen.contains(&message) {
            eprintln!("error: {message}");
            seen.push(message);
        }
    }
}

/// A running forward; it stops when dropped.
pub struct Forward {
    /// The local address it listens on.
    pub addr: SocketAddr,
    /// The pod port behind it (for [`Transport::ApiProxy`] to a Service: the Service).
    pub target: String,
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
    /// Connects to the cluster, resolves `upstream` to a pod (checking it is Running) and
    /// starts forwarding `bind` (port 0: a free one) to its `port`. Runs on its own thread,
    /// so callers may use it from blocking code or from another runtime.
    pub fn start(
        cluster: &ClusterArgs,
        upstream: &Upstream,
        port: u16,
        transport: Transport,
        bind: SocketAddr,
    ) -> Result<Forward> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the forward's runtime")?;
        // The client belongs to the runtime it is created on.
        let setup = async {
            let client = cluster.client().await?;
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("listening on {bind}"))?;
            let addr = listener.local_addr().context("the local address")?;
            let target = match (transport, upstream) {
                (Transport::ApiProxy, Upstream::Service { namespace, name }) => {
                    let path = service_target(namespace, name, port);
                    tokio::spawn(serve_api_proxy(listener, client, path));
                    format!("service {namespace}/{name} port {port}")
                }
                // The API server checks the pod itself and says why it cannot proxy.
                (Transport::ApiProxy, Upstream::Pod { namespace, name }) => {
                    let path = pod_target(namespace, name, port);
                    tokio::spawn(serve_api_proxy(listener, client, path));
                    format!("pod {namespace}/{name} port {port}")
                }
                (Transport::ApiProxy, _) => {
                    let to = resolve(&client, upstream, port).await?;
                    let path = pod_target(&to.namespace, &to.pod, to.port);
                    tokio::spawn(serve_api_proxy(listener, client, path));
                    to.to_string()
                }
                (Transport::PortForward, _) => {
                    let to = resolve(&client, upstream, port).await?;
                    let target = to.to_string();
                    tokio::spawn(serve_port_forward(listener, client, to, Errors::default()));
                    target
                }
            };
            anyhow::Ok((addr, target))
        };
        let (addr, target) = runtime
            .block_on(async { tokio::time::timeout(API_TIMEOUT, setup).await })
            .map_err(|_| anyhow!("the API server did not answer within {API_TIMEOUT:?}"))??;
        Ok(Forward {
            addr,
            target,
            runtime: Some(runtime),
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The pod and port `upstream` leads to. A pod named outright must be Running; behind a
/// Deployment or Service, the first Running and Ready pod (by name) is chosen.
pub async fn resolve(client: &Client, upstream: &Upstream, port: u16) -> Result<PodPort> {
    let ns = upstream.namespace().to_owned();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match upstream {
        Upstream::Pod { name, .. } => {
            let pod = match pods.get_opt(name).await {
                Ok(Some(pod)) => pod,
                Ok(None) => bail!("pod {ns}/{name} not found"),
                Err(e) => {
                    return Err(api_error(e)).with_context(|| format!("reading pod {ns}/{name}"));
                }
            };
            let phase = phase(&pod);
            if phase != "Running" {
                bail!(
                    "pod {ns}/{name} is {phase}, not Running: nothing to forward to (kubectl describe pod {name} -n {ns})"
                );
            }
            Ok(PodPort {
                namespace: ns,
                pod: name.clone(),
                port,
            })
        }
        Upstream::Deployment { name, .. } => {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let deployment = match deployments.get_opt(name).await {
                Ok(Some(d)) => d,
                Ok(None) => bail!("deployment {ns}/{name} not found"),
                Err(e) => {
                    return Err(api_error(e))
                        .with_context(|| format!("reading deployment {ns}/{name}"));
                }
            };
            let selector = deployment
                .spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.clone())
                .unwrap_or_default();
            if selector.is_empty() {
                bail!("deployment {ns}/{name} has no spec.selector.matchLabels");
            }
            let pod = ready_pod(&pods, &selector, &upstream.to_string()).await?;
            Ok(PodPort {
                namespace: ns,
                pod: pod.name_any(),
                port,
            })
        }
        Upstream::Service { name, .. } => {
            let services: Api<Service> = Api::namespaced(client.clone(), &ns);
            let service = match services.get_opt(name).await {
                Ok(Some(s)) => s,
                Ok(None) => bail!("service {ns}/{name} not found"),
                Err(e) => {
                    return Err(api_error(e))
                        .with_context(|| format!("reading service {ns}/{name}"));
                }
            };
            let spec = service.spec.unwrap_or_default();
            let selector = spec.selector.unwrap_or_default();
            if selector.is_empty() {
                bail!("service {ns}/{name} has no selector: no pods to forward to");
            }
            let target = spec
                .ports
                .unwrap_or_default()
                .into_iter()
                .find(|p| u16::try_from(p.port).ok() == Some(port))
                .and_then(|p| p.target_port)
                .unwrap_or(IntOrString::Int(i32::from(port)));
            let pod = ready_pod(&pods, &selector, &upstream.to_string()).await?;
            let port = match target {
                IntOrString::Int(n) => u16::try_from(n)
                    .map_err(|_| anyhow!("service {ns}/{name}: target port {n} out of range"))?,
                IntOrString::String(named) => container_port(&pod, &named).ok_or_else(|| {
                    anyhow!(
                        "service {ns}/{name}: pod {} has no container port named {named:?}",
                        pod.name_any()
                    )
                })?,
            };
            Ok(PodPort {
                namespace: ns,
                pod: pod.name_any(),
                port,
            })
        }
    }
}

/// `kube::Error` with an API status shown as the server's message.
fn api_error(e: kube::Error) -> anyhow::Error {
    match e {
        kube::Error::Api(s) => anyhow!("{} ({}, {})", s.message, s.reason, s.code),
        other => anyhow::Error::new(other),
    }
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into())
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn container_port(pod: &Pod, name: &str) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// The first Running and Ready pod (by name) matching `selector`.
async fn ready_pod(
    pods: &Api<Pod>,
    selector: &BTreeMap<String, String>,
    what: &str,
) -> Result<Pod> {
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut found = pods
        .list(&ListParams::default().labels(&labels))
        .await
        .map_err(api_error)
        .with_context(|| format!("listing the pods of {what} ({labels})"))?
        .items;
    found.sort_by_key(|p| p.name_any());
    if let Some(pod) = found.iter().find(|p| phase(p) == "Running" && ready(p)) {
        return Ok(pod.clone());
    }
    if found.is_empty() {
        bail!("no pod of {what} ({labels})");
    }
    let states: Vec<String> = found
        .iter()
        .map(|p| {
            let ready = if ready(p) { "Ready" } else { "not Ready" };
            format!("{} ({}, {ready})", p.name_any(), phase(p))
        })
        .collect();
    bail!("no Running and Ready pod of {what}: {}", states.join(", "))
}

async fn serve_port_forward(
    listener: tokio::net::TcpListener,
    client: Client,
    to: PodPort,
    errors: Errors,
) {
    let to = Arc::new(to);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: do not spin.
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        let (client, to, errors) = (client.clone(), to.clone(), errors.clone());
        tokio::spawn(async move { forward_connection(&client, &to, stream, &errors).await });
    }
}

/// One local connection: its own port-forward websocket to the pod port, bytes both ways
/// until either side is done; what the error channel says is reported.
async fn forward_connection(
    client: &Client,
    to: &PodPort,
    local: tokio::net::TcpStream,
    errors: &Errors,
) {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/portforward?ports={}",
        to.namespace, to.pod, to.port
    );
    let request = match hyper::Request::get(path).body(Vec::new()) {
        Ok(r) => r,
        Err(e) => {
            errors.report(format!("port-forward to {to}: {e}"));
            return;
        }
    };
    let ws = match tokio::time::timeout(API_TIMEOUT, client.connect(request)).await {
        Ok(Ok(connection)) => connection.into_stream(),
        Ok(Err(e)) => {
            errors.report(format!("port-forward to {to}: {:#}", api_error(e)));
            return;
        }
        Err(_) => {
            errors.report(format!(
                "port-forward to {to}: no upgrade from the API server within {API_TIMEOUT:?}"
            ));
            return;
        }
    };
    relay_stream(ws, local, to, errors).await;
}

/// Channels of the port-forward framing (one port): data, and the kubelet's errors.
const DATA: u8 = 0;
const ERROR: u8 = 1;

/// Relays one local connection over one port-forward websocket (`v4.channel.k8s.io`: each
/// binary message starts with its channel byte; each channel first carries the port, 2
/// bytes little-endian). Frames from the pod side are read before local bytes are sent, and
/// reading goes on after a send fails, so an error the kubelet sent before closing is never
/// lost (kube's `Portforwarder` drops it when a write to the closed socket fails first).
/// What the error channel said, or why the stream broke, is reported before the local side
/// sees the end of the stream.
async fn relay_stream<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    local: tokio::net::TcpStream,
    to: &PodPort,
    errors: &Errors,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut local_read, mut local_write) = local.into_split();
    let mut buf = vec![0u8; 16 * 1024];
    let mut port_seen = [false; 2];
    let mut reading_local = true;
    // Once the local side is done: how long the far side may take to close.
    let mut closing_by: Option<tokio::time::Instant> = None;
    let mut failure: Option<String> = None;
    loop {
        let deadline = closing_by.unwrap_or_else(|| tokio::time::Instant::now() + CLOSE_GRACE);
        tokio::select! {
            frame = ws.next() => {
                let message = match frame {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        failure.get_or_insert_with(|| format!("the stream broke: {e}"));
                        break;
                    }
                    None => break,
                };
                let Message::Binary(bytes) = message else {
                    if message.is_close() {
                        break;
                    }
                    continue;
                };
                let Some((&channel, data)) = bytes.split_first() else {
                    continue;
                };
                if let Some(seen) = port_seen.get_mut(usize::from(channel))
                    && !*seen
                {
                    if data != to.port.to_le_bytes() {
                        failure = Some(format!(
                            "the API server opened channel {channel} with {data:?}, not port {}",
                            to.port
                        ));
                        break;
                    }
                    *seen = true;
                    continue;
                }
                match channel {
                    // The local side is gone.
                    DATA if local_write.write_all(data).await.is_err() => break,
                    ERROR => {
                        failure = Some(String::from_utf8_lossy(data).trim().to_owned());
                    }
                    // Data written; v5's close signals; channels of ports not asked for.
                    _ => {}
                }
            }
            read = local_read.read(&mut buf), if reading_local => match read {
                Ok(0) | Err(_) => {
                    // The framing has no half-close: the local side is done, so is the stream.
                    reading_local = false;
                    closing_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    let _ = ws.send(Message::Close(None)).await;
                }
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(DATA);
                    frame.extend_from_slice(&buf[..n]);
                    if ws.send(Message::binary(frame)).await.is_err() {
                        // The far side closed: read what it sent before.
                        reading_local = false;
                        closing_by = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline), if closing_by.is_some() => break,
        }
    }
    if let Some(message) = failure {
        errors.report(format!("port-forward to {to}: {message}"));
    }
    let _ = local_write.shutdown().await;
    drop(local_write);
    drop(local_read);
    let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(None)).await;
}

async fn serve_api_proxy(listener: tokio::net::TcpListener, client: Client, target: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_like_kubectl() {
        let pod = |ns: &str, name: &str| Upstream::Pod {
            namespace: ns.into(),
            name: name.into(),
        };
        assert_eq!(
            Upstream::parse("web-1", None, "default").unwrap(),
            pod("default", "web-1")
        );
        assert_eq!(
            Upstream::parse("web-1.shop", None, "default").unwrap(),
            pod("shop", "web-1")
        );
        assert_eq!(
            Upstream::parse("pod/web-1", Some("shop"), "default").unwrap(),
            pod("shop", "web-1")
        );
        assert_eq!(
            Upstream::parse("deploy/web", Some("shop"), "default").unwrap(),
            Upstream::Deployment {
                namespace: "shop".into(),
                name: "web".into()
            }
        );
        // A dot in a deployment name is part of the name.
        assert_eq!(
            Upstream::parse("deployment/web.v2", None, "default").unwrap(),
            Upstream::Deployment {
                namespace: "default".into(),
                name: "web.v2".into()
            }
        );
        assert!(Upstream::parse("job/x", None, "default").is_err());
        assert!(Upstream::parse("deploy/", None, "default").is_err());
    }
}
