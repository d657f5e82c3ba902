//! The proxies a config defines, each as the [`ProxyInfo`] meshd would build from its node
//! id and metadata.
//!
//! - Every workload of the registry (WorkloadEntries, Pods with `status.podIP`) whose address
//!   is an IP: local mode when it is a loopback address, else Kubernetes mode.
//! - Pods without an IP, including those analysis derives from Deployments and other
//!   workload controllers ([`mesh_core::analysis::Store::add_template_pods`]): Kubernetes
//!   mode, with the unspecified address `0.0.0.0` standing for the IP the cluster would give
//!   them (so they get no inbound config from endpoints: a derived Pod is nobody's endpoint).
//! - A workload some Gateway's selector matches is a gateway (`router~`), else a sidecar.
//!   Workloads annotated or labelled `sidecar.istio.io/inject: "false"` have no sidecar and
//!   are left out unless they are gateways.
//! - With `--controlplane`, the proxies connected to meshd (`/debug/syncz` node ids) are
//!   added, parsed from their node ids as meshd parses them (labels then come from the
//!   registry workload of that namespace and name).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use mesh_core::analysis::Store;
use mesh_core::analysis::json::selector_matches;
use mesh_core::resource::{Resource, groups};
use mesh_core::xds::{ProxyInfo, ProxyKind, Snapshot};

const INJECT: &str = "sidecar.istio.io/inject";

fn no_sidecar(r: &Resource) -> bool {
    r.annotations
        .get(INJECT)
        .or_else(|| r.labels.get(INJECT))
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

fn kind_for(snapshot: &Snapshot, labels: &BTreeMap<String, String>) -> ProxyKind {
    let gateway = snapshot
        .gateways
        .iter()
        .any(|g| !g.spec.selector.is_empty() && selector_matches(&g.spec.selector, labels));
    if gateway {
        ProxyKind::Gateway
    } else {
        ProxyKind::Sidecar
    }
}

/// Every proxy of one side, by node id.
pub fn defined(
    snapshot: &Snapshot,
    store: &Store,
    connected: &[String],
) -> BTreeMap<String, ProxyInfo> {
    let mut out = BTreeMap::new();
    for w in &snapshot.registry.workloads {
        let Ok(ip) = w.address.parse::<IpAddr>() else {
            continue;
        };
        let group = if w.kind == "Pod" {
            groups::CORE
        } else {
            groups::NETWORKING
        };
        let kind = kind_for(snapshot, &w.labels);
        if kind == ProxyKind::Sidecar
            && store
                .get(group, &w.kind, &w.namespace, &w.name)
                .is_some_and(no_sidecar)
        {
            continue;
        }
        let info = ProxyInfo {
            kind,
            id: ProxyInfo::node_id(kind, ip, &w.name, &w.namespace),
            ip,
            namespace: w.namespace.clone(),
            workload: w.name.clone(),
            labels: w.labels.clone(),
            service_account: w.service_account.clone(),
            local_mode: ip.is_loopback(),
            mtls: false,
        };
        out.insert(info.id.clone(), info);
    }
    for pod in store.of(groups::CORE, "Pod") {
        let phase = pod.json.pointer("/status/phase").and_then(|v| v.as_str());
        let has_ip = pod
            .json
            .pointer("/status/podIP")
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.is_empty());
        if has_ip || matches!(phase, Some("Failed" | "Succeeded")) {
            continue;
        }
        let kind = kind_for(snapshot, &pod.labels);
        if kind == ProxyKind::Sidecar && no_sidecar(pod) {
            continue;
        }
        let ip = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let ns = pod.ns().to_owned();
        let info = ProxyInfo {
            kind,
            id: ProxyInfo::node_id(kind, ip, &pod.name, &ns),
            ip,
            namespace: ns,
            workload: pod.name.clone(),
            labels: pod.labels.clone(),
            service_account: pod
                .json
                .pointer("/spec/serviceAccountName")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned(),
            local_mode: false,
            mtls: false,
        };
        out.insert(info.id.clone(), info);
    }
    for id in connected {
        if out.contains_key(id) {
            continue;
        }
        match ProxyInfo::from_node_id(id) {
            Ok(info) => {
                out.insert(id.clone(), info);
            }
            Err(e) => eprintln!("Warning: connected proxy skipped: {e}"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use mesh_core::analysis::MeshConfig;

    const MESH: &str = "\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {serviceAccountName: web-sa, containers: [{name: web, image: web}]}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: job, namespace: shop, labels: {app: job}, annotations: {sidecar.istio.io/inject: \"false\"}}\nspec: {containers: [{name: job, image: job}]}\nstatus: {podIP: 10.0.0.9}\n---\n\
apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop, labels: {app: api}}\nspec: {containers: [{name: api, image: api}]}\nstatus: {podIP: 10.0.0.7}\n---\n\
apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: gw, namespace: edge, labels: {istio: ingressgateway}}\nspec: {address: 127.31.1.5}\n---\n\
apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: db, namespace: shop}\nspec: {address: db.example.com}\n---\n\
apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: web, namespace: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]\n";

    fn proxies(connected: &[String]) -> BTreeMap<String, ProxyInfo> {
        let resources = mesh_core::source::load_bytes("m.yaml", MESH.as_bytes()).resources;
        let mut store = Store::new(resources);
        let snapshot = Snapshot::build(&store, &MeshConfig::from_json(serde_json::json!({})));
        store.add_template_pods();
        defined(&snapshot, &store, connected)
    }

    #[test]
    fn every_workload_with_a_proxy_and_how_meshd_would_see_it() {
        let p = proxies(&[]);
        let ids: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "router~127.31.1.5~gw.edge~edge.svc.cluster.local",
                "sidecar~0.0.0.0~web-*.shop~shop.svc.cluster.local",
                "sidecar~10.0.0.7~api.shop~shop.svc.cluster.local",
            ]
        );
        let gw = &p["router~127.31.1.5~gw.edge~edge.svc.cluster.local"];
        assert_eq!(gw.kind, ProxyKind::Gateway);
        assert!(gw.local_mode);
        let web = &p["sidecar~0.0.0.0~web-*.shop~shop.svc.cluster.local"];
        assert!(!web.local_mode);
        assert_eq!(web.service_account, "web-sa");
        assert_eq!(web.labels["app"], "web");
        assert!(!p["sidecar~10.0.0.7~api.shop~shop.svc.cluster.local"].local_mode);
    }

    #[test]
    fn connected_proxies_are_added_by_node_id() {
        let extra = "sidecar~127.31.1.9~tool.ops~ops.svc.cluster.local".to_owned();
        let p = proxies(&[extra.clone(), "garbage".to_owned()]);
        assert_eq!(p.len(), 4);
        assert_eq!(p[&extra].namespace, "ops");
        assert!(p[&extra].local_mode);
    }
}
