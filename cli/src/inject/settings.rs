//! The injector's settings: Istio's injection values (`values.global.proxy.*`) and mesh
//! config (`defaultConfig`) that change what `kube-inject` writes, read from
//! `--injectConfigFile` and `--meshConfigFile`.
//!
//! `--injectConfigFile` takes any of Istio's forms: the `istio-sidecar-injector` ConfigMap
//! (`data.values` JSON, `data.config` YAML with `policy`), an IstioOperator (`spec.values`),
//! or a plain document with `values:` (and optionally `policy:`). Settings not listed on
//! [`Settings`] are ignored.

use std::path::Path;

use serde_json::Value as J;

use super::InjectError;

pub use mesh_core::inject::settings::{DEFAULT_IMAGE, Settings};

/// Reading [`Settings`] from Istio's files (`--injectConfigFile`, `--meshConfigFile`).
pub trait SettingsFiles {
    /// Applies an injector config file.
    fn apply_inject_config(&mut self, path: &Path) -> Result<(), InjectError>;
    /// Applies a mesh config file.
    fn apply_mesh_config(&mut self, path: &Path) -> Result<(), InjectError>;
}

fn read_yaml(path: &Path) -> Result<J, InjectError> {
    let text = std::fs::read_to_string(path).map_err(|e| InjectError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    let docs = mesh_core::yaml::parse_documents(&text);
    let Some(doc) = docs.into_iter().next() else {
        return Ok(J::Null);
    };
    match doc.result {
        Ok(node) => Ok(node.to_json()),
        Err(e) => Err(InjectError::Syntax {
            file: path.display().to_string(),
            line: e.line,
            message: e.message,
        }),
    }
}

fn text(v: &J) -> Option<String> {
    match v {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SettingsFiles for Settings {
    /// Applies an injector config file (see the module docs).
    fn apply_inject_config(&mut self, path: &Path) -> Result<(), InjectError> {
        let doc = read_yaml(path)?;
        let bad = |m: String| InjectError::Config {
            path: path.display().to_string(),
            message: m,
        };
        let mut values = J::Null;
        let mut config = J::Null;
        if let Some(data) = doc.get("data") {
            if let Some(v) = data.get("values").and_then(J::as_str) {
                values = serde_json::from_str(v).map_err(|e| bad(format!("data.values: {e}")))?;
            }
            if let Some(c) = data.get("config").and_then(J::as_str) {
                let docs = mesh_core::yaml::parse_documents(c);
                if let Some(Ok(node)) = docs.into_iter().next().map(|d| d.result) {
                    config = node.to_json();
                }
            }
        } else if let Some(v) = doc.pointer("/spec/values") {
            values = v.clone();
        } else {
            values = doc.get("values").cloned().unwrap_or(J::Null);
            config = doc.clone();
        }
        for cni in [
            doc.pointer("/components/cni/enabled"),
            doc.pointer("/spec/components/cni/enabled"),
            values.pointer("/istio_cni/enabled"),
        ]
        .into_iter()
        .flatten()
        {
            if let J::Bool(b) = cni {
                self.cni = *b;
            }
        }
        if let Some(p) = config.get("policy").and_then(J::as_str) {
            self.policy_enabled = !p.eq_ignore_ascii_case("disabled");
        }
        let global = values.get("global").cloned().unwrap_or(J::Null);
        let proxy = global.get("proxy").cloned().unwrap_or(J::Null);
        let s = |p: &J, k: &str| p.get(k).and_then(text);
        if let Some(image) = s(&proxy, "image") {
            let hub = s(&global, "hub");
            let tag = s(&global, "tag");
            self.proxy_image = if image.contains('/') || hub.is_none() {
                image
            } else {
                format!(
                    "{}/{image}:{}",
                    hub.unwrap_or_default(),
                    tag.unwrap_or_else(|| "latest".into())
                )
            };
            self.init_image = self.proxy_image.clone();
        }
        if let Some(image) = values.pointer("/global/proxy_init/image").and_then(text) {
            self.init_image = image;
        }
        if let Some(port) = s(&proxy, "statusPort") {
            self.status_port = port
                .parse()
                .map_err(|_| bad(format!("global.proxy.statusPort {port:?} is not a port")))?;
        }
        for (key, field) in [
            ("includeIPRanges", &mut self.include_ip_ranges),
            ("excludeIPRanges", &mut self.exclude_ip_ranges),
            ("includeInboundPorts", &mut self.include_inbound_ports),
            ("excludeInboundPorts", &mut self.exclude_inbound_ports),
            ("excludeOutboundPorts", &mut self.exclude_outbound_ports),
        ] {
            if let Some(v) = s(&proxy, key) {
                *field = v;
            }
        }
        if let Some(J::Array(secrets)) = global.get("imagePullSecrets") {
            self.image_pull_secrets = secrets.iter().filter_map(text).collect();
        }
        if let Some(J::Bool(b)) = values.pointer("/sidecarInjectorWebhook/rewriteAppHTTPProbe") {
            self.rewrite_probes = *b;
        }
        Ok(())
    }

    /// Applies a mesh config file (`defaultConfig.discoveryAddress`, `interceptionMode`).
    fn apply_mesh_config(&mut self, path: &Path) -> Result<(), InjectError> {
        let doc = read_yaml(path)?;
        // A ConfigMap carries the mesh config as text under data.mesh.
        let mesh = match doc.pointer("/data/mesh").and_then(J::as_str) {
            Some(m) => mesh_core::yaml::parse_documents(m)
                .into_iter()
                .next()
                .and_then(|d| d.result.ok())
                .map_or(J::Null, |n| n.to_json()),
            None => doc,
        };
        if let Some(a) = mesh
            .pointer("/defaultConfig/discoveryAddress")
            .and_then(text)
        {
            self.discovery_address = a;
        }
        if let Some(m) = mesh
            .pointer("/defaultConfig/interceptionMode")
            .and_then(text)
        {
            self.interception_mode = m;
        }
        Ok(())
    }
}
