//! The test application every scenario runs behind its sidecars: an HTTP server (HTTP/1.1,
//! and h2c for HTTP2 service ports) that answers each request with a JSON description of what
//! it received, so a scenario can see which backend answered and what the mesh did to the
//! request on the way (rewritten path, added headers, authority).
//!
//! Behaviour controls, from the query string or a request header (the query wins):
//!
//! | query              | header                  | effect                                      |
//! |--------------------|-------------------------|---------------------------------------------|
//! | `status=503`       | `x-echo-status`         | answer with this status                      |
//! | `delay_ms=200`     | `x-echo-delay-ms`       | wait this long before answering (max 60 s)   |
//! | `key=k1`           | `x-echo-key`            | count requests under this key (`attempt`)    |
//! | `fail_first=2`     | `x-echo-fail-first`     | the first N requests of the key fail         |
//! | `fail_status=500`  | `x-echo-fail-status`    | the status of those failures (default 503)   |
//! | —                  | `x-echo-response-header`| `name: value` added to the response          |
//!
//! `GET /__stats` answers `{name, total, by_key}` (requests seen, not counting `/__stats`),
//! which is how scenarios count retries and mirrored requests. Loopback addresses only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The longest delay a request may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The path that answers the request counters.
pub const STATS_PATH: &str = "/__stats";

/// What the echo app answers: a description of the request it received.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The app's name (`--name`), e.g. `reviews-v2`.
    pub name: String,
    pub method: String,
    /// The path it received, without the query.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
    /// The request headers, names lower-case; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The `Host` header, or the request target's authority.
    pub host: String,
    /// The request body, as UTF-8 (lossy).
    #[serde(default)]
    pub body: String,
    /// With a key: which request of that key this was (1 for the first).
    #[serde(default)]
    pub attempt: Option<u64>,
    #[serde(default)]
    pub key: Option<String>,
}

/// The request counters `GET /__stats` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoStats {
    pub name: String,
    /// Requests seen, `/__stats` itself not counted.
    pub total: u64,
    /// Requests per `key`.
    #[serde(default)]
    pub by_key: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct State {
    name: String,
    stats: Mutex<EchoStats>,
}

impl State {
    /// Counts one request; returns the attempt number of its key.
    fn count(&self, key: Option<&str>) -> Option<u64> {
        let mut stats = match self.stats.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        stats.total += 1;
        key.map(|k| {
            let n = stats.by_key.entry(k.to_owned()).or_insert(0);
            *n += 1;
            *n
        })
    }

    fn snapshot(&self) -> EchoStats {
        match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Parses `a=1&b=2` into pairs (no percent-decoding: the controls are plain words and numbers).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

/// The behaviour a request asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Controls {
    pub status: Option<u16>,
    pub delay: Option<Duration>,
    pub key: Option<String>,
    pub fail_first: u64,
    pub fail_status: u16,
    pub response_headers: Vec<(String, String)>,
}

impl Controls {
    /// Reads the controls from the query and headers (the query wins).
    pub fn from_request(query: &str, headers: &BTreeMap<String, String>) -> Controls {
        let q = parse_query(query);
        let get = |qname: &str, hname: &str| -> Option<String> {
            q.iter()
                .rev()
                .find(|(k, _)| k == qname)
                .map(|(_, v)| v.clone())
                .or_else(|| headers.get(hname).cloned())
        };
        let num = |qname: &str, hname: &str| -> Option<u64> {
            get(qname, hname).and_then(|v| v.trim().parse::<u64>().ok())
        };
        let status = num("status", "x-echo-status")
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s));
        let delay = num("delay_ms", "x-echo-delay-ms")
            .map(|ms| Duration::from_millis(ms).min(MAX_DELAY))
            .filter(|d| !d.is_zero());
        let fail_status = num("fail_status", "x-echo-fail-status")
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s))
            .unwrap_or(503);
        let response_headers = headers
            .get("x-echo-response-header")
            .into_iter()
            .flat_map(|v| v.split(", "))
            .filter_map(|h| h.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Controls {
            status,
            delay,
            key: get("key", "x-echo-key").filter(|k| !k.is_empty()),
            fail_first: num("fail_first", "x-echo-fail-first").unwrap_or(0),
            fail_status,
            response_headers,
        }
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if path == STATS_PATH {
        return Ok(json_response(StatusCode::OK, &state.snapshot()));
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let host = headers
        .get(HOST.as_str())
        .cloned()
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let body = match body.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => String::new(),
    };
    let controls = Controls::from_request(&query, &headers);
    let attempt = state.count(controls.key.as_deref());
    if let Some(delay) = controls.delay {
        tokio::time::sleep(delay).await;
    }
    let failing = attempt.is_some_and(|a| a <= controls.fail_first);
    let status = if failing {
        controls.fail_status
    } else {
        controls.status.unwrap_or(200)
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let reply = EchoReply {
        name: state.name.clone(),
        method: parts.method.as_str().to_owned(),
        path,
        query,
        headers,
        host,
        body,
        attempt,
        key: controls.key.clone(),
    };
    let mut resp = json_response(status, &reply);
    for (k, v) in &controls.response_headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v)) {
            resp.headers_mut().append(k, v);
        }
    }
    Ok(resp)
}

/// Errors starting the echo app.
#[derive(Debug)]
pub enum EchoError {
    /// Only loopback addresses may be served.
    NotLoopback(SocketAddr),
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for EchoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EchoError::NotLoopback(a) => write!(f, "{a} is not a loopback address"),
            EchoError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
        }
    }
}

impl std::error::Error for EchoError {}

/// Binds the app's listener (loopback only).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, EchoError> {
    if !addr.ip().is_loopback() {
        return Err(EchoError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|e| EchoError::Bind(addr, e))
}

/// Binds the app's listener on any address. Only for tests that run the app inside a
/// network namespace of their own, where a non-loopback address exists nowhere else.
pub async fn bind_in_namespace(addr: SocketAddr) -> Result<TcpListener, EchoError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| EchoError::Bind(addr, e))
}

/// Serves connections on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    name: String,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let state = Arc::new(State {
        name: name.clone(),
        stats: Mutex::new(EchoStats {
            name,
            ..EchoStats::default()
        }),
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Too many open files and the like: back off instead of spinning.
                eprintln!("mesh-echo: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An echo app running inside the current process (for tests of the test tools); stops when
/// dropped.
#[derive(Debug)]
pub struct EchoServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl EchoServer {
    /// Starts serving on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr, name: &str) -> Result<EchoServer, EchoError> {
        let listener = bind(addr).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| EchoError::Bind(addr, e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, name.to_owned(), async move {
            let _ = stopped.await;
        }));
        Ok(EchoServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn controls_come_from_query_or_headers_and_the_query_wins() {
        let c = Controls::from_request(
            "status=418&delay_ms=20",
            &headers(&[("x-echo-status", "500"), ("x-echo-key", "k")]),
        );
        assert_eq!(c.status, Some(418));
        assert_eq!(c.delay, Some(Duration::from_millis(20)));
        assert_eq!(c.key.as_deref(), Some("k"));
        assert_eq!(c.fail_first, 0);
        assert_eq!(c.fail_status, 503);

        let c = Controls::from_request(
            "",
            &headers(&[
                ("x-echo-fail-first", "2"),
                ("x-echo-fail-status", "500"),
                ("x-echo-response-header", "x-a: 1, x-b:2"),
            ]),
        );
        assert_eq!(c.fail_first, 2);
        assert_eq!(c.fail_status, 500);
        assert_eq!(
            c.response_headers,
            vec![
                ("x-a".to_owned(), "1".to_owned()),
                ("x-b".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn nonsense_controls_are_ignored_and_delays_are_capped() {
        let c =
            Controls::from_request("status=abc&delay_ms=99999999&fail_status=42", &headers(&[]));
        assert_eq!(c.status, None);
        assert_eq!(c.delay, Some(MAX_DELAY));
        assert_eq!(c.fail_status, 503);
    }

    #[test]
    fn query_parsing_keeps_order_and_bare_keys() {
        assert_eq!(
            parse_query("a=1&&b&c=x=y"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), "x=y".to_owned()),
            ]
        );
    }

    #[test]
    fn counting_per_key() {
        let s = State {
            name: "n".into(),
            stats: Mutex::new(EchoStats::default()),
        };
        assert_eq!(s.count(Some("a")), Some(1));
        assert_eq!(s.count(Some("a")), Some(2));
        assert_eq!(s.count(None), None);
        assert_eq!(s.count(Some("b")), Some(1));
        let snap = s.snapshot();
        assert_eq!(snap.total, 4);
        assert_eq!(snap.by_key.get("a"), Some(&2));
    }

    #[tokio::test]
    async fn refuses_non_loopback_addresses() {
        let err = EchoServer::start("0.0.0.0:0".parse().unwrap(), "x")
            .await
            .unwrap_err();
        assert!(matches!(err, EchoError::NotLoopback(_)), "{err}");
    }
}
