//! The analyzer of Istio's `deprecation` package: `deprecation.FieldAnalyzer` reports
//! Istio fields that are deprecated or ignored (VirtualService `fault.delay.percent`,
//! Sidecar `outboundTrafficPolicy.egressProxy`) and CustomResourceDefinitions of Istio
//! kinds that have been removed.

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::groups;

/// Istio kinds whose CRDs were removed (group, kind).
const REMOVED_CRDS: &[(&str, &str)] = &[
    ("rbac.istio.io", "ClusterRbacConfig"),
    ("rbac.istio.io", "RbacConfig"),
    ("rbac.istio.io", "ServiceRole"),
    ("rbac.istio.io", "ServiceRoleBinding"),
];

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "deprecation.FieldAnalyzer",
    description: "Checks for deprecated Istio types and fields",
    messages: &[&catalog::DEPRECATED],
    run: analyze_deprecations,
}];

fn analyze_deprecations(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for vs in store.of(groups::NETWORKING, "VirtualService") {
        for (i, route) in arr_at(&vs.json, "/spec/http").iter().enumerate() {
            let percent = route
                .pointer("/fault/delay/percent")
                .and_then(Value::as_f64);
            if percent.is_some_and(|p| p > 0.0) {
                ctx.report(
                    &catalog::DEPRECATED,
                    vs,
                    &format!("spec.http[{i}].fault.delay.percent"),
                    &[&"HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage"],
                );
            }
        }
    }
    for sc in store.of(groups::NETWORKING, "Sidecar") {
        let egress_proxy = sc.json.pointer("/spec/outboundTrafficPolicy/egressProxy");
        if egress_proxy.is_some_and(|v| !v.is_null()) {
            ctx.report(
                &catalog::DEPRECATED,
                sc,
                "spec.outboundTrafficPolicy.egressProxy",
                &[&"OutboundTrafficPolicy.EgressProxy ignored"],
            );
        }
    }
    for crd in store.of(groups::APIEXTENSIONS, "CustomResourceDefinition") {
        let group = str_at(&crd.json, "/spec/group").unwrap_or("");
        let kind = str_at(&crd.json, "/spec/names/kind").unwrap_or("");
        if REMOVED_CRDS.contains(&(group, kind)) {
            ctx.report(
                &catalog::DEPRECATED,
                crd,
                "spec.names.kind",
                &[&format!("Custom resource type {group} {kind} is removed")],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyzers::annotations::test_support::run;

    #[test]
    fn current_fields_are_not_reported() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [a]
  http:
  - fault: {delay: {percentage: {value: 50}, fixedDelay: 1s}}
    route: [{destination: {host: a}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sc}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
"#;
        assert_eq!(run("deprecation.FieldAnalyzer", yaml), vec![]);
    }

    #[test]
    fn removed_crds_are_reported() {
        let yaml = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: serviceroles.rbac.istio.io}
spec: {group: rbac.istio.io, names: {kind: ServiceRole}}
"#;
        assert_eq!(
            run("deprecation.FieldAnalyzer", yaml),
            vec![(
                "IST0002",
                "CustomResourceDefinition serviceroles.rbac.istio.io".to_owned()
            )]
        );
    }
}
