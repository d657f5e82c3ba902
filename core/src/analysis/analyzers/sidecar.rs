//! Analyzers of Istio's `sidecar` package: Sidecar workload selectors that match no pod
//! (IST0101), several Sidecars selecting one pod (IST0110), several selector-less Sidecars
//! in one namespace (IST0111), and Sidecars that cannot take effect because their
//! workloads or namespace run in ambient mode (IST0167).

use std::collections::HashSet;

use crate::analysis::common::{
    DATAPLANE_MODE_LABEL, INJECTION_LABEL, REVISION_LABEL, pod_in_ambient_mode,
};
use crate::analysis::json::selector_text;
use crate::analysis::json::{selector_matches, string_map_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "sidecar.SelectorAnalyzer",
    description: "Validates that sidecars that define a workload selector match at least one pod, \
                  and that there aren't multiple sidecar resources that select overlapping pods",
    messages: &[
        &catalog::REFERENCED_RESOURCE_NOT_FOUND,
        &catalog::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
        &catalog::MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
        &catalog::INEFFECTIVE_POLICY,
    ],
    run: selectors,
}];

/// Whether a namespace is in ambient mode: labelled so, and not also asking for sidecar
/// injection (by `istio-injection: enabled` or a revision label).
fn namespace_in_ambient_mode(ns: &Resource) -> bool {
    if ns
        .labels
        .get(INJECTION_LABEL)
        .is_some_and(|v| v == "enabled")
    {
        return false;
    }
    if ns.labels.get(REVISION_LABEL).is_some_and(|v| !v.is_empty()) {
        return false;
    }
    ns.labels
        .get(DATAPLANE_MODE_LABEL)
        .is_some_and(|v| v == "ambient")
}

/// Sidecar names as Go prints a list of strings: `[a b]`.
fn name_list(sidecars: &[&Resource]) -> String {
    let names: Vec<&str> = sidecars.iter().map(|s| s.name.as_str()).collect();
    format!("[{}]", names.join(" "))
}

fn selectors(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let pods: Vec<&Resource> = store.of(groups::CORE, "Pod").collect();
    // Pods (by index into `pods`) and the Sidecars selecting them, in the order first
    // selected; and selector-less Sidecars by namespace, in the order namespaces appear.
    let mut selected: Vec<(usize, Vec<&Resource>)> = Vec::new();
    let mut unselective: Vec<(&str, Vec<&Resource>)> = Vec::new();

    for sc in store.of(groups::NETWORKING, "Sidecar") {
        let selector = string_map_at(sc.spec(), "/workloadSelector/labels");
        if selector.is_empty() {
            match unselective.iter_mut().find(|(ns, _)| *ns == sc.ns()) {
                Some((_, list)) => list.push(sc),
                None => unselective.push((sc.ns(), vec![sc])),
            }
            continue;
        }
        let mut found = false;
        for (i, pod) in pods.iter().enumerate() {
            if pod.ns() != sc.ns() || !selector_matches(&selector, &pod.labels) {
                continue;
            }
            found = true;
            match selected.iter_mut().find(|(p, _)| *p == i) {
                Some((_, list)) => list.push(sc),
                None => selected.push((i, vec![sc])),
            }
        }
        if !found {
            let text = selector_text(&selector);
            let first_key = selector.keys().next().cloned().unwrap_or_default();
            ctx.report(
                &catalog::REFERENCED_RESOURCE_NOT_FOUND,
                sc,
                &format!("spec.workloadSelector.labels[\"{first_key}\"]"),
                &[&"selector", &text],
            );
        }
    }

    let mut ineffective: HashSet<(String, String)> = HashSet::new();
    for (i, sidecars) in &selected {
        let pod = pods[*i];
        let ambient = pod_in_ambient_mode(pod);
        if sidecars.len() == 1 && !ambient {
            continue;
        }
        let names = name_list(sidecars);
        for sc in sidecars {
            if ambient {
                if ineffective.insert((sc.ns().to_owned(), sc.name.clone())) {
                    ctx.report(
                        &catalog::INEFFECTIVE_POLICY,
                        sc,
                        "spec.workloadSelector",
                        &[&"selected workload is in ambient mode, the policy has no impact"],
                    );
                }
                continue;
            }
            ctx.report(
                &catalog::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                sc,
                "metadata.name",
                &[&names, &pod.ns(), &pod.name],
            );
        }
    }

    for (ns, sidecars) in &unselective {
        let ambient = store
            .get(groups::CORE, "Namespace", "", ns)
            .is_some_and(namespace_in_ambient_mode);
        if ambient {
            for sc in sidecars {
                if ineffective.insert((sc.ns().to_owned(), sc.name.clone())) {
                    ctx.report(
                        &catalog::INEFFECTIVE_POLICY,
                        sc,
                        "metadata.name",
                        &[&"namespace is in ambient mode, the policy has no impact"],
                    );
                }
            }
            continue;
        }
        if sidecars.len() > 1 {
            let names = name_list(sidecars);
            for sc in sidecars {
                ctx.report(
                    &catalog::MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                    sc,
                    "metadata.name",
                    &[&names, ns],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Message;
    use crate::analysis::common::testing::run_named;

    fn run(yaml: &str) -> Vec<Message> {
        run_named(ANALYZERS, ANALYZERS[0].name, yaml)
    }

    #[test]
    fn empty_selector_counts_as_no_selector() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a, namespace: shop}
spec:
  workloadSelector: {labels: {}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: b, namespace: shop}
spec: {}
"#;
        let m = run(yaml);
        assert_eq!(m.len(), 2);
        assert!(m.iter().all(|m| m.code() == "IST0111"));
        assert_eq!(
            m[0].text,
            "The Sidecars [a b] in namespace \"shop\" have no workload selector, which can lead to undefined behavior."
        );
    }

    #[test]
    fn selector_with_dotted_key_reports_not_found_with_sorted_labels() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: a, namespace: shop}
spec:
  workloadSelector:
    labels:
      version: v1
      app.kubernetes.io/name: web
"#;
        let m = run(yaml);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].text,
            "Referenced selector not found: \"app.kubernetes.io/name=web,version=v1\""
        );
        let line = m[0].origin.as_ref().map(|o| o.line);
        assert_eq!(line, Some(9), "points at the first label in key order");
    }

    #[test]
    fn one_sidecar_per_pod_in_distinct_namespaces_is_fine() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: a, labels: {app: web}}
spec: {containers: [{name: web, image: web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: b, labels: {app: web}}
spec: {containers: [{name: web, image: web}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: a}
spec: {workloadSelector: {labels: {app: web}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: b}
spec: {workloadSelector: {labels: {app: web}}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: a
  labels: {istio.io/dataplane-mode: ambient, istio.io/rev: canary}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
"#;
        assert!(run(yaml).is_empty());
    }
}
