//! The debug API (HTTP/1.1, hyper) on the debug address.
//!
//! This module owns the endpoints of DESIGN.md's debug contract:
//! - `/debug/syncz` (optionally `?proxyID=`): every ADS connection with, per type (`cds`,
//!   `eds`, `lds`, `rds`), the version and nonce sent and acked, the last NACK and its
//!   detail, and the times (see [`crate::status`]);
//! - `/debug/config_dump?proxyID=ID[&include_eds]`: the resources a proxy is served, in the
//!   JSON shape of Envoy's `/config_dump` (see [`mesh_core::xds::json`]), each at the version
//!   and time meshd sent it; endpoints only with `include_eds`, as Envoy. `ID` is a node id or
//!   `NAME.NAMESPACE`; a node id of a proxy that is not connected is generated on the fly
//!   (no versions);
//! - `/debug/registryz`: the service registry;
//! - `/debug/configz`: the objects served and those refused, with reasons;
//! - `/debug/resourcesz`: every object loaded, as JSON, with its origin (`file:line`), for
//!   `meshctl describe --controlplane`;
//! - `/debug/leader`: in Kubernetes mode, the Lease, this replica's identity, whether it
//!   leads and the holder it last saw (see [`crate::leader`]);
//! - `/metrics`: Prometheus text; `/ready`: 200 once meshd serves, 503 otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use mesh_core::xds::{ProxyInfo, json};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::metrics::Metrics;
use crate::source::ConfigState;
use crate::status::{SyncTable, rfc3339};
use crate::translate::Translator;
use crate::xds::XdsType;
use envoy_types::pb::google::protobuf::Any;

/// What the debug endpoints read.
pub struct DebugState {
    pub config: watch::Receiver<Arc<ConfigState>>,
    pub status: Arc<SyncTable>,
    pub metrics: Arc<Metrics>,
    pub translator: Arc<dyn Translator>,
    pub ready: Arc<AtomicBool>,
    /// The leader election (Kubernetes mode only).
    pub leader: Option<crate::leader::LeaderView>,
}

/// Serves the debug API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<DebugState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "debug API: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                debug!(client.addr = %peer, error = %e, "debug API connection");
            }
        });
    }
}

/// Routes one request.
pub async fn handle(state: &DebugState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    let query = req.uri().query().unwrap_or("");
    match req.uri().path() {
        "/debug/syncz" => {
            let mut list = state.status.list();
            if let Some(id) = param(query, "proxyID") {
                list = state.status.find(&id);
            }
            json_response(
                StatusCode::OK,
                &serde_json::to_value(list).unwrap_or_default(),
            )
        }
        "/debug/config_dump" => config_dump(state, query).await,
        "/debug/registryz" => {
            let config = state.config.borrow().clone();
            json_response(
                StatusCode::OK,
                &serde_json::to_value(&config.snapshot.registry).unwrap_or_default(),
            )
        }
        "/debug/configz" => {
            let config = state.config.borrow().clone();
            json_response(
                StatusCode::OK,
                &json!({
                    "version": config.version,
                    "builtTime": rfc3339(config.built_time),
                    "served": config.served,
                    "rejected": config.rejected,
                }),
            )
        }
        "/debug/resourcesz" => {
            let config = state.config.borrow().clone();
            let resources: Vec<Value> = config
                .store
                .all()
                .iter()
                .map(|r| json!({"origin": r.origin.to_string(), "object": r.json.as_ref()}))
                .collect();
            json_response(
                StatusCode::OK,
                &json!({"version": config.version, "resources": resources}),
            )
        }
        "/debug/leader" => json_response(
            StatusCode::OK,
            &state.leader.as_ref().map_or_else(
                || json!({"lease": null, "leading": false, "note": "no leader election outside Kubernetes mode"}),
                crate::leader::LeaderView::to_json,
            ),
        ),
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        "/ready" => {
            if state.ready.load(Ordering::Relaxed) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /debug/syncz, /debug/config_dump?proxyID=, /debug/registryz, /debug/configz, /debug/resourcesz, /debug/leader, /metrics, /ready\n",
        ),
    }
}

async fn config_dump(state: &DebugState, query: &str) -> Response<Full<Bytes>> {
    let Some(id) = param(query, "proxyID") else {
        let ids: Vec<String> = state.status.list().into_iter().map(|s| s.proxy).collect();
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "proxyID is required", "connected": ids}),
        );
    };
    let include_eds = param(query, "include_eds").is_some_and(|v| v != "false" && v != "0");
    let connected = state
        .status
        .find(&id)
        .into_iter()
        .max_by_key(|s| s.connection_id);
    let (config, sync) = match connected {
        Some(s) => (s.config.clone(), Some(s.types)),
        None => {
            let Ok(info) = ProxyInfo::from_node_id(&id) else {
                return json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("no connected proxy {id:?}, and it is not a node id to generate for")}),
                );
            };
            let config = state.config.borrow().clone();
            let translator = state.translator.clone();
            match tokio::task::spawn_blocking(move || {
                translator.encoded(&config.snapshot, &config.cache, &info)
            })
            .await
            {
                Ok(c) => (Arc::new(c), None),
                Err(e) => {
                    return json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &json!({"error": format!("translation failed: {e}")}),
                    );
                }
            }
        }
    };
    // What was sent, at the version and time it was sent (nothing for a proxy generated on
    // the fly).
    let anys: Vec<Vec<Any>> = XdsType::ALL
        .iter()
        .map(|t| {
            config
                .iter(t.kind())
                .map(|r| Any {
                    type_url: t.type_url().to_owned(),
                    value: r.value.to_vec(),
                })
                .collect()
        })
        .collect();
    let section = |t: XdsType| json::Section {
        update: sync
            .as_ref()
            .and_then(|types| types.get(t.short()))
            .map(|st| json::Update {
                version_info: st.version_sent.clone().unwrap_or_default(),
                last_updated: st.sent_time.as_deref().and_then(json::parse_timestamp),
            })
            .unwrap_or_default(),
        resources: anys[t as usize].iter().collect(),
    };
    let sections = json::Sections {
        clusters: section(XdsType::Cluster),
        listeners: section(XdsType::Listener),
        routes: section(XdsType::Route),
        endpoints: include_eds.then(|| section(XdsType::Endpoint)),
    };
    match json::config_dump_encoded(&sections) {
        Ok(dump) => json_response(StatusCode::OK, &dump),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": format!("cannot print the config dump: {e}")}),
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The first value of `key` in a query string, percent-decoded.
pub fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The address the debug API listens on, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}/debug/syncz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q = "full=true&proxyID=sidecar%7E127.0.0.2%7Ea.b%7Eb.svc.cluster.local";
        assert_eq!(
            param(q, "proxyID").as_deref(),
            Some("sidecar~127.0.0.2~a.b~b.svc.cluster.local")
        );
        assert_eq!(param(q, "full").as_deref(), Some("true"));
        assert_eq!(param(q, "nope"), None);
        assert_eq!(param("a=%zz&b=%4", "a").as_deref(), Some("%zz"));
        assert_eq!(param("a=%zz&b=%4", "b").as_deref(), Some("%4"));
        assert_eq!(param("flag", "flag").as_deref(), Some(""));
    }
}
