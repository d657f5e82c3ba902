//! Golden tests of `meshctl proxy-config` on saved config dumps: real Envoy 1.40 dumps
//! captured from scenario runs (`testdata/proxy-config/SCENARIO-WORKLOAD/`, see the README
//! there) and a synthetic dump with secrets, Istio metadata, unknown `@type`s and missing
//! fields (`testdata/proxy-config/synthetic/`). Each case runs the real binary and compares
//! stdout with `testdata/proxy-config/golden/CASE.txt`. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p meshctl --test proxy_config` and review the diff.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/proxy-config")
}

fn dump(dir: &str) -> String {
    root()
        .join(dir)
        .join("config_dump.json")
        .display()
        .to_string()
}

fn clusters(dir: &str) -> String {
    root().join(dir).join("clusters.json").display().to_string()
}

fn synthetic() -> String {
    root()
        .join("synthetic/synthetic.json")
        .display()
        .to_string()
}

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .output()
        .expect("run meshctl")
}

const CLIENT: &str = "weighted-split-client";
const REVIEWS: &str = "weighted-split-reviews-v1";
const GATEWAY: &str = "gateway-ingress-ingressgateway";
const PRODUCTPAGE: &str = "gateway-ingress-productpage-v1";

#[test]
fn golden_outputs() {
    let client = dump(CLIENT);
    let reviews = dump(REVIEWS);
    let gateway = dump(GATEWAY);
    let productpage = dump(PRODUCTPAGE);
    let synth = synthetic();
    let client_clusters = clusters(CLIENT);
    let gateway_clusters = clusters(GATEWAY);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // Clusters and their filters.
        ("client-cluster", vec!["cluster", "-f", &client]),
        (
            "client-cluster-subset-v1",
            vec!["cluster", "-f", &client, "--subset", "v1"],
        ),
        (
            "client-cluster-port-direction",
            vec![
                "cluster",
                "-f",
                &client,
                "--port",
                "9080",
                "--direction",
                "outbound",
            ],
        ),
        (
            "client-cluster-fqdn-subset-json",
            vec![
                "clusters",
                "-f",
                &client,
                "--fqdn",
                "reviews.shop",
                "--subset",
                "v3",
                "-o",
                "json",
            ],
        ),
        (
            "reviews-cluster-inbound",
            vec!["cluster", "-f", &reviews, "--direction", "inbound"],
        ),
        ("gateway-cluster", vec!["cluster", "-f", &gateway]),
        // Listeners.
        ("client-listener", vec!["listener", "-f", &client]),
        ("reviews-listener", vec!["listener", "-f", &reviews]),
        (
            "reviews-listener-port-9080",
            vec!["listener", "-f", &reviews, "--port", "9080"],
        ),
        (
            "reviews-listener-address-type-yaml",
            vec![
                "listener",
                "-f",
                &reviews,
                "--address",
                "127.10.2.21",
                "--type",
                "http",
                "--port",
                "15001",
                "-o",
                "yaml",
            ],
        ),
        ("gateway-listener", vec!["listener", "-f", &gateway]),
        ("productpage-listener", vec!["listener", "-f", &productpage]),
        // Routes.
        ("client-route", vec!["route", "-f", &client]),
        ("reviews-route", vec!["route", "-f", &reviews]),
        (
            "reviews-route-name-inbound",
            vec!["route", "-f", &reviews, "--name", "inbound|9080||"],
        ),
        ("gateway-route", vec!["route", "-f", &gateway]),
        (
            "gateway-route-name-json",
            vec!["route", "-f", &gateway, "--name", "http.8080", "-o", "json"],
        ),
        // Endpoints: from the dump's EDS, and from /clusters?format=json.
        ("client-endpoint-eds", vec!["endpoint", "-f", &client]),
        (
            "client-endpoint-clusters",
            vec!["endpoint", "-f", &client_clusters],
        ),
        (
            "client-endpoint-cluster-v3",
            vec![
                "endpoint",
                "-f",
                &client_clusters,
                "--cluster",
                "outbound|9080|v3|reviews.shop.svc.cluster.local",
            ],
        ),
        (
            "client-endpoint-address-port",
            vec![
                "endpoint",
                "-f",
                &client,
                "--address",
                "127.10.2.23",
                "--port",
                "9080",
            ],
        ),
        (
            "client-endpoint-status-unhealthy",
            vec!["endpoint", "-f", &client_clusters, "--status", "unhealthy"],
        ),
        (
            "client-endpoint-status-json",
            vec![
                "endpoints",
                "-f",
                &client_clusters,
                "--status",
                "HEALTHY",
                "--address",
                "127.10.2.21",
                "-o",
                "json",
            ],
        ),
        (
            "gateway-endpoint-clusters",
            vec!["endpoint", "-f", &gateway_clusters],
        ),
        // Secrets, bootstrap, all.
        ("client-secret", vec!["secret", "-f", &client]),
        ("client-bootstrap", vec!["bootstrap", "-f", &client]),
        ("gateway-all", vec!["all", "-f", &gateway]),
        // The synthetic dump: Istio metadata, secrets, unknown types, missing fields.
        ("synthetic-all", vec!["all", "-f", &synth]),
        (
            "synthetic-secret-yaml",
            vec!["secret", "-f", &synth, "-o", "yaml"],
        ),
        (
            "synthetic-cluster-json",
            vec!["cluster", "-f", &synth, "-o", "json"],
        ),
    ];

    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dir = root().join("golden");
    let mut failed = Vec::new();
    for (name, args) in &cases {
        let mut full = vec!["proxy-config"];
        full.extend(args.iter().copied());
        let out = meshctl(&full);
        assert!(
            out.status.success(),
            "{name}: meshctl {} exited {}:\n{}",
            full.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != text {
            failed.push(format!(
                "{name} (meshctl {}):\n--- want ({})\n{want}--- got\n{text}",
                full.join(" "),
                path.display()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{} golden output(s) differ; regenerate with UPDATE_GOLDEN=1 cargo test -p meshctl \
         --test proxy_config after checking:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// The cases above must exercise the dumps, not just print headers.
#[test]
fn real_dumps_have_the_scenarios_config() {
    let out = meshctl(&["pc", "cluster", "-f", &dump(CLIENT)]);
    let text = String::from_utf8(out.stdout).unwrap();
    for subset in ["-", "v1", "v3"] {
        assert!(
            text.lines().any(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                cells.first() == Some(&"reviews.shop.svc.cluster.local")
                    && cells.get(1) == Some(&"9080")
                    && cells.get(2) == Some(&subset)
                    && cells.get(3) == Some(&"outbound")
                    && cells.get(4) == Some(&"EDS")
            }),
            "no reviews cluster with subset {subset}:\n{text}"
        );
    }
    let out = meshctl(&["pc", "route", "-f", &dump(GATEWAY)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("http.8080")
            && text.contains("shop.example.com")
            && text.contains("/productpage*"),
        "{text}"
    );
}

#[test]
fn stdin_reads_a_dump() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["pc", "cluster", "-f", "-", "--subset", "v1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(dump(CLIENT)).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("v1"), "{text}");
}

#[test]
fn errors_are_clear_and_carry_exit_codes() {
    // No proxy named.
    let out = meshctl(&["pc", "cluster"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin"));

    // An admin address nothing listens on: the address and what to try.
    let out = meshctl(&["pc", "listener", "--admin", "127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(65));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:9") && err.contains("--file"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // meshd not there for a workload name.
    let out = meshctl(&[
        "pc",
        "route",
        "reviews-v1.shop",
        "--controlplane",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--controlplane"));

    // Not JSON; not a config dump; a /clusters file where a dump is needed.
    let bad = std::env::temp_dir().join(format!("meshctl-pc-bad-{}.json", std::process::id()));
    std::fs::write(&bad, "{not json").unwrap();
    let out = meshctl(&["pc", "cluster", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));
    std::fs::write(&bad, "[1, 2]").unwrap();
    let out = meshctl(&["pc", "cluster", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a config dump"));
    let _ = std::fs::remove_file(&bad);
    let out = meshctl(&["pc", "cluster", "-f", &clusters(CLIENT)]);
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/clusters output"));

    // Log levels need a live proxy; bad levels are usage errors.
    let out = meshctl(&["pc", "log", "-f", &dump(CLIENT)]);
    assert_eq!(out.status.code(), Some(64));
    let out = meshctl(&["pc", "log", "--admin", "127.0.0.1:9", "--level", "loud"]);
    // The level is checked before the proxy is contacted.
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown log level"));

    // The unknown section of the synthetic dump is named on stderr, not stdout.
    let out = meshctl(&["pc", "all", "-f", &synthetic()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("acme.admin.v9.FancyConfigDump"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Fancy"));
}
