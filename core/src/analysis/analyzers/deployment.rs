//! The analyzers of Istio's `deployment` package:
//!
//! - `deployment.ApplicationUIDAnalyzer` reports Pods and Deployments whose application
//!   containers run as UID 1337, the user ID reserved for the sidecar proxy;
//! - `deployment.ServiceAssociationAnalyzer` reports mesh Deployments selected by several
//!   Services that use the same port with different protocols, or the same targetPort
//!   behind different ports.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::analysis::common::GoList;
use crate::analysis::json::{arr_at, string_map_at, u64_at};
use crate::analysis::store::is_derived;
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

use super::annotations::{SIDECAR_INJECT, in_ignored_namespace};

/// The user ID the sidecar proxy runs as.
const PROXY_UID: u64 = 1337;

/// Containers that are Istio's own and may run as the proxy UID.
const ISTIO_CONTAINERS: &[&str] = &["istio-proxy", "istio-operator"];

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "deployment.ApplicationUIDAnalyzer",
        description: "Checks invalid application UID",
        messages: &[&catalog::INVALID_APPLICATION_UID],
        run: analyze_application_uid,
    },
    AnalyzerDef {
        name: "deployment.ServiceAssociationAnalyzer",
        description: "Checks association between services and pods",
        messages: &[
            &catalog::DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
            &catalog::DEPLOYMENT_CONFLICTING_PORTS,
        ],
        run: analyze_service_association,
    },
];

/// Istio's own control-plane objects (labelled `istio` or `release: istio`).
fn is_istio_control_plane(r: &Resource) -> bool {
    r.labels.contains_key("istio") || r.labels.get("release").is_some_and(|v| v == "istio")
}

fn analyze_application_uid(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let pods = store.of(groups::CORE, "Pod").filter(|p| !is_derived(p));
    let workloads = pods.map(|r| (r, "spec")).chain(
        store
            .of(groups::APPS, "Deployment")
            .map(|r| (r, "spec.template.spec")),
    );
    for (r, spec_path) in workloads {
        if in_ignored_namespace(r) || is_istio_control_plane(r) {
            continue;
        }
        // One message per workload, at the first place that asks for the proxy's UID.
        if let Some(path) = proxy_uid_field(r, spec_path) {
            ctx.report(&catalog::INVALID_APPLICATION_UID, r, &path, &[]);
        }
    }
}

/// The path of the first `runAsUser: 1337` of a workload's pod spec (at `spec_path`, dotted)
/// outside Istio's own containers.
fn proxy_uid_field(r: &Resource, spec_path: &str) -> Option<String> {
    let pointer = format!("/{}", spec_path.replace('.', "/"));
    let spec = r.json.pointer(&pointer)?;
    if u64_at(spec, "/securityContext/runAsUser") == Some(PROXY_UID) {
        return Some(format!("{spec_path}.securityContext.runAsUser"));
    }
    arr_at(spec, "/containers")
        .iter()
        .enumerate()
        .find(|(_, c)| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            !ISTIO_CONTAINERS.contains(&name)
                && u64_at(c, "/securityContext/runAsUser") == Some(PROXY_UID)
        })
        .map(|(i, _)| format!("{spec_path}.containers[{i}].securityContext.runAsUser"))
}

/// Whether a Deployment's pods are in the mesh: they carry the proxy already, or the
/// injection label/annotation of the pod template says so, or else their namespace has
/// `istio-injection=enabled`.
fn deployment_in_mesh(ctx: &Context<'_>, d: &Resource) -> bool {
    let has_proxy = arr_at(&d.json, "/spec/template/spec/containers")
        .iter()
        .any(|c| {
            c.get("name").and_then(Value::as_str) == Some("istio-proxy")
                && c.get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| !i.is_empty())
        });
    if has_proxy {
        return true;
    }
    for meta in ["labels", "annotations"] {
        let map = string_map_at(&d.json, &format!("/spec/template/metadata/{meta}"));
        if let Some(v) = map.get(SIDECAR_INJECT) {
            return v == "true";
        }
    }
    ctx.store
        .get(groups::CORE, "Namespace", "", d.ns())
        .is_some_and(|ns| {
            ns.labels
                .get("istio-injection")
                .is_some_and(|v| v == "enabled")
        })
}

/// A Service selecting a Deployment's pods, with the parts of its ports that matter here.
struct SelectingService {
    /// `ns/name`, as Istio names Services in these messages.
    name: String,
    /// (port, protocol, targetPort) of each port.
    ports: Vec<(u64, String, String)>,
}

fn analyze_service_association(ctx: &mut Context<'_>) {
    let store = ctx.store;
    // Services with a non-empty selector, by namespace, read once (not once per Deployment).
    let mut services: BTreeMap<&str, Vec<ServiceSelector<'_>>> = BTreeMap::new();
    for s in store.of(groups::CORE, "Service") {
        let selector = string_map_at(&s.json, "/spec/selector");
        if !selector.is_empty() {
            services.entry(s.ns()).or_default().push((s, selector));
        }
    }
    for d in store.of(groups::APPS, "Deployment") {
        if in_ignored_namespace(d) || !deployment_in_mesh(ctx, d) {
            continue;
        }
        let candidates = services.get(d.ns()).map_or(&[][..], Vec::as_slice);
        let selecting = selecting_services(d, candidates);
        report_protocol_conflicts(ctx, d, &selecting);
        report_target_port_conflicts(ctx, d, &selecting);
    }
}

/// A Service with its (non-empty) selector.
type ServiceSelector<'a> = (&'a Resource, BTreeMap<String, String>);

/// The Services (of the Deployment's namespace, with their selectors) that select its pods.
fn selecting_services(d: &Resource, candidates: &[ServiceSelector<'_>]) -> Vec<SelectingService> {
    let pod_labels = string_map_at(&d.json, "/spec/template/metadata/labels");
    candidates
        .iter()
        .filter(|(_, selector)| selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
        .map(|(s, _)| SelectingService {
            name: s.full_name(),
            ports: arr_at(&s.json, "/spec/ports")
                .iter()
                .map(|p| {
                    let port = u64_at(p, "/port").unwrap_or(0);
                    let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    let target = match p.get("targetPort") {
                        Some(Value::String(s)) if !s.is_empty() => s.clone(),
                        Some(Value::Number(n)) if n.as_u64() != Some(0) => n.to_string(),
                        _ => port.to_string(),
                    };
                    (port, protocol.to_owned(), target)
                })
                .collect(),
        })
        .collect()
}

/// IST0116: one port number used with different protocols by the selecting Services.
fn report_protocol_conflicts(ctx: &mut Context<'_>, d: &Resource, services: &[SelectingService]) {
    // port -> protocol -> services, in the order first seen.
    let mut by_port: BTreeMap<u64, Vec<(&str, Vec<&str>)>> = BTreeMap::new();
    for s in services {
        for (port, protocol, _) in &s.ports {
            let protocols = by_port.entry(*port).or_default();
            match protocols.iter_mut().find(|(p, _)| p == protocol) {
                Some((_, names)) => names.push(&s.name),
                None => protocols.push((protocol, vec![&s.name])),
            }
        }
    }
    for (port, protocols) in by_port {
        if protocols.len() < 2 {
            continue;
        }
        let names: Vec<&str> = protocols
            .iter()
            .flat_map(|(_, n)| n.iter().copied())
            .collect();
        ctx.report(
            &catalog::DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
            d,
            "spec.template.metadata.labels",
            &[&d.name, &port, &GoList(&names)],
        );
    }
}

/// IST0137: one targetPort reached through different ports of the selecting Services.
fn report_target_port_conflicts(
    ctx: &mut Context<'_>,
    d: &Resource,
    services: &[SelectingService],
) {
    // targetPort -> port -> service (the last Service declaring the port wins, as in Istio).
    let mut by_target: BTreeMap<&str, BTreeMap<u64, &str>> = BTreeMap::new();
    for s in services {
        for (port, _, target) in &s.ports {
            by_target
                .entry(target.as_str())
                .or_default()
                .insert(*port, &s.name);
        }
    }
    for (target, ports) in by_target {
        if ports.len() < 2 {
            continue;
        }
        let names: Vec<&str> = ports.values().copied().collect();
        let numbers: Vec<u64> = ports.keys().copied().collect();
        ctx.report(
            &catalog::DEPLOYMENT_CONFLICTING_PORTS,
            d,
            "spec.template.metadata.labels",
            &[&d.name, &GoList(&names), &target, &GoList(&numbers)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyzers::annotations::test_support::run;

    #[test]
    fn proxy_uid_is_fine_for_istio_containers_and_the_control_plane() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
  - {name: istio-proxy, image: proxyv2, securityContext: {runAsUser: 1337}}
  - {name: app, image: app, securityContext: {runAsUser: 1000}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod, namespace: istio-system, labels: {istio: pilot}}
spec:
  template:
    spec:
      securityContext: {runAsUser: 1337}
      containers: [{name: discovery, image: pilot}]
"#;
        assert_eq!(run("deployment.ApplicationUIDAnalyzer", yaml), vec![]);
    }

    #[test]
    fn deployments_outside_the_mesh_are_not_checked() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-tcp, namespace: shop}
spec: {selector: {app: web}, ports: [{name: tcp, port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-udp, namespace: shop}
spec: {selector: {app: web}, ports: [{name: udp, port: 80, protocol: UDP}]}
"#;
        assert_eq!(run("deployment.ServiceAssociationAnalyzer", yaml), vec![]);
        let injected = yaml.replace(
            "metadata: {name: shop}",
            "metadata: {name: shop, labels: {istio-injection: enabled}}",
        );
        assert_eq!(
            run("deployment.ServiceAssociationAnalyzer", &injected),
            vec![("IST0116", "Deployment shop/web".to_owned())]
        );
    }

    #[test]
    fn named_target_ports_only_conflict_with_themselves() {
        let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web, sidecar.istio.io/inject: "true"}}
    spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
"#;
        assert_eq!(run("deployment.ServiceAssociationAnalyzer", yaml), vec![]);
    }

    #[test]
    fn go_lists() {
        assert_eq!(GoList(&["a", "b"]).to_string(), "[a b]");
        assert_eq!(GoList::<u64>(&[]).to_string(), "[]");
        assert_eq!(GoList(&[9080u64, 9090]).to_string(), "[9080 9090]");
    }
}
