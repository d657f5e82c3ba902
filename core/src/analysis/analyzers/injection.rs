//! The analyzers of Istio's `injection` package:
//!
//! - `injection.Analyzer`: namespaces not enabled for sidecar injection (or enabled by the
//!   injector's `enableNamespacesByDefault`), namespaces with conflicting injection labels,
//!   and pods of injected namespaces that lack the proxy;
//! - `injection.ImageAnalyzer`: namespaces whose pods run a proxy image other than the one
//!   the sidecar injector (of the namespace's revision) would inject now;
//! - `injection.ImageAutoAnalyzer`: Pods and Deployments with `image: auto` that no Istio
//!   injection webhook will rewrite.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::analysis::common::{
    DATAPLANE_MODE_LABEL, GoList, INJECTION_LABEL, ISTIO_SYSTEM, PROXY_CONTAINER, REVISION_LABEL,
};
use crate::analysis::json::label_selector_matches;
use crate::analysis::json::{arr_at, str_at, string_map_at};
use crate::analysis::store::is_derived;
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

use super::annotations::{PROXY_CONFIG, SIDECAR_INJECT, SIDECAR_PROXY_IMAGE, in_ignored_namespace};

/// The sidecar injector's ConfigMap (per revision: `istio-sidecar-injector-REV`).
const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "injection.Analyzer",
        description: "Checks conditions related to Istio sidecar injection",
        messages: &[
            &catalog::NAMESPACE_NOT_INJECTED,
            &catalog::NAMESPACE_INJECTION_ENABLED_BY_DEFAULT,
            &catalog::NAMESPACE_MULTIPLE_INJECTION_LABELS,
            &catalog::POD_MISSING_PROXY,
        ],
        run: analyze_injection,
    },
    AnalyzerDef {
        name: "injection.ImageAnalyzer",
        description: "Checks the image of auto-injection configured with the running proxies on pods",
        messages: &[&catalog::PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE],
        run: analyze_proxy_images,
    },
    AnalyzerDef {
        name: "injection.ImageAutoAnalyzer",
        description: "Makes sure that Pods and Deployments with `image: auto` are going to be injected",
        messages: &[
            &catalog::IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
            &catalog::IMAGE_AUTO_WITHOUT_INJECTION_ERROR,
        ],
        run: analyze_image_auto,
    },
];

// ---------------------------------------------------------------------------------------
// injection.Analyzer

fn analyze_injection(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let mut injected: Vec<&str> = Vec::new();
    for ns in store.of(groups::CORE, "Namespace") {
        if ns.name == ISTIO_SYSTEM || in_ignored_namespace(ns) {
            continue;
        }
        if check_namespace(ctx, ns) {
            injected.push(&ns.name);
        }
    }
    // Derived Pods are templates before injection; only real Pods can miss a proxy.
    for pod in store.of(groups::CORE, "Pod").filter(|p| !is_derived(p)) {
        if !injected.contains(&pod.ns()) || injection_disabled(pod) {
            continue;
        }
        if pod.json.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
            continue;
        }
        if proxy_containers(&pod.json, "/spec").next().is_none() {
            ctx.report(
                &catalog::POD_MISSING_PROXY,
                pod,
                "spec.containers",
                &[&pod.full_name()],
            );
        }
    }
}

/// Reports on one namespace; returns whether its pods are injected through the
/// `istio-injection=enabled` label.
fn check_namespace(ctx: &mut Context<'_>, ns: &Resource) -> bool {
    let legacy = ns.labels.get(INJECTION_LABEL);
    let revision = ns.labels.get(REVISION_LABEL);

    // The labels that ask for a data plane; a legacy label with any value but `enabled`
    // opts the namespace out, which makes the other labels moot.
    let mut requested: Vec<String> = Vec::new();
    if let Some(v) = legacy {
        requested.push(format!("{INJECTION_LABEL}={v}"));
    }
    if legacy.is_none_or(|v| v == "enabled") {
        for label in [REVISION_LABEL, DATAPLANE_MODE_LABEL] {
            if let Some(v) = ns.labels.get(label) {
                requested.push(format!("{label}={v}"));
            }
        }
    }
    if requested.len() > 1 {
        ctx.report(
            &catalog::NAMESPACE_MULTIPLE_INJECTION_LABELS,
            ns,
            "metadata.labels",
            &[&GoList(&requested)],
        );
    }

    if ns
        .labels
        .get(DATAPLANE_MODE_LABEL)
        .is_some_and(|v| v == "ambient")
    {
        return false;
    }
    if legacy.is_none_or(|v| v.is_empty()) && revision.is_none() {
        if enabled_by_default(ctx, "") {
            ctx.report(
                &catalog::NAMESPACE_INJECTION_ENABLED_BY_DEFAULT,
                ns,
                "metadata.name",
                &[],
            );
        } else {
            ctx.report(
                &catalog::NAMESPACE_NOT_INJECTED,
                ns,
                "metadata.name",
                &[&ns.name, &ns.name],
            );
        }
        return false;
    }
    legacy.is_some_and(|v| v == "enabled")
}

/// Whether the sidecar injector of a revision injects namespaces without labels
/// (`sidecarInjectorWebhook.enableNamespacesByDefault` in its ConfigMap's `values`).
fn enabled_by_default(ctx: &Context<'_>, revision: &str) -> bool {
    let name = injector_configmap_name(revision);
    ctx.store
        .of(groups::CORE, "ConfigMap")
        .find(|cm| cm.name == name)
        .and_then(injector_values)
        .and_then(|v| {
            v.pointer("/sidecarInjectorWebhook/enableNamespacesByDefault")
                .and_then(Value::as_bool)
        })
        .unwrap_or(false)
}

/// The injector ConfigMap's name for a revision.
fn injector_configmap_name(revision: &str) -> String {
    if revision.is_empty() || revision == "default" {
        INJECTOR_CONFIGMAP.to_owned()
    } else {
        format!("{INJECTOR_CONFIGMAP}-{revision}")
    }
}

/// The injector's Helm values (`data.values`, JSON).
fn injector_values(cm: &Resource) -> Option<Value> {
    serde_json::from_str(str_at(&cm.json, "/data/values")?).ok()
}

/// Whether a pod opts out of injection (the `sidecar.istio.io/inject` label, or else the
/// annotation, is `false`).
fn injection_disabled(pod: &Resource) -> bool {
    pod.labels
        .get(SIDECAR_INJECT)
        .or_else(|| pod.annotations.get(SIDECAR_INJECT))
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

/// The `istio-proxy` containers (regular or native sidecar) of the pod spec at `spec`, with
/// their field paths.
fn proxy_containers<'a>(
    obj: &'a Value,
    spec: &'a str,
) -> impl Iterator<Item = (String, &'a Value)> + 'a {
    ["containers", "initContainers"]
        .into_iter()
        .flat_map(move |list| {
            arr_at(obj, &format!("{spec}/{list}"))
                .iter()
                .enumerate()
                .filter(|(_, c)| {
                    c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER)
                        && c.get("image")
                            .and_then(Value::as_str)
                            .is_some_and(|i| !i.is_empty())
                })
                .map(move |(i, c)| {
                    let dotted = spec.trim_start_matches('/').replace('/', ".");
                    (format!("{dotted}.{list}[{i}]"), c)
                })
        })
}

// ---------------------------------------------------------------------------------------
// injection.ImageAnalyzer

fn analyze_proxy_images(ctx: &mut Context<'_>) {
    let store = ctx.store;
    // Injector ConfigMap name -> the proxy image it injects.
    let images: BTreeMap<&str, String> = store
        .of(groups::CORE, "ConfigMap")
        .filter(|cm| cm.name.starts_with(INJECTOR_CONFIGMAP))
        .filter_map(|cm| Some((cm.name.as_str(), injected_proxy_image(cm)?)))
        .collect();
    if images.is_empty() {
        return;
    }
    // Injected namespace -> the injector ConfigMap that serves it.
    let mut injected: BTreeMap<&str, (String, &Resource)> = BTreeMap::new();
    for ns in store.of(groups::CORE, "Namespace") {
        if in_ignored_namespace(ns) {
            continue;
        }
        let revision = match ns.labels.get(REVISION_LABEL) {
            Some(rev) => rev.as_str(),
            None if ns
                .labels
                .get(INJECTION_LABEL)
                .is_some_and(|v| v == "enabled") =>
            {
                "default"
            }
            None => continue,
        };
        injected.insert(&ns.name, (injector_configmap_name(revision), ns));
    }
    let image_types = ImageTypes::new(ctx);
    // Namespace -> names of its pods that run another proxy image, in load order.
    let mut mismatched: Vec<(&Resource, Vec<&str>)> = Vec::new();
    // Derived Pods are templates before injection; only real Pods can miss a proxy.
    for pod in store.of(groups::CORE, "Pod").filter(|p| !is_derived(p)) {
        let Some((cm_name, ns)) = injected.get(pod.ns()) else {
            continue;
        };
        if pod
            .annotations
            .get(SIDECAR_PROXY_IMAGE)
            .is_some_and(|v| !v.is_empty())
        {
            continue;
        }
        let Some(expected) = images.get(cm_name.as_str()) else {
            continue;
        };
        let variant = image_types.for_pod(pod);
        let with_variant = format!("{expected}-{variant}");
        let stale = proxy_containers(&pod.json, "/spec").any(|(_, c)| {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            image != expected && image != with_variant
        });
        if !stale {
            continue;
        }
        match mismatched.iter_mut().find(|(n, _)| n.name == ns.name) {
            Some((_, pods)) => pods.push(&pod.name),
            None => mismatched.push((ns, vec![&pod.name])),
        }
    }
    for (ns, pods) in mismatched {
        ctx.report(
            &catalog::PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
            ns,
            "metadata.labels",
            &[&GoList(&pods)],
        );
    }
}

/// The proxy image an injector ConfigMap injects: `global.proxy.image` when it is a full
/// reference (contains `/`), else `HUB/IMAGE:TAG`. `None` when the values cannot be read.
fn injected_proxy_image(cm: &Resource) -> Option<String> {
    let values = injector_values(cm)?;
    let global = values.get("global")?;
    let image = str_at(global, "/proxy/image").unwrap_or("");
    if image.contains('/') {
        return Some(image.to_owned());
    }
    let hub = str_at(global, "/hub").unwrap_or("");
    let tag = str_at(global, "/tag").unwrap_or("");
    if image.is_empty() && hub.is_empty() && tag.is_empty() {
        return None;
    }
    Some(format!("{hub}/{image}:{tag}"))
}

/// The proxy image type (`distroless`, `debug`) in effect for pods: the mesh default, then
/// the root namespace's ProxyConfig, the pod namespace's, a ProxyConfig selecting the pod,
/// and the pod's `proxy.istio.io/config` annotation, each overriding the one before.
struct ImageTypes<'a> {
    mesh: String,
    root: Option<&'a str>,
    namespace: BTreeMap<&'a str, &'a str>,
    workload: Vec<(&'a str, BTreeMap<String, String>, &'a str)>,
}

impl<'a> ImageTypes<'a> {
    fn new(ctx: &Context<'a>) -> Self {
        let root_ns = ctx.mesh.root_namespace();
        let mut types = ImageTypes {
            mesh: str_at(&ctx.mesh.json, "/defaultConfig/image/imageType")
                .unwrap_or("")
                .to_owned(),
            root: None,
            namespace: BTreeMap::new(),
            workload: Vec::new(),
        };
        for pc in ctx.store.of(groups::NETWORKING, "ProxyConfig") {
            let Some(image_type) =
                str_at(&pc.json, "/spec/image/imageType").filter(|t| !t.is_empty())
            else {
                continue;
            };
            if pc.ns() == root_ns {
                types.root = Some(image_type);
            } else if pc
                .json
                .pointer("/spec/selector")
                .is_some_and(|s| !s.is_null())
            {
                let selector = string_map_at(&pc.json, "/spec/selector/matchLabels");
                types.workload.push((pc.ns(), selector, image_type));
            } else {
                types.namespace.insert(pc.ns(), image_type);
            }
        }
        types
    }

    fn for_pod(&self, pod: &Resource) -> String {
        let mut variant = self.mesh.clone();
        if let Some(t) = self.root {
            variant = t.to_owned();
        }
        if let Some(t) = self.namespace.get(pod.ns()) {
            variant = (*t).to_owned();
        }
        for (ns, selector, t) in &self.workload {
            if *ns == pod.ns() && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                variant = (*t).to_owned();
            }
        }
        if let Some(t) = pod
            .annotations
            .get(PROXY_CONFIG)
            .and_then(|text| annotation_image_type(text))
        {
            variant = t;
        }
        if variant == "default" {
            variant.clear();
        }
        variant
    }
}

/// `image.imageType` of a `proxy.istio.io/config` annotation, when set.
fn annotation_image_type(text: &str) -> Option<String> {
    let doc = crate::yaml::parse_documents(text).into_iter().next()?;
    let json = doc.result.ok()?.to_json();
    str_at(&json, "/image/imageType")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// injection.ImageAutoAnalyzer

fn analyze_image_auto(ctx: &mut Context<'_>) {
    let store = ctx.store;
    let webhooks: Vec<&Value> = store
        .of(groups::ADMISSION, "MutatingWebhookConfiguration")
        .flat_map(|c| arr_at(&c.json, "/webhooks"))
        .filter(|w| str_at(w, "/name").is_some_and(|n| n.ends_with("istio.io")))
        .collect();
    // Derived Pods are templates before injection; only real Pods can miss a proxy.
    for pod in store.of(groups::CORE, "Pod").filter(|p| !is_derived(p)) {
        if in_ignored_namespace(pod) {
            continue;
        }
        // A pod with `image: auto` is broken whatever the webhooks say: it exists already.
        if let Some(i) = auto_image(&pod.json, "/spec") {
            ctx.report(
                &catalog::IMAGE_AUTO_WITHOUT_INJECTION_ERROR,
                pod,
                &format!("spec.containers[{i}].image"),
                &[&"Pod", &pod.name],
            );
        }
    }
    for d in store.of(groups::APPS, "Deployment") {
        if in_ignored_namespace(d) {
            continue;
        }
        let Some(i) = auto_image(&d.json, "/spec/template/spec") else {
            continue;
        };
        let ns_labels = store
            .get(groups::CORE, "Namespace", "", d.ns())
            .map(|ns| ns.labels.clone())
            .unwrap_or_default();
        let pod_labels = string_map_at(&d.json, "/spec/template/metadata/labels");
        let targeted = webhooks.iter().any(|w| {
            label_selector_matches(w.get("namespaceSelector"), &ns_labels)
                && label_selector_matches(w.get("objectSelector"), &pod_labels)
        });
        if !targeted {
            ctx.report(
                &catalog::IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
                d,
                &format!("spec.template.spec.containers[{i}].image"),
                &[&"Deployment", &d.name],
            );
        }
    }
}

/// The index of the `istio-proxy` container with `image: auto` in the pod spec at `spec`.
fn auto_image(obj: &Value, spec: &str) -> Option<usize> {
    arr_at(obj, &format!("{spec}/containers"))
        .iter()
        .position(|c| {
            c.get("name").and_then(Value::as_str) == Some(PROXY_CONTAINER)
                && c.get("image").and_then(Value::as_str) == Some("auto")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyzers::annotations::test_support::{run, run_with_mesh};

    const INJECTOR: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: istio-sidecar-injector, namespace: istio-system}
data:
  values: '{"global":{"hub":"reg.io/istio","tag":"1.20.0","proxy":{"image":"proxyv2"}}}'
"#;

    #[test]
    fn pods_with_a_native_sidecar_or_host_network_or_opt_out_are_not_missing_the_proxy() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: native, namespace: shop}
spec:
  initContainers: [{name: istio-proxy, image: proxyv2}]
  containers: [{name: app, image: app}]
---
apiVersion: v1
kind: Pod
metadata: {name: host, namespace: shop}
spec: {hostNetwork: true, containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: optout, namespace: shop, annotations: {sidecar.istio.io/inject: "False"}}
spec: {containers: [{name: app, image: app}]}
"#;
        assert_eq!(run("injection.Analyzer", yaml), vec![]);
    }

    #[test]
    fn system_and_revision_namespaces_are_not_reported() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: canary, labels: {istio.io/rev: canary}}
---
apiVersion: v1
kind: Namespace
metadata: {name: off, labels: {istio-injection: disabled, istio.io/rev: canary}}
"#;
        assert_eq!(run("injection.Analyzer", yaml), vec![]);
    }

    #[test]
    fn unreadable_injector_config_reports_nothing() {
        let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: istio-sidecar-injector, namespace: istio-system}
data: {values: "not json"}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: shop}
spec: {containers: [{name: istio-proxy, image: reg.io/istio/proxyv2:1.19.0}]}
"#;
        assert_eq!(run("injection.ImageAnalyzer", yaml), vec![]);
    }

    #[test]
    fn image_type_comes_from_the_most_specific_proxy_config() {
        let pods = r#"
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: networking.istio.io/v1beta1
kind: ProxyConfig
metadata: {name: pc, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  image: {imageType: distroless}
---
apiVersion: v1
kind: Pod
metadata: {name: cart, namespace: shop, labels: {app: cart, version: v1}}
spec: {containers: [{name: istio-proxy, image: reg.io/istio/proxyv2:1.20.0-distroless}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: istio-proxy, image: reg.io/istio/proxyv2:1.20.0-distroless}]}
"#;
        let yaml = format!("{INJECTOR}{pods}");
        assert_eq!(
            run("injection.ImageAnalyzer", &yaml),
            vec![("IST0158", "Namespace shop".to_owned())]
        );
        let mesh = r#"{"defaultConfig": {"image": {"imageType": "distroless"}}}"#;
        assert_eq!(
            run_with_mesh("injection.ImageAnalyzer", &yaml, mesh),
            vec![]
        );
    }

    #[test]
    fn image_auto_deployments_targeted_by_a_webhook_are_fine() {
        let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector}
webhooks:
- name: namespace.sidecar-injector.istio.io
  namespaceSelector: {matchLabels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gw, namespace: shop}
spec:
  template:
    metadata: {labels: {istio: gw}}
    spec: {containers: [{name: istio-proxy, image: auto}]}
"#;
        assert_eq!(run("injection.ImageAutoAnalyzer", yaml), vec![]);
    }
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("istio-injection", "enabled")]);
        assert!(label_selector_matches(None, &l));
        assert!(label_selector_matches(Some(&json!({})), &l));
        assert!(label_selector_matches(
            Some(&json!({"matchLabels": {"istio-injection": "enabled"}})),
            &l
        ));
        assert!(!label_selector_matches(
            Some(&json!({"matchLabels": {"istio-injection": "enabled"}})),
            &labels(&[])
        ));
        let not_disabled = json!({"matchExpressions": [
            {"key": "istio-injection", "operator": "NotIn", "values": ["disabled"]},
            {"key": "istio.io/rev", "operator": "DoesNotExist"}
        ]});
        assert!(label_selector_matches(Some(&not_disabled), &l));
        assert!(label_selector_matches(Some(&not_disabled), &labels(&[])));
        assert!(!label_selector_matches(
            Some(&not_disabled),
            &labels(&[("istio.io/rev", "canary")])
        ));
        let malformed = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert!(!label_selector_matches(Some(&malformed), &l));
    }

    #[test]
    fn injector_configmap_names() {
        assert_eq!(injector_configmap_name(""), "istio-sidecar-injector");
        assert_eq!(injector_configmap_name("default"), "istio-sidecar-injector");
        assert_eq!(
            injector_configmap_name("canary"),
            "istio-sidecar-injector-canary"
        );
    }

    #[test]
    fn image_type_from_annotation() {
        assert_eq!(
            annotation_image_type("image:\n  imageType: distroless\n").as_deref(),
            Some("distroless")
        );
        assert_eq!(annotation_image_type("{}"), None);
        assert_eq!(annotation_image_type("not: [valid"), None);
    }
}
