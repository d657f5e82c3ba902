//! The scenario tools against real Envoy with a static configuration (no meshd): requests sent
//! HTTP-proxy style to a listener like a sidecar's outbound one, and the outcomes the
//! scenarios expect from Envoy's own behaviour (redirect Location, timeout 504, retry counts,
//! mirrored copies, direct responses, the 502 of a catch-all block) observed as the runner
//! observes them. Skipped loudly without Envoy; fails under `CI`.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mesh_e2e::echo::EchoServer;
use mesh_e2e::process::{ChildGuard, find_envoy, wait_for_port};
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{LoadedScenario, parse};
use serde_json::{Value, json};

const CLIENT_IP: &str = "127.10.248.10";

fn cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": addr.ip().to_string(), "port_value": addr.port()}}
        }}]}]}
    })
}

fn bootstrap(v1: SocketAddr, v2: SocketAddr) -> Value {
    let route = |prefix: &str, action: Value| {
        let mut r = json!({"match": {"prefix": prefix}});
        r.as_object_mut()
            .unwrap()
            .extend(action.as_object().unwrap().clone());
        r
    };
    let routes = vec![
        route(
            "/old",
            json!({"redirect": {"path_redirect": "/new", "response_code": "FOUND"}}),
        ),
        route(
            "/moved",
            json!({"redirect": {"host_redirect": "details.shop:9080", "path_redirect": "/details"}}),
        ),
        route(
            "/maintenance",
            json!({"direct_response": {"status": 503, "body": {"inline_string": "down for maintenance"}}}),
        ),
        route(
            "/slow",
            json!({"route": {"cluster": "v1", "timeout": "0.5s"}}),
        ),
        route(
            "/retry",
            json!({"route": {"cluster": "v1", "retry_policy": {
                "retry_on": "5xx", "num_retries": 3, "per_try_timeout": "2s"}}}),
        ),
        route(
            "/mirror",
            json!({"route": {"cluster": "v1", "request_mirror_policies": [{"cluster": "v2"}]}}),
        ),
        route("/", json!({"route": {"cluster": "v1"}})),
    ];
    json!({
        "static_resources": {
            "listeners": [{
                "name": "virtualOutbound",
                "address": {"socket_address": {"address": CLIENT_IP, "port_value": 15001}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "outbound",
                        "http_protocol_options": {"allow_absolute_url": true},
                        "route_config": {
                            "name": "9080",
                            "virtual_hosts": [
                                {"name": "reviews.shop:9080",
                                 "domains": ["reviews.shop:9080", "reviews.shop"],
                                 "routes": routes},
                                {"name": "block_all", "domains": ["*"],
                                 "routes": [{"match": {"prefix": "/"},
                                             "direct_response": {"status": 502}}]}
                            ]
                        },
                        "http_filters": [{"name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
                    }
                }]}]
            }],
            "clusters": [cluster("v1", v1), cluster("v2", v2)]
        }
    })
}

const SCENARIO: &str = r#"
description: Envoy's own behaviour, as the scenarios expect it
meshd_ip: 127.10.248.1
workloads:
  - {name: client, namespace: shop, ip: 127.10.248.10}
  - {name: reviews-v1, namespace: shop, ip: 127.10.248.21, app_port: 19080}
  - {name: reviews-v2, namespace: shop, ip: 127.10.248.22, app_port: 19080}
requests:
  - name: routed through the proxy
    from: client
    url: http://reviews.shop:9080/reviews/1
    expect: {status: 200, name: reviews-v1, path: /reviews/1, host: reviews.shop:9080}
  - name: path redirect
    from: client
    url: http://reviews.shop:9080/old
    expect:
      status: 302
      served_by_app: false
      response_headers: {location: {prefix: "http://reviews.shop", suffix: /new}}
    expect_counts: {reviews-v1: 0}
  - name: authority redirect
    from: client
    url: http://reviews.shop:9080/moved/here
    expect:
      status: 301
      served_by_app: false
      response_headers: {location: {prefix: "http://details.shop", suffix: /details}}
  - name: direct response
    from: client
    url: http://reviews.shop:9080/maintenance/now
    expect: {status: 503, served_by_app: false, body: down for maintenance}
  - name: timeout
    from: client
    url: http://reviews.shop:9080/slow?delay_ms=2000
    expect: {status: 504, served_by_app: false, min_duration_ms: 450, max_duration_ms: 1800}
  - name: retried until success
    from: client
    url: http://reviews.shop:9080/retry/1
    headers: {x-echo-key: a, x-echo-fail-first: "2"}
    expect: {status: 200, name: reviews-v1, attempt: 3}
    expect_counts: {reviews-v1: 3}
  - name: retries exhausted
    from: client
    url: http://reviews.shop:9080/retry/2
    headers: {x-echo-key: b, x-echo-fail-first: "100"}
    expect: {status: 503, name: reviews-v1, attempt: 4}
    expect_counts: {reviews-v1: 4}
  - name: mirrored
    from: client
    url: http://reviews.shop:9080/mirror
    repeat: 10
    expect: {status: 200, name: reviews-v1}
    expect_counts: {reviews-v1: 10, reviews-v2: 10}
  - name: unknown host blocked
    from: client
    url: http://127.10.248.30:19080/
    expect: {status: 502, served_by_app: false}
"#;

#[tokio::test]
async fn scenario_expectations_hold_against_envoy_itself() {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED scenario_expectations_hold_against_envoy_itself: Envoy not found \
             (set MESH_ENVOY_BIN or put `envoy` on PATH) ***\n"
        );
        return;
    };
    let s = LoadedScenario {
        name: "envoy-semantics".into(),
        dir: PathBuf::new(),
        config_dir: PathBuf::new(),
        scenario: parse(SCENARIO).unwrap(),
    };
    assert_eq!(s.problems(), Vec::<String>::new());
    let v1 = EchoServer::start(
        s.workload("reviews-v1").unwrap().app_addr().unwrap(),
        "reviews-v1",
    )
    .await
    .unwrap();
    let v2 = EchoServer::start(
        s.workload("reviews-v2").unwrap().app_addr().unwrap(),
        "reviews-v2",
    )
    .await
    .unwrap();

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("envoy-semantics");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envoy.json");
    std::fs::write(
        &config,
        serde_json::to_vec_pretty(&bootstrap(v1.addr(), v2.addr())).unwrap(),
    )
    .unwrap();
    let mut cmd = Command::new(&envoy);
    cmd.arg("-c").arg(&config).args([
        "--disable-hot-restart",
        "--concurrency",
        "1",
        "--log-level",
        "warning",
    ]);
    let mut proxy = ChildGuard::spawn("envoy", cmd, &dir.join("envoy.log")).unwrap();
    let outbound = s.workload("client").unwrap().outbound_addr();
    if let Err(e) = wait_for_port(outbound, Duration::from_secs(20)).await {
        panic!("{e:#}\n{}", proxy.log_tail(40));
    }

    let opts = RunOptions::new(
        Tools {
            meshd: "meshd".into(),
            mesh_proxy: "mesh-proxy".into(),
            mesh_echo: "mesh-echo".into(),
            envoy,
        },
        ProxyEngine::Agent,
        dir.clone(),
    );
    let mut failures = Vec::new();
    for step in &s.scenario.requests {
        for f in runner::run_step(&s, step, &opts).await {
            failures.push(format!("{}: {f}", step.name));
        }
    }
    proxy.ensure_running().unwrap();
    assert!(
        failures.is_empty(),
        "\n{}\n--- envoy log ---\n{}",
        failures.join("\n"),
        proxy.log_tail(40)
    );
}
