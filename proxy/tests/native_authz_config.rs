//! The native engine takes every authorization config meshd writes: the fixture
//! `core/tests/xds/authz` uses every AuthorizationPolicy field and condition key and a
//! RequestAuthentication (inline JWKS and a `jwksUri`); each local-mode listener meshd
//! generates from it (sidecar inbound and outbound, gateway HTTP and TCP servers) and every
//! cluster (the `jwksUri` one included) converts without a NACK, and the RBAC and jwt_authn
//! filters are there to enforce.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use mesh_core::analysis::{MeshConfig, Store};
use mesh_core::xds::{ProxyInfo, ProxyKind, Snapshot, generate};
use mesh_proxy::native::cluster::ClusterSpec;
use mesh_proxy::native::config::{HttpAuthz, ListenerKind, ListenerSpec};

fn snapshot() -> Snapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let loaded = mesh_core::source::load_paths(&[root.join("core/tests/xds/authz")], true);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default())
}

fn proxy(snap: &Snapshot, kind: ProxyKind, ns: &str, name: &str) -> ProxyInfo {
    let w = snap.registry.workload(ns, name).unwrap();
    let id = ProxyInfo::node_id(kind, w.address.parse().unwrap(), name, ns);
    let mut p = ProxyInfo::from_node_id(&id).unwrap();
    p.labels = w.labels.clone();
    p.service_account = w.service_account.clone();
    p
}

/// Converts every listener; returns (jwt filters, HTTP RBAC filters, network RBAC filters).
fn convert_all(snap: &Snapshot, p: &ProxyInfo) -> (usize, usize, usize) {
    let cfg = generate(snap, p);
    assert!(!cfg.listeners.is_empty());
    // The clusters too (a jwksUri adds one).
    for c in &cfg.clusters {
        ClusterSpec::try_from(c)
            .unwrap_or_else(|e| panic!("the native engine refuses meshd's cluster: {e}"));
    }
    let (mut jwt, mut http, mut tcp) = (0, 0, 0);
    for l in &cfg.listeners {
        let spec = ListenerSpec::try_from(l)
            .unwrap_or_else(|e| panic!("the native engine refuses meshd's listener: {e}"));
        match &spec.kind {
            ListenerKind::Http(h) => {
                for f in &h.authz {
                    match f {
                        HttpAuthz::Jwt(_) => jwt += 1,
                        HttpAuthz::Rbac(_) => http += 1,
                    }
                }
            }
            ListenerKind::Tcp(t) => tcp += t.rbac.len(),
        }
    }
    (jwt, http, tcp)
}

#[test]
fn every_authorization_config_meshd_writes_converts() {
    let snap = snapshot();
    // catalog: jwt_authn and DENY, ALLOW, AUDIT on the HTTP port; DENY, ALLOW, AUDIT on TCP.
    let (jwt, http, tcp) = convert_all(
        &snap,
        &proxy(&snap, ProxyKind::Sidecar, "shop", "catalog-local"),
    );
    assert_eq!((jwt, http, tcp), (1, 3, 3));
    let cfg = generate(
        &snap,
        &proxy(&snap, ProxyKind::Sidecar, "shop", "catalog-local"),
    );
    assert!(
        cfg.clusters
            .iter()
            .any(|c| c.name == "outbound|8443||localhost"),
        "the jwksUri cluster"
    );
    // The gateway: its ALLOW and the mesh-wide DENY, on HTTP and TCP servers.
    let (jwt, http, tcp) = convert_all(
        &snap,
        &proxy(&snap, ProxyKind::Gateway, "istio-system", "ingressgateway"),
    );
    assert_eq!(jwt, 0);
    assert!(http >= 2 && tcp >= 2, "http {http}, tcp {tcp}");
    // A workload of another namespace: the mesh-wide DENY and its namespace's
    // allow-nothing ALLOW.
    let (jwt, http, _) = convert_all(&snap, &proxy(&snap, ProxyKind::Sidecar, "other", "plain"));
    assert_eq!((jwt, http), (0, 2));
}
