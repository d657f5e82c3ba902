//! Analyzers of Istio's `webhook` package: the sidecar injection webhooks
//! (MutatingWebhookConfiguration) of one or more control planes, checked for overlaps that
//! would inject a pod twice and for references to control plane Services that do not exist.
//!
//! Overlaps are found the way Istio finds them: every combination of the namespace and pod
//! labels that drive injection (`istio-injection`, `sidecar.istio.io/inject`, and
//! `istio.io/rev` for every revision the webhooks mention) is run through every webhook's
//! namespace and object selectors; a combination must select at most one webhook.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::analysis::json::label_selector_matches;
use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "webhook.Analyzer",
    description: "Checks the validity of Istio webhooks",
    messages: &[&catalog::INVALID_WEBHOOK],
    run: analyze_webhooks,
}];

const REV_LABEL: &str = "istio.io/rev";

/// One webhook of an injection webhook configuration.
struct Hook<'a> {
    config: &'a Resource,
    index: usize,
    /// `configName/webhookName`, the name Istio uses in its messages.
    id: String,
    json: &'a Value,
}

fn analyze_webhooks(ctx: &mut Context<'_>) {
    let mut hooks: Vec<Hook<'_>> = Vec::new();
    let mut revisions: BTreeSet<String> = BTreeSet::new();
    for config in ctx
        .store
        .of(groups::ADMISSION, "MutatingWebhookConfiguration")
    {
        let revs = revisions_of(config);
        if revs.is_empty() && !is_istio_config(config) {
            continue;
        }
        revisions.extend(revs);
        for (index, json) in arr_at(&config.json, "/webhooks").iter().enumerate() {
            let name = str_at(json, "/name").unwrap_or("");
            hooks.push(Hook {
                config,
                index,
                id: format!("{}/{name}", config.full_name()),
                json,
            });
        }
    }

    report_overlaps(ctx, &hooks, &revisions);
    report_missing_services(ctx, &hooks);
}

/// Reports every webhook that shares a namespace/pod label combination with another.
fn report_overlaps(ctx: &mut Context<'_>, hooks: &[Hook<'_>], revisions: &BTreeSet<String>) {
    let namespace_labels = label_permutations("istio-injection", "enabled", "disabled", revisions);
    let object_labels = label_permutations("sidecar.istio.io/inject", "true", "false", revisions);
    for ns_labels in &namespace_labels {
        for obj_labels in &object_labels {
            let matching: BTreeMap<&str, &Hook<'_>> = hooks
                .iter()
                .filter(|h| {
                    label_selector_matches(h.json.get("namespaceSelector"), ns_labels)
                        && label_selector_matches(h.json.get("objectSelector"), obj_labels)
                })
                .map(|h| (h.id.as_str(), h))
                .collect();
            if matching.len() < 2 {
                continue;
            }
            for (id, hook) in &matching {
                let others: Vec<&str> = matching.keys().copied().filter(|o| o != id).collect();
                let detail = format!(
                    "Webhook overlaps with others: [{}]. This may cause injection to occur twice.",
                    others.join(" ")
                );
                let path = format!("webhooks[{}]", hook.index);
                ctx.report(&catalog::INVALID_WEBHOOK, hook.config, &path, &[&detail]);
            }
        }
    }
}

/// Reports webhooks whose `clientConfig.service` names a Service that is not there.
fn report_missing_services(ctx: &mut Context<'_>, hooks: &[Hook<'_>]) {
    for hook in hooks {
        let Some(service) = hook.json.pointer("/clientConfig/service") else {
            continue;
        };
        if service.is_null() {
            continue;
        }
        let ns = str_at(service, "/namespace").unwrap_or("");
        let name = str_at(service, "/name").unwrap_or("");
        if ctx.store.get(groups::CORE, "Service", ns, name).is_some() {
            continue;
        }
        let detail =
            format!("Injector refers to a control plane service that does not exist: {ns}/{name}.");
        let path = format!("webhooks[{}].clientConfig.service", hook.index);
        ctx.report(&catalog::INVALID_WEBHOOK, hook.config, &path, &[&detail]);
    }
}

/// Whether any webhook of the configuration is one of Istio's (its name ends in istio.io).
fn is_istio_config(config: &Resource) -> bool {
    arr_at(&config.json, "/webhooks")
        .iter()
        .filter_map(|h| str_at(h, "/name"))
        .any(|n| n.ends_with("istio.io"))
}

/// The revisions a configuration serves: its own `istio.io/rev` label and every
/// `istio.io/rev` value its webhooks' selectors mention.
fn revisions_of(config: &Resource) -> BTreeSet<String> {
    let mut revs = BTreeSet::new();
    if let Some(r) = config.labels.get(REV_LABEL) {
        revs.insert(r.clone());
    }
    for hook in arr_at(&config.json, "/webhooks") {
        for selector in ["/namespaceSelector", "/objectSelector"] {
            let Some(sel) = hook.pointer(selector) else {
                continue;
            };
            if let Some(r) = str_at(sel, &format!("/matchLabels/{}", pointer_escape(REV_LABEL))) {
                revs.insert(r.to_owned());
            }
            for expr in arr_at(sel, "/matchExpressions") {
                if str_at(expr, "/key") == Some(REV_LABEL) {
                    revs.extend(
                        arr_at(expr, "/values")
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned),
                    );
                }
            }
        }
    }
    revs
}

/// `{}`, `{key: on}`, `{key: off}`, and each of those with `istio.io/rev` set to every revision.
fn label_permutations(
    key: &str,
    on: &str,
    off: &str,
    revisions: &BTreeSet<String>,
) -> Vec<BTreeMap<String, String>> {
    let base: Vec<BTreeMap<String, String>> = vec![
        BTreeMap::new(),
        BTreeMap::from([(key.to_owned(), on.to_owned())]),
        BTreeMap::from([(key.to_owned(), off.to_owned())]),
    ];
    let mut out = base.clone();
    for rev in revisions {
        for b in &base {
            let mut labels = b.clone();
            labels.insert(REV_LABEL.to_owned(), rev.clone());
            out.push(labels);
        }
    }
    out
}

/// Escapes a key for use in a JSON pointer (`/` becomes `~1`).
fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::source;

    fn run(yaml: &str) -> Vec<(String, String)> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let store = Store::new(loaded.resources);
        let mesh = MeshConfig::default();
        let mut ctx = Context::new(&store, &mesh, "test");
        analyze_webhooks(&mut ctx);
        let msgs = crate::analysis::collapse(ctx.into_messages());
        msgs.into_iter()
            .map(|m| (m.origin.map(|o| o.name).unwrap_or_default(), m.text))
            .collect()
    }

    #[test]
    fn disjoint_revisioned_webhooks_do_not_overlap() {
        let msgs = run(r#"
apiVersion: v1
kind: Service
metadata: {name: istiod, namespace: istio-system}
---
apiVersion: v1
kind: Service
metadata: {name: istiod-canary, namespace: istio-system}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector}
webhooks:
- name: namespace.sidecar-injector.istio.io
  clientConfig: {service: {name: istiod, namespace: istio-system}}
  namespaceSelector:
    matchExpressions:
    - {key: istio-injection, operator: In, values: [enabled]}
- name: object.sidecar-injector.istio.io
  clientConfig: {service: {name: istiod, namespace: istio-system}}
  namespaceSelector:
    matchExpressions:
    - {key: istio-injection, operator: DoesNotExist}
    - {key: istio.io/rev, operator: DoesNotExist}
  objectSelector:
    matchExpressions:
    - {key: sidecar.istio.io/inject, operator: In, values: ["true"]}
    - {key: istio.io/rev, operator: DoesNotExist}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-sidecar-injector-canary
  labels: {istio.io/rev: canary}
webhooks:
- name: rev.namespace.sidecar-injector.istio.io
  clientConfig: {service: {name: istiod-canary, namespace: istio-system}}
  namespaceSelector:
    matchExpressions:
    - {key: istio.io/rev, operator: In, values: [canary]}
    - {key: istio-injection, operator: DoesNotExist}
"#);
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn webhooks_of_other_products_are_ignored() {
        let msgs = run(r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: cert-manager}
webhooks:
- name: webhook.cert-manager.io
  clientConfig: {service: {name: missing, namespace: cert-manager}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: other}
webhooks:
- name: webhook.example.com
  clientConfig: {url: "https://example.com/"}
"#);
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn url_webhooks_need_no_service() {
        let msgs = run(r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector}
webhooks:
- name: sidecar-injector.istio.io
  clientConfig: {url: "https://istiod.example.com/inject"}
"#);
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn malformed_expressions_select_nothing() {
        let labels = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let bad = serde_json::json!({"matchExpressions": [{"key": "a", "operator": "In"}]});
        assert!(!label_selector_matches(Some(&bad), &labels));
        let not_in = serde_json::json!({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["y"]}]});
        assert!(label_selector_matches(Some(&not_in), &labels));
        assert!(label_selector_matches(None, &labels));
    }
}
