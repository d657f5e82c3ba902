//! `meshctl kube-inject`: adds the sidecar and its init step to the pods of a manifest,
//! with no cluster.
//!
//! This module owns the stream: every document of the input (and every item of a `List`)
//! is kept, in order; Pods and the pod templates of Deployments, StatefulSets, DaemonSets,
//! ReplicaSets, ReplicationControllers, Jobs, CronJobs and OpenShift DeploymentConfigs are
//! injected ([`pod`]); every other object passes through unchanged. Problems point at
//! `file:line`.

pub use mesh_core::inject::{pod, probes};
pub mod settings;

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::Value as J;
use thiserror::Error;

pub use pod::Outcome;
pub use settings::{Settings, SettingsFiles};

use crate::exit;

#[derive(Debug, Args)]
pub struct KubeInjectArgs {
    /// The manifest to inject (`-` reads stdin).
    #[arg(short, long = "filename", value_name = "FILE|-")]
    pub file: PathBuf,
    /// Write the injected manifest here instead of stdout.
    #[arg(short, long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Mesh config (a MeshConfig document, or the `istio` ConfigMap).
    #[arg(
        long = "meshConfigFile",
        alias = "mesh-config-file",
        value_name = "FILE"
    )]
    pub mesh_config_file: Option<PathBuf>,
    /// Injector config: the `istio-sidecar-injector` ConfigMap, an IstioOperator, or a
    /// document with `values:` (`global.proxy.*` settings).
    #[arg(
        long = "injectConfigFile",
        alias = "inject-config-file",
        value_name = "FILE"
    )]
    pub inject_config_file: Option<PathBuf>,
}

/// Errors of kube-inject; each names the file and line it is about.
#[derive(Debug, Error)]
pub enum InjectError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: error: {message}")]
    Syntax {
        file: String,
        line: u32,
        message: String,
    },
    #[error("{file}:{line}: error: {message}")]
    Object {
        file: String,
        line: u32,
        message: String,
    },
    #[error("{path}: {message}")]
    Config { path: String, message: String },
}

/// What happened to one pod template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `Kind ns/name`.
    pub object: String,
    pub outcome: Outcome,
}

/// The result of injecting a stream.
#[derive(Debug)]
pub struct Injected {
    /// The output documents as JSON, in input order.
    pub documents: Vec<J>,
    pub reports: Vec<Report>,
}

impl Injected {
    /// The documents as a multi-document YAML stream.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.documents.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            out.push_str(&crate::output::to_yaml(d));
        }
        out
    }
}

/// Where a kind keeps its pod template, as a JSON pointer (`""`: the object is a Pod).
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "DaemonSet"
        | "ReplicaSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController"
        | "DeploymentConfig" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// A JSON pointer as a field path for `line_of` (`/spec/template` -> `spec.template`).
fn pointer_path(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

/// Injects every document of `text` (read from `file`, for messages).
pub fn inject_text(text: &str, file: &str, settings: &Settings) -> Result<Injected, InjectError> {
    let mut out = Injected {
        documents: Vec::new(),
        reports: Vec::new(),
    };
    for doc in mesh_core::yaml::parse_documents(text) {
        let node = doc.result.map_err(|e| InjectError::Syntax {
            file: file.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        let mut value = node.to_json();
        let located = |path: &str, message: String| InjectError::Object {
            file: file.to_owned(),
            line: node.line_of(path),
            message,
        };
        inject_object(&mut value, "", settings, &mut out.reports, &located)?;
        out.documents.push(value);
    }
    Ok(out)
}

fn inject_object(
    obj: &mut J,
    path: &str,
    settings: &Settings,
    reports: &mut Vec<Report>,
    located: &dyn Fn(&str, String) -> InjectError,
) -> Result<(), InjectError> {
    let kind = obj.get("kind").and_then(J::as_str).unwrap_or("").to_owned();
    if kind == "List" || kind.ends_with("List") && obj.get("items").is_some_and(J::is_array) {
        if let Some(J::Array(items)) = obj.get_mut("items") {
            for (i, item) in items.iter_mut().enumerate() {
                let p = format!("{path}items[{i}].");
                inject_object(item, &p, settings, reports, located)?;
            }
        }
        return Ok(());
    }
    let Some(pointer) = template_pointer(&kind) else {
        return Ok(());
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(J::as_str)
        .unwrap_or("")
        .to_owned();
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(J::as_str)
        .unwrap_or("default")
        .to_owned();
    let Some(template) = obj.pointer_mut(pointer) else {
        return Err(located(
            &format!("{path}{}", pointer_path(pointer)),
            format!("{kind} {namespace}/{name} has no pod template"),
        ));
    };
    // Taken out in place (a null is left in each slot), so every key keeps its position.
    let mut meta = template.get_mut("metadata").map(J::take).unwrap_or(J::Null);
    let mut spec = template.get_mut("spec").map(J::take).unwrap_or(J::Null);
    if !spec.is_object() {
        return Err(located(
            &format!("{path}{}", pointer_path(pointer)),
            format!("{kind} {namespace}/{name}: the pod template has no spec"),
        ));
    }
    let owner = pod::Owner {
        kind: &kind,
        name: &name,
        namespace: &namespace,
    };
    let result = pod::inject(&mut meta, &mut spec, &owner, settings);
    if let Some(t) = template.as_object_mut() {
        if let Some(slot) = t.get_mut("metadata") {
            *slot = meta;
        } else if !meta.is_null() {
            // A template that had no metadata gets it before its spec.
            let rest = std::mem::take(t);
            for (k, v) in rest {
                if k == "spec" {
                    t.insert("metadata".into(), std::mem::take(&mut meta));
                }
                t.insert(k, v);
            }
        }
        if let Some(slot) = t.get_mut("spec") {
            *slot = spec;
        }
    }
    let outcome = result.map_err(|e| {
        let base = pointer_path(pointer);
        let field = if base.is_empty() {
            format!("{path}{}", e.field)
        } else {
            format!("{path}{base}.{}", e.field)
        };
        located(&field, e.message)
    })?;
    reports.push(Report {
        object: format!("{kind} {namespace}/{name}"),
        outcome,
    });
    Ok(())
}

/// Runs `meshctl kube-inject`.
pub fn run(args: &KubeInjectArgs) -> u8 {
    let mut settings = Settings::default();
    if let Some(p) = &args.inject_config_file
        && let Err(e) = settings.apply_inject_config(p)
    {
        eprintln!("meshctl kube-inject: {e}");
        return exit::BAD_INPUT;
    }
    if let Some(p) = &args.mesh_config_file
        && let Err(e) = settings.apply_mesh_config(p)
    {
        eprintln!("meshctl kube-inject: {e}");
        return exit::BAD_INPUT;
    }
    let (file, text) = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("meshctl kube-inject: cannot read stdin: {e}");
            return exit::BAD_INPUT;
        }
        ("<stdin>".to_owned(), s)
    } else {
        match std::fs::read_to_string(&args.file) {
            Ok(s) => (args.file.display().to_string(), s),
            Err(e) => {
                eprintln!(
                    "meshctl kube-inject: cannot read {}: {e}",
                    args.file.display()
                );
                return exit::BAD_INPUT;
            }
        }
    };
    let injected = match inject_text(&text, &file, &settings) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return exit::BAD_INPUT;
        }
    };
    for r in &injected.reports {
        if let Outcome::Skipped(why) = &r.outcome {
            eprintln!("Skipping injection of {}: {why}", r.object);
        }
    }
    let yaml = injected.to_yaml();
    let written = match &args.output {
        Some(path) => std::fs::write(path, yaml.as_bytes()),
        None => std::io::stdout().lock().write_all(yaml.as_bytes()),
    };
    if let Err(e) = written {
        eprintln!("meshctl kube-inject: cannot write the output: {e}");
        return exit::BAD_INPUT;
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn inject(text: &str) -> Result<Injected, InjectError> {
        inject_text(text, "in.yaml", &Settings::default())
    }

    const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
spec:
  containers:
  - name: web
    image: web:1
";

    #[test]
    fn every_document_and_list_item_is_kept_in_order() {
        let text = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec: {{}}\n---\n{POD}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n- {}\n",
            POD.trim_end().replace('\n', "\n  ")
        );
        let out = inject(&text).unwrap();
        let kinds: Vec<&str> = out
            .documents
            .iter()
            .map(|d| d["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Service", "Pod", "List"]);
        let items = out.documents[2]["items"].as_array().unwrap();
        assert_eq!(items[0]["kind"], "ConfigMap");
        assert_eq!(items[1]["kind"], "Pod");
        assert_eq!(out.reports.len(), 2);
        // The Service is untouched.
        assert_eq!(out.documents[0]["spec"], serde_json::json!({}));
        // The injected Pod: init step first, the sidecar as a native sidecar.
        let inits = out.documents[1]["spec"]["initContainers"]
            .as_array()
            .unwrap();
        assert_eq!(inits[0]["name"], "istio-init");
        assert_eq!(inits[1]["name"], "istio-proxy");
        assert_eq!(inits[1]["restartPolicy"], "Always");
        assert_eq!(inits[0]["args"][0], "init");
        let yaml = out.to_yaml();
        assert_eq!(yaml.matches("\n---\n").count(), 2, "{yaml}");
    }

    #[test]
    fn annotations_set_the_init_flags() {
        let text = POD.replace(
            "  namespace: shop\n",
            "  namespace: shop\n  annotations:\n    traffic.sidecar.istio.io/excludeOutboundPorts: \"5432\"\n    traffic.sidecar.istio.io/includeOutboundIPRanges: 10.96.0.0/12\n    traffic.sidecar.istio.io/includeInboundPorts: \"\"\n",
        );
        let out = inject(&text).unwrap();
        let args: Vec<String> = out.documents[0]["spec"]["initContainers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let flag = |f: &str| {
            let i = args.iter().position(|a| a == f).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(flag("--include-outbound-ip-ranges"), "10.96.0.0/12");
        assert_eq!(flag("--include-inbound-ports"), "");
        assert_eq!(flag("--exclude-outbound-ports"), "5432");
        assert_eq!(flag("--exclude-inbound-ports"), "15090,15021,15020");
        assert_eq!(flag("--proxy-uid"), "1337");
    }

    #[test]
    fn bad_annotations_point_at_their_line() {
        let text = POD.replace(
            "  namespace: shop\n",
            "  namespace: shop\n  annotations:\n    traffic.sidecar.istio.io/excludeInboundPorts: \"80,http\"\n",
        );
        let err = inject(&text).unwrap_err().to_string();
        assert!(err.starts_with("in.yaml:7: error:"), "{err}");
        assert!(err.contains("excludeInboundPorts"), "{err}");
    }

    #[test]
    fn injecting_twice_is_refused() {
        let once = inject(POD).unwrap().to_yaml();
        let err = inject(&once).unwrap_err().to_string();
        assert!(err.contains("already has a sidecar"), "{err}");
        assert!(err.starts_with("in.yaml:"), "{err}");
    }

    #[test]
    fn skips_host_network_and_opt_outs() {
        let host = POD.replace("spec:\n", "spec:\n  hostNetwork: true\n");
        let out = inject(&host).unwrap();
        assert_eq!(
            out.reports[0].outcome,
            Outcome::Skipped("host networking is enabled".into())
        );
        assert!(out.documents[0]["spec"].get("initContainers").is_none());
        let off = POD.replace(
            "  namespace: shop\n",
            "  namespace: shop\n  annotations:\n    sidecar.istio.io/inject: \"false\"\n",
        );
        assert!(matches!(
            inject(&off).unwrap().reports[0].outcome,
            Outcome::Skipped(_)
        ));
        let system = POD.replace("namespace: shop", "namespace: kube-system");
        assert!(matches!(
            inject(&system).unwrap().reports[0].outcome,
            Outcome::Skipped(_)
        ));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = inject("kind: Pod\nmetadata: [\n").unwrap_err().to_string();
        assert!(err.starts_with("in.yaml:"), "{err}");
    }
}
