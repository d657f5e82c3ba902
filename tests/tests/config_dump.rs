//! meshd's `/debug/config_dump` against real Envoy's `/config_dump`: for every proxy of
//! several scenarios, once Envoy has ACKed everything, the resources meshd says it sent
//! (printed by `mesh_core::xds::json`) equal, as JSON values, the ones Envoy 1.40 prints,
//! after `json::comparable` takes out what Envoy adds (`json::ENVOY_ADDITIONS`). Envoy's whole
//! dump, bootstrap included, also reads into envoy-types' `ConfigDump` and prints back
//! unchanged.
//!
//! Envoy comes from `MESH_ENVOY_BIN` or `PATH` (skipped loudly without it, failed under `CI`).
//! `MESH_E2E_SCENARIO=a,b` picks the scenarios; `MESH_SAVE_DUMPS=DIR` keeps each Envoy dump as
//! `DIR/SCENARIO-WORKLOAD.json` (how the checked-in dumps under `testdata/envoy-dumps/` were
//! captured). Process logs are kept under the test target's tmp directory,
//! `e2e-config-dump/NAME/`.
//!
//! Each scenario runs from a copy whose addresses move from `127.10.N.x` to `127.11.N.x`, so
//! this test and the `scenarios` test can run at the same time (nextest runs test binaries in
//! parallel).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mesh_core::xds::json;
use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::process::{ChildGuard, Processes, ensure_free, find_envoy, workspace_binary};
use mesh_e2e::runner::{self, node_id};
use mesh_e2e::scenario::{
    ConfigIndex, LoadedScenario, ProxyMode, copy_moving_addresses, scenarios_root,
};
use mesh_e2e::syncz;
use serde_json::Value;

/// Sidecars and a gateway; header, weight, fault, mirror, retry, rewrite and CORS routes;
/// subsets, consistent hashing, ServiceEntries, Sidecar scoping, REGISTRY_ONLY.
const SCENARIOS: &[&str] = &[
    "header-routing",
    "gateway-ingress",
    "fault-abort",
    "mirroring",
    "consistent-hash",
    "service-entry-external",
    "sidecar-scoping",
    "registry-only",
    "header-manipulation",
    "retry-on-503",
    // RBAC (HTTP), jwt_authn with inline JWKS, and a jwksUri cluster.
    "authz-jwt",
    "authz-jwks-uri",
];

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshd_config_dump_equals_envoys() {
    let Some(envoy) = find_envoy().unwrap() else {
        return;
    };
    let meshd = workspace_binary("meshd").unwrap();
    let mesh_proxy = workspace_binary("mesh-proxy").unwrap();
    let names: Vec<String> = match std::env::var("MESH_E2E_SCENARIO") {
        Ok(v) if !v.is_empty() => v.split(',').map(|s| s.trim().to_owned()).collect(),
        _ => SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let save = std::env::var_os("MESH_SAVE_DUMPS").map(PathBuf::from);
    let log_root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-config-dump");
    let mut failures = Vec::new();
    let mut compared = 0;
    for name in &names {
        let log_dir = log_root.join(name);
        if log_dir.exists() {
            std::fs::remove_dir_all(&log_dir).unwrap();
        }
        let copy = log_dir.join(name);
        copy_moving_addresses(&scenarios_root().join(name), &copy, 11).unwrap();
        let s = LoadedScenario::load(&copy).unwrap();
        let mut procs = Processes::default();
        match check_scenario(
            &s,
            &envoy,
            &meshd,
            &mesh_proxy,
            &log_dir,
            save.as_deref(),
            &mut procs,
        )
        .await
        {
            Ok(n) => compared += n,
            Err(e) => failures.push(format!("{name}: {e:#}\n  (logs in {})", log_dir.display())),
        }
        let _ = tokio::task::spawn_blocking(move || drop(procs)).await;
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(compared >= names.len(), "only {compared} proxies compared");
    eprintln!(
        "config dumps of {compared} proxies in {} scenarios equal Envoy's",
        names.len()
    );
}

/// Runs meshd and an Envoy per proxy for one scenario, waits for the ACKs, and compares
/// every proxy's dumps. Returns how many proxies were compared.
async fn check_scenario(
    s: &LoadedScenario,
    envoy: &Path,
    meshd: &Path,
    mesh_proxy: &Path,
    log_dir: &Path,
    save: Option<&Path>,
    procs: &mut Processes,
) -> anyhow::Result<usize> {
    let index = ConfigIndex::load(&s.config_dir)?;
    let proxies: Vec<_> = s
        .scenario
        .workloads
        .iter()
        .filter(|w| w.proxy != ProxyMode::None)
        .collect();
    ensure_free(s.xds_addr())?;
    ensure_free(s.debug_addr())?;
    for w in &proxies {
        ensure_free(w.admin_addr().context("a proxy has an admin address")?)?;
    }

    procs.push(ChildGuard::spawn(
        "meshd",
        runner::meshd_command(meshd, s),
        &log_dir.join("meshd.log"),
    )?);
    let mut ids = Vec::new();
    for w in &proxies {
        let identity = runner::proxy_identity_args(s, w, index.workload_entry(w));
        let out = std::process::Command::new(mesh_proxy)
            .arg("bootstrap")
            .args(&identity)
            .output()?;
        if !out.status.success() {
            bail!(
                "mesh-proxy bootstrap: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let file = log_dir.join(format!("bootstrap-{}.json", w.name));
        std::fs::write(&file, &out.stdout)?;
        procs.push(ChildGuard::spawn(
            &format!("envoy {}", w.name),
            runner::envoy_command(envoy, &file),
            &log_dir.join(format!("envoy-{}.log", w.name)),
        )?);
        ids.push(node_id(w));
    }
    wait_synced(s.debug_addr(), &ids, procs).await?;

    for (w, id) in proxies.iter().zip(&ids) {
        let admin = w.admin_addr().context("admin address")?;
        let envoy_dump = get_json(admin, "/config_dump?include_eds").await?;
        let ours = get_json(
            s.debug_addr(),
            &format!(
                "/debug/config_dump?proxyID={}&include_eds",
                id.replace('~', "%7E")
            ),
        )
        .await?;
        if let Some(dir) = save {
            std::fs::create_dir_all(dir)?;
            std::fs::write(
                dir.join(format!("{}-{}.json", s.name, w.name)),
                serde_json::to_string_pretty(&envoy_dump)? + "\n",
            )?;
        }
        compare(&w.name, &envoy_dump, &ours)?;
        let reprinted = json::reprint_config_dump(&envoy_dump)
            .with_context(|| format!("{}: reading Envoy's dump as a ConfigDump", w.name))?;
        if reprinted != envoy_dump {
            bail!(
                "{}: Envoy's dump read as a ConfigDump prints differently:\n{}",
                w.name,
                diff(&envoy_dump, &reprinted)
            );
        }
    }
    Ok(proxies.len())
}

/// The comparable forms of the two dumps are equal, resource by resource, and the
/// last-processed versions of clusters and listeners agree.
fn compare(workload: &str, envoy: &Value, ours: &Value) -> anyhow::Result<()> {
    for kind in ["ClustersConfigDump", "ListenersConfigDump"] {
        let version = |d: &Value| {
            d["configs"]
                .as_array()
                .and_then(|c| {
                    c.iter()
                        .find(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(kind)))
                })
                .map(|c| c["version_info"].clone())
        };
        let (e, o) = (version(envoy), version(ours));
        if e != o
            || o.as_ref()
                .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
        {
            bail!("{workload}: {kind} version_info: Envoy {e:?}, meshd {o:?}");
        }
    }
    let (e, o) = (json::comparable(envoy), json::comparable(ours));
    let sections = |v: &Value| v["configs"].as_array().map_or(0, Vec::len);
    if sections(&o) != 4
        || o["configs"][0]["dynamic_active_clusters"]
            .as_array()
            .is_none()
    {
        bail!("{workload}: meshd's dump lacks sections or clusters: {o:#}");
    }
    if e != o {
        bail!(
            "{workload}: meshd's dump and Envoy's differ:\n{}",
            diff(&e, &o)
        );
    }
    Ok(())
}

/// The paths where two JSON values differ, with both sides (at most 20).
fn diff(a: &Value, b: &Value) -> String {
    fn walk(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (k, v) in x {
                    match y.get(k) {
                        Some(w) => walk(v, w, &format!("{path}/{k}"), out),
                        None => out.push(format!("{path}/{k}: only in Envoy's: {v}")),
                    }
                }
                for (k, w) in y {
                    if !x.contains_key(k) {
                        out.push(format!("{path}/{k}: only in the other: {w}"));
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (v, w)) in x.iter().zip(y).enumerate() {
                    walk(v, w, &format!("{path}/{i}"), out);
                }
            }
            _ if a != b => out.push(format!("{path}: Envoy's {a} / the other {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(a, b, "", &mut out);
    out.truncate(20);
    out.iter()
        .map(|l| format!("  {l:.400}"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let req = HttpRequest::get(&format!("http://{addr}{path}"));
    let r = client::send(&req, Via::Direct(addr), Duration::from_secs(5)).await?;
    if r.status != 200 {
        bail!(
            "GET {addr}{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    serde_json::from_slice(&r.body).with_context(|| format!("GET {addr}{path}: not JSON"))
}

/// Until every proxy is connected and has ACKed everything, twice in a row (bounded).
async fn wait_synced(
    debug: SocketAddr,
    ids: &[String],
    procs: &mut Processes,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut synced_once = false;
    loop {
        procs.ensure_running()?;
        let state = get_json(debug, "/debug/syncz")
            .await
            .map(|v| syncz::state(&syncz::parse(&v), ids));
        match &state {
            Ok(st) if st.all_synced() && synced_once => return Ok(()),
            Ok(st) => synced_once = st.all_synced(),
            Err(_) => synced_once = false,
        }
        if start.elapsed() > TIMEOUT {
            bail!("proxies not ACKed within {TIMEOUT:?}: {state:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
