//! Analyzers of Istio's `envoyfilter` package: EnvoyFilter patches whose operation does not
//! fit what they apply to, or whose effect depends on the order EnvoyFilters happen to be
//! applied in.
//!
//! Relative operations (INSERT_BEFORE/AFTER, REPLACE, MERGE, REMOVE) depend on what other
//! patches did before them, so an EnvoyFilter that uses one without a `priority` is warned
//! about; when an earlier patch that is restricted to a proxy version touched the same
//! filter, the warning says so (after an upgrade the order changes). Each message is given
//! once per EnvoyFilter, at the first patch that causes it, as Istio's own output has it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, MessageType, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "envoyfilter.EnvoyPatchAnalyzer",
    description: "Checks an envoyFilters ",
    messages: &[
        &catalog::ENVOY_FILTER_USES_RELATIVE_OPERATION,
        &catalog::ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
        &catalog::ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY,
        &catalog::ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
        &catalog::ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
    ],
    run: analyze_patches,
}];

/// What a patch touches, as far as ordering goes: the `name` in its value, else the filter
/// its listener match names. Patches that name nothing all count as the same unnamed target,
/// as they do in Istio.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PatchTarget {
    Unnamed,
    /// `patch.value.name` (any JSON value, compared as written).
    ValueName(String),
    /// `match.listener.filterChain.filter.name`.
    MatchedFilter(String),
}

fn analyze_patches(ctx: &mut Context<'_>) {
    // Targets of patches restricted to a proxy version, across all EnvoyFilters seen so far.
    let mut version_pinned: BTreeSet<PatchTarget> = BTreeSet::new();
    for filter in ctx.store.of(groups::NETWORKING, "EnvoyFilter") {
        analyze_filter(ctx, filter, &mut version_pinned);
    }
}

fn analyze_filter(
    ctx: &mut Context<'_>,
    filter: &Resource,
    version_pinned: &mut BTreeSet<PatchTarget>,
) {
    let prioritized = filter
        .spec()
        .get("priority")
        .and_then(Value::as_i64)
        .is_some_and(|p| p != 0);
    let mut reported: BTreeSet<&'static str> = BTreeSet::new();
    let mut report = |ctx: &mut Context<'_>, kind: &'static MessageType, index: usize| {
        if reported.insert(kind.code) {
            let path = format!("spec.configPatches[{index}].patch.operation");
            ctx.report(kind, filter, &path, &[]);
        }
    };

    for (index, patch) in arr_at(filter.spec(), "/configPatches").iter().enumerate() {
        let Some(body) = patch.get("patch").filter(|p| !p.is_null()) else {
            // A patch without its patch section ends the check of this EnvoyFilter.
            break;
        };
        let Some(target) = target_of(patch, body) else {
            // Istio skips a filter-chain patch that names no filter.
            continue;
        };
        let apply_to = str_at(patch, "/applyTo").unwrap_or("INVALID");
        let operation = str_at(body, "/operation").unwrap_or("INVALID");
        let route_level = matches!(apply_to, "ROUTE_CONFIGURATION" | "HTTP_ROUTE");

        let relative = match operation {
            "ADD" => {
                if route_level {
                    report(
                        ctx,
                        &catalog::ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY,
                        index,
                    );
                }
                false
            }
            "REMOVE" if route_level => {
                report(
                    ctx,
                    &catalog::ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
                    index,
                );
                false
            }
            "REPLACE" if !matches!(apply_to, "HTTP_FILTER" | "NETWORK_FILTER" | "VIRTUAL_HOST") => {
                report(
                    ctx,
                    &catalog::ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
                    index,
                );
                false
            }
            "REMOVE" | "REPLACE" | "INSERT_BEFORE" | "INSERT_AFTER" | "MERGE" => true,
            _ => false,
        };
        if relative && !prioritized {
            let kind = if version_pinned.contains(&target) {
                &catalog::ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION
            } else {
                &catalog::ENVOY_FILTER_USES_RELATIVE_OPERATION
            };
            report(ctx, kind, index);
        }

        let pinned = str_at(patch, "/match/proxy/proxyVersion").is_some_and(|v| !v.is_empty());
        if pinned {
            version_pinned.insert(target);
        }
    }
}

/// The target of a patch, or `None` for a patch Istio does not check: one whose value names
/// nothing and whose listener match selects a filter chain without naming a filter.
fn target_of(patch: &Value, body: &Value) -> Option<PatchTarget> {
    let Some(value) = body.get("value").and_then(Value::as_object) else {
        return Some(PatchTarget::Unnamed);
    };
    if value.is_empty() {
        return Some(PatchTarget::Unnamed);
    }
    if let Some(name) = value.get("name").filter(|n| !n.is_null()) {
        return Some(PatchTarget::ValueName(name.to_string()));
    }
    let Some(chain) = patch
        .pointer("/match/listener/filterChain")
        .filter(|c| !c.is_null())
    else {
        return Some(PatchTarget::Unnamed);
    };
    let filter = chain.get("filter").filter(|f| !f.is_null())?;
    Some(match str_at(filter, "/name").unwrap_or("") {
        "" => PatchTarget::Unnamed,
        name => PatchTarget::MatchedFilter(name.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::source;

    fn run(yaml: &str) -> Vec<(String, String)> {
        let loaded = source::load_bytes("test.yaml", yaml.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let store = Store::new(loaded.resources);
        let mesh = MeshConfig::default();
        let mut ctx = Context::new(&store, &mesh, "test");
        analyze_patches(&mut ctx);
        ctx.into_messages()
            .into_iter()
            .map(|m| {
                (
                    m.code().to_owned(),
                    m.origin.map(|o| o.name).unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn prioritized_and_absolute_patches_are_quiet() {
        let msgs = run(r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: prioritized, namespace: default}
spec:
  priority: -5
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}
  - applyTo: NETWORK_FILTER
    patch: {operation: MERGE, value: {name: envoy.tcp}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: absolute, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_FIRST, value: {name: envoy.lua}}
  - applyTo: CLUSTER
    patch: {operation: ADD, value: {name: c}}
"#);
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn proxy_version_warning_needs_the_same_target() {
        let msgs = run(r#"
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: pinned, namespace: default}
spec:
  priority: 1
  configPatches:
  - applyTo: HTTP_FILTER
    match: {proxy: {proxyVersion: '^1\.20.*'}}
    patch: {operation: INSERT_BEFORE, value: {name: envoy.lua}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: other-target, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_AFTER, value: {name: envoy.wasm}}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: same-target, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch: {operation: INSERT_AFTER, value: {name: envoy.lua}}
"#);
        assert_eq!(
            msgs,
            vec![
                ("IST0151".to_owned(), "other-target".to_owned()),
                ("IST0155".to_owned(), "same-target".to_owned()),
            ]
        );
    }

    #[test]
    fn value_name_and_matched_filter_name_are_different_targets() {
        let patch = serde_json::json!({
            "match": {"listener": {"filterChain": {"filter": {"name": "envoy.lua"}}}},
            "patch": {"operation": "MERGE", "value": {"typed_config": {}}}
        });
        let body = &patch["patch"];
        assert_eq!(
            target_of(&patch, body),
            Some(PatchTarget::MatchedFilter("envoy.lua".into()))
        );
        let named = serde_json::json!({"operation": "MERGE", "value": {"name": "envoy.lua"}});
        assert_ne!(target_of(&patch, &named), target_of(&patch, body));
    }
}
