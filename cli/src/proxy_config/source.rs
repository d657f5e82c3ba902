//! Where `meshctl proxy-config` reads a proxy's state from: the proxy's admin API
//! (`--admin ADDR`), a workload name resolved to its proxy through meshd's debug API
//! (`/debug/syncz`, local mode: the proxy's admin API is `IP:15000`), or a saved dump
//! (`--file`, `-` for stdin). Owns the small blocking HTTP/1.1 client (hyper on a
//! current-thread tokio runtime) and the errors users see when a source cannot be read.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HOST;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// The proxy admin port in local mode (DESIGN.md: ports).
pub const ADMIN_PORT: u16 = 15000;

/// The bound on one request to an admin or debug API, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong while finding or reading a proxy's state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad or missing flags (exit 64).
    #[error("{0}")]
    Usage(String),
    #[error(
        "cannot reach the proxy's admin API at {addr}: {reason}\n  \
         Is the proxy running, and is {addr} its admin address (local mode: WORKLOAD_IP:15000)? \
         Try `meshctl proxy-status` to list connected proxies, or read a saved dump with --file"
    )]
    AdminUnreachable { addr: String, reason: String },
    #[error(
        "cannot read {target}'s admin API (port 15000) through the API server's port-forward: \
         {reason}\n  The forward's own error, if it met one, is printed above. Does the pod \
         run a sidecar with its admin API on 15000 (`meshctl proxy-status --use-kube` lists \
         the connected ones)? Where websocket upgrades are blocked, try \
         --kube-transport api-proxy"
    )]
    KubeAdminUnreachable { target: String, reason: String },
    #[error(
        "cannot reach meshd's debug API at {url}: {reason}\n  \
         Is meshd running? Pass its debug address with --controlplane URL, or name the proxy's \
         admin address with --admin IP:15000"
    )]
    ControlPlaneUnreachable { url: String, reason: String },
    #[error("no proxy for workload {target:?} is connected to meshd at {url}; {known}")]
    UnknownWorkload {
        target: String,
        url: String,
        known: String,
    },
    /// A proxy answered with an HTTP error (exit 65).
    #[error("{what}: HTTP {status}: {body}")]
    Rejected {
        what: String,
        status: u16,
        body: String,
    },
    /// A source answered or contained something unusable (exit 65).
    #[error("{what}: {reason}")]
    BadInput { what: String, reason: String },
}

impl Error {
    /// The exit code (DESIGN.md: 64 bad usage, 65 input that could not be read).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::UnknownWorkload { .. } => crate::exit::USAGE,
            _ => crate::exit::BAD_INPUT,
        }
    }

    fn bad(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::BadInput {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// A resolved source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A proxy admin API, `host:port`.
    Admin(String),
    /// A saved JSON file (`-`: stdin).
    File(PathBuf),
}

/// `--admin` as given: `IP:PORT`, `http://IP:PORT/`, or an IP alone (port 15000).
pub fn admin_authority(given: &str) -> String {
    let a = given
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let has_port = match a.rsplit_once(':') {
        // `[::1]:15000` or `127.0.0.1:15000`, not a bare IPv6 address.
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        a.to_owned()
    } else if a.contains(':') && !a.starts_with('[') {
        format!("[{a}]:{ADMIN_PORT}")
    } else {
        format!("{a}:{ADMIN_PORT}")
    }
}

/// The `host:port` of a `http://host:port[/path]` URL.
fn url_authority(url: &str) -> Result<String, Error> {
    let rest = url.trim();
    if rest.starts_with("https://") {
        return Err(Error::Usage(format!(
            "--controlplane {url}: only http:// is supported (meshd's debug API is plaintext)"
        )));
    }
    let rest = rest.trim_start_matches("http://");
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(Error::Usage(format!(
            "--controlplane {url:?}: expected http://HOST:PORT"
        )));
    }
    Ok(if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// One proxy meshd knows, from `/debug/syncz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownProxy {
    pub node_id: String,
    /// `NAME.NAMESPACE`, as istioctl names pods.
    pub name: String,
    pub ip: String,
}

/// The proxies in a `/debug/syncz` answer: meshd's array of `{proxy, ip, workload,
/// namespace, ...}`; the node id (`TYPE~IP~NAME.NS~NS.svc.cluster.local`) is enough.
pub fn known_proxies(syncz: &Value) -> Vec<KnownProxy> {
    let items: Vec<&Value> = match syncz {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => match o.get("proxies") {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let mut out: Vec<KnownProxy> = items
        .into_iter()
        .filter_map(|p| {
            let node_id = p
                .get("proxy")
                .or_else(|| p.get("node_id"))
                .or_else(|| p.get("id"))
                .and_then(Value::as_str)?
                .to_owned();
            let parts: Vec<&str> = node_id.split('~').collect();
            let field = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let ip = field("ip")
                .map(str::to_owned)
                .or_else(|| parts.get(1).map(|s| (*s).to_owned()))?;
            let name = match (field("workload"), field("namespace")) {
                (Some(w), Some(ns)) => format!("{w}.{ns}"),
                _ => parts.get(2).map(|s| (*s).to_owned())?,
            };
            Some(KnownProxy { node_id, name, ip })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.node_id.cmp(&b.node_id)));
    out.dedup();
    out
}

/// Finds `target` (`NAME.NAMESPACE`, a node id, or `NAME` when only one namespace has it).
pub fn find_proxy<'a>(known: &'a [KnownProxy], target: &str) -> Option<&'a KnownProxy> {
    if let Some(p) = known
        .iter()
        .find(|p| p.node_id == target || p.name == target)
    {
        return Some(p);
    }
    let mut by_name = known
        .iter()
        .filter(|p| p.name.split_once('.').is_some_and(|(n, _)| n == target));
    match (by_name.next(), by_name.next()) {
        (Some(p), None) => Some(p),
        _ => None,
    }
}

/// Resolves the flags to one source.
pub fn resolve(
    target: Option<&str>,
    admin: Option<&str>,
    file: Option<&Path>,
    controlplane: &str,
) -> Result<Source, Error> {
    match (target, admin, file) {
        (None, None, None) => Err(Error::Usage(
            "name a proxy: a workload (NAME.NAMESPACE, resolved through meshd), \
             --admin IP:15000, or --file DUMP.json"
                .to_owned(),
        )),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(Error::Usage(
            "give only one of a workload name, --admin and --file".to_owned(),
        )),
        (_, Some(a), None) => Ok(Source::Admin(admin_authority(a))),
        (_, None, Some(f)) => Ok(Source::File(f.to_owned())),
        (Some(t), None, None) => {
            let authority = url_authority(controlplane)?;
            let body = get(&authority, "/debug/syncz").map_err(|reason| {
                Error::ControlPlaneUnreachable {
                    url: controlplane.to_owned(),
                    reason,
                }
            })?;
            let syncz: Value = serde_json::from_slice(&body).map_err(|e| {
                Error::bad(
                    format!("{controlplane}/debug/syncz"),
                    format!("not JSON: {e}"),
                )
            })?;
            let known = known_proxies(&syncz);
            match find_proxy(&known, t) {
                Some(p) => Ok(Source::Admin(admin_authority(&p.ip))),
                None => Err(Error::UnknownWorkload {
                    target: t.to_owned(),
                    url: controlplane.to_owned(),
                    known: if known.is_empty() {
                        "no proxy is connected".to_owned()
                    } else {
                        format!(
                            "connected: {}",
                            known
                                .iter()
                                .map(|p| p.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    },
                }),
            }
        }
    }
}

/// GET `path` from a proxy's admin API.
pub fn admin_get(authority: &str, path: &str) -> Result<Vec<u8>, Error> {
    admin(Method::GET, authority, path)
}

/// POST `path` to a proxy's admin API (Envoy wants POST for `/logging`).
pub fn admin_post(authority: &str, path: &str) -> Result<Vec<u8>, Error> {
    admin(Method::POST, authority, path)
}

fn admin(method: Method, authority: &str, path: &str) -> Result<Vec<u8>, Error> {
    request(method.clone(), authority, path).map_err(|e| match e {
        HttpError::Transport(reason) => Error::AdminUnreachable {
            addr: authority.to_owned(),
            reason,
        },
        HttpError::Status(status, body) => Error::Rejected {
            what: format!("{method} http://{authority}{path}"),
            status,
            body,
        },
    })
}

/// Reads a saved file, or stdin for `-`.
pub fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::bad("stdin", e))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Error::bad(path.display().to_string(), e))
}

/// Parses JSON read from `what`.
pub fn parse_json(what: &str, bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::bad(what, format!("not JSON: {e}")))
}

fn get(authority: &str, path: &str) -> Result<Vec<u8>, String> {
    request(Method::GET, authority, path).map_err(|e| e.to_string())
}

/// Why a request failed.
#[derive(Debug)]
enum HttpError {
    /// No connection, no answer, or no answer in time.
    Transport(String),
    /// A non-2xx answer: status and the start of the body.
    Status(u16, String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(r) => f.write_str(r),
            HttpError::Status(s, b) => write!(f, "HTTP {s}: {b}"),
        }
    }
}

/// One HTTP/1.1 request, bounded by [`TIMEOUT`].
fn request(method: Method, authority: &str, path: &str) -> Result<Vec<u8>, HttpError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HttpError::Transport(format!("cannot start the HTTP client: {e}")))?;
    let (status, body) = rt
        .block_on(async {
            tokio::time::timeout(TIMEOUT, exchange(method, authority, path))
                .await
                .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
        })
        .map_err(HttpError::Transport)?;
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&body);
        let short: String = text.trim().chars().take(300).collect();
        return Err(HttpError::Status(status, short));
    }
    Ok(body)
}

async fn exchange(method: Method, authority: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes()
        .to_vec();
    drop(sender);
    conn.abort();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn admin_addresses() {
        assert_eq!(admin_authority("127.0.0.51:15000"), "127.0.0.51:15000");
        assert_eq!(
            admin_authority("http://127.0.0.51:15000/"),
            "127.0.0.51:15000"
        );
        assert_eq!(admin_authority("127.0.0.51"), "127.0.0.51:15000");
        assert_eq!(admin_authority("::1"), "[::1]:15000");
        assert_eq!(admin_authority("[::1]:9901"), "[::1]:9901");
        assert_eq!(admin_authority("localhost"), "localhost:15000");
    }

    #[test]
    fn controlplane_urls() {
        assert_eq!(
            url_authority("http://127.0.0.1:15014").unwrap(),
            "127.0.0.1:15014"
        );
        assert_eq!(
            url_authority("http://127.10.2.1:15014/debug").unwrap(),
            "127.10.2.1:15014"
        );
        assert!(url_authority("https://x:1").is_err());
    }

    fn syncz() -> Value {
        serde_json::json!([
            {"proxy": "sidecar~127.10.2.10~client.shop~shop.svc.cluster.local",
             "ip": "127.10.2.10", "workload": "client", "namespace": "shop"},
            {"proxy": "router~127.10.12.5~ingressgateway.istio-system~istio-system.svc.cluster.local"},
            {"proxy": "sidecar~127.0.0.9~client.other~other.svc.cluster.local"},
            {"no": "id"}
        ])
    }

    #[test]
    fn workloads_resolve_through_syncz() {
        let known = known_proxies(&syncz());
        assert_eq!(known.len(), 3);
        assert_eq!(find_proxy(&known, "client.shop").unwrap().ip, "127.10.2.10");
        assert_eq!(
            find_proxy(&known, "ingressgateway").unwrap().ip,
            "127.10.12.5"
        );
        assert_eq!(
            find_proxy(
                &known,
                "sidecar~127.0.0.9~client.other~other.svc.cluster.local"
            )
            .unwrap()
            .name,
            "client.other"
        );
        // Two namespaces have a `client`: the bare name is ambiguous.
        assert!(find_proxy(&known, "client").is_none());
        assert!(find_proxy(&known, "nosuch.shop").is_none());
    }

    #[test]
    fn flags_pick_one_source() {
        assert!(matches!(
            resolve(None, None, None, "http://127.0.0.1:1"),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            resolve(Some("a.b"), Some("1.2.3.4"), None, "http://127.0.0.1:1"),
            Err(Error::Usage(_))
        ));
        assert_eq!(
            resolve(None, Some("1.2.3.4"), None, "x").unwrap(),
            Source::Admin("1.2.3.4:15000".into())
        );
        assert_eq!(
            resolve(None, None, Some(Path::new("-")), "x").unwrap(),
            Source::File("-".into())
        );
    }

    #[test]
    fn an_unreachable_admin_names_the_address_and_what_to_try() {
        // Port 9 on loopback: nothing listens there.
        let e = admin_get("127.0.0.1:9", "/config_dump").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("127.0.0.1:9"), "{text}");
        assert!(text.contains("--file"), "{text}");
        assert_eq!(e.exit_code(), crate::exit::BAD_INPUT);
    }
}
