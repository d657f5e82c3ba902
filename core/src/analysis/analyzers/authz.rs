//! Analyzers of Istio's `authz` package: AuthorizationPolicies that apply to no workload in
//! the mesh (IST0127) and that name source namespaces which do not exist (IST0101).

use std::collections::BTreeMap;

use crate::analysis::common::{
    INJECTION_LABEL, PROXY_CONTAINER, SIDECAR_INJECT, pod_in_ambient_mode,
};
use crate::analysis::json::selector_text;
use crate::analysis::json::{arr_at, selector_matches, str_at, string_map_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "authz.AuthorizationPoliciesAnalyzer",
    description: "Checks the validity of authorization policies",
    messages: &[
        &catalog::NO_MATCHING_WORKLOADS_FOUND,
        &catalog::REFERENCED_RESOURCE_NOT_FOUND,
    ],
    run: authorization_policies,
}];

/// Whether a pod has a sidecar: an `istio-proxy` container with an image, else its own
/// injection label or annotation, else its namespace's `istio-injection` label.
fn pod_has_sidecar(pod: &Resource, ctx: &Context<'_>) -> bool {
    let spec = pod.spec();
    let has_proxy = ["/containers", "/initContainers"]
        .iter()
        .flat_map(|list| arr_at(spec, list))
        .find(|c| str_at(c, "/name") == Some(PROXY_CONTAINER))
        .is_some_and(|c| str_at(c, "/image").is_some_and(|i| !i.is_empty()));
    if has_proxy {
        return true;
    }
    if let Some(v) = pod.labels.get(SIDECAR_INJECT) {
        return v == "true";
    }
    if let Some(v) = pod.annotations.get(SIDECAR_INJECT) {
        return v == "true";
    }
    ctx.store
        .get(groups::CORE, "Namespace", "", pod.ns())
        .is_some_and(|ns| {
            ns.labels
                .get(INJECTION_LABEL)
                .is_some_and(|v| v == "enabled")
        })
}

/// The labels of every pod in the mesh (with a sidecar or in ambient mode), by namespace.
fn mesh_pod_labels<'s>(ctx: &Context<'s>) -> BTreeMap<String, Vec<&'s BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<&'s BTreeMap<String, String>>> = BTreeMap::new();
    for pod in ctx.store.of(groups::CORE, "Pod") {
        let list = out.entry(pod.ns().to_owned()).or_default();
        if pod_has_sidecar(pod, ctx) || pod_in_ambient_mode(pod) {
            list.push(&pod.labels);
        }
    }
    out
}

/// Reports a policy that selects no workload: a root-namespace policy whose selector
/// matches no pod anywhere, a selector-less policy in a namespace without mesh pods, or a
/// policy whose selector matches no mesh pod of its namespace.
fn check_workloads(
    ctx: &mut Context<'_>,
    policy: &Resource,
    pods: &BTreeMap<String, Vec<&BTreeMap<String, String>>>,
) {
    let spec = policy.spec();
    let has_selector = spec.get("selector").is_some_and(|s| !s.is_null());
    let selector = string_map_at(spec, "/selector/matchLabels");
    let matches_any = |labels: &[&BTreeMap<String, String>]| {
        labels.iter().any(|l| selector_matches(&selector, l))
    };
    let in_namespace = pods.get(policy.ns()).map_or(&[][..], Vec::as_slice);

    if policy.ns() == ctx.mesh.root_namespace() {
        if has_selector && !pods.values().any(|l| matches_any(l)) {
            let text = selector_text(&selector);
            ctx.report(
                &catalog::NO_MATCHING_WORKLOADS_FOUND,
                policy,
                "spec.selector",
                &[&text],
            );
        }
        return;
    }
    if !has_selector {
        if in_namespace.is_empty() {
            ctx.report(&catalog::NO_MATCHING_WORKLOADS_FOUND, policy, "", &[&""]);
        }
        return;
    }
    if !matches_any(in_namespace) {
        let text = selector_text(&selector);
        ctx.report(
            &catalog::NO_MATCHING_WORKLOADS_FOUND,
            policy,
            "spec.selector",
            &[&text],
        );
    }
}

/// Whether a namespace name matches a source namespace expression: `*`, a `*suffix`, a
/// `prefix*`, or a name (compared case-insensitively).
fn namespace_matches(namespace: &str, expr: &str) -> bool {
    if expr == "*" {
        return true;
    }
    if let Some(suffix) = expr.strip_prefix('*') {
        return namespace.ends_with(suffix);
    }
    if let Some(prefix) = expr.strip_suffix('*') {
        return namespace.starts_with(prefix);
    }
    namespace.eq_ignore_ascii_case(expr)
}

/// Reports every `namespaces` and `notNamespaces` entry of the policy's sources that
/// matches no Namespace object.
fn check_namespaces(ctx: &mut Context<'_>, policy: &Resource, namespaces: &[&str]) {
    let spec = policy.spec();
    for (i, rule) in arr_at(spec, "/rules").iter().enumerate() {
        for (j, from) in arr_at(rule, "/from").iter().enumerate() {
            for field in ["namespaces", "notNamespaces"] {
                let exprs = arr_at(from, &format!("/source/{field}"));
                for (k, expr) in exprs.iter().enumerate() {
                    let Some(expr) = expr.as_str() else {
                        continue;
                    };
                    if namespaces.iter().any(|ns| namespace_matches(ns, expr)) {
                        continue;
                    }
                    ctx.report(
                        &catalog::REFERENCED_RESOURCE_NOT_FOUND,
                        policy,
                        &format!("spec.rules[{i}].from[{j}].source.{field}[{k}]"),
                        &[&"namespace", &expr],
                    );
                }
            }
        }
    }
}

fn authorization_policies(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let pods = mesh_pod_labels(ctx);
    let namespaces: Vec<&str> = store
        .of(groups::CORE, "Namespace")
        .map(|n| n.name.as_str())
        .collect();
    for policy in store.of(groups::SECURITY, "AuthorizationPolicy") {
        check_workloads(ctx, policy, &pods);
        check_namespaces(ctx, policy, &namespaces);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{self, MeshConfig, Message};
    use crate::source;

    fn run(yaml: &str, mesh: MeshConfig) -> Vec<Message> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let store = analysis::files_store(loaded.resources, &mesh);
        analysis::run(&store, &mesh, &[&ANALYZERS[0]])
    }

    #[test]
    fn namespace_expressions() {
        assert!(namespace_matches("prod-web", "prod-*"));
        assert!(namespace_matches("web-test", "*-test"));
        assert!(namespace_matches("Web", "web"));
        assert!(!namespace_matches("web", "web-*"));
        assert!(namespace_matches("anything", "*"));
    }

    #[test]
    fn pod_opted_out_of_injection_is_not_a_workload() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web, sidecar.istio.io/inject: "false"}
spec: {containers: [{name: web, image: web}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
"#;
        let m = run(yaml, MeshConfig::default());
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].text,
            "No matching workloads for this resource with the following labels: app=web"
        );
    }

    #[test]
    fn custom_root_namespace_makes_policies_mesh_wide() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: istio-proxy, image: proxyv2}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: all, namespace: mesh-root}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: mesh-root}
spec:
  selector: {matchLabels: {app: web}}
"#;
        let mesh = MeshConfig::from_json(serde_json::json!({"rootNamespace": "mesh-root"}));
        assert!(run(yaml, mesh).is_empty());
    }

    #[test]
    fn not_namespaces_point_at_their_own_field() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, annotations: {ambient.istio.io/redirection: enabled}}
spec: {containers: [{name: web, image: web}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: shop}
spec:
  rules:
  - from:
    - source:
        namespaces: [shop]
        notNamespaces: [shop, bogus]
"#;
        let m = run(yaml, MeshConfig::default());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].text, "Referenced namespace not found: \"bogus\"");
        assert_eq!(m[0].origin.as_ref().map(|o| o.line), Some(19));
    }
}
