//! The scenario runner's orchestration with stand-ins for meshd and mesh-proxy: it starts
//! every process, bounds every wait, reports what went wrong with the processes' logs, and
//! leaves nothing running (every address it used is free again afterwards).

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_e2e::process::ensure_free;
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{LoadedScenario, parse};

fn work_dir(test: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("runner-{test}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("config")).unwrap();
    d
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A scenario on addresses no real scenario uses, with its config in `dir/config`.
fn scenario(dir: &Path, third: u8) -> LoadedScenario {
    let ip = |last: u8| format!("127.10.{third}.{last}");
    std::fs::write(
        dir.join("config/mesh.yaml"),
        format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
             metadata: {{name: client, namespace: shop, labels: {{app: client}}}}\n\
             spec: {{address: {}}}\n---\n\
             apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
             metadata: {{name: reviews-v1, namespace: shop, labels: {{app: reviews}}}}\n\
             spec: {{address: {}}}\n---\n\
             apiVersion: v1\nkind: Service\n\
             metadata: {{name: reviews, namespace: shop}}\n\
             spec: {{selector: {{app: reviews}}, ports: [{{name: http, port: 9080}}]}}\n",
            ip(10),
            ip(21)
        ),
    )
    .unwrap();
    let yaml = format!(
        r#"
description: orchestration only
meshd_ip: {meshd}
workloads:
  - {{name: client, namespace: shop, ip: {client}}}
  - {{name: reviews-v1, namespace: shop, ip: {reviews}, app_port: 19080}}
requests:
  - name: r
    from: client
    url: http://reviews.shop:9080/
    expect: {{status: 200}}
"#,
        meshd = ip(1),
        client = ip(10),
        reviews = ip(21)
    );
    LoadedScenario {
        name: format!("orchestration-{third}"),
        dir: dir.to_owned(),
        config_dir: dir.join("config"),
        scenario: parse(&yaml).unwrap(),
    }
}

fn options(dir: &Path, meshd: PathBuf, mesh_proxy: PathBuf) -> RunOptions {
    let mut o = RunOptions::new(
        Tools {
            meshd,
            mesh_proxy,
            mesh_echo: PathBuf::from(env!("CARGO_BIN_EXE_mesh-echo")),
            envoy: PathBuf::from("/nonexistent/envoy"),
        },
        ProxyEngine::Agent,
        dir.join("logs"),
    );
    o.start_timeout = Duration::from_secs(5);
    o.sync_timeout = Duration::from_millis(1500);
    o
}

fn all_free(s: &LoadedScenario) {
    let mut addrs = vec![s.xds_addr(), s.debug_addr()];
    for w in &s.scenario.workloads {
        addrs.extend(w.app_addr());
        addrs.extend(w.ready_addrs());
    }
    for a in addrs {
        ensure_free(a).unwrap();
    }
}

#[tokio::test]
async fn proxies_that_never_connect_fail_the_scenario_within_the_bound_and_are_cleaned_up() {
    let dir = work_dir("never-connect");
    let s = scenario(&dir, 251);
    // meshd stand-in: an echo app on the debug address (it answers /debug/syncz, with no
    // proxy in it). mesh-proxy stand-in: logs its flags and sleeps.
    let echo = env!("CARGO_BIN_EXE_mesh-echo");
    let meshd = script(
        &dir,
        "meshd",
        &format!(r#"echo "meshd $*"; exec {echo} --listen "$6" --name meshd"#),
    );
    let proxy = script(&dir, "mesh-proxy", r#"echo "proxy $*"; exec sleep 30"#);
    let opts = options(&dir, meshd, proxy);
    let start = Instant::now();
    let report = runner::run(&s, &opts).await;
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert!(!report.passed());
    let text = report.to_string();
    assert!(text.contains("proxies not ACKed within"), "{text}");
    assert!(
        text.contains("sidecar~127.10.251.10~client.shop~shop.svc.cluster.local"),
        "{text}"
    );
    // The logs of every process are in the report, and the flags they were given.
    assert!(
        text.contains(
            "meshd --config-dir {}/config --xds-address 127.10.251.1:15010 --debug-address 127.10.251.1:15014"
                .replace("{}", &dir.display().to_string())
                .as_str()
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "proxy run --engine envoy --xds-address 127.10.251.1:15010 --workload shop/client \
             --ip 127.10.251.10 --proxy-type sidecar --label app=client"
        ),
        "{text}"
    );
    assert!(
        text.contains("mesh-echo reviews-v1 listening on 127.10.251.21:19080"),
        "{text}"
    );
    all_free(&s);
}

#[tokio::test]
async fn a_meshd_that_exits_is_reported_with_its_log() {
    let dir = work_dir("meshd-exits");
    let s = scenario(&dir, 252);
    let meshd = script(&dir, "meshd", r#"echo "bad flag" >&2; exit 2"#);
    let proxy = script(&dir, "mesh-proxy", "exec sleep 30");
    let report = runner::run(&s, &options(&dir, meshd, proxy)).await;
    let text = report.to_string();
    assert!(text.contains("meshd did not start"), "{text}");
    assert!(text.contains("meshd exited (exit status: 2)"), "{text}");
    assert!(text.contains("bad flag"), "{text}");
    all_free(&s);
}

#[tokio::test]
async fn a_busy_address_stops_the_run_before_anything_starts() {
    let dir = work_dir("busy");
    let s = scenario(&dir, 253);
    let _squatter = std::net::TcpListener::bind(s.debug_addr()).unwrap();
    let meshd = script(&dir, "meshd", "exec sleep 30");
    let proxy = script(&dir, "mesh-proxy", "exec sleep 30");
    let report = runner::run(&s, &options(&dir, meshd, proxy)).await;
    let text = report.to_string();
    assert!(text.contains("127.10.253.1:15014 is not free"), "{text}");
    assert!(report.logs.is_empty(), "nothing was started: {text}");
}

#[tokio::test]
async fn a_scenario_that_disagrees_with_its_config_is_refused() {
    let dir = work_dir("mismatch");
    let mut s = scenario(&dir, 254);
    s.scenario.workloads[0].ip = "127.10.254.99".parse().unwrap();
    let meshd = script(&dir, "meshd", "exec sleep 30");
    let proxy = script(&dir, "mesh-proxy", "exec sleep 30");
    let report = runner::run(&s, &options(&dir, meshd, proxy)).await;
    let text = report.to_string();
    assert!(
        text.contains("scenario.yaml says 127.10.254.99, its WorkloadEntry says 127.10.254.10"),
        "{text}"
    );
}
