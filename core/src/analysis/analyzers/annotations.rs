//! Istio's resource annotations and the analyzer of Istio's `annotations` package.
//!
//! This module owns [`ANNOTATIONS`], the table of every annotation Istio defines (the
//! resource kinds it may be placed on, its maturity, whether it is deprecated, and the
//! values Istio accepts for it), and `annotations.K8sAnalyzer`, which reports unknown,
//! misplaced, deprecated and invalid Istio annotations on Namespaces, Services, Pods and
//! Deployments. The table is public so that other features (kube-inject, maturity checks)
//! read the same definitions.

use std::net::IpAddr;

use crate::analysis::store::is_derived;
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The kinds of resource an annotation may be placed on (Istio's `ResourceTypes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceType {
    /// Any kind of resource.
    Any,
    AuthorizationPolicy,
    Gateway,
    GatewayClass,
    Ingress,
    Namespace,
    Pod,
    Service,
    ServiceEntry,
    WorkloadEntry,
}

impl ResourceType {
    /// The kind's name, as Istio prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Any => "Any",
            ResourceType::AuthorizationPolicy => "AuthorizationPolicy",
            ResourceType::Gateway => "Gateway",
            ResourceType::GatewayClass => "GatewayClass",
            ResourceType::Ingress => "Ingress",
            ResourceType::Namespace => "Namespace",
            ResourceType::Pod => "Pod",
            ResourceType::Service => "Service",
            ResourceType::ServiceEntry => "ServiceEntry",
            ResourceType::WorkloadEntry => "WorkloadEntry",
        }
    }
}

/// How mature the feature behind an annotation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FeatureStatus {
    Alpha,
    Beta,
    Stable,
}

/// The values Istio accepts for an annotation. Only the kinds Istio's sidecar injector
/// validates are distinguished; every other annotation takes free text ([`ValueType::Text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// Any string.
    Text,
    /// A boolean as Go's `strconv.ParseBool` reads it (`true`, `False`, `1`, `f`, ...).
    Bool,
    /// An unsigned 32-bit decimal integer.
    UInt32,
    /// A port number (0-65535), surrounding blanks allowed.
    Port,
    /// A comma-separated list of ports (may be empty).
    PortList,
    /// `*`, or a comma-separated list of ports.
    PortListOrWildcard,
    /// A comma-separated list of CIDR ranges (may be empty).
    CidrList,
    /// `*`, or a comma-separated list of CIDR ranges.
    CidrListOrWildcard,
    /// `REDIRECT`, `TPROXY` or `NONE`.
    InterceptionMode,
    /// A ProxyConfig as YAML (a mapping).
    ProxyConfig,
}

impl ValueType {
    /// Checks a value of the annotation `name`; the error says what is wrong, in the words
    /// Istio's injector uses.
    pub fn validate(self, name: &str, value: &str) -> Result<(), String> {
        let field = name.rsplit('/').next().unwrap_or(name);
        match self {
            ValueType::Text => Ok(()),
            ValueType::Bool => parse_go_bool(value)
                .map(|_| ())
                .ok_or_else(|| format!("strconv.ParseBool: parsing {value:?}: invalid syntax")),
            ValueType::UInt32 => parse_go_uint(value, u64::from(u32::MAX)).map(|_| ()),
            ValueType::Port => parse_port(value)
                .map(|_| ())
                .map_err(|e| format!("{field} invalid: {e}")),
            ValueType::PortList => validate_port_list(field, value),
            ValueType::PortListOrWildcard if value == "*" => Ok(()),
            ValueType::PortListOrWildcard => validate_port_list(field, value),
            ValueType::CidrList => validate_cidr_list(field, value),
            ValueType::CidrListOrWildcard if value == "*" => Ok(()),
            ValueType::CidrListOrWildcard => validate_cidr_list(field, value),
            ValueType::InterceptionMode => match value {
                "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
                _ => Err(format!(
                    "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {value}"
                )),
            },
            ValueType::ProxyConfig => validate_proxy_config(value),
        }
    }
}

/// One annotation Istio defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnotationInfo {
    pub name: &'static str,
    pub feature_status: FeatureStatus,
    /// Left out of Istio's user-facing documentation (set by Istio itself, or internal).
    pub hidden: bool,
    pub deprecated: bool,
    /// The kinds the annotation may be placed on.
    pub resources: &'static [ResourceType],
    pub value: ValueType,
}

impl AnnotationInfo {
    /// Whether the annotation may be placed on an object of this kind.
    pub fn applies_to(&self, kind: &str) -> bool {
        self.resources
            .iter()
            .any(|r| *r == ResourceType::Any || r.as_str() == kind)
    }
}

/// Annotations other features refer to by name.
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
pub const SIDECAR_STATUS: &str = "sidecar.istio.io/status";
pub const SIDECAR_PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
pub const INJECT_TEMPLATES: &str = "inject.istio.io/templates";
pub const GATEWAY_CONTROLLER_VERSION: &str = "gateway.istio.io/controller-version";
pub const ISTIO_REV: &str = "istio.io/rev";

const fn ann(
    name: &'static str,
    feature_status: FeatureStatus,
    resources: &'static [ResourceType],
) -> AnnotationInfo {
    AnnotationInfo {
        name,
        feature_status,
        hidden: false,
        deprecated: false,
        resources,
        value: ValueType::Text,
    }
}

const fn hidden(mut a: AnnotationInfo) -> AnnotationInfo {
    a.hidden = true;
    a
}

const fn deprecated(mut a: AnnotationInfo) -> AnnotationInfo {
    a.deprecated = true;
    a
}

const fn typed(mut a: AnnotationInfo, value: ValueType) -> AnnotationInfo {
    a.value = value;
    a
}

use FeatureStatus::{Alpha, Beta, Stable};
use ResourceType as R;

const POD: &[ResourceType] = &[R::Pod];
const SERVICE: &[ResourceType] = &[R::Service];
const GATEWAY: &[ResourceType] = &[R::Gateway];
const WORKLOAD_ENTRY: &[ResourceType] = &[R::WorkloadEntry];
const ANY: &[ResourceType] = &[R::Any];

/// Every annotation Istio defines (istio/api `annotation/annotations.yaml`), sorted by name.
pub const ANNOTATIONS: &[AnnotationInfo] = &[
    deprecated(hidden(ann(
        "alpha.istio.io/canonical-serviceaccounts",
        Alpha,
        SERVICE,
    ))),
    deprecated(hidden(ann(
        "alpha.istio.io/kubernetes-serviceaccounts",
        Alpha,
        SERVICE,
    ))),
    hidden(ann("ambient.istio.io/bypass-inbound-capture", Alpha, POD)),
    ann("ambient.istio.io/redirection", Beta, POD),
    hidden(ann(
        "ambient.istio.io/waypoint-inbound-binding",
        Alpha,
        &[R::GatewayClass, R::Gateway],
    )),
    ann("galley.istio.io/analyze-suppress", Alpha, ANY),
    hidden(ann(GATEWAY_CONTROLLER_VERSION, Alpha, ANY)),
    hidden(ann("gateway.istio.io/name-override", Alpha, GATEWAY)),
    hidden(ann("gateway.istio.io/service-account", Alpha, GATEWAY)),
    ann(INJECT_TEMPLATES, Alpha, POD),
    hidden(ann("istio.io/autoRegistrationGroup", Alpha, WORKLOAD_ENTRY)),
    hidden(ann("istio.io/connectedAt", Alpha, WORKLOAD_ENTRY)),
    hidden(ann("istio.io/disconnectedAt", Alpha, WORKLOAD_ENTRY)),
    ann("istio.io/dry-run", Alpha, &[R::AuthorizationPolicy]),
    ann(ISTIO_REV, Alpha, POD),
    hidden(ann("istio.io/workloadController", Alpha, WORKLOAD_ENTRY)),
    ann("kubernetes.io/ingress.class", Stable, &[R::Ingress]),
    ann("networking.istio.io/exportTo", Alpha, SERVICE),
    hidden(ann("networking.istio.io/service-type", Alpha, GATEWAY)),
    ann(
        "networking.istio.io/traffic-distribution",
        Alpha,
        &[R::Service, R::ServiceEntry],
    ),
    typed(
        ann("prometheus.istio.io/merge-metrics", Alpha, POD),
        ValueType::Bool,
    ),
    typed(ann(PROXY_CONFIG, Beta, POD), ValueType::ProxyConfig),
    hidden(ann("proxy.istio.io/overrides", Alpha, POD)),
    ann(
        "readiness.status.sidecar.istio.io/applicationPorts",
        Alpha,
        POD,
    ),
    typed(
        ann(
            "readiness.status.sidecar.istio.io/failureThreshold",
            Alpha,
            POD,
        ),
        ValueType::UInt32,
    ),
    typed(
        ann(
            "readiness.status.sidecar.istio.io/initialDelaySeconds",
            Alpha,
            POD,
        ),
        ValueType::UInt32,
    ),
    typed(
        ann(
            "readiness.status.sidecar.istio.io/periodSeconds",
            Alpha,
            POD,
        ),
        ValueType::UInt32,
    ),
    ann("sidecar.istio.io/agentLogLevel", Alpha, POD),
    ann("sidecar.istio.io/bootstrapOverride", Alpha, POD),
    ann("sidecar.istio.io/componentLogLevel", Alpha, POD),
    deprecated(ann("sidecar.istio.io/discoveryAddress", Alpha, POD)),
    ann("sidecar.istio.io/enableCoreDump", Alpha, POD),
    deprecated(ann("sidecar.istio.io/extraStatTags", Alpha, POD)),
    deprecated(ann(SIDECAR_INJECT, Beta, POD)),
    typed(
        ann("sidecar.istio.io/interceptionMode", Alpha, POD),
        ValueType::InterceptionMode,
    ),
    ann("sidecar.istio.io/logLevel", Alpha, POD),
    ann("sidecar.istio.io/nativeSidecar", Alpha, POD),
    ann("sidecar.istio.io/proxyCPU", Alpha, POD),
    ann("sidecar.istio.io/proxyCPULimit", Alpha, POD),
    ann(SIDECAR_PROXY_IMAGE, Alpha, POD),
    ann("sidecar.istio.io/proxyImageType", Alpha, POD),
    ann("sidecar.istio.io/proxyMemory", Alpha, POD),
    ann("sidecar.istio.io/proxyMemoryLimit", Alpha, POD),
    ann("sidecar.istio.io/rewriteAppHTTPProbers", Alpha, POD),
    ann("sidecar.istio.io/statsHistogramBuckets", Alpha, POD),
    deprecated(ann("sidecar.istio.io/statsInclusionPrefixes", Alpha, POD)),
    deprecated(ann("sidecar.istio.io/statsInclusionRegexps", Alpha, POD)),
    deprecated(ann("sidecar.istio.io/statsInclusionSuffixes", Alpha, POD)),
    ann(SIDECAR_STATUS, Alpha, POD),
    ann("sidecar.istio.io/userVolume", Alpha, POD),
    ann("sidecar.istio.io/userVolumeMount", Alpha, POD),
    typed(
        ann("status.sidecar.istio.io/port", Alpha, POD),
        ValueType::Port,
    ),
    ann(
        "topology.istio.io/controlPlaneClusters",
        Alpha,
        &[R::Namespace],
    ),
    ann("traffic.istio.io/nodeSelector", Stable, SERVICE),
    typed(
        ann("traffic.sidecar.istio.io/excludeInboundPorts", Alpha, POD),
        ValueType::PortList,
    ),
    ann("traffic.sidecar.istio.io/excludeInterfaces", Alpha, POD),
    typed(
        ann(
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            Alpha,
            POD,
        ),
        ValueType::CidrList,
    ),
    typed(
        ann("traffic.sidecar.istio.io/excludeOutboundPorts", Alpha, POD),
        ValueType::PortList,
    ),
    typed(
        ann("traffic.sidecar.istio.io/includeInboundPorts", Alpha, POD),
        ValueType::PortListOrWildcard,
    ),
    typed(
        ann(
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            Alpha,
            POD,
        ),
        ValueType::CidrListOrWildcard,
    ),
    ann("traffic.sidecar.istio.io/includeOutboundPorts", Alpha, POD),
    ann("traffic.sidecar.istio.io/kubevirtInterfaces", Alpha, POD),
];

/// The definition of an annotation, if Istio defines it.
pub fn lookup(name: &str) -> Option<&'static AnnotationInfo> {
    ANNOTATIONS.iter().find(|a| a.name == name)
}

/// Whether an annotation is in Istio's namespace (its prefix ends in `istio.io`), or is
/// the one Kubernetes annotation Istio documents, `kubernetes.io/ingress.class`.
pub fn is_istio_annotation(name: &str) -> bool {
    name == "kubernetes.io/ingress.class"
        || name
            .split('/')
            .next()
            .is_some_and(|p| p.ends_with("istio.io"))
}

/// Annotations Istio sets itself; analyzers never report them.
pub const ALWAYS_IGNORED: &[&str] = &[SIDECAR_STATUS, GATEWAY_CONTROLLER_VERSION, ISTIO_REV];

/// The kinds the annotation analyzers look at, with the kind name Istio compares against
/// each annotation's resource types.
pub(crate) const ANNOTATED_KINDS: &[(&str, &str)] = &[
    (groups::CORE, "Namespace"),
    (groups::CORE, "Service"),
    (groups::CORE, "Pod"),
    (groups::APPS, "Deployment"),
];

/// Namespaces Istio never analyzes (its file source drops objects in them).
pub(crate) fn is_ignored_namespace(ns: &str) -> bool {
    matches!(
        ns,
        "kube-system" | "kube-public" | "kube-node-lease" | "local-path-storage"
    )
}

/// Whether the object lives in (or is) a namespace Istio never analyzes.
pub(crate) fn in_ignored_namespace(r: &Resource) -> bool {
    let ns = if r.is(groups::CORE, "Namespace") {
        r.name.as_str()
    } else {
        r.ns()
    };
    is_ignored_namespace(ns)
}

/// The field path of an annotation on an object, for message lines.
pub(crate) fn annotation_path(name: &str) -> String {
    format!("metadata.annotations[\"{name}\"]")
}

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "annotations.K8sAnalyzer",
    description: "Checks for misplaced and invalid Istio annotations in Kubernetes resources",
    messages: &[
        &catalog::UNKNOWN_ANNOTATION,
        &catalog::DEPRECATED_ANNOTATION,
        &catalog::MISPLACED_ANNOTATION,
        &catalog::INVALID_ANNOTATION,
    ],
    run: analyze_k8s_annotations,
}];

fn analyze_k8s_annotations(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for (group, kind) in ANNOTATED_KINDS {
        for r in store.of(group, kind) {
            // Derived Pods repeat their controller's template, which is checked already.
            if !in_ignored_namespace(r) && !is_derived(r) {
                check_annotations(ctx, r, kind);
            }
        }
    }
}

fn check_annotations(ctx: &mut Context<'_>, r: &Resource, kind: &str) {
    for (name, value) in &r.annotations {
        if !is_istio_annotation(name) || ALWAYS_IGNORED.contains(&name.as_str()) {
            continue;
        }
        let path = annotation_path(name);
        let Some(def) = lookup(name) else {
            ctx.report(&catalog::UNKNOWN_ANNOTATION, r, &path, &[name]);
            continue;
        };
        // Someone with both the deprecated annotation and its replacement label knows.
        if def.deprecated && !(def.name == SIDECAR_INJECT && r.labels.contains_key(SIDECAR_INJECT))
        {
            let extra = if def.name == SIDECAR_INJECT {
                " in favor of the \"sidecar.istio.io/inject\" label"
            } else {
                ""
            };
            ctx.report(&catalog::DEPRECATED_ANNOTATION, r, &path, &[name, &extra]);
        }
        if def.resources.contains(&ResourceType::Any) {
            continue;
        }
        if !def.applies_to(kind) {
            let kinds: Vec<&str> = def.resources.iter().map(|k| k.as_str()).collect();
            ctx.report(
                &catalog::MISPLACED_ANNOTATION,
                r,
                &path,
                &[name, &kinds.join(", ")],
            );
            continue;
        }
        if let Err(problem) = def.value.validate(name, value) {
            ctx.report(&catalog::INVALID_ANNOTATION, r, &path, &[name, &problem]);
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, 10, bits)` with its error texts; `max` is the largest value.
fn parse_go_uint(s: &str, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        )),
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    parse_go_uint(t, u64::from(u16::MAX))
        .map(|p| u16::try_from(p).unwrap_or(u16::MAX))
        .map_err(|e| format!("failed parsing port '{s}': {e}"))
}

fn validate_port_list(field: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(());
    }
    for p in value.split(',') {
        parse_port(p).map_err(|e| format!("{field} invalid: {e}"))?;
    }
    Ok(())
}

fn validate_cidr_list(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    for cidr in value.split(',') {
        if !is_cidr(cidr) {
            return Err(format!("{field} invalid: failed parsing cidr '{cidr}'"));
        }
    }
    Ok(())
}

/// Whether `s` is `address/bits` as Go's `netip.ParsePrefix` accepts it.
fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    if bits.is_empty()
        || !bits.bytes().all(|b| b.is_ascii_digit())
        || (bits.len() > 1 && bits.starts_with('0'))
    {
        return false;
    }
    let max = if addr.is_ipv4() { 32 } else { 128 };
    bits.parse::<u32>().is_ok_and(|b| b <= max)
}

/// A ProxyConfig override must at least be a YAML mapping (or empty).
fn validate_proxy_config(value: &str) -> Result<(), String> {
    let Some(doc) = crate::yaml::parse_documents(value).into_iter().next() else {
        return Ok(());
    };
    match doc.result {
        Err(e) => Err(format!(
            "failed to convert to apply proxy config: line {}: {}",
            e.line, e.message
        )),
        Ok(node) => match node.to_json() {
            serde_json::Value::Object(_) | serde_json::Value::Null => Ok(()),
            _ => Err(
                "failed to convert to apply proxy config: expected a mapping of ProxyConfig fields"
                    .to_owned(),
            ),
        },
    }
}

/// Running analyzers over YAML text, for the tests of the workload analyzer modules.
#[cfg(test)]
pub(crate) mod test_support {
    /// Runs one analyzer over YAML text; returns `(code, "Kind ns/name")` pairs.
    pub(crate) fn run(analyzer: &str, yaml: &str) -> Vec<(&'static str, String)> {
        run_with_mesh(analyzer, yaml, "{}")
    }

    pub(crate) fn run_with_mesh(
        analyzer: &str,
        yaml: &str,
        mesh: &str,
    ) -> Vec<(&'static str, String)> {
        let loaded = crate::source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mesh =
            crate::analysis::MeshConfig::from_json(serde_json::from_str(mesh).unwrap_or_default());
        let store = crate::analysis::files_store(loaded.resources, &mesh);
        let Some(a) = crate::analysis::find_analyzer(analyzer) else {
            return vec![("missing analyzer", analyzer.to_owned())];
        };
        crate::analysis::run(&store, &mesh, &[a])
            .into_iter()
            .map(|m| {
                (
                    m.code(),
                    m.origin.map(|o| o.display_name()).unwrap_or_default(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::run;
    use super::*;

    #[test]
    fn correct_annotations_are_not_reported() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  labels: {sidecar.istio.io/inject: "true"}
  annotations:
    sidecar.istio.io/inject: "true"
    sidecar.istio.io/status: "{}"
    prometheus.istio.io/merge-metrics: "false"
    traffic.sidecar.istio.io/excludeOutboundIPRanges: "10.0.0.0/8,192.168.0.0/16"
    status.sidecar.istio.io/port: "15020"
spec: {containers: [{name: app, image: app}]}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  annotations: {galley.istio.io/analyze-suppress: IST0103, example.com/other: x}
spec: {template: {spec: {containers: [{name: app, image: app}]}}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: kube-system
  annotations: {networking.istio.io/nonsense: x}
"#;
        assert_eq!(run("annotations.K8sAnalyzer", yaml), vec![]);
    }

    #[test]
    fn the_inject_annotation_alone_is_deprecated() {
        let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations: {sidecar.istio.io/inject: "true"}
spec: {containers: [{name: app, image: app}]}
"#;
        assert_eq!(
            run("annotations.K8sAnalyzer", yaml),
            vec![("IST0135", "Pod default/p".to_owned())]
        );
    }

    #[test]
    fn table_is_sorted_and_unique() {
        for w in ANNOTATIONS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
    }

    #[test]
    fn istio_annotations_are_recognized_by_prefix() {
        assert!(is_istio_annotation("sidecar.istio.io/inject"));
        assert!(is_istio_annotation("istio.io/rev"));
        assert!(is_istio_annotation("kubernetes.io/ingress.class"));
        assert!(!is_istio_annotation("kubernetes.io/psp"));
        assert!(!is_istio_annotation("helm.sh/hook"));
        assert!(!is_istio_annotation("example.com/istio.io"));
    }

    #[test]
    fn value_types_accept_what_istio_accepts() {
        let ok = |t: ValueType, v: &str| t.validate("x/y", v).is_ok();
        assert!(ok(ValueType::UInt32, "10"));
        assert!(!ok(ValueType::UInt32, "bar"));
        assert!(!ok(ValueType::UInt32, "-1"));
        assert!(!ok(ValueType::UInt32, "4294967296"));
        assert!(ok(ValueType::Bool, "False"));
        assert!(!ok(ValueType::Bool, "yes"));
        assert!(ok(ValueType::PortList, ""));
        assert!(ok(ValueType::PortList, "15020, 15021"));
        assert!(!ok(ValueType::PortList, "*"));
        assert!(!ok(ValueType::PortList, "70000"));
        assert!(ok(ValueType::PortListOrWildcard, "*"));
        assert!(ok(ValueType::CidrListOrWildcard, "*"));
        assert!(ok(ValueType::CidrList, "10.0.0.0/8,fd00::/8"));
        assert!(!ok(ValueType::CidrList, "10.0.0.0/8, 10.1.0.0/16"));
        assert!(!ok(ValueType::CidrList, "10.0.0.0"));
        assert!(!ok(ValueType::CidrList, "10.0.0.0/33"));
        assert!(ok(ValueType::InterceptionMode, "TPROXY"));
        assert!(!ok(ValueType::InterceptionMode, "redirect"));
        assert!(ok(ValueType::ProxyConfig, "{}"));
        assert!(ok(
            ValueType::ProxyConfig,
            "image:\n  imageType: distroless\n"
        ));
        assert!(!ok(ValueType::ProxyConfig, "just text"));
    }

    #[test]
    fn placement() {
        let inject = lookup(SIDECAR_INJECT);
        assert!(inject.is_some_and(|a| a.applies_to("Pod") && !a.applies_to("Deployment")));
        let suppress = lookup("galley.istio.io/analyze-suppress");
        assert!(suppress.is_some_and(|a| a.applies_to("VirtualService")));
    }
}
