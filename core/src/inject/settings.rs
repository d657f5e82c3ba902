//! The injector's settings: what changes the sidecar the injector writes (images, ports,
//! capture defaults, policy, meshd's address), and reading them from Istio's injector
//! config: the `istio-sidecar-injector` ConfigMap (`data.values` JSON, `data.config` YAML
//! with `policy`), or its parts. meshctl reads them from Istio's files
//! (`--injectConfigFile`, `--meshConfigFile`); meshd's webhook from the ConfigMap in the
//! cluster.

use serde_json::Value as J;

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

/// A scalar of injector or mesh config as text (strings, numbers and booleans alike).
pub fn scalar_text(v: &J) -> Option<String> {
    match v {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Settings {
    /// Applies the `istio-sidecar-injector` ConfigMap (the whole object, as the API
    /// server holds it): `data.values` (JSON) and `data.config` (YAML, for `policy`).
    pub fn apply_injector_configmap(&mut self, configmap: &J) -> Result<(), String> {
        let data = configmap.get("data").cloned().unwrap_or(J::Null);
        let values = match data.get("values").and_then(J::as_str) {
            Some(v) => serde_json::from_str(v).map_err(|e| format!("data.values: {e}"))?,
            None => J::Null,
        };
        let config = match data.get("config").and_then(J::as_str) {
            Some(c) => match crate::yaml::parse_documents(c).into_iter().next() {
                Some(doc) => doc
                    .result
                    .map_err(|e| format!("data.config line {}: {}", e.line, e.message))?
                    .to_json(),
                None => J::Null,
            },
            None => J::Null,
        };
        self.apply_injector(configmap, &values, &config)
    }

    /// Applies Istio's injection `values` (`global.proxy.image`, `global.hub`/`tag`,
    /// `global.proxy_init.image`, `global.proxy.statusPort`, the `traffic.sidecar.istio.io`
    /// defaults, `global.imagePullSecrets`, `sidecarInjectorWebhook.rewriteAppHTTPProbe`,
    /// `istio_cni.enabled`) and the injector `config` (`policy: enabled|disabled`); `doc` is
    /// the whole document, for an IstioOperator's `components.cni.enabled`. Settings not
    /// listed on [`Settings`] are ignored.
    pub fn apply_injector(&mut self, doc: &J, values: &J, config: &J) -> Result<(), String> {
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
        let s = |p: &J, k: &str| p.get(k).and_then(scalar_text);
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
        if let Some(image) = values
            .pointer("/global/proxy_init/image")
            .and_then(scalar_text)
        {
            self.init_image = image;
        }
        if let Some(port) = s(&proxy, "statusPort") {
            self.status_port = port
                .parse()
                .map_err(|_| format!("global.proxy.statusPort {port:?} is not a port"))?;
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
            self.image_pull_secrets = secrets.iter().filter_map(scalar_text).collect();
        }
        if let Some(J::Bool(b)) = values.pointer("/sidecarInjectorWebhook/rewriteAppHTTPProbe") {
            self.rewrite_probes = *b;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_configmap_sets_image_and_policy() {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio-sidecar-injector", "namespace": "istio-system"},
            "data": {
                "values": json!({"global": {"hub": "registry.example/mesh", "tag": "1.2.3",
                    "proxy": {"image": "mesh-proxy", "statusPort": 15020}}}).to_string(),
                "config": "policy: disabled\ntemplates: {}\n",
            },
        });
        let mut s = Settings::default();
        s.apply_injector_configmap(&cm).unwrap();
        assert_eq!(s.proxy_image, "registry.example/mesh/mesh-proxy:1.2.3");
        assert_eq!(s.init_image, s.proxy_image);
        assert!(!s.policy_enabled);
        // A full image name is taken as it is; no config keeps the policy.
        let cm = json!({"data": {"values": r#"{"global": {"hub": "h", "proxy": {"image": "x.io/p:9"}}}"#}});
        let mut s = Settings::default();
        s.apply_injector_configmap(&cm).unwrap();
        assert_eq!(s.proxy_image, "x.io/p:9");
        assert!(s.policy_enabled);
        // An empty ConfigMap changes nothing; broken values say where.
        let mut s = Settings::default();
        s.apply_injector_configmap(&json!({"data": {}})).unwrap();
        assert_eq!(s, Settings::default());
        let err = s
            .apply_injector_configmap(&json!({"data": {"values": "{not json"}}))
            .unwrap_err();
        assert!(err.starts_with("data.values"), "{err}");
    }
}
