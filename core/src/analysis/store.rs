//! The set of objects under analysis, indexed by kind and by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::resource::{Origin, Resource, groups};
use crate::yaml::{Key, Node, Value};

use super::MessageOrigin;

/// Objects under analysis. Built once; analyzers only read it.
#[derive(Debug, Default)]
pub struct Store {
    resources: Vec<Resource>,
    by_kind: HashMap<(String, String), Vec<usize>>,
    by_name: HashMap<(String, String, String, String), usize>,
    /// Objects defined twice: (the replaced one's origin, the replacing one).
    replaced: Vec<(crate::resource::Origin, Resource)>,
}

/// Marks a Pod derived from a workload controller's template (value: `Kind ns/name` of the
/// controller).
pub const DERIVED_FROM_ANNOTATION: &str = "meshctl.dev/derived-from";

/// Whether an object is a Pod derived from a pod template rather than read from the files.
pub fn is_derived(r: &Resource) -> bool {
    r.annotations.contains_key(DERIVED_FROM_ANNOTATION)
}

/// The file name given to objects meshctl adds itself (the default ingress gateway).
pub const DEFAULTS_FILE: &str = "(default)";

impl Store {
    /// Indexes `resources`. A later object with the same kind, namespace and name replaces
    /// an earlier one (as a second `kubectl apply` would).
    pub fn new(resources: Vec<Resource>) -> Self {
        let mut store = Store::default();
        for r in resources {
            store.insert(r);
        }
        store
    }

    fn insert(&mut self, r: Resource) {
        let key = (
            r.group.clone(),
            r.kind.clone(),
            r.ns().to_owned(),
            r.name.clone(),
        );
        if let Some(&i) = self.by_name.get(&key) {
            let old = std::mem::replace(&mut self.resources[i], r.clone());
            self.replaced.push((old.origin, r));
            return;
        }
        let i = self.resources.len();
        self.by_kind
            .entry((r.group.clone(), r.kind.clone()))
            .or_default()
            .push(i);
        self.by_name.insert(key, i);
        self.resources.push(r);
    }

    /// Adds the ingress gateway Istio's files-only analysis assumes: a Pod
    /// `istio-ingressgateway-dummypod` labelled `istio: ingressgateway` and the Service
    /// `istio-ingressgateway` (http2 80, https 443, tcp 31400, tls 15443), both in
    /// `istio-system`, unless the files define them already.
    pub fn add_default_ingress_gateway(&mut self) {
        let file: Arc<str> = Arc::from(DEFAULTS_FILE);
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "istio-ingressgateway-dummypod", "namespace": "istio-system",
                          "labels": {"istio": "ingressgateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]}
        });
        let svc = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"}, "ports": [
                {"name": "http2", "port": 80, "targetPort": 80, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 443, "protocol": "TCP"},
                {"name": "tcp", "port": 31400, "targetPort": 31400, "protocol": "TCP"},
                {"name": "tls", "port": 15443, "targetPort": 15443, "protocol": "TCP"}
            ]}
        });
        for (kind, name, json) in [
            ("Pod", "istio-ingressgateway-dummypod", pod),
            ("Service", "istio-ingressgateway", svc),
        ] {
            if self.get("", kind, "istio-system", name).is_some() {
                continue;
            }
            let mut labels = BTreeMap::new();
            if kind == "Pod" {
                labels.insert("istio".to_owned(), "ingressgateway".to_owned());
            }
            self.insert(Resource {
                api_version: "v1".into(),
                group: groups::CORE.into(),
                version: "v1".into(),
                kind: kind.into(),
                name: name.into(),
                namespace: Some("istio-system".into()),
                namespace_given: true,
                labels,
                annotations: BTreeMap::new(),
                origin: Origin {
                    file: file.clone(),
                    line: 0,
                },
                node: Arc::new(node_from_json(&json)),
                json: Arc::new(json),
            });
        }
    }

    /// Files-only analysis sees manifests, not running Pods: a Deployment's Pods only exist
    /// in a cluster. So that selectors (DestinationRule subsets, policies, gateways) are
    /// judged against the workloads the manifests describe, each workload controller
    /// (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, ...) whose pod template
    /// no Pod in the files matches gets a derived Pod `NAME-*` with the template's labels,
    /// annotations and spec, at the template's line, marked with [`DERIVED_FROM_ANNOTATION`].
    /// Analyzers that report on Pods themselves skip derived ones ([`is_derived`]).
    pub fn add_template_pods(&mut self) {
        let mut derived = Vec::new();
        for r in &self.resources {
            if r.is(groups::CORE, "Pod") {
                continue;
            }
            let (Some(spec_ptr), Some(meta_ptr)) = (
                crate::kinds::pod_spec_pointer(&r.group, &r.kind),
                crate::kinds::pod_metadata_pointer(&r.group, &r.kind),
            ) else {
                continue;
            };
            let meta = r.json.pointer(meta_ptr);
            let labels = super::json::string_map_at(r.json.as_ref(), &format!("{meta_ptr}/labels"));
            if labels.is_empty() {
                continue;
            }
            let has_pod = self.of(groups::CORE, "Pod").any(|p| {
                p.namespace == r.namespace && super::json::selector_matches(&labels, &p.labels)
            });
            if has_pod {
                continue;
            }
            let mut annotations =
                super::json::string_map_at(r.json.as_ref(), &format!("{meta_ptr}/annotations"));
            annotations.insert(DERIVED_FROM_ANNOTATION.to_owned(), r.display_name());
            let name = format!("{}-*", r.name);
            let json = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": r.namespace,
                    "labels": meta.and_then(|m| m.get("labels")).cloned().unwrap_or_default(),
                    "annotations": annotations,
                },
                "spec": r.json.pointer(spec_ptr).cloned().unwrap_or_default(),
            });
            let template_path = spec_ptr
                .trim_start_matches('/')
                .trim_end_matches("/spec")
                .replace('/', ".");
            let mut node = node_from_json(&json);
            node.line = r.line_of(&template_path);
            derived.push(Resource {
                api_version: "v1".into(),
                group: groups::CORE.into(),
                version: "v1".into(),
                kind: "Pod".into(),
                name,
                namespace: r.namespace.clone(),
                namespace_given: r.namespace_given,
                labels,
                annotations,
                origin: Origin {
                    file: r.origin.file.clone(),
                    line: node.line,
                },
                node: Arc::new(node),
                json: Arc::new(json),
            });
        }
        for r in derived {
            self.insert(r);
        }
    }

    /// Objects the input defined more than once (same kind, namespace and name): the origin
    /// of the definition that was dropped, and the object that replaced it. Applying such
    /// input keeps only the last one, silently; analysis says so.
    pub fn replaced(&self) -> &[(crate::resource::Origin, Resource)] {
        &self.replaced
    }

    /// Every object, in load order.
    pub fn all(&self) -> &[Resource] {
        &self.resources
    }

    /// Objects of one kind, in load order.
    pub fn of<'s>(&'s self, group: &str, kind: &str) -> impl Iterator<Item = &'s Resource> + 's {
        self.by_kind
            .get(&(group.to_owned(), kind.to_owned()))
            .into_iter()
            .flatten()
            .map(|&i| &self.resources[i])
    }

    /// One object by kind, namespace (`""` for cluster-scoped) and name.
    pub fn get(&self, group: &str, kind: &str, namespace: &str, name: &str) -> Option<&Resource> {
        self.by_name
            .get(&(
                group.to_owned(),
                kind.to_owned(),
                namespace.to_owned(),
                name.to_owned(),
            ))
            .map(|&i| &self.resources[i])
    }

    /// The object a message is about.
    pub fn find_by_origin(&self, o: &MessageOrigin) -> Option<&Resource> {
        self.resources.iter().find(|r| {
            r.kind == o.kind
                && r.name == o.name
                && r.namespace == o.namespace
                && *r.origin.file == *o.file
        })
    }

    /// Every namespace mentioned: Namespace objects and the namespaces of all objects.
    pub fn namespaces(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .of(groups::CORE, "Namespace")
            .map(|r| r.name.clone())
            .collect();
        out.extend(self.resources.iter().filter_map(|r| r.namespace.clone()));
        out
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// A positioned tree for objects that came from no file (all lines 0).
pub fn node_from_json(v: &serde_json::Value) -> Node {
    use serde_json::Value as J;
    let value = match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)), Value::Int),
        J::String(s) => Value::Str(s.clone()),
        J::Array(a) => Value::Seq(a.iter().map(node_from_json).collect()),
        J::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| {
                    (
                        Key {
                            name: k.clone(),
                            line: 0,
                        },
                        node_from_json(v),
                    )
                })
                .collect(),
        ),
    };
    Node {
        line: 0,
        col: 0,
        value,
    }
}
