//! Reading a cluster's mesh-relevant objects for `meshctl analyze --use-kube`: every Istio
//! kind meshctl reads (at its newest version; the API server converts), and the
//! Kubernetes kinds the analyzers look at. A kind the cluster does not serve (its CRD is
//! not installed) is skipped; one the user may not list is skipped with a warning.

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use mesh_core::kinds::ISTIO_KINDS;
use mesh_core::source::{Loaded, load_bytes};
use serde_json::Value as J;

/// (apiVersion, kind) of the Kubernetes kinds analysis reads.
const KUBE_KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "Pod"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("apps/v1", "Deployment"),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
    ),
];

/// Every kind read, as (apiVersion, kind).
pub fn kinds() -> Vec<(String, String)> {
    ISTIO_KINDS
        .iter()
        .filter_map(|(group, kind, versions)| {
            versions
                .first()
                .map(|v| (format!("{group}/{v}"), (*kind).to_owned()))
        })
        .chain(
            KUBE_KINDS
                .iter()
                .map(|(a, k)| ((*a).to_owned(), (*k).to_owned())),
        )
        .collect()
}

/// What was read, and what could not be.
#[derive(Debug, Default)]
pub struct Fetched {
    pub loaded: Loaded,
    /// Kinds skipped because listing them was refused or failed.
    pub warnings: Vec<String>,
    /// How many objects were read.
    pub objects: usize,
}

/// Lists every kind across all namespaces. Objects get the origin `k8s/Kind/ns/name`.
pub async fn cluster_objects(client: &Client) -> Fetched {
    let mut out = Fetched::default();
    for (api_version, kind) in kinds() {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let Ok((ar, _)) = kube::discovery::pinned_kind(client, &gvk).await else {
            // Not served: nothing of this kind exists in the cluster.
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                out.warnings.push(format!(
                    "not allowed to list {} ({}); skipped",
                    ar.plural, s.message
                ));
                continue;
            }
            Err(e) => {
                out.warnings
                    .push(format!("cannot list {}: {e}; skipped", ar.plural));
                continue;
            }
        };
        for item in list.items {
            let Ok(mut v) = serde_json::to_value(item) else {
                continue;
            };
            // List items come without apiVersion and kind.
            v["apiVersion"] = J::String(api_version.clone());
            v["kind"] = J::String(kind.clone());
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
            let name = v["metadata"]["name"].as_str().unwrap_or("?").to_owned();
            let origin = match v["metadata"]["namespace"].as_str() {
                Some(ns) => format!("k8s/{kind}/{ns}/{name}"),
                None => format!("k8s/{kind}/{name}"),
            };
            out.objects += 1;
            out.loaded
                .extend(load_bytes(&origin, v.to_string().as_bytes()));
        }
    }
    out
}
