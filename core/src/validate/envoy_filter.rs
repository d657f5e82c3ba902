//! EnvoyFilter rules: selector, and for each patch that applyTo, match and patch fit
//! together. The patch values themselves are Envoy configuration, which is not checked here.

use super::Report;
use super::common::*;
use crate::model::networking::{ApplyTo, EnvoyFilter, PatchOperation};

/// Filter names Envoy renamed, and their current names.
const DEPRECATED_FILTER_NAMES: &[(&str, &str)] = &[
    (
        "envoy.http_connection_manager",
        "envoy.filters.network.http_connection_manager",
    ),
    ("envoy.tcp_proxy", "envoy.filters.network.tcp_proxy"),
    ("envoy.router", "envoy.filters.http.router"),
    ("envoy.cors", "envoy.filters.http.cors"),
    ("envoy.fault", "envoy.filters.http.fault"),
    ("envoy.lua", "envoy.filters.http.lua"),
    ("envoy.ext_authz", "envoy.filters.http.ext_authz"),
    ("envoy.grpc_web", "envoy.filters.http.grpc_web"),
    ("envoy.gzip", "envoy.filters.http.gzip"),
    ("envoy.health_check", "envoy.filters.http.health_check"),
    ("envoy.rate_limit", "envoy.filters.http.ratelimit"),
    ("envoy.buffer", "envoy.filters.http.buffer"),
    (
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.jwt_authn",
    ),
    ("envoy.mongo_proxy", "envoy.filters.network.mongo_proxy"),
    ("envoy.redis_proxy", "envoy.filters.network.redis_proxy"),
    ("envoy.ratelimit", "envoy.filters.network.ratelimit"),
    (
        "envoy.listener.tls_inspector",
        "envoy.filters.listener.tls_inspector",
    ),
    (
        "envoy.listener.original_dst",
        "envoy.filters.listener.original_dst",
    ),
];

const HCM: &str = "envoy.filters.network.http_connection_manager";

pub fn validate(out: &mut Report<'_>, ef: &EnvoyFilter) {
    out.warn(
        "spec",
        "EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
    );
    if let Some(sel) = &ef.workload_selector {
        let errs = selector_label_errors(&sel.labels);
        if !errs.is_empty() {
            out.check_all("spec.workloadSelector", errs);
            return;
        }
        if sel.labels.is_empty() {
            out.warn(
                "spec.workloadSelector",
                "Envoy filter: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
    }
    for (i, cp) in ef.config_patches.iter().enumerate() {
        let path = format!("spec.configPatches[{i}]");
        if cp.apply_to == ApplyTo::Invalid {
            out.error(&path, "Envoy filter: missing applyTo");
            continue;
        }
        let Some(patch) = &cp.patch else {
            out.error(&path, "Envoy filter: missing patch");
            continue;
        };
        if patch.operation == PatchOperation::Invalid {
            out.error(
                &format!("{path}.patch"),
                "Envoy filter: missing patch operation",
            );
            continue;
        }
        if patch.operation != PatchOperation::Remove && patch.value.is_none() {
            out.error(
                &format!("{path}.patch"),
                "Envoy filter: missing patch value for non-remove operation",
            );
            continue;
        }
        let m = cp.r#match.as_ref();
        if let Some(version) = m.and_then(|m| m.proxy.as_ref()).map(|p| &p.proxy_version)
            && !version.is_empty()
            && let Err(e) = regex::Regex::new(version)
        {
            out.error(
                &format!("{path}.match.proxy.proxyVersion"),
                format!("Envoy filter: invalid regex for proxy version, [{e}]"),
            );
            continue;
        }
        let Some(m) = m else {
            continue;
        };
        let has_object =
            m.listener.is_some() || m.route_configuration.is_some() || m.cluster.is_some();
        match cp.apply_to {
            ApplyTo::Listener
            | ApplyTo::FilterChain
            | ApplyTo::NetworkFilter
            | ApplyTo::HttpFilter => {
                if !has_object {
                    continue;
                }
                let Some(listener) = &m.listener else {
                    out.error(
                        &format!("{path}.match"),
                        "Envoy filter: applyTo for listener class objects cannot have non listener match",
                    );
                    continue;
                };
                let Some(filter) = listener
                    .filter_chain
                    .as_ref()
                    .and_then(|fc| fc.filter.as_ref())
                else {
                    continue;
                };
                let fpath = format!("{path}.match.listener.filterChain.filter");
                if matches!(cp.apply_to, ApplyTo::Listener | ApplyTo::FilterChain) {
                    out.warn(
                        &fpath,
                        format!(
                            "Envoy filter: filter match has no effect when used with {}",
                            cp.apply_to
                        ),
                    );
                }
                if filter.name.is_empty() {
                    out.error(&fpath, "Envoy filter: filter match has no name to match on");
                    continue;
                }
                if let Some(sub) = &filter.sub_filter {
                    if cp.apply_to != ApplyTo::HttpFilter {
                        out.error(
                            &fpath,
                            "Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only",
                        );
                        continue;
                    }
                    if filter.name != HCM && filter.name != "envoy.http_connection_manager" {
                        out.error(
                            &fpath,
                            format!(
                                "Envoy filter: subfilter match requires filter match with {HCM}"
                            ),
                        );
                        continue;
                    }
                    if sub.name.is_empty() {
                        out.error(
                            &fpath,
                            "Envoy filter: subfilter match has no name to match on",
                        );
                        continue;
                    }
                }
                let names = [
                    Some(filter.name.as_str()),
                    filter.sub_filter.as_ref().map(|s| s.name.as_str()),
                ];
                for name in names.into_iter().flatten() {
                    if let Some((_, new)) = DEPRECATED_FILTER_NAMES
                        .iter()
                        .find(|(old, new)| *old == name && old != new)
                    {
                        out.warn(
                            &fpath,
                            format!("using deprecated filter name {name:?}; use {new:?} instead"),
                        );
                    }
                }
            }
            ApplyTo::RouteConfiguration | ApplyTo::VirtualHost | ApplyTo::HttpRoute
                if has_object && m.route_configuration.is_none() =>
            {
                out.error(
                    &format!("{path}.match"),
                    "Envoy filter: applyTo for http route class objects cannot have non route configuration match",
                );
            }
            ApplyTo::Cluster if has_object && m.cluster.is_none() => {
                out.error(
                    &format!("{path}.match"),
                    "Envoy filter: applyTo for cluster class objects cannot have non cluster match",
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn always_warns() {
        warns(
            "EnvoyFilter",
            "configPatches: []\n",
            "internal implementation details",
        );
    }

    #[test]
    fn patches() {
        accepts(
            "EnvoyFilter",
            "workloadSelector:\n  labels: {app: a}\nconfigPatches:\n- applyTo: HTTP_FILTER\n  match:\n    context: SIDECAR_INBOUND\n    listener:\n      filterChain:\n        filter:\n          name: envoy.filters.network.http_connection_manager\n          subFilter: {name: envoy.filters.http.router}\n  patch:\n    operation: INSERT_BEFORE\n    value: {name: envoy.lua}\n",
        );
        rejects(
            "EnvoyFilter",
            "configPatches:\n- patch: {operation: MERGE, value: {}}\n",
            "missing applyTo",
        );
        rejects(
            "EnvoyFilter",
            "configPatches:\n- applyTo: CLUSTER\n",
            "missing patch",
        );
        rejects(
            "EnvoyFilter",
            "configPatches:\n- applyTo: CLUSTER\n  patch: {operation: MERGE}\n",
            "missing patch value",
        );
        accepts(
            "EnvoyFilter",
            "configPatches:\n- applyTo: CLUSTER\n  match: {cluster: {service: a}}\n  patch: {operation: REMOVE}\n",
        );
        rejects(
            "EnvoyFilter",
            "configPatches:\n- applyTo: CLUSTER\n  match: {listener: {portNumber: 80}}\n  patch: {operation: REMOVE}\n",
            "non cluster match",
        );
        rejects(
            "EnvoyFilter",
            "configPatches:\n- applyTo: NETWORK_FILTER\n  match:\n    listener:\n      filterChain:\n        filter:\n          name: envoy.filters.network.tcp_proxy\n          subFilter: {name: x}\n  patch: {operation: REMOVE}\n",
            "HTTP_FILTER only",
        );
        rejects(
            "EnvoyFilter",
            "configPatches:\n- applyTo: CLUSTER\n  match: {proxy: {proxyVersion: \"(\"}}\n  patch: {operation: REMOVE}\n",
            "invalid regex for proxy version",
        );
        warns(
            "EnvoyFilter",
            "configPatches:\n- applyTo: HTTP_FILTER\n  match:\n    listener:\n      filterChain:\n        filter: {name: envoy.http_connection_manager}\n  patch: {operation: REMOVE}\n",
            "deprecated filter name",
        );
    }
}
