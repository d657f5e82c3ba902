//! `meshctl diff` on testdata/diff, by running the binary: which proxies change and how (a
//! weight shift, a new subset, a removal), the analyzer messages a change introduces and
//! fixes, objects meshd would refuse, `--exit-code`, `-o json` content, usage and input
//! errors.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn testdata(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/diff")
        .join(p)
        .display()
        .to_string()
}

fn meshctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .arg("diff")
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run meshctl")
}

fn json(change: &str, extra: &[&str]) -> Value {
    let base = testdata("base");
    let file = testdata(change);
    let mut args = vec!["-f", &file, "--against", &base, "-o", "json"];
    args.extend_from_slice(extra);
    let o = meshctl(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

const GATEWAY: &str = "router~127.30.1.5~ingress.istio-system~istio-system.svc.cluster.local";
const CLIENT: &str = "sidecar~127.30.1.10~client.frontend~frontend.svc.cluster.local";
const CLIENT_OTHER: &str = "sidecar~127.30.1.11~client-other.other~other.svc.cluster.local";
const REVIEWS: &str = "sidecar~127.30.1.21~reviews-v1.shop~shop.svc.cluster.local";
const RATINGS_V1: &str = "sidecar~127.30.1.22~ratings-v1.shop~shop.svc.cluster.local";
const RATINGS_V2: &str = "sidecar~127.30.1.23~ratings-v2.shop~shop.svc.cluster.local";

fn ids(report: &Value) -> Vec<&str> {
    report["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().or_else(|| x["name"].as_str()).unwrap())
        .collect()
}

#[test]
fn weight_shift_changes_one_route_on_the_proxies_that_route_to_the_service() {
    let r = json("weight-shift.yaml", &[]);
    // client's Sidecar scopes ratings away; lonely's imports only its namespace; the
    // ingress gateway serves only routes bound to its Gateway.
    assert_eq!(ids(&r), [CLIENT_OTHER, REVIEWS, RATINGS_V1, RATINGS_V2]);
    assert_eq!(r["unchangedProxies"], 3);
    for p in r["proxies"].as_array().unwrap() {
        assert_eq!(p["status"], "changed");
        for t in ["clusters", "listeners", "endpoints"] {
            for what in ["added", "removed", "changed"] {
                assert!(p[t][what].as_array().unwrap().is_empty(), "{t} {what}: {p}");
            }
        }
        assert!(p["routes"]["added"].as_array().unwrap().is_empty());
        assert!(p["routes"]["removed"].as_array().unwrap().is_empty());
        assert_eq!(names(&p["routes"]["changed"]), ["15001"]);
        let diff = p["routes"]["changed"][0]["diff"].as_str().unwrap();
        let changed: Vec<&str> = diff
            .lines()
            .filter(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            })
            .map(str::trim)
            .collect();
        assert_eq!(
            changed,
            [
                "-                  \"weight\": 90",
                "+                  \"weight\": 50",
                "-                  \"weight\": 10",
                "+                  \"weight\": 50"
            ]
            .map(|s| s.trim()),
            "{diff}"
        );
    }
    assert_eq!(
        r["objects"]["changed"],
        serde_json::json!(["VirtualService shop/ratings"])
    );
    assert!(r["analysis"]["introduced"].as_array().unwrap().is_empty());
    assert!(r["analysis"]["fixed"].as_array().unwrap().is_empty());
    assert_eq!(r["changed"], true);
}

#[test]
fn an_ingress_route_change_changes_only_the_gateway() {
    let r = json("gateway-route.yaml", &[]);
    assert_eq!(ids(&r), [GATEWAY]);
    let p = &r["proxies"][0];
    assert_eq!(p["kind"], "gateway");
    assert_eq!(p["workload"], "ingress");
    assert_eq!(names(&p["routes"]["changed"]), ["http.8080"]);
    let diff = p["routes"]["changed"][0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-            \"prefix\": \"/reviews\""),
        "{diff}"
    );
    assert!(
        diff.contains("+            \"prefix\": \"/api/reviews\""),
        "{diff}"
    );
    for t in ["clusters", "listeners", "endpoints"] {
        assert!(p[t]["changed"].as_array().unwrap().is_empty());
        assert!(p[t]["added"].as_array().unwrap().is_empty());
    }
    assert_eq!(r["unchangedProxies"], 6);
}

#[test]
fn a_new_subset_adds_its_cluster_and_eds_assignment() {
    let r = json("new-subset.yaml", &[]);
    // Every proxy that sees reviews (client imports it; the gateway too), not lonely.
    assert_eq!(
        ids(&r),
        [
            GATEWAY,
            CLIENT,
            CLIENT_OTHER,
            REVIEWS,
            RATINGS_V1,
            RATINGS_V2
        ]
    );
    assert_eq!(r["proxies"][0]["kind"], "gateway");
    assert_eq!(r["unchangedProxies"], 1);
    let subset = "outbound|9080|v1|reviews.shop.svc.cluster.local";
    for p in r["proxies"].as_array().unwrap() {
        assert_eq!(names(&p["clusters"]["added"]), [subset], "{p}");
        assert_eq!(names(&p["endpoints"]["added"]), [subset], "{p}");
        assert!(p["clusters"]["removed"].as_array().unwrap().is_empty());
        assert!(p["listeners"]["changed"].as_array().unwrap().is_empty());
        assert!(p["routes"]["changed"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        r["objects"]["added"],
        serde_json::json!(["DestinationRule shop/reviews"])
    );
}

#[test]
fn a_broken_change_shows_the_new_analyzer_message_and_removing_it_fixes_it() {
    let r = json("broken.yaml", &[]);
    let introduced = r["analysis"]["introduced"].as_array().unwrap();
    assert_eq!(introduced.len(), 1, "{introduced:?}");
    assert_eq!(introduced[0]["code"], "IST0101");
    assert_eq!(introduced[0]["origin"], "VirtualService shop/ratings");
    assert!(
        introduced[0]["message"]
            .as_str()
            .unwrap()
            .contains("ratings+v3")
    );
    assert!(r["analysis"]["fixed"].as_array().unwrap().is_empty());

    // The other way round: the broken config is the base, the fix the change.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("diff-broken-base");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(testdata("base/mesh.yaml"), dir.join("mesh.yaml")).unwrap();
    std::fs::copy(testdata("broken.yaml"), dir.join("routing.yaml")).unwrap();
    let base = dir.display().to_string();
    let fix = testdata("base/routing.yaml");
    let o = meshctl(&["-f", &fix, "--against", &base, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let fixed = r["analysis"]["fixed"].as_array().unwrap();
    assert_eq!(fixed.len(), 1);
    assert_eq!(fixed[0]["code"], "IST0101");
    assert!(r["analysis"]["introduced"].as_array().unwrap().is_empty());
}

#[test]
fn an_invalid_object_is_reported_as_refused() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("diff-invalid");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: shop}\n\
         spec:\n  hosts: [ratings]\n  http:\n  - route:\n    - destination: {host: ratings, subset: v1}\n      weight: -5\n",
    )
    .unwrap();
    let r = json(&file.display().to_string(), &[]);
    let refused = r["rejected"]["introduced"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["object"], "VirtualService shop/ratings");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid")
    );
    // meshd drops the refused VirtualService: the proxies lose its weighted route.
    assert_eq!(ids(&r), [CLIENT_OTHER, REVIEWS, RATINGS_V1, RATINGS_V2]);
}

#[test]
fn deletion_by_annotation_and_by_flag_agree() {
    let by_annotation = json("delete.yaml", &[]);
    assert_eq!(
        by_annotation["objects"]["removed"],
        serde_json::json!(["VirtualService shop/ratings"])
    );
    assert_eq!(
        ids(&by_annotation),
        [CLIENT_OTHER, REVIEWS, RATINGS_V1, RATINGS_V2]
    );
    let base = testdata("base");
    let o = meshctl(&[
        "--delete",
        "VirtualService/shop/ratings",
        "--against",
        &base,
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let by_flag: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(by_flag["proxies"], by_annotation["proxies"]);

    let o = meshctl(&["--delete", "VirtualService/shop/nope", "--against", &base]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such object"));
}

#[test]
fn exit_code_says_whether_anything_would_change() {
    let base = testdata("base");
    let shift = testdata("weight-shift.yaml");
    let o = meshctl(&["-f", &shift, "--against", &base, "--exit-code"]);
    assert_eq!(o.status.code(), Some(1));
    // Without --exit-code a change is not a failure.
    let o = meshctl(&["-f", &shift, "--against", &base]);
    assert_eq!(o.status.code(), Some(0));
    // The base's own routing file changes nothing.
    let same = testdata("base/routing.yaml");
    let o = meshctl(&["-f", &same, "--against", &base, "--exit-code"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("7 proxies unchanged."), "{text}");
    assert!(text.contains("Nothing would change."), "{text}");
}

#[test]
fn text_output_lists_changes_per_proxy_without_colour_off_a_terminal() {
    let base = testdata("base");
    let shift = testdata("weight-shift.yaml");
    let o = meshctl(&["-f", &shift, "--against", &base]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains('\x1b'), "colour off a terminal");
    assert!(text.contains(&format!(
        "Proxy {CLIENT_OTHER} (sidecar other/client-other)"
    )));
    assert!(!text.contains(CLIENT));
    assert!(text.contains("    ~ 15001\n"));
    assert!(text.contains("-                  \"weight\": 90"));
    assert!(text.contains("3 proxies unchanged."));
    let o = meshctl(&["-f", &shift, "--against", &base, "--color", "always"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\x1b[32m+"));
}

#[test]
fn usage_and_input_errors() {
    let base = testdata("base");
    let shift = testdata("weight-shift.yaml");
    // No base.
    assert_eq!(meshctl(&["-f", &shift]).status.code(), Some(64));
    // Nothing to diff.
    assert_eq!(meshctl(&["--against", &base]).status.code(), Some(64));
    // Both bases.
    let o = meshctl(&[
        "-f",
        &shift,
        "--against",
        &base,
        "--controlplane",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(64));
    // A bad --delete.
    let o = meshctl(&["--delete", "nope", "--against", &base]);
    assert_eq!(o.status.code(), Some(64));
    // Unreadable change, missing base directory, meshd not running.
    let o = meshctl(&["-f", "/nonexistent.yaml", "--against", &base]);
    assert_eq!(o.status.code(), Some(65));
    let o = meshctl(&["-f", &shift, "--against", "/nonexistent-dir"]);
    assert_eq!(o.status.code(), Some(65));
    let o = meshctl(&["-f", &shift, "--controlplane", "http://127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(65));
}
