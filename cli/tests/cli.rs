//! meshctl's command-line contract, checked by running the real binary: exit codes in every
//! output mode, stdout carrying only the requested format, diagnostics with file:line.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn testdata(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(p)
        .display()
        .to_string()
}

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .output()
        .expect("run meshctl")
}

fn meshctl_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn meshctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait meshctl")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bookinfo_sample_analyzes_clean() {
    let o = meshctl(&["analyze", &testdata("bookinfo")]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        out(&o),
        err(&o)
    );
    assert_eq!(out(&o), "", "nothing on stdout when clean");
    assert!(
        err(&o).contains("No validation issues found"),
        "{}",
        err(&o)
    );
}

#[test]
fn missing_host_fails_with_istio_log_line_in_every_format() {
    let file = testdata("cli/missing-host.yaml");
    let o = meshctl(&["analyze", &file]);
    assert_eq!(o.status.code(), Some(79), "{}", err(&o));
    let expected = format!(
        "Error [IST0101] (VirtualService shop/pricing {file}:12) Referenced host not found: \"pricing-svc\""
    );
    assert!(out(&o).lines().any(|l| l == expected), "got:\n{}", out(&o));

    for format in ["json", "yaml", "sarif", "github"] {
        let o = meshctl(&["analyze", "-o", format, &file]);
        assert_eq!(o.status.code(), Some(79), "-o {format}: {}", err(&o));
        assert!(out(&o).contains("IST0101"), "-o {format}:\n{}", out(&o));
    }
    let o = meshctl(&["analyze", "-o", "json", &file]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("stdout is JSON only");
    let m = v
        .as_array()
        .and_then(|a| a.iter().find(|m| m["code"] == "IST0101"))
        .expect("IST0101 in JSON");
    assert_eq!(m["level"], "Error");
    assert_eq!(m["origin"], "VirtualService shop/pricing");
    assert_eq!(m["reference"], format!("{file}:12"));
    assert_eq!(
        m["documentationUrl"],
        "https://istio.io/latest/docs/reference/config/analysis/ist0101/"
    );
    let o = meshctl(&["analyze", "-o", "sarif", &file]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("stdout is SARIF only");
    assert_eq!(v["version"], "2.1.0");
    let o = meshctl(&["analyze", "-o", "github", &file]);
    assert!(
        out(&o).contains(&format!("::error file={file},line=12,title=IST0101")),
        "{}",
        out(&o)
    );
}

#[test]
fn thresholds_and_suppressions() {
    let file = testdata("cli/missing-host.yaml");
    // Nothing at or above Error once the error is suppressed: exit 0.
    let o = meshctl(&[
        "analyze",
        "--suppress",
        "IST0101=VirtualService shop/*",
        &file,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(!out(&o).contains("IST0101"));
    // An unmatched suppression is reported.
    let o = meshctl(&["analyze", "-S", "IST0102=Namespace nowhere", &file]);
    assert!(err(&o).contains("matched no message"), "{}", err(&o));
    // The output threshold hides the error but the failure threshold still fails.
    let o = meshctl(&[
        "analyze",
        "--output-threshold",
        "Error",
        "--failure-threshold",
        "Error",
        &file,
    ]);
    assert_eq!(o.status.code(), Some(79));
    // -n narrows to a namespace without findings: clean.
    let o = meshctl(&["analyze", "-n", "elsewhere", &file]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}

#[test]
fn stdin_is_read_with_dash() {
    let text = std::fs::read_to_string(testdata("cli/missing-host.yaml")).expect("read");
    let o = meshctl_stdin(&["analyze", "-"], &text);
    assert_eq!(o.status.code(), Some(79), "{}", err(&o));
    assert!(
        out(&o).contains("(VirtualService shop/pricing -:12)"),
        "{}",
        out(&o)
    );
}

#[test]
fn bad_input_exits_65_and_the_rest_is_still_analyzed() {
    let dir = testdata("cli/broken");
    let o = meshctl(&["analyze", &dir]);
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("b-malformed.yaml:8: invalid YAML"), "{e}");
    assert!(e.contains("c-binary.yaml:2: not a text file"), "{e}");
    // The good file's finding is still reported.
    assert!(
        out(&o).contains("Referenced host not found: \"catalog-v2\""),
        "{}",
        out(&o)
    );
    // Same contract under -o json: stdout stays valid JSON.
    let o = meshctl(&["analyze", "-o", "json", &dir]);
    assert_eq!(o.status.code(), Some(65));
    let _: serde_json::Value = serde_json::from_str(&out(&o)).expect("stdout is JSON only");
}

#[test]
fn yaml_bomb_is_refused_quickly() {
    let started = std::time::Instant::now();
    let o = meshctl(&["analyze", &testdata("cli/yaml-bomb.yaml")]);
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(err(&o).contains("yaml-bomb.yaml"), "{}", err(&o));
    // Not a performance assertion: a bomb that expanded would take minutes and gigabytes.
    assert!(started.elapsed().as_secs() < 20);
}

#[test]
fn bad_usage_exits_64() {
    for args in [
        vec!["analyze", "--bogus"],
        vec!["analyze"],
        vec!["analyze", "--analyzer", "no.SuchAnalyzer", "x.yaml"],
        vec!["analyze", "--failure-threshold", "Fatal", "x.yaml"],
        vec!["analyze", "--suppress", "garbage", "x.yaml"],
        vec!["nonsense"],
    ] {
        let o = meshctl(&args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", err(&o));
        assert_eq!(out(&o), "", "{args:?}: stdout must stay empty");
    }
    let o = meshctl(&["analyze", "/no/such/file.yaml"]);
    assert_eq!(o.status.code(), Some(65));
}

#[test]
fn list_analyzers_names_istio_analyzers() {
    let o = meshctl(&["analyze", "--list-analyzers", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("JSON");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert!(
        names.contains(&"virtualservice.DestinationHostAnalyzer"),
        "{names:?}"
    );
    let one = meshctl(&[
        "analyze",
        "--analyzer",
        "virtualservice.DestinationHostAnalyzer",
        &testdata("cli/missing-host.yaml"),
    ]);
    assert_eq!(one.status.code(), Some(79));
}

#[test]
fn validate_points_at_file_line_and_field_path() {
    let file = testdata("cli/invalid.yaml");
    let o = meshctl(&["validate", "-f", &file]);
    assert_eq!(o.status.code(), Some(79), "{}", err(&o));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "{file}:18: error: VirtualService shop/reviews: spec.http[0].route[1].weigth: unknown field `weigth`"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{file}:31: error: DestinationRule default/reviews: spec.trafficPolicy.loadBalancer.simple:"
        )),
        "{text}"
    );
    // The typed parse stops at the typo; the CRD schema still sees the bad duration.
    assert!(
        text.contains(&format!(
            "{file}:19: error: VirtualService shop/reviews: spec.http[0].timeout: the API server refuses the object: \"10x\" does not match the duration pattern"
        )),
        "{text}"
    );
    let o = meshctl(&["validate", "-o", "json", "-f", &file]);
    assert_eq!(o.status.code(), Some(79));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("stdout is JSON only");
    let first = &v[0];
    assert_eq!(first["line"], 18);
    assert_eq!(first["path"], "spec.http[0].route[1].weigth");
    assert_eq!(first["object"], "VirtualService shop/reviews");
}

/// Objects meshctl's parser reads (as Istio's protojson parser does) that the API server
/// treats differently with Istio's CRD schemas: it drops a snake_case field (a warning: the
/// exit code is 0 unless --strict) and refuses an enum given by number (an error).
#[test]
fn validate_reports_what_the_api_server_drops_or_refuses() {
    let dropped = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  namespace: shop\nspec:\n  host: reviews\n  traffic_policy:\n    tls:\n      mode: ISTIO_MUTUAL\n";
    let o = meshctl_stdin(&["validate", "-f", "-"], dropped);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert_eq!(
        out(&o),
        "-:8: warning: DestinationRule shop/reviews: spec.traffic_policy: the API server drops this field (Istio's CRD names it trafficPolicy); the setting is lost in a cluster\n"
    );
    let o = meshctl_stdin(&["validate", "--strict", "-f", "-"], dropped);
    assert_eq!(o.status.code(), Some(79), "{}{}", out(&o), err(&o));

    let refused = format!(
        "{dropped}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: ratings\n  namespace: shop\nspec:\n  host: ratings\n  trafficPolicy:\n    loadBalancer:\n      simple: 2\n"
    );
    let o = meshctl_stdin(&["validate", "-o", "json", "-f", "-"], &refused);
    assert_eq!(o.status.code(), Some(79), "{}{}", out(&o), err(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).expect("stdout is JSON only");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v:#}");
    assert_eq!(v[0]["severity"], "warning");
    assert_eq!(v[0]["path"], "spec.traffic_policy");
    assert_eq!(v[1]["severity"], "error");
    assert_eq!(v[1]["object"], "DestinationRule shop/ratings");
    assert_eq!(v[1]["line"], 21);
    assert_eq!(v[1]["path"], "spec.trafficPolicy.loadBalancer.simple");
    assert_eq!(
        v[1]["message"],
        "the API server refuses the object: must be of type string, found 2"
    );
}

#[test]
fn validate_accepts_bookinfo_and_refuses_unreadable_input() {
    let o = meshctl(&["validate", "-f", &testdata("bookinfo")]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    let o = meshctl(&["validate", "-f", &testdata("cli/broken")]);
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(
        out(&o).contains("b-malformed.yaml:8: error: invalid YAML"),
        "{}",
        out(&o)
    );
    let o = meshctl(&["validate"]);
    assert_eq!(o.status.code(), Some(64));
}

#[test]
fn an_object_defined_twice_is_reported() {
    let file = testdata("cli/duplicate.yaml");
    let o = meshctl(&["analyze", &file]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains(&format!(
            "VirtualService shop/foo-com-virtual-service is defined twice: {file}:1 is replaced by {file}:12"
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn recursive_flag_forms_and_empty_input() {
    let dir = testdata("bookinfo");
    assert_eq!(meshctl(&["analyze", "-R", &dir]).status.code(), Some(0));
    assert_eq!(
        meshctl(&["analyze", "--recursive", &dir]).status.code(),
        Some(0)
    );
    // testdata/ itself holds no YAML at its top level: without recursion there is nothing to
    // analyze, which must not pass silently.
    let o = meshctl(&["analyze", "--recursive=false", &testdata("")]);
    assert_eq!(o.status.code(), Some(65), "{}", err(&o));
    assert!(
        err(&o).contains("no YAML or JSON files found"),
        "{}",
        err(&o)
    );
}
