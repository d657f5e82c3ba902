//! Per-object validation with Istio's rules.
//!
//! This module owns the question "is this one object valid on its own?" for Istio's kinds:
//! the typed parse (type errors and unknown fields, with the field's path and line) and then
//! the rules Istio's admission webhook applies to each kind (hosts, ports, durations,
//! regexes, TLS modes, load balancer and outlier settings, authorization rules, ...).
//! [`validate_for_cluster`] adds what the Kubernetes API server would refuse or drop when it
//! admits the object with its CRD schema ([`admission`]), which `meshctl validate` reports.
//! Cross-object checks belong to [`crate::analysis`]. Kubernetes kinds get no findings here:
//! validating them is the API server's business.

pub mod admission;
mod common;
mod destination_rule;
mod envoy_filter;
mod gateway;
mod security;
mod service_entry;
mod sidecar;
pub(crate) mod virtual_service;

use std::fmt;

use serde::de::DeserializeOwned;

use crate::model::{self, networking, parse_spec};
use crate::resource::{Resource, groups};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Istio rejects the object.
    Error,
    /// Istio accepts the object but it is probably not what was meant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        })
    }
}

/// One problem found in an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The field it is about (`spec.http[0].route[0].weight`), or `""` for the object.
    pub path: String,
    /// The line of that field in its file.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.message)
    }
}

/// What a finding is, for callers that map findings to Istio's message codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FindingKind {
    /// A schema error or warning.
    Schema,
    /// A VirtualService rule that can never be used: the rule's name (`"name"` or `#2`) and
    /// the reason.
    UnreachableRule { rule: String, reason: String },
    /// A match that an earlier one makes useless: the rule, the match and the earlier rule.
    IneffectiveMatch {
        rule: String,
        matched: String,
        earlier: String,
    },
}

/// Validates one object. Objects of kinds other than Istio's get no findings.
pub fn validate(res: &Resource) -> Vec<Finding> {
    validate_with_kinds(res)
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

/// Validates one object, then runs it through its kind's CRD schema as the Kubernetes API
/// server would: what the API server refuses is an error, a field it drops a warning
/// (neither repeated where the typed validation already reports the field).
pub fn validate_for_cluster(res: &Resource) -> Vec<Finding> {
    let mut findings = validate(res);
    let more = admission::findings(res, &findings);
    findings.extend(more);
    findings
}

/// Validates one object, telling what each finding is.
pub(crate) fn validate_with_kinds(res: &Resource) -> Vec<(Finding, FindingKind)> {
    let mut out = Report::new(res);
    match (res.group.as_str(), res.kind.as_str()) {
        (groups::NETWORKING, "VirtualService") => {
            run::<networking::VirtualService>(&mut out, virtual_service::validate)
        }
        (groups::NETWORKING, "DestinationRule") => {
            run::<networking::DestinationRule>(&mut out, destination_rule::validate)
        }
        (groups::NETWORKING, "Gateway") => run::<networking::Gateway>(&mut out, gateway::validate),
        (groups::NETWORKING, "ServiceEntry") => {
            run::<networking::ServiceEntry>(&mut out, service_entry::validate)
        }
        (groups::NETWORKING, "WorkloadEntry") => {
            run::<networking::WorkloadEntry>(&mut out, service_entry::validate_workload_entry)
        }
        (groups::NETWORKING, "WorkloadGroup") => {
            run::<networking::WorkloadGroup>(&mut out, service_entry::validate_workload_group)
        }
        (groups::NETWORKING, "Sidecar") => run::<networking::Sidecar>(&mut out, sidecar::validate),
        (groups::NETWORKING, "EnvoyFilter") => {
            run::<networking::EnvoyFilter>(&mut out, envoy_filter::validate)
        }
        (groups::SECURITY, "PeerAuthentication") => {
            run::<model::security::PeerAuthentication>(&mut out, security::validate_peer_authn)
        }
        (groups::SECURITY, "RequestAuthentication") => {
            run::<model::security::RequestAuthentication>(
                &mut out,
                security::validate_request_authn,
            )
        }
        (groups::SECURITY, "AuthorizationPolicy") => {
            run::<model::security::AuthorizationPolicy>(&mut out, security::validate_authz)
        }
        _ => {}
    }
    out.findings
}

/// Whether `validate` knows the kind.
pub fn is_validated_kind(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            groups::NETWORKING,
            "VirtualService"
                | "DestinationRule"
                | "Gateway"
                | "ServiceEntry"
                | "WorkloadEntry"
                | "WorkloadGroup"
                | "Sidecar"
                | "EnvoyFilter"
        ) | (
            groups::SECURITY,
            "PeerAuthentication" | "RequestAuthentication" | "AuthorizationPolicy"
        )
    )
}

fn run<T: DeserializeOwned>(out: &mut Report<'_>, rules: fn(&mut Report<'_>, &T)) {
    if let Some(annotation) = common::metadata_problem(out.res) {
        out.error("metadata.annotations", annotation);
        return;
    }
    match parse_spec::<T>(out.res) {
        Ok(spec) => rules(out, &spec),
        Err(e) => out.findings.push((
            Finding {
                severity: Severity::Error,
                path: e.path,
                line: e.line,
                message: e.message,
            },
            FindingKind::Schema,
        )),
    }
}

/// Collects findings about one object.
pub(crate) struct Report<'a> {
    pub res: &'a Resource,
    findings: Vec<(Finding, FindingKind)>,
}

impl<'a> Report<'a> {
    fn new(res: &'a Resource) -> Self {
        Report {
            res,
            findings: Vec::new(),
        }
    }

    /// The object's namespace (`""` for none).
    pub fn namespace(&self) -> &str {
        self.res.ns()
    }

    pub fn push(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        self.push_kind(severity, path, message, FindingKind::Schema);
    }

    pub fn push_kind(
        &mut self,
        severity: Severity,
        path: &str,
        message: impl Into<String>,
        kind: FindingKind,
    ) {
        let line = self.res.line_of(path);
        self.findings.push((
            Finding {
                severity,
                path: path.to_owned(),
                line,
                message: message.into(),
            },
            kind,
        ));
    }

    pub fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
    }

    pub fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, path, message);
    }

    /// Records an error if `result` is one.
    pub fn check(&mut self, path: &str, result: Result<(), String>) {
        if let Err(e) = result {
            self.error(path, e);
        }
    }

    /// Records every error of a list of them.
    pub fn check_all(&mut self, path: &str, errors: Vec<String>) {
        for e in errors {
            self.error(path, e);
        }
    }

    /// How many errors (not warnings) have been recorded so far.
    pub fn error_count(&self) -> usize {
        self.findings
            .iter()
            .filter(|(f, _)| f.severity == Severity::Error)
            .count()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
pub(crate) mod testing {
    //! Helpers for the rule tests: build an object from YAML and validate it.

    use super::*;
    use crate::source;

    pub fn object(yaml: &str) -> Resource {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.resources.into_iter().next().expect("one object")
    }

    /// An object of `kind` (group from the kind) named `name` in namespace `ns` with `spec`
    /// (YAML, indented by two spaces under `spec:`).
    pub fn spec(kind: &str, spec: &str) -> Resource {
        let group = match kind {
            "PeerAuthentication" | "RequestAuthentication" | "AuthorizationPolicy" => {
                "security.istio.io"
            }
            _ => "networking.istio.io",
        };
        let version = if kind == "EnvoyFilter" {
            "v1alpha3"
        } else {
            "v1"
        };
        let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
        object(&format!(
            "apiVersion: {group}/{version}\nkind: {kind}\nmetadata:\n  name: test\n  namespace: ns\nspec:\n{body}"
        ))
    }

    pub fn errors(res: &Resource) -> Vec<String> {
        validate(res)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.message)
            .collect()
    }

    pub fn warnings(res: &Resource) -> Vec<String> {
        validate(res)
            .into_iter()
            .filter(|f| f.severity == Severity::Warning)
            .map(|f| f.message)
            .collect()
    }

    /// Asserts that `spec` of `kind` has no errors.
    #[track_caller]
    pub fn accepts(kind: &str, yaml: &str) {
        let res = spec(kind, yaml);
        let errs = errors(&res);
        assert!(errs.is_empty(), "unexpected errors: {errs:?}");
    }

    /// Asserts that `spec` of `kind` has an error containing `needle`.
    #[track_caller]
    pub fn rejects(kind: &str, yaml: &str, needle: &str) {
        let res = spec(kind, yaml);
        let errs = errors(&res);
        assert!(
            errs.iter().any(|e| e.contains(needle)),
            "expected an error containing {needle:?}, got {errs:?}"
        );
    }

    /// Asserts that `spec` of `kind` has a warning containing `needle`.
    #[track_caller]
    pub fn warns(kind: &str, yaml: &str, needle: &str) {
        let res = spec(kind, yaml);
        let w = warnings(&res);
        assert!(
            w.iter().any(|e| e.contains(needle)),
            "expected a warning containing {needle:?}, got {w:?}"
        );
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn kubernetes_kinds_get_no_findings() {
        let res =
            object("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  bogus: 1\n");
        assert!(validate(&res).is_empty());
    }

    #[test]
    fn type_errors_are_findings_with_path_and_line() {
        let res = spec(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination:\n      host: a\n    weight: lots\n",
        );
        let f = validate(&res);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].path, "spec.http[0].route[0].weight");
        assert_eq!(f[0].line, 12);
    }

    #[test]
    fn unknown_fields_are_errors() {
        rejects("DestinationRule", "host: a\nsubsetz: []\n", "subsetz");
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod conformance_inputs {
    //! Every Istio object in Istio's analyzer test inputs that Istio itself accepts must get
    //! no Error here (warnings are fine: several inputs are deliberately questionable).

    use std::path::{Path, PathBuf};

    use super::*;
    use crate::source;

    /// Objects (`Kind ns/name` in a file) that are genuinely invalid, with why.
    const KNOWN_INVALID: &[(&str, &str, &str)] = &[
        (
            "authorizationpolicies.yaml",
            "ServiceEntry httpbin/istio",
            "wildcard host with DNS resolution and no endpoints",
        ),
        (
            "condition-analyzer.yaml",
            "ServiceEntry default/negative-condition-svcEntry",
            "no hosts",
        ),
        (
            "conflicting-gateways-invalid-port.yaml",
            "Gateway default/alpha",
            "server without a port",
        ),
        (
            "conflicting-gateways-invalid-port.yaml",
            "Gateway default/beta",
            "server without a port",
        ),
        (
            "conflicting-gateways-multiple-ports.yaml",
            "Gateway default/alpha",
            "duplicate server port names",
        ),
        (
            "conflicting-gateways-multiple-ports.yaml",
            "Gateway default/beta",
            "duplicate server port names",
        ),
        (
            "deprecation.yaml",
            "EnvoyFilter istio-system/istio-multicluster-egressgateway",
            "workloadLabels/filters were removed from the API",
        ),
        (
            "deprecation.yaml",
            "VirtualService foo/productpage",
            "HTTP route with neither route, redirect nor directResponse",
        ),
        (
            "envoy-filter-add-operation.yaml",
            "EnvoyFilter bookinfo/test-auth-4",
            "unknown field match.app",
        ),
        (
            "envoy-filter-add-operation.yaml",
            "EnvoyFilter bookinfo/test-auth-5",
            "unknown field match.app",
        ),
        (
            "envoy-filter-remove-operation.yaml",
            "EnvoyFilter bookinfo/test-remove-2",
            "route-class applyTo with a listener match",
        ),
        (
            "envoy-filter-remove-operation.yaml",
            "EnvoyFilter bookinfo/test-remove-3",
            "route-class applyTo with a listener match",
        ),
        (
            "envoy-filter-remove-operation.yaml",
            "EnvoyFilter bookinfo/test-remove-4",
            "patch missing",
        ),
        (
            "gateway-no-workload.yaml",
            "Gateway default/httpbin-gateway",
            "no servers",
        ),
        (
            "gateway-secrets.yaml",
            "Gateway default/defaultgateway-nocredential",
            "SIMPLE TLS without credentials or certificates",
        ),
        (
            "relative-envoy-filter-operation.yaml",
            "EnvoyFilter bookinfo/test-relative-3",
            "CLUSTER applyTo with a non-cluster match",
        ),
        (
            "sidecar-default-selector.yaml",
            "Sidecar ns-ambient/namespace-scoped",
            "selector only: empty configuration",
        ),
        (
            "sidecar-default-selector.yaml",
            "Sidecar ns-ambient/pod-scoped",
            "selector only: empty configuration",
        ),
        (
            "sidecar-default-selector.yaml",
            "Sidecar ns-not-ambient/namespace-not-ambient",
            "selector only: empty configuration",
        ),
        (
            "sidecar-default-selector.yaml",
            "Sidecar ns-not-ambient-rev/namespace-not-ambient",
            "selector only: empty configuration",
        ),
        (
            "virtualservice_destinationhosts.yaml",
            "ServiceEntry default-ignore/service-entry-ignore",
            "host *",
        ),
        (
            "virtualservice_destinationhosts.yaml",
            "VirtualService default/reviews-bogushost",
            "a route without destination",
        ),
        (
            "virtualservice_gateways.yaml",
            "Gateway default/httpbin-gateway",
            "no servers",
        ),
        (
            "virtualservice_gateways.yaml",
            "Gateway another/crossnamespace-gw",
            "no servers",
        ),
        (
            "virtualservice_gateways.yaml",
            "VirtualService default/httpbin",
            "no routes",
        ),
        (
            "virtualservice_gateways.yaml",
            "VirtualService default/httpbin-bogus",
            "no routes",
        ),
        (
            "virtualservice_gateways.yaml",
            "VirtualService default/httpbin-mesh",
            "no routes, and host * on the mesh",
        ),
        (
            "virtualservice_gateways.yaml",
            "VirtualService default/cross-test",
            "no routes",
        ),
        (
            "virtualservice_host_not_found_gateway.yaml",
            "Gateway istio-system/testing-gateway-01-test-04",
            "duplicate server port names",
        ),
        (
            "virtualservice_host_not_found_gateway_beta.yaml",
            "Gateway istio-system/testing-gateway-01-test-04",
            "duplicate server port names",
        ),
        (
            "virtualservice_internal_gateway_ref.yaml",
            "VirtualService default/httpbin",
            "gateway name is not a DNS label (an internal generated name)",
        ),
    ];

    fn inputs_dir() -> Option<PathBuf> {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let candidates = [
            std::env::var_os("MESH_CONFORMANCE_DIR").map(PathBuf::from),
            Some(here.join("../../shared/conformance/istio")),
        ];
        candidates
            .into_iter()
            .flatten()
            .map(|p| p.join("analyzers"))
            .find(|p| p.is_dir())
    }

    #[test]
    fn valid_inputs_get_no_errors() {
        let Some(dir) = inputs_dir() else {
            if std::env::var_os("CI").is_some() {
                panic!("conformance data not found");
            }
            eprintln!("SKIPPED: conformance data not found");
            return;
        };
        let loaded = source::load_paths(&[dir], true);
        let mut problems = Vec::new();
        let mut checked = 0;
        for res in &loaded.resources {
            if !is_validated_kind(&res.group, &res.kind) {
                continue;
            }
            checked += 1;
            let file = Path::new(&*res.origin.file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let known = KNOWN_INVALID
                .iter()
                .any(|(f, r, _)| *f == file && *r == res.display_name());
            for f in validate(res) {
                if f.severity == Severity::Error && !known {
                    problems.push(format!(
                        "{file}:{} {}: {} ({})",
                        f.line,
                        res.display_name(),
                        f.message,
                        f.path
                    ));
                }
            }
        }
        assert!(checked > 50, "only {checked} Istio objects found");
        assert!(
            problems.is_empty(),
            "errors on valid inputs:\n{}",
            problems.join("\n")
        );
    }
}
