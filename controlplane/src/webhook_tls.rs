//! TLS for meshd's admission webhooks (15017) and the CA bundle the API server trusts.
//!
//! This module owns the webhook serving certificate (issued by meshd's CA, DNS SANs for
//! meshd's Service names in its namespace: `meshd.NS.svc` is what the webhook
//! configurations' `clientConfig.service` makes the API server dial) and writing the CA's
//! root into `clientConfig.caBundle` of every webhook of the injection and validation
//! webhook configurations `meshctl manifest generate` writes (`istio-sidecar-injector`,
//! `istio-validator-NS`), with a JSON merge patch of their `webhooks` list.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value as J, json};
use tracing::{info, warn};

use crate::ca::{Ca, CaError};

/// meshd's Service (and Deployment) name, as the manifest writes it.
pub const SERVICE: &str = "meshd";
/// The namespace meshd runs in when `POD_NAMESPACE` does not say.
pub const DEFAULT_NAMESPACE: &str = "istio-system";
/// The injection webhook configuration's name.
pub const INJECTOR: &str = "istio-sidecar-injector";

/// How often set bundles are checked again.
const RECHECK: Duration = Duration::from_secs(60);

/// The validation webhook configuration's name for meshd in `namespace`.
pub fn validator_name(namespace: &str) -> String {
    format!("istio-validator-{namespace}")
}

/// meshd's namespace: `POD_NAMESPACE` (the downward API), else `istio-system`.
pub fn namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// The DNS names the serving certificate carries: the Service's names in `namespace`,
/// and `localhost` for local use.
pub fn service_names(namespace: &str) -> Vec<String> {
    vec![
        format!("{SERVICE}.{namespace}.svc"),
        format!("{SERVICE}.{namespace}.svc.cluster.local"),
        format!("{SERVICE}.{namespace}"),
        SERVICE.to_owned(),
        "localhost".to_owned(),
    ]
}

/// The webhook server's TLS config: a certificate from `ca` for [`service_names`] and
/// `ip`, HTTP/1.1.
pub fn tls_config(
    ca: &Ca,
    namespace: &str,
    ip: IpAddr,
) -> Result<Arc<rustls::ServerConfig>, CaError> {
    let (chain, key) = ca.serving_identity_for(service_names(namespace), &[ip])?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Sign(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| CaError::Sign(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Why a CA bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{kind} {name}: {source}")]
    Api {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("{kind} {name} has no webhooks")]
    NoWebhooks { kind: &'static str, name: String },
}

/// The merge patch that sets `bundle_b64` on every webhook of `obj` (a merge patch
/// replaces a list whole, so the patch carries every webhook as it is, with the bundle);
/// `None` when every webhook has it already.
pub fn bundle_patch(obj: &J, bundle_b64: &str) -> Option<J> {
    let hooks = obj.get("webhooks")?.as_array()?;
    if hooks.is_empty()
        || hooks
            .iter()
            .all(|h| h.pointer("/clientConfig/caBundle").and_then(J::as_str) == Some(bundle_b64))
    {
        return None;
    }
    let patched: Vec<J> = hooks
        .iter()
        .map(|h| {
            let mut h = h.clone();
            if let Some(cc) = h.get_mut("clientConfig").and_then(J::as_object_mut) {
                cc.insert("caBundle".to_owned(), json!(bundle_b64));
            }
            h
        })
        .collect();
    Some(json!({"webhooks": patched}))
}

fn api(client: &kube::Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
    let plural = format!("{}s", kind.to_ascii_lowercase());
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, &plural),
    )
}

/// Writes `root_pem` into the caBundle of both webhook configurations for meshd in
/// `namespace`; returns how many webhooks were changed.
pub async fn patch_bundles(
    client: &kube::Client,
    namespace: &str,
    root_pem: &str,
) -> Result<usize, BundleError> {
    // The API's base64 for bytes, as k8s-openapi writes a `ByteString`.
    let bundle = serde_json::to_value(k8s_openapi::ByteString(root_pem.as_bytes().to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut changed = 0;
    for (kind, name) in [
        ("MutatingWebhookConfiguration", INJECTOR.to_owned()),
        ("ValidatingWebhookConfiguration", validator_name(namespace)),
    ] {
        let api = api(client, kind);
        let err = |source| BundleError::Api {
            kind,
            name: name.clone(),
            source,
        };
        let obj = api.get(&name).await.map_err(err)?;
        let value = serde_json::to_value(&obj.data).unwrap_or(J::Null);
        let hooks = value["webhooks"].as_array().map_or(0, Vec::len);
        if hooks == 0 {
            return Err(BundleError::NoWebhooks { kind, name });
        }
        if let Some(patch) = bundle_patch(&value, &bundle) {
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(err)?;
            changed += hooks;
        }
    }
    Ok(changed)
}

/// Keeps the bundles set until `stop` turns true, while this replica leads (`leading`,
/// from [`crate::leader`]: one writer per cluster): retries [`patch_bundles`] with
/// back-off (1 s to 30 s) while the configurations are missing (they may be applied after
/// meshd starts), then checks again every minute (a re-created configuration has no
/// bundle); a replica that starts leading checks at once.
pub async fn keep_bundles(
    client: kube::Client,
    namespace: String,
    root_pem: String,
    mut leading: tokio::sync::watch::Receiver<bool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut pause = Duration::from_secs(1);
    loop {
        if !crate::leader::wait_leading(&mut leading, &mut stop).await {
            return;
        }
        match patch_bundles(&client, &namespace, &root_pem).await {
            Ok(n) => {
                if n > 0 {
                    info!(webhooks.changed = n, "webhook CA bundles set");
                }
                pause = RECHECK;
            }
            Err(e) => {
                warn!(error = %e, retry_in = ?pause, "cannot set the webhook CA bundles");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = leading.changed() => {}
            _ = stop.changed() => return,
        }
        pause = if pause >= RECHECK {
            Duration::from_secs(1)
        } else {
            (pause * 2).min(Duration::from_secs(30))
        };
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_the_service() {
        let n = service_names("mesh");
        assert!(n.contains(&"meshd.mesh.svc".to_owned()));
        assert!(n.contains(&"meshd.mesh.svc.cluster.local".to_owned()));
        assert_eq!(validator_name("mesh"), "istio-validator-mesh");
    }

    #[test]
    fn the_patch_sets_every_bundle_once() {
        let obj = json!({"webhooks": [
            {"name": "a", "clientConfig": {"service": {"name": "meshd"}}},
            {"name": "b", "clientConfig": {"service": {"name": "meshd"}, "caBundle": "old"}},
        ]});
        let p = bundle_patch(&obj, "new").unwrap();
        let hooks = p["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 2);
        for h in hooks {
            assert_eq!(h["clientConfig"]["caBundle"], "new");
            assert_eq!(h["clientConfig"]["service"]["name"], "meshd");
        }
        let done = json!({"webhooks": hooks});
        assert!(bundle_patch(&done, "new").is_none());
        assert!(bundle_patch(&json!({"webhooks": []}), "new").is_none());
    }
}
