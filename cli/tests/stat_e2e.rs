//! `meshctl stat` against the local demo mesh, with each engine's sidecars: a known load
//! through productpage, a known number of it failing (a fault abort on details for
//! `end-user: fail`, which productpage answers 502), and `stat -o json` must count it
//! exactly, give the exact success rate, and latency percentiles within the histogram
//! bucket that holds the slowest request the client saw; then 40 requests to details that
//! the app answers 35 ms late, whose percentiles must all lie in the (25, 50] ms bucket.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Stops the demo (SIGINT, as Ctrl-C) on every path, bounded.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One GET to productpage through its sidecar; the status and how long it took.
fn get(addr: SocketAddr, end_user: Option<&str>) -> (u16, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let user = end_user.map_or(String::new(), |u| format!("end-user: {u}\r\n"));
    write!(
        s,
        "GET /productpage HTTP/1.1\r\nHost: productpage.bookinfo:9080\r\n{user}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, start.elapsed())
}

/// One GET to details from reviews-v1's sidecar (outbound `addr`), answered `delay_ms`
/// late by the app; the status.
fn get_details(addr: SocketAddr, delay_ms: u64) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /details/0 HTTP/1.1\r\nHost: details.bookinfo:9080\r\nx-bookinfo-delay-ms: {delay_ms}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The details VirtualService with an abort for `end-user: fail` before its route.
fn add_fault(dir: &Path) {
    let path = dir.join("routing.yaml");
    let routing = std::fs::read_to_string(&path).unwrap();
    let plain = "  hosts:\n  - details\n  http:\n  - route:";
    assert!(routing.contains(plain), "{routing}");
    let faulty = routing.replace(
        plain,
        "  hosts:\n  - details\n  http:\n  - match:\n    - headers:\n        end-user:\n          exact: fail\n    fault:\n      abort:\n        httpStatus: 503\n        percentage:\n          value: 100\n    route:\n    - destination:\n        host: details\n        subset: v1\n  - route:",
    );
    std::fs::write(&path, faulty).unwrap();
}

fn stat(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .arg("stat")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stat_counts_a_known_load_exactly_with_mesh_proxy() {
    known_load("native", None, "127.0.73");
}

#[test]
fn stat_counts_a_known_load_exactly_with_envoy() {
    let Some(envoy) = mesh_e2e::process::find_envoy().unwrap() else {
        return;
    };
    known_load("envoy", Some(envoy), "127.0.74");
}

fn known_load(engine: &str, envoy: Option<std::path::PathBuf>, prefix: &str) {
    let dir =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("stat-e2e-{engine}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args([
        "demo",
        "--engine",
        engine,
        "--requests",
        "1",
        // Plaintext, without bookinfo's AuthorizationPolicies: the delayed calls below go
        // to details from reviews' sidecar, which details-viewer would refuse.
        "--no-mtls",
        "--ip-prefix",
        prefix,
        "--dir",
    ])
    .arg(&dir);
    if let Some(e) = &envoy {
        cmd.env("MESH_ENVOY_BIN", e);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if line.starts_with("Stop with Ctrl-C") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(150))
        .expect("the demo mesh came up");
    let cp = format!("http://{prefix}.1:15014");
    // productpage is the first Deployment of bookinfo's apps.yaml: the first address.
    let productpage: SocketAddr = format!("{prefix}.11:9080").parse().unwrap();
    assert_eq!(get(productpage, None).0, 200);

    add_fault(&dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(productpage, Some("fail")).0 != 502 {
        assert!(Instant::now() < deadline, "the fault never applied");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Envoy adds observations to its histograms at its stats flush (every 5 s): let the
    // requests above reach them before the window opens.
    if engine == "envoy" {
        std::thread::sleep(Duration::from_secs(6));
    }
    // stat scrapes now and 15 s later; the load goes in between.
    let window = "15s";
    let spawn_stat = |by: &'static str| {
        let cp = cp.clone();
        std::thread::spawn(move || {
            stat(&[
                "--controlplane",
                &cp,
                "--window",
                window,
                "--by",
                by,
                "-o",
                "json",
            ])
        })
    };
    let (by_workload, by_route) = (spawn_stat("workload"), spawn_stat("route"));
    std::thread::sleep(Duration::from_secs(4));
    let (ok, failing) = (12u64, 4u64);
    let mut slowest = Duration::ZERO;
    for i in 0..ok + failing {
        let user = (i % 4 == 3).then_some("fail");
        let (status, took) = get(productpage, user);
        assert_eq!(status, if user.is_some() { 502 } else { 200 });
        slowest = slowest.max(took);
    }
    // A known latency: details answers these 35 ms late, so at details' inbound side they
    // all fall in the (25, 50] ms bucket, and with more of them than of the fast requests
    // above every percentile of details-v1 must lie in that bucket.
    let reviews_v1: SocketAddr = format!("{prefix}.13:15001").parse().unwrap();
    let delayed = 40u64;
    let mut slowest_delayed = std::time::Duration::ZERO;
    for _ in 0..delayed {
        let t = std::time::Instant::now();
        assert_eq!(get_details(reviews_v1, 35), 200);
        slowest_delayed = slowest_delayed.max(t.elapsed());
    }
    let report = by_workload.join().unwrap();
    assert!(
        report["windowSeconds"].as_f64().unwrap() >= 15.0,
        "{report}"
    );
    assert_eq!(report["proxies"], 6, "{report}");
    let rows = report["rows"].as_array().unwrap();
    let row = |w: &str| {
        rows.iter()
            .find(|r| r["workload"] == w)
            .unwrap_or_else(|| panic!("no row for {w}: {report}"))
    };
    let pp = row("productpage-v1");
    assert_eq!(pp["namespace"], "bookinfo");
    assert_eq!(pp["requests"], ok + failing, "{pp}");
    assert_eq!(pp["successRate"], 0.75, "{pp}");
    let source = if engine == "envoy" { "envoy" } else { "istio" };
    assert_eq!(pp["source"], source, "{pp}");
    // details is called only by the requests the fault lets through, and the delayed ones.
    let dv = row("details-v1");
    assert_eq!(dv["requests"], ok + delayed, "{report}");
    assert_eq!(dv["successRate"], 1.0, "{report}");
    for k in ["p50Ms", "p95Ms"] {
        let v = dv[k].as_f64().unwrap_or_else(|| panic!("{k}: {dv}"));
        assert!(
            (25.0..=50.0).contains(&v),
            "{k} {v} outside the (25, 50] ms bucket of the 35 ms requests: {dv}"
        );
    }
    // p99 is the slowest one or two of ~50 requests: on a loaded machine one of them can
    // take over 50 ms, so p99 must be above 25 ms and at most the bound of the bucket that
    // holds the slowest delayed request the client saw (the proxy times a part of it).
    let p99 = dv["p99Ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("p99Ms: {dv}"));
    let slowest_delayed_ms = slowest_delayed.as_secs_f64() * 1000.0;
    let delayed_bound = [50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0]
        .into_iter()
        .find(|b| *b >= slowest_delayed_ms)
        .unwrap_or(10000.0);
    assert!(
        p99 > 25.0 && p99 <= delayed_bound,
        "p99Ms {p99} outside (25, {delayed_bound}] (slowest delayed request {slowest_delayed_ms} ms): {dv}"
    );

    // Percentiles: ordered, and none above the bucket bound that holds the slowest
    // request the client saw (the proxy times a part of what the client times).
    let bounds = [
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    ];
    let slowest_ms = slowest.as_secs_f64() * 1000.0;
    let bound = bounds
        .iter()
        .copied()
        .find(|b| *b >= slowest_ms)
        .unwrap_or(10000.0);
    let p: Vec<f64> = ["p50Ms", "p95Ms", "p99Ms"]
        .iter()
        .map(|k| pp[k].as_f64().unwrap_or_else(|| panic!("{k}: {pp}")))
        .collect();
    assert!(p[0] > 0.0 && p[0] <= p[1] && p[1] <= p[2], "{pp}");
    assert!(
        p[2] <= bound,
        "p99 {} above {bound} (slowest {slowest_ms} ms): {pp}",
        p[2]
    );

    // Per route, as productpage's sidecar saw its calls: every request reached reviews. The
    // aborted calls to details are failures that mesh-proxy counts under the route's
    // destination (`details`, as Istio labels them) and Envoy's cluster stats never see.
    let routes = by_route.join().unwrap();
    let calls: Vec<&Value> = routes["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["workload"] == "productpage-v1")
        .collect();
    let to = |d: &str| calls.iter().find(|r| r["destination"] == d).copied();
    let reviews = to("reviews.bookinfo.svc.cluster.local")
        .unwrap_or_else(|| panic!("no reviews row: {routes}"));
    assert_eq!(reviews["requests"], ok + failing, "{routes}");
    assert_eq!(reviews["successRate"], 1.0, "{routes}");
    let details = to("details.bookinfo.svc.cluster.local")
        .unwrap_or_else(|| panic!("no details row: {routes}"));
    assert_eq!(calls.len(), 2, "only reviews and details: {routes}");
    #[allow(clippy::cast_precision_loss)]
    let (requests, success) = if engine == "envoy" {
        (ok, 1.0)
    } else {
        (ok + failing, ok as f64 / (ok + failing) as f64)
    };
    assert_eq!(details["requests"], requests, "{routes}");
    assert_eq!(details["successRate"], success, "{routes}");
    // The demo is plaintext: 0% mTLS where known. mesh-proxy's destination side says
    // `none` for each request, its source side cannot tell (`-`); Envoy's inbound listener
    // saw the client's new connections and no TLS handshake.
    assert_eq!(pp["mtlsShare"], 0.0, "{pp}");
    if engine != "envoy" {
        assert!(reviews["mtlsShare"].is_null(), "{routes}");
    }
}
