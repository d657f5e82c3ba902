//! `meshctl describe` on testdata/bookinfo and testdata/describe, by running the binary:
//! the services, subsets, routes, gateways, Sidecar, mTLS modes, authorization policies and
//! analyzer messages it reports, in text, JSON and YAML; exit codes for unknown names and
//! unreadable input; and `--controlplane` against a stand-in serving `/debug/resourcesz`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

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

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&ok(&all)).unwrap()
}

fn names(v: &Value, pointer: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.pointer(pointer).unwrap().as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn bookinfo_pod_shows_its_service_subsets_routes_and_policies() {
    let bookinfo = testdata("bookinfo");
    // The Deployment's name finds its derived Pod; NAME.NS picks the namespace.
    let text = ok(&["describe", "pod", "reviews-v1.bookinfo", "-f", &bookinfo]);
    for line in [
        "Pod: reviews-v1-*.bookinfo (",
        "   From: Deployment bookinfo/reviews-v1",
        "   Labels: app=reviews,version=v1",
        "   Service account: bookinfo-reviews",
        "Service: reviews.bookinfo (",
        "   Port: http 9080/HTTP targets workload port 9080",
        "DestinationRule: DestinationRule bookinfo/reviews for \"reviews.bookinfo.svc.cluster.local\"",
        "   Matching subsets: v1",
        "      (Non-matching subsets v2,v3)",
        "   Traffic policy: load balancer LEAST_REQUEST, outlier detection after 5 5xx",
        "   http[0]: when header end-user=jason -> reviews subset v2  (not to this workload)",
        "   http[1]: when * -> reviews subset v1 weight 80%, reviews subset v3 weight 20%",
        "   Workload mTLS mode: STRICT",
        "   Applied: PeerAuthentication bookinfo/default (namespace level): STRICT",
        "   Port 9080: STRICT",
        "   AuthorizationPolicy bookinfo/reviews-viewer: ALLOW, 1 rule (workload)",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{text}"
        );
    }
    // Other apps' policies do not apply.
    assert!(!text.contains("ratings-viewer"), "{text}");
}

#[test]
fn bookinfo_productpage_is_exposed_on_the_gateway() {
    let r = json(&[
        "describe",
        "workload",
        "productpage-v1",
        "-n",
        "bookinfo",
        "-f",
        &testdata("bookinfo"),
    ]);
    assert_eq!(r["workload"]["kind"], "Pod");
    assert_eq!(r["derivedFrom"], "Deployment bookinfo/productpage-v1");
    let svc = &r["services"][0];
    assert_eq!(svc["hosts"][0], "productpage.bookinfo.svc.cluster.local");
    let mut vs = names(&svc["virtualServices"], "/virtualService/name");
    vs.sort();
    assert_eq!(vs, ["bookinfo", "productpage"]);
    let gw = &svc["exposedOn"][0];
    assert_eq!(gw["gateway"]["name"], "bookinfo-gateway");
    assert_eq!(gw["servers"][0], "HTTP 80 bookinfo.example.com");
    assert_eq!(gw["via"], "VirtualService bookinfo/bookinfo");
    let ingress_route = svc["virtualServices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["virtualService"]["name"] == "bookinfo")
        .unwrap();
    assert_eq!(
        ingress_route["routes"][0]["when"],
        "uri=/productpage OR uri=/static* OR uri=/login OR uri=/logout OR uri=/api/v1/products*"
    );
    assert_eq!(
        names(&r["authorizationPolicies"], "/policy/name"),
        ["productpage-viewer"]
    );
}

#[test]
fn the_ingress_gateway_shows_the_gateways_selecting_it() {
    // files-only analysis adds the default ingress gateway, as analyze does.
    let r = json(&[
        "describe",
        "pod",
        "istio-ingressgateway",
        "-f",
        &testdata("bookinfo"),
    ]);
    assert_eq!(r["workload"]["namespace"], "istio-system");
    assert_eq!(names(&r["gateways"], "/gateway/name"), ["bookinfo-gateway"]);
    assert_eq!(
        r["gateways"][0]["servers"][0],
        "HTTP 80 bookinfo.example.com"
    );
    // No PeerAuthentication in istio-system or for it: Istio's default.
    assert_eq!(r["mtls"]["mode"], "PERMISSIVE");
    assert!(r["mtls"]["policies"].as_array().unwrap().is_empty());
}

#[test]
fn service_lists_its_workloads_with_their_subsets() {
    let text = ok(&[
        "describe",
        "svc",
        "reviews",
        "-n",
        "bookinfo",
        "-f",
        &testdata("bookinfo"),
        "-o",
        "yaml",
    ]);
    let r: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(r["service"]["service"]["name"], "reviews");
    assert_eq!(
        r["service"]["destinationRules"][0]["matchingSubsets"],
        serde_json::json!(["v1", "v2", "v3"])
    );
    let workloads = &r["workloads"];
    assert_eq!(
        names(workloads, "/workload/name"),
        ["reviews-v1-*", "reviews-v2-*", "reviews-v3-*"]
    );
    let subsets: Vec<&Value> = workloads
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["subsets"])
        .collect();
    assert_eq!(
        subsets,
        [
            &serde_json::json!(["reviews/v1"]),
            &serde_json::json!(["reviews/v2"]),
            &serde_json::json!(["reviews/v3"])
        ]
    );
    assert!(
        workloads
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["mtls"] == "STRICT")
    );
}

#[test]
fn service_entry_shows_its_hosts_endpoints_and_routes() {
    let config = testdata("scenarios/service-entry-external/config");
    let text = ok(&["describe", "service", "external-api.shop", "-f", &config]);
    for line in [
        "ServiceEntry: external-api.shop (",
        "   Hosts: api.external.example",
        "   Port: http 8080/HTTP targets workload port 8080",
        "VirtualService: VirtualService shop/external-api (hosts api.external.example; gateways mesh)",
        "   http[0]: when * -> api.external.example:8080",
        "Endpoints: 127.10.11.30",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn mtls_follows_workload_then_namespace_then_root_policy() {
    let dir = testdata("describe");
    // Workload policy DISABLE over the namespace's UNSET and the mesh's STRICT; port 8443 is
    // STRICT at port level, 9090 (UNSET) inherits the workload's mode.
    let api = json(&["describe", "workload", "api-1", "-f", &dir]);
    assert_eq!(api["mtls"]["mode"], "DISABLE");
    assert_eq!(
        api["mtls"]["ports"],
        serde_json::json!({"8443": "STRICT", "9090": "DISABLE"})
    );
    let levels: Vec<(String, String)> = api["mtls"]["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["level"].as_str().unwrap().to_owned(),
                p["policy"]["namespace"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("workload".to_owned(), "shop".to_owned()),
            ("namespace".to_owned(), "shop".to_owned()),
            ("mesh".to_owned(), "istio-system".to_owned())
        ]
    );
    // The namespace's UNSET inherits the root namespace's STRICT.
    let web = json(&["describe", "workload", "web.shop", "-f", &dir]);
    assert_eq!(web["mtls"]["mode"], "STRICT");
    // A namespace policy beats the root namespace's; of two, the older (by
    // creationTimestamp, though loaded second).
    let old = json(&["describe", "workload", "old", "-f", &dir]);
    assert_eq!(old["workload"]["namespace"], "legacy");
    assert_eq!(old["mtls"]["mode"], "PERMISSIVE");
    assert_eq!(old["mtls"]["policies"][0]["policy"]["name"], "permissive");
}

#[test]
fn workload_entry_gets_its_sidecar_policies_routes_and_warnings() {
    let dir = testdata("describe");
    let api = json(&["describe", "workload", "api-1", "-f", &dir]);
    assert_eq!(api["workload"]["kind"], "WorkloadEntry");
    assert_eq!(api["address"], "127.0.0.21");
    assert_eq!(api["serviceAccount"], "api");
    // The selecting Sidecar over the namespace default; the web workload gets the default.
    assert_eq!(api["sidecar"]["name"], "api");
    let web = json(&["describe", "workload", "web", "-f", &dir]);
    assert_eq!(web["sidecar"]["name"], "default");
    // Mesh-wide and workload policies; web gets only the mesh-wide one.
    let authz: Vec<(String, String, String)> = api["authorizationPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["policy"]["name"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
                a["scope"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        authz,
        [
            ("deny-debug".into(), "DENY".into(), "mesh".into()),
            ("api-readers".into(), "ALLOW".into(), "workload".into())
        ]
    );
    assert_eq!(
        names(&web["authorizationPolicies"], "/policy/name"),
        ["deny-debug"]
    );
    // Service port 8080 targets 9090; the DR's only subset matches.
    let svc = &api["services"][0];
    assert_eq!(svc["ports"][0]["targetPort"], "9090");
    assert_eq!(svc["destinationRules"][0]["matchingSubsets"][0], "v1");
    assert_eq!(
        svc["destinationRules"][0]["trafficPolicy"][0],
        "TLS ISTIO_MUTUAL"
    );
    let routes = &svc["virtualServices"][0]["routes"];
    assert_eq!(routes[0]["route"], "http[0] canary");
    assert_eq!(routes[0]["when"], "uri=/v2* AND method=POST");
    assert_eq!(routes[0]["reachesWorkload"], false);
    assert_eq!(routes[1]["reachesWorkload"], true);
    // The analyzer's messages about those objects, with their codes.
    let codes: Vec<(String, String)> = api["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["code"].as_str().unwrap().to_owned(),
                w["origin"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        codes.contains(&("IST0101".into(), "VirtualService shop/api".into())),
        "{codes:?}"
    );
    // Nothing about other namespaces' objects.
    assert!(
        codes.iter().all(|(_, o)| !o.contains("legacy")),
        "{codes:?}"
    );
    let text = ok(&["describe", "workload", "api-1", "-f", &dir]);
    assert!(
        text.contains("Error [IST0101] (VirtualService shop/api "),
        "{text}"
    );
}

#[test]
fn unknown_and_ambiguous_names_and_bad_input_fail_clearly() {
    let bookinfo = testdata("bookinfo");
    let o = meshctl(&["describe", "pod", "nope", "-f", &bookinfo]);
    assert_eq!(o.status.code(), Some(64));
    assert!(o.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no pod or workload \"nope\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // reviews-v1-*, reviews-v2-*, reviews-v3-* all start with "reviews-".
    let o = meshctl(&["describe", "pod", "reviews", "-f", &bookinfo]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ambiguous"));
    let o = meshctl(&[
        "describe",
        "svc",
        "reviews",
        "-n",
        "elsewhere",
        "-f",
        &bookinfo,
    ]);
    assert_eq!(o.status.code(), Some(64));
    let o = meshctl(&["describe", "svc", "reviews", "-f", &testdata("no-such-dir")]);
    assert_eq!(o.status.code(), Some(65));
    // No meshd at that address.
    let o = meshctl(&[
        "describe",
        "svc",
        "reviews",
        "--controlplane",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is meshd running?"));
}

/// A one-shot stand-in for meshd's debug API, answering `/debug/resourcesz` with the
/// objects of a YAML file the way meshd does (`{"version", "resources": [{origin, object}]}`).
fn serve_resources(objects: Vec<(String, Value)>) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let resources: Vec<Value> = objects
            .into_iter()
            .map(|(origin, object)| serde_json::json!({"origin": origin, "object": object}))
            .collect();
        let body = serde_json::json!({"version": 1, "resources": resources}).to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        String::from_utf8_lossy(&req).into_owned()
    });
    (url, handle)
}

#[test]
fn controlplane_objects_describe_like_files() {
    let file = testdata("describe/mesh.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let objects: Vec<(String, Value)> = text
        .split("\n---\n")
        .enumerate()
        .filter_map(|(i, doc)| {
            let v: Value = serde_saphyr::from_str(doc).ok()?;
            v.get("kind")?;
            Some((format!("/etc/mesh/mesh.yaml:{}", i * 10 + 1), v))
        })
        .collect();
    assert!(objects.len() > 10);
    let (url, server) = serve_resources(objects);
    let r = json(&["describe", "workload", "api-1", "--controlplane", &url]);
    let request = server.join().unwrap();
    assert!(
        request.starts_with("GET /debug/resourcesz HTTP/1.1\r\n"),
        "{request}"
    );
    assert_eq!(r["mtls"]["mode"], "DISABLE");
    assert_eq!(r["sidecar"]["name"], "api");
    // Origins are meshd's files and object lines.
    assert!(
        r["workload"]["origin"]
            .as_str()
            .unwrap()
            .starts_with("/etc/mesh/mesh.yaml:")
    );
    assert!(r["warnings"].as_array().unwrap().iter().any(|w| {
        w["code"] == "IST0101"
            && w["reference"]
                .as_str()
                .unwrap()
                .starts_with("/etc/mesh/mesh.yaml:")
    }));
}

#[test]
fn gateway_lists_what_binds_and_why_the_rest_does_not() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [\"shop/*.example.com\"]
    tls: {mode: SIMPLE, credentialName: web-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: store, namespace: shop}
spec:
  hosts: [store.example.com]
  gateways: [edge/web]
  http: [{route: [{destination: {host: store}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: blog, namespace: blog}
spec:
  hosts: [blog.example.com]
  gateways: [edge/web]
  http: [{route: [{destination: {host: blog}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.example.com]
  http: [{route: [{destination: {host: cart}}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: other}
spec:
  selector: {istio: other}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [\"*\"]
";
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("describe-gateway");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gw.yaml");
    std::fs::write(&file, yaml).unwrap();
    let f = file.display().to_string();

    let text = ok(&["describe", "gateway", "web.edge", "-f", &f]);
    for line in [
        "Gateway: edge/web",
        "   Selector: istio=ingressgateway",
        "      443/HTTPS (https, TLS SIMPLE): shop/*.example.com",
        "      shop/store: binds (store.example.com on 443)",
        "      blog/blog: does not bind: its hosts [blog.example.com] match server hosts only in name: their namespace part does not admit VirtualServices of namespace blog",
        "      shop/cart: does not bind: its gateways are empty, so it applies to sidecars only (mesh), not to edge/web",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
    }
    let v = json(&["describe", "gw", "web", "-n", "edge", "-f", &f]);
    assert_eq!(v["gateway"], "edge/web");
    assert_eq!(v["virtualServices"][0]["virtualService"], "shop/store");
    assert_eq!(v["virtualServices"][0]["bound"][0]["port"], 443);

    // The same name in two namespaces needs one; an unknown name is a usage error.
    for (args, says) in [
        (
            vec!["describe", "gateway", "web"],
            "several namespaces (edge, other)",
        ),
        (vec!["describe", "gateway", "nope"], "no Gateway \"nope\""),
    ] {
        let mut a = args.clone();
        a.extend(["-f", &f]);
        let o = meshctl(&a);
        assert_eq!(o.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
