//! `meshctl describe --controlplane` against a real meshd: meshd serves a scenario's config
//! (addresses moved from `127.10.N.x` to `127.12.N.x` so that this can run beside the
//! scenario tests), and describe reads it from `/debug/resourcesz` and reports the same
//! services, subsets and routes as from the files. No Envoy needed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mesh_e2e::process::{ChildGuard, ensure_free, workspace_binary};
use mesh_e2e::runner;
use mesh_e2e::scenario::{LoadedScenario, copy_moving_addresses, scenarios_root};
use serde_json::Value;

fn describe(args: &[&str]) -> Value {
    let out = Command::new(workspace_binary("meshctl").unwrap())
        .arg("describe")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "meshctl describe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn describe_reads_the_config_meshd_serves() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-describe");
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("header-routing");
    copy_moving_addresses(&scenarios_root().join("header-routing"), &dir, 12).unwrap();
    let s = LoadedScenario::load(&dir).unwrap();
    ensure_free(s.xds_addr()).unwrap();
    ensure_free(s.debug_addr()).unwrap();
    let _meshd = ChildGuard::spawn(
        "meshd",
        runner::meshd_command(&workspace_binary("meshd").unwrap(), &s),
        &root.join("meshd.log"),
    )
    .unwrap();
    let url = format!("http://{}", s.debug_addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(s.debug_addr()).is_err() {
        assert!(Instant::now() < deadline, "meshd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }

    let live = describe(&["workload", "reviews-v2.shop", "--controlplane", &url]);
    assert_eq!(live["workload"]["kind"], "WorkloadEntry");
    assert_eq!(live["address"], "127.12.1.22");
    let svc = &live["services"][0];
    assert_eq!(svc["hosts"][0], "reviews.shop.svc.cluster.local");
    assert_eq!(
        svc["destinationRules"][0]["matchingSubsets"],
        serde_json::json!(["v2"])
    );
    let routes = svc["virtualServices"][0]["routes"].as_array().unwrap();
    let jason = routes
        .iter()
        .find(|r| r["when"] == "header end-user=jason")
        .unwrap();
    assert_eq!(jason["reachesWorkload"], true);
    assert!(
        live["workload"]["origin"]
            .as_str()
            .unwrap()
            .contains("mesh.yaml:")
    );

    // The same report as from the files meshd reads (origins aside: meshd serves no field
    // lines, so references point at each object's first line).
    let files = describe(&[
        "workload",
        "reviews-v2.shop",
        "-f",
        s.config_dir.to_str().unwrap(),
    ]);
    assert_eq!(live["services"], files["services"]);
    assert_eq!(live["mtls"]["mode"], files["mtls"]["mode"]);

    let service = describe(&["service", "reviews", "-n", "shop", "--controlplane", &url]);
    let workloads: Vec<&str> = service["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["workload"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(workloads, ["reviews-v1", "reviews-v2"]);
}
