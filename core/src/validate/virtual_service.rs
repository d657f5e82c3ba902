//! VirtualService rules: hosts, gateways, HTTP/TLS/TCP routes and their parts, and the
//! analysis of rules and matches that earlier ones make unreachable.

use std::collections::BTreeMap;

use super::common::*;
use super::{FindingKind, Report, Severity};
use crate::host;
use crate::model::networking::{
    CorsPolicy, Destination, FaultAbort, FaultDelay, Headers, HttpDirectResponse, HttpMatchRequest,
    HttpMirrorPolicy, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute, HttpRouteDestination,
    L4MatchAttributes, Percent, RouteDestination, StringMatch, StringMatchKind, TcpRoute,
    TlsMatchAttributes, TlsRoute, VirtualService,
};

pub fn validate(out: &mut Report<'_>, vs: &VirtualService) {
    if vs.hosts.is_empty() {
        // A delegate: only HTTP routes make sense.
        if !vs.gateways.is_empty() {
            out.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls.is_empty() {
            out.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp.is_empty() {
            out.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }

    let (applies_to_mesh, applies_to_gateway) = if vs.gateways.is_empty() {
        (true, false)
    } else {
        validate_gateway_names(out, "spec.gateways", &vs.gateways);
        let gw = is_gateway(vs);
        (!gw, gw)
    };

    if !applies_to_gateway {
        for (i, http) in vs.http.iter().enumerate() {
            for (j, m) in http.r#match.iter().enumerate() {
                for key in m.headers.keys().chain(m.without_headers.keys()) {
                    if is_jwt_claim_route(key) {
                        out.error(
                            &format!("spec.http[{i}].match[{j}]"),
                            format!(
                                "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: [{}]",
                                vs.gateways.join(" ")
                            ),
                        );
                    }
                }
            }
        }
    }

    let sni = is_sni_host(vs);
    let mut all_hosts_valid = true;
    for (i, h) in vs.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        let result = if applies_to_gateway {
            validate_wildcard_domain_for_gateway(sni, h)
        } else {
            validate_wildcard_domain(h)
        };
        match result {
            Err(e) => {
                if !is_ip(h) {
                    out.error(&path, e);
                    all_hosts_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && h == "*" => {
                out.error(
                    &path,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_hosts_valid {
        for i in 0..vs.hosts.len() {
            for j in i + 1..vs.hosts.len() {
                if host::matches(&vs.hosts[i], &vs.hosts[j]) {
                    out.error(
                        &format!("spec.hosts[{j}]"),
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            vs.hosts[i], vs.hosts[j]
                        ),
                    );
                }
            }
        }
    }

    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        out.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    let delegate = vs.hosts.is_empty();
    for (i, route) in vs.http.iter().enumerate() {
        validate_http_route(out, &format!("spec.http[{i}]"), route, delegate);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        validate_tls_route(out, &format!("spec.tls[{i}]"), route, vs);
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        validate_tcp_route(out, &format!("spec.tcp[{i}]"), route);
    }
    let ns = out.namespace().to_owned();
    out.check_all(
        "spec.exportTo",
        validate_export_to(&ns, &vs.export_to, false, false),
    );

    analyze_unreachable_rules(out, vs);
}

/// Whether the VirtualService applies to gateways only (it does not name `mesh`).
fn is_gateway(vs: &VirtualService) -> bool {
    !vs.gateways.iter().any(|g| g == "mesh")
}

fn is_sni_host(vs: &VirtualService) -> bool {
    vs.tls
        .iter()
        .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()))
}

/// Gateway references: `ns/name`, or the legacy `name` / `name.ns` forms. Like Istio, the
/// check stops at the first reference without a namespace.
fn validate_gateway_names(out: &mut Report<'_>, path: &str, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let Some((ns, gw)) = name.split_once('/') else {
            if let Some((first, rest)) = name.split_once('.') {
                let ns = rest.split('.').next().unwrap_or(rest);
                out.warn(
                    &path,
                    format!(
                        "using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: \"{ns}/{first}\""
                    ),
                );
            }
            out.check(&path, validate_fqdn(name));
            return;
        };
        if ns.is_empty() || gw.is_empty() {
            out.error(&path, "config namespace and gateway name cannot be empty");
        }
        if !is_dns1123_label(ns) {
            out.error(&path, format!("invalid value for namespace: {ns:?}"));
        }
        if !is_dns1123_label(gw) {
            out.error(&path, format!("invalid value for gateway name: {gw:?}"));
        }
    }
}

fn validate_http_route(out: &mut Report<'_>, path: &str, http: &HttpRoute, delegate: bool) {
    validate_route_conflicts(out, path, http, delegate);
    validate_match_requests(out, path, &http.r#match);
    validate_headers(out, &format!("{path}.headers"), http.headers.as_ref());
    if let Some(cors) = &http.cors_policy {
        validate_cors(out, &format!("{path}.corsPolicy"), cors);
    }
    if let Some(fault) = &http.fault {
        let fpath = format!("{path}.fault");
        if fault.abort.is_none() && fault.delay.is_none() {
            out.error(
                &fpath,
                "HTTP fault injection must have an abort and/or a delay",
            );
        }
        if let Some(abort) = &fault.abort {
            validate_abort(out, &format!("{fpath}.abort"), abort);
        }
        if let Some(delay) = &fault.delay {
            validate_delay(out, &format!("{fpath}.delay"), delay);
        }
    }
    if let Some(p) = http.mirror_percent {
        if p > 100 {
            out.error(
                &format!("{path}.mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {p})"),
            );
        }
        out.warn(
            &format!("{path}.mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = &http.mirror_percentage {
        check_mirror_percentage(
            out,
            &format!("{path}.mirrorPercentage"),
            p,
            "mirror_percentage",
        );
    }
    if let Some(m) = &http.mirror {
        validate_destination(out, &format!("{path}.mirror"), m);
    }
    validate_mirrors(out, &format!("{path}.mirrors"), &http.mirrors);
    if let Some(r) = &http.redirect {
        out.check(&format!("{path}.redirect"), validate_redirect(r));
    }
    if let Some(d) = &http.direct_response {
        validate_direct_response(out, &format!("{path}.directResponse"), d);
    }
    if let Some(r) = &http.retries {
        validate_retries(out, &format!("{path}.retries"), r);
    }
    if let Some(r) = &http.rewrite {
        out.check(&format!("{path}.rewrite"), validate_rewrite(r));
    }
    out.check(
        &format!("{path}.headers"),
        validate_authority_rewrite(http.rewrite.as_ref(), http.headers.as_ref()),
    );
    validate_http_destinations(out, &format!("{path}.route"), &http.route);
    if let Some(t) = http.timeout {
        out.check(&format!("{path}.timeout"), validate_duration(t));
    }
}

fn validate_route_conflicts(out: &mut Report<'_>, path: &str, http: &HttpRoute, delegate: bool) {
    if !delegate && http.delegate.is_some() {
        // A root route may only delegate.
        if http.redirect.is_some() {
            out.error(
                path,
                format!("root HTTP route {} must not specify redirect", http.name),
            );
        }
        if !http.route.is_empty() {
            out.error(
                path,
                format!("root HTTP route {} must not specify route", http.name),
            );
        }
        return;
    }
    if delegate && http.delegate.is_some() {
        out.error(path, "delegate HTTP route cannot contain delegate");
    }
    if http.redirect.is_some() {
        if !http.route.is_empty() {
            out.error(path, "HTTP route cannot contain both route and redirect");
        }
        if http.fault.is_some() {
            out.error(path, "HTTP route cannot contain both fault and redirect");
        }
        if http.rewrite.is_some() {
            out.error(
                path,
                "HTTP route rule cannot contain both rewrite and redirect",
            );
        }
        if http.direct_response.is_some() {
            out.error(
                path,
                "HTTP route rule cannot contain both direct_response and redirect",
            );
        }
    } else if http.direct_response.is_some() {
        if !http.route.is_empty() {
            out.error(
                path,
                "HTTP route cannot contain both route and direct_response",
            );
        }
        if http.fault.is_some() {
            out.error(
                path,
                "HTTP route cannot contain both fault and direct_response",
            );
        }
        if http.rewrite.is_some() {
            out.error(
                path,
                "HTTP route rule cannot contain both rewrite and direct_response",
            );
        }
    } else if http.route.is_empty() {
        out.error(path, "HTTP route, redirect or direct_response is required");
    }
    if http.mirror.is_some() && !http.mirrors.is_empty() {
        out.error(path, "HTTP route cannot contain both mirror and mirrors");
    }
}

fn validate_match_requests(out: &mut Report<'_>, path: &str, matches: &[HttpMatchRequest]) {
    for (j, m) in matches.iter().enumerate() {
        let mpath = format!("{path}.match[{j}]");
        for (name, sm) in &m.headers {
            let hpath = key_path(&format!("{mpath}.headers"), name);
            out.check(&hpath, validate_header_name_or_claim(name));
            check_string_match(out, &hpath, sm, "headers", false);
        }
        for (name, sm) in &m.without_headers {
            let hpath = key_path(&format!("{mpath}.withoutHeaders"), name);
            out.check(&hpath, validate_header_name_or_claim(name));
            // `*` is not a regex here: it means "present".
            if sm.regex.as_deref() != Some("*") {
                check_string_match(out, &hpath, sm, "withoutHeaders", false);
            }
        }
        if let Some(sm) = &m.uri {
            // An empty prefix is allowed for URIs only.
            check_string_match(out, &format!("{mpath}.uri"), sm, "uri", true);
        }
        for (field, sm) in [
            ("scheme", &m.scheme),
            ("method", &m.method),
            ("authority", &m.authority),
        ] {
            if let Some(sm) = sm {
                check_string_match(out, &format!("{mpath}.{field}"), sm, field, false);
            }
        }
        for (name, sm) in &m.query_params {
            let qpath = key_path(&format!("{mpath}.queryParams"), name);
            check_string_match(out, &qpath, sm, "queryParams", false);
        }
        if m.port != 0 {
            out.check(&format!("{mpath}.port"), validate_port(i64::from(m.port)));
        }
        out.check_all(
            &format!("{mpath}.sourceLabels"),
            validate_labels(&m.source_labels),
        );
        validate_gateway_names(out, &format!("{mpath}.gateways"), &m.gateways);
        if !m.source_namespace.is_empty() && !is_dns1123_label(&m.source_namespace) {
            out.error(
                &format!("{mpath}.sourceNamespace"),
                format!("sourceNamespace match {} is invalid", m.source_namespace),
            );
        }
    }
}

/// The path of a map entry, bracketed when the key has path punctuation.
fn key_path(base: &str, key: &str) -> String {
    if key.contains(['.', '[', ']', '"']) {
        format!("{base}[\"{key}\"]")
    } else {
        format!("{base}.{key}")
    }
}

/// A string match: one alternative, a non-empty prefix (unless `empty_prefix_ok`), and a
/// non-empty regex that compiles.
fn check_string_match(
    out: &mut Report<'_>,
    path: &str,
    sm: &StringMatch,
    place: &str,
    empty_prefix_ok: bool,
) {
    if sm.alternatives_set() > 1 {
        out.error(
            path,
            format!("{place:?}: only one of exact, prefix or regex may be set"),
        );
    }
    match sm.kind() {
        StringMatchKind::Prefix("") if !empty_prefix_ok => out.error(
            path,
            format!("{place:?}: prefix string match should not be empty"),
        ),
        StringMatchKind::Regex("") => out.error(
            path,
            format!("{place:?}: regex string match should not be empty"),
        ),
        StringMatchKind::Regex(re) => out.check(path, validate_regex(re, place)),
        _ => {}
    }
}

fn validate_headers(out: &mut Report<'_>, path: &str, headers: Option<&Headers>) {
    let Some(h) = headers else {
        return;
    };
    if let Some(req) = &h.request {
        for (op, map) in [("add", &req.add), ("set", &req.set)] {
            for (name, value) in map {
                let p = key_path(&format!("{path}.request.{op}"), name);
                out.check(&p, validate_header_with_authority_op_name(name));
                out.check(&p, validate_header_value(value));
            }
        }
        for (i, name) in req.remove.iter().enumerate() {
            out.check(
                &format!("{path}.request.remove[{i}]"),
                validate_header_op_name(name),
            );
        }
    }
    if let Some(resp) = &h.response {
        for (op, map) in [("add", &resp.add), ("set", &resp.set)] {
            for (name, value) in map {
                let p = key_path(&format!("{path}.response.{op}"), name);
                out.check(&p, validate_header_op_name(name));
                out.check(&p, validate_header_value(value));
            }
        }
        for (i, name) in resp.remove.iter().enumerate() {
            out.check(
                &format!("{path}.response.remove[{i}]"),
                validate_header_op_name(name),
            );
        }
    }
}

/// The authority may be rewritten in one place only.
fn validate_authority_rewrite(
    rewrite: Option<&HttpRewrite>,
    headers: Option<&Headers>,
) -> Result<(), String> {
    let mut current = rewrite.map(|r| r.authority.clone()).unwrap_or_default();
    let Some(req) = headers.and_then(|h| h.request.as_ref()) else {
        return Ok(());
    };
    for map in [&req.set, &req.add] {
        for (k, v) in map {
            if !is_authority_header(k) {
                continue;
            }
            if !current.is_empty() {
                return Err(format!(
                    "authority header cannot be set multiple times: have {current:?}, attempting to set {v:?}"
                ));
            }
            current = v.clone();
        }
    }
    Ok(())
}

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

fn validate_cors(out: &mut Report<'_>, path: &str, cors: &CorsPolicy) {
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        let p = format!("{path}.allowOrigins[{i}]");
        let value = match origin.kind() {
            StringMatchKind::Exact(s) | StringMatchKind::Prefix(s) | StringMatchKind::Regex(s) => s,
            StringMatchKind::Unset => "",
        };
        if value.is_empty() {
            out.error(&p, "'' is not a valid match type for CORS allow origins");
        } else if let StringMatchKind::Regex(re) = origin.kind() {
            out.check(&p, validate_regex(re, "corsPolicy.allowOrigins"));
        }
    }
    for (i, m) in cors.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            out.error(
                &format!("{path}.allowMethods[{i}]"),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            out.check(
                &format!("{path}.{field}[{i}]"),
                validate_cors_header_name(name),
            );
        }
    }
    if let Some(max_age) = cors.max_age {
        let p = format!("{path}.maxAge");
        out.check(&p, validate_duration(max_age));
        if max_age.0.subsec_nanos() > 0 {
            out.error(&p, "max_age duration is accurate only to seconds precision");
        }
    }
}

fn check_percentage(out: &mut Report<'_>, path: &str, p: Option<&Percent>) {
    if let Some(p) = p {
        let v = p.value;
        if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
            out.error(
                path,
                format!("percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"),
            );
        }
    }
}

fn check_mirror_percentage(out: &mut Report<'_>, path: &str, p: &Percent, what: &str) {
    if p.value > 100.0 {
        out.error(
            path,
            format!(
                "{what} must have a max value of 100 (it has {:.6})",
                p.value
            ),
        );
    }
    if p.value < 0.0 {
        out.error(
            path,
            format!("{what} must have a min value of 0 (it has {:.6})", p.value),
        );
    }
}

/// gRPC status names Envoy can abort with, in code order (index = status code).
pub(crate) const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn validate_abort(out: &mut Report<'_>, path: &str, abort: &FaultAbort) {
    check_percentage(
        out,
        &format!("{path}.percentage"),
        abort.percentage.as_ref(),
    );
    let set = [
        abort.http_status.is_some(),
        abort.grpc_status.is_some(),
        abort.http2_error.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set > 1 {
        out.error(
            path,
            "only one of httpStatus, grpcStatus or http2Error may be set",
        );
    }
    if let Some(status) = &abort.grpc_status {
        if !GRPC_STATUSES.contains(&status.as_str()) {
            out.error(
                &format!("{path}.grpcStatus"),
                format!(
                    "gRPC status {status:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"
                ),
            );
        }
    } else if abort.http2_error.is_some() {
        out.error(
            &format!("{path}.http2Error"),
            "HTTP/2 abort fault injection not supported yet",
        );
    } else if let Some(status) = abort.http_status {
        out.check(
            &format!("{path}.httpStatus"),
            validate_http_status(i64::from(status)),
        );
    } else {
        out.warn(path, "abort configured, but error type not set");
    }
}

fn validate_http_status(status: i64) -> Result<(), String> {
    if !(200..=600).contains(&status) {
        return Err(format!("HTTP status {status} is not in range 200-599"));
    }
    Ok(())
}

fn validate_delay(out: &mut Report<'_>, path: &str, delay: &FaultDelay) {
    check_percentage(
        out,
        &format!("{path}.percentage"),
        delay.percentage.as_ref(),
    );
    if delay.fixed_delay.is_some() && delay.exponential_delay.is_some() {
        out.error(
            path,
            "only one of fixedDelay or exponentialDelay may be set",
        );
    }
    if let Some(d) = delay.fixed_delay {
        out.check(&format!("{path}.fixedDelay"), validate_duration(d));
    } else if let Some(d) = delay.exponential_delay {
        let p = format!("{path}.exponentialDelay");
        out.check(&p, validate_duration(d));
        out.error(&p, "exponentialDelay not supported yet");
    }
}

pub(super) fn validate_destination(out: &mut Report<'_>, path: &str, d: &Destination) {
    if d.host == "*" {
        out.error(
            &format!("{path}.host"),
            format!("invalid destination host {}", d.host),
        );
    } else {
        out.check(&format!("{path}.host"), validate_wildcard_domain(&d.host));
    }
    if !d.subset.is_empty() {
        out.check(&format!("{path}.subset"), validate_subset_name(&d.subset));
    }
    if let Some(p) = &d.port {
        out.check(&format!("{path}.port"), validate_port(i64::from(p.number)));
    }
}

pub(super) fn validate_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".to_owned());
    }
    if !is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

fn validate_mirrors(out: &mut Report<'_>, path: &str, mirrors: &[HttpMirrorPolicy]) {
    for (i, m) in mirrors.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(d) = &m.destination else {
            out.error(&p, "destination is required for mirrors");
            continue;
        };
        validate_destination(out, &format!("{p}.destination"), d);
        if let Some(pct) = &m.percentage {
            check_mirror_percentage(out, &format!("{p}.percentage"), pct, "mirror percentage");
        }
    }
}

fn validate_redirect(r: &HttpRedirect) -> Result<(), String> {
    if r.uri.is_empty()
        && r.authority.is_empty()
        && r.port.is_none()
        && r.derive_port.is_none()
        && r.scheme.is_empty()
    {
        return Err("redirect must specify URI, authority, scheme, or port".to_owned());
    }
    if r.port.is_some() && r.derive_port.is_some() {
        return Err("redirect may specify only one of port and derivePort".to_owned());
    }
    if r.redirect_code != 0 && !(300..=399).contains(&r.redirect_code) {
        return Err(format!(
            "{} is not a valid redirect code, must be 3xx",
            r.redirect_code
        ));
    }
    if !r.scheme.is_empty() && r.scheme != "http" && r.scheme != "https" {
        return Err("invalid redirect scheme, must be \"http\" or \"https\"".to_owned());
    }
    if let Some(port) = r.port
        && port > 0
    {
        validate_port(i64::from(port))?;
    }
    Ok(())
}

fn validate_direct_response(out: &mut Report<'_>, path: &str, d: &HttpDirectResponse) {
    if let Some(body) = &d.body {
        if body.string.is_some() && body.bytes.is_some() {
            out.error(
                &format!("{path}.body"),
                "only one of string or bytes may be set",
            );
        }
        let size = match (&body.string, &body.bytes) {
            (Some(s), _) => s.len(),
            // Base64: three bytes for every four characters.
            (None, Some(b)) => b.trim_end_matches('=').len() * 3 / 4,
            (None, None) => 0,
        };
        if size > 1024 * 1024 {
            out.error(
                &format!("{path}.body"),
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        } else if size > 100 * 1024 {
            out.warn(
                &format!("{path}.body"),
                "large direct_responses may impact control plane performance",
            );
        }
    }
    out.check(
        &format!("{path}.status"),
        validate_http_status(i64::from(d.status)),
    );
}

/// Retry policies Envoy knows (`x-envoy-retry-on` and `x-envoy-retry-grpc-on`).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// HTTP status codes with a standard name (Go's `http.StatusText`).
fn is_known_http_status(code: u32) -> bool {
    matches!(code,
        100..=103 | 200..=208 | 226 | 300..=305 | 307 | 308 | 400..=418 | 421..=426 | 428 | 429
        | 431 | 451 | 500..=508 | 510 | 511)
}

fn validate_retries(out: &mut Report<'_>, path: &str, r: &HttpRetry) {
    if r.attempts < 0 {
        out.error(&format!("{path}.attempts"), "attempts cannot be negative");
    }
    if r.attempts == 0
        && (r.per_try_timeout.is_some()
            || !r.retry_on.is_empty()
            || r.retry_remote_localities.is_some())
    {
        out.error(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(t) = r.per_try_timeout {
        out.check(&format!("{path}.perTryTimeout"), validate_duration(t));
    }
    if !r.retry_on.is_empty() {
        for policy in r.retry_on.split(',') {
            let known_code = policy.parse::<u32>().is_ok_and(is_known_http_status);
            if !known_code && !RETRY_ON.contains(&policy) {
                out.error(
                    &format!("{path}.retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
    if let Some(b) = r.backoff {
        out.check(&format!("{path}.backoff"), validate_duration(b));
    }
}

fn validate_rewrite(r: &HttpRewrite) -> Result<(), String> {
    if !r.uri.is_empty() && r.uri_regex_rewrite.is_some() {
        return Err("rewrite may only contain one of URI or UriRegexRewrite".to_owned());
    }
    if r.uri.is_empty() && r.uri_regex_rewrite.is_none() && r.authority.is_empty() {
        return Err("rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified".to_owned());
    }
    if let Some(rr) = &r.uri_regex_rewrite {
        if rr.r#match.is_empty() || rr.rewrite.is_empty() {
            return Err("UriRegexRewrite has errors\nUriRegexRewrite requires both Rewrite and Match fields to be specified".to_owned());
        }
        validate_regex(&rr.r#match, "HTTPRewrite.UriRegexRewrite.Match")
            .map_err(|e| format!("UriRegexRewrite has errors\n{e}"))?;
    }
    Ok(())
}

fn validate_http_destinations(out: &mut Report<'_>, path: &str, routes: &[HttpRouteDestination]) {
    let mut total: i64 = 0;
    for (i, r) in routes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &r.destination {
            None => out.error(&p, "destination is required"),
            Some(d) => validate_destination(out, &format!("{p}.destination"), d),
        }
        validate_headers(out, &format!("{p}.headers"), r.headers.as_ref());
        if r.weight < 0 {
            out.error(&format!("{p}.weight"), format!("weight {} < 0", r.weight));
        }
        total += i64::from(r.weight);
    }
    if routes.len() > 1 && total == 0 {
        out.error(path, "total destination weight = 0");
    }
}

fn validate_route_destinations(out: &mut Report<'_>, path: &str, routes: &[RouteDestination]) {
    let mut total: i64 = 0;
    for (i, r) in routes.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match &r.destination {
            None => out.error(&p, "destination is required"),
            Some(d) => validate_destination(out, &format!("{p}.destination"), d),
        }
        if r.weight < 0 {
            out.error(&format!("{p}.weight"), format!("weight {} < 0", r.weight));
        }
        total += i64::from(r.weight);
    }
    if routes.len() > 1 && total == 0 {
        out.error(path, "total destination weight = 0");
    }
}

fn validate_tls_route(out: &mut Report<'_>, path: &str, tls: &TlsRoute, vs: &VirtualService) {
    if tls.r#match.is_empty() {
        out.error(path, "TLS route must have at least one match condition");
    }
    for (i, m) in tls.r#match.iter().enumerate() {
        validate_tls_match(out, &format!("{path}.match[{i}]"), m, vs);
    }
    if tls.route.is_empty() {
        out.error(path, "TLS route is required");
    }
    validate_route_destinations(out, &format!("{path}.route"), &tls.route);
}

fn validate_tls_match(
    out: &mut Report<'_>,
    path: &str,
    m: &TlsMatchAttributes,
    vs: &VirtualService,
) {
    if m.sni_hosts.is_empty() {
        out.error(path, "TLS match must have at least one SNI host");
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        validate_sni_host(out, &format!("{path}.sniHosts[{i}]"), sni, vs);
    }
    validate_l4_common(
        out,
        path,
        &m.destination_subnets,
        m.port,
        &m.source_labels,
        &m.gateways,
    );
}

fn validate_sni_host(out: &mut Report<'_>, path: &str, sni: &str, vs: &VirtualService) {
    let result = if is_gateway(vs) {
        validate_wildcard_domain_for_gateway(true, sni)
    } else {
        validate_wildcard_domain(sni)
    };
    if let Err(e) = result {
        if is_ip(sni) {
            out.warn(
                path,
                format!(
                    "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                ),
            );
        } else {
            out.error(path, e);
        }
        return;
    }
    if vs.hosts.iter().any(|h| host::subset_of(sni, h)) {
        return;
    }
    out.error(
        path,
        format!(
            "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
            vs.hosts.join(", ")
        ),
    );
}

fn validate_tcp_route(out: &mut Report<'_>, path: &str, tcp: &TcpRoute) {
    for (i, m) in tcp.r#match.iter().enumerate() {
        validate_tcp_match(out, &format!("{path}.match[{i}]"), m);
    }
    if tcp.route.is_empty() {
        out.error(path, "TCP route is required");
    }
    validate_route_destinations(out, &format!("{path}.route"), &tcp.route);
}

fn validate_tcp_match(out: &mut Report<'_>, path: &str, m: &L4MatchAttributes) {
    validate_l4_common(
        out,
        path,
        &m.destination_subnets,
        m.port,
        &m.source_labels,
        &m.gateways,
    );
}

fn validate_l4_common(
    out: &mut Report<'_>,
    path: &str,
    subnets: &[String],
    port: u32,
    source_labels: &BTreeMap<String, String>,
    gateways: &[String],
) {
    for (i, s) in subnets.iter().enumerate() {
        out.check(
            &format!("{path}.destinationSubnets[{i}]"),
            validate_ip_subnet(s),
        );
    }
    if port != 0 {
        out.check(&format!("{path}.port"), validate_port(i64::from(port)));
    }
    out.check_all(
        &format!("{path}.sourceLabels"),
        validate_labels(source_labels),
    );
    validate_gateway_names(out, &format!("{path}.gateways"), gateways);
}

// ---- Unreachable rules and ineffective matches -------------------------------------------

/// A rule's name in messages: `"name"` for named HTTP routes, else `#index`.
fn route_name(name: &str, index: usize) -> String {
    if name.is_empty() {
        format!("#{index}")
    } else {
        go_quote(name)
    }
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

fn report_unreachable(out: &mut Report<'_>, path: &str, rule: String, reason: &str) {
    out.push_kind(
        Severity::Warning,
        path,
        format!("virtualService rule {rule} not used ({reason})"),
        FindingKind::UnreachableRule {
            rule,
            reason: reason.to_owned(),
        },
    );
}

fn report_ineffective(
    out: &mut Report<'_>,
    path: &str,
    rule: String,
    matched: String,
    earlier: String,
) {
    out.push_kind(
        Severity::Warning,
        path,
        format!(
            "virtualService rule {rule} match {matched} is not used (duplicate/overlapping match in rule {earlier})"
        ),
        FindingKind::IneffectiveMatch {
            rule,
            matched,
            earlier,
        },
    );
}

fn analyze_unreachable_rules(out: &mut Report<'_>, vs: &VirtualService) {
    let http: Vec<(String, Vec<HttpMatchRequest>, Vec<String>)> = vs
        .http
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let names = r
                .r#match
                .iter()
                .enumerate()
                .map(|(j, m)| route_name(&m.name, j))
                .collect();
            // Match names do not change what a match matches.
            let unnamed = r
                .r#match
                .iter()
                .map(|m| HttpMatchRequest {
                    name: String::new(),
                    ..m.clone()
                })
                .collect();
            (route_name(&r.name, i), unnamed, names)
        })
        .collect();
    analyze_rules(out, "spec.http", &http);
    analyze_prefix_overlaps(out, vs);

    let tcp: Vec<(String, Vec<L4MatchAttributes>, Vec<String>)> = vs
        .tcp
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("#{i}"),
                r.r#match.clone(),
                numbered(r.r#match.len()),
            )
        })
        .collect();
    analyze_rules(out, "spec.tcp", &tcp);

    let tls: Vec<(String, Vec<TlsMatchAttributes>, Vec<String>)> = vs
        .tls
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("#{i}"),
                r.r#match.clone(),
                numbered(r.r#match.len()),
            )
        })
        .collect();
    analyze_rules(out, "spec.tls", &tls);
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|j| format!("#{j}")).collect()
}

/// Rules after one without matches are unreachable; a match equal to an earlier rule's is
/// ineffective, and a rule all of whose matches are is unreachable.
fn analyze_rules<M: PartialEq>(
    out: &mut Report<'_>,
    base: &str,
    rules: &[(String, Vec<M>, Vec<String>)],
) {
    let mut seen: Vec<(&M, usize)> = Vec::new();
    let mut catch_all_seen = false;
    for (rulen, (name, matches, match_names)) in rules.iter().enumerate() {
        let path = format!("{base}[{rulen}]");
        if matches.is_empty() {
            if catch_all_seen {
                report_unreachable(
                    out,
                    &path,
                    name.clone(),
                    "only the last rule can have no matches",
                );
            }
            catch_all_seen = true;
            continue;
        }
        let mut duplicates = 0;
        for (matchn, m) in matches.iter().enumerate() {
            if catch_all_seen {
                report_unreachable(
                    out,
                    &path,
                    name.clone(),
                    "route without matches defined before",
                );
                continue;
            }
            if let Some((_, dup)) = seen.iter().find(|(s, _)| *s == m) {
                report_ineffective(
                    out,
                    &format!("{path}.match[{matchn}]"),
                    name.clone(),
                    match_names[matchn].clone(),
                    rules[*dup].0.clone(),
                );
                duplicates += 1;
            } else {
                seen.push((m, rulen));
            }
        }
        if duplicates == matches.len() {
            report_unreachable(out, &path, name.clone(), "all matches used by prior rules");
        }
    }
}

/// What Istio compares to find URI prefix matches that an earlier one covers.
struct PrefixMatch {
    route: String,
    matched: String,
    path: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(sm: Option<&StringMatch>) -> String {
    match sm.map(StringMatch::kind) {
        Some(StringMatchKind::Exact(s)) if !s.is_empty() => format!("exact:{s}"),
        Some(StringMatchKind::Prefix(s)) if !s.is_empty() => format!("prefix:{s}"),
        _ => String::new(),
    }
}

fn exact_or_prefix_map(m: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

/// Whether every request `b` matches, `a` (an earlier match) matches too.
fn covers(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    let value_covers = |va: &str, vb: &str| va == vb || va.starts_with(vb);
    let map_covers = |ma: &BTreeMap<String, String>, mb: &BTreeMap<String, String>| {
        ma.len() == mb.len()
            && ma
                .iter()
                .all(|(k, va)| mb.get(k).is_some_and(|vb| value_covers(va, vb)))
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && value_covers(&a.method, &b.method)
        && value_covers(&a.authority, &b.authority)
        && map_covers(&a.headers, &b.headers)
        && map_covers(&a.query_params, &b.query_params)
        && map_covers(&a.without_headers, &b.without_headers)
}

fn analyze_prefix_overlaps(out: &mut Report<'_>, vs: &VirtualService) {
    // Only matches that are not exact duplicates of earlier ones take part (those were
    // reported already), and only those on a non-empty URI prefix.
    let mut seen: Vec<HttpMatchRequest> = Vec::new();
    let mut catch_all_seen = false;
    let mut prefixes: Vec<PrefixMatch> = Vec::new();
    for (rulen, route) in vs.http.iter().enumerate() {
        if route.r#match.is_empty() {
            catch_all_seen = true;
            continue;
        }
        for (matchn, m) in route.r#match.iter().enumerate() {
            if catch_all_seen {
                continue;
            }
            let unnamed = HttpMatchRequest {
                name: String::new(),
                ..m.clone()
            };
            if seen.contains(&unnamed) {
                continue;
            }
            seen.push(unnamed);
            let prefix = m.uri.as_ref().map(StringMatch::prefix_value).unwrap_or("");
            if m.uri.is_none() || prefix.is_empty() {
                continue;
            }
            let mut method = exact_or_prefix(m.method.as_ref());
            if method.is_empty() {
                method = "exact:GET".to_owned();
            }
            prefixes.push(PrefixMatch {
                route: route_name(&route.name, rulen),
                matched: route_name(&m.name, matchn),
                path: format!("spec.http[{rulen}].match[{matchn}]"),
                prefix: prefix.to_owned(),
                port: m.port,
                method,
                authority: exact_or_prefix(m.authority.as_ref()),
                headers: exact_or_prefix_map(&m.headers),
                query_params: exact_or_prefix_map(&m.query_params),
                without_headers: exact_or_prefix_map(&m.without_headers),
            });
        }
    }
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if a.prefix == b.prefix {
                continue;
            }
            if covers(a, b) {
                report_ineffective(
                    out,
                    &b.path,
                    b.route.clone(),
                    format!("{} of prefix {}", b.matched, b.prefix),
                    format!("{} of prefix {} on {}", a.matched, a.prefix, a.route),
                );
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;
    use super::super::validate;

    const ROUTE: &str = "  route:\n  - destination:\n      host: a\n";

    #[test]
    fn hosts() {
        accepts(
            "VirtualService",
            &format!("hosts: [a.b.c, reviews]\nhttp:\n-{}", &ROUTE[1..]),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [\"*\"]\nhttp:\n-{}", &ROUTE[1..]),
            "wildcard host *",
        );
        accepts(
            "VirtualService",
            &format!("hosts: [\"*\"]\ngateways: [ns/gw]\nhttp:\n-{}", &ROUTE[1..]),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a_b]\nhttp:\n-{}", &ROUTE[1..]),
            "invalid",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [\"*.com\", a.com]\nhttp:\n-{}", &ROUTE[1..]),
            "duplicate hosts",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\n",
            "http, tcp or tls must be provided",
        );
    }

    #[test]
    fn gateways() {
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\ngateways: [mesh, ns/gw]\nhttp:\n-{}",
                &ROUTE[1..]
            ),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\ngateways: [bad_ns/gw]\nhttp:\n-{}", &ROUTE[1..]),
            "invalid value for namespace",
        );
        warns(
            "VirtualService",
            &format!("hosts: [a]\ngateways: [gw.ns]\nhttp:\n-{}", &ROUTE[1..]),
            "legacy gatewayName",
        );
        rejects(
            "VirtualService",
            "gateways: [ns/gw]\nhttp:\n- route:\n  - destination:\n      host: a\n",
            "delegate virtual service must have no gateways",
        );
    }

    #[test]
    fn routes_and_weights() {
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- name: x\n",
            "HTTP route, redirect or direct_response is required",
        );
        accepts(
            "VirtualService",
            "hosts: [a]\nhttp:\n- redirect:\n    uri: /x\n",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- redirect:\n    redirectCode: 200\n    uri: /x\n",
            "not a valid redirect code",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- redirect:\n    uri: /x\n{ROUTE}"),
            "both route and redirect",
        );
        accepts(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a}\n    weight: 80\n  - destination: {host: b}\n    weight: 20\n",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a}\n  - destination: {host: b}\n",
            "total destination weight = 0",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a}\n    weight: -1\n",
            "weight -1 < 0",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: \"*\"}\n",
            "invalid destination host",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a, subset: V_1}\n",
            "subset name is invalid",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: a, port: {number: 70000}}\n",
            "port number 70000",
        );
        accepts(
            "VirtualService",
            "hosts: [a]\nhttp:\n- directResponse:\n    status: 503\n    body: {string: down}\n",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\nhttp:\n- directResponse:\n    status: 700\n",
            "HTTP status 700",
        );
    }

    #[test]
    fn matches_and_regexes() {
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- match:\n  - uri: {{regex: \"^/a/[0-9]+$\"}}\n    headers:\n      x-user: {{exact: bob}}\n    queryParams:\n      q: {{prefix: a}}\n{ROUTE}"
            ),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- match:\n  - uri: {{regex: \"(\"}}\n{ROUTE}"),
            "RE2",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- match:\n  - method: {{prefix: \"\"}}\n{ROUTE}"),
            "prefix string match should not be empty",
        );
        accepts(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- match:\n  - uri: {{prefix: \"\"}}\n{ROUTE}"),
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- match:\n  - headers:\n      \"bad header\": {{exact: x}}\n{ROUTE}"
            ),
            "not a valid header name",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- match:\n  - sourceNamespace: Bad_NS\n{ROUTE}"),
            "sourceNamespace match",
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- match:\n  - headers:\n      \"@request.auth.claims.sub\": {{exact: x}}\n{ROUTE}"
            ),
            "JWT claim based routing",
        );
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\ngateways: [ns/gw]\nhttp:\n- match:\n  - headers:\n      \"@request.auth.claims.sub\": {{exact: x}}\n{ROUTE}"
            ),
        );
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- match:\n  - withoutHeaders:\n      x-a: {{regex: \"*\"}}\n{ROUTE}"
            ),
        );
    }

    #[test]
    fn timeouts_retries_and_faults() {
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- timeout: 1.5s\n  retries:\n    attempts: 3\n    perTryTimeout: 100ms\n    retryOn: 5xx,connect-failure,503\n{ROUTE}"
            ),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- timeout: 0.5ms\n{ROUTE}"),
            "greater than 1ms",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- retries:\n    attempts: 0\n    retryOn: 5xx\n{ROUTE}"),
            "attempts are set to 0",
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- retries:\n    attempts: 2\n    retryOn: 5xx,teapot\n{ROUTE}"
            ),
            "not a valid retryOn policy",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- retries:\n    attempts: -1\n{ROUTE}"),
            "attempts cannot be negative",
        );
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- fault:\n    delay: {{fixedDelay: 5s, percentage: {{value: 10}}}}\n    abort: {{httpStatus: 503, percentage: {{value: 0.5}}}}\n{ROUTE}"
            ),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- fault: {{}}\n{ROUTE}"),
            "must have an abort and/or a delay",
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- fault:\n    abort: {{httpStatus: 503, percentage: {{value: 101}}}}\n{ROUTE}"
            ),
            "percentage 101",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- fault:\n    abort: {{grpcStatus: NOPE}}\n{ROUTE}"),
            "gRPC status",
        );
        warns(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- fault:\n    abort: {{percentage: {{value: 1}}}}\n{ROUTE}"
            ),
            "error type not set",
        );
    }

    #[test]
    fn mirrors_cors_headers_rewrite() {
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- mirror: {{host: b}}\n  mirrorPercentage: {{value: 50}}\n{ROUTE}"
            ),
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- mirror: {{host: b}}\n  mirrors:\n  - destination: {{host: c}}\n{ROUTE}"
            ),
            "both mirror and mirrors",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- mirrorPercentage: {{value: 150}}\n{ROUTE}"),
            "max value of 100",
        );
        warns(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- mirrorPercent: 5\n{ROUTE}"),
            "deprecated setting",
        );
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- corsPolicy:\n    allowOrigins: [{{exact: \"https://a.com\"}}]\n    allowMethods: [GET, POST]\n    allowHeaders: [x-a]\n    maxAge: 24h\n{ROUTE}"
            ),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- corsPolicy:\n    allowMethods: [FETCH]\n{ROUTE}"),
            "not a supported HTTP method",
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- corsPolicy:\n    maxAge: 1500ms\n{ROUTE}"),
            "seconds precision",
        );
        accepts(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- headers:\n    request:\n      set: {{x-a: \"%HOSTNAME%\"}}\n    response:\n      remove: [x-b]\n{ROUTE}"
            ),
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- headers:\n    response:\n      set: {{host: x}}\n{ROUTE}"
            ),
            "cannot set Host header",
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- headers:\n    request:\n      set: {{x-a: \"50%\"}}\n{ROUTE}"
            ),
            "header value configuration",
        );
        accepts(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- rewrite: {{uri: /v2}}\n{ROUTE}"),
        );
        rejects(
            "VirtualService",
            &format!("hosts: [a]\nhttp:\n- rewrite: {{}}\n{ROUTE}"),
            "rewrite must specify",
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- rewrite:\n    uriRegexRewrite: {{match: \"(\", rewrite: x}}\n{ROUTE}"
            ),
            "UriRegexRewrite",
        );
        rejects(
            "VirtualService",
            &format!(
                "hosts: [a]\nhttp:\n- rewrite: {{authority: x}}\n  headers:\n    request:\n      set: {{\":authority\": y}}\n{ROUTE}"
            ),
            "authority header cannot be set multiple times",
        );
    }

    #[test]
    fn tls_and_tcp_routes() {
        accepts(
            "VirtualService",
            "hosts: [a.com]\ntls:\n- match:\n  - sniHosts: [a.com]\n    port: 443\n  route:\n  - destination: {host: a.com}\n",
        );
        rejects(
            "VirtualService",
            "hosts: [a.com]\ntls:\n- match:\n  - sniHosts: [b.com]\n  route:\n  - destination: {host: a.com}\n",
            "not a compatible subset",
        );
        rejects(
            "VirtualService",
            "hosts: [a.com]\ntls:\n- route:\n  - destination: {host: a.com}\n",
            "at least one match condition",
        );
        accepts(
            "VirtualService",
            "hosts: [a]\ntcp:\n- match:\n  - port: 3306\n    destinationSubnets: [10.0.0.0/8]\n  route:\n  - destination: {host: a}\n",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\ntcp:\n- match:\n  - destinationSubnets: [10.0.0.0/99]\n  route:\n  - destination: {host: a}\n",
            "not a valid CIDR",
        );
        rejects(
            "VirtualService",
            "hosts: [a]\ntcp:\n- match:\n  - port: 1\n",
            "TCP route is required",
        );
    }

    #[test]
    fn unreachable_rules_and_overlaps() {
        let res = spec(
            "VirtualService",
            "hosts: [a]\nhttp:\n- match:\n  - uri: {prefix: /api}\n  route:\n  - destination: {host: a}\n- match:\n  - uri: {prefix: /api/v1}\n  route:\n  - destination: {host: b}\n",
        );
        let w = warnings(&res);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("#1 match #0 of prefix /api/v1"), "{w:?}");

        // Different methods do not overlap.
        let res = spec(
            "VirtualService",
            "hosts: [a]\nhttp:\n- match:\n  - uri: {prefix: /api}\n    method: {exact: POST}\n  route:\n  - destination: {host: a}\n- match:\n  - uri: {prefix: /api/v1}\n  route:\n  - destination: {host: b}\n",
        );
        assert!(validate(&res).is_empty());

        // A catch-all last rule is fine; one before another rule is not.
        let res = spec(
            "VirtualService",
            "hosts: [a]\nhttp:\n- match:\n  - uri: {exact: /x}\n  route:\n  - destination: {host: a}\n- route:\n  - destination: {host: b}\n",
        );
        assert!(validate(&res).is_empty());
        let res = spec(
            "VirtualService",
            "hosts: [a]\nhttp:\n- route:\n  - destination: {host: b}\n- match:\n  - uri: {exact: /x}\n  route:\n  - destination: {host: a}\n",
        );
        let w = warnings(&res);
        assert!(
            w.iter()
                .any(|m| m.contains("route without matches defined before")),
            "{w:?}"
        );
    }
}
