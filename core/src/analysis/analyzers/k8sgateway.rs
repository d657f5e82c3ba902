//! Analyzers of Istio's `k8sgateway` package: checks that concern Kubernetes Gateway API
//! gateways (group gateway.networking.k8s.io) rather than Istio's own `Gateway`.
//!
//! This module owns:
//! - `k8sgateway.SelectorAnalyzer`: a policy (AuthorizationPolicy, RequestAuthentication,
//!   Telemetry, WasmPlugin) whose workload selector picks the Pods of a Gateway API gateway
//!   has no effect there; it must use `targetRef` (IST0166);
//! - `k8sgateway.CRDVersionAnalyzer`: a Gateway API CRD installed at a bundle version below
//!   what Istio requires is ignored by Istio (IST0176).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::analysis::json::{selector_matches, string_map_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::groups;

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "k8sgateway.SelectorAnalyzer",
        description: "Check that selectors are effective for Kubernetes gateway",
        messages: &[&catalog::INEFFECTIVE_SELECTOR],
        run: analyze_selectors,
    },
    AnalyzerDef {
        name: "k8sgateway.CRDVersionAnalyzer",
        description: "Checks Gateway API CRDs are at the minimum version required by this Istio version",
        messages: &[&catalog::GATEWAY_APICRD_VERSION_BELOW_MINIMUM],
        run: analyze_crd_versions,
    },
];

// ---------------------------------------------------------------------------------------------
// k8sgateway.SelectorAnalyzer
// ---------------------------------------------------------------------------------------------

/// The label the Gateway API deployment controller puts on a gateway's Pods, naming the
/// gateway.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// The policy kinds that take a workload selector or a target reference, in Istio's order.
const POLICY_KINDS: &[(&str, &str)] = &[
    (groups::SECURITY, "AuthorizationPolicy"),
    (groups::SECURITY, "RequestAuthentication"),
    (groups::TELEMETRY, "Telemetry"),
    (groups::EXTENSIONS, "WasmPlugin"),
];

/// Whether a policy targets something by reference (`targetRef` or `targetRefs`).
fn has_target_ref(spec: &Value) -> bool {
    let single = spec.get("targetRef").is_some_and(|v| !v.is_null());
    let many = spec
        .get("targetRefs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    single || many
}

fn analyze_selectors(ctx: &mut Context<'_>) {
    let store = ctx.store;
    // Labels of the Pods of Gateway API gateways, by namespace.
    let mut gateway_pods: BTreeMap<&str, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for pod in store.of(groups::CORE, "Pod") {
        if pod.labels.contains_key(GATEWAY_NAME_LABEL) {
            gateway_pods.entry(pod.ns()).or_default().push(&pod.labels);
        }
    }

    for (group, kind) in POLICY_KINDS {
        for policy in store.of(group, kind) {
            let spec = policy.spec();
            if has_target_ref(spec) || spec.get("selector").is_none_or(Value::is_null) {
                continue;
            }
            let match_labels = string_map_at(spec, "/selector/matchLabels");
            for labels in gateway_pods.get(policy.ns()).into_iter().flatten() {
                if selector_matches(&match_labels, labels) {
                    let gateway = labels.get(GATEWAY_NAME_LABEL).map_or("", String::as_str);
                    ctx.report(
                        &catalog::INEFFECTIVE_SELECTOR,
                        policy,
                        "spec.selector",
                        &[&gateway],
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// k8sgateway.CRDVersionAnalyzer
// ---------------------------------------------------------------------------------------------

/// The annotation on Gateway API CRDs naming the release bundle they come from.
const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";

/// The lowest Gateway API bundle version Istio processes, per CRD name. CRDs not listed are
/// accepted at any version.
const MINIMUM_CRD_VERSIONS: &[(&str, (u64, u64, u64))] = &[
    ("grpcroutes.gateway.networking.k8s.io", (1, 1, 0)),
    ("backendtlspolicies.gateway.networking.k8s.io", (1, 4, 0)),
    ("tlsroutes.gateway.networking.k8s.io", (1, 5, 0)),
];

/// A semantic version as bundle-version annotations write it: `v1.4.1`, `1.5.0-rc.1`,
/// `1.2` (missing parts are 0), optionally with `+build` metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SemVer {
    core: (u64, u64, u64),
    pre: String,
    build: String,
}

impl SemVer {
    fn parse(text: &str) -> Option<SemVer> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let (text, build) = match text.split_once('+') {
            Some((t, b)) => (t, Some(b)),
            None => (text, None),
        };
        let (core, pre) = match text.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (text, None),
        };
        let identifiers_ok = |s: &str| {
            s.split('.').all(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        };
        if pre.is_some_and(|p| !identifiers_ok(p)) || build.is_some_and(|b| !identifiers_ok(b)) {
            return None;
        }
        let mut numbers = [0u64; 3];
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty() || parts.len() > 3 {
            return None;
        }
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = part.parse().ok()?;
        }
        Some(SemVer {
            core: (numbers[0], numbers[1], numbers[2]),
            pre: pre.unwrap_or("").to_owned(),
            build: build.unwrap_or("").to_owned(),
        })
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.core;
        write!(f, "{major}.{minor}.{patch}")?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

fn analyze_crd_versions(ctx: &mut Context<'_>) {
    let store = ctx.store;
    for crd in store.of(groups::APIEXTENSIONS, "CustomResourceDefinition") {
        let Some(&(_, minimum)) = MINIMUM_CRD_VERSIONS
            .iter()
            .find(|(name, _)| *name == crd.name)
        else {
            continue;
        };
        // Without the annotation (or with one that is no version) Istio says nothing here.
        let Some(installed) = crd
            .annotations
            .get(BUNDLE_VERSION_ANNOTATION)
            .and_then(|v| SemVer::parse(v))
        else {
            continue;
        };
        // A pre-release of a version counts as that version.
        if installed.core < minimum {
            let (major, minor, patch) = minimum;
            ctx.report(
                &catalog::GATEWAY_APICRD_VERSION_BELOW_MINIMUM,
                crd,
                &format!("metadata.annotations[\"{BUNDLE_VERSION_ANNOTATION}\"]"),
                &[&crd.name, &installed, &format!("{major}.{minor}.{patch}")],
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_semver() {
        let v = SemVer::parse("v1.4.1").unwrap();
        assert_eq!(v.core, (1, 4, 1));
        assert_eq!(v.to_string(), "1.4.1");
        let v = SemVer::parse("1.5.0-rc.1+abc").unwrap();
        assert_eq!(v.core, (1, 5, 0));
        assert_eq!(v.to_string(), "1.5.0-rc.1+abc");
        assert_eq!(SemVer::parse("v1.2").unwrap().core, (1, 2, 0));
        assert!(SemVer::parse("latest").is_none());
        assert!(SemVer::parse("1.2.3.4").is_none());
        assert!(SemVer::parse("1..2").is_none());
    }

    #[test]
    fn prerelease_of_the_minimum_is_enough() {
        // 1.5.0-rc.1 strips to 1.5.0, which meets the TLSRoute minimum.
        let v = SemVer::parse("v1.5.0-rc.1").unwrap();
        assert!(v.core >= (1, 5, 0));
    }

    #[test]
    fn target_refs_make_selectors_irrelevant() {
        let spec = serde_json::json!({"targetRefs": [{"kind": "Gateway", "name": "g"}]});
        assert!(has_target_ref(&spec));
        assert!(!has_target_ref(&serde_json::json!({"targetRefs": []})));
        assert!(!has_target_ref(&serde_json::json!({"selector": {}})));
    }
}
