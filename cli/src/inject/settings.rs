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

use mesh_core::inject::settings::scalar_text;

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

/// The sidecar's `--xds-address` for a mesh config's `discoveryAddress`. Istio names
/// istiod's TLS port 15012, where it serves both xDS and the CA; meshd serves xDS in plain
/// text on 15010 and the CA on 15012 (mesh-proxy dials the xDS host on 15012 for
/// certificates), so a 15012 address means the same host on 15010.
fn xds_address(discovery: &str) -> String {
    match discovery.rsplit_once(':') {
        Some((host, "15012")) => format!("{host}:15010"),
        _ => discovery.to_owned(),
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
        self.apply_injector(&doc, &values, &config).map_err(bad)
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
            .and_then(scalar_text)
        {
            self.discovery_address = xds_address(&a);
        }
        if let Some(m) = mesh
            .pointer("/defaultConfig/interceptionMode")
            .and_then(scalar_text)
        {
            self.interception_mode = m;
        }
        Ok(())
    }
}
