//! Analyzers of Istio's `conditions` package: status conditions that a controller wrote
//! back onto an object and that say something is wrong with it (a waypoint that is not
//! bound, a Gateway that is not programmed, a route that was not accepted).
//!
//! Only the condition types Istio knows the meaning of are read; any other condition (for
//! example one written by a GitOps tool) is left alone, whatever its status.

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "conditions.ConditionAnalyzer",
    description: "Checks for negative status conditions on resources",
    messages: &[&catalog::NEGATIVE_CONDITION_STATUS],
    run: analyze_conditions,
}];

/// Where a kind keeps its conditions.
#[derive(Clone, Copy)]
enum ConditionsAt {
    /// `status.conditions[]`.
    Status,
    /// `status.parents[].conditions[]` (Gateway API routes).
    RouteParents,
}

/// A kind, where its conditions are, and the condition types whose `False` status is bad.
struct WatchedKind {
    group: &'static str,
    kind: &'static str,
    at: ConditionsAt,
    negative_when_false: &'static [&'static str],
}

const GATEWAY_API_CONDITIONS: &[&str] = &["Accepted", "Programmed", "ResolvedRefs"];

const WATCHED: &[WatchedKind] = &[
    WatchedKind {
        group: groups::CORE,
        kind: "Service",
        at: ConditionsAt::Status,
        negative_when_false: &["istio.io/WaypointBound"],
    },
    WatchedKind {
        group: groups::NETWORKING,
        kind: "ServiceEntry",
        at: ConditionsAt::Status,
        negative_when_false: &["istio.io/WaypointBound"],
    },
    WatchedKind {
        group: groups::SECURITY,
        kind: "AuthorizationPolicy",
        at: ConditionsAt::Status,
        negative_when_false: &["ZtunnelAccepted", "WaypointAccepted"],
    },
    WatchedKind {
        group: groups::GATEWAY_API,
        kind: "Gateway",
        at: ConditionsAt::Status,
        negative_when_false: GATEWAY_API_CONDITIONS,
    },
    WatchedKind {
        group: groups::GATEWAY_API,
        kind: "HTTPRoute",
        at: ConditionsAt::RouteParents,
        negative_when_false: GATEWAY_API_CONDITIONS,
    },
    WatchedKind {
        group: groups::GATEWAY_API,
        kind: "GRPCRoute",
        at: ConditionsAt::RouteParents,
        negative_when_false: GATEWAY_API_CONDITIONS,
    },
];

fn analyze_conditions(ctx: &mut Context<'_>) {
    for watched in WATCHED {
        for res in ctx.store.of(watched.group, watched.kind) {
            for (path, condition) in conditions_of(res, watched.at) {
                if is_negative(watched, res, condition) {
                    let field = |name: &str| str_at(condition, name).unwrap_or("").to_owned();
                    let (ty, reason, message) =
                        (field("/type"), field("/reason"), field("/message"));
                    ctx.report(
                        &catalog::NEGATIVE_CONDITION_STATUS,
                        res,
                        &path,
                        &[&ty, &reason, &message],
                    );
                }
            }
        }
    }
}

/// The conditions of an object, each with its field path.
fn conditions_of(res: &Resource, at: ConditionsAt) -> Vec<(String, &Value)> {
    match at {
        ConditionsAt::Status => arr_at(&res.json, "/status/conditions")
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("status.conditions[{i}]"), c))
            .collect(),
        ConditionsAt::RouteParents => arr_at(&res.json, "/status/parents")
            .iter()
            .enumerate()
            .flat_map(|(p, parent)| {
                arr_at(parent, "/conditions")
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (format!("status.parents[{p}].conditions[{i}]"), c))
            })
            .collect(),
    }
}

/// Whether a condition says something is wrong: a known type with status `False`, or an
/// AuthorizationPolicy that a waypoint accepted only in part (reported with status `True`).
fn is_negative(watched: &WatchedKind, res: &Resource, condition: &Value) -> bool {
    let ty = str_at(condition, "/type").unwrap_or("");
    let status = str_at(condition, "/status").unwrap_or("");
    if status == "False" && watched.negative_when_false.contains(&ty) {
        return true;
    }
    res.is(groups::SECURITY, "AuthorizationPolicy")
        && ty == "WaypointAccepted"
        && str_at(condition, "/reason") == Some("PartiallyInvalid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::source;

    fn run(yaml: &str) -> Vec<String> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let store = Store::new(loaded.resources);
        let mesh = MeshConfig::default();
        let mut ctx = Context::new(&store, &mesh, "test");
        analyze_conditions(&mut ctx);
        ctx.into_messages().into_iter().map(|m| m.text).collect()
    }

    #[test]
    fn true_and_unknown_conditions_are_quiet() {
        let msgs = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
status:
  conditions:
  - {type: Programmed, status: "True", reason: Programmed, message: ok}
  - {type: SomethingElse, status: "False", reason: X, message: y}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-gw, namespace: default}
status:
  conditions:
  - {type: Programmed, status: "False", reason: X, message: y}
"#);
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn message_carries_type_reason_and_text() {
        let msgs = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
status:
  parents:
  - conditions:
    - {type: ResolvedRefs, status: "False", reason: BackendNotFound, message: "no svc"}
"#);
        assert_eq!(
            msgs,
            vec![
                "A condition with a negative status is present: type=ResolvedRefs, reason=BackendNotFound, message=no svc."
            ]
        );
    }
}
