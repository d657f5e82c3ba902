//! The admin API on `IP:15000`, answering like Envoy's where the names overlap (`/ready`,
//! `/quitquitquit`, `/stats`, `/stats/prometheus`, `/clusters`, `/listeners`, `/logging`,
//! `/config_dump`), and the health endpoint on `IP:15021` (`/healthz/ready`).
//!
//! `/config_dump` is Envoy's JSON (mesh-core's `xds::json`): the applied clusters,
//! listeners and route configurations with their versions and update times, and with
//! `?include_eds` the endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::Proxy;
use super::cluster::HostAddr;
use super::config::{Config, ListenerKind};

/// `2026-11-24T21:09:13.123Z`.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

fn json_resp(v: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn socket_json(a: &HostAddr) -> Value {
    match a {
        HostAddr::Socket(s) => {
            json!({"socket_address": {"address": s.ip().to_string(), "port_value": s.port()}})
        }
        HostAddr::Name(h, p) => json!({"socket_address": {"address": h, "port_value": p}}),
    }
}

/// `/clusters?format=json` in Envoy's shape.
pub fn clusters_json(c: &Config) -> Value {
    let mut names: Vec<&String> = c.clusters.keys().collect();
    names.sort();
    let statuses: Vec<Value> = names
        .into_iter()
        .filter_map(|n| c.clusters.get(n))
        .map(|cl| {
            let hosts: Vec<Value> = cl
                .hosts
                .iter()
                .map(|h| {
                    let stat = |name: &str, v: u64| json!({"name": name, "value": v.to_string(), "type": "COUNTER"});
                    let mut health = json!({"eds_health_status": "HEALTHY"});
                    if h.is_ejected() {
                        health["failed_outlier_check"] = json!(true);
                    }
                    json!({
                        "address": socket_json(&h.addr),
                        "stats": [
                            stat("cx_connect_fail", h.cx_connect_fail.load(Ordering::Relaxed)),
                            stat("rq_error", h.rq_error.load(Ordering::Relaxed)),
                            stat("rq_success", h.rq_success.load(Ordering::Relaxed)),
                            stat("rq_total", h.rq_total.load(Ordering::Relaxed)),
                            {"name": "rq_active", "value": h.active.load(Ordering::Relaxed).to_string(), "type": "GAUGE"},
                        ],
                        "health_status": health,
                        "weight": 1,
                    })
                })
                .collect();
            let mut v = json!({
                "name": cl.spec.name,
                "added_via_api": true,
                "host_statuses": hosts,
            });
            if cl.spec.outlier.is_some() {
                v["success_rate_ejection_threshold"] = json!({"value": -1});
            }
            v
        })
        .collect();
    json!({"cluster_statuses": statuses})
}

fn clusters_text(c: &Config) -> String {
    let mut names: Vec<&String> = c.clusters.keys().collect();
    names.sort();
    let mut out = String::new();
    for n in names {
        let Some(cl) = c.clusters.get(n) else {
            continue;
        };
        let l = &cl.spec.limits;
        out.push_str(&format!(
            "{n}::default_priority::max_connections::{}\n{n}::default_priority::max_pending_requests::{}\n{n}::default_priority::max_requests::{}\n{n}::default_priority::max_retries::{}\n{n}::added_via_api::true\n",
            l.max_connections, l.max_pending, l.max_requests, l.max_retries
        ));
        for h in &cl.hosts {
            let a = &h.addr;
            out.push_str(&format!(
                "{n}::{a}::cx_connect_fail::{}\n",
                h.cx_connect_fail.load(Ordering::Relaxed)
            ));
            out.push_str(&format!(
                "{n}::{a}::rq_active::{}\n",
                h.active.load(Ordering::Relaxed)
            ));
            out.push_str(&format!(
                "{n}::{a}::rq_error::{}\n",
                h.rq_error.load(Ordering::Relaxed)
            ));
            out.push_str(&format!(
                "{n}::{a}::rq_success::{}\n",
                h.rq_success.load(Ordering::Relaxed)
            ));
            out.push_str(&format!(
                "{n}::{a}::rq_total::{}\n",
                h.rq_total.load(Ordering::Relaxed)
            ));
            out.push_str(&format!(
                "{n}::{a}::health_flags::{}\n",
                if h.is_ejected() {
                    "/failed_outlier_check"
                } else {
                    "healthy"
                }
            ));
        }
    }
    out
}

/// `/stats` in Envoy's `name: value` form.
pub fn stats_text(p: &Proxy) -> String {
    let c = p.store.current();
    let mut lines: Vec<(String, u64)> = Vec::new();
    let m = &p.metrics;
    lines.push((
        "http.downstream_cx_total".into(),
        m.downstream_cx_total.load(Ordering::Relaxed),
    ));
    lines.push((
        "http.downstream_cx_active".into(),
        m.downstream_cx_active.load(Ordering::Relaxed),
    ));
    lines.push((
        "http.downstream_rq_total".into(),
        m.downstream_rq_total.load(Ordering::Relaxed),
    ));
    lines.push((
        "http.downstream_rq_active".into(),
        m.downstream_rq_active.load(Ordering::Relaxed),
    ));
    for (i, v) in m.downstream_rq_xx.iter().enumerate() {
        lines.push((
            format!("http.downstream_rq_{}xx", i + 1),
            v.load(Ordering::Relaxed),
        ));
    }
    lines.push((
        "control_plane.connected_state".into(),
        u64::from(p.ads.connected.load(Ordering::Relaxed)),
    ));
    lines.push((
        "control_plane.ack".into(),
        p.ads.acks.load(Ordering::Relaxed),
    ));
    lines.push((
        "control_plane.nack".into(),
        p.ads.nacks.load(Ordering::Relaxed),
    ));
    lines.push(("server.live".into(), u64::from(c.initialized())));
    lines.push((
        "cluster_manager.active_clusters".into(),
        c.clusters.len() as u64,
    ));
    lines.push((
        "listener_manager.total_listeners_active".into(),
        c.listeners.len() as u64,
    ));
    for (n, cl) in &c.clusters {
        let s = &cl.shared.stats;
        let healthy = cl.hosts.iter().filter(|h| !h.is_ejected()).count() as u64;
        for (k, v) in [
            ("upstream_rq_total", s.rq_total.load(Ordering::Relaxed)),
            ("upstream_rq_2xx", s.rq_2xx.load(Ordering::Relaxed)),
            ("upstream_rq_3xx", s.rq_3xx.load(Ordering::Relaxed)),
            ("upstream_rq_4xx", s.rq_4xx.load(Ordering::Relaxed)),
            ("upstream_rq_5xx", s.rq_5xx.load(Ordering::Relaxed)),
            ("upstream_rq_timeout", s.rq_timeout.load(Ordering::Relaxed)),
            ("upstream_rq_retry", s.rq_retry.load(Ordering::Relaxed)),
            (
                "upstream_rq_pending_overflow",
                s.rq_pending_overflow.load(Ordering::Relaxed),
            ),
            (
                "upstream_rq_active",
                cl.shared.active_rq.load(Ordering::Relaxed),
            ),
            (
                "upstream_cx_connect_fail",
                s.cx_connect_fail.load(Ordering::Relaxed),
            ),
            (
                "upstream_cx_none_healthy",
                s.no_healthy.load(Ordering::Relaxed),
            ),
            (
                "outlier_detection.ejections_total",
                s.ejections_total.load(Ordering::Relaxed),
            ),
            ("membership_total", cl.hosts.len() as u64),
            ("membership_healthy", healthy),
        ] {
            lines.push((format!("cluster.{n}.{k}"), v));
        }
    }
    lines.extend(super::rbac::stats(&c));
    lines.sort();
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

/// `/config_dump` in Envoy's shape (`mesh_core::xds::json`): the dynamic clusters,
/// listeners and route configurations as applied, and with `include_eds` the endpoints.
pub fn config_dump(c: &Config, include_eds: bool) -> Result<Value, String> {
    use mesh_core::xds::json::{self, DumpVersions, Update};
    let up = |v: &str, at: Option<SystemTime>| Update {
        version_info: v.to_owned(),
        last_updated: at,
    };
    let versions = DumpVersions {
        clusters: up(&c.versions.clusters, c.versions.clusters_at),
        listeners: up(&c.versions.listeners, c.versions.listeners_at),
        routes: up(&c.versions.routes, c.versions.routes_at),
        endpoints: up(&c.versions.endpoints, c.versions.endpoints_at),
    };
    let mut dump = json::config_dump(&c.proxy_config(), &versions).map_err(|e| e.to_string())?;
    if !include_eds && let Some(configs) = dump.get_mut("configs").and_then(Value::as_array_mut) {
        configs.retain(|v| {
            v.get("@type").and_then(Value::as_str)
                != Some("type.googleapis.com/envoy.admin.v3.EndpointsConfigDump")
        });
    }
    Ok(dump)
}

/// Puts the proxy's bootstrap first in a config dump, as Envoy's `/config_dump` does.
fn with_bootstrap(dump: &mut Value, bootstrap: &Value) {
    if bootstrap.is_null() {
        return;
    }
    if let Some(configs) = dump.get_mut("configs").and_then(Value::as_array_mut) {
        configs.insert(
            0,
            json!({
                "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                "bootstrap": bootstrap,
            }),
        );
    }
}

/// Appends the SecretsConfigDump of the workload certificate (`default`, private key
/// redacted) and the trust bundle (`ROOTCA`), as Envoy shows its SDS secrets; none before
/// the first certificate arrives.
fn with_secrets(dump: &mut Value, cert: Option<&crate::identity::WorkloadCert>) {
    let mut active = Vec::new();
    if let Some(c) = cert {
        let at = timestamp(c.not_before);
        active.push(json!({
            "name": crate::native::tls::SECRET_DEFAULT,
            "version_info": c.serial,
            "last_updated": at,
            "secret": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": crate::native::tls::SECRET_DEFAULT,
                "tls_certificate": {
                    "certificate_chain": {"inline_string": c.chain_pem},
                    "private_key": {"inline_string": "[redacted]"},
                },
            },
        }));
        active.push(json!({
            "name": crate::native::tls::SECRET_ROOTCA,
            "version_info": c.serial,
            "last_updated": at,
            "secret": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                "name": crate::native::tls::SECRET_ROOTCA,
                "validation_context": {"trusted_ca": {"inline_string": c.root_pem}},
            },
        }));
    }
    const SECRETS: &str = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump";
    let Some(configs) = dump.get_mut("configs").and_then(Value::as_array_mut) else {
        return;
    };
    match configs
        .iter_mut()
        .find(|c| c.get("@type").and_then(Value::as_str) == Some(SECRETS))
    {
        Some(section) => section["dynamic_active_secrets"] = Value::Array(active),
        None => configs.push(json!({"@type": SECRETS, "dynamic_active_secrets": active})),
    }
}

fn listeners_out(c: &Config, json_format: bool) -> Response<Full<Bytes>> {
    if json_format {
        let statuses: Vec<Value> = c
            .listeners
            .values()
            .map(|l| {
                json!({"name": l.name, "local_address": {"socket_address": {"address": l.addr.ip().to_string(), "port_value": l.addr.port()}}})
            })
            .collect();
        return json_resp(&json!({"listener_statuses": statuses}));
    }
    let mut out = String::new();
    for l in c.listeners.values() {
        let kind = match l.kind {
            ListenerKind::Http(_) => "http",
            ListenerKind::Tcp(_) => "tcp",
        };
        out.push_str(&format!("{}::{}::{kind}\n", l.name, l.addr));
    }
    text(StatusCode::OK, out)
}

async fn admin(req: Request<Incoming>, p: Arc<Proxy>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let json_format = query.split('&').any(|kv| kv == "format=json");
    let c = p.store.current();
    let resp = match (req.method(), path.as_str()) {
        (_, "/ready") => {
            if c.initialized() {
                text(StatusCode::OK, "LIVE\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n".into())
            }
        }
        (&Method::POST, "/quitquitquit") => {
            let _ = p.shutdown.send(true);
            text(StatusCode::OK, "OK\n".into())
        }
        (_, "/quitquitquit") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into()),
        (_, "/stats/prometheus") => {
            let mut r = text(StatusCode::OK, p.metrics.prometheus());
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (_, "/stats") => {
            if json_format {
                let stats: Vec<Value> = stats_text(&p)
                    .lines()
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| json!({"name": k, "value": v.parse::<u64>().unwrap_or(0)}))
                    .collect();
                json_resp(&json!({"stats": stats}))
            } else {
                text(StatusCode::OK, stats_text(&p))
            }
        }
        (_, "/clusters") => {
            if json_format {
                json_resp(&clusters_json(&c))
            } else {
                text(StatusCode::OK, clusters_text(&c))
            }
        }
        (_, "/listeners") => listeners_out(&c, json_format),
        (_, "/config_dump") => {
            let eds = query.split('&').any(|kv| kv == "include_eds" || kv.starts_with("include_eds="));
            match config_dump(&c, eds) {
                Ok(mut v) => {
                    with_bootstrap(&mut v, &p.bootstrap);
                    if let Some(id) = &p.identity {
                        with_secrets(&mut v, id.current().as_deref());
                    }
                    json_resp(&v)
                }
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
            }
        }
        (_, "/logging") => {
            // Envoy's forms: `level=L` sets every logger; `NAME=L` sets one. mesh-proxy has
            // one logger, `all`, so a logger name other than `all` is refused by name.
            let set = query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
            });
            match (req.method(), set) {
                (&Method::POST, Some((k, l))) if k == "level" || k == "all" => {
                    match (p.set_log_level)(&l) {
                        Ok(()) => {
                            p.note_log_level(&l);
                            text(StatusCode::OK, format!("active loggers:\n  all: {l}\n"))
                        }
                        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                    }
                }
                (&Method::POST, Some((k, _))) => text(
                    StatusCode::BAD_REQUEST,
                    format!("error: unknown logger name {k:?}: mesh-proxy has one logger, `all`\n"),
                ),
                _ => text(
                    StatusCode::OK,
                    format!("active loggers:\n  all: {}\n", p.log_level()),
                ),
            }
        }
        (_, "/") => text(
            StatusCode::OK,
            "admin commands are:\n  /clusters\n  /config_dump\n  /listeners\n  /logging\n  /quitquitquit\n  /ready\n  /stats\n  /stats/prometheus\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, "invalid path. try /\n".into()),
    };
    Ok(resp)
}

async fn health(
    req: Request<Incoming>,
    p: Arc<Proxy>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/healthz/ready" => {
            if p.store.current().initialized() {
                text(StatusCode::OK, String::new())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "config not received yet\n".into(),
                )
            }
        }
        "/stats/prometheus" => text(StatusCode::OK, p.metrics.prometheus()),
        _ => text(StatusCode::NOT_FOUND, String::new()),
    })
}

/// Which of the two servers.
#[derive(Clone, Copy, Debug)]
pub enum Server {
    Admin,
    Health,
}

/// Serves the admin (or health) API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, p: Arc<Proxy>, which: Server) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let p = p.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let p = p.clone();
                async move {
                    match which {
                        Server::Admin => admin(req, p).await,
                        Server::Health => health(req, p).await,
                    }
                }
            });
            if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), svc)
                .await
            {
                debug!(client.addr = %peer, error = %e, "admin connection error");
            }
        });
    }
}

/// Binds an admin-side server address.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_986_553_123);
        assert_eq!(timestamp(t), "2026-11-29T21:09:13.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
