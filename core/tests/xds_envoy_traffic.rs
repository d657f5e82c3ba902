//! Local mode with real Envoy: sidecars built from the generated config (as static
//! bootstraps) carry requests between workloads on loopback addresses the way the module
//! docs of `mesh_core::xds` describe (outbound HTTP proxy on WORKLOAD_IP:15001, inbound on
//! WORKLOAD_IP:PORT, app on WORKLOAD_IP:PORT+10000).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mesh_core::xds::{ProxyKind, generate, local_app_port};
use prost::Message;
use xds_support::*;

/// An Envoy process, killed on drop.
struct Envoy(Child);

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tiny HTTP server answering `NAME METHOD PATH host=HOST` on every request.
struct App {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl App {
    fn start(name: &str, addr: &str) -> App {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_owned();
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).ok();
                        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let req = String::from_utf8_lossy(&buf);
                        let first = req.lines().next().unwrap_or("").to_owned();
                        let host = req
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("host:")
                                    .map(|h| h.trim().to_owned())
                            })
                            .unwrap_or_default();
                        let mut parts = first.split(' ');
                        let method = parts.next().unwrap_or("");
                        let path = parts.next().unwrap_or("");
                        let body = format!("{name} {method} {path} host={host}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(resp.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        App { stop, addr }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start_envoy(
    envoy: &Path,
    snap: &mesh_core::xds::Snapshot,
    kind: ProxyKind,
    ns: &str,
    name: &str,
) -> Envoy {
    let p = proxy(snap, kind, ns, name);
    let cfg = generate(snap, &p);
    let dir = std::env::temp_dir().join(format!("mesh-xds-traffic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join(format!("{ns}-{name}.pb"));
    std::fs::write(&file, to_bootstrap(&cfg).encode_to_vec()).expect("write");
    let child = Command::new(envoy)
        .args([
            "-c",
            file.to_str().expect("utf8"),
            "--use-dynamic-base-id",
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start envoy");
    Envoy(child)
}

fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let sa: SocketAddr = addr.parse().expect("addr");
    while TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a raw HTTP/1.1 request; returns status and body.
fn request(proxy: &str, request_line: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (status, resp) = request_head(proxy, request_line, headers);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Sends a raw HTTP/1.1 request; returns status and the whole response.
fn request_head(proxy: &str, request_line: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(proxy).expect("connect proxy");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut req = format!("{request_line}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response to {request_line}: {resp:?}"));
    (status, resp)
}

#[test]
fn local_mode_requests_pass_through_both_sidecars() {
    let Some(envoy) = envoy_bin() else { return };
    let mut snap = snapshot(&["testdata/bookinfo", "core/tests/xds/local"]);
    // Bookinfo's AuthorizationPolicies allow only callers with SPIFFE identities, which
    // need mTLS (not served yet): with them every call here would get 403. Authorization
    // is tested by the scenarios (testdata/scenarios/authz-*).
    snap.authorization_policies.clear();

    // Apps behind sidecars listen on PORT + 10000 of their workload address.
    let app_port = local_app_port(9080).expect("port");
    let _reviews_v2 = App::start("reviews-v2", &format!("127.77.0.13:{app_port}"));
    let _productpage = App::start("productpage", &format!("127.77.0.10:{app_port}"));
    // The "external" server of the ServiceEntry api.external.test.
    let _external = App::start("external", "127.77.0.99:9999");
    // A server outside the registry.
    let stray = App::start("stray", "127.77.0.98:0");

    let _pp = start_envoy(
        &envoy,
        &snap,
        ProxyKind::Sidecar,
        "bookinfo",
        "productpage-v1",
    );
    let _rv2 = start_envoy(&envoy, &snap, ProxyKind::Sidecar, "bookinfo", "reviews-v2");
    let _fe = start_envoy(&envoy, &snap, ProxyKind::Sidecar, "shop", "frontend");
    // The bookinfo gateway serves port 80, which only privileged users may bind.
    let can_bind_80 = TcpListener::bind("127.77.0.9:80").is_ok();
    let _gw = can_bind_80.then(|| {
        start_envoy(
            &envoy,
            &snap,
            ProxyKind::Gateway,
            "istio-system",
            "ingressgateway",
        )
    });
    if can_bind_80 {
        wait_listening("127.77.0.9:80");
    } else {
        eprintln!("!!! gateway checks skipped: cannot bind port 80 as this user !!!");
    }
    wait_listening("127.77.0.10:15001");
    wait_listening("127.77.0.13:9080");
    wait_listening("127.77.0.20:15001");

    // Absolute form, header routing to reviews v2 through both sidecars.
    let (status, body) = request(
        "127.77.0.10:15001",
        "GET http://reviews.bookinfo:9080/reviews/1 HTTP/1.1",
        &[("end-user", "jason")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("reviews-v2 GET /reviews/1"), "{body}");

    // Host-header form with the short name (same namespace) and no port.
    let (status, body) = request(
        "127.77.0.10:15001",
        "GET /ping HTTP/1.1",
        &[("host", "reviews"), ("end-user", "jason")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("reviews-v2 GET /ping"), "{body}");

    // A ServiceEntry with a static loopback endpoint.
    let (status, body) = request(
        "127.77.0.10:15001",
        "GET http://api.external.test/x HTTP/1.1",
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("external GET /x"), "{body}");
    // Its VirtualService aborts requests marked x-fault: grpc (with gRPC UNAVAILABLE,
    // which Envoy reports to a plain HTTP client as a 200 with its abort message).
    let (_, head) = request_head(
        "127.77.0.10:15001",
        "GET http://api.external.test/x HTTP/1.1",
        &[("x-fault", "grpc")],
    );
    assert!(head.trim_end().ends_with("fault filter abort"), "{head}");

    // ALLOW_ANY: a host outside the registry goes through the dynamic forward proxy.
    let stray_url = format!("http://{}/s", stray.addr);
    let (status, body) = request(
        "127.77.0.10:15001",
        &format!("GET {stray_url} HTTP/1.1"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("stray GET /s"), "{body}");

    // A request naming a sidecar's own outbound listener is not forwarded in a loop.
    let (status, _) = request(
        "127.77.0.10:15001",
        "GET / HTTP/1.1",
        &[("host", "127.77.0.10:15001")],
    );
    assert_eq!(status, 404);

    // CONNECT tunnels: to a host outside the registry (ALLOW_ANY), then HTTP inside.
    let mut t = TcpStream::connect("127.77.0.10:15001").expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let target = stray.addr.to_string();
    t.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
        .expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            t.read(&mut byte).expect("read"),
            1,
            "tunnel closed: {head:?}"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    t.write_all(b"GET /tunnel HTTP/1.1\r\nhost: stray\r\nconnection: close\r\n\r\n")
        .expect("send");
    let mut resp = String::new();
    let _ = t.read_to_string(&mut resp);
    assert!(resp.contains("stray GET /tunnel"), "{resp}");

    if can_bind_80 {
        gateway_checks();
    }

    // REGISTRY_ONLY (the frontend's Sidecar): the same request is refused with 502.
    let (status, _) = request(
        "127.77.0.20:15001",
        &format!("GET {stray_url} HTTP/1.1"),
        &[],
    );
    assert_eq!(status, 502);
}

fn gateway_checks() {
    // Ingress: the gateway routes bookinfo.example.com to productpage v1 (through its
    // sidecar), whatever port the Host header names.
    let (status, body) = request(
        "127.77.0.9:80",
        "GET /productpage HTTP/1.1",
        &[("host", "bookinfo.example.com:8080")],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("productpage GET /productpage"), "{body}");
    let (status, _) = request(
        "127.77.0.9:80",
        "GET /nope HTTP/1.1",
        &[("host", "bookinfo.example.com")],
    );
    assert_eq!(status, 404);
    // httpsRedirect on the shop's HTTP server.
    let (status, _) = request(
        "127.77.0.9:80",
        "GET / HTTP/1.1",
        &[("host", "shop.example.com")],
    );
    assert_eq!(status, 301);
}
