//! Names and small helpers several analyzers share: Istio's well-known labels, annotations
//! and container names, mesh-membership checks, and Go-style formatting of message arguments.

use std::fmt;

use crate::resource::Resource;

/// The sidecar container's name.
pub const PROXY_CONTAINER: &str = "istio-proxy";
/// Pod label (or annotation) that turns sidecar injection on or off for one pod.
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
/// Namespace label that turns sidecar injection on (`enabled`) or off.
pub const INJECTION_LABEL: &str = "istio-injection";
/// Label naming the control-plane revision that injects a namespace or pod.
pub const REVISION_LABEL: &str = "istio.io/rev";
/// Namespace or pod label that selects ambient mode.
pub const DATAPLANE_MODE_LABEL: &str = "istio.io/dataplane-mode";
/// Pod annotation the ambient CNI sets on pods whose traffic it redirects.
pub const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";
/// Istio's default root and control-plane namespace.
pub const ISTIO_SYSTEM: &str = "istio-system";

/// Whether a pod's traffic is captured by ambient mode.
pub fn pod_in_ambient_mode(pod: &Resource) -> bool {
    pod.annotations
        .get(AMBIENT_REDIRECTION)
        .is_some_and(|v| v == "enabled")
}

/// A list printed the way Go's `%v` prints a slice: `[a b c]`.
pub struct GoList<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for GoList<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{item}")?;
        }
        f.write_str("]")
    }
}

/// Test support: runs analyzers on YAML the way files-only analysis does.
#[cfg(test)]
pub mod testing {
    use crate::analysis::{self, AnalyzerDef, MeshConfig, Message};
    use crate::source;

    /// Loads `yaml` (which must load cleanly) and runs the named analyzer of `defs` on it.
    pub fn run_named(defs: &'static [AnalyzerDef], name: &str, yaml: &str) -> Vec<Message> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mesh = MeshConfig::default();
        let store = analysis::files_store(loaded.resources, &mesh);
        let def = defs
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no analyzer {name}"));
        analysis::run(&store, &mesh, &[def])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_list_formats_like_go() {
        assert_eq!(GoList(&["a", "b"]).to_string(), "[a b]");
        assert_eq!(GoList::<&str>(&[]).to_string(), "[]");
    }
}
