//! Mixed meshes: the authorization, trace and mTLS scenarios (`authz-*`, `trace-headers`,
//! `mtls-peer-authentication`, `gateway-mtls` and `tcp-mtls`: mTLS between a native proxy
//! and Envoy both ways, through a gateway and on a TCP port too) with
//! native mesh-proxy callers in front of Envoy servers, and Envoy callers in front of native
//! servers. A caller is a workload some request is sent `from` (and, in mTLS scenarios, a
//! gateway); every other workload with a proxy is a server. Each request gets the outcome its scenario states, whichever engine
//! enforces the policy.
//!
//! Envoy comes from `MESH_ENVOY_BIN` or `PATH`; without it the test is skipped loudly, and
//! under `CI` it fails. The runs use copies of the scenarios moved to `127.14.N.x` (native
//! callers) and `127.15.N.x` (native servers), apart from the other suites' addresses.
//! Process logs: the test target's tmp directory, `e2e-scenarios-mixed/`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use mesh_e2e::process::find_envoy;
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{
    LoadedScenario, ProxyMode, copy_moving_addresses, load_all, scenarios_root,
};

fn picked(name: &str) -> bool {
    name.starts_with("authz-")
        || name == "trace-headers"
        || name == "mtls-peer-authentication"
        || name == "gateway-mtls"
        || name == "tcp-mtls"
}

/// `MESH_E2E_SCENARIO=a,b` runs only those scenarios.
fn only() -> Option<Vec<String>> {
    std::env::var("MESH_E2E_SCENARIO")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
}

/// The workloads requests are sent `from` and, in mTLS scenarios, the gateways (they open
/// mutual TLS to the backends, so the gateway and its backend run different engines).
fn callers(s: &LoadedScenario) -> BTreeSet<String> {
    let gateways = s
        .scenario
        .workloads
        .iter()
        .filter(|w| s.scenario.mtls && w.proxy == ProxyMode::Gateway)
        .map(|w| w.name.clone());
    s.scenario
        .requests
        .iter()
        .filter_map(|r| r.from.clone())
        .chain(gateways)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_holds_across_native_and_envoy_proxies() {
    let Some(envoy) = find_envoy().unwrap() else {
        eprintln!(
            "\n\n*** SKIPPED authorization_holds_across_native_and_envoy_proxies: Envoy not \
             found (set MESH_ENVOY_BIN or put `envoy` on PATH) ***\n"
        );
        return;
    };
    let tools = Tools::discover(envoy).unwrap();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut tasks = tokio::task::JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(3));
    let mut expected = 0;
    for (octet, native_callers) in [(14u8, true), (15u8, false)] {
        let root = tmp.join(format!("scenarios-mixed-{octet}"));
        let _ = std::fs::remove_dir_all(&root);
        copy_moving_addresses(&scenarios_root(), &root, octet).unwrap();
        let mut all = load_all(&root).unwrap();
        all.retain(|s| picked(&s.name));
        assert!(
            all.len() >= 8,
            "the authz-* scenarios, trace-headers and mTLS"
        );
        if let Some(only) = only() {
            all.retain(|s| only.contains(&s.name));
        }
        expected += all.len();
        for s in all {
            let callers = callers(&s);
            assert!(!callers.is_empty(), "{}: no caller", s.name);
            // The base engine is the servers'; callers get the other one.
            let (base, other) = if native_callers {
                (ProxyEngine::Agent, ProxyEngine::Native)
            } else {
                (ProxyEngine::Native, ProxyEngine::Agent)
            };
            let mut opts = RunOptions::new(
                tools.clone(),
                base,
                tmp.join("e2e-scenarios-mixed").join(octet.to_string()),
            );
            opts.engine_by_workload = callers.iter().map(|c| (c.clone(), other)).collect();
            let label = if native_callers {
                "native callers, Envoy servers"
            } else {
                "Envoy callers, native servers"
            };
            let permits = permits.clone();
            tasks.spawn(async move {
                let _p = permits.acquire_owned().await.unwrap();
                (label, runner::run(&s, &opts).await)
            });
        }
    }
    let mut failed = Vec::new();
    let mut ran = 0;
    while let Some(r) = tasks.join_next().await {
        let (label, report) = r.unwrap();
        ran += 1;
        eprintln!("[{label}] {report}");
        if !report.passed() {
            failed.push(format!("{} ({label})", report.scenario));
        }
    }
    assert_eq!(ran, expected);
    assert!(failed.is_empty(), "failed in a mixed mesh: {failed:?}");
}
