//! The shared translation ([`Cache`]) gives every proxy exactly what [`generate`] gives it,
//! and shares what proxies have in common, no more.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use std::sync::Arc;

use mesh_core::xds::cache::{Cache, EncodedResource, ResourceKind, encode};
use mesh_core::xds::{ProxyInfo, ProxyKind, Snapshot, generate};
use xds_support::*;

/// Asserts that the cache's config for `proxy` is `generate`'s, encoded, resource by
/// resource in order.
fn assert_same(cache: &Cache, snap: &Snapshot, proxy: &ProxyInfo) {
    let expected = encode(&generate(snap, proxy));
    let cached = cache.generate(snap, proxy);
    for kind in ResourceKind::ALL {
        let want: Vec<&EncodedResource> = expected.list(kind).iter().collect();
        let got: Vec<&EncodedResource> = cached.iter(kind).collect();
        let names = |l: &[&EncodedResource]| l.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&got),
            names(&want),
            "{kind:?} names differ for {}",
            proxy.id
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g == w,
                "{kind:?} {} differs for {} (cached {} bytes, generated {} bytes)",
                g.name,
                proxy.id,
                g.value.len(),
                w.value.len()
            );
        }
        assert_eq!(cached.len(kind), want.len());
        for w in &want {
            assert_eq!(cached.get(kind, &w.name).map(|r| &r.name), Some(&w.name));
        }
    }
}

/// Every workload of the snapshot as a sidecar and as a gateway, in local and Kubernetes
/// mode, with labels from the node metadata, from the registry, and changed.
fn variants(snap: &Snapshot) -> Vec<ProxyInfo> {
    let mut out = Vec::new();
    for w in &snap.registry.workloads {
        for kind in [ProxyKind::Sidecar, ProxyKind::Gateway] {
            let p = proxy(snap, kind, &w.namespace, &w.name);
            let mut kube = p.clone();
            kube.local_mode = false;
            let mut bare = p.clone();
            bare.labels.clear();
            let mut relabelled = p.clone();
            relabelled.labels.insert("version".into(), "v9".into());
            relabelled.labels.insert("app".into(), "web".into());
            out.extend([p, kube, bare, relabelled]);
        }
    }
    out
}

fn check_all(snap: &Snapshot) -> (Cache, usize) {
    let cache = Cache::new();
    let proxies = variants(snap);
    assert!(!proxies.is_empty());
    // Twice: the second round is served from the cache for every key.
    for p in proxies.iter().chain(&proxies) {
        assert_same(&cache, snap, p);
    }
    (cache, proxies.len())
}

#[test]
fn sample_meshes_and_scenarios_match_generate() {
    let mut meshes: Vec<Vec<String>> = vec![
        vec!["testdata/bookinfo".into(), "core/tests/xds/local".into()],
        vec!["testdata/bookinfo".into(), "core/tests/xds/kube".into()],
    ];
    let scenarios = repo_root().join("testdata/scenarios");
    let mut dirs: Vec<_> = std::fs::read_dir(&scenarios)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config").is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 15, "{dirs:?}");
    for d in dirs {
        let rel = d.join("config");
        let rel = rel.strip_prefix(repo_root()).unwrap();
        meshes.push(vec![rel.to_string_lossy().into_owned()]);
    }
    for paths in &meshes {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let snap = snapshot(&paths);
        let (cache, proxies) = check_all(&snap);
        // Sidecars share: fewer outbound parts than sidecar variants.
        assert!(
            cache.len() < proxies / 2,
            "{paths:?}: {} parts for {proxies} proxies",
            cache.len()
        );
    }
}

/// Two namespaces; a VirtualService with `sourceLabels`, a DestinationRule with a
/// `workloadSelector`, a Sidecar selecting some workloads, one for a whole namespace.
const MESH: &str = r"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: a}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: b}
spec:
  selector: {app: db}
  ports:
  - {name: tcp, port: 5432}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v1, namespace: a}
spec: {address: 127.0.1.1, labels: {app: api, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v2, namespace: a}
spec: {address: 127.0.1.2, labels: {app: api, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: a}
spec: {address: 127.0.1.3, labels: {app: web, track: stable}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-2, namespace: a}
spec: {address: 127.0.1.4, labels: {app: web, track: canary}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-3, namespace: a}
spec: {address: 127.0.1.5, labels: {app: web, track: stable}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-1, namespace: b}
spec: {address: 127.0.2.1, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: db-2, namespace: b}
spec: {address: 127.0.2.2, labels: {app: db}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: b}
spec: {address: 127.0.2.3, labels: {app: client, scoped: 'yes'}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: a}
spec:
  hosts: [api]
  http:
  - match:
    - sourceLabels: {track: canary}
    route:
    - destination: {host: api, subset: v2}
  - route:
    - destination: {host: api, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: b}
spec:
  hosts: [db.b.svc.cluster.local]
  tcp:
  - match:
    - sourceLabels: {app: client}
    route:
    - destination: {host: db.b.svc.cluster.local, port: {number: 5432}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: a}
spec:
  host: api
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api-stable, namespace: a}
spec:
  host: api
  workloadSelector:
    matchLabels: {track: stable}
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoped, namespace: b}
spec:
  workloadSelector:
    labels: {scoped: 'yes'}
  egress:
  - hosts: [./*]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
spec:
  egress:
  - hosts: ['*/*']
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
";

#[test]
fn selectors_split_keys_and_nothing_else_does() {
    let snap = snapshot_of(MESH);
    assert!(snap.rejected.is_empty(), "{:?}", snap.rejected);
    let (cache, _) = check_all(&snap);
    assert!(cache.len() > 4, "{} parts", cache.len());

    let sidecar = |ns: &str, name: &str| proxy(&snap, ProxyKind::Sidecar, ns, name);
    let cache = Cache::new();
    let shared = |p: &ProxyInfo| cache.generate(&snap, p).shared;
    // Same namespace, same matching selectors: one part, whatever the address or name.
    let web1 = shared(&sidecar("a", "web-1"));
    assert!(Arc::ptr_eq(&web1, &shared(&sidecar("a", "web-3"))));
    assert!(Arc::ptr_eq(
        &shared(&sidecar("b", "db-1")),
        &shared(&sidecar("b", "db-2"))
    ));
    // A label no selector looks at does not split.
    let mut extra = sidecar("a", "web-1");
    extra.labels.insert("unrelated".into(), "x".into());
    assert!(Arc::ptr_eq(&web1, &shared(&extra)));
    // sourceLabels (track: canary vs stable, and the DestinationRule's workloadSelector).
    let web2 = shared(&sidecar("a", "web-2"));
    assert!(!Arc::ptr_eq(&web1, &web2));
    assert_ne!(*web1, *web2);
    // A Sidecar selecting one workload of the namespace.
    let client = shared(&sidecar("b", "client"));
    assert!(!Arc::ptr_eq(&client, &shared(&sidecar("b", "db-1"))));
    // Another namespace, and Kubernetes mode.
    assert!(!Arc::ptr_eq(&web1, &shared(&sidecar("b", "db-1"))));
    let mut kube = sidecar("a", "web-1");
    kube.local_mode = false;
    assert!(!Arc::ptr_eq(&web1, &shared(&kube)));
    // Gateways share nothing.
    let gw = cache.generate(&snap, &proxy(&snap, ProxyKind::Gateway, "a", "web-1"));
    assert_eq!(gw.shared.size(), (0, 0));
    assert_eq!(cache.len(), 5);
    // The shared part is most of a sidecar's config; its own part is the inbound side.
    let cfg = cache.generate(&snap, &sidecar("a", "web-1"));
    assert!(cfg.shared.size().1 > cfg.own.size().1);
    let own: Vec<&str> = cfg
        .own
        .list(ResourceKind::Listener)
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(own, ["127.0.1.3_80", "virtualOutbound"]);
}
