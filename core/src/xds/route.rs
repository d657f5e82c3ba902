//! HTTP routes: VirtualService rules as Envoy routes, default routes for services no
//! VirtualService covers, and the virtual hosts and route configurations that hold them.
//!
//! Translation follows Istio's: each match of a rule becomes a route (a rule without
//! matches becomes one catch-all route and ends the list, as does a catch-all match);
//! matches for another port, for other source labels or namespaces, or for other gateways
//! are left out; a VirtualService that leaves no route for a port does not apply on that
//! port. Timeouts default to none (0s), retries to Istio's default policy (2 attempts on
//! `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` and 503),
//! faults and CORS go in the route's `typed_per_filter_config` for the HTTP connection
//! manager's `envoy.filters.http.fault` and `envoy.filters.http.cors` filters.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
    header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay as EnvoyFaultDelay, fault_delay,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort as EnvoyFaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;

use crate::host;
use crate::model::networking::{
    ConsistentHashLb, CorsPolicy, Destination, HeaderOperations, Headers, HttpFaultInjection,
    HttpMatchRequest, HttpRetry, HttpRoute, RedirectPortSelection, RouteDestination, StringMatch,
    StringMatchKind, UnmatchedPreflights, VirtualService,
};

use super::registry::{Service, ServicePort};
use super::scope::Scope;
use super::{Typed, cluster, cluster_name, proto};

pub(super) const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub(super) const CORS_FILTER: &str = "envoy.filters.http.cors";
/// The virtual host (and route) for hosts outside the registry when allowed.
pub(super) const ALLOW_ANY: &str = "allow_any";
/// The virtual host (and route) for hosts outside the registry when not allowed.
pub(super) const BLOCK_ALL: &str = "block_all";

const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The context routes are built in: who for, which port, which gateway names.
pub(super) struct RouteCtx<'a, 's> {
    pub scope: &'a Scope<'s>,
    /// The port the request arrived for (the service port, or the gateway server port).
    pub listen_port: u16,
    /// Whether the listener terminates TLS (redirects then default to https).
    pub is_tls: bool,
}

/// A route configuration named `name` with these virtual hosts, sorted by name, each
/// domain used once (a later virtual host loses a domain an earlier one has).
pub(super) fn route_configuration(name: &str, vhosts: Vec<VirtualHost>) -> RouteConfiguration {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for mut vh in vhosts {
        vh.domains.retain(|d| used.insert(d.to_ascii_lowercase()));
        if !vh.domains.is_empty() {
            out.push(vh);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: out,
        validate_clusters: Some(proto::boolv(false)),
        max_direct_response_body_size_bytes: Some(proto::u32v(1024 * 1024)),
        ..Default::default()
    }
}

/// A route configuration whose hosts match without regard to the request's port (gateways).
pub(super) fn route_configuration_ignoring_port(
    name: &str,
    vhosts: Vec<VirtualHost>,
) -> RouteConfiguration {
    let mut rc = route_configuration(name, vhosts);
    rc.ignore_port_in_host_matching = true;
    rc
}

/// The domains a virtual host for `svc` answers: Istio's name variants for Kubernetes
/// services (the short name only from the same namespace), the host for ServiceEntries,
/// and the VIPs; each with `:port`, and also without it when `portless`.
pub(super) fn service_domains(
    svc: &Service,
    port: u16,
    proxy_ns: &str,
    portless: bool,
) -> Vec<String> {
    let mut names = vec![svc.hostname.clone()];
    let suffix = format!(".{}.svc.{}", svc.namespace, host::DEFAULT_DOMAIN);
    if let Some(name) = svc.hostname.strip_suffix(&suffix) {
        names.push(format!("{name}.{}", svc.namespace));
        names.push(format!("{name}.{}.svc", svc.namespace));
        if svc.namespace == proxy_ns {
            names.push(name.to_owned());
        }
    }
    for a in &svc.addresses {
        names.push(match a {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    let mut out = Vec::new();
    for n in names {
        if portless {
            out.push(n.clone());
        }
        out.push(format!("{n}:{port}"));
    }
    out
}

/// The virtual host `allow_any` (to PassthroughCluster) or `block_all` (502).
pub(super) fn catch_all_vhost(allow_any: bool) -> VirtualHost {
    let (name, action) = if allow_any {
        (
            ALLOW_ANY,
            route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                    cluster_name::PASSTHROUGH.to_owned(),
                )),
                timeout: Some(proto::zero_duration()),
                ..Default::default()
            }),
        )
    } else {
        (
            BLOCK_ALL,
            route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        )
    };
    VirtualHost {
        name: name.to_owned(),
        domains: vec!["*".to_owned()],
        routes: vec![Route {
            name: name.to_owned(),
            r#match: Some(prefix_match("/")),
            action: Some(action),
            ..Default::default()
        }],
        include_request_attempt_count: true,
        ..Default::default()
    }
}

fn prefix_match(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix(p.to_owned())),
        ..Default::default()
    }
}

/// The route for a service no VirtualService covers.
pub(super) fn default_route(scope: &Scope<'_>, svc: &Service, port: &ServicePort) -> Route {
    let cluster = cluster_name::outbound(port.number, "", &svc.hostname);
    let hash = scope.destination_rule(svc).and_then(|dr| {
        cluster::consistent_hash(dr.spec.traffic_policy.as_ref(), None, port.number)
    });
    let mut action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
        ..Default::default()
    };
    set_timeout(&mut action, None);
    if let Some(h) = hash.and_then(hash_policy) {
        action.hash_policy.push(h);
    }
    action.retry_policy = retry_policy(scope, None, hash.is_some());
    Route {
        name: "default".to_owned(),
        r#match: Some(prefix_match("/")),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    }
}

fn set_timeout(action: &mut RouteAction, timeout: Option<std::time::Duration>) {
    let t = timeout.map_or_else(proto::zero_duration, proto::duration);
    // gRPC's own timeout header is honoured up to the route timeout (none: unbounded). The
    // stream limit must be set too: with only grpc_timeout_header_max, Envoy 1.40 ignores the
    // route `timeout` (the e2e `timeout` scenario caught this), so both carry the timeout, as
    // istiod sets them.
    action.max_stream_duration = Some(route_action::MaxStreamDuration {
        max_stream_duration: Some(t),
        grpc_timeout_header_max: Some(t),
        ..Default::default()
    });
    action.timeout = Some(t);
}

/// Istio's retry policy for a route: the default when `retry` is absent, none when it asks
/// for no attempts.
fn retry_policy(scope: &Scope<'_>, retry: Option<&HttpRetry>, hashed: bool) -> Option<RetryPolicy> {
    let retry = retry.or(scope.default_retry.as_ref());
    let mut out = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_owned(),
        num_retries: Some(proto::u32v(2)),
        retriable_status_codes: vec![503],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    };
    if !hashed {
        out.retry_host_predicate = vec![previous_hosts()];
    }
    let Some(r) = retry else {
        return Some(out);
    };
    if r.attempts <= 0 {
        return None;
    }
    out.num_retries = Some(proto::u32v(u32::try_from(r.attempts).unwrap_or(0)));
    if !r.retry_on.is_empty() {
        let (on, codes) = parse_retry_on(&r.retry_on);
        out.retry_on = on;
        out.retriable_status_codes = codes;
        if !out.retriable_status_codes.is_empty()
            && !out.retry_on.contains("retriable-status-codes")
        {
            if out.retry_on.is_empty() {
                out.retry_on = "retriable-status-codes".to_owned();
            } else {
                out.retry_on.push_str(",retriable-status-codes");
            }
        }
    }
    if let Some(t) = r.per_try_timeout {
        out.per_try_timeout = Some(proto::duration(t.0));
    }
    if let Some(ignore) = r.retry_ignore_previous_hosts {
        out.retry_host_predicate = if ignore {
            vec![previous_hosts()]
        } else {
            Vec::new()
        };
    }
    if let Some(b) = r.backoff {
        out.retry_back_off = Some(retry_policy::RetryBackOff {
            base_interval: Some(proto::duration(b.0)),
            ..Default::default()
        });
    }
    Some(out)
}

fn previous_hosts() -> retry_policy::RetryHostPredicate {
    retry_policy::RetryHostPredicate {
        name: "envoy.retry_host_predicates.previous_hosts".to_owned(),
        config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
            proto::any(&PreviousHostsPredicate {}),
        )),
    }
}

/// Splits `retryOn` into Envoy's retry conditions and HTTP status codes.
pub(super) fn parse_retry_on(s: &str) -> (String, Vec<u32>) {
    let mut on = Vec::new();
    let mut codes = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(c) if (100..600).contains(&c) => codes.push(c),
            _ => on.push(part),
        }
    }
    (on.join(","), codes)
}

/// Routes of a VirtualService for one port. Empty when no rule applies.
pub(super) fn virtual_service_routes(
    ctx: &RouteCtx<'_, '_>,
    vs: &Typed<VirtualService>,
) -> Vec<Route> {
    let mut out = Vec::new();
    for rule in &vs.spec.http {
        let mut catch_all = false;
        if rule.r#match.is_empty() {
            if let Some(r) = translate(ctx, vs, rule, None) {
                out.push(r);
            }
            catch_all = true;
        } else {
            for m in &rule.r#match {
                if let Some(r) = translate(ctx, vs, rule, Some(m)) {
                    let all = is_catch_all(&r);
                    out.push(r);
                    if all {
                        catch_all = true;
                        break;
                    }
                }
            }
        }
        if catch_all {
            break;
        }
    }
    out
}

fn is_catch_all(r: &Route) -> bool {
    let Some(m) = &r.r#match else { return false };
    let path_all = match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(p)) => p == "/",
        Some(route_match::PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(route_match::PathSpecifier::SafeRegex(re)) => re.regex == ".*",
        _ => false,
    };
    path_all
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
        && m.dynamic_metadata.is_empty()
}

/// Whether a match applies to this proxy: gateways named in the match, else source labels
/// and namespace.
fn source_matches(ctx: &RouteCtx<'_, '_>, vs_ns: &str, m: &HttpMatchRequest) -> bool {
    if !m.gateways.is_empty() {
        return m.gateways.iter().any(|g| {
            ctx.scope
                .gateway_names
                .contains(&super::scope::qualify_gateway(g, vs_ns))
        });
    }
    crate::analysis::json::selector_matches(&m.source_labels, &ctx.scope.labels)
        && (m.source_namespace.is_empty() || m.source_namespace == ctx.scope.namespace())
}

fn translate(
    ctx: &RouteCtx<'_, '_>,
    vs: &Typed<VirtualService>,
    rule: &HttpRoute,
    m: Option<&HttpMatchRequest>,
) -> Option<Route> {
    if let Some(m) = m {
        if m.port != 0 && m.port != u32::from(ctx.listen_port) {
            return None;
        }
        if !source_matches(ctx, vs.namespace(), m) {
            return None;
        }
    }
    let mut name = rule.name.clone();
    if let Some(mname) = m.map(|m| m.name.as_str()).filter(|n| !n.is_empty()) {
        name = format!("{name}.{mname}");
    }
    let mut out = Route {
        name,
        r#match: Some(route_match_of(m)),
        metadata: Some(proto::istio_config_metadata(
            "virtual-service",
            vs.namespace(),
            vs.name(),
        )),
        ..Default::default()
    };
    if let Some(sp) = m.map(|m| m.stat_prefix.as_str()).filter(|s| !s.is_empty()) {
        out.stat_prefix = sp.to_owned();
    }
    let mut authority = String::new();
    if let Some(h) = &rule.headers {
        let ops = header_ops(h);
        out.request_headers_to_add = ops.request_add;
        out.response_headers_to_add = ops.response_add;
        out.request_headers_to_remove = ops.request_remove;
        out.response_headers_to_remove = ops.response_remove;
        authority = ops.authority;
    }
    if let Some(r) = &rule.redirect {
        let mut redirect = RedirectAction {
            host_redirect: r.authority.clone(),
            path_rewrite_specifier: (!r.uri.is_empty())
                .then(|| redirect_action::PathRewriteSpecifier::PathRedirect(r.uri.clone())),
            ..Default::default()
        };
        if !r.scheme.is_empty() {
            redirect.scheme_rewrite_specifier = Some(
                redirect_action::SchemeRewriteSpecifier::SchemeRedirect(r.scheme.clone()),
            );
        }
        let port = match (r.port, r.derive_port) {
            (Some(p), _) => Some(p),
            (None, Some(RedirectPortSelection::FromRequestPort)) => {
                Some(u32::from(ctx.listen_port))
            }
            _ => None,
        };
        if let Some(p) = port {
            let scheme = if r.scheme.is_empty() {
                if ctx.is_tls { "https" } else { "http" }
            } else {
                r.scheme.as_str()
            };
            redirect.port_redirect =
                if (p == 80 && scheme == "http") || (p == 443 && scheme == "https") {
                    0
                } else {
                    p
                };
        }
        redirect.response_code = match r.redirect_code {
            0 | 301 => redirect_action::RedirectResponseCode::MovedPermanently,
            302 => redirect_action::RedirectResponseCode::Found,
            303 => redirect_action::RedirectResponseCode::SeeOther,
            307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
            308 => redirect_action::RedirectResponseCode::PermanentRedirect,
            _ => return None,
        } as i32;
        out.action = Some(route::Action::Redirect(redirect));
    } else if let Some(d) = &rule.direct_response {
        let body = d.body.as_ref().and_then(|b| {
            if let Some(s) = &b.string {
                Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(s.clone())),
                    ..Default::default()
                })
            } else {
                b.bytes.as_ref().map(|s| DataSource {
                    specifier: Some(data_source::Specifier::InlineBytes(
                        decode_base64(s).unwrap_or_else(|| s.as_bytes().to_vec()),
                    )),
                    ..Default::default()
                })
            }
        });
        out.action = Some(route::Action::DirectResponse(DirectResponseAction {
            status: d.status,
            body,
            ..Default::default()
        }));
    } else {
        out.action = Some(route::Action::Route(route_action(
            ctx, vs, rule, &authority, &mut out,
        )));
    }
    let mut per_filter = std::collections::HashMap::new();
    if let Some(f) = rule.fault.as_ref().and_then(fault) {
        per_filter.insert(FAULT_FILTER.to_owned(), proto::any(&f));
    }
    if let Some(c) = &rule.cors_policy {
        per_filter.insert(CORS_FILTER.to_owned(), proto::any(&cors(c)));
    }
    out.typed_per_filter_config = per_filter;
    Some(out)
}

/// The cluster a destination names: `outbound|PORT|SUBSET|HOST`, the port being the
/// destination's, else the service's only port, else the port the request came for.
pub(super) fn destination_cluster(
    ctx: &RouteCtx<'_, '_>,
    vs_ns: &str,
    d: &Destination,
) -> (String, u16) {
    let hostname = host::fqdn(&d.host, vs_ns);
    let port = match &d.port {
        Some(p) if p.number != 0 => u16::try_from(p.number).unwrap_or(ctx.listen_port),
        _ => match ctx.scope.service(&hostname) {
            Some(svc) if svc.ports.len() == 1 => svc.ports[0].number,
            _ => ctx.listen_port,
        },
    };
    (cluster_name::outbound(port, &d.subset, &hostname), port)
}

/// The clusters and weights of an L4 (`tcp` or `tls`) rule's destinations; zero weights
/// are dropped unless there is a single destination.
pub(super) fn l4_clusters(
    ctx: &RouteCtx<'_, '_>,
    vs_ns: &str,
    routes: &[RouteDestination],
) -> Vec<(String, u32)> {
    if routes.len() == 1 {
        let d = routes[0].destination.clone().unwrap_or_default();
        return vec![(destination_cluster(ctx, vs_ns, &d).0, 100)];
    }
    routes
        .iter()
        .filter(|r| r.weight > 0)
        .map(|r| {
            let d = r.destination.clone().unwrap_or_default();
            (
                destination_cluster(ctx, vs_ns, &d).0,
                u32::try_from(r.weight).unwrap_or(0),
            )
        })
        .collect()
}

/// Whether an L4 match applies to this proxy on `port`.
fn l4_match_applies(
    ctx: &RouteCtx<'_, '_>,
    vs_ns: &str,
    port: u32,
    source_labels: &std::collections::BTreeMap<String, String>,
    gateways: &[String],
    source_namespace: &str,
) -> bool {
    if port != 0 && port != u32::from(ctx.listen_port) {
        return false;
    }
    if !gateways.is_empty() {
        return gateways.iter().any(|g| {
            ctx.scope
                .gateway_names
                .contains(&super::scope::qualify_gateway(g, vs_ns))
        });
    }
    crate::analysis::json::selector_matches(source_labels, &ctx.scope.labels)
        && (source_namespace.is_empty() || source_namespace == ctx.scope.namespace())
}

/// The clusters a sidecar sends TCP traffic for `svc` to on the context's port: the first
/// applicable `tcp` rule of its VirtualService, else the first `tls` rule whose SNI hosts
/// name the service. `None` when no rule applies.
pub(super) fn l4_route(ctx: &RouteCtx<'_, '_>, svc: &Service) -> Option<Vec<(String, u32)>> {
    let vs = ctx.scope.virtual_service_for(&svc.hostname)?;
    let ns = vs.namespace();
    for rule in &vs.spec.tcp {
        let applies = rule.r#match.is_empty()
            || rule.r#match.iter().any(|m| {
                l4_match_applies(
                    ctx,
                    ns,
                    m.port,
                    &m.source_labels,
                    &m.gateways,
                    &m.source_namespace,
                )
            });
        if applies && !rule.route.is_empty() {
            return Some(l4_clusters(ctx, ns, &rule.route));
        }
    }
    for rule in &vs.spec.tls {
        let applies = rule.r#match.iter().any(|m| {
            l4_match_applies(
                ctx,
                ns,
                m.port,
                &m.source_labels,
                &m.gateways,
                &m.source_namespace,
            ) && m
                .sni_hosts
                .iter()
                .any(|h| host::matches(&host::fqdn(h, ns), &svc.hostname))
        });
        if applies && !rule.route.is_empty() {
            return Some(l4_clusters(ctx, ns, &rule.route));
        }
    }
    None
}

/// The consistent-hash policy the DestinationRule of a destination asks for.
fn destination_hash<'s>(
    ctx: &RouteCtx<'_, 's>,
    vs_ns: &str,
    d: &Destination,
    port: u16,
) -> Option<&'s ConsistentHashLb> {
    let hostname = host::fqdn(&d.host, vs_ns);
    let svc = ctx.scope.service(&hostname)?;
    let dr = ctx.scope.destination_rule(svc)?;
    let subset = dr
        .spec
        .subsets
        .iter()
        .find(|s| s.name == d.subset)
        .and_then(|s| s.traffic_policy.as_ref());
    cluster::consistent_hash(dr.spec.traffic_policy.as_ref(), subset, port)
}

fn route_action(
    ctx: &RouteCtx<'_, '_>,
    vs: &Typed<VirtualService>,
    rule: &HttpRoute,
    authority: &str,
    out: &mut Route,
) -> RouteAction {
    let ns = vs.namespace();
    let mut action = RouteAction::default();
    set_timeout(&mut action, rule.timeout.map(|d| d.0));
    let mut authority = authority.to_owned();
    if let Some(rw) = &rule.rewrite {
        if let Some(re) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(proto::regex(&re.r#match)),
                substitution: re.rewrite.clone(),
            });
        } else if !rw.uri.is_empty() {
            action.prefix_rewrite = rw.uri.clone();
        }
        if !rw.authority.is_empty() {
            authority = rw.authority.clone();
        }
    }
    if !authority.is_empty() {
        action.host_rewrite_specifier = Some(
            route_action::HostRewriteSpecifier::HostRewriteLiteral(authority),
        );
    }
    if let Some(m) = &rule.mirror {
        let pct = match (&rule.mirror_percentage, rule.mirror_percent) {
            (Some(p), _) => (p.value > 0.0).then(|| proto::percent_million(p.value)),
            (None, Some(p)) => (p > 0).then(|| proto::percent_hundred(p)),
            (None, None) => Some(proto::percent_hundred(100)),
        };
        if let Some(pct) = pct {
            action.request_mirror_policies.push(mirror(ctx, ns, m, pct));
        }
    }
    for mp in &rule.mirrors {
        let Some(d) = &mp.destination else { continue };
        let pct = match &mp.percentage {
            Some(p) => (p.value > 0.0).then(|| proto::percent_million(p.value)),
            None => Some(proto::percent_hundred(100)),
        };
        if let Some(pct) = pct {
            action.request_mirror_policies.push(mirror(ctx, ns, d, pct));
        }
    }

    let mut hashed = false;
    if rule.route.len() == 1 {
        let dst = &rule.route[0];
        let d = dst.destination.clone().unwrap_or_default();
        let (cluster, port) = destination_cluster(ctx, ns, &d);
        action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(cluster));
        if let Some(h) = &dst.headers {
            let ops = header_ops(h);
            out.request_headers_to_add.extend(ops.request_add);
            out.request_headers_to_remove.extend(ops.request_remove);
            out.response_headers_to_add.extend(ops.response_add);
            out.response_headers_to_remove.extend(ops.response_remove);
            if !ops.authority.is_empty() && action.host_rewrite_specifier.is_none() {
                action.host_rewrite_specifier = Some(
                    route_action::HostRewriteSpecifier::HostRewriteLiteral(ops.authority),
                );
            }
        }
        if let Some(h) = destination_hash(ctx, ns, &d, port) {
            hashed = true;
            if let Some(hp) = hash_policy(h) {
                action.hash_policy.push(hp);
            }
        }
    } else {
        let mut weighted = Vec::new();
        for dst in &rule.route {
            if dst.weight == 0 {
                continue;
            }
            let d = dst.destination.clone().unwrap_or_default();
            let (cluster, port) = destination_cluster(ctx, ns, &d);
            let mut cw = weighted_cluster::ClusterWeight {
                name: cluster,
                weight: Some(proto::u32v(u32::try_from(dst.weight).unwrap_or(0))),
                ..Default::default()
            };
            if let Some(h) = &dst.headers {
                let ops = header_ops(h);
                cw.request_headers_to_add = ops.request_add;
                cw.request_headers_to_remove = ops.request_remove;
                cw.response_headers_to_add = ops.response_add;
                cw.response_headers_to_remove = ops.response_remove;
                if !ops.authority.is_empty() {
                    cw.host_rewrite_specifier = Some(
                        weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(
                            ops.authority,
                        ),
                    );
                }
            }
            if let Some(hp) = destination_hash(ctx, ns, &d, port).and_then(hash_policy) {
                action.hash_policy.push(hp);
            }
            weighted.push(cw);
        }
        action.cluster_specifier = Some(if weighted.is_empty() {
            // Every weight is zero: nothing to send to.
            route_action::ClusterSpecifier::Cluster(cluster_name::BLACK_HOLE.to_owned())
        } else {
            route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: weighted,
                ..Default::default()
            })
        });
    }
    action.retry_policy = retry_policy(ctx.scope, rule.retries.as_ref(), hashed);
    action
}

fn mirror(
    ctx: &RouteCtx<'_, '_>,
    ns: &str,
    d: &Destination,
    pct: envoy_types::pb::envoy::r#type::v3::FractionalPercent,
) -> route_action::RequestMirrorPolicy {
    let (cluster, _) = destination_cluster(ctx, ns, d);
    route_action::RequestMirrorPolicy {
        cluster,
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(pct),
            runtime_key: String::new(),
        }),
        trace_sampled: Some(proto::boolv(false)),
        ..Default::default()
    }
}

fn hash_policy(h: &ConsistentHashLb) -> Option<route_action::HashPolicy> {
    use route_action::hash_policy::{self as hp, PolicySpecifier};
    let spec = if let Some(name) = &h.http_header_name {
        PolicySpecifier::Header(hp::Header {
            header_name: name.clone(),
            ..Default::default()
        })
    } else if let Some(c) = &h.http_cookie {
        PolicySpecifier::Cookie(hp::Cookie {
            name: c.name.clone(),
            ttl: c.ttl.map(|d| proto::duration(d.0)),
            path: c.path.clone(),
            ..Default::default()
        })
    } else if h.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(hp::ConnectionProperties { source_ip: true })
    } else if let Some(q) = &h.http_query_parameter_name {
        PolicySpecifier::QueryParameter(hp::QueryParameter { name: q.clone() })
    } else {
        return None;
    };
    Some(route_action::HashPolicy {
        policy_specifier: Some(spec),
        terminal: false,
    })
}

/// Istio's translation of a match; no match is a catch-all prefix `/`.
fn route_match_of(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let mut out = prefix_match("/");
    let Some(m) = m else { return out };
    for (name, sm) in &m.headers {
        out.headers.push(header_matcher(name, sm));
    }
    for (name, sm) in &m.without_headers {
        let mut hm = header_matcher(name, sm);
        hm.invert_match = true;
        if !is_present_match(sm) {
            hm.treat_missing_header_as_empty = true;
        }
        out.headers.push(hm);
    }
    out.headers.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(uri) = &m.uri {
        match uri.kind() {
            StringMatchKind::Exact(s) => {
                out.path_specifier = Some(route_match::PathSpecifier::Path(s.to_owned()));
            }
            StringMatchKind::Prefix(s) => {
                out.path_specifier = Some(route_match::PathSpecifier::Prefix(s.to_owned()));
            }
            StringMatchKind::Regex(s) => {
                out.path_specifier = Some(route_match::PathSpecifier::SafeRegex(proto::regex(s)));
            }
            StringMatchKind::Unset => {}
        }
    }
    out.case_sensitive = Some(proto::boolv(!m.ignore_uri_case));
    if let Some(sm) = &m.method {
        out.headers.push(header_matcher(":method", sm));
    }
    if let Some(sm) = &m.authority {
        out.headers.push(header_matcher(":authority", sm));
    }
    if let Some(sm) = &m.scheme {
        out.headers.push(header_matcher(":scheme", sm));
    }
    for (name, sm) in &m.query_params {
        let spec = if is_present_match(sm) {
            query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true)
        } else {
            match proto::string_matcher(sm) {
                Some(s) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(s),
                None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            }
        };
        out.query_parameters.push(QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(spec),
        });
    }
    out
}

/// A match that only asks for presence: no alternative set, or Istio's regex `*`.
fn is_present_match(sm: &StringMatch) -> bool {
    matches!(
        sm.kind(),
        StringMatchKind::Unset | StringMatchKind::Regex("*")
    )
}

fn header_matcher(name: &str, sm: &StringMatch) -> HeaderMatcher {
    let spec = if is_present_match(sm) {
        header_matcher::HeaderMatchSpecifier::PresentMatch(true)
    } else {
        match proto::string_matcher(sm) {
            Some(s) => header_matcher::HeaderMatchSpecifier::StringMatch(s),
            None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        }
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

#[derive(Default)]
struct HeaderOps {
    request_add: Vec<HeaderValueOption>,
    response_add: Vec<HeaderValueOption>,
    request_remove: Vec<String>,
    response_remove: Vec<String>,
    authority: String,
}

fn is_internal_header(k: &str) -> bool {
    k.starts_with(':') || k.eq_ignore_ascii_case("host")
}

fn is_authority_header(k: &str) -> bool {
    k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host")
}

fn header_values(
    map: &std::collections::BTreeMap<String, String>,
    append: bool,
) -> (Vec<HeaderValueOption>, String) {
    let mut authority = String::new();
    let mut out = Vec::new();
    for (k, v) in map {
        if is_authority_header(k) {
            authority = v.clone();
        }
        if is_internal_header(k) {
            continue;
        }
        out.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: k.clone(),
                value: v.clone(),
                ..Default::default()
            }),
            append_action: if append {
                header_value_option::HeaderAppendAction::AppendIfExistsOrAdd
            } else {
                header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
            } as i32,
            ..Default::default()
        });
    }
    (out, authority)
}

fn header_ops(h: &Headers) -> HeaderOps {
    let empty = HeaderOperations::default();
    let req = h.request.as_ref().unwrap_or(&empty);
    let resp = h.response.as_ref().unwrap_or(&empty);
    let (mut request_add, set_auth) = header_values(&req.set, false);
    let (req_add, add_auth) = header_values(&req.add, true);
    request_add.extend(req_add);
    let (mut response_add, _) = header_values(&resp.set, false);
    let (resp_add, _) = header_values(&resp.add, true);
    response_add.extend(resp_add);
    let keep = |l: &Vec<String>| -> Vec<String> {
        l.iter()
            .filter(|k| !is_internal_header(k))
            .cloned()
            .collect()
    };
    HeaderOps {
        request_add,
        response_add,
        request_remove: keep(&req.remove),
        response_remove: keep(&resp.remove),
        authority: if set_auth.is_empty() {
            add_auth
        } else {
            set_auth
        },
    }
}

fn fault(f: &HttpFaultInjection) -> Option<HttpFault> {
    let mut out = HttpFault::default();
    if let Some(d) = &f.delay
        && let Some(fixed) = d.fixed_delay
    {
        out.delay = Some(EnvoyFaultDelay {
            percentage: Some(match &d.percentage {
                Some(p) => proto::percent_million(p.value),
                None => proto::percent_hundred(u32::try_from(d.percent).unwrap_or(0)),
            }),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(
                proto::duration(fixed.0),
            )),
        });
    }
    if let Some(a) = &f.abort {
        let error = if let Some(s) = a.http_status {
            Some(fault_abort::ErrorType::HttpStatus(
                u32::try_from(s).unwrap_or(500),
            ))
        } else {
            a.grpc_status
                .as_deref()
                .and_then(grpc_code)
                .map(fault_abort::ErrorType::GrpcStatus)
        };
        if let Some(e) = error {
            out.abort = Some(EnvoyFaultAbort {
                percentage: a
                    .percentage
                    .as_ref()
                    .map(|p| proto::percent_million(p.value)),
                error_type: Some(e),
                ..Default::default()
            });
        }
    }
    (out.delay.is_some() || out.abort.is_some()).then_some(out)
}

/// gRPC status names (`UNAVAILABLE`) or numbers as codes.
fn grpc_code(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Some(n);
    }
    crate::validate::virtual_service::GRPC_STATUSES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .and_then(|i| u32::try_from(i).ok())
}

fn cors(c: &CorsPolicy) -> EnvoyCors {
    let origins = if !c.allow_origins.is_empty() {
        c.allow_origins
            .iter()
            .filter_map(proto::string_matcher)
            .collect()
    } else {
        c.allow_origin
            .iter()
            .map(|s| proto::exact_matcher(s))
            .collect()
    };
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.0.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(proto::boolv),
        filter_enabled: Some(RuntimeFractionalPercent {
            default_value: Some(proto::percent_hundred(100)),
            runtime_key: String::new(),
        }),
        forward_not_matching_preflights: Some(proto::boolv(
            c.unmatched_preflights != Some(UnmatchedPreflights::Ignore),
        )),
        ..Default::default()
    }
}

/// Decodes standard base64 (with or without padding).
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        }))
    }
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = acc.to_be_bytes();
        match chunk.len() {
            4 => out.extend([a, b, c]),
            3 => out.extend([a, b]),
            2 => out.push(a),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_splits_status_codes() {
        assert_eq!(
            parse_retry_on("5xx, 503,connect-failure,retriable-4xx,404"),
            (
                "5xx,connect-failure,retriable-4xx".to_owned(),
                vec![503, 404]
            )
        );
        assert_eq!(parse_retry_on("503"), (String::new(), vec![503]));
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert!(decode_base64("a$==").is_none());
    }

    #[test]
    fn grpc_codes_by_name() {
        assert_eq!(grpc_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_code("7"), Some(7));
        assert_eq!(grpc_code("nope"), None);
    }
}
