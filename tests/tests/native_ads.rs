//! mesh-proxy's native engine against a real meshd: it applies and ACKs what it is sent,
//! NACKs (with the reason) an update it cannot honour while the config before it keeps
//! serving, keeps serving when meshd goes away, reconnects when meshd comes back, and on
//! SIGTERM stops listening but lets a request in flight finish.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::process::{ChildGuard, wait_for_port, workspace_binary};
use mesh_e2e::syncz;

const MESHD_IP: &str = "127.10.240.1";
const CLIENT_IP: &str = "127.10.240.10";
const REVIEWS_IP: &str = "127.10.240.21";
const CLIENT_ID: &str = "sidecar~127.10.240.10~client.shop~shop.svc.cluster.local";
const REVIEWS_ID: &str = "sidecar~127.10.240.21~reviews-v1.shop~shop.svc.cluster.local";

const BASE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: shop, labels: {app: client}}
spec: {address: 127.10.240.10}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec: {address: 127.10.240.21}
"#;

/// Upstream TLS with a certificate revocation list, which the native engine cannot honour
/// (it originates SIMPLE/MUTUAL TLS, but has no CRL check) and refuses rather than skip.
const TLS_RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  trafficPolicy:
    tls: {mode: SIMPLE, caCertificates: /nonexistent/ca.pem, caCrl: /nonexistent/crl.pem}
"#;

fn meshd(dir: &Path, log: &Path) -> ChildGuard {
    let mut cmd = Command::new(workspace_binary("meshd").unwrap());
    cmd.arg("--config-dir")
        .arg(dir)
        .args(["--xds-address", &format!("{MESHD_IP}:15010")])
        .args(["--debug-address", &format!("{MESHD_IP}:15014")])
        .env("RUST_LOG", "info");
    ChildGuard::spawn("meshd", cmd, log).unwrap()
}

fn proxy(workload: &str, ip: &str, labels: &[&str], log: &Path) -> ChildGuard {
    let mut cmd = Command::new(workspace_binary("mesh-proxy").unwrap());
    cmd.args([
        "run",
        "--engine",
        "native",
        "--workload",
        workload,
        "--ip",
        ip,
    ])
    .args(["--xds-address", &format!("{MESHD_IP}:15010")]);
    for l in labels {
        cmd.args(["--label", l]);
    }
    ChildGuard::spawn(workload, cmd, log).unwrap()
}

async fn syncz() -> Option<Vec<syncz::ProxySync>> {
    let debug: SocketAddr = format!("{MESHD_IP}:15014").parse().unwrap();
    let req = HttpRequest::get(&format!("http://{debug}/debug/syncz"));
    let r = client::send(&req, Via::Direct(debug), Duration::from_secs(2))
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(syncz::parse(&v))
}

/// Waits (bounded) until `ok` holds for meshd's view of the proxies.
async fn wait_syncz(what: &str, limit: Duration, ok: impl Fn(&[syncz::ProxySync]) -> bool) {
    let start = Instant::now();
    loop {
        if let Some(p) = syncz().await
            && ok(&p)
        {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}: {:?}",
            syncz().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let req = HttpRequest::get(&format!("http://{addr}{path}"));
    let r = client::send(&req, Via::Direct(addr), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{addr}{path}: {}", r.body_text());
    r.body_text()
}

async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let req = HttpRequest::get(&format!("http://{addr}{path}"));
    let r = client::send(&req, Via::Direct(addr), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{addr}{path}: {}", r.body_text());
    serde_json::from_slice(&r.body).unwrap()
}

fn synced(p: &[syncz::ProxySync]) -> bool {
    syncz::state(p, &[CLIENT_ID.to_owned(), REVIEWS_ID.to_owned()]).all_synced()
}

async fn reviews_answers() -> Result<u16, String> {
    let req = HttpRequest::get("http://reviews.shop:9080/reviews/1");
    let via = Via::Proxy(format!("{CLIENT_IP}:15001").parse().unwrap());
    let r = client::send(&req, via, Duration::from_secs(5))
        .await
        .map_err(|e| format!("{e:#}"))?;
    if r.status == 200 && !r.body_text().contains("reviews-v1") {
        return Err(format!("answered by someone else: {}", r.body_text()));
    }
    Ok(r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_proxy_acks_nacks_and_keeps_the_last_good_config() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("native-ads");
    let _ = std::fs::remove_dir_all(&root);
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("base.yaml"), BASE).unwrap();

    let mut meshd1 = meshd(&config, &root.join("meshd.log"));
    let mut app = {
        let mut cmd = Command::new(workspace_binary("mesh-echo").unwrap());
        cmd.args([
            "--listen",
            &format!("{REVIEWS_IP}:19080"),
            "--name",
            "reviews-v1",
        ]);
        ChildGuard::spawn("app", cmd, &root.join("app.log")).unwrap()
    };
    let mut client_proxy = proxy(
        "shop/client",
        CLIENT_IP,
        &["app=client"],
        &root.join("proxy-client.log"),
    );
    let mut reviews_proxy = proxy(
        "shop/reviews-v1",
        REVIEWS_IP,
        &["app=reviews"],
        &root.join("proxy-reviews.log"),
    );

    // Applied and ACKed; traffic flows through both native sidecars.
    wait_syncz("both proxies ACKed", Duration::from_secs(30), synced).await;
    wait_for_port(
        format!("{CLIENT_IP}:15001").parse().unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    wait_for_port(
        format!("{REVIEWS_IP}:9080").parse().unwrap(),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(reviews_answers().await, Ok(200));

    // The proxy's /config_dump is Envoy's JSON of exactly what meshd sent it.
    let admin: SocketAddr = format!("{CLIENT_IP}:15000").parse().unwrap();
    let debug: SocketAddr = format!("{MESHD_IP}:15014").parse().unwrap();
    let applied = get_json(admin, "/config_dump?include_eds").await;
    let sent = get_json(
        debug,
        &format!("/debug/config_dump?proxyID={CLIENT_ID}&include_eds"),
    )
    .await;
    let applied = mesh_core::xds::json::comparable(&applied);
    assert!(
        applied
            .to_string()
            .contains("outbound|9080||reviews.shop.svc.cluster.local"),
        "{applied}"
    );
    assert_eq!(applied, mesh_core::xds::json::comparable(&sent));

    // Istio's metrics on both sides, with the peers' workloads learnt from each other.
    let reviews_admin: SocketAddr = format!("{REVIEWS_IP}:15000").parse().unwrap();
    let client_prom = get_text(admin, "/stats/prometheus").await;
    let line = client_prom
        .lines()
        .find(|l| l.starts_with("istio_requests_total{"))
        .unwrap_or_else(|| panic!("no istio_requests_total: {client_prom}"));
    for want in [
        "reporter=\"source\"",
        "source_workload=\"client\"",
        "destination_workload=\"reviews-v1\"",
        "destination_workload_namespace=\"shop\"",
        "destination_service=\"reviews.shop.svc.cluster.local\"",
        "response_code=\"200\"",
    ] {
        assert!(line.contains(want), "{want} missing in {line}");
    }
    let reviews_prom = get_text(reviews_admin, "/stats/prometheus").await;
    assert!(
        reviews_prom
            .lines()
            .any(|l| l.starts_with("istio_requests_total{")
                && l.contains("reporter=\"destination\"")
                && l.contains("source_workload=\"client\"")),
        "{reviews_prom}"
    );
    // /clusters in Envoy's JSON shape, with the request counted on the endpoint.
    let clusters = get_json(admin, "/clusters?format=json").await;
    let reviews = clusters["cluster_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "outbound|9080||reviews.shop.svc.cluster.local")
        .unwrap();
    let host = &reviews["host_statuses"][0];
    assert_eq!(host["address"]["socket_address"]["address"], REVIEWS_IP);
    assert_eq!(host["address"]["socket_address"]["port_value"], 9080);
    let rq_total = host["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "rq_total")
        .unwrap();
    assert_eq!(rq_total["value"], "1");

    // An update the engine cannot honour is NACKed with the reason; the last good config
    // keeps serving.
    std::fs::write(config.join("tls.yaml"), TLS_RULE).unwrap();
    wait_syncz("a NACK naming upstream TLS", Duration::from_secs(30), |p| {
        p.iter()
            .find(|x| x.id == CLIENT_ID)
            .is_some_and(|x| x.nacks().iter().any(|n| n.contains("TLS")))
    })
    .await;
    assert_eq!(reviews_answers().await, Ok(200));

    // Taking the rule away gives a config it accepts again.
    std::fs::remove_file(config.join("tls.yaml")).unwrap();
    wait_syncz("ACKed again", Duration::from_secs(30), synced).await;
    assert_eq!(reviews_answers().await, Ok(200));

    // meshd gone: the proxies keep the last good config.
    meshd1.stop(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        assert_eq!(reviews_answers().await, Ok(200));
    }

    // meshd back: the proxies reconnect (back-off at most 10 s) and ACK.
    let mut meshd2 = meshd(&config, &root.join("meshd-2.log"));
    wait_syncz(
        "both proxies reconnected and ACKed",
        Duration::from_secs(40),
        synced,
    )
    .await;
    assert_eq!(reviews_answers().await, Ok(200));

    // SIGTERM while a request is in flight: the proxy stops listening but lets it finish.
    let slow = tokio::spawn(async {
        let req = HttpRequest::get("http://reviews.shop:9080/reviews/1?delay_ms=1000");
        let via = Via::Proxy(format!("{CLIENT_IP}:15001").parse().unwrap());
        client::send(&req, via, Duration::from_secs(10)).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    client_proxy.ensure_running().unwrap();
    let stopper = tokio::task::spawn_blocking(move || {
        client_proxy.stop(Duration::from_secs(8));
        client_proxy
    });
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.body_text());
    let mut client_proxy = stopper.await.unwrap();
    assert!(client_proxy.exited().is_some_and(|s| s.success()));
    assert!(
        std::net::TcpStream::connect(format!("{CLIENT_IP}:15001")).is_err(),
        "still listening after SIGTERM"
    );

    for c in [&mut reviews_proxy, &mut app, &mut meshd2] {
        c.ensure_running().unwrap();
        c.stop(Duration::from_secs(5));
    }
}
