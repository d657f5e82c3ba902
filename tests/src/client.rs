//! The scenarios' HTTP client: one HTTP/1.1 request per connection, sent either through a
//! sidecar's outbound listener as an HTTP proxy (absolute-form request target, as
//! `curl -x http://IP:15001 http://reviews.shop:9080/` sends it), inside a CONNECT tunnel
//! that listener opens (as `curl -p -x ...` does, for TCP service ports), or straight to an
//! address (origin-form, e.g. to a gateway), with a bound on the whole exchange. Redirects are not
//! followed: scenarios look at them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How a request reaches the mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Through an HTTP proxy (a sidecar's outbound listener): absolute-form target.
    Proxy(SocketAddr),
    /// Straight to this address: origin-form target, `Host` from the URL.
    Direct(SocketAddr),
    /// Through a `CONNECT host:port` tunnel this HTTP proxy opens to the URL's authority;
    /// inside it the request is origin-form, as [`Via::Direct`] sends it.
    Tunnel(SocketAddr),
}

impl Via {
    pub fn addr(self) -> SocketAddr {
        match self {
            Via::Proxy(a) | Via::Direct(a) | Via::Tunnel(a) => a,
        }
    }
}

/// `host:port` of an `http://` URL, port 80 when it names none.
fn tunnel_authority(url: &str) -> anyhow::Result<String> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow!("URL {url:?} has no host"))?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// Asks the proxy on `stream` for a tunnel to `authority` and reads its answer's head,
/// which must be a 2xx.
async fn open_tunnel(stream: &mut TcpStream, authority: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await
        .context("sending CONNECT")?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            bail!("the CONNECT answer's head is over 16 KiB");
        }
        if stream
            .read(&mut byte)
            .await
            .context("reading the CONNECT answer")?
            == 0
        {
            bail!("the proxy closed the connection before answering CONNECT");
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let status = text.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        bail!(
            "CONNECT {authority} answered {}",
            text.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

/// A request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// Absolute `http://host:port/path?query`.
    pub url: String,
    /// Extra headers; a `host` here replaces the one taken from the URL.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl HttpRequest {
    pub fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".to_owned(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Response headers, names lower-case, in order.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// From the start of the connect to the end of the body.
    pub elapsed: Duration,
}

impl HttpResponse {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Builds the hyper request for `req` as sent `via`.
pub fn build(req: &HttpRequest, via: Via) -> anyhow::Result<Request<Full<Bytes>>> {
    let uri: Uri = req
        .url
        .parse()
        .with_context(|| format!("bad URL {:?}", req.url))?;
    if uri.scheme_str() != Some("http") {
        bail!("URL {:?} is not http://", req.url);
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("URL {:?} has no host", req.url))?
        .clone();
    let target: Uri = match via {
        Via::Proxy(_) => uri.clone(),
        Via::Direct(_) | Via::Tunnel(_) => uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .parse()
            .with_context(|| format!("bad path in {:?}", req.url))?,
    };
    let method = Method::from_bytes(req.method.as_bytes())
        .with_context(|| format!("bad method {:?}", req.method))?;
    let body = req.body.clone().unwrap_or_default();
    let mut out = Request::builder()
        .method(method)
        .uri(target)
        .body(Full::new(Bytes::from(body)))
        .context("building the request")?;
    let headers = out.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(authority.as_str()).context("host header")?,
    );
    for (k, v) in &req.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .with_context(|| format!("bad header name {k:?}"))?;
        let value = HeaderValue::from_str(v).with_context(|| format!("bad header value {v:?}"))?;
        if name == HOST {
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    Ok(out)
}

/// Sends one request on a new connection; the whole exchange is bounded by `timeout`.
pub async fn send(req: &HttpRequest, via: Via, timeout: Duration) -> anyhow::Result<HttpResponse> {
    let request = build(req, via)?;
    let start = Instant::now();
    let exchange = async {
        let mut stream = TcpStream::connect(via.addr())
            .await
            .with_context(|| format!("connect to {}", via.addr()))?;
        let _ = stream.set_nodelay(true);
        if let Via::Tunnel(_) = via {
            open_tunnel(&mut stream, &tunnel_authority(&req.url)?).await?;
        }
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        let conn = tokio::spawn(conn);
        let resp = sender
            .send_request(request)
            .await
            .context("sending the request")?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading the body")?
            .to_bytes();
        drop(sender);
        conn.abort();
        Ok::<_, anyhow::Error>(HttpResponse {
            status,
            headers,
            body,
            elapsed: start.elapsed(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r.with_context(|| format!("{} {} via {via:?}", req.method, req.url)),
        Err(_) => bail!(
            "{} {} via {via:?}: no complete response within {timeout:?}",
            req.method,
            req.url
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn proxy_requests_keep_the_absolute_url_and_set_host() {
        let r = build(
            &HttpRequest::get("http://reviews.shop:9080/a?b=1").header("end-user", "jason"),
            Via::Proxy(addr()),
        )
        .unwrap();
        assert_eq!(r.uri().to_string(), "http://reviews.shop:9080/a?b=1");
        assert_eq!(r.headers()["host"], "reviews.shop:9080");
        assert_eq!(r.headers()["end-user"], "jason");
    }

    #[test]
    fn direct_requests_use_origin_form_and_host_can_be_overridden() {
        let r = build(
            &HttpRequest::get("http://127.0.0.1:8080/productpage?x=y")
                .header("Host", "shop.example.com"),
            Via::Direct(addr()),
        )
        .unwrap();
        assert_eq!(r.uri().to_string(), "/productpage?x=y");
        assert_eq!(r.headers().get_all("host").iter().count(), 1);
        assert_eq!(r.headers()["host"], "shop.example.com");
    }

    #[test]
    fn bad_requests_are_refused_before_sending() {
        assert!(build(&HttpRequest::get("https://x/"), Via::Direct(addr())).is_err());
        assert!(build(&HttpRequest::get("/relative"), Via::Direct(addr())).is_err());
        let mut r = HttpRequest::get("http://x/");
        r.method = "BAD METHOD".into();
        assert!(build(&r, Via::Direct(addr())).is_err());
    }
}
