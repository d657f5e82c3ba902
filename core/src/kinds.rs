//! The kinds meshctl knows: which Istio API versions exist for each, and the defaults the
//! Kubernetes API server applies to core kinds before anyone else sees them.

use serde_json::Value;

use crate::resource::groups;

/// Istio's kinds and the API versions they are served at.
pub const ISTIO_KINDS: &[(&str, &str, &[&str])] = &[
    (
        groups::NETWORKING,
        "VirtualService",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        groups::NETWORKING,
        "DestinationRule",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        groups::NETWORKING,
        "Gateway",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        groups::NETWORKING,
        "ServiceEntry",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        groups::NETWORKING,
        "Sidecar",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        groups::NETWORKING,
        "WorkloadEntry",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (
        groups::NETWORKING,
        "WorkloadGroup",
        &["v1", "v1beta1", "v1alpha3"],
    ),
    (groups::NETWORKING, "EnvoyFilter", &["v1alpha3"]),
    (groups::NETWORKING, "ProxyConfig", &["v1beta1"]),
    (groups::SECURITY, "PeerAuthentication", &["v1", "v1beta1"]),
    (
        groups::SECURITY,
        "RequestAuthentication",
        &["v1", "v1beta1"],
    ),
    (groups::SECURITY, "AuthorizationPolicy", &["v1", "v1beta1"]),
    (groups::TELEMETRY, "Telemetry", &["v1", "v1alpha1"]),
    (groups::EXTENSIONS, "WasmPlugin", &["v1alpha1"]),
];

/// Refuses what is certainly a mistake: an unknown kind or version in one of Istio's groups.
/// Kinds of other groups are accepted as they are (clusters hold many kinds).
pub fn check_known(group: &str, version: &str, kind: &str) -> Result<(), String> {
    if !group.ends_with(".istio.io") {
        return Ok(());
    }
    let in_group: Vec<_> = ISTIO_KINDS.iter().filter(|(g, _, _)| *g == group).collect();
    if in_group.is_empty() {
        // A retired or future Istio group (config.istio.io held Mixer's kinds): kept as a
        // generic object, as istioctl keeps it, rather than refused.
        return Ok(());
    }
    match in_group.iter().find(|(_, k, _)| *k == kind) {
        None => {
            let names: Vec<&str> = in_group.iter().map(|(_, k, _)| *k).collect();
            Err(format!(
                "unknown kind {kind:?} in {group} (known: {})",
                names.join(", ")
            ))
        }
        Some((_, _, versions)) if !versions.contains(&version) => Err(format!(
            "{kind} is not served at {group}/{version} (use one of: {})",
            versions
                .iter()
                .map(|v| format!("{group}/{v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(_) => Ok(()),
    }
}

/// Applies the API server's defaults that analysis depends on: Service ports get protocol
/// TCP and targetPort = port; container ports get protocol TCP.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    if group != groups::CORE || kind != "Service" {
        if let Some(spec) = pod_spec_mut(group, kind, obj) {
            for list in ["containers", "initContainers"] {
                if let Some(Value::Array(cs)) = spec.get_mut(list) {
                    for c in cs {
                        if let Some(Value::Array(ports)) = c.get_mut("ports") {
                            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                                p.entry("protocol").or_insert_with(|| "TCP".into());
                            }
                        }
                    }
                }
            }
        }
        return;
    }
    let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") else {
        return;
    };
    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
        p.entry("protocol").or_insert_with(|| "TCP".into());
        if !p.contains_key("targetPort")
            && let Some(port) = p.get("port").cloned()
        {
            p.insert("targetPort".into(), port);
        }
    }
}

/// The pod spec inside a workload object (a Pod's spec, or the pod template of a
/// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, ReplicationController,
/// or OpenShift DeploymentConfig).
pub fn pod_spec<'a>(group: &str, kind: &str, obj: &'a Value) -> Option<&'a Value> {
    obj.pointer(pod_spec_pointer(group, kind)?)
}

fn pod_spec_mut<'a>(group: &str, kind: &str, obj: &'a mut Value) -> Option<&'a mut Value> {
    obj.pointer_mut(pod_spec_pointer(group, kind)?)
}

/// JSON pointer to the pod spec of a workload kind.
pub fn pod_spec_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some("/spec"),
        (groups::APPS, "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("", "ReplicationController")
        | ("apps.openshift.io", "DeploymentConfig")
        | (groups::BATCH, "Job") => Some("/spec/template/spec"),
        (groups::BATCH, "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// JSON pointer to the pod template's metadata of a workload kind (the Pod's own for Pods).
pub fn pod_metadata_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match pod_spec_pointer(group, kind)? {
        "/spec" => Some("/metadata"),
        "/spec/template/spec" => Some("/spec/template/metadata"),
        _ => Some("/spec/jobTemplate/spec/template/metadata"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_kinds_and_versions() {
        assert!(check_known("networking.istio.io", "v1", "VirtualService").is_ok());
        assert!(check_known("networking.istio.io", "v1", "EnvoyFilter").is_err());
        assert!(check_known("networking.istio.io", "v1alpha3", "EnvoyFilter").is_ok());
        assert!(check_known("security.istio.io", "v1", "VirtualService").is_err());
        assert!(check_known("apps", "v1", "Deployment").is_ok());
        assert!(check_known("example.com", "v1", "Widget").is_ok());
    }
}
