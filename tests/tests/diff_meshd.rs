//! `meshctl diff --controlplane` against a real meshd: meshd serves a scenario's config
//! (addresses moved from `127.10.N.x` to `127.14.N.x` so that this can run beside the
//! scenario tests); a weight shift diffed against the live meshd reports the route change
//! on every proxy that routes to the service, exactly as the same diff against the
//! directory meshd reads. No Envoy needed.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mesh_e2e::process::{ChildGuard, ensure_free, workspace_binary};
use mesh_e2e::runner;
use mesh_e2e::scenario::{LoadedScenario, scenarios_root};
use serde_json::Value;

fn copy_moving_addresses(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_moving_addresses(&path, &target);
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&target, text.replace("127.10.", "127.14.")).unwrap();
        }
    }
}

fn diff(args: &[&str]) -> Output {
    Command::new(workspace_binary("meshctl").unwrap())
        .arg("diff")
        .args(args)
        .output()
        .unwrap()
}

const SHIFT: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts:
  - reviews.shop.svc.cluster.local
  http:
  - route:
    - destination:
        host: reviews.shop.svc.cluster.local
        subset: v1
      weight: 50
    - destination:
        host: reviews.shop.svc.cluster.local
        subset: v3
      weight: 50
";

#[test]
fn diff_against_the_config_meshd_serves() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-diff");
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("weighted-split");
    copy_moving_addresses(&scenarios_root().join("weighted-split"), &dir);
    let change = root.join("shift.yaml");
    std::fs::write(&change, SHIFT).unwrap();
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

    let change = change.display().to_string();
    let live = diff(&[
        "-f",
        &change,
        "--controlplane",
        &url,
        "-o",
        "json",
        "--exit-code",
    ]);
    assert_eq!(
        live.status.code(),
        Some(1),
        "a change: exit 1; stderr: {}",
        String::from_utf8_lossy(&live.stderr)
    );
    let live: Value = serde_json::from_slice(&live.stdout).unwrap();
    let ids: Vec<&str> = live["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "sidecar~127.14.2.10~client.shop~shop.svc.cluster.local",
            "sidecar~127.14.2.21~reviews-v1.shop~shop.svc.cluster.local",
            "sidecar~127.14.2.23~reviews-v3.shop~shop.svc.cluster.local",
        ]
    );
    for p in live["proxies"].as_array().unwrap() {
        let changed = p["routes"]["changed"].as_array().unwrap();
        assert_eq!(changed.len(), 1, "{p}");
        let d = changed[0]["diff"].as_str().unwrap();
        assert!(d.contains("-                  \"weight\": 80"), "{d}");
        assert!(d.contains("+                  \"weight\": 50"), "{d}");
        assert!(p["clusters"]["changed"].as_array().unwrap().is_empty());
        assert!(p["listeners"]["changed"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        live["objects"]["changed"],
        serde_json::json!(["VirtualService shop/reviews"])
    );

    // The same diff against the directory meshd reads says the same about every proxy.
    let config = dir.join("config").display().to_string();
    let offline = diff(&["-f", &change, "--against", &config, "-o", "json"]);
    assert_eq!(offline.status.code(), Some(0));
    let offline: Value = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(live["proxies"], offline["proxies"]);
    assert_eq!(live["unchangedProxies"], offline["unchangedProxies"]);

    // Meshd's own config as the change: nothing would change.
    let same = diff(&["-f", &config, "--controlplane", &url, "--exit-code"]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
}
