//! Golden files of the translation: the full config of chosen proxies of the sample meshes,
//! rendered with every `Any` decoded. `UPDATE_GOLDEN=1 cargo test -p mesh-core --test
//! xds_golden` rewrites them; review the diff.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use mesh_core::xds::{ProxyKind, generate, wire};
use xds_support::*;

fn golden(paths: &[&str], kind: ProxyKind, ns: &str, workload: &str, file: &str) {
    let snap = snapshot(paths);
    let p = proxy(&snap, kind, ns, workload);
    let first = generate(&snap, &p);
    let again = generate(&snap, &p);
    assert_eq!(first, again, "generation is not deterministic");
    for (a, b) in first.routes.iter().zip(&again.routes) {
        assert_eq!(
            wire::encode_route_configuration(a),
            wire::encode_route_configuration(b),
            "route configuration {} encodes differently",
            a.name
        );
    }
    for (a, b) in first.clusters.iter().zip(&again.clusters) {
        assert_eq!(wire::encode_cluster(a), wire::encode_cluster(b));
    }
    assert_golden(file, &render(&first));
}

const LOCAL: &[&str] = &["testdata/bookinfo", "core/tests/xds/local"];
const KUBE: &[&str] = &["testdata/bookinfo", "core/tests/xds/kube"];

#[test]
fn bookinfo_kube_productpage() {
    golden(
        KUBE,
        ProxyKind::Sidecar,
        "bookinfo",
        "productpage-v1-6b746f74dc-abcde",
        "bookinfo-kube-productpage.txt",
    );
}

#[test]
fn bookinfo_kube_ingress_gateway() {
    golden(
        KUBE,
        ProxyKind::Gateway,
        "istio-system",
        "istio-ingressgateway-5d8f9c7b6-abcde",
        "bookinfo-kube-ingressgateway.txt",
    );
}

#[test]
fn bookinfo_local_productpage() {
    golden(
        LOCAL,
        ProxyKind::Sidecar,
        "bookinfo",
        "productpage-v1",
        "bookinfo-local-productpage.txt",
    );
}

#[test]
fn bookinfo_local_reviews_v2() {
    golden(
        LOCAL,
        ProxyKind::Sidecar,
        "bookinfo",
        "reviews-v2",
        "bookinfo-local-reviews-v2.txt",
    );
}

#[test]
fn bookinfo_local_ingress_gateway() {
    golden(
        LOCAL,
        ProxyKind::Gateway,
        "istio-system",
        "ingressgateway",
        "bookinfo-local-ingressgateway.txt",
    );
}

#[test]
fn shop_local_frontend() {
    golden(
        LOCAL,
        ProxyKind::Sidecar,
        "shop",
        "frontend",
        "shop-local-frontend.txt",
    );
}

#[test]
fn shop_local_catalog() {
    golden(
        LOCAL,
        ProxyKind::Sidecar,
        "shop",
        "catalog-v1",
        "shop-local-catalog-v1.txt",
    );
}

#[test]
fn shop_local_db() {
    golden(LOCAL, ProxyKind::Sidecar, "shop", "db", "shop-local-db.txt");
}

#[test]
fn local_sample_rejects_nothing_unexpected() {
    let snap = snapshot(LOCAL);
    let text: Vec<String> = snap
        .rejected
        .iter()
        .map(|r| {
            let root = format!("{}/", repo_root().display());
            let origin = r.origin.trim_start_matches(&root);
            format!("{} ({origin}): {}", r.object, r.reason)
        })
        .collect();
    assert_golden("local-rejected.txt", &(text.join("\n") + "\n"));
}
