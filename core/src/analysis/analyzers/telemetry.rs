//! Analyzers of Istio's `telemetry` package: Telemetry resources that select no workload,
//! that compete for the same workload or namespace, that enable access logging with no
//! provider to send it to, or that trace through the deprecated Lightstep provider.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::analysis::json::selector_text;
use crate::analysis::json::{arr_at, str_at, string_map_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[
    AnalyzerDef {
        name: "telemetry.ProviderAnalyzer",
        description: "Validates that providers in telemetry resource is valid",
        messages: &[&catalog::INVALID_TELEMETRY_PROVIDER],
        run: analyze_providers,
    },
    AnalyzerDef {
        name: "telemetry.SelectorAnalyzer",
        description: "Validates that telemetries that define a selector match at least one pod, and that there aren't multiple telemetry resources that select overlapping pods",
        messages: &[
            &catalog::REFERENCED_RESOURCE_NOT_FOUND,
            &catalog::CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
        ],
        run: analyze_selectors,
    },
    AnalyzerDef {
        name: "telemetry.DefaultSelectorAnalyzer",
        description: "Validates that there aren't multiple telemetry resources that have no selector",
        messages: &[&catalog::MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS],
        run: analyze_default_selectors,
    },
    AnalyzerDef {
        name: "telemetry.LightstepAnalyzer",
        description: "Validates that lightstep provider is still used",
        messages: &[&catalog::DEPRECATED],
        run: analyze_lightstep,
    },
];

fn telemetries<'s>(ctx: &Context<'s>) -> impl Iterator<Item = &'s Resource> + 's {
    ctx.store.of(groups::TELEMETRY, "Telemetry")
}

/// Go's `%v` of a list of strings: `[a b c]`.
fn go_list<S: AsRef<str>>(items: &[S]) -> String {
    let joined: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", joined.join(" "))
}

/// Access logging entries that name no provider, when the mesh has no default access log
/// provider to fall back on: such an entry is ignored.
fn analyze_providers(ctx: &mut Context<'_>) {
    let mesh_default = !arr_at(&ctx.mesh.json, "/defaultProviders/accessLogging").is_empty();
    if mesh_default {
        return;
    }
    for telemetry in telemetries(ctx) {
        let offending = arr_at(telemetry.spec(), "/accessLogging")
            .iter()
            .position(|entry| {
                let disabled = entry.get("disabled").and_then(Value::as_bool) == Some(true);
                !disabled && arr_at(entry, "/providers").is_empty()
            });
        if let Some(i) = offending {
            let ns = telemetry.ns();
            ctx.report(
                &catalog::INVALID_TELEMETRY_PROVIDER,
                telemetry,
                &format!("spec.accessLogging[{i}]"),
                &[&telemetry.name, &ns],
            );
        }
    }
}

/// Telemetries whose selector matches no pod of their namespace, and pods that more than one
/// Telemetry selects.
fn analyze_selectors(ctx: &mut Context<'_>) {
    // Pod (namespace, name) → the Telemetries selecting it, in the order they were read.
    let mut selecting: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for telemetry in telemetries(ctx) {
        let selector = string_map_at(telemetry.spec(), "/selector/matchLabels");
        if selector.is_empty() {
            continue;
        }
        let mut found = false;
        for pod in ctx.store.of(groups::CORE, "Pod") {
            if pod.ns() == telemetry.ns()
                && selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v))
            {
                found = true;
                selecting
                    .entry((pod.ns().to_owned(), pod.name.clone()))
                    .or_default()
                    .push(telemetry);
            }
        }
        if !found {
            let first_key = selector.keys().next().map_or("", String::as_str);
            ctx.report(
                &catalog::REFERENCED_RESOURCE_NOT_FOUND,
                telemetry,
                &format!("spec.selector.matchLabels[\"{first_key}\"]"),
                &[&"selector", &selector_text(&selector)],
            );
        }
    }

    for ((pod_ns, pod_name), list) in &selecting {
        if list.len() < 2 {
            continue;
        }
        let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
        let names = go_list(&names);
        for telemetry in list {
            ctx.report(
                &catalog::CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
                telemetry,
                "metadata.name",
                &[&names, pod_ns, pod_name],
            );
        }
    }
}

/// Namespaces with more than one Telemetry that applies namespace-wide (no selector).
/// Telemetries that target specific objects (`targetRef`, `targetRefs`) are not
/// namespace-wide defaults and are left out.
fn analyze_default_selectors(ctx: &mut Context<'_>) {
    let mut by_namespace: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for telemetry in telemetries(ctx) {
        let spec = telemetry.spec();
        let has = |field: &str| spec.get(field).is_some_and(|v| !v.is_null());
        let targeted = has("targetRef") || !arr_at(spec, "/targetRefs").is_empty();
        if !has("selector") && !targeted {
            by_namespace
                .entry(telemetry.ns())
                .or_default()
                .push(telemetry);
        }
    }
    for (ns, list) in by_namespace {
        if list.len() < 2 {
            continue;
        }
        let names: Vec<&str> = list.iter().map(|t| t.name.as_str()).collect();
        let names = go_list(&names);
        for telemetry in list {
            ctx.report(
                &catalog::MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
                telemetry,
                "metadata.name",
                &[&names, &ns],
            );
        }
    }
}

/// Tracing through a mesh extension provider of the Lightstep kind, which is deprecated.
fn analyze_lightstep(ctx: &mut Context<'_>) {
    let lightstep: BTreeSet<&str> = arr_at(&ctx.mesh.json, "/extensionProviders")
        .iter()
        .filter(|p| p.get("lightstep").is_some_and(|l| !l.is_null()))
        .filter_map(|p| str_at(p, "/name"))
        .collect();
    if lightstep.is_empty() {
        return;
    }
    for telemetry in telemetries(ctx) {
        for (i, tracing) in arr_at(telemetry.spec(), "/tracing").iter().enumerate() {
            for (j, provider) in arr_at(tracing, "/providers").iter().enumerate() {
                let Some(name) = str_at(provider, "/name").filter(|n| lightstep.contains(n)) else {
                    continue;
                };
                let detail = format!(
                    "The Lightstep provider {name} is deprecated, please migrate to OpenTelemetry provider."
                );
                ctx.report(
                    &catalog::DEPRECATED,
                    telemetry,
                    &format!("spec.tracing[{i}].providers[{j}].name"),
                    &[&detail],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::source;

    fn run(
        analyzer: fn(&mut Context<'_>),
        mesh: serde_json::Value,
        yaml: &str,
    ) -> Vec<(String, String)> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let store = Store::new(loaded.resources);
        let mesh = MeshConfig::from_json(mesh);
        let mut ctx = Context::new(&store, &mesh, "test");
        analyzer(&mut ctx);
        ctx.into_messages()
            .into_iter()
            .map(|m| (m.origin.map(|o| o.name).unwrap_or_default(), m.text))
            .collect()
    }

    const EMPTY_ACCESS_LOG: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: logs, namespace: default}
spec:
  accessLogging:
  - filter: {expression: "response.code >= 400"}
"#;

    #[test]
    fn mesh_default_access_log_provider_makes_empty_providers_fine() {
        let mesh = serde_json::json!({"defaultProviders": {"accessLogging": ["envoy"]}});
        assert!(run(analyze_providers, mesh, EMPTY_ACCESS_LOG).is_empty());
        let msgs = run(analyze_providers, serde_json::json!({}), EMPTY_ACCESS_LOG);
        assert_eq!(
            msgs,
            vec![(
                "logs".to_owned(),
                "The Telemetry logs in namespace \"default\" with empty providers will be ignored."
                    .to_owned()
            )]
        );
    }

    #[test]
    fn targeted_telemetries_are_not_namespace_defaults() {
        let msgs = run(
            analyze_default_selectors,
            serde_json::json!({}),
            r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns-wide, namespace: default}
spec: {}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: for-gateway, namespace: default}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: other-ns, namespace: other}
spec: {}
"#,
        );
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn non_lightstep_tracing_is_quiet() {
        let mesh = serde_json::json!({"extensionProviders": [
            {"name": "ls", "lightstep": {"service": "ls.svc", "port": 443}},
            {"name": "otel", "opentelemetry": {"service": "otel.svc", "port": 4317}}
        ]});
        let msgs = run(
            analyze_lightstep,
            mesh,
            r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t, namespace: default}
spec:
  tracing:
  - providers: [{name: otel}]
"#,
        );
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn selector_message_names_the_selector() {
        let msgs = run(
            analyze_selectors,
            serde_json::json!({}),
            r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t, namespace: default}
spec:
  selector:
    matchLabels: {version: v1, app: x}
"#,
        );
        assert_eq!(
            msgs,
            vec![(
                "t".to_owned(),
                "Referenced selector not found: \"app=x,version=v1\"".to_owned()
            )]
        );
    }
}
