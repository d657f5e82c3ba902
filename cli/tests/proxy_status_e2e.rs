//! `meshctl proxy-status` end to end: meshd on the demo's bookinfo config, two real Envoy
//! sidecars (mesh-proxy agent mode), and two fake ADS clients written here: one that takes
//! its clusters and never acknowledges them (STALE), one that rejects them with a reason
//! (NACK, shown as ERROR). Checks the table, the explanations under it, `-o json`, the exit
//! codes, and the per-section diff of a real sidecar.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use mesh_e2e::process::{ChildGuard, Processes, ensure_free, find_envoy, workspace_binary};
use meshctl::demo::config::{self, Workload};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Addresses no other test uses.
const PREFIX: [u8; 3] = [127, 0, 66];
const NACK_DETAIL: &str =
    "fake-proxy rejects cluster outbound|9080||ratings.bookinfo.svc.cluster.local: unknown field";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn meshctl(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .output()
        .expect("run meshctl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How a fake proxy answers meshd's cluster responses.
#[derive(Clone, Copy)]
enum Behaviour {
    /// ACKs the first response, then stops acknowledging (a stuck proxy).
    StopsAcking,
    /// Rejects every response with this reason.
    Nacks(&'static str),
}

/// A fake proxy on one ADS stream, asking for clusters only.
struct FakeProxy {
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProxy {
    fn drop(&mut self) {
        // Ends the stream: the reader owns the request sender and the response stream.
        self.reader.abort();
    }
}

async fn fake_proxy(xds: SocketAddr, w: &Workload, behaviour: Behaviour) -> FakeProxy {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{xds}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to meshd's xDS");
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: w.node_id(),
            user_agent_name: "fake-proxy".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion("0.0.1".into())),
            ..Node::default()
        }),
        type_url: CLUSTER.into(),
        ..DiscoveryRequest::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("open the ADS stream")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(20), responses.message())
        .await
        .expect("meshd answered within 20 s")
        .expect("a response")
        .expect("not the end of the stream");
    assert_eq!(first.type_url, CLUSTER);
    assert!(!first.resources.is_empty(), "meshd sent no clusters");
    let answer = move |resp: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse,
                       first: bool| match behaviour {
        Behaviour::StopsAcking if first => Some(DiscoveryRequest {
            type_url: CLUSTER.into(),
            version_info: resp.version_info.clone(),
            response_nonce: resp.nonce.clone(),
            ..DiscoveryRequest::default()
        }),
        Behaviour::StopsAcking => None,
        Behaviour::Nacks(detail) => Some(DiscoveryRequest {
            type_url: CLUSTER.into(),
            response_nonce: resp.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: detail.to_owned(),
                details: vec![],
            }),
            ..DiscoveryRequest::default()
        }),
    };
    if let Some(req) = answer(&first, true) {
        tx.send(req).await.unwrap();
    }
    let reader = tokio::spawn(async move {
        while let Ok(Some(resp)) = responses.message().await {
            if let Some(req) = answer(&resp, false)
                && tx.send(req).await.is_err()
            {
                return;
            }
        }
    });
    FakeProxy { reader }
}

/// Polls `meshctl proxy-status -o json` until `done` holds, up to `timeout`.
async fn wait_for(
    controlplane: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let cp = controlplane.to_owned();
        let run = tokio::task::spawn_blocking(move || {
            meshctl(&["proxy-status", "-o", "json", "--controlplane", &cp])
        })
        .await
        .unwrap();
        let rows: Vec<Value> = serde_json::from_str(&run.stdout).unwrap_or_default();
        if done(&rows) {
            return rows;
        }
        assert!(
            start.elapsed() < timeout,
            "proxy-status did not reach the expected states within {timeout:?}; last:\n{}\n{}",
            run.stdout,
            run.stderr
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn row<'a>(rows: &'a [Value], name: &str) -> Option<&'a Value> {
    rows.iter().find(|r| r["name"] == name)
}

fn state(rows: &[Value], name: &str, t: &str) -> String {
    row(rows, name)
        .and_then(|r| r["types"][t]["state"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

fn all_synced(rows: &[Value], name: &str) -> bool {
    ["cds", "lds", "eds", "rds"]
        .iter()
        .all(|t| state(rows, name, t) == "SYNCED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_status_shows_synced_stale_and_nacking_proxies() {
    let Some(envoy) = find_envoy().unwrap() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("proxy-status-e2e");
    let _ = std::fs::remove_dir_all(&dir);
    let workloads = config::workloads(PREFIX).unwrap();
    config::write(&dir.join("config"), &workloads).unwrap();
    let w = |name: &str| workloads.iter().find(|w| w.name == name).unwrap().clone();
    let meshd_ip = format!("{}.{}.{}.1", PREFIX[0], PREFIX[1], PREFIX[2]);
    let xds: SocketAddr = format!("{meshd_ip}:15010").parse().unwrap();
    let debug: SocketAddr = format!("{meshd_ip}:15014").parse().unwrap();
    let controlplane = format!("http://{debug}");
    for a in [xds, debug] {
        ensure_free(a).unwrap();
    }

    let mut procs = Processes::default();
    let mut cmd = Command::new(workspace_binary("meshd").unwrap());
    cmd.arg("--config-dir").arg(dir.join("config")).args([
        "--xds-address",
        &xds.to_string(),
        "--debug-address",
        &debug.to_string(),
    ]);
    procs.push(ChildGuard::spawn("meshd", cmd, &dir.join("meshd.log")).unwrap());
    mesh_e2e::process::wait_for_port(debug, Duration::from_secs(20))
        .await
        .unwrap();

    // Two real sidecars.
    for name in ["details-v1", "ratings-v1"] {
        let wl = w(name);
        let mut cmd = Command::new(workspace_binary("mesh-proxy").unwrap());
        cmd.args([
            "run",
            "--engine",
            "envoy",
            "--xds-address",
            &xds.to_string(),
        ])
        .args(["--workload", &format!("{}/{}", wl.namespace, wl.name)])
        .args([
            "--ip",
            &wl.ip.to_string(),
            "--service-account",
            &wl.service_account,
        ])
        .args([
            "--label",
            &format!("app={}", wl.app),
            "--label",
            &format!("version={}", wl.version),
        ])
        .arg("--envoy-bin")
        .arg(&envoy);
        procs.push(ChildGuard::spawn(name, cmd, &dir.join(format!("{name}.log"))).unwrap());
    }
    // Two fake ones.
    let stale = fake_proxy(xds, &w("reviews-v1"), Behaviour::StopsAcking).await;
    let nacking = fake_proxy(xds, &w("reviews-v2"), Behaviour::Nacks(NACK_DETAIL)).await;
    wait_for(&controlplane, Duration::from_secs(60), |rows| {
        all_synced(rows, "details-v1.bookinfo")
            && all_synced(rows, "ratings-v1.bookinfo")
            && state(rows, "reviews-v1.bookinfo", "cds") == "SYNCED"
            && state(rows, "reviews-v2.bookinfo", "cds") == "ERROR"
    })
    .await;

    // A config change: meshd pushes new clusters to everyone; the Envoys take them, the
    // stuck proxy does not answer, the NACKing one rejects them too.
    std::fs::write(
        dir.join("config/extra.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra, namespace: bookinfo}\n\
         spec: {selector: {app: extra}, ports: [{name: http, port: 9090}]}\n",
    )
    .unwrap();
    let rows = wait_for(&controlplane, Duration::from_secs(60), |rows| {
        let v2 =
            |name: &str| row(rows, name).is_some_and(|r| r["types"]["cds"]["versionSent"] != "1");
        v2("details-v1.bookinfo")
            && all_synced(rows, "details-v1.bookinfo")
            && all_synced(rows, "ratings-v1.bookinfo")
            && v2("reviews-v1.bookinfo")
            && state(rows, "reviews-v1.bookinfo", "cds") == "STALE"
            && v2("reviews-v2.bookinfo")
            && state(rows, "reviews-v2.bookinfo", "cds") == "ERROR"
    })
    .await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let nacked = &row(&rows, "reviews-v2.bookinfo").unwrap()["types"]["cds"];
    assert_eq!(nacked["lastNack"]["detail"], NACK_DETAIL);
    assert_eq!(nacked["lastNack"]["nonce"], nacked["nonceSent"]);
    assert_eq!(state(&rows, "reviews-v1.bookinfo", "lds"), "NOT_SENT");

    // The table.
    let run = meshctl(&["proxy-status", "--controlplane", &controlplane]);
    assert_eq!(
        run.code, 79,
        "STALE and ERROR proxies fail the check\n{}{}",
        run.stdout, run.stderr
    );
    eprintln!("{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].split_whitespace().collect::<Vec<_>>()
            == [
                "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "CONTROL", "PLANE", "VERSION"
            ],
        "{}",
        run.stdout
    );
    let line = |name: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{}", run.stdout))
    };
    for name in ["details-v1.bookinfo", "ratings-v1.bookinfo"] {
        let l = line(name);
        assert_eq!(l.matches("SYNCED (").count(), 4, "{l}");
        assert!(l.contains("Kubernetes") && l.contains("meshd-"), "{l}");
        assert!(l.trim_end().ends_with("envoy 1.40.0"), "{l}");
    }
    let l = line("reviews-v1.bookinfo");
    assert!(
        l.contains("STALE (") && l.matches("NOT SENT").count() == 3,
        "{l}"
    );
    assert!(l.trim_end().ends_with("fake-proxy 0.0.1"), "{l}");
    let l = line("reviews-v2.bookinfo");
    assert!(
        l.contains("ERROR (") && l.matches("NOT SENT").count() == 3,
        "{l}"
    );
    let stale_nonce = row(&rows, "reviews-v1.bookinfo").unwrap()["types"]["cds"]["nonceSent"]
        .as_str()
        .unwrap()
        .to_owned();
    let stale_cds = &row(&rows, "reviews-v1.bookinfo").unwrap()["types"]["cds"];
    let (sent_version, acked_nonce) = (
        stale_cds["versionSent"].as_str().unwrap(),
        stale_cds["nonceAcked"].as_str().unwrap(),
    );
    assert_eq!(stale_cds["versionAcked"], "1", "{stale_cds:#}");
    assert!(
        run.stdout.contains(&format!(
            "reviews-v1.bookinfo CDS STALE: sent version {sent_version} nonce {stale_nonce}, acked version 1 nonce {acked_nonce}"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "reviews-v2.bookinfo CDS ERROR: sent version {sent_version} nonce"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("last NACK (nonce "), "{}", run.stdout);
    assert!(run.stdout.contains(NACK_DETAIL), "{}", run.stdout);
    assert!(
        !run.stdout.contains("details-v1.bookinfo CDS"),
        "a SYNCED proxy is not explained"
    );

    // One real sidecar against meshd: every section matches.
    let run = meshctl(&["ps", "details-v1.bookinfo", "--controlplane", &controlplane]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for s in ["Clusters Match", "Listeners Match", "Routes Match"] {
        assert!(run.stdout.contains(s), "{s} missing:\n{}", run.stdout);
    }
    let run = meshctl(&[
        "ps",
        "details-v1.bookinfo",
        "-o",
        "json",
        "--controlplane",
        &controlplane,
    ]);
    let d: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        d["compared"], "full",
        "meshd serves Envoy-shaped config dumps"
    );
    assert_eq!(d["sections"].as_array().unwrap().len(), 3);
    assert!(
        d["sections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["match"] == true),
        "{d:#}"
    );
    // Against another sidecar's admin API the listeners differ (each binds its own IP).
    let details_ip = w("details-v1").ip;
    let ratings_ip = w("ratings-v1").ip;
    let run = meshctl(&[
        "ps",
        "details-v1.bookinfo",
        "--admin",
        &format!("{ratings_ip}:15000"),
        "--controlplane",
        &controlplane,
    ]);
    assert_eq!(run.code, 79, "{}{}", run.stdout, run.stderr);
    let expect = [
        format!(
            "--- meshd Listeners {details_ip}_9080\n+++ proxy Listeners {details_ip}_9080 (absent from the proxy)\n"
        ),
        format!(
            "--- meshd Listeners {ratings_ip}_9080 (absent from meshd)\n+++ proxy Listeners {ratings_ip}_9080\n"
        ),
    ];
    for e in expect {
        assert!(run.stdout.contains(&e), "{e:?} missing:\n{}", run.stdout);
    }
    // The inbound cluster points at each workload's own app; the outbound ones are the same.
    assert!(
        run.stdout
            .contains("--- meshd Clusters inbound|9080||\n+++ proxy Clusters inbound|9080||\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "-                    \"address\": \"{details_ip}\","
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches("--- meshd Clusters").count(),
        1,
        "{}",
        run.stdout
    );

    // A proxy meshd does not know.
    let run = meshctl(&["ps", "nobody.bookinfo", "--controlplane", &controlplane]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert!(
        run.stderr.contains("no proxy \"nobody.bookinfo\""),
        "{}",
        run.stderr
    );

    // --wait polls, and still fails while a proxy stays STALE.
    let start = Instant::now();
    let run = meshctl(&["ps", "--wait", "1s", "--controlplane", &controlplane]);
    assert_eq!(run.code, 79, "{}{}", run.stdout, run.stderr);
    assert!(start.elapsed() >= Duration::from_secs(1));

    // Without the fake proxies everyone is SYNCED, and the check passes.
    drop(stale);
    drop(nacking);
    let run = tokio::task::spawn_blocking({
        let cp = controlplane.clone();
        move || meshctl(&["proxy-status", "--wait", "30s", "--controlplane", &cp])
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.stdout);

    // meshd gone: unreachable, exit 69.
    tokio::task::spawn_blocking(move || drop(procs))
        .await
        .unwrap();
    let run = meshctl(&["proxy-status", "--controlplane", &controlplane]);
    assert_eq!(run.code, 69, "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach meshd"), "{}", run.stderr);
}
