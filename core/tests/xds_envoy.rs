//! Envoy accepts what the translation generates: every proxy of the sample meshes gets a
//! config that `envoy --mode validate` loads (as a static bootstrap: EDS endpoints and RDS
//! routes inlined).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use mesh_core::xds::{ProxyKind, generate};
use xds_support::*;

#[test]
fn envoy_accepts_every_local_proxy() {
    accepts_every_proxy(&["testdata/bookinfo", "core/tests/xds/local"]);
}

#[test]
fn envoy_accepts_every_kubernetes_proxy() {
    accepts_every_proxy(&["testdata/bookinfo", "core/tests/xds/kube"]);
}

fn accepts_every_proxy(paths: &[&str]) {
    let Some(envoy) = envoy_bin() else { return };
    let snap = snapshot(paths);
    let mut failures = Vec::new();
    let mut checked = 0;
    for w in &snap.registry.workloads {
        let kind = if w.labels.contains_key("istio") {
            ProxyKind::Gateway
        } else {
            ProxyKind::Sidecar
        };
        let p = proxy(&snap, kind, &w.namespace, &w.name);
        let cfg = generate(&snap, &p);
        checked += 1;
        if let Err(e) = envoy_validate(&envoy, &cfg, &p.id) {
            failures.push(format!("{}:\n{e}", p.id));
        }
    }
    assert!(checked >= 5, "only {checked} proxies");
    assert!(
        failures.is_empty(),
        "Envoy rejected:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn validation_catches_bad_config() {
    let Some(envoy) = envoy_bin() else { return };
    let snap = snapshot(&["testdata/bookinfo", "core/tests/xds/local"]);
    let p = proxy(&snap, ProxyKind::Sidecar, "bookinfo", "productpage-v1");
    let mut cfg = generate(&snap, &p);
    let rc = cfg
        .routes
        .iter_mut()
        .find(|r| r.name == "15001")
        .expect("15001");
    let d = rc.virtual_hosts[0].domains[0].clone();
    rc.virtual_hosts[1].domains.push(d);
    let err = envoy_validate(&envoy, &cfg, "negative").expect_err("duplicate domain");
    assert!(err.contains("domain"), "{err}");
}
