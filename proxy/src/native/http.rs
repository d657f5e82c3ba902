//! The HTTP data path of one request: virtual host and route selection, CORS, fault
//! injection, direct responses and redirects, and forwarding (cluster choice by weight,
//! header mutations, rewrites, request id, mirrors, circuit breakers, host choice by load
//! balancer or hash, retries with per-try and route timeouts, outlier accounting), then the
//! response (header mutations, `x-envoy-upstream-service-time`, `server: envoy`), the access
//! log line and the metrics. `CONNECT` routes tunnel to the chosen upstream; HTTP/1.1
//! upgrades (websocket) go to one host on their own connection and are spliced after `101`.
//!
//! Envoy's answers are kept: no route 404 (flag NR), unknown cluster 503 (NC), no healthy
//! host 503 `no healthy upstream` (UH), connection failure 503 (UF), reset 503 (UR/UC),
//! timeouts 504 `upstream request timeout` (UT), circuit-breaker overflow 503 with
//! `x-envoy-overloaded: true` (UO), fault aborts `fault filter abort` (FI), delays (DI).
//!
//! Request bodies are buffered (up to 16 MiB, else 413) so that retries and mirrors can
//! resend them; response bodies stream. The route timeout bounds the wait for the response
//! headers (all tries and back-offs included), not the response body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};

use super::Proxy;
use super::cluster::{Cluster, Discovery, Host, HostAddr, Protocol, UpstreamError, hash_bytes};
use super::config::{Config, Direction, ListenerKind, ListenerSpec, RouteSource};
use super::metrics::{ConnectionSecurity, PEER_ID_HEADER, RequestLabels, peer_from_node_id};
use super::retry::TryOutcome;
use super::route::{self, Action, Forward, HashPolicy, RequestView, Route, Target, VirtualHost};

/// The body type of every response the proxy sends.
pub type Body = BoxBody<Bytes, hyper::Error>;

const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// What a connection's requests share.
pub struct Conn {
    pub proxy: Arc<Proxy>,
    pub listener: Arc<ListenerSpec>,
    pub peer: SocketAddr,
    /// The client's TLS details, on an mTLS connection.
    pub tls: Option<super::tls::PeerTls>,
}

/// What the access log and the metrics need to know of a request.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) flags: Vec<&'static str>,
    cluster: String,
    upstream_host: String,
    upstream_time: Option<Duration>,
    peer_id: Option<String>,
    /// The cluster the route names when none was picked to forward to (a fault abort):
    /// the metrics' `destination_service`, as Istio labels it.
    route_cluster: String,
    /// How the request's connection was secured: the metrics' `connection_security_policy`
    /// on the inbound side (`MutualTls` when the connection carries the client's verified
    /// certificate, [`Conn::tls`]; plaintext connections keep the default).
    pub(super) security: ConnectionSecurity,
}

/// A local reply with Envoy's shape: text body, flag.
pub(super) fn local(status: u16, body: &str) -> Response<Body> {
    let mut r = Response::new(full(body.to_owned()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    r
}

/// Hop-by-hop headers, which a proxy does not forward.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    for name in listed {
        h.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
    ] {
        h.remove(name);
    }
}

/// A version-4 UUID for `x-request-id`.
fn request_id() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn sample(per_million: u32) -> bool {
    per_million >= 1_000_000 || fastrand::u32(0..1_000_000) < per_million
}

const XFCC: &str = "x-forwarded-client-cert";

/// `x-forwarded-client-cert` as Envoy's connection manager treats it: removed, kept,
/// appended to or replaced by this connection's details (`By` this proxy's identity,
/// `Hash` of the client certificate, `Subject`, `URI` the client's identity as
/// configured), the last three only on an mTLS connection.
fn forward_client_cert(
    h: &mut HeaderMap,
    x: super::config::Xfcc,
    tls: Option<&super::tls::PeerTls>,
) {
    use super::config::XfccMode as M;
    let tls = match (x.mode, tls) {
        (M::AlwaysForwardOnly, _) => return,
        (M::Sanitize, _) | (_, None) => {
            h.remove(XFCC);
            return;
        }
        (M::ForwardOnly, Some(_)) => return,
        (_, Some(t)) => t,
    };
    let mut parts = Vec::new();
    if let Some(by) = &tls.local {
        parts.push(format!("By={by}"));
    }
    parts.push(format!("Hash={}", tls.hash));
    if x.subject {
        parts.push(format!("Subject=\"{}\"", tls.subject));
    }
    if x.uri
        && let Some(p) = &tls.peer
    {
        parts.push(format!("URI={p}"));
    }
    let mine = parts.join(";");
    let value = match (x.mode, h.get(XFCC).and_then(|v| v.to_str().ok())) {
        (M::AppendForward, Some(old)) if !old.is_empty() => format!("{old},{mine}"),
        _ => mine,
    };
    match HeaderValue::from_str(&value) {
        Ok(v) => {
            h.insert(XFCC, v);
        }
        Err(_) => {
            h.remove(XFCC);
        }
    }
}

/// Serves one request on an HTTP listener.
pub async fn handle(
    mut req: Request<Incoming>,
    conn: Arc<Conn>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let _active = super::metrics::ActiveRequest::new(&conn.proxy.metrics.downstream_rq_active);
    let config = conn.proxy.store.current();
    let listener = config
        .listeners
        .get(&conn.listener.name)
        .cloned()
        .unwrap_or_else(|| conn.listener.clone());
    let method = req.method().clone();
    let path_q = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let authority = authority_of(&req);
    let version = req.version();
    let user_agent = header_str(req.headers(), "user-agent");
    let mut request_id = header_str(req.headers(), "x-request-id");
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut out = Outcome::default();
    // A TLS connection's client presented a certificate the server config verified.
    if conn.tls.is_some() {
        out.security = ConnectionSecurity::MutualTls;
    }
    if listener.direction == Direction::Inbound {
        out.peer_id = req
            .headers()
            .get(PEER_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    if request_id.is_empty() {
        request_id = request_id_new();
    }
    if let ListenerKind::Http(h) = &listener.kind {
        let x = if conn.tls.is_some() {
            h.xfcc
        } else {
            listener.plain_xfcc
        };
        forward_client_cert(req.headers_mut(), x, conn.tls.as_ref());
    }
    let mut resp = serve(req, &config, &listener, &conn, &mut out, &request_id).await;
    // Finish the response: the peer's id is read and removed, Envoy's server header set.
    if let Some(v) = resp.headers_mut().remove(PEER_ID_HEADER)
        && let Ok(s) = v.to_str()
        && listener.direction == Direction::Outbound
    {
        out.peer_id = Some(s.to_owned());
    }
    if listener.direction == Direction::Inbound
        && let Ok(v) = HeaderValue::from_str(&conn.proxy.node_id)
    {
        resp.headers_mut().insert(PEER_ID_HEADER, v);
    }
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("envoy"));
    let status = resp.status().as_u16();
    let elapsed = start.elapsed();
    record(&conn, &listener, &out, status, elapsed);
    if conn.proxy.access_log {
        let bytes_out = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_owned();
        let flags = if out.flags.is_empty() {
            "-".to_owned()
        } else {
            out.flags.join(",")
        };
        let ust = out
            .upstream_time
            .map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string());
        println!(
            "[{}] \"{method} {path_q} {}\" {status} {flags} {bytes_in} {bytes_out} {} {ust} \"{}\" \"{request_id}\" \"{authority}\" \"{}\" {} {}",
            super::admin::timestamp(std::time::SystemTime::now()),
            version_str(version),
            elapsed.as_millis(),
            if user_agent.is_empty() {
                "-"
            } else {
                &user_agent
            },
            if out.upstream_host.is_empty() {
                "-"
            } else {
                &out.upstream_host
            },
            if out.cluster.is_empty() {
                "-"
            } else {
                &out.cluster
            },
            listener.name,
        );
    }
    Ok(resp)
}

fn request_id_new() -> String {
    request_id()
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

fn header_str(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn authority_of<B>(req: &Request<B>) -> String {
    if let Some(a) = req.uri().authority() {
        return a.as_str().to_owned();
    }
    header_str(req.headers(), "host")
}

/// The service part of a cluster name: `outbound|9080|v1|reviews.shop.svc.cluster.local`
/// → `reviews.shop.svc.cluster.local`.
fn service_of(cluster: &str) -> String {
    let mut parts = cluster.split('|');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("outbound"), Some(_), Some(_), Some(host)) if !host.is_empty() => host.to_owned(),
        _ => "unknown".to_owned(),
    }
}

fn record(conn: &Conn, listener: &ListenerSpec, out: &Outcome, status: u16, elapsed: Duration) {
    let me = &conn.proxy.workload;
    let peer = out
        .peer_id
        .as_deref()
        .and_then(peer_from_node_id)
        .unwrap_or_else(|| ("unknown".to_owned(), "unknown".to_owned()));
    let (reporter, src, dst) = match listener.direction {
        Direction::Outbound => ("source", me.clone(), peer),
        Direction::Inbound => ("destination", peer, me.clone()),
    };
    let labels = RequestLabels {
        reporter: reporter.to_owned(),
        source_workload: src.0,
        source_workload_namespace: src.1,
        destination_workload: dst.0,
        destination_workload_namespace: dst.1,
        destination_service: if listener.direction == Direction::Inbound {
            "unknown".to_owned()
        } else if out.cluster.is_empty() {
            service_of(&out.route_cluster)
        } else {
            service_of(&out.cluster)
        },
        request_protocol: "http".to_owned(),
        response_code: status.to_string(),
        response_flags: if out.flags.is_empty() {
            "-".to_owned()
        } else {
            out.flags.join(",")
        },
        connection_security_policy: out.security.label(reporter).to_owned(),
    };
    conn.proxy.metrics.request(&labels, status, elapsed);
}

/// Routes and answers one request (everything but the final touches).
async fn serve(
    mut req: Request<Incoming>,
    config: &Arc<Config>,
    listener: &ListenerSpec,
    conn: &Conn,
    out: &mut Outcome,
    request_id: &str,
) -> Response<Body> {
    let ListenerKind::Http(http) = &listener.kind else {
        return local(500, "not an HTTP listener");
    };
    // The authorization filters come first in the chain, before routing.
    if !http.authz.is_empty()
        && let Err(r) = super::authz::check(&mut req, http, conn, config, out).await
    {
        return r;
    }
    let table = match &http.routes {
        RouteSource::Inline(t) => t.clone(),
        RouteSource::Rds(name) => match config.routes.get(name) {
            Some(t) => t.clone(),
            None => {
                out.flags.push("NR");
                return local(404, "");
            }
        },
    };
    let authority = authority_of(&req);
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let scheme = req.uri().scheme_str().unwrap_or("http").to_owned();
    let Some(vh) = table.vhost(&authority) else {
        out.flags.push("NR");
        return local(404, "");
    };
    let view = RequestView {
        method: &method,
        authority: &authority,
        path: &path,
        query: query.as_deref(),
        scheme: &scheme,
        headers: req.headers(),
    };
    let Some(route) = vh.route(&view) else {
        out.flags.push("NR");
        return local(404, "");
    };

    // CORS.
    let mut cors_origin: Option<HeaderValue> = None;
    if http.cors
        && let Some(c) = &route.cors
        && let Some(origin) = req.headers().get(header::ORIGIN).cloned()
        && let Ok(o) = origin.to_str()
        && c.origins.iter().any(|m| m.matches(o))
    {
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            let mut r = local(200, "");
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            for (name, v) in [
                (header::ACCESS_CONTROL_ALLOW_METHODS, &c.methods),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, &c.headers),
                (header::ACCESS_CONTROL_MAX_AGE, &c.max_age),
            ] {
                if !v.is_empty()
                    && let Ok(v) = HeaderValue::from_str(v)
                {
                    h.insert(name, v);
                }
            }
            if c.credentials {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            return r;
        }
        cors_origin = Some(origin);
    }

    // Fault injection: the delay, then the abort.
    if http.fault
        && let Some(f) = &route.fault
    {
        if let Some((d, pm)) = f.delay
            && sample(pm)
        {
            out.flags.push("DI");
            tokio::time::sleep(d).await;
        }
        if let Some((status, pm)) = f.abort
            && sample(pm)
        {
            out.flags.push("FI");
            if let Action::Forward(fwd) = &route.action {
                out.route_cluster = pick_target(&fwd.target).0;
            }
            return finish_local(local(status, "fault filter abort"), &table, vh, route);
        }
    }

    let mut resp = match &route.action {
        Action::Direct { status, body } => {
            let mut r = match body {
                Some(b) => {
                    let mut r = Response::new(full(b.clone()));
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    r
                }
                None => Response::new(full(Bytes::new())),
            };
            *r.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            finish_local(r, &table, vh, route)
        }
        Action::Redirect(rd) => {
            let loc = rd.location(
                &scheme,
                &authority,
                &path,
                query.as_deref(),
                &route.matcher.path,
            );
            let mut r = local(rd.status, "");
            if let Ok(v) = HeaderValue::from_str(&loc) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            finish_local(r, &table, vh, route)
        }
        Action::Forward(fwd) => {
            if fwd.connect || req.method() == Method::CONNECT {
                if req.method() != Method::CONNECT {
                    out.flags.push("NR");
                    return local(404, "");
                }
                return tunnel(&mut req, config, fwd, &authority, out).await;
            }
            forward(
                req,
                config,
                conn,
                &table,
                vh,
                route,
                fwd,
                &authority,
                &path,
                query.as_deref(),
                out,
                request_id,
            )
            .await
        }
    };
    if let Some(origin) = cors_origin
        && let Some(c) = &route.cors
    {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if !c.expose.is_empty()
            && let Ok(v) = HeaderValue::from_str(&c.expose)
        {
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
        if c.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
    resp
}

/// Applies the response header mutations of a route, its virtual host and its table.
fn finish_local(
    mut r: Response<Body>,
    table: &route::RouteTable,
    vh: &VirtualHost,
    route: &Route,
) -> Response<Body> {
    route::apply_response(&route.headers, r.headers_mut());
    route::apply_response(&vh.headers, r.headers_mut());
    route::apply_response(&table.headers, r.headers_mut());
    r
}

/// Picks a weighted target (or the one cluster).
fn pick_target(t: &Target) -> (String, Option<&route::WeightedTarget>) {
    match t {
        Target::Cluster(c) => (c.clone(), None),
        Target::Weighted { targets, total } => {
            let mut r = fastrand::u64(0..*total);
            for w in targets {
                let w64 = u64::from(w.weight);
                if r < w64 {
                    return (w.cluster.clone(), Some(w));
                }
                r -= w64;
            }
            let last = targets.last();
            (last.map(|w| w.cluster.clone()).unwrap_or_default(), last)
        }
    }
}

/// The hash of a request under a route's hash policies (Envoy combines several).
fn request_hash(
    policies: &[HashPolicy],
    headers: &HeaderMap,
    query: Option<&str>,
    peer: SocketAddr,
) -> Option<u64> {
    let mut acc: Option<u64> = None;
    for p in policies {
        let v = match p {
            HashPolicy::Header(name) => {
                headers.get(name.as_str()).map(|v| hash_bytes(v.as_bytes()))
            }
            HashPolicy::Cookie(name) => headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k == name)
                .map(|(_, v)| hash_bytes(v.as_bytes())),
            HashPolicy::SourceIp => Some(hash_bytes(peer.ip().to_string().as_bytes())),
            HashPolicy::Query(name) => query.and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| hash_bytes(v.as_bytes()))
            }),
        };
        if let Some(v) = v {
            acc = Some(match acc {
                Some(a) => a.rotate_left(1) ^ v,
                None => v,
            });
        }
    }
    acc
}

/// `host:port` → `host-shadow:port`.
fn shadow_host(authority: &str) -> String {
    let host = route::strip_port(authority);
    let port = &authority[host.len()..];
    format!("{host}-shadow{port}")
}

/// The upstream address for a forward-proxy cluster: the request's authority, port 80 by
/// default.
fn forward_proxy_addr(authority: &str) -> Option<HostAddr> {
    let host = route::strip_port(authority);
    let port = match authority[host.len()..].strip_prefix(':') {
        Some(p) => p.parse().ok()?,
        None => 80,
    };
    if host.is_empty() {
        return None;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Some(match bare.parse() {
        Ok(ip) => HostAddr::Socket(SocketAddr::new(ip, port)),
        Err(_) => HostAddr::Name(bare.to_owned(), port),
    })
}

/// One try's request to an upstream host.
#[allow(clippy::too_many_arguments)]
fn upstream_request(
    cluster: &Cluster,
    host: &HostAddr,
    authority: &str,
    method: &Method,
    path_q: &str,
    headers: &HeaderMap,
    body: &Bytes,
    version: Version,
) -> Result<(Request<Full<Bytes>>, bool), String> {
    let h2 = match cluster.spec.protocol {
        Protocol::Http2 => true,
        Protocol::Http1 => false,
        Protocol::Downstream => version == Version::HTTP_2,
    };
    // HTTP/1.1 goes through a pool keyed by the URI's authority: the host. HTTP/2 has its
    // own connection per host, and the URI's authority becomes `:authority`.
    let uri = if h2 {
        format!("http://{authority}{path_q}")
    } else {
        format!("http://{host}{path_q}")
    };
    let mut b = Request::builder()
        .method(method.clone())
        .uri(uri)
        .version(if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        });
    if let Some(h) = b.headers_mut() {
        *h = headers.clone();
        if h2 {
            h.remove(header::HOST);
        }
    }
    b.body(Full::new(body.clone()))
        .map(|r| (r, h2))
        .map_err(|e| format!("bad upstream request: {e}"))
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    mut req: Request<Incoming>,
    config: &Arc<Config>,
    conn: &Conn,
    table: &route::RouteTable,
    vh: &VirtualHost,
    route: &Route,
    fwd: &Forward,
    authority: &str,
    path: &str,
    query: Option<&str>,
    out: &mut Outcome,
    request_id: &str,
) -> Response<Body> {
    let start = Instant::now();
    let (cluster_name, weighted) = pick_target(&fwd.target);
    out.cluster = cluster_name.clone();
    let Some(cluster) = config.clusters.get(&cluster_name).cloned() else {
        out.flags.push("NC");
        return finish_local(local(503, ""), table, vh, route);
    };
    let upgrade = upgrade_protocol(req.headers());
    let on_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return local(413, "Payload Too Large");
            }
            out.flags.push("DC");
            return local(400, "Bad Request");
        }
    };

    // Request headers as the upstream sees them.
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let mut new_authority = authority.to_owned();
    if let Some(w) = weighted {
        route::apply_request(&w.headers, &mut headers);
    }
    route::apply_request(&route.headers, &mut headers);
    route::apply_request(&vh.headers, &mut headers);
    route::apply_request(&table.headers, &mut headers);
    if let Some(h) = weighted
        .and_then(|w| w.host_rewrite.clone())
        .or_else(|| fwd.host_rewrite.clone())
    {
        new_authority = h;
    }
    if let Ok(v) = HeaderValue::from_str(&new_authority) {
        headers.insert(header::HOST, v);
    }
    if !headers.contains_key("x-request-id")
        && let Ok(v) = HeaderValue::from_str(request_id)
    {
        headers.insert("x-request-id", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if let Some(t) = fwd.timeout {
        headers.insert(
            "x-envoy-expected-rq-timeout-ms",
            HeaderValue::from(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    // The peer id header goes out from the outbound side only, and the app never sees one.
    headers.remove(PEER_ID_HEADER);
    if conn.listener.direction == Direction::Outbound
        && cluster.spec.discovery != Discovery::ForwardProxy
        && let Ok(v) = HeaderValue::from_str(&conn.proxy.node_id)
    {
        headers.insert(PEER_ID_HEADER, v);
    }
    let path_q = fwd.rewrite_path(path, query, &route.matcher.path);
    let hash = request_hash(&fwd.hash, &headers, query, conn.peer);

    if let (Some(proto), Some(on_down)) = (upgrade, on_upgrade) {
        if cluster.overflows() {
            out.flags.push("UO");
            let mut r = local(
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            );
            r.headers_mut()
                .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
            return finish_local(r, table, vh, route);
        }
        let up = Upgrade {
            cluster: &cluster,
            hash,
            method: &parts.method,
            path_q: &path_q,
            authority: &new_authority,
            proto,
        };
        let r = upgrade_tunnel(up, headers, on_down, out).await;
        return finish_local(r, table, vh, route);
    }

    // Mirrors: fire and forget.
    for m in &fwd.mirrors {
        if !sample(m.per_million) {
            continue;
        }
        let Some(mc) = config.clusters.get(&m.cluster).cloned() else {
            continue;
        };
        let mut mh = headers.clone();
        let shadow = if m.shadow_suffix {
            shadow_host(&new_authority)
        } else {
            new_authority.clone()
        };
        if let Ok(v) = HeaderValue::from_str(&shadow) {
            mh.insert(header::HOST, v);
        }
        mh.remove(PEER_ID_HEADER);
        let body = body.clone();
        let method = parts.method.clone();
        let path_q = path_q.clone();
        let version = parts.version;
        tokio::spawn(async move {
            let Some(idx) = mc.choose(hash, &[]) else {
                return;
            };
            let host = mc.hosts[idx].addr.clone();
            let Ok((r, h2)) =
                upstream_request(&mc, &host, &shadow, &method, &path_q, &mh, &body, version)
            else {
                return;
            };
            if let Ok(Ok(resp)) =
                tokio::time::timeout(Duration::from_secs(30), mc.shared.send(&host, r, h2)).await
            {
                let _ = resp.into_body().collect().await;
            }
        });
    }

    if cluster.spec.discovery == Discovery::OriginalDst {
        out.flags.push("UH");
        return finish_local(local(503, "no healthy upstream"), table, vh, route);
    }
    if cluster.overflows() {
        out.flags.push("UO");
        cluster
            .shared
            .stats
            .rq_pending_overflow
            .fetch_add(1, Ordering::Relaxed);
        let mut r = local(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        );
        r.headers_mut()
            .insert("x-envoy-overloaded", HeaderValue::from_static("true"));
        return finish_local(r, table, vh, route);
    }
    let shared = cluster.shared.clone();
    shared.active_rq.fetch_add(1, Ordering::Relaxed);
    shared.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let result = tries(
        &cluster,
        fwd,
        vh,
        &parts.method,
        &path_q,
        &headers,
        &body,
        parts.version,
        hash,
        &new_authority,
        start,
        out,
    )
    .await;
    shared.active_rq.fetch_sub(1, Ordering::Relaxed);
    let mut resp = match result {
        Ok(r) => {
            let (mut p, b) = r.into_parts();
            strip_hop_by_hop(&mut p.headers);
            Response::from_parts(p, b.boxed())
        }
        Err(r) => r,
    };
    let st = resp.status().as_u16();
    let counter = match st / 100 {
        2 => &shared.stats.rq_2xx,
        3 => &shared.stats.rq_3xx,
        4 => &shared.stats.rq_4xx,
        _ => &shared.stats.rq_5xx,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = out.upstream_time {
        resp.headers_mut().insert(
            "x-envoy-upstream-service-time",
            HeaderValue::from(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    if let Some(w) = weighted {
        route::apply_response(&w.headers, resp.headers_mut());
    }
    finish_local(resp, table, vh, route)
}

/// The tries of one request: host choice, per-try and route timeouts, retries.
#[allow(clippy::too_many_arguments)]
async fn tries(
    cluster: &Cluster,
    fwd: &Forward,
    vh: &VirtualHost,
    method: &Method,
    path_q: &str,
    headers: &HeaderMap,
    body: &Bytes,
    version: Version,
    hash: Option<u64>,
    authority: &str,
    start: Instant,
    out: &mut Outcome,
) -> Result<Response<Incoming>, Response<Body>> {
    let deadline = fwd.timeout.map(|t| start + t);
    let policy = fwd.retry.as_ref();
    let max_tries = 1 + policy.map_or(0, |p| p.num_retries);
    let mut tried: Vec<usize> = Vec::new();
    let mut attempt: u32 = 0;
    let forward_proxy = cluster.spec.discovery == Discovery::ForwardProxy;
    loop {
        attempt += 1;
        let avoid: &[usize] = if policy.is_some_and(|p| p.other_hosts) {
            &tried
        } else {
            &[]
        };
        let (host, idx): (Arc<Host>, Option<usize>) = if forward_proxy {
            match forward_proxy_addr(authority) {
                Some(a) => (Arc::new(Host::new(a)), None),
                None => {
                    out.flags.push("UH");
                    return Err(local(503, "no healthy upstream"));
                }
            }
        } else {
            match cluster.choose(hash, avoid) {
                Some(i) => (cluster.hosts[i].clone(), Some(i)),
                None => {
                    cluster
                        .shared
                        .stats
                        .no_healthy
                        .fetch_add(1, Ordering::Relaxed);
                    out.flags.push("UH");
                    return Err(local(503, "no healthy upstream"));
                }
            }
        };
        if let Some(i) = idx {
            tried.push(i);
        }
        out.upstream_host = host.addr.to_string();
        let mut h = headers.clone();
        if vh.include_attempt_count {
            h.insert("x-envoy-attempt-count", HeaderValue::from(attempt));
        }
        let (req, h2) = match upstream_request(
            cluster, &host.addr, authority, method, path_q, &h, body, version,
        ) {
            Ok(r) => r,
            Err(e) => return Err(local(500, &e)),
        };
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let per_try = policy.and_then(|p| p.per_try_timeout);
        let (limit, global_bound) = match (per_try, remaining) {
            (Some(p), Some(r)) if r <= p => (Some(r), true),
            (Some(p), _) => (Some(p), false),
            (None, Some(r)) => (Some(r), true),
            (None, None) => (None, false),
        };
        let try_start = Instant::now();
        host.active.fetch_add(1, Ordering::Relaxed);
        let send = cluster.shared.send(&host.addr, req, h2);
        let result = match limit {
            Some(l) => tokio::time::timeout(l, send).await.map_err(|_| ()),
            None => Ok(send.await),
        };
        host.active.fetch_sub(1, Ordering::Relaxed);
        out.upstream_time = Some(try_start.elapsed());
        let outcome = match &result {
            Ok(Ok(r)) => TryOutcome::Status(r.status().as_u16()),
            Ok(Err(UpstreamError::Connect(_))) => TryOutcome::ConnectFailure,
            Ok(Err(UpstreamError::Reset(_))) => TryOutcome::Reset,
            Err(()) => TryOutcome::Timeout,
        };
        match outcome {
            TryOutcome::Status(s) => cluster.record(&host, Some(s)),
            TryOutcome::ConnectFailure => {
                host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                cluster
                    .shared
                    .stats
                    .cx_connect_fail
                    .fetch_add(1, Ordering::Relaxed);
                cluster.record(&host, None);
            }
            TryOutcome::Reset => cluster.record(&host, None),
            TryOutcome::Timeout => cluster.record(&host, Some(504)),
        }
        let global_timeout = outcome == TryOutcome::Timeout && global_bound;
        let retry = !global_timeout
            && attempt < max_tries
            && policy.is_some_and(|p| p.retries(outcome))
            && deadline.is_none_or(|d| Instant::now() < d)
            && cluster.shared.active_retries.load(Ordering::Relaxed)
                < cluster.spec.limits.max_retries;
        if retry {
            cluster
                .shared
                .stats
                .rq_retry
                .fetch_add(1, Ordering::Relaxed);
            cluster
                .shared
                .active_retries
                .fetch_add(1, Ordering::Relaxed);
            let pause = policy.map_or(Duration::ZERO, |p| p.back_off(attempt));
            let pause = match deadline {
                Some(d) => pause.min(d.saturating_duration_since(Instant::now())),
                None => pause,
            };
            tokio::time::sleep(pause).await;
            cluster
                .shared
                .active_retries
                .fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        return match result {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(UpstreamError::Connect(e))) => {
                out.flags.push("UF");
                Err(local(
                    503,
                    &format!(
                        "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: {e}"
                    ),
                ))
            }
            Ok(Err(_)) => {
                out.flags.push("UC");
                Err(local(
                    503,
                    "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                ))
            }
            Err(()) => {
                cluster
                    .shared
                    .stats
                    .rq_timeout
                    .fetch_add(1, Ordering::Relaxed);
                out.flags.push("UT");
                Err(local(504, "upstream request timeout"))
            }
        };
    }
}

/// The protocol an HTTP/1.1 upgrade request asks for (`websocket`; not `h2c`).
fn upgrade_protocol(h: &HeaderMap) -> Option<HeaderValue> {
    let asks = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let proto = h.get(header::UPGRADE)?;
    (asks && !proto.as_bytes().eq_ignore_ascii_case(b"h2c")).then(|| proto.clone())
}

/// What an upgraded request goes upstream with.
struct Upgrade<'a> {
    cluster: &'a Cluster,
    hash: Option<u64>,
    method: &'a Method,
    path_q: &'a str,
    authority: &'a str,
    proto: HeaderValue,
}

/// An upgrade (websocket): the request goes to one host on its own connection; a `101`
/// answer splices the two connections, any other answer is passed back.
async fn upgrade_tunnel(
    up: Upgrade<'_>,
    mut headers: HeaderMap,
    on_down: hyper::upgrade::OnUpgrade,
    out: &mut Outcome,
) -> Response<Body> {
    let cluster = up.cluster;
    let addr = if cluster.spec.discovery == Discovery::ForwardProxy {
        forward_proxy_addr(up.authority)
    } else {
        cluster
            .choose(up.hash, &[])
            .map(|i| cluster.hosts[i].addr.clone())
    };
    let Some(addr) = addr else {
        out.flags.push("UH");
        return local(503, "no healthy upstream");
    };
    out.upstream_host = addr.to_string();
    let start = Instant::now();
    let stream = match cluster.shared.connect(&addr).await {
        Ok(s) => s,
        Err(e) => {
            out.flags.push("UF");
            cluster
                .shared
                .stats
                .cx_connect_fail
                .fetch_add(1, Ordering::Relaxed);
            return local(
                503,
                &format!(
                    "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: {e}"
                ),
            );
        }
    };
    let reset = |out: &mut Outcome| {
        out.flags.push("UC");
        local(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        )
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return reset(out);
    };
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, up.proto);
    let mut req = Request::new(http_body_util::Empty::<Bytes>::new());
    *req.method_mut() = up.method.clone();
    match up.path_q.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return local(400, "Bad Request"),
    }
    *req.headers_mut() = headers;
    let mut resp = match sender.send_request(req).await {
        Ok(r) => r,
        Err(_) => return reset(out),
    };
    out.upstream_time = Some(start.elapsed());
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut p, b) = resp.into_parts();
        strip_hop_by_hop(&mut p.headers);
        return Response::from_parts(p, b.boxed());
    }
    let on_up = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        if let (Ok(d), Ok(u)) = tokio::join!(on_down, on_up) {
            let mut d = hyper_util::rt::TokioIo::new(d);
            let mut u = hyper_util::rt::TokioIo::new(u);
            let _ = tokio::io::copy_bidirectional(&mut d, &mut u).await;
        }
    });
    let (p, _) = resp.into_parts();
    Response::from_parts(p, full(Bytes::new()))
}

/// A `CONNECT` tunnel: connect to the route's upstream (in TLS when its cluster has a TLS
/// transport socket), answer 200, then splice.
async fn tunnel(
    req: &mut Request<Incoming>,
    config: &Arc<Config>,
    fwd: &Forward,
    authority: &str,
    out: &mut Outcome,
) -> Response<Body> {
    let (cluster_name, _) = pick_target(&fwd.target);
    out.cluster = cluster_name.clone();
    let Some(cluster) = config.clusters.get(&cluster_name).cloned() else {
        out.flags.push("NC");
        return local(503, "");
    };
    let addr = if cluster.spec.discovery == Discovery::ForwardProxy {
        forward_proxy_addr(authority)
    } else {
        cluster
            .choose(None, &[])
            .map(|i| cluster.hosts[i].addr.clone())
    };
    let Some(addr) = addr else {
        out.flags.push("UH");
        return local(503, "no healthy upstream");
    };
    out.upstream_host = addr.to_string();
    // In TLS when the cluster says so (auto mTLS to a sidecar's TCP port), as tcp_proxy does.
    let upstream = match cluster.shared.connect_stream(&addr).await {
        Ok(s) => s,
        Err(e) => {
            out.flags.push("UF");
            cluster
                .shared
                .stats
                .cx_connect_fail
                .fetch_add(1, Ordering::Relaxed);
            return local(503, &format!("upstream connect error: {e}"));
        }
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        if let Ok(up) = on_upgrade.await {
            let mut down = hyper_util::rt::TokioIo::new(up);
            let mut upstream = upstream;
            let _ = tokio::io::copy_bidirectional(&mut down, &mut upstream).await;
        }
    });
    Response::new(full(Bytes::new()))
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn small_helpers() {
        assert_eq!(shadow_host("reviews.shop:9080"), "reviews.shop-shadow:9080");
        assert_eq!(shadow_host("reviews"), "reviews-shadow");
        assert_eq!(
            service_of("outbound|9080|v1|reviews.shop.svc.cluster.local"),
            "reviews.shop.svc.cluster.local"
        );
        assert_eq!(service_of("inbound|9080||"), "unknown");
        assert_eq!(
            forward_proxy_addr("127.0.0.5:8080"),
            Some(HostAddr::Socket("127.0.0.5:8080".parse().unwrap()))
        );
        assert_eq!(
            forward_proxy_addr("example.com"),
            Some(HostAddr::Name("example.com".into(), 80))
        );
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-hop".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn hashes_follow_the_policy() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-user", "alice".parse().unwrap());
        h.insert("cookie", "a=1; session=xyz".parse().unwrap());
        let by_header = request_hash(&[HashPolicy::Header("x-user".into())], &h, None, peer);
        assert_eq!(by_header, Some(hash_bytes(b"alice")));
        assert_eq!(
            request_hash(&[HashPolicy::Header("x-none".into())], &h, None, peer),
            None
        );
        assert_eq!(
            request_hash(&[HashPolicy::Cookie("session".into())], &h, None, peer),
            Some(hash_bytes(b"xyz"))
        );
        assert_eq!(
            request_hash(
                &[HashPolicy::Query("u".into())],
                &h,
                Some("a=b&u=bob"),
                peer
            ),
            Some(hash_bytes(b"bob"))
        );
        assert!(request_hash(&[HashPolicy::SourceIp], &h, None, peer).is_some());
    }

    #[test]
    fn weighted_targets_follow_weights() {
        let w = |c: &str, weight| route::WeightedTarget {
            cluster: c.into(),
            weight,
            headers: Default::default(),
            host_rewrite: None,
        };
        let t = Target::Weighted {
            targets: vec![w("a", 80), w("b", 20)],
            total: 100,
        };
        let a = (0..2000).filter(|_| pick_target(&t).0 == "a").count();
        assert!((1450..1750).contains(&a), "{a}");
    }
}
