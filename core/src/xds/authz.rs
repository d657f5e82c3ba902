//! AuthorizationPolicy and RequestAuthentication, translated as Istio translates them.
//!
//! This module owns, for one proxy (a sidecar's inbound listeners, a gateway's listeners):
//!
//! - which policies apply: those in the root namespace (mesh-wide) and in the proxy's
//!   namespace whose `selector` is absent or matches the workload's labels (policies with a
//!   `targetRef` select waypoints and Gateway API gateways, which meshd does not serve, and
//!   are left out);
//! - policies annotated `istio.io/dry-run: "true"` go into the RBAC filters' shadow rules
//!   (stats `istio_dry_run_allow_` / `istio_dry_run_deny_`), not enforced;
//! - the HTTP filters that enforce them, in Istio's order: `envoy.filters.http.jwt_authn`
//!   (RequestAuthentication), then `envoy.filters.http.rbac` with action DENY, then one with
//!   ALLOW, then one with LOG (AUDIT). CUSTOM policies need an external authorizer and are
//!   skipped (the snapshot lists them as not applied);
//! - the network filters for TCP ports (`envoy.filters.network.rbac`, sidecar inbound and
//!   gateway TCP and TLS-passthrough servers), where rules that use
//!   HTTP-only fields are dropped from ALLOW policies and keep only their TCP fields in DENY
//!   and AUDIT policies (so a DENY is never weakened on TCP: one with only HTTP fields
//!   denies every connection, which `meshctl analyze` warns about as Istio does);
//! - the clusters a `jwksUri` needs.
//!
//! Envoy policy names are Istio's, `ns[NS]-policy[NAME]-rule[N]`, so RBAC stats and config
//! dumps read the same. A request an RBAC filter refuses gets Envoy's 403
//! `RBAC: access denied`; a token that fails verification gets 401.
//!
//! Attribute mapping (Istio's `pilot/pkg/security/authz/model`):
//! - `principals` / `source.principal`: the peer certificate's URI SAN
//!   (`spiffe://` + value); `namespaces` / `source.namespace`: a regex `.*/ns/NS/.*` on it.
//!   These need mTLS: without a peer certificate they never match.
//! - `ipBlocks` / `source.ip`: the connection's peer address (`direct_remote_ip`);
//!   `remoteIpBlocks` / `remote.ip`: the client address after X-Forwarded-For.
//! - `requestPrincipals` / `request.auth.principal` (`ISS/SUB`), `request.auth.claims[..]`,
//!   `request.auth.audiences`, `request.auth.presenter`: the verified JWT's payload, which
//!   jwt_authn writes into the dynamic metadata of `envoy.filters.http.jwt_authn` under
//!   [`PAYLOAD_KEY`].
//! - `hosts` (`:authority`, case-insensitive, any port), `methods` (`:method`), `paths`
//!   (the path without query; `{*}` and `{**}` templates through Envoy's URI template
//!   matcher), `ports` / `destination.port`, `destination.ip`,
//!   `connection.sni`, `request.headers[NAME]`.
//! - Values use Istio's wildcard forms: `*` (present), `PREFIX*`, `*SUFFIX`, else exact.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    CidrRange, DataSource, HttpUri, TransportSocket, TypedExtensionConfig, data_source, http_uri,
    transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    MetadataSource, Permission, Policy, Principal, Rbac as RbacRules, SourcedMetadata, permission,
    principal, rbac,
};
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RouteMatch, header_matcher, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementAndList, JwtRequirementOrList, RemoteJwks, RequirementRule, jwt_provider,
    jwt_requirement, requirement_rule,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, PathMatcher, StringMatcher, ValueMatcher, list_matcher,
    metadata_matcher, path_matcher, string_matcher, value_matcher,
};

use crate::model::networking::MatchLabelsSelector;
use crate::model::security::{
    AuthorizationAction, AuthorizationPolicy, Condition, JwtRule, Operation, RequestAuthentication,
    Rule, Source,
};

use super::{ProxyConfig, ProxyInfo, Snapshot, Typed, cluster_name, proto, wire};
use envoy_types::pb::google::protobuf::Any;

/// The HTTP RBAC filter's name (one per action, as Istio does).
pub(super) const HTTP_RBAC: &str = "envoy.filters.http.rbac";
/// The network RBAC filter's name.
pub(super) const NETWORK_RBAC: &str = "envoy.filters.network.rbac";
/// The JWT filter's name; also the dynamic-metadata namespace it writes payloads to.
pub(super) const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";
/// The key under which jwt_authn stores a verified token's payload.
pub const PAYLOAD_KEY: &str = "payload";

/// Whether a policy with this selector and target references applies to the proxy.
fn selects(
    proxy: &ProxyInfo,
    namespace: &str,
    root: &str,
    selector: Option<&MatchLabelsSelector>,
    targeted: bool,
) -> bool {
    if targeted || (namespace != root && namespace != proxy.namespace) {
        return false;
    }
    selector.is_none_or(|s| {
        s.match_labels
            .iter()
            .all(|(k, v)| proxy.labels.get(k) == Some(v))
    })
}

/// The AuthorizationPolicies that apply to the proxy, in a stable order.
fn policies<'a>(snap: &'a Snapshot, proxy: &ProxyInfo) -> Vec<&'a Typed<AuthorizationPolicy>> {
    let root = snap.mesh.root_namespace();
    let mut out: Vec<_> = snap
        .authorization_policies
        .iter()
        .filter(|p| {
            selects(
                proxy,
                p.namespace(),
                root,
                p.spec.selector.as_ref(),
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    out
}

/// The RequestAuthentications that apply to the proxy, in a stable order.
fn request_authentications<'a>(
    snap: &'a Snapshot,
    proxy: &ProxyInfo,
) -> Vec<&'a Typed<RequestAuthentication>> {
    let root = snap.mesh.root_namespace();
    let mut out: Vec<_> = snap
        .request_authentications
        .iter()
        .filter(|p| {
            selects(
                proxy,
                p.namespace(),
                root,
                p.spec.selector.as_ref(),
                p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty(),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    out
}

/// Istio's name of one rule's Envoy policy.
pub fn policy_name(namespace: &str, name: &str, rule: usize) -> String {
    format!("ns[{namespace}]-policy[{name}]-rule[{rule}]")
}

/// The filters to put before the rest of an HTTP connection manager's filters: jwt_authn
/// (when a RequestAuthentication applies), then RBAC DENY, ALLOW and AUDIT (when policies
/// with that action apply).
pub(super) fn http_filters(snap: &Snapshot, proxy: &ProxyInfo) -> Vec<HttpFilter> {
    let mut out = Vec::new();
    if let Some(jwt) = jwt_authn(snap, proxy) {
        out.push(typed_http_filter(JWT_AUTHN, wire::jwt_authn_any(&jwt)));
    }
    let policies = policies(snap, proxy);
    for action in ACTIONS {
        if let Some((rules, shadow_rules)) = action_rules(&policies, action, false) {
            out.push(typed_http_filter(
                HTTP_RBAC,
                wire::http_rbac_any(&HttpRbac {
                    rules,
                    shadow_rules_stat_prefix: shadow_prefix(&shadow_rules),
                    shadow_rules,
                    ..Default::default()
                }),
            ));
        }
    }
    out
}

/// The network filters to put before a TCP proxy: RBAC DENY, ALLOW and AUDIT.
pub(super) fn tcp_filters(snap: &Snapshot, proxy: &ProxyInfo) -> Vec<Filter> {
    let policies = policies(snap, proxy);
    let mut out = Vec::new();
    for action in ACTIONS {
        if let Some((rules, shadow_rules)) = action_rules(&policies, action, true) {
            let m = NetworkRbac {
                rules,
                stat_prefix: "tcp.".to_owned(),
                shadow_rules_stat_prefix: shadow_prefix(&shadow_rules),
                shadow_rules,
                ..Default::default()
            };
            out.push(Filter {
                name: NETWORK_RBAC.to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(wire::network_rbac_any(&m))),
            });
        }
    }
    out
}

/// `filters` with the authorization filters in front.
pub(super) fn with_http_filters(
    snap: &Snapshot,
    proxy: &ProxyInfo,
    filters: Vec<HttpFilter>,
) -> Vec<HttpFilter> {
    let mut out = http_filters(snap, proxy);
    out.extend(filters);
    out
}

/// The authorization filters followed by `last` (a TCP proxy).
pub(super) fn with_tcp_filters(snap: &Snapshot, proxy: &ProxyInfo, last: Filter) -> Vec<Filter> {
    let mut out = tcp_filters(snap, proxy);
    out.push(last);
    out
}

/// An HTTP filter with its config (encoded by [`wire`], so its bytes are the same every
/// time: these configs hold maps).
fn typed_http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// The enforced actions, in Istio's order (CUSTOM is not served).
const ACTIONS: [AuthorizationAction; 3] = [
    AuthorizationAction::Deny,
    AuthorizationAction::Allow,
    AuthorizationAction::Audit,
];

/// The annotation that makes a policy a dry run: evaluated and counted in Envoy's
/// `istio_dry_run_{allow,deny}_` stats, never enforced.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

fn dry_run(p: &Typed<AuthorizationPolicy>) -> bool {
    p.resource
        .annotations
        .get(DRY_RUN_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// One action's enforced rules and shadow (dry-run) rules; `None` when neither applies.
/// AUDIT policies only log, so a dry-run AUDIT has nothing to shadow and is left out.
fn action_rules(
    policies: &[&Typed<AuthorizationPolicy>],
    action: AuthorizationAction,
    tcp: bool,
) -> Option<(Option<RbacRules>, Option<RbacRules>)> {
    let (dry, enforced): (Vec<_>, Vec<_>) = policies.iter().copied().partition(|p| dry_run(p));
    let rules = rbac_rules(&enforced, action, tcp);
    let shadow = if action == AuthorizationAction::Audit {
        None
    } else {
        rbac_rules(&dry, action, tcp)
    };
    (rules.is_some() || shadow.is_some()).then_some((rules, shadow))
}

/// Istio's stat prefix of shadow rules.
fn shadow_prefix(shadow: &Option<RbacRules>) -> String {
    match shadow {
        Some(r) if r.action == rbac::Action::Deny as i32 => "istio_dry_run_deny_".to_owned(),
        Some(_) => "istio_dry_run_allow_".to_owned(),
        None => String::new(),
    }
}

/// The RBAC rules for one action, or `None` when no policy with that action applies (an
/// ALLOW filter is kept even with no rules: it denies everything). DENY and AUDIT filters
/// with no rules are left out: they would do nothing.
fn rbac_rules(
    policies: &[&Typed<AuthorizationPolicy>],
    action: AuthorizationAction,
    tcp: bool,
) -> Option<RbacRules> {
    let selected: Vec<_> = policies
        .iter()
        .filter(|p| p.spec.action == action)
        .collect();
    if selected.is_empty() {
        return None;
    }
    let mut map = HashMap::new();
    for p in selected {
        for (i, rule) in p.spec.rules.iter().flatten().enumerate() {
            if let Some(policy) = rule_policy(rule, p.namespace(), action, tcp) {
                map.insert(policy_name(p.namespace(), p.name(), i), policy);
            }
        }
    }
    if map.is_empty() && action != AuthorizationAction::Allow {
        return None;
    }
    let envoy_action = match action {
        AuthorizationAction::Deny => rbac::Action::Deny,
        AuthorizationAction::Audit => rbac::Action::Log,
        _ => rbac::Action::Allow,
    };
    Some(RbacRules {
        action: envoy_action as i32,
        policies: map,
        ..Default::default()
    })
}

/// Whether a `when` key is about the request (HTTP-only).
fn http_only_key(key: &str) -> bool {
    key.starts_with("request.")
}

/// Whether a `when` key constrains the destination (a permission) rather than the source.
fn permission_key(key: &str) -> bool {
    matches!(
        key,
        "destination.ip" | "destination.port" | "connection.sni"
    )
}

/// Whether meshd translates a `when` key.
fn known_key(key: &str) -> bool {
    matches!(
        key,
        "source.ip"
            | "remote.ip"
            | "source.namespace"
            | "source.principal"
            | "source.serviceAccount"
            | "request.auth.principal"
            | "request.auth.audiences"
            | "request.auth.presenter"
            | "destination.ip"
            | "destination.port"
            | "connection.sni"
    ) || header_key(key).is_some()
        || claim_path(key).is_some()
}

fn op_has_http(op: &Operation) -> bool {
    op.hosts.is_some()
        || op.not_hosts.is_some()
        || op.methods.is_some()
        || op.not_methods.is_some()
        || op.paths.is_some()
        || op.not_paths.is_some()
}

fn source_has_http(s: &Source) -> bool {
    s.request_principals.is_some() || s.not_request_principals.is_some()
}

/// One rule's Envoy policy, or `None` when the rule is dropped (HTTP-only fields in an
/// ALLOW rule on a TCP port: a smaller ALLOW). DENY and AUDIT rules lose only their
/// HTTP-only fields on TCP (a wider DENY or AUDIT), as Istio does.
fn rule_policy(
    rule: &Rule,
    namespace: &str,
    action: AuthorizationAction,
    tcp: bool,
) -> Option<Policy> {
    let sources: Vec<Source> = rule
        .from
        .iter()
        .flatten()
        .filter_map(|f| f.source.clone())
        .collect();
    let operations: Vec<Operation> = rule
        .to
        .iter()
        .flatten()
        .filter_map(|t| t.operation.clone())
        .collect();
    let uses_http = sources.iter().any(source_has_http)
        || operations.iter().any(op_has_http)
        || rule.when.iter().any(|c| http_only_key(&c.key));
    if tcp && uses_http && action == AuthorizationAction::Allow {
        return None;
    }
    // A condition meshd cannot translate must not widen an ALLOW: the rule is dropped (a
    // DENY or AUDIT rule goes on without it, which widens it instead).
    if action == AuthorizationAction::Allow && rule.when.iter().any(|c| !known_key(&c.key)) {
        return None;
    }
    let when_principals: Vec<Principal> = rule
        .when
        .iter()
        .filter(|c| !(permission_key(&c.key) || (tcp && http_only_key(&c.key))))
        .filter_map(|c| condition_principal(c, namespace))
        .collect();
    let when_permissions: Vec<Permission> = rule
        .when
        .iter()
        .filter(|c| permission_key(&c.key))
        .filter_map(condition_permission)
        .collect();

    let principals = if sources.is_empty() {
        vec![and_ids(when_principals)]
    } else {
        sources
            .iter()
            .map(|s| {
                let mut ids = source_principals(s, namespace, tcp);
                ids.extend(when_principals.iter().cloned());
                and_ids(ids)
            })
            .collect()
    };
    let permissions = if operations.is_empty() {
        vec![and_rules(when_permissions)]
    } else {
        operations
            .iter()
            .map(|op| {
                let mut rules = operation_permissions(op, tcp);
                rules.extend(when_permissions.iter().cloned());
                and_rules(rules)
            })
            .collect()
    };
    Some(Policy {
        permissions,
        principals,
        ..Default::default()
    })
}

// ---- Principals ----------------------------------------------------------------------

fn id(i: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(i),
    }
}

fn and_ids(mut ids: Vec<Principal>) -> Principal {
    match ids.len() {
        0 => id(principal::Identifier::Any(true)),
        1 => ids.remove(0),
        _ => id(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

fn or_ids(mut ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        ids.remove(0)
    } else {
        id(principal::Identifier::OrIds(principal::Set { ids }))
    }
}

fn not_id(p: Principal) -> Principal {
    id(principal::Identifier::NotId(Box::new(p)))
}

/// `values` as an OR of `one`, and `not_values` as NOT(OR), pushed onto `out`.
fn push_ids(
    out: &mut Vec<Principal>,
    values: Option<&Vec<String>>,
    not_values: Option<&Vec<String>>,
    one: impl Fn(&str) -> Option<Principal>,
) {
    if let Some(vs) = values {
        out.push(or_ids(vs.iter().filter_map(|v| one(v)).collect()));
    }
    if let Some(vs) = not_values {
        out.push(not_id(or_ids(vs.iter().filter_map(|v| one(v)).collect())));
    }
}

fn source_principals(s: &Source, namespace: &str, tcp: bool) -> Vec<Principal> {
    let mut out = Vec::new();
    push_ids(
        &mut out,
        s.principals.as_ref(),
        s.not_principals.as_ref(),
        |v| Some(peer_principal(v)),
    );
    if !tcp {
        push_ids(
            &mut out,
            s.request_principals.as_ref(),
            s.not_request_principals.as_ref(),
            |v| Some(request_principal(v)),
        );
    }
    push_ids(
        &mut out,
        s.namespaces.as_ref(),
        s.not_namespaces.as_ref(),
        |v| Some(peer_namespace(v)),
    );
    push_ids(
        &mut out,
        s.service_accounts.as_ref(),
        s.not_service_accounts.as_ref(),
        |v| Some(peer_service_account(v, namespace)),
    );
    push_ids(
        &mut out,
        s.ip_blocks.as_ref(),
        s.not_ip_blocks.as_ref(),
        |v| cidr(v).map(|c| id(principal::Identifier::DirectRemoteIp(c))),
    );
    push_ids(
        &mut out,
        s.remote_ip_blocks.as_ref(),
        s.not_remote_ip_blocks.as_ref(),
        |v| cidr(v).map(|c| id(principal::Identifier::RemoteIp(c))),
    );
    out
}

fn authenticated(m: StringMatcher) -> Principal {
    id(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(m),
        },
    ))
}

/// A peer identity `TRUST_DOMAIN/ns/NS/sa/SA` (with Istio's wildcards) on the URI SAN.
fn peer_principal(v: &str) -> Principal {
    authenticated(istio_string(v, "spiffe://"))
}

/// A source namespace: `.*/ns/NS/.*` on the URI SAN, `*` standing for `.*`.
fn peer_namespace(v: &str) -> Principal {
    let ns: Vec<String> = v.split('*').map(regex_escape).collect();
    authenticated(regex_matcher(&format!(".*/ns/{}/.*", ns.join(".*"))))
}

/// A service account `NS/SA`, or `SA` in the policy's namespace, on the URI SAN
/// (`spiffe://TD/ns/NS/sa/SA`, other segments allowed around them).
fn peer_service_account(v: &str, namespace: &str) -> Principal {
    let (ns, sa) = v.split_once('/').unwrap_or((namespace, v));
    authenticated(regex_matcher(&format!(
        "spiffe://.+/ns/{}/(.+/|)sa/{}(/.+)?",
        regex_escape(ns),
        regex_escape(sa)
    )))
}

fn jwt_metadata(path: &[&str], value: value_matcher::MatchPattern) -> MetadataMatcher {
    MetadataMatcher {
        filter: JWT_AUTHN.to_owned(),
        path: std::iter::once(PAYLOAD_KEY)
            .chain(path.iter().copied())
            .map(|k| metadata_matcher::PathSegment {
                segment: Some(metadata_matcher::path_segment::Segment::Key(k.to_owned())),
            })
            .collect(),
        value: Some(ValueMatcher {
            match_pattern: Some(value),
        }),
        invert: false,
    }
}

fn jwt_id(path: &[&str], value: value_matcher::MatchPattern) -> Principal {
    id(principal::Identifier::SourcedMetadata(SourcedMetadata {
        metadata_matcher: Some(jwt_metadata(path, value)),
        metadata_source: MetadataSource::Dynamic as i32,
    }))
}

fn string_value(m: StringMatcher) -> value_matcher::MatchPattern {
    value_matcher::MatchPattern::StringMatch(m)
}

fn plain(pattern: string_matcher::MatchPattern) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

fn exact(s: &str) -> StringMatcher {
    plain(string_matcher::MatchPattern::Exact(s.to_owned()))
}

/// A request principal `ISS/SUB` (split at the last `/`, as issuers may be URLs): the
/// verified token's `iss` and `sub` claims, with Istio's wildcards: `*` is any verified
/// token, `ISS/*` any subject of an issuer, `*/SUB` or `*SUFFIX` a subject of any issuer,
/// `PREFIX*` (no `/`) issuers by prefix.
fn request_principal(v: &str) -> Principal {
    let any = || regex_matcher(".+");
    let (iss, sub) = match v.rfind('/') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let (m_iss, m_sub) = if v == "*" {
        (any(), any())
    } else if let Some(rest) = v.strip_prefix('*') {
        match sub {
            Some(sub) if iss == "*" => (any(), exact(sub)),
            Some(sub) => (
                plain(string_matcher::MatchPattern::Suffix(
                    iss.trim_start_matches('*').to_owned(),
                )),
                exact(sub),
            ),
            None => (
                any(),
                plain(string_matcher::MatchPattern::Suffix(rest.to_owned())),
            ),
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        match sub {
            Some("*") => (exact(iss), any()),
            Some(sub) => (
                exact(iss),
                plain(string_matcher::MatchPattern::Prefix(
                    sub.trim_end_matches('*').to_owned(),
                )),
            ),
            None => (
                plain(string_matcher::MatchPattern::Prefix(rest.to_owned())),
                any(),
            ),
        }
    } else {
        (exact(iss), exact(sub.unwrap_or("")))
    };
    id(principal::Identifier::AndIds(principal::Set {
        ids: vec![
            jwt_id(&["iss"], string_value(m_iss)),
            jwt_id(&["sub"], string_value(m_sub)),
        ],
    }))
}

/// A claim equal to `v` (Istio's wildcards): a string claim, or a list claim holding it.
fn claim_value(path: &[&str], v: &str) -> Principal {
    let m = istio_string(v, "");
    or_ids(vec![
        jwt_id(path, string_value(m.clone())),
        jwt_id(
            path,
            value_matcher::MatchPattern::ListMatch(Box::new(ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(ValueMatcher {
                    match_pattern: Some(string_value(m)),
                }))),
            })),
        ),
    ])
}

/// The keys of `request.auth.claims[a][b]`: `["a", "b"]`.
fn claim_path(key: &str) -> Option<Vec<String>> {
    let mut rest = key.strip_prefix("request.auth.claims")?;
    let mut out = Vec::new();
    while let Some(r) = rest.strip_prefix('[') {
        let (k, tail) = r.split_once(']')?;
        out.push(k.to_owned());
        rest = tail;
    }
    (rest.is_empty() && !out.is_empty()).then_some(out)
}

/// `request.headers[NAME]`'s NAME.
fn header_key(key: &str) -> Option<&str> {
    key.strip_prefix("request.headers[")?.strip_suffix(']')
}

/// Turns one condition value into a principal.
type OneId = Box<dyn Fn(&str) -> Option<Principal>>;

fn condition_principal(c: &Condition, namespace: &str) -> Option<Principal> {
    let one: OneId = match c.key.as_str() {
        "source.ip" => Box::new(|v| cidr(v).map(|c| id(principal::Identifier::DirectRemoteIp(c)))),
        "remote.ip" => Box::new(|v| cidr(v).map(|c| id(principal::Identifier::RemoteIp(c)))),
        "source.namespace" => Box::new(|v| Some(peer_namespace(v))),
        "source.principal" => Box::new(|v| Some(peer_principal(v))),
        "source.serviceAccount" => {
            let ns = namespace.to_owned();
            Box::new(move |v| Some(peer_service_account(v, &ns)))
        }
        "request.auth.principal" => Box::new(|v| Some(request_principal(v))),
        "request.auth.audiences" => Box::new(|v| Some(claim_value(&["aud"], v))),
        "request.auth.presenter" => Box::new(|v| Some(claim_value(&["azp"], v))),
        k => {
            if let Some(name) = header_key(k) {
                let name = name.to_owned();
                Box::new(move |v| Some(id(principal::Identifier::Header(header(&name, v)))))
            } else if let Some(path) = claim_path(k) {
                Box::new(move |v| {
                    let p: Vec<&str> = path.iter().map(String::as_str).collect();
                    Some(claim_value(&p, v))
                })
            } else {
                return None;
            }
        }
    };
    let mut ids = Vec::new();
    push_ids(
        &mut ids,
        (!c.values.is_empty()).then_some(&c.values),
        (!c.not_values.is_empty()).then_some(&c.not_values),
        one,
    );
    Some(and_ids(ids))
}

// ---- Permissions ---------------------------------------------------------------------

fn rule(r: permission::Rule) -> Permission {
    Permission { rule: Some(r) }
}

fn and_rules(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        0 => rule(permission::Rule::Any(true)),
        1 => rules.remove(0),
        _ => rule(permission::Rule::AndRules(permission::Set { rules })),
    }
}

fn or_rules(mut rules: Vec<Permission>) -> Permission {
    if rules.len() == 1 {
        rules.remove(0)
    } else {
        rule(permission::Rule::OrRules(permission::Set { rules }))
    }
}

fn not_rule(p: Permission) -> Permission {
    rule(permission::Rule::NotRule(Box::new(p)))
}

fn push_rules(
    out: &mut Vec<Permission>,
    values: Option<&Vec<String>>,
    not_values: Option<&Vec<String>>,
    one: impl Fn(&str) -> Option<Permission>,
) {
    if let Some(vs) = values {
        out.push(or_rules(vs.iter().filter_map(|v| one(v)).collect()));
    }
    if let Some(vs) = not_values {
        out.push(not_rule(or_rules(
            vs.iter().filter_map(|v| one(v)).collect(),
        )));
    }
}

fn port_rule(v: &str) -> Option<Permission> {
    v.parse::<u32>()
        .ok()
        .map(|p| rule(permission::Rule::DestinationPort(p)))
}

fn operation_permissions(op: &Operation, tcp: bool) -> Vec<Permission> {
    let mut out = Vec::new();
    if !tcp {
        push_rules(&mut out, op.hosts.as_ref(), op.not_hosts.as_ref(), |v| {
            Some(rule(permission::Rule::Header(host_header(v))))
        });
        push_rules(
            &mut out,
            op.methods.as_ref(),
            op.not_methods.as_ref(),
            |v| Some(rule(permission::Rule::Header(header(":method", v)))),
        );
        push_rules(&mut out, op.paths.as_ref(), op.not_paths.as_ref(), |v| {
            Some(path_rule(v))
        });
    }
    push_rules(
        &mut out,
        op.ports.as_ref(),
        op.not_ports.as_ref(),
        port_rule,
    );
    out
}

/// A path: Istio's templates (`/a/{*}/b`, `/a/{**}`) as Envoy's URI template matcher
/// (`*` one segment, `**` any number), else Istio's value forms on the path without query.
fn path_rule(v: &str) -> Permission {
    if v.contains("{*}") || v.contains("{**}") {
        let template = v.replace("{**}", "**").replace("{*}", "*");
        return rule(permission::Rule::UriTemplate(TypedExtensionConfig {
            name: "uri-template".to_owned(),
            typed_config: Some(proto::any(&UriTemplateMatchConfig {
                path_template: template,
            })),
        }));
    }
    rule(permission::Rule::UrlPath(PathMatcher {
        rule: Some(path_matcher::Rule::Path(istio_string(v, ""))),
    }))
}

fn condition_permission(c: &Condition) -> Option<Permission> {
    let one: fn(&str) -> Option<Permission> = match c.key.as_str() {
        "destination.ip" => |v| cidr(v).map(|c| rule(permission::Rule::DestinationIp(c))),
        "destination.port" => port_rule,
        "connection.sni" => |v| {
            Some(rule(permission::Rule::RequestedServerName(istio_string(
                v, "",
            ))))
        },
        _ => return None,
    };
    let mut out = Vec::new();
    push_rules(
        &mut out,
        (!c.values.is_empty()).then_some(&c.values),
        (!c.not_values.is_empty()).then_some(&c.not_values),
        one,
    );
    Some(and_rules(out))
}

// ---- Matchers ------------------------------------------------------------------------

/// Istio's value forms: `*` is any non-empty value, `PREFIX*`, `*SUFFIX`, else exact;
/// `add` goes in front of prefix and exact values (`spiffe://` for principals).
fn istio_string(v: &str, add: &str) -> StringMatcher {
    let pattern = if v == "*" {
        string_matcher::MatchPattern::SafeRegex(proto::regex(".+"))
    } else if let Some(p) = v.strip_suffix('*') {
        string_matcher::MatchPattern::Prefix(format!("{add}{p}"))
    } else if let Some(s) = v.strip_prefix('*') {
        string_matcher::MatchPattern::Suffix(s.to_owned())
    } else {
        string_matcher::MatchPattern::Exact(format!("{add}{v}"))
    };
    plain(pattern)
}

fn regex_matcher(re: &str) -> StringMatcher {
    plain(string_matcher::MatchPattern::SafeRegex(proto::regex(re)))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A request header with Istio's value forms (`*` means present).
fn header(name: &str, v: &str) -> HeaderMatcher {
    let spec = if v == "*" {
        header_matcher::HeaderMatchSpecifier::PresentMatch(true)
    } else {
        header_matcher::HeaderMatchSpecifier::StringMatch(istio_string(v, ""))
    };
    HeaderMatcher {
        name: name.to_owned(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// `:authority` for an Istio host: case-insensitive, with or without a port.
fn host_header(v: &str) -> HeaderMatcher {
    let re = if v == "*" {
        ".+".to_owned()
    } else if let Some(s) = v.strip_prefix('*') {
        format!("(?i).*{}(:[0-9]+)?", regex_escape(s))
    } else if let Some(p) = v.strip_suffix('*') {
        format!("(?i){}.*", regex_escape(p))
    } else if v.contains(':') {
        format!("(?i){}", regex_escape(v))
    } else {
        format!("(?i){}(:[0-9]+)?", regex_escape(v))
    };
    HeaderMatcher {
        name: ":authority".to_owned(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
            regex_matcher(&re),
        )),
        ..Default::default()
    }
}

/// `10.0.0.0/8` or a single address (a /32 or /128).
fn cidr(v: &str) -> Option<CidrRange> {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().ok()?)),
        None => (v, None),
    };
    let ip: std::net::IpAddr = addr.parse().ok()?;
    let len = len.unwrap_or(if ip.is_ipv4() { 32 } else { 128 });
    Some(CidrRange {
        address_prefix: ip.to_string(),
        prefix_len: Some(proto::u32v(len)),
    })
}

// ---- RequestAuthentication -----------------------------------------------------------

/// Istio's provider name for the N-th JWT rule of the applicable RequestAuthentications.
fn provider_name(i: usize) -> String {
    format!("origins-{i}")
}

/// The JWT rules of every RequestAuthentication that applies, sorted by issuer (stable),
/// as Istio orders them.
fn jwt_rules<'a>(snap: &'a Snapshot, proxy: &ProxyInfo) -> Vec<&'a JwtRule> {
    let mut rules: Vec<&JwtRule> = request_authentications(snap, proxy)
        .into_iter()
        .flat_map(|ra| ra.spec.jwt_rules.iter())
        .collect();
    rules.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    rules
}

fn provider_requirement(name: &str) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(jwt_requirement::RequiresType::ProviderName(name.to_owned())),
    }
}

fn any_of(requirements: Vec<JwtRequirement>) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(jwt_requirement::RequiresType::RequiresAny(
            JwtRequirementOrList { requirements },
        )),
    }
}

/// The jwt_authn filter: every rule is a provider (`origins-N`); a request passes with no
/// token, or with tokens the providers verify; a token that fails verification gets 401.
/// With one provider the requirement is `any{P, allow_missing}`; with several, Istio's
/// `any{P1, .., Pn, all{any{P1, allow_missing}, .., any{Pn, allow_missing}}}` (each token
/// present must verify; the plain alternatives cover providers reading the same header).
fn jwt_authn(snap: &Snapshot, proxy: &ProxyInfo) -> Option<JwtAuthentication> {
    let rules = jwt_rules(snap, proxy);
    if rules.is_empty() {
        return None;
    }
    let mut providers = HashMap::new();
    let mut each = Vec::new();
    let mut alternatives = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let Some(source) = jwks_source(r) else {
            continue;
        };
        let name = provider_name(i);
        providers.insert(
            name.clone(),
            JwtProvider {
                issuer: r.issuer.clone(),
                audiences: r.audiences.clone(),
                forward: r.forward_original_token,
                from_headers: r
                    .from_headers
                    .iter()
                    .map(|h| JwtHeader {
                        name: h.name.clone(),
                        value_prefix: h.prefix.clone(),
                    })
                    .collect(),
                from_params: r.from_params.clone(),
                from_cookies: r.from_cookies.clone(),
                forward_payload_header: r.output_payload_to_header.clone(),
                payload_in_metadata: PAYLOAD_KEY.to_owned(),
                normalize_payload_in_metadata: Some(jwt_provider::NormalizePayload {
                    space_delimited_claims: vec!["permission".to_owned(), "scope".to_owned()],
                }),
                claim_to_headers: r
                    .output_claim_to_headers
                    .iter()
                    .map(|c| JwtClaimToHeader {
                        header_name: c.header.clone(),
                        claim_name: c.claim.clone(),
                        ..Default::default()
                    })
                    .collect(),
                jwks_source_specifier: Some(source),
                ..Default::default()
            },
        );
        each.push(any_of(vec![
            provider_requirement(&name),
            JwtRequirement {
                requires_type: Some(jwt_requirement::RequiresType::AllowMissing(
                    Default::default(),
                )),
            },
        ]));
        alternatives.push(provider_requirement(&name));
    }
    if each.is_empty() {
        return None;
    }
    let requirement = if each.len() == 1 {
        each.remove(0)
    } else {
        alternatives.push(JwtRequirement {
            requires_type: Some(jwt_requirement::RequiresType::RequiresAll(
                JwtRequirementAndList { requirements: each },
            )),
        });
        any_of(alternatives)
    };
    Some(JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            requirement_type: Some(requirement_rule::RequirementType::Requires(requirement)),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    })
}

/// A `jwksUri` split into scheme, host, port and the cluster that reaches it (Istio's
/// `outbound|PORT||HOST`).
struct JwksUri {
    tls: bool,
    host: String,
    port: u16,
}

impl JwksUri {
    fn parse(uri: &str) -> Option<JwksUri> {
        let (tls, rest) = if let Some(r) = uri.strip_prefix("https://") {
            (true, r)
        } else {
            (false, uri.strip_prefix("http://")?)
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, p) = r.split_once(']')?;
            (h.to_owned(), p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(p) => p.parse().ok()?,
            None if tls => 443,
            None => 80,
        };
        Some(JwksUri { tls, host, port })
    }

    fn cluster(&self) -> String {
        cluster_name::outbound(self.port, "", &self.host)
    }
}

fn jwks_source(r: &JwtRule) -> Option<jwt_provider::JwksSourceSpecifier> {
    if !r.jwks.is_empty() {
        return Some(jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(r.jwks.clone())),
            ..Default::default()
        }));
    }
    let uri = JwksUri::parse(&r.jwks_uri)?;
    Some(jwt_provider::JwksSourceSpecifier::RemoteJwks(RemoteJwks {
        http_uri: Some(HttpUri {
            uri: r.jwks_uri.clone(),
            timeout: Some(proto::duration(
                r.timeout
                    .map(|d| d.0)
                    .unwrap_or(std::time::Duration::from_secs(5)),
            )),
            http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(uri.cluster())),
        }),
        cache_duration: Some(proto::duration(std::time::Duration::from_secs(300))),
        ..Default::default()
    }))
}

/// Adds the clusters that `jwksUri`s need and the proxy does not have yet: the host's
/// addresses resolved by DNS (`STRICT_DNS`), or taken as is when it is an IP address.
pub(super) fn add_jwks_clusters(snap: &Snapshot, proxy: &ProxyInfo, out: &mut ProxyConfig) {
    for r in jwt_rules(snap, proxy) {
        if !r.jwks.is_empty() {
            continue;
        }
        let Some(uri) = JwksUri::parse(&r.jwks_uri) else {
            continue;
        };
        let name = uri.cluster();
        if out.clusters.iter().any(|c| c.name == name) {
            continue;
        }
        let literal = uri.host.parse::<std::net::IpAddr>().is_ok();
        let discovery = if literal {
            cluster::DiscoveryType::Static
        } else {
            cluster::DiscoveryType::StrictDns
        };
        let transport_socket = uri.tls.then(|| TransportSocket {
            name: "envoy.transport_sockets.tls".to_owned(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(
                &UpstreamTlsContext {
                    sni: uri.host.clone(),
                    ..Default::default()
                },
            ))),
        });
        out.clusters.push(Cluster {
            name: name.clone(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
            connect_timeout: Some(proto::duration(std::time::Duration::from_secs(1))),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: name,
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![LbEndpoint {
                        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                            address: Some(proto::socket(&uri.host, uri.port)),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            transport_socket,
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn claim_paths() {
        assert_eq!(
            claim_path("request.auth.claims[groups]"),
            Some(vec!["groups".to_owned()])
        );
        assert_eq!(
            claim_path("request.auth.claims[a][b]"),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(claim_path("request.auth.claims"), None);
        assert_eq!(claim_path("request.auth.claims[a"), None);
    }

    #[test]
    fn jwks_uris() {
        let u = JwksUri::parse("http://127.0.0.1:8000/jwks.json").unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 8000));
        assert_eq!(u.cluster(), "outbound|8000||127.0.0.1");
        let u = JwksUri::parse("https://issuer.example.com/keys").unwrap();
        assert_eq!((u.tls, u.port), (true, 443));
        assert!(JwksUri::parse("ftp://x/").is_none());
    }

    #[test]
    fn cidrs() {
        let c = cidr("10.0.0.0/8").unwrap();
        assert_eq!(c.address_prefix, "10.0.0.0");
        assert_eq!(c.prefix_len.unwrap().value, 8);
        assert_eq!(cidr("127.0.0.1").unwrap().prefix_len.unwrap().value, 32);
        assert!(cidr("nope").is_none());
    }

    #[test]
    fn istio_value_forms() {
        use string_matcher::MatchPattern as P;
        let p = |v| istio_string(v, "spiffe://").match_pattern.unwrap();
        assert_eq!(
            p("cluster.local/ns/a/sa/b"),
            P::Exact("spiffe://cluster.local/ns/a/sa/b".into())
        );
        assert_eq!(
            p("cluster.local/*"),
            P::Prefix("spiffe://cluster.local/".into())
        );
        assert_eq!(p("*/sa/b"), P::Suffix("/sa/b".into()));
        assert!(matches!(p("*"), P::SafeRegex(_)));
    }
}
