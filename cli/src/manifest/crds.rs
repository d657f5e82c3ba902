//! CustomResourceDefinitions for every Istio kind meshctl reads (`mesh_core::kinds`).
//!
//! Each served version carries the OpenAPI v3 schema of its kind's `spec`, generated from
//! mesh-core's wire model (`mesh_core::schema`), so the API server types, enumerates and
//! prunes fields exactly as meshctl parses them. Kinds mesh-core does not model
//! (ProxyConfig, Telemetry, WasmPlugin) keep a `spec` whose fields the API server keeps as
//! they are (`x-kubernetes-preserve-unknown-fields`), and so does every `status`. Checks the
//! schema cannot express (cross-field rules, host names, regexes) are the validation
//! webhook's job (meshd runs mesh-core's validator there), so a cluster and `meshctl
//! validate` agree.

use mesh_core::kinds::ISTIO_KINDS;
use mesh_core::schema;
use serde_json::{Value as J, json};

use super::values::Values;

/// The plural resource name of an Istio kind (`AuthorizationPolicy` -> `authorizationpolicies`).
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        // A consonant before the y: policy -> policies; a vowel: gateway -> gateways.
        Some(stem) if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) => format!("{stem}ies"),
        _ => format!("{lower}s"),
    }
}

/// Istio's short names, so `kubectl get vs` works as users expect.
fn short_names(kind: &str) -> &'static [&'static str] {
    match kind {
        "VirtualService" => &["vs"],
        "DestinationRule" => &["dr"],
        "Gateway" => &["gw"],
        "ServiceEntry" => &["se"],
        "WorkloadEntry" => &["we"],
        "WorkloadGroup" => &["wg"],
        "PeerAuthentication" => &["pa"],
        "RequestAuthentication" => &["ra"],
        "AuthorizationPolicy" => &["ap"],
        _ => &[],
    }
}

/// `kubectl get` columns, as Istio's CRDs print them (Age last).
fn printer_columns(kind: &str) -> Vec<J> {
    let col = |name: &str, ty: &str, path: &str, description: &str| json!({"name": name, "type": ty, "jsonPath": path, "description": description});
    let mut cols = match kind {
        "VirtualService" => vec![
            col(
                "Gateways",
                "string",
                ".spec.gateways",
                "The names of gateways and sidecars that should apply these routes",
            ),
            col(
                "Hosts",
                "string",
                ".spec.hosts",
                "The destination hosts to which traffic is being sent",
            ),
        ],
        "DestinationRule" => vec![col(
            "Host",
            "string",
            ".spec.host",
            "The name of a service from the service registry",
        )],
        "ServiceEntry" => vec![
            col(
                "Hosts",
                "string",
                ".spec.hosts",
                "The hosts associated with the ServiceEntry",
            ),
            col(
                "Location",
                "string",
                ".spec.location",
                "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)",
            ),
            col(
                "Resolution",
                "string",
                ".spec.resolution",
                "Service resolution mode for the hosts (NONE, STATIC, or DNS)",
            ),
        ],
        "PeerAuthentication" => vec![col(
            "Mode",
            "string",
            ".spec.mtls.mode",
            "Defines the mTLS mode used for peer authentication.",
        )],
        "AuthorizationPolicy" => vec![col(
            "Action",
            "string",
            ".spec.action",
            "The operation to take.",
        )],
        _ => Vec::new(),
    };
    cols.push(col(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ));
    cols
}

/// The version the API server stores: Istio stores its oldest served version, which is
/// the last one `ISTIO_KINDS` lists.
fn storage_version<'a>(versions: &[&'a str]) -> Option<&'a str> {
    versions.last().copied()
}

/// One CRD per Istio kind, in `ISTIO_KINDS` order.
pub fn crds(values: &Values) -> Vec<J> {
    ISTIO_KINDS
        .iter()
        .map(|(group, kind, versions)| crd(values, group, kind, versions))
        .collect()
}

fn crd(values: &Values, group: &str, kind: &str, versions: &[&str]) -> J {
    let plural = plural(kind);
    let group_category = format!("{}-istio-io", group.trim_end_matches(".istio.io"));
    let storage = storage_version(versions);
    let schema = json!({ "openAPIV3Schema": schema::crd_schema(group, kind) });
    let versions: Vec<J> = versions
        .iter()
        .map(|v| {
            json!({
                "name": v,
                "served": true,
                "storage": Some(*v) == storage,
                "schema": schema,
                "subresources": {"status": {}},
                "additionalPrinterColumns": printer_columns(kind),
            })
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{group}"),
            "labels": super::objects::labels(values, "crds"),
        },
        "spec": {
            "group": group,
            "names": {
                "categories": ["istio-io", group_category],
                "kind": kind,
                "listKind": format!("{kind}List"),
                "plural": plural,
                "shortNames": short_names(kind),
                "singular": kind.to_ascii_lowercase(),
            },
            "scope": "Namespaced",
            "versions": versions,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::values::Profile;

    #[test]
    fn modelled_kinds_carry_typed_specs_and_others_keep_theirs() {
        for crd in crds(&Values::for_profile(Profile::Minimal)) {
            let (group, kind) = (
                crd["spec"]["group"].as_str().unwrap(),
                crd["spec"]["names"]["kind"].as_str().unwrap(),
            );
            for v in crd["spec"]["versions"].as_array().unwrap() {
                let root = &v["schema"]["openAPIV3Schema"];
                let spec = &root["properties"]["spec"];
                let modelled = mesh_core::validate::is_validated_kind(group, kind);
                assert_eq!(spec["properties"].is_object(), modelled, "{kind}");
                assert_eq!(
                    spec["x-kubernetes-preserve-unknown-fields"] == true,
                    !modelled,
                    "{kind}"
                );
                assert_eq!(
                    root["properties"]["status"]["x-kubernetes-preserve-unknown-fields"],
                    true
                );
            }
        }
    }

    #[test]
    fn plurals_follow_kubernetes_rules() {
        assert_eq!(plural("AuthorizationPolicy"), "authorizationpolicies");
        assert_eq!(plural("VirtualService"), "virtualservices");
        assert_eq!(plural("Gateway"), "gateways");
        assert_eq!(plural("Telemetry"), "telemetries");
    }

    #[test]
    fn every_kind_has_one_storage_version_and_all_its_versions_served() {
        let all = crds(&Values::for_profile(Profile::Minimal));
        assert_eq!(all.len(), ISTIO_KINDS.len());
        for (crd, (_, kind, versions)) in all.iter().zip(ISTIO_KINDS) {
            let served: Vec<&str> = crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap())
                .collect();
            assert_eq!(&served, versions, "{kind}");
            let stored = crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|v| v["storage"] == true)
                .count();
            assert_eq!(stored, 1, "{kind}");
        }
        let vs = &all[0];
        assert_eq!(
            vs["metadata"]["name"],
            "virtualservices.networking.istio.io"
        );
        assert_eq!(vs["spec"]["versions"][2]["name"], "v1alpha3");
        assert_eq!(vs["spec"]["versions"][2]["storage"], true);
    }
}
