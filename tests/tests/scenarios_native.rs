//! The scenarios of `testdata/scenarios/`, each run through meshd and mesh-proxy's own data
//! plane (`mesh-proxy run --engine native`, no Envoy): every request gets the outcome its
//! scenario states, and the native proxy NACKs nothing.
//!
//! Scenarios that do not pass through the native engine yet are listed in [`NOT_YET`] with
//! the reason; the test fails when a listed scenario passes (take it off the list) or an
//! unlisted one fails. `MESH_E2E_SCENARIO=a,b` runs only those scenarios;
//! `MESH_E2E_PARALLEL=N` runs N at once (default 3). Process logs are kept under the test
//! target's tmp directory, `e2e-scenarios-native/NAME/`. The scenarios run from copies whose
//! addresses move from `127.10.N.x` to `127.13.N.x`, so the Envoy suite can run alongside.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{copy_moving_addresses, load_all, scenarios_root};

/// Scenarios the native engine does not pass yet, and why. Keep it honest: the test fails
/// when one of these starts passing.
const NOT_YET: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_pass_through_meshd_and_the_native_proxy() {
    // The native engine needs no Envoy; the path is never run.
    let tools = Tools::discover(PathBuf::from("envoy")).unwrap();
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-scenarios-native");
    let opts = Arc::new(RunOptions::new(tools, ProxyEngine::Native, log_root));

    let only: Option<Vec<String>> = std::env::var("MESH_E2E_SCENARIO")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    // The Envoy suite (tests/scenarios.rs) may run at the same time on the scenarios' own
    // addresses (127.10.N.x): this one runs copies moved to 127.13.N.x.
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scenarios-native");
    let _ = std::fs::remove_dir_all(&root);
    copy_moving_addresses(&scenarios_root(), &root, 13).unwrap();
    let mut all = load_all(&root).unwrap();
    for (name, _) in NOT_YET {
        assert!(
            all.iter().any(|s| s.name == *name),
            "NOT_YET names no scenario {name:?}"
        );
    }
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
    let mut unexpected_failures = Vec::new();
    let mut unexpected_passes = Vec::new();
    for (_, r) in &reports {
        eprintln!("{r}");
        let listed = NOT_YET.iter().find(|(n, _)| *n == r.scenario);
        match (r.passed(), listed) {
            (false, None) => unexpected_failures.push(r.scenario.clone()),
            (true, Some(_)) => unexpected_passes.push(r.scenario.clone()),
            (false, Some((_, why))) => eprintln!("  (known: {why})"),
            (true, None) => {}
        }
    }
    assert!(
        unexpected_failures.is_empty() && unexpected_passes.is_empty(),
        "{} of {} scenarios failed through the native proxy: {:?}; listed in NOT_YET but passing \
         (take them off the list): {:?}",
        unexpected_failures.len(),
        reports.len(),
        unexpected_failures,
        unexpected_passes
    );
}
