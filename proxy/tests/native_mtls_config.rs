//! The native engine takes the mTLS config meshd writes for proxies that announce a
//! workload certificate (`MESH_MTLS`): the `mtls-peer-authentication` scenario's config,
//! where catalog is STRICT (one TLS filter chain: no plaintext), orders PERMISSIVE (a TLS
//! and a plaintext chain behind `tls_inspector`), and the client's clusters to both are
//! ISTIO_MUTUAL with the servers' SPIFFE ids. A listener whose two chains serve different
//! filters is refused.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use mesh_core::analysis::{MeshConfig, Store};
use mesh_core::xds::{ProxyInfo, ProxyKind, Snapshot, generate};
use mesh_proxy::native::cluster::ClusterSpec;
use mesh_proxy::native::config::{ListenerKind, ListenerSpec, XfccMode};
use mesh_proxy::native::tls::SanMatch;

fn snapshot() -> Snapshot {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let loaded = mesh_core::source::load_paths(
        &[root.join("testdata/scenarios/mtls-peer-authentication/config")],
        true,
    );
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default())
}

fn proxy(snap: &Snapshot, ns: &str, name: &str) -> ProxyInfo {
    let w = snap.registry.workload(ns, name).unwrap();
    let id = ProxyInfo::node_id(ProxyKind::Sidecar, w.address.parse().unwrap(), name, ns);
    let mut p = ProxyInfo::from_node_id(&id).unwrap();
    p.labels = w.labels.clone();
    p.service_account = w.service_account.clone();
    p.mtls = true;
    p
}

/// The inbound listener on port 9080 of a workload, converted.
fn inbound(snap: &Snapshot, name: &str) -> ListenerSpec {
    let cfg = generate(snap, &proxy(snap, "shop", name));
    let l = cfg
        .listeners
        .iter()
        .find(|l| l.name.ends_with("_9080") && !l.filter_chains.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name}: no inbound 9080 listener in {:?}",
                cfg.listeners.iter().map(|l| &l.name).collect::<Vec<_>>()
            )
        });
    ListenerSpec::try_from(l).unwrap_or_else(|e| panic!("{name}: refused: {e}"))
}

#[test]
fn strict_and_permissive_inbound_listeners_convert() {
    let snap = snapshot();
    let strict = inbound(&snap, "catalog-v1");
    assert!(
        strict.tls.is_some() && !strict.plaintext,
        "STRICT: TLS only"
    );
    let ListenerKind::Http(h) = &strict.kind else {
        panic!("catalog's inbound is HTTP")
    };
    assert_eq!(h.xfcc.mode, XfccMode::AppendForward);
    assert!(h.xfcc.uri);
    assert!(!h.authz.is_empty(), "catalog's principals policy");

    let permissive = inbound(&snap, "orders-v1");
    assert!(
        permissive.tls.is_some() && permissive.plaintext,
        "PERMISSIVE: both"
    );
    assert_eq!(permissive.plain_xfcc.mode, XfccMode::Sanitize);
}

#[test]
fn the_clients_clusters_are_istio_mutual_with_the_servers_identities() {
    let snap = snapshot();
    let cfg = generate(&snap, &proxy(&snap, "shop", "client"));
    let catalog = cfg
        .clusters
        .iter()
        .find(|c| c.name == "outbound|9080||catalog.shop.svc.cluster.local")
        .unwrap();
    let spec = ClusterSpec::try_from(catalog).unwrap();
    let tls = spec.tls.expect("ISTIO_MUTUAL");
    assert_eq!(
        tls.sans,
        vec![SanMatch::Exact(
            "spiffe://cluster.local/ns/shop/sa/catalog".parse().unwrap()
        )]
    );
    assert!(
        tls.sni.contains("catalog.shop.svc.cluster.local"),
        "{}",
        tls.sni
    );
    for c in &cfg.clusters {
        ClusterSpec::try_from(c).unwrap_or_else(|e| panic!("refused: {e}"));
    }
}

#[test]
fn chains_with_different_filters_are_refused() {
    let snap = snapshot();
    let cfg = generate(&snap, &proxy(&snap, "shop", "orders-v1"));
    let mut l = cfg
        .listeners
        .iter()
        .find(|l| l.name.ends_with("_9080") && l.filter_chains.len() == 2)
        .unwrap()
        .clone();
    // The plaintext chain loses its connection manager's filters: no longer the same.
    let plain = l
        .filter_chains
        .iter_mut()
        .find(|c| c.transport_socket.is_none())
        .unwrap();
    plain.filters.clear();
    let e = ListenerSpec::try_from(&l).unwrap_err();
    assert!(e.reason.contains("differ"), "{e}");
    // Without tls_inspector the transport_protocol matches cannot be told apart.
    let mut no_inspector = cfg
        .listeners
        .iter()
        .find(|l| l.name.ends_with("_9080") && l.filter_chains.len() == 2)
        .unwrap()
        .clone();
    no_inspector.listener_filters.clear();
    let e = ListenerSpec::try_from(&no_inspector).unwrap_err();
    assert!(e.reason.contains("tls_inspector"), "{e}");
}
