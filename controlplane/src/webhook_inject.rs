//! meshd's injection webhook (`/inject`): mesh-core's injector ([`mesh_core::inject`], the
//! same transformation as `meshctl kube-inject`) applied to the Pod of an AdmissionReview,
//! answered as a JSONPatch that replaces the Pod's `metadata` and `spec` with the injected
//! ones.
//!
//! The settings come from the `istio-sidecar-injector` ConfigMap in meshd's namespace
//! when meshd serves a cluster ([`InjectorConfig::from_cluster`]: read from the current
//! config on every request, so an edited ConfigMap applies to the next Pod without a
//! restart), else from the defaults.
//!
//! A Pod the injector skips (injection off by annotation or label, host networking, an
//! ignored namespace) or that already has a sidecar is admitted unchanged; a Pod whose
//! injection annotations are malformed is denied with the field and the reason.

use mesh_core::inject::pod::{self, Outcome, Owner, STATUS_ANNOTATION};
use mesh_core::inject::settings::Settings;
use std::sync::Arc;

use serde_json::{Value as J, json};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::source::ConfigState;

/// Istio's injector ConfigMap.
pub const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";

/// Where the injection webhook's settings come from.
#[derive(Clone, Debug)]
pub struct InjectorConfig {
    namespace: String,
    config: Option<watch::Receiver<Arc<ConfigState>>>,
}

impl InjectorConfig {
    /// The defaults, with meshd's address in `namespace`.
    pub fn defaults(namespace: &str) -> InjectorConfig {
        InjectorConfig {
            namespace: namespace.to_owned(),
            config: None,
        }
    }

    /// The `istio-sidecar-injector` ConfigMap of `namespace` in the current config (the
    /// defaults while there is none, or when it cannot be read: logged).
    pub fn from_cluster(
        namespace: &str,
        config: watch::Receiver<Arc<ConfigState>>,
    ) -> InjectorConfig {
        InjectorConfig {
            namespace: namespace.to_owned(),
            config: Some(config),
        }
    }

    /// The settings for the next Pod.
    pub fn settings(&self) -> Settings {
        let mut out = settings(&self.namespace);
        let Some(config) = &self.config else {
            return out;
        };
        let configmap = config
            .borrow()
            .store
            .get("", "ConfigMap", &self.namespace, INJECTOR_CONFIGMAP)
            .map(|r| r.json.clone());
        if let Some(cm) = configmap
            && let Err(e) = out.apply_injector_configmap(&cm)
        {
            warn!(
                configmap = %format!("{}/{INJECTOR_CONFIGMAP}", self.namespace),
                reason = %e,
                "injector ConfigMap not usable; injecting with the defaults"
            );
            return settings(&self.namespace);
        }
        out
    }
}

use crate::webhook::{ReviewError, answer, request_of};

/// The injector settings meshd uses: the defaults, with meshd's address in `namespace`.
pub fn settings(namespace: &str) -> Settings {
    Settings {
        discovery_address: format!("{}.{namespace}.svc:15010", crate::webhook_tls::SERVICE),
        ..Settings::default()
    }
}

/// The JSONPatch (RFC 6902) that turns `before` into `after`, one op per changed
/// top-level field.
pub fn top_level_patch(before: &J, after: &J) -> Vec<J> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return vec![json!({"op": "replace", "path": "", "value": after})];
    };
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    let mut ops = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            Some(old) if old == v => {}
            Some(_) => {
                ops.push(json!({"op": "replace", "path": format!("/{}", escape(k)), "value": v}))
            }
            None => ops.push(json!({"op": "add", "path": format!("/{}", escape(k)), "value": v})),
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": format!("/{}", escape(k))}));
    }
    ops
}

/// The API's base64 for bytes (as k8s-openapi writes a `ByteString`).
fn base64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Answers an injection AdmissionReview with `settings`.
pub fn inject_review_with(review: &J, settings: &Settings) -> Result<J, ReviewError> {
    let (request, uid) = request_of(review)?;
    let object = &request["object"];
    if object["kind"] != "Pod" {
        return Ok(answer(review, uid, true, None, Vec::new()));
    }
    let meta_in = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let namespace = meta_in["namespace"]
        .as_str()
        .or(request["namespace"].as_str())
        .unwrap_or("default")
        .to_owned();
    let name = meta_in["name"]
        .as_str()
        .or(meta_in["generateName"].as_str())
        .or(request["name"].as_str())
        .unwrap_or("?")
        .to_owned();
    if meta_in
        .pointer("/annotations")
        .and_then(|a| a.get(STATUS_ANNOTATION))
        .is_some()
    {
        debug!(pod = %format!("{namespace}/{name}"), "already injected; admitted unchanged");
        return Ok(answer(review, uid, true, None, Vec::new()));
    }
    let mut meta = meta_in;
    let mut spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    let owner = Owner {
        kind: "Pod",
        name: &name,
        namespace: &namespace,
    };
    match pod::inject(&mut meta, &mut spec, &owner, settings) {
        Ok(Outcome::Skipped(why)) => {
            debug!(pod = %format!("{namespace}/{name}"), reason = %why, "not injected");
            Ok(answer(review, uid, true, None, Vec::new()))
        }
        Ok(Outcome::Injected) => {
            let mut after = object.clone();
            after["metadata"] = meta;
            after["spec"] = spec;
            let ops = top_level_patch(object, &after);
            let mut out = answer(review, uid, true, None, Vec::new());
            if !ops.is_empty() {
                out["response"]["patchType"] = json!("JSONPatch");
                out["response"]["patch"] = json!(base64(J::Array(ops).to_string().as_bytes()));
            }
            debug!(pod = %format!("{namespace}/{name}"), "injected");
            Ok(out)
        }
        Err(e) => Ok(answer(
            review,
            uid,
            false,
            Some(format!(
                "cannot inject Pod {namespace}/{name}: {}: {}",
                e.field, e.message
            )),
            Vec::new(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_names_only_changed_fields() {
        let before =
            json!({"kind": "Pod", "metadata": {"name": "a"}, "spec": {"x": 1}, "status": {}});
        let after = json!({"kind": "Pod", "metadata": {"name": "a", "annotations": {"k": "v"}}, "spec": {"x": 1}, "a/b": 2});
        let ops = top_level_patch(&before, &after);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "/metadata", "value": {"name": "a", "annotations": {"k": "v"}}}),
                json!({"op": "add", "path": "/a~1b", "value": 2}),
                json!({"op": "remove", "path": "/status"}),
            ]
        );
        assert!(top_level_patch(&before, &before).is_empty());
    }

    #[test]
    fn base64_is_standard() {
        assert_eq!(base64(b"hello?"), "aGVsbG8/");
    }
}
