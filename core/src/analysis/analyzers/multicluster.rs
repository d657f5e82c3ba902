//! Analyzers of Istio's `multicluster` package: the mesh networks configuration
//! (MeshNetworks) of a multi-cluster mesh, and Services that exist in several clusters with
//! definitions that disagree.
//!
//! MeshNetworks names service registries in `fromRegistry`; a registry is known when it is
//! one of Istio's own (`Kubernetes`, `External`, `Mock`, compared exactly as Istio does) or a
//! remote cluster that a Secret labelled `istio/multiCluster: "true"` gives credentials for
//! (one cluster per key of the Secret's data).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::store::node_from_json;
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Origin, Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "multicluster.MeshNetworksAnalyzer",
        description: "Check the validity of MeshNetworks in the cluster",
        messages: &[&catalog::UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY],
        run: analyze_mesh_networks,
    },
    AnalyzerDef {
        name: "multicluster.ServiceAnalyzer",
        description: "Check the validity of services in the multi-cluster environment",
        messages: &[&catalog::MULTI_CLUSTER_INCONSISTENT_SERVICE],
        run: analyze_multicluster_services,
    },
];

/// The registries Istio itself provides.
const BUILTIN_REGISTRIES: &[&str] = &["Mock", "Kubernetes", "External"];
/// The label that marks a Secret holding a remote cluster's credentials.
const MULTICLUSTER_SECRET_LABEL: &str = "istio/multiCluster";
/// Where Istio keeps the mesh networks configuration, and so how messages name it.
const MESH_NETWORKS_NAMESPACE: &str = "istio-system";
const MESH_NETWORKS_NAME: &str = "meshnetworks";
/// The file name given to the mesh networks object in messages (it is not read as an object,
/// so it has no file and line of its own).
const MESH_NETWORKS_ORIGIN: &str = "(mesh networks)";

fn analyze_mesh_networks(ctx: &mut Context<'_>) {
    let Some(networks) = ctx.mesh.networks.as_ref() else {
        return;
    };
    let mut known: BTreeSet<&str> = BTreeSet::from_iter(BUILTIN_REGISTRIES.iter().copied());
    for secret in ctx.store.of(groups::CORE, "Secret") {
        if secret
            .labels
            .get(MULTICLUSTER_SECRET_LABEL)
            .map(String::as_str)
            != Some("true")
        {
            continue;
        }
        // `stringData` is folded into `data` by the API server; files may carry either.
        for field in ["data", "stringData"] {
            if let Some(keys) = secret.json.get(field).and_then(Value::as_object) {
                known.extend(keys.keys().map(String::as_str));
            }
        }
    }

    let Some(by_name) = networks.get("networks").and_then(Value::as_object) else {
        return;
    };
    let mut unknown: Vec<(String, &str, &str)> = Vec::new();
    for (network, spec) in by_name {
        for (j, endpoint) in arr_at(spec, "/endpoints").iter().enumerate() {
            let Some(registry) = str_at(endpoint, "/fromRegistry") else {
                continue;
            };
            if !known.contains(registry) {
                let path = format!("networks[\"{network}\"].endpoints[{j}].fromRegistry");
                unknown.push((path, registry, network));
            }
        }
    }
    if unknown.is_empty() {
        return;
    }
    let holder = mesh_networks_resource(networks);
    for (path, registry, network) in unknown {
        ctx.report(
            &catalog::UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY,
            &holder,
            &path,
            &[&registry, &network],
        );
    }
}

/// The MeshNetworks configuration as an object messages can name
/// (`MeshNetworks istio-system/meshnetworks`, as Istio names it).
fn mesh_networks_resource(networks: &Value) -> Resource {
    Resource {
        api_version: "mesh.istio.io/v1alpha1".into(),
        group: "mesh.istio.io".into(),
        version: "v1alpha1".into(),
        kind: "MeshNetworks".into(),
        name: MESH_NETWORKS_NAME.into(),
        namespace: Some(MESH_NETWORKS_NAMESPACE.into()),
        namespace_given: true,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        origin: Origin {
            file: Arc::from(MESH_NETWORKS_ORIGIN),
            line: 0,
        },
        node: Arc::new(node_from_json(networks)),
        json: Arc::new(networks.clone()),
    }
}

/// Services of the same namespace and name that differ between clusters.
fn analyze_multicluster_services(ctx: &mut Context<'_>) {
    // (namespace, name) → cluster → Service.
    let mut copies: BTreeMap<(&str, &str), BTreeMap<&str, &Resource>> = BTreeMap::new();
    for service in ctx.store.of(groups::CORE, "Service") {
        let Some(cluster) = cluster_of(service) else {
            continue;
        };
        copies
            .entry((service.ns(), service.name.as_str()))
            .or_default()
            .insert(cluster, service);
    }
    for ((namespace, name), by_cluster) in copies {
        if by_cluster.len() < 2 {
            continue;
        }
        let Some(found) = inconsistencies(&by_cluster) else {
            continue;
        };
        let Some(first) = by_cluster.values().next() else {
            continue;
        };
        let clusters = found.clusters.into_iter().collect::<Vec<_>>().join(", ");
        let reasons = found.reasons.into_iter().collect::<Vec<_>>().join("; ");
        ctx.report(
            &catalog::MULTI_CLUSTER_INCONSISTENT_SERVICE,
            first,
            "spec",
            &[&name, &namespace, &clusters, &reasons],
        );
    }
}

/// The cluster an object was read from.
///
/// The object model does not record clusters yet: everything under analysis comes from one
/// cluster or one set of files, and the store keeps a single object per kind, namespace and
/// name. So no object has a known cluster and there is nothing to compare until the model
/// records one.
fn cluster_of(_res: &Resource) -> Option<&str> {
    None
}

/// Which clusters disagree about a Service, and how.
#[derive(Debug, Default, PartialEq, Eq)]
struct Inconsistencies<'a> {
    clusters: BTreeSet<&'a str>,
    reasons: BTreeSet<&'static str>,
}

/// Compares each cluster's copy of a Service with the first cluster's (in cluster order):
/// headless in some clusters but not others, a different type, or different ports.
fn inconsistencies<'a>(by_cluster: &BTreeMap<&'a str, &Resource>) -> Option<Inconsistencies<'a>> {
    let (&first_cluster, first) = by_cluster.iter().next()?;
    let first = first.spec();
    let mut found = Inconsistencies::default();
    for (&cluster, service) in by_cluster {
        let spec = service.spec();
        if is_headless(first) != is_headless(spec) {
            found.clusters.extend(by_cluster.keys().copied());
            found
                .reasons
                .insert("service has mixed mode like headless and clusterIP");
        }
        if service_type(first) != service_type(spec) {
            found.clusters.insert(cluster);
            found.reasons.insert("service type is inconsistent");
        }
        if sorted_ports(first) != sorted_ports(spec) {
            found.clusters.insert(cluster);
            found.reasons.insert("service ports are inconsistent");
        }
    }
    if found.clusters.is_empty() {
        return None;
    }
    found.clusters.insert(first_cluster);
    Some(found)
}

fn is_headless(spec: &Value) -> bool {
    str_at(spec, "/clusterIP") == Some("None")
}

/// The Service type, `ClusterIP` when unset (the API server's default).
fn service_type(spec: &Value) -> &str {
    str_at(spec, "/type")
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP")
}

/// The ports, ordered by name, for comparison field by field.
fn sorted_ports(spec: &Value) -> Vec<&Value> {
    let mut ports: Vec<&Value> = arr_at(spec, "/ports").iter().collect();
    ports.sort_by_key(|p| str_at(p, "/name").unwrap_or(""));
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::source;

    fn load(yaml: &str) -> Vec<Resource> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.resources
    }

    fn run_networks(networks: Value, yaml: &str) -> Vec<String> {
        let store = Store::new(load(yaml));
        let mesh = MeshConfig {
            networks: Some(networks),
            ..MeshConfig::default()
        };
        let mut ctx = Context::new(&store, &mesh, "test");
        analyze_mesh_networks(&mut ctx);
        ctx.into_messages().into_iter().map(|m| m.text).collect()
    }

    #[test]
    fn remote_secrets_and_builtin_registries_are_known() {
        let networks = serde_json::json!({"networks": {
            "n1": {"endpoints": [{"fromRegistry": "Kubernetes"}, {"fromRegistry": "remote"}]},
            "n2": {"endpoints": [{"fromCidr": "10.0.0.0/8"}, {"fromRegistry": "cluster-b"}]}
        }});
        let msgs = run_networks(
            networks,
            r#"
apiVersion: v1
kind: Secret
metadata:
  name: istio-remote-secret-remote
  namespace: istio-system
  labels: {istio/multiCluster: "true"}
stringData:
  remote: kubeconfig
data:
  cluster-b: a2ViZWNvbmZpZw==
"#,
        );
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn unlabelled_secrets_do_not_name_clusters() {
        let networks = serde_json::json!({"networks": {
            "n1": {"endpoints": [{"fromRegistry": "remote"}]}
        }});
        let msgs = run_networks(
            networks,
            r#"
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: istio-system}
stringData: {remote: kubeconfig}
"#,
        );
        assert_eq!(msgs, vec!["Unknown service registry remote in network n1"]);
    }

    #[test]
    fn services_are_compared_across_clusters() {
        let services = load(
            r#"
apiVersion: v1
kind: Service
metadata: {name: a, namespace: ns}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: ns}
spec:
  type: ClusterIP
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: ns}
spec:
  clusterIP: None
  type: LoadBalancer
  ports: [{name: http, port: 80}, {name: grpc, port: 90}]
"#,
        );
        let same = BTreeMap::from([("c1", &services[0]), ("c2", &services[1])]);
        assert_eq!(inconsistencies(&same), None);

        let differ = BTreeMap::from([("c1", &services[0]), ("c2", &services[2])]);
        let found = inconsistencies(&differ);
        assert_eq!(
            found,
            Some(Inconsistencies {
                clusters: BTreeSet::from(["c1", "c2"]),
                reasons: BTreeSet::from([
                    "service has mixed mode like headless and clusterIP",
                    "service ports are inconsistent",
                    "service type is inconsistent",
                ]),
            })
        );
    }
}
