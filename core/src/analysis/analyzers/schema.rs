//! Analyzers of Istio's `schema` package: per-object validation reported as messages, one
//! analyzer per Istio kind.
//!
//! Validation errors become IST0106 SchemaValidationError and warnings IST0133
//! SchemaWarning; for VirtualServices, rules that can never be used become IST0130
//! VirtualServiceUnreachableRule and matches that an earlier one makes useless IST0131
//! VirtualServiceIneffectiveMatch. The rules themselves live in [`crate::validate`].

use crate::analysis::{AnalyzerDef, Context, MessageType, catalog};
use crate::resource::groups;
use crate::validate::{FindingKind, Severity, validate_with_kinds};

/// Reports every finding about every object of one kind.
fn analyze(ctx: &mut Context<'_>, group: &str, kind: &str) {
    let store = ctx.store;
    for res in store.of(group, kind) {
        for (finding, what) in validate_with_kinds(res) {
            match what {
                FindingKind::UnreachableRule { rule, reason } => ctx.report(
                    &catalog::VIRTUAL_SERVICE_UNREACHABLE_RULE,
                    res,
                    &finding.path,
                    &[&rule, &reason],
                ),
                FindingKind::IneffectiveMatch {
                    rule,
                    matched,
                    earlier,
                } => ctx.report(
                    &catalog::VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
                    res,
                    &finding.path,
                    &[&rule, &matched, &earlier],
                ),
                FindingKind::Schema => {
                    let kind = match finding.severity {
                        Severity::Error => &catalog::SCHEMA_VALIDATION_ERROR,
                        Severity::Warning => &catalog::SCHEMA_WARNING,
                    };
                    ctx.report(kind, res, &finding.path, &[&finding.message]);
                }
            }
        }
    }
}

const SCHEMA_MESSAGES: &[&MessageType] =
    &[&catalog::SCHEMA_VALIDATION_ERROR, &catalog::SCHEMA_WARNING];

const VIRTUAL_SERVICE_MESSAGES: &[&MessageType] = &[
    &catalog::SCHEMA_VALIDATION_ERROR,
    &catalog::SCHEMA_WARNING,
    &catalog::VIRTUAL_SERVICE_UNREACHABLE_RULE,
    &catalog::VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
];

/// One analyzer definition per kind: Istio's name, and a run function bound to the kind.
macro_rules! schema_analyzers {
    ($($fn_name:ident => ($group:expr, $kind:literal, $messages:expr)),+ $(,)?) => {
        $(fn $fn_name(ctx: &mut Context<'_>) {
            analyze(ctx, $group, $kind);
        })+

        /// The analyzers of this module.
        pub const ANALYZERS: &[AnalyzerDef] = &[$(
            AnalyzerDef {
                name: concat!("schemaValidation.CollectionValidationAnalyzer(collections.", $kind, ")"),
                description: concat!("Runs schema validation as an analyzer on '", $kind, "' resources"),
                messages: $messages,
                run: $fn_name,
            }
        ),+];
    };
}

schema_analyzers! {
    authorization_policy => (groups::SECURITY, "AuthorizationPolicy", SCHEMA_MESSAGES),
    destination_rule => (groups::NETWORKING, "DestinationRule", SCHEMA_MESSAGES),
    envoy_filter => (groups::NETWORKING, "EnvoyFilter", SCHEMA_MESSAGES),
    gateway => (groups::NETWORKING, "Gateway", SCHEMA_MESSAGES),
    peer_authentication => (groups::SECURITY, "PeerAuthentication", SCHEMA_MESSAGES),
    request_authentication => (groups::SECURITY, "RequestAuthentication", SCHEMA_MESSAGES),
    service_entry => (groups::NETWORKING, "ServiceEntry", SCHEMA_MESSAGES),
    sidecar => (groups::NETWORKING, "Sidecar", SCHEMA_MESSAGES),
    virtual_service => (groups::NETWORKING, "VirtualService", VIRTUAL_SERVICE_MESSAGES),
    workload_entry => (groups::NETWORKING, "WorkloadEntry", SCHEMA_MESSAGES),
    workload_group => (groups::NETWORKING, "WorkloadGroup", SCHEMA_MESSAGES),
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::analysis::{self, MeshConfig, Store};
    use crate::source;

    fn messages(yaml: &str) -> Vec<(String, String)> {
        let loaded = source::load_bytes("t.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty());
        let store = Store::new(loaded.resources);
        let mesh = MeshConfig::default();
        let all: Vec<&'static AnalyzerDef> = ANALYZERS.iter().collect();
        analysis::run(&store, &mesh, &all)
            .into_iter()
            .map(|m| (m.code().to_owned(), m.text))
            .collect()
    }

    #[test]
    fn every_istio_kind_has_an_analyzer() {
        for def in ANALYZERS {
            assert!(
                def.name
                    .starts_with("schemaValidation.CollectionValidationAnalyzer(collections.")
            );
        }
        assert_eq!(ANALYZERS.len(), 11);
    }

    #[test]
    fn errors_and_warnings_map_to_codes() {
        let m = messages(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: a\nspec:\n  host: a\n  trafficPolicy:\n    outlierDetection:\n      consecutiveErrors: 5\n      maxEjectionPercent: 150\n",
        );
        assert!(
            m.iter()
                .any(|(c, t)| c == "IST0106" && t.contains("percentage 150")),
            "{m:?}"
        );
        assert!(m.iter().any(|(c, _)| c == "IST0133"), "{m:?}");
    }

    #[test]
    fn valid_objects_get_no_messages() {
        let m = messages(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination:\n        host: a\n",
        );
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn duplicate_matches_map_to_their_codes() {
        let m = messages(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a]\n  http:\n  - match:\n    - uri: {prefix: /x}\n    route:\n    - destination: {host: a}\n  - match:\n    - uri: {prefix: /x}\n    route:\n    - destination: {host: b}\n",
        );
        let codes: Vec<&str> = m.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(codes, vec!["IST0130", "IST0131"], "{m:?}");
        assert!(
            m[0].1
                .contains("VirtualService rule #1 not used (all matches used by prior rules)")
        );
    }
}
