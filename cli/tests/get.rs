//! `meshctl get services|workloads`, by running the binary: Kubernetes Services and
//! ServiceEntries listed alike with the object each comes from, ports, resolution, location
//! and endpoints (Pods with an IP and WorkloadEntries the Service selects); filters by name
//! and namespace; JSON; exit 64 for an unknown name; and `--controlplane` against a real
//! meshd serving the same directory, which must list the same registry.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mesh_e2e::process::{ChildGuard, workspace_binary};
use serde_json::Value;

const MESH: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9081}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, namespace: shop, labels: {app: reviews}}
spec: {serviceAccountName: reviews, containers: [{name: app, image: reviews}]}
status: {podIP: 10.1.0.7}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm, namespace: shop, labels: {app: reviews}}
spec: {address: 10.9.0.2, serviceAccount: reviews-vm}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: billing}
spec:
  hosts: [payments.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
";

/// A fresh directory holding [`MESH`], one per test (they run in parallel).
fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("get-registry-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("mesh.yaml"), MESH).unwrap();
    d
}

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .output()
        .expect("run meshctl")
}

fn ok(args: &[&str]) -> String {
    let o = meshctl(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "meshctl {args:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The table's data rows, each split on runs of two or more spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn files(d: &Path) -> String {
    d.display().to_string()
}

#[test]
fn services_and_service_entries_list_alike_with_their_origin_and_endpoints() {
    let d = dir("files");
    let f = files(&d);
    let table = ok(&["get", "services", "-f", &f]);
    assert_eq!(
        rows(&table),
        [
            vec![
                "payments.example.com",
                "billing",
                "ServiceEntry billing/payments",
                "tls 443/TLS",
                "DNS",
                "MESH_EXTERNAL",
                "payments.example.com",
            ],
            vec![
                "reviews.shop.svc.cluster.local",
                "shop",
                "Service shop/reviews",
                "http 9080/HTTP",
                "STATIC",
                "MESH_INTERNAL",
                "10.1.0.7, 10.9.0.2",
            ],
        ],
        "{table}"
    );

    // A short name, NAME.NS, and the namespace filter pick one; JSON has the details.
    for args in [
        vec!["get", "svc", "reviews"],
        vec!["get", "svc", "reviews.shop"],
        vec!["get", "svc", "-n", "shop"],
    ] {
        let mut a = args.clone();
        a.extend(["-f", &f, "-o", "json"]);
        let v: Value = serde_json::from_str(&ok(&a)).unwrap();
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 1, "{args:?}: {v}");
        let s = &list[0];
        assert_eq!(s["hostname"], "reviews.shop.svc.cluster.local");
        assert_eq!(s["origin"], "Service shop/reviews");
        assert_eq!(s["location"], "MESH_INTERNAL");
        assert_eq!(s["ports"][0]["target_port"], 9081);
        let eps: Vec<(&str, &str)> = s["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["address"].as_str().unwrap(),
                    e["service_account"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(eps, [("10.1.0.7", "reviews"), ("10.9.0.2", "reviews-vm")]);
    }

    // Workloads: the Pod with an IP and the WorkloadEntry.
    let table = ok(&["get", "workloads", "-f", &f]);
    let w = rows(&table);
    assert_eq!(w.len(), 2, "{table}");
    assert_eq!(
        w[0],
        [
            "reviews-1",
            "shop",
            "Pod",
            "10.1.0.7",
            "reviews",
            "app=reviews"
        ],
        "{table}"
    );
    assert_eq!(
        w[1],
        [
            "reviews-vm",
            "shop",
            "WorkloadEntry",
            "10.9.0.2",
            "reviews-vm",
            "app=reviews"
        ],
        "{table}"
    );

    // An unknown name is a usage error, an empty namespace an empty list.
    let o = meshctl(&["get", "svc", "ratings", "-f", &f]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no service \"ratings\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        rows(&ok(&["get", "svc", "-n", "nowhere", "-f", &f])).len(),
        0
    );
}

#[test]
fn a_running_meshd_lists_the_same_registry() {
    let d = dir("served");
    let debug = "127.0.81.1:15014";
    let mut cmd = Command::new(workspace_binary("meshd").unwrap());
    cmd.arg("--config-dir").arg(&d).args([
        "--xds-address",
        "127.0.81.1:15010",
        "--debug-address",
        debug,
    ]);
    let meshd = ChildGuard::spawn("meshd", cmd, &d.join("meshd.log")).unwrap();
    let url = format!("http://{debug}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        let o = meshctl(&["get", "services", "--controlplane", &url]);
        if o.status.success() {
            break String::from_utf8(o.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "meshd never answered: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(served, ok(&["get", "services", "-f", &files(&d)]));
    assert_eq!(
        ok(&["get", "workloads", "--controlplane", &url]),
        ok(&["get", "workloads", "-f", &files(&d)])
    );
    drop(meshd);
}
