//! `meshctl kube-inject`'s command-line contract, by running the real binary: stdin and
//! files, `-o FILE`, exit codes, `file:line` on errors, skips reported on stderr, and the
//! refusal to inject twice.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: web:1
        readinessProbe:
          httpGet:
            path: /ready
            port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - port: 80
";

fn run(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kube-inject-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn stdin_is_injected_to_stdout_keeping_every_object() {
    let o = run(&["kube-inject", "-f", "-"], DEPLOYMENT);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let docs: Vec<serde_json::Value> = mesh_core::yaml::parse_documents(&out)
        .into_iter()
        .map(|d| d.result.unwrap().to_json())
        .collect();
    assert_eq!(docs.len(), 2, "{out}");
    assert_eq!(docs[1]["kind"], "Service");
    let spec = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][0]["name"], "istio-init");
    assert_eq!(spec["initContainers"][0]["command"][0], "mesh-proxy");
    assert_eq!(spec["initContainers"][1]["name"], "istio-proxy");
    assert_eq!(
        spec["containers"][0]["readinessProbe"]["httpGet"],
        serde_json::json!({"path": "/app-health/web/readyz", "port": 15020})
    );
    let status = docs[0]["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .unwrap();
    assert!(status.contains("\"istio-proxy\""), "{status}");
}

#[test]
fn output_file_and_second_injection_refused() {
    let input = tmp("in.yaml");
    let output = tmp("out.yaml");
    std::fs::write(&input, DEPLOYMENT).unwrap();
    let o = run(
        &[
            "kube-inject",
            "-f",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "", "the manifest goes to the file");
    let injected = std::fs::read_to_string(&output).unwrap();
    assert!(injected.contains("istio-proxy"));

    let again = run(&["kube-inject", "-f", output.to_str().unwrap()], "");
    assert_eq!(again.status.code(), Some(65));
    let err = text(&again.stderr);
    assert!(err.starts_with(&format!("{}:", output.display())), "{err}");
    assert!(err.contains("already has a sidecar"), "{err}");
    assert_eq!(text(&again.stdout), "");
}

/// The `--xds-address` of the injected sidecar.
fn xds_address_of(injected: &str) -> String {
    let lines: Vec<&str> = injected.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "- --xds-address")
        .unwrap_or_else(|| panic!("no --xds-address in {injected}"));
    lines[at + 1].trim_start_matches("- ").to_owned()
}

#[test]
fn mesh_config_discovery_address_names_meshd_xds_port() {
    let mesh = tmp("mesh-istio.yaml");
    for (discovery, expected) in [
        // Istio's (and `meshctl manifest generate`'s) mesh config names istiod's TLS port
        // 15012; meshd serves xDS on 15010 there and the CA on 15012.
        ("meshd.mesh-system.svc:15012", "meshd.mesh-system.svc:15010"),
        // Any other port is taken as given.
        ("cp.example.svc:18000", "cp.example.svc:18000"),
    ] {
        std::fs::write(
            &mesh,
            format!("defaultConfig:\n  discoveryAddress: {discovery}\n"),
        )
        .unwrap();
        let o = run(
            &[
                "kube-inject",
                "-f",
                "-",
                "--meshConfigFile",
                mesh.to_str().unwrap(),
            ],
            DEPLOYMENT,
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert_eq!(xds_address_of(&text(&o.stdout)), expected);
    }
}

#[test]
fn bad_annotation_is_bad_input_with_its_line() {
    let bad = DEPLOYMENT.replace(
        "      labels:\n        app: web\n",
        "      labels:\n        app: web\n      annotations:\n        traffic.sidecar.istio.io/includeOutboundIPRanges: 10.0.0.0/99\n",
    );
    let o = run(&["kube-inject", "-f", "-"], &bad);
    assert_eq!(o.status.code(), Some(65));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("<stdin>:15: error: traffic.sidecar.istio.io/includeOutboundIPRanges"),
        "{err}"
    );
}

#[test]
fn skipped_objects_are_named_on_stderr() {
    let host = DEPLOYMENT.replace(
        "    spec:\n      containers:",
        "    spec:\n      hostNetwork: true\n      containers:",
    );
    let o = run(&["kube-inject", "-f", "-"], &host);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr)
            .contains("Skipping injection of Deployment shop/web: host networking is enabled"),
        "{}",
        text(&o.stderr)
    );
    assert!(!text(&o.stdout).contains("istio-proxy"));
}

#[test]
fn missing_file_is_bad_input() {
    let o = run(&["kube-inject", "-f", "/nonexistent/x.yaml"], "");
    assert_eq!(o.status.code(), Some(65));
    assert!(text(&o.stderr).contains("cannot read /nonexistent/x.yaml"));
}
