//! The demo's bookinfo applications: small HTTP servers run as tokio tasks inside meshctl,
//! answering like bookinfo's. productpage calls details and reviews, and reviews v2 and v3
//! call ratings, always through their own sidecar's outbound listener
//! (`WORKLOAD_IP:15001`, with a Host header naming the service), so every call between apps
//! crosses two sidecars. Each app listens on `WORKLOAD_IP:19080` (its service port + 10000)
//! and names itself in an `x-served-by` header. A request carrying `x-bookinfo-delay-ms: N`
//! is answered N ms late (a known latency for `meshctl stat`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use super::config::{SERVICE_PORT, Workload};

/// The header productpage forwards so that reviews can route a user (`end-user: jason`).
pub const END_USER: &str = "end-user";
/// The header productpage answers with: which reviews workload served the page.
pub const REVIEWS_HEADER: &str = "x-bookinfo-reviews";

/// A request header every app honours by waiting this many milliseconds (at most
/// [`MAX_DELAY`]) before it answers: a known latency for checking `meshctl stat`.
pub const DELAY_HEADER: &str = "x-bookinfo-delay-ms";
const MAX_DELAY: Duration = Duration::from_secs(5);

/// How long an app waits for a call through its sidecar.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One app: its workload and its sidecar's outbound address.
#[derive(Clone, Debug)]
pub struct App {
    pub workload: Workload,
    pub sidecar: SocketAddr,
}

impl App {
    pub fn new(workload: Workload) -> App {
        let sidecar = SocketAddr::new(workload.ip.into(), 15001);
        App { workload, sidecar }
    }

    /// Where the app listens: `WORKLOAD_IP:(9080 + 10000)`.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.workload.ip.into(),
            SERVICE_PORT + mesh_core::xds::LOCAL_APP_PORT_OFFSET,
        )
    }
}

/// Binds the app's address (so that a busy address fails the demo before anything else
/// starts) and serves it on a task.
pub async fn start(app: App) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let addr = app.listen_addr();
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "{} cannot listen on {addr} (another demo running?)",
            app.workload.name
        )
    })?;
    let app = Arc::new(app);
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(handle(&app, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }))
}

async fn handle(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let end_user = req
        .headers()
        .get(END_USER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let delay = req
        .headers()
        .get(DELAY_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms).min(MAX_DELAY));
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let w = &app.workload;
    let mut resp = match (w.app.as_str(), path.as_str()) {
        (_, "/health") => text(StatusCode::OK, "ok\n".to_owned()),
        ("productpage", "/" | "/productpage") => productpage(app, end_user.as_deref()).await,
        ("details", p) if p.starts_with("/details/") => json_response(&details(id(p, "/details/"))),
        ("reviews", p) if p.starts_with("/reviews/") => {
            reviews(app, id(p, "/reviews/"), end_user.as_deref()).await
        }
        ("ratings", p) if p.starts_with("/ratings/") => json_response(&json!({
            "id": id(p, "/ratings/"),
            "ratings": {"Reviewer1": 5, "Reviewer2": 4},
        })),
        _ => text(
            StatusCode::NOT_FOUND,
            format!("{}: no route {path}\n", w.name),
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&w.name) {
        resp.headers_mut().insert("x-served-by", v);
    }
    resp
}

fn id(path: &str, prefix: &str) -> u64 {
    path.strip_prefix(prefix)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn details(id: u64) -> Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}

async fn reviews(app: &App, id: u64, end_user: Option<&str>) -> Response<Full<Bytes>> {
    let w = &app.workload;
    let color = match w.version.as_str() {
        "v2" => Some("black"),
        "v3" => Some("red"),
        _ => None,
    };
    let mut stars: Option<Value> = None;
    if let Some(color) = color {
        let host = format!("ratings.{}:{SERVICE_PORT}", w.namespace);
        stars = Some(
            match call(app.sidecar, &host, &format!("/ratings/{id}"), end_user).await {
                Ok((200, body)) => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                    json!({"ratings": v["ratings"], "color": color})
                }
                Ok((status, _)) => {
                    json!({"error": format!("ratings answered {status}")})
                }
                Err(e) => json!({"error": format!("ratings unavailable: {e:#}")}),
            },
        );
    }
    let rating = |who: &str| match &stars {
        Some(s) if s.get("error").is_none() => {
            json!({"stars": s["ratings"][who], "color": s["color"]})
        }
        Some(s) => s.clone(),
        None => Value::Null,
    };
    let mut list = vec![
        json!({"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"}),
        json!({"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."}),
    ];
    if stars.is_some() {
        for r in &mut list {
            let who = r["reviewer"].as_str().unwrap_or_default().to_owned();
            r["rating"] = rating(&who);
        }
    }
    json_response(&json!({"id": id.to_string(), "podname": w.name, "reviews": list}))
}

async fn productpage(app: &App, end_user: Option<&str>) -> Response<Full<Bytes>> {
    let ns = &app.workload.namespace;
    let details_host = format!("details.{ns}:{SERVICE_PORT}");
    let reviews_host = format!("reviews.{ns}:{SERVICE_PORT}");
    let (d, r) = tokio::join!(
        call(app.sidecar, &details_host, "/details/0", end_user),
        call(app.sidecar, &reviews_host, "/reviews/0", end_user),
    );
    let mut page = format!("{}: The Comedy of Errors\n", app.workload.name);
    let mut ok = true;
    match d {
        Ok((200, body)) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            page.push_str(&format!(
                "  details: {}, {} pages, {} ({})\n",
                v["type"].as_str().unwrap_or("?"),
                v["pages"],
                v["author"].as_str().unwrap_or("?"),
                v["publisher"].as_str().unwrap_or("?"),
            ));
        }
        Ok((status, _)) => {
            ok = false;
            page.push_str(&format!("  details: error, details answered {status}\n"));
        }
        Err(e) => {
            ok = false;
            page.push_str(&format!("  details: error, {e:#}\n"));
        }
    }
    let mut served_by = None;
    match r {
        Ok((200, body)) => {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            let pod = v["podname"].as_str().unwrap_or("?").to_owned();
            page.push_str(&format!("  reviews ({pod}):\n"));
            for r in v["reviews"].as_array().into_iter().flatten() {
                let rating = match &r["rating"] {
                    Value::Null => String::new(),
                    x if x.get("error").is_some() => {
                        format!(" [{}]", x["error"].as_str().unwrap_or("?"))
                    }
                    x => {
                        let n = x["stars"].as_u64().unwrap_or(0).min(5) as usize;
                        format!(
                            " {}{} ({})",
                            "★".repeat(n),
                            "☆".repeat(5 - n),
                            x["color"].as_str().unwrap_or("?")
                        )
                    }
                };
                page.push_str(&format!(
                    "    {}{rating}: {}\n",
                    r["reviewer"].as_str().unwrap_or("?"),
                    r["text"].as_str().unwrap_or("")
                ));
            }
            served_by = Some(pod);
        }
        Ok((status, _)) => {
            ok = false;
            page.push_str(&format!("  reviews: error, reviews answered {status}\n"));
        }
        Err(e) => {
            ok = false;
            page.push_str(&format!("  reviews: error, {e:#}\n"));
        }
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    let mut resp = text(status, page);
    if let Some(v) = served_by.and_then(|s| HeaderValue::from_str(&s).ok()) {
        resp.headers_mut().insert(REVIEWS_HEADER, v);
    }
    resp
}

/// GET `path` from the service `host` (`name.ns:port`) through the sidecar at `sidecar`.
pub async fn call(
    sidecar: SocketAddr,
    host: &str,
    path: &str,
    end_user: Option<&str>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = Request::get(path)
        .header(HOST, host)
        .body(Full::new(Bytes::new()))
        .context("building a request")?;
    if let Some(u) = end_user.and_then(|u| HeaderValue::from_str(u).ok()) {
        req.headers_mut().insert(END_USER, u);
    }
    let (status, _, body) = send(sidecar, req).await?;
    Ok((status, body))
}

/// One request on a new HTTP/1.1 connection to `addr`, bounded; status, headers, body.
pub async fn send(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        let conn = tokio::spawn(conn);
        let resp = sender.send_request(req).await.context("sending")?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the body")?
            .to_bytes();
        conn.abort();
        Ok::<_, anyhow::Error>((status, headers, body))
    };
    match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => bail!("no answer from {addr} within {CALL_TIMEOUT:?}"),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
