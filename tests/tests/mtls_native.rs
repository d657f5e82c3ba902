//! Mutual TLS through native mesh-proxy sidecars (`--engine native --ca-dir`), mirroring
//! the Envoy tests of `mtls.rs`.
//!
//! `native_certificates_rotate_under_load_without_failed_requests`: `mtls-peer-authentication`
//! (moved to 127.10.231.0/24) with 10-second workload certificates; for 20 s the client's
//! native sidecar sends requests to STRICT catalog's native sidecar. Every request must
//! succeed; catalog must have seen more than one client certificate (the `Hash` in
//! x-forwarded-client-cert: idle connections made with a rotated-out certificate are not
//! reused, so new handshakes use the new one); both sidecars' `default` secrets change
//! serial (read with `meshctl proxy-config secret` on the native admin API) and `ROOTCA`
//! stays the same.
//!
//! `native_root_rotates_under_load_without_failed_requests` (127.10.236.0/24): as the
//! Envoy test, through native sidecars: `meshd ca rotate-root --overlap 8s` under load, no
//! failed request, both roots shown then only the new one, certificates from the new root,
//! one of the old root refused after the overlap.
//!
//! `native_expired_and_foreign_certificates_are_refused_and_logged` (127.10.237.0/24): a
//! certificate signed by the mesh root but expired, and one of trust domain evil.org, are
//! refused by catalog's native sidecar, whose log names the expiry and the foreign trust
//! domain with the client's address (`TLS handshake refused`).
//!
//! `native_sidecar_of_another_mesh_is_refused_and_says_why`: the same scenario
//! (127.10.232.0/24) plus a second meshd with its own CA and a native sidecar of that mesh
//! with the client's identity: its calls to catalog get 503, and its log says why
//! (`peer certificate refused` ... `BadSignature` or `UnknownIssuer`: catalog's certificate is signed by a
//! root it does not trust).
//!
//! The native engine needs no Envoy: these tests always run.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/mtls.rs"]
mod support;

#[path = "support/root_rotation.rs"]
mod root_rotation;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::process::{ChildGuard, wait_for_port};
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::LoadedScenario;

fn options(test: &str) -> RunOptions {
    // The native engine runs no Envoy; the path is never used.
    let tools = Tools::discover(PathBuf::from("envoy")).unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{test}"));
    RunOptions::new(tools, ProxyEngine::Native, log_root)
}

/// A copy of scenario `name` with its `127.10.N.` addresses moved to `127.10.third.`.
fn relocated(name: &str, third: u8) -> LoadedScenario {
    let mut s = support::relocated_to(name, third, &format!("native-{name}-{third}"));
    s.name = format!("native-{name}-{third}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_certificates_rotate_under_load_without_failed_requests() {
    let opts = options("native_certificates_rotate");
    let mut s = relocated("mtls-peer-authentication", 231);
    s.scenario.cert_ttl_secs = Some(10);
    let report = runner::run_then(&s, &opts, support::rotation_under_load).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_root_rotates_under_load_without_failed_requests() {
    let opts = options("native_root_rotates");
    let s = relocated("mtls-peer-authentication", 236);
    let ca_dir = root_rotation::ca_dir(&opts.log_root, &s);
    let meshd = opts.tools.meshd.clone();
    let report = runner::run_then(&s, &opts, |s| {
        root_rotation::root_rotation_under_load(s, meshd, ca_dir)
    })
    .await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_expired_and_foreign_certificates_are_refused_and_logged() {
    let opts = options("native_bad_certificates");
    let s = relocated("mtls-peer-authentication", 237);
    let ca_dir = root_rotation::ca_dir(&opts.log_root, &s);
    let log = opts.log_root.join(&s.name).join("proxy-catalog-v1.log");
    let report = runner::run_then(&s, &opts, |s| {
        root_rotation::bad_certificates_refused(s, ca_dir, log, &["outside trust domain"])
    })
    .await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sidecar_of_another_mesh_is_refused_and_says_why() {
    let opts = options("native_another_mesh_is_refused");
    let s = relocated("mtls-peer-authentication", 232);
    let tools = Tools::discover(PathBuf::from("envoy")).unwrap();
    let log_dir = opts.log_root.join("foreign");
    let report = runner::run_then(&s, &opts, |s| async move {
        let (_meshd, identity) = support::foreign_mesh(&s, &tools.meshd, &log_dir).await?;
        let proxy_log = log_dir.join("proxy.log");
        let _proxy = ChildGuard::spawn(
            "foreign proxy",
            runner::native_command(&tools, &identity),
            &proxy_log,
        )?;
        let outbound: std::net::SocketAddr = "127.10.232.12:15001".parse()?;
        wait_for_port(outbound, Duration::from_secs(30)).await?;
        let req = HttpRequest::get("http://catalog.shop:9080/items");
        // Until CDS and EDS are in, the answer may be a 404 or 503 without a handshake:
        // wait (bounded) for the log to name the refusal.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (status, body, reason) = loop {
            let r = client::send(&req, Via::Proxy(outbound), Duration::from_secs(5)).await?;
            let log = std::fs::read_to_string(&proxy_log).unwrap_or_default();
            let reason = log
                .lines()
                .find(|l| l.contains("peer certificate refused"))
                .map(str::to_owned);
            if reason.is_some() || Instant::now() > deadline {
                break (
                    r.status,
                    String::from_utf8_lossy(&r.body).into_owned(),
                    reason,
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        eprintln!("another mesh's native sidecar got {status} {body:?}; log: {reason:?}");
        let mut f = Vec::new();
        if status != 503 {
            f.push(format!("expected 503, got {status} {body:?}"));
        }
        match reason {
            Some(line) if line.contains("UnknownIssuer") || line.contains("BadSignature") => {}
            other => f.push(format!(
                "expected a log line refusing catalog's certificate (UnknownIssuer or BadSignature), got {other:?}"
            )),
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
