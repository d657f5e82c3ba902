//! The scenario tools checked against each other with no mesh in between: the real
//! `mesh-echo` binary, the client (proxy form on the wire, direct form, timeouts), the
//! behaviour controls scenarios rely on (status, delay, fail-first counters, `/__stats`), and
//! the runner's step checks.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::echo::{EchoServer, EchoStats};
use mesh_e2e::expect::echo_reply;
use mesh_e2e::process::{ChildGuard, wait_for_port};
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{LoadedScenario, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

async fn echo(name: &str) -> EchoServer {
    EchoServer::start("127.0.0.1:0".parse().unwrap(), name)
        .await
        .unwrap()
}

#[tokio::test]
async fn echo_describes_the_request_it_received() {
    let app = echo("reviews-v2").await;
    let req = HttpRequest::get(&format!("http://{}/reviews/1?a=b", app.addr()))
        .header("end-user", "jason");
    let mut req = req;
    req.method = "POST".into();
    req.body = Some("hello".into());
    let resp = client::send(&req, Via::Direct(app.addr()), T)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let r = echo_reply(&resp).unwrap();
    assert_eq!(r.name, "reviews-v2");
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/reviews/1");
    assert_eq!(r.query, "a=b");
    assert_eq!(r.host, app.addr().to_string());
    assert_eq!(r.headers["end-user"], "jason");
    assert_eq!(r.body, "hello");
    assert_eq!(r.attempt, None);
}

#[tokio::test]
async fn proxy_form_reaches_an_http_server_with_the_host_of_the_url() {
    // An origin server accepts absolute-form too; what it sees is what a sidecar would see.
    let app = echo("a").await;
    let req = HttpRequest::get("http://reviews.shop:9080/x?y=1");
    let resp = client::send(&req, Via::Proxy(app.addr()), T).await.unwrap();
    let r = echo_reply(&resp).unwrap();
    assert_eq!(r.host, "reviews.shop:9080");
    assert_eq!(r.path, "/x");
    assert_eq!(r.query, "y=1");
}

/// Reads one request head from a raw socket and answers 204.
async fn capture_request_head(listener: tokio::net::TcpListener) -> String {
    let (mut s, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the request head ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8(buf).unwrap()
}

#[tokio::test]
async fn on_the_wire_proxy_requests_are_absolute_form_and_direct_ones_origin_form() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let head = tokio::spawn(capture_request_head(l));
    let req = HttpRequest::get("http://reviews.shop:9080/a?b=c").header("x-k", "v");
    let resp = client::send(&req, Via::Proxy(addr), T).await.unwrap();
    assert_eq!(resp.status, 204);
    let head = head.await.unwrap();
    assert!(
        head.starts_with("GET http://reviews.shop:9080/a?b=c HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nhost: reviews.shop:9080\r\n"),
        "{head}"
    );

    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let head = tokio::spawn(capture_request_head(l));
    let req = HttpRequest::get("http://shop.example.com/productpage");
    client::send(&req, Via::Direct(addr), T).await.unwrap();
    let head = head.await.unwrap();
    assert!(head.starts_with("GET /productpage HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nhost: shop.example.com\r\n"),
        "{head}"
    );
}

#[tokio::test]
async fn status_delay_and_response_header_controls() {
    let app = echo("a").await;
    let url = format!("http://{}/x?status=418&delay_ms=150", app.addr());
    let req = HttpRequest::get(&url).header("x-echo-response-header", "x-from: echo");
    let resp = client::send(&req, Via::Direct(app.addr()), T)
        .await
        .unwrap();
    assert_eq!(resp.status, 418);
    assert!(
        resp.elapsed >= Duration::from_millis(150),
        "{:?}",
        resp.elapsed
    );
    assert_eq!(resp.header("x-from"), Some("echo"));
    assert_eq!(echo_reply(&resp).unwrap().path, "/x");
}

#[tokio::test]
async fn the_client_gives_up_after_its_timeout() {
    let app = echo("slow").await;
    let url = format!("http://{}/?delay_ms=2000", app.addr());
    let start = std::time::Instant::now();
    let err = client::send(
        &HttpRequest::get(&url),
        Via::Direct(app.addr()),
        Duration::from_millis(200),
    )
    .await
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(
        format!("{err:#}").contains("no complete response within"),
        "{err:#}"
    );
}

#[tokio::test]
async fn fail_first_counts_attempts_per_key_and_stats_count_requests() {
    let app = echo("ratings").await;
    let addr = app.addr();
    let send = |key: &str| {
        let req = HttpRequest::get(&format!("http://{addr}/r"))
            .header("x-echo-key", key)
            .header("x-echo-fail-first", "2");
        async move { client::send(&req, Via::Direct(addr), T).await.unwrap() }
    };
    let statuses: Vec<(u16, Option<u64>)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let r = send("k1").await;
            v.push((r.status, echo_reply(&r).unwrap().attempt));
        }
        v
    };
    assert_eq!(statuses, [(503, Some(1)), (503, Some(2)), (200, Some(3))]);
    assert_eq!(send("k2").await.status, 503, "keys count separately");

    let resp = client::send(
        &HttpRequest::get(&format!("http://{}/__stats", app.addr())),
        Via::Direct(app.addr()),
        T,
    )
    .await
    .unwrap();
    let stats: EchoStats = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(stats.name, "ratings");
    assert_eq!(stats.total, 4, "/__stats itself is not counted");
    assert_eq!(stats.by_key["k1"], 3);
    assert_eq!(stats.by_key["k2"], 1);
}

fn mesh_echo() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mesh-echo"))
}

#[tokio::test]
async fn the_mesh_echo_binary_serves_and_stops_on_sigterm() {
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cmd = Command::new(mesh_echo());
    cmd.args(["--listen", &addr.to_string(), "--name", "details-v1"]);
    let log = std::env::temp_dir().join(format!("mesh-echo-bin-{}.log", std::process::id()));
    let mut guard = ChildGuard::spawn("mesh-echo", cmd, &log).unwrap();
    wait_for_port(addr, T).await.unwrap();
    let resp = client::send(
        &HttpRequest::get(&format!("http://{addr}/details/1")),
        Via::Direct(addr),
        T,
    )
    .await
    .unwrap();
    assert_eq!(echo_reply(&resp).unwrap().name, "details-v1");
    let start = std::time::Instant::now();
    guard.stop(Duration::from_secs(3));
    assert!(
        guard.exited().unwrap().success(),
        "exits cleanly on SIGTERM"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(guard.log_tail(5).contains("listening on"));
}

#[test]
fn the_mesh_echo_binary_refuses_bad_flags_and_non_loopback_addresses() {
    let o = Command::new(mesh_echo())
        .args(["--name", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--listen is required"));
    let o = Command::new(mesh_echo())
        .args(["--listen", "0.0.0.0:0", "--name", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a loopback address"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The runner's step logic against in-process apps standing in for the mesh: requests sent
/// "through a proxy" straight to one app, with counts and splits checked.
#[tokio::test]
async fn runner_steps_check_responses_splits_and_counts() {
    let a = echo("reviews-v1").await;
    let b = echo("reviews-v2").await;
    let yaml = format!(
        r#"
description: steps against in-process apps
meshd_ip: 127.10.250.1
workloads:
  - {{name: reviews-v1, namespace: shop, ip: {ip}, app_port: {pa}, proxy: none}}
  - {{name: reviews-v2, namespace: shop, ip: 127.0.0.2, app_port: {pb}, proxy: none}}
requests:
  - name: ok
    to: "{a}"
    url: http://reviews.shop:9080/r?key=k1
    headers: {{x-echo-fail-first: "1"}}
    repeat: 3
    expect: {{status_in: [200, 503], name: reviews-v1, host: reviews.shop:9080}}
    expect_counts: {{reviews-v1: 3, reviews-v2: 0}}
  - name: wrong
    to: "{a}"
    url: http://reviews.shop:9080/r
    expect_split: {{reviews-v1: 50, reviews-v2: 50, tolerance: 10, n: 4}}
    expect_counts: {{reviews-v1: {{max: 1}}}}
"#,
        ip = a.addr().ip(),
        pa = a.addr().port(),
        pb = b.addr().port(),
        a = a.addr(),
    );
    let s = LoadedScenario {
        name: "inline".into(),
        dir: PathBuf::new(),
        config_dir: PathBuf::new(),
        scenario: parse(&yaml).unwrap(),
    };
    assert_eq!(s.problems(), Vec::<String>::new());
    // The app for reviews-v2 listens on 127.0.0.1, not 127.0.0.2: point its workload there.
    let mut s = s;
    s.scenario.workloads[1].ip = b.addr().ip();
    let opts = RunOptions::new(
        Tools {
            meshd: "meshd".into(),
            mesh_proxy: "mesh-proxy".into(),
            mesh_echo: mesh_echo(),
            envoy: "envoy".into(),
        },
        ProxyEngine::Agent,
        std::env::temp_dir(),
    );
    let ok = runner::run_step(&s, &s.scenario.requests[0], &opts).await;
    assert_eq!(ok, Vec::<String>::new());
    let wrong = runner::run_step(&s, &s.scenario.requests[1], &opts).await;
    assert_eq!(wrong.len(), 3, "{wrong:#?}");
    assert!(
        wrong[0].contains("expected reviews-v1 to answer 50%"),
        "{wrong:#?}"
    );
    assert!(
        wrong[1].contains("expected reviews-v2 to answer 50%"),
        "{wrong:#?}"
    );
    assert_eq!(
        wrong[2],
        "expected reviews-v1 to see at most 1 requests, it saw 4"
    );
}
