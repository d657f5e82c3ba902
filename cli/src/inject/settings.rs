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

/// What the injector needs to know besides the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The sidecar's image (`values.global.proxy.image`, `hub`/`tag`).
    pub proxy_image: String,
    /// The init container's image (`values.global.proxy_init.image`; default: the sidecar's).
    pub init_image: String,
    /// The agent's status port (15020): probes are rewritten to it.
    pub status_port: u16,
    /// Defaults for the `traffic.sidecar.istio.io/*` annotations.
    pub include_ip_ranges: String,
    pub exclude_ip_ranges: String,
    pub include_inbound_ports: String,
    pub exclude_inbound_ports: String,
    pub exclude_outbound_ports: String,
    /// Kubernetes native sidecars (an init container that keeps running).
    pub native_sidecar: bool,
    /// Rewrite HTTP/TCP/gRPC probes to pass through the agent.
    pub rewrite_probes: bool,
    /// `enabled` or `disabled` (pods without an inject annotation are skipped when disabled).
    pub policy_enabled: bool,
    /// Where the sidecar reaches meshd.
    pub discovery_address: String,
    /// The mesh's interception mode (REDIRECT, TPROXY, NONE).
    pub interception_mode: String,
    /// Image pull secrets added to every injected pod.
    pub image_pull_secrets: Vec<String>,
    /// A CNI plugin installs the capture rules: the init step only checks them.
    pub cni: bool,
}

/// The default sidecar image.
pub const DEFAULT_IMAGE: &str = "ghcr.io/meshctl/mesh-proxy:latest";

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            proxy_image: DEFAULT_IMAGE.to_owned(),
            init_image: DEFAULT_IMAGE.to_owned(),
            status_port: 15020,
            include_ip_ranges: "*".to_owned(),
            exclude_ip_ranges: String::new(),
            include_inbound_ports: "*".to_owned(),
            exclude_inbound_ports: String::new(),
            exclude_outbound_ports: String::new(),
            native_sidecar: true,
            rewrite_probes: true,
            policy_enabled: true,
            discovery_address: "meshd.istio-system.svc:15010".to_owned(),
            interception_mode: "REDIRECT".to_owned(),
            image_pull_secrets: Vec::new(),
            cni: false,
        }
    }
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

impl Settings {
    /// Applies an injector config file (see the module docs).
    pub fn apply_inject_config(&mut self, path: &Path) -> Result<(), InjectError> {
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
    pub fn apply_mesh_config(&mut self, path: &Path) -> Result<(), InjectError> {
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
