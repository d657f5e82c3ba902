//! The analyzer of Istio's `maturity` package: `maturity.AlphaAnalyzer` reports Istio
//! annotations that belong to alpha-phase features on Namespaces, Services, Pods and
//! Deployments. Istio leaves this analyzer out of its default set because it is noisy; it
//! runs when asked for by name.

use crate::analysis::store::is_derived;
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

use super::annotations::{
    self, ALWAYS_IGNORED, ANNOTATED_KINDS, FeatureStatus, annotation_path, in_ignored_namespace,
};

/// Alpha annotations istio-cni sets on every pod it handles; reported only on pods that
/// carry the `istio-init` container (so were not set up by the CNI plugin).
const SET_BY_CNI: &[&str] = &[
    "sidecar.istio.io/interceptionMode",
    "traffic.sidecar.istio.io/includeInboundPorts",
    "traffic.sidecar.istio.io/excludeInboundPorts",
    "traffic.sidecar.istio.io/includeOutboundIPRanges",
];

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "maturity.AlphaAnalyzer",
    description: "Checks for alpha Istio annotations in Kubernetes resources",
    messages: &[&catalog::ALPHA_ANNOTATION],
    run: analyze_alpha_annotations,
}];

fn analyze_alpha_annotations(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for (group, kind) in ANNOTATED_KINDS {
        for r in store.of(group, kind) {
            if !in_ignored_namespace(r) && !is_derived(r) {
                check(ctx, r);
            }
        }
    }
}

fn check(ctx: &mut Context<'_>, r: &Resource) {
    let skip_cni_defaults = r.is(groups::CORE, "Pod") && !has_istio_init(r);
    for name in r.annotations.keys() {
        if !annotations::is_istio_annotation(name) {
            continue;
        }
        let Some(def) = annotations::lookup(name) else {
            continue;
        };
        if def.feature_status != FeatureStatus::Alpha
            || ALWAYS_IGNORED.contains(&def.name)
            || (skip_cni_defaults && SET_BY_CNI.contains(&def.name))
        {
            continue;
        }
        ctx.report(
            &catalog::ALPHA_ANNOTATION,
            r,
            &annotation_path(name),
            &[name],
        );
    }
}

/// Whether a pod has the `istio-init` init container (traffic set up without istio-cni).
fn has_istio_init(pod: &Resource) -> bool {
    crate::analysis::json::arr_at(&pod.json, "/spec/initContainers")
        .iter()
        .any(|c| c.get("name").and_then(|n| n.as_str()) == Some("istio-init"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyzers::annotations::test_support::run;

    #[test]
    fn beta_and_istio_set_annotations_are_not_reported() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    proxy.istio.io/config: "{}"
    sidecar.istio.io/status: "{}"
    istio.io/rev: default
    sidecar.istio.io/interceptionMode: REDIRECT
spec: {containers: [{name: app, image: app}]}
"#;
        assert_eq!(run("maturity.AlphaAnalyzer", yaml), vec![]);
    }

    #[test]
    fn cni_defaults_are_alpha_annotations() {
        for name in SET_BY_CNI {
            assert_eq!(
                annotations::lookup(name).map(|a| a.feature_status),
                Some(FeatureStatus::Alpha)
            );
        }
    }
}
