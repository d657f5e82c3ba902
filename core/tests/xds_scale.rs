//! The translation stays fast at the scale of the control-plane benchmark: 1,000 services
//! with 10 endpoints each, a DestinationRule and a VirtualService per service.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod xds_support;

use std::fmt::Write;
use std::time::Instant;

use mesh_core::xds::{ProxyKind, generate};
use xds_support::*;

#[test]
fn thousand_services() {
    let mut y = String::new();
    for s in 0..1000 {
        let ns = format!("ns{}", s % 10);
        writeln!(y, "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc{s}, namespace: {ns}}}\nspec:\n  selector: {{app: svc{s}}}\n  ports:\n  - {{name: http, port: 8080}}").unwrap();
        writeln!(y, "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc{s}, namespace: {ns}}}\nspec:\n  host: svc{s}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}").unwrap();
        writeln!(y, "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc{s}, namespace: {ns}}}\nspec:\n  hosts: [svc{s}]\n  http:\n  - route:\n    - destination: {{host: svc{s}, subset: v1}}").unwrap();
        for e in 0..10 {
            let n = s * 10 + e;
            writeln!(y, "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: svc{s}-{e}, namespace: {ns}}}\nspec:\n  address: 127.{}.{}.{}\n  labels: {{app: svc{s}, version: v1}}", 1 + n / 65536, (n / 256) % 256, n % 256).unwrap();
        }
    }
    let start = Instant::now();
    let loaded = mesh_core::source::load_bytes("scale.yaml", y.as_bytes());
    let store = mesh_core::analysis::Store::new(loaded.resources);
    let parsed = start.elapsed();
    let start = Instant::now();
    let snap = mesh_core::xds::Snapshot::build(&store, &mesh_core::analysis::MeshConfig::default());
    let built = start.elapsed();
    eprintln!("parse {parsed:?}");
    assert!(
        snap.rejected.is_empty(),
        "{:?}",
        &snap.rejected[..3.min(snap.rejected.len())]
    );
    assert_eq!(snap.registry.services.len(), 1000);
    let p = proxy(&snap, ProxyKind::Sidecar, "ns0", "svc0-0");
    let start = Instant::now();
    let cfg = generate(&snap, &p);
    let generated = start.elapsed();
    eprintln!(
        "snapshot {built:?}, one proxy {generated:?}: {} clusters",
        cfg.clusters.len()
    );
    assert_eq!(cfg.clusters.len(), 2000 + 3);
    assert_eq!(cfg.endpoints.len(), 2000);
    // Generous bounds for an unoptimised build on a shared machine.
    assert!(generated.as_secs() < 5, "one proxy took {generated:?}");
}
