//! Mesh-wide configuration (Istio's MeshConfig), as far as analysis reads it.

use serde_json::Value;

/// MeshConfig as JSON, with accessors and Istio's defaults for the fields analyzers use.
#[derive(Clone, Debug, Default)]
pub struct MeshConfig {
    pub json: Value,
    /// MeshNetworks (`--meshNetworksFile`), when given.
    pub networks: Option<Value>,
}

impl MeshConfig {
    pub fn from_json(json: Value) -> Self {
        MeshConfig {
            json,
            networks: None,
        }
    }

    /// The root namespace (`rootNamespace`, default `istio-system`).
    pub fn root_namespace(&self) -> &str {
        self.json
            .get("rootNamespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("istio-system")
    }

    /// `ingressControllerMode` (default `STRICT`... Istio's default is STRICT for
    /// the Kubernetes ingress; analysis only cares whether it is `OFF`).
    pub fn ingress_controller_off(&self) -> bool {
        self.json
            .get("ingressControllerMode")
            .and_then(Value::as_str)
            .is_some_and(|m| m.eq_ignore_ascii_case("OFF"))
    }

    /// A proxy metadata value from `defaultConfig.proxyMetadata`.
    pub fn proxy_metadata(&self, key: &str) -> Option<&str> {
        self.json
            .pointer("/defaultConfig/proxyMetadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
    }

    /// The trust domain (default `cluster.local`).
    pub fn trust_domain(&self) -> &str {
        self.json
            .get("trustDomain")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("cluster.local")
    }
}

/// Why a mesh config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: invalid YAML: {message}")]
    Syntax {
        file: String,
        line: u32,
        message: String,
    },
    #[error("{file}: mesh config must be a mapping")]
    NotAMap { file: String },
}

impl MeshConfig {
    /// Reads a MeshConfig YAML file (the bare MeshConfig, as `--meshConfigFile` takes it).
    pub fn from_file(path: &std::path::Path) -> Result<Self, MeshConfigError> {
        Ok(MeshConfig::from_json(read_yaml_map(path)?))
    }

    /// Adds MeshNetworks read from a file (`--meshNetworksFile`).
    pub fn with_networks_file(mut self, path: &std::path::Path) -> Result<Self, MeshConfigError> {
        self.networks = Some(read_yaml_map(path)?);
        Ok(self)
    }

    /// The mesh config carried by a ConfigMap `istio` (key `mesh`) among the objects, if any.
    pub fn from_configmap(
        resources: &[crate::resource::Resource],
        root_namespace: &str,
    ) -> Option<Self> {
        let cm = resources
            .iter()
            .rev()
            .find(|r| r.is("", "ConfigMap") && r.name == "istio" && r.ns() == root_namespace)?;
        let text = cm.json.pointer("/data/mesh")?.as_str()?;
        let doc = crate::yaml::parse_documents(text).into_iter().next()?;
        let json = doc.result.ok()?.to_json();
        json.is_object().then(|| MeshConfig::from_json(json))
    }
}

fn read_yaml_map(path: &std::path::Path) -> Result<Value, MeshConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MeshConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let Some(doc) = crate::yaml::parse_documents(&text).into_iter().next() else {
        return Ok(Value::Object(Default::default()));
    };
    let node = doc.result.map_err(|e| MeshConfigError::Syntax {
        file: file.clone(),
        line: e.line,
        message: e.message,
    })?;
    match node.to_json() {
        v @ Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(MeshConfigError::NotAMap { file }),
    }
}
