//! Resources: one Kubernetes-style object taken from a YAML document, with where it came from.
//!
//! This module owns the identity of an object (group, version, kind, namespace, name), the
//! defaults the API server would apply to its metadata, and the positioned tree it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::yaml::Node;

/// Group and kind, the identity of a collection. The version is kept on the resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

/// Well-known group names.
pub mod groups {
    pub const CORE: &str = "";
    pub const NETWORKING: &str = "networking.istio.io";
    pub const SECURITY: &str = "security.istio.io";
    pub const TELEMETRY: &str = "telemetry.istio.io";
    pub const EXTENSIONS: &str = "extensions.istio.io";
    pub const APPS: &str = "apps";
    pub const BATCH: &str = "batch";
    pub const GATEWAY_API: &str = "gateway.networking.k8s.io";
    pub const ADMISSION: &str = "admissionregistration.k8s.io";
    pub const APIEXTENSIONS: &str = "apiextensions.k8s.io";
}

/// Where an object was read from: the file (or `-` for stdin) and the line its document starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One object of any kind.
#[derive(Clone, Debug)]
pub struct Resource {
    pub api_version: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    /// `None` for cluster-scoped kinds; `default` when a namespaced object gave none.
    pub namespace: Option<String>,
    /// Whether the file itself named the namespace (origins print `Kind name` otherwise
    /// only for cluster-scoped kinds; this is kept for tools that want to know).
    pub namespace_given: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub origin: Origin,
    /// The object as positioned YAML, for field lines.
    pub node: Arc<Node>,
    /// The object as JSON, for typed models and generic field access.
    pub json: Arc<serde_json::Value>,
}

impl Resource {
    pub fn group_kind(&self) -> GroupKind {
        GroupKind {
            group: self.group.clone(),
            kind: self.kind.clone(),
        }
    }

    pub fn is(&self, group: &str, kind: &str) -> bool {
        self.group == group && self.kind == kind
    }

    /// `ns/name`, or `name` for cluster-scoped objects.
    pub fn full_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The namespace, or the empty string for cluster-scoped objects.
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    /// Istio's way to name a resource in messages: `Kind ns/name` or `Kind name`.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.kind, self.full_name())
    }

    /// The `spec` of the object (JSON null when absent).
    pub fn spec(&self) -> &serde_json::Value {
        self.json.get("spec").unwrap_or(&serde_json::Value::Null)
    }

    /// The line of a field of this object (`spec.hosts[0]`), or the object's own line.
    pub fn line_of(&self, path: &str) -> u32 {
        if path.is_empty() {
            return self.origin.line;
        }
        self.node.line_of(path)
    }
}

/// Kinds that live outside namespaces, so that they get no `default` namespace.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Namespace")
            | ("", "Node")
            | ("", "PersistentVolume")
            | ("", "ComponentStatus")
            | ("rbac.authorization.k8s.io", "ClusterRole")
            | ("rbac.authorization.k8s.io", "ClusterRoleBinding")
            | (groups::ADMISSION, "MutatingWebhookConfiguration")
            | (groups::ADMISSION, "ValidatingWebhookConfiguration")
            | (groups::ADMISSION, "ValidatingAdmissionPolicy")
            | (groups::ADMISSION, "ValidatingAdmissionPolicyBinding")
            | (groups::APIEXTENSIONS, "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | ("storage.k8s.io", "StorageClass")
            | ("scheduling.k8s.io", "PriorityClass")
            | ("networking.k8s.io", "IngressClass")
            | (groups::GATEWAY_API, "GatewayClass")
            | ("certificates.k8s.io", "CertificateSigningRequest")
    )
}

/// Splits `group/version` (or a bare `v1`, the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}
