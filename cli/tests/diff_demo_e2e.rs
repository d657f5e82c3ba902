//! `meshctl diff --controlplane` against the local demo mesh (bookinfo, mesh-proxy
//! sidecars), with ratings-v1 scoped by a Sidecar to details only: a weight shift in the
//! reviews VirtualService changes exactly one route configuration (`15001`, the local-mode
//! outbound listener's) on every proxy that sees reviews and nothing on ratings-v1; a new reviews subset adds exactly its cluster and endpoints on the
//! same proxies.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "127.0.76";

/// Stops the demo (SIGINT, as Ctrl-C) on every path, bounded.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const SCOPE: &str = "\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ratings-scope
  namespace: bookinfo
spec:
  workloadSelector:
    labels:
      app: ratings
  egress:
  - hosts:
    - bookinfo/details.bookinfo.svc.cluster.local
";

const SHIFT: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
  - reviews
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 50
    - destination:
        host: reviews
        subset: v3
      weight: 50
";

const SUBSET: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
  - name: v4
    labels:
      version: v4
";

fn diff(cp: &str, file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["diff", "--controlplane", cp, "-o", "json", "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().or_else(|| x["name"].as_str()).unwrap())
        .collect()
}

fn workloads(report: &Value) -> Vec<&str> {
    let mut w: Vec<&str> = report["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["workload"].as_str().unwrap())
        .collect();
    w.sort_unstable();
    w
}

#[test]
fn diff_against_the_demo_shows_exactly_the_affected_proxies() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("diff-e2e-demo");
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["demo", "--requests", "1", "--ip-prefix", PREFIX, "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if line.starts_with("Stop with Ctrl-C") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(150))
        .expect("the demo mesh came up");
    let cp = format!("http://{PREFIX}.1:15014");

    // Scope ratings-v1 to details, and wait for meshd to serve it.
    std::fs::write(dir.join("ratings-scope.yaml"), SCOPE).unwrap();
    let changes = dir.join("changes");
    std::fs::create_dir_all(&changes).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("curl")
            .args(["-s", &format!("{cp}/debug/resourcesz")])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains("ratings-scope") {
            break;
        }
        assert!(Instant::now() < deadline, "meshd never loaded the Sidecar");
        std::thread::sleep(Duration::from_millis(300));
    }

    let affected = [
        "details-v1",
        "productpage-v1",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
    ];

    // A weight shift: the route configuration of the local-mode outbound listener (15001)
    // changes, 80/20 to 50/50, and nothing else.
    let shift = changes.join("shift.yaml");
    std::fs::write(&shift, SHIFT).unwrap();
    let report = diff(&cp, &shift);
    assert_eq!(workloads(&report), affected, "{report}");
    assert_eq!(report["unchangedProxies"], 1, "{report}");
    for p in report["proxies"].as_array().unwrap() {
        assert_eq!(p["status"], "changed");
        assert_eq!(names(&p["routes"]["changed"]), ["15001"], "{p}");
        let d = p["routes"]["changed"][0]["diff"].as_str().unwrap();
        assert!(
            d.contains("\"weight\": 80") && d.contains("\"weight\": 50"),
            "{d}"
        );
        for t in ["clusters", "listeners", "endpoints"] {
            for what in ["added", "removed", "changed"] {
                assert!(p[t][what].as_array().unwrap().is_empty(), "{t} {what}: {p}");
            }
        }
        assert!(p["routes"]["added"].as_array().unwrap().is_empty());
        assert!(p["routes"]["removed"].as_array().unwrap().is_empty());
    }

    // A new subset: its cluster and its endpoints are added, on the same proxies.
    let subset = changes.join("subset.yaml");
    std::fs::write(&subset, SUBSET).unwrap();
    let report = diff(&cp, &subset);
    assert_eq!(workloads(&report), affected, "{report}");
    let v4 = "outbound|9080|v4|reviews.bookinfo.svc.cluster.local";
    for p in report["proxies"].as_array().unwrap() {
        assert_eq!(names(&p["clusters"]["added"]), [v4], "{p}");
        assert_eq!(names(&p["endpoints"]["added"]), [v4], "{p}");
        assert!(
            p["clusters"]["removed"].as_array().unwrap().is_empty(),
            "{p}"
        );
        assert!(p["routes"]["changed"].as_array().unwrap().is_empty(), "{p}");
    }
}
