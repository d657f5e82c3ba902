//! Route tables: Envoy's RouteConfiguration turned into what the data path matches against
//! (virtual hosts by domain, routes by path, headers and query parameters) and the actions
//! they lead to (forward to a cluster or weighted clusters, redirect, direct response), with
//! header mutations, rewrites, retries, timeouts, hashing, mirrors, faults and CORS.
//!
//! Conversion refuses (the whole resource is NACKed) what would change where traffic goes
//! if ignored: route matches on gRPC, TLS context, dynamic metadata, filter state, runtime
//! fractions or cookies, path match policies, cluster headers and specifier plugins, filter
//! actions and non-forwarding actions, vhost-level matchers (the unified matcher tree),
//! `require_tls`, regex rewrites of redirects and `path_rewrite_policy`. It ignores what
//! only tunes or observes: stat prefixes, decorators, tracing, metadata, virtual clusters,
//! rate limits (no rate-limit filter is served), buffer limits, hedging, internal redirects,
//! idle and stream-duration timeouts, `validate_clusters`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValueOption, RuntimeFractionalPercent, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3 as pb;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as PbCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use regex::Regex;

use super::retry::RetryPolicy;

/// The per-route config key of the fault filter.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The per-route config key of the CORS filter.
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Why a route configuration cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("route {route:?}: {reason}")]
pub struct RouteError {
    pub route: String,
    pub reason: String,
}

fn err(route: &str, reason: impl Into<String>) -> RouteError {
    RouteError {
        route: route.to_owned(),
        reason: reason.into(),
    }
}

/// A converted RouteConfiguration.
#[derive(Debug)]
pub struct RouteTable {
    pub name: String,
    pub vhosts: Vec<VirtualHost>,
    pub ignore_port: bool,
    pub headers: HeaderMutations,
}

/// Headers to add and remove, at one level (route configuration, virtual host, route,
/// weighted cluster).
#[derive(Debug, Default, Clone)]
pub struct HeaderMutations {
    pub request_add: Vec<HeaderAdd>,
    pub request_remove: Vec<String>,
    pub response_add: Vec<HeaderAdd>,
    pub response_remove: Vec<String>,
}

/// One header to add: append to the existing values, or overwrite them.
#[derive(Debug, Clone)]
pub struct HeaderAdd {
    pub name: hyper::header::HeaderName,
    pub value: hyper::header::HeaderValue,
    pub append: bool,
}

#[derive(Debug)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<Domain>,
    pub routes: Vec<Route>,
    pub headers: HeaderMutations,
    pub include_attempt_count: bool,
}

/// A virtual host domain, in Envoy's four kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    Exact(String),
    /// `*.example.com`: the stored part is `.example.com`.
    Suffix(String),
    /// `example.*`: the stored part is `example.`.
    Prefix(String),
    Any,
}

impl Domain {
    fn parse(d: &str) -> Domain {
        let d = d.to_ascii_lowercase();
        if d == "*" {
            Domain::Any
        } else if let Some(rest) = d.strip_prefix('*') {
            Domain::Suffix(rest.to_owned())
        } else if let Some(rest) = d.strip_suffix('*') {
            Domain::Prefix(rest.to_owned())
        } else {
            Domain::Exact(d)
        }
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatcher,
    pub action: Action,
    pub headers: HeaderMutations,
    pub fault: Option<Fault>,
    pub cors: Option<Cors>,
}

#[derive(Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Anchored at both ends.
    Regex(Regex),
    SeparatedPrefix(String),
    Connect,
}

#[derive(Debug)]
pub struct RouteMatcher {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query: Vec<QueryMatch>,
}

#[derive(Debug)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
}

/// A string matcher and whether it ignores case.
#[derive(Debug)]
pub struct StringMatch {
    pub kind: StrMatch,
    pub ignore_case: bool,
}

impl StringMatch {
    pub fn matches(&self, v: &str) -> bool {
        if self.ignore_case {
            let v = v.to_ascii_lowercase();
            match &self.kind {
                StrMatch::Exact(s) => v == *s,
                StrMatch::Prefix(s) => v.starts_with(s.as_str()),
                StrMatch::Suffix(s) => v.ends_with(s.as_str()),
                StrMatch::Contains(s) => v.contains(s.as_str()),
                StrMatch::Regex(r) => r.is_match(&v),
            }
        } else {
            match &self.kind {
                StrMatch::Exact(s) => v == s,
                StrMatch::Prefix(s) => v.starts_with(s.as_str()),
                StrMatch::Suffix(s) => v.ends_with(s.as_str()),
                StrMatch::Contains(s) => v.contains(s.as_str()),
                StrMatch::Regex(r) => r.is_match(v),
            }
        }
    }
}

#[derive(Debug)]
pub enum HeaderSpec {
    Str(StringMatch),
    Present(bool),
}

#[derive(Debug)]
pub struct HeaderMatch {
    /// Lower case; pseudo-headers `:method`, `:authority`, `:path`, `:scheme` included.
    pub name: String,
    pub spec: HeaderSpec,
    pub invert: bool,
    pub missing_as_empty: bool,
}

#[derive(Debug)]
pub struct QueryMatch {
    pub name: String,
    /// `None`: present.
    pub spec: Option<StringMatch>,
}

#[derive(Debug)]
pub enum Action {
    Forward(Box<Forward>),
    Redirect(Redirect),
    Direct { status: u16, body: Option<Bytes> },
}

#[derive(Debug, Clone)]
pub struct WeightedTarget {
    pub cluster: String,
    pub weight: u32,
    pub headers: HeaderMutations,
    pub host_rewrite: Option<String>,
}

#[derive(Debug)]
pub enum Target {
    Cluster(String),
    Weighted {
        targets: Vec<WeightedTarget>,
        total: u64,
    },
}

#[derive(Debug, Clone)]
pub enum HashPolicy {
    Header(String),
    Cookie(String),
    SourceIp,
    Query(String),
}

#[derive(Debug)]
pub struct Mirror {
    pub cluster: String,
    /// Out of 1,000,000.
    pub per_million: u32,
    pub shadow_suffix: bool,
}

#[derive(Debug)]
pub struct Forward {
    pub target: Target,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<(Regex, String)>,
    pub host_rewrite: Option<String>,
    /// `None`: no timeout.
    pub timeout: Option<Duration>,
    pub retry: Option<RetryPolicy>,
    pub hash: Vec<HashPolicy>,
    pub mirrors: Vec<Mirror>,
    /// A `CONNECT` tunnel route.
    pub connect: bool,
}

#[derive(Debug, Clone)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix: Option<String>,
    pub status: u16,
    pub strip_query: bool,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub delay: Option<(Duration, u32)>,
    /// Status and chance out of 1,000,000.
    pub abort: Option<(u16, u32)>,
}

#[derive(Debug)]
pub struct Cors {
    pub origins: Vec<StringMatch>,
    pub methods: String,
    pub headers: String,
    pub expose: String,
    pub max_age: String,
    pub credentials: bool,
    pub forward_unmatched_preflights: bool,
}

/// The chance a FractionalPercent gives, out of 1,000,000.
pub fn per_million(p: &FractionalPercent) -> u32 {
    let scale = match fractional_percent::DenominatorType::try_from(p.denominator) {
        Ok(fractional_percent::DenominatorType::Hundred) => 10_000,
        Ok(fractional_percent::DenominatorType::TenThousand) => 100,
        _ => 1,
    };
    p.numerator.saturating_mul(scale).min(1_000_000)
}

fn runtime_percent(p: Option<&RuntimeFractionalPercent>) -> u32 {
    p.and_then(|r| r.default_value.as_ref())
        .map_or(1_000_000, per_million)
}

/// Converts an Envoy string matcher.
pub fn string_match(m: &StringMatcher, route: &str) -> Result<StringMatch, RouteError> {
    let ic = m.ignore_case;
    let lower = |s: &str| {
        if ic {
            s.to_ascii_lowercase()
        } else {
            s.to_owned()
        }
    };
    let kind = match &m.match_pattern {
        Some(string_matcher::MatchPattern::Exact(s)) => StrMatch::Exact(lower(s)),
        Some(string_matcher::MatchPattern::Prefix(s)) => StrMatch::Prefix(lower(s)),
        Some(string_matcher::MatchPattern::Suffix(s)) => StrMatch::Suffix(lower(s)),
        Some(string_matcher::MatchPattern::Contains(s)) => StrMatch::Contains(lower(s)),
        Some(string_matcher::MatchPattern::SafeRegex(r)) => {
            StrMatch::Regex(full_regex(&r.regex, ic, route)?)
        }
        Some(string_matcher::MatchPattern::Custom(_)) => {
            return Err(err(route, "custom string matchers are not supported"));
        }
        None => StrMatch::Exact(String::new()),
    };
    Ok(StringMatch {
        kind,
        ignore_case: ic,
    })
}

/// A regex that must match the whole input, as RE2 full matches in Envoy.
pub fn full_regex(re: &str, ignore_case: bool, route: &str) -> Result<Regex, RouteError> {
    let flags = if ignore_case { "(?i)" } else { "" };
    Regex::new(&format!("{flags}^(?:{re})$"))
        .map_err(|e| err(route, format!("bad regex {re:?}: {e}")))
}

// `append` is deprecated but still honoured when set, as Envoy does.
#[allow(deprecated)]
fn header_adds(list: &[HeaderValueOption], route: &str) -> Result<Vec<HeaderAdd>, RouteError> {
    let mut out = Vec::new();
    for h in list {
        let Some(hv) = &h.header else { continue };
        let name = hyper::header::HeaderName::from_bytes(hv.key.as_bytes())
            .map_err(|_| err(route, format!("bad header name {:?}", hv.key)))?;
        let raw = if hv.raw_value.is_empty() {
            hv.value.as_bytes()
        } else {
            hv.raw_value.as_slice()
        };
        let value = hyper::header::HeaderValue::from_bytes(raw)
            .map_err(|_| err(route, format!("bad value for header {:?}", hv.key)))?;
        let append = match h.append.as_ref() {
            Some(b) => b.value,
            None => matches!(
                header_value_option::HeaderAppendAction::try_from(h.append_action),
                Ok(header_value_option::HeaderAppendAction::AppendIfExistsOrAdd) | Err(_)
            ),
        };
        out.push(HeaderAdd {
            name,
            value,
            append,
        });
    }
    Ok(out)
}

fn lower_all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.to_ascii_lowercase()).collect()
}

fn mutations(
    req_add: &[HeaderValueOption],
    req_rm: &[String],
    resp_add: &[HeaderValueOption],
    resp_rm: &[String],
    route: &str,
) -> Result<HeaderMutations, RouteError> {
    Ok(HeaderMutations {
        request_add: header_adds(req_add, route)?,
        request_remove: lower_all(req_rm),
        response_add: header_adds(resp_add, route)?,
        response_remove: lower_all(resp_rm),
    })
}

impl TryFrom<&pb::RouteConfiguration> for RouteTable {
    type Error = RouteError;

    fn try_from(rc: &pb::RouteConfiguration) -> Result<Self, RouteError> {
        if rc.vhds.is_some() {
            return Err(err(&rc.name, "VHDS is not supported"));
        }
        if !rc.cluster_specifier_plugins.is_empty() {
            return Err(err(&rc.name, "cluster specifier plugins are not supported"));
        }
        if !rc.vhost_header.is_empty() {
            return Err(err(&rc.name, "vhost_header is not supported"));
        }
        let mut vhosts = Vec::new();
        for vh in &rc.virtual_hosts {
            vhosts.push(virtual_host(vh)?);
        }
        Ok(RouteTable {
            name: rc.name.clone(),
            vhosts,
            ignore_port: rc.ignore_port_in_host_matching,
            headers: mutations(
                &rc.request_headers_to_add,
                &rc.request_headers_to_remove,
                &rc.response_headers_to_add,
                &rc.response_headers_to_remove,
                &rc.name,
            )?,
        })
    }
}

#[allow(deprecated)] // reads the deprecated vhost-level `cors` to refuse it
fn virtual_host(vh: &pb::VirtualHost) -> Result<VirtualHost, RouteError> {
    let n = &vh.name;
    if vh.matcher.is_some() {
        return Err(err(n, "virtual host matchers are not supported"));
    }
    if vh.require_tls != 0 {
        return Err(err(n, "require_tls is not supported"));
    }
    if vh.retry_policy.is_some() || vh.cors.is_some() || !vh.request_mirror_policies.is_empty() {
        return Err(err(
            n,
            "virtual-host retry, CORS and mirror policies are not supported",
        ));
    }
    let mut routes = Vec::new();
    for r in &vh.routes {
        routes.push(route(r)?);
    }
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains: vh.domains.iter().map(|d| Domain::parse(d)).collect(),
        routes,
        headers: mutations(
            &vh.request_headers_to_add,
            &vh.request_headers_to_remove,
            &vh.response_headers_to_add,
            &vh.response_headers_to_remove,
            n,
        )?,
        include_attempt_count: vh.include_request_attempt_count,
    })
}

fn route(r: &pb::Route) -> Result<Route, RouteError> {
    let n = &r.name;
    let m = r
        .r#match
        .as_ref()
        .ok_or_else(|| err(n, "route without a match"))?;
    let matcher = route_matcher(m, n)?;
    let action = match &r.action {
        Some(pb::route::Action::Route(a)) => Action::Forward(Box::new(forward(a, n)?)),
        Some(pb::route::Action::Redirect(rd)) => Action::Redirect(redirect(rd, n)?),
        Some(pb::route::Action::DirectResponse(d)) => Action::Direct {
            status: u16::try_from(d.status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| err(n, format!("bad direct response status {}", d.status)))?,
            body: match d.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                None => None,
                Some(
                    envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineString(
                        s,
                    ),
                ) => Some(Bytes::from(s.clone())),
                Some(
                    envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineBytes(
                        b,
                    ),
                ) => Some(Bytes::from(b.clone())),
                Some(_) => {
                    return Err(err(
                        n,
                        "direct response bodies from files or env are not supported",
                    ));
                }
            },
        },
        Some(pb::route::Action::FilterAction(_))
        | Some(pb::route::Action::NonForwardingAction(_)) => {
            return Err(err(
                n,
                "filter and non-forwarding actions are not supported",
            ));
        }
        None => return Err(err(n, "route without an action")),
    };
    let fault = match r.typed_per_filter_config.get(FAULT_FILTER) {
        Some(any) => fault(any, n)?,
        None => None,
    };
    let cors = match r.typed_per_filter_config.get(CORS_FILTER) {
        Some(any) => Some(cors(any, n)?),
        None => None,
    };
    Ok(Route {
        name: r.name.clone(),
        matcher,
        action,
        headers: mutations(
            &r.request_headers_to_add,
            &r.request_headers_to_remove,
            &r.response_headers_to_add,
            &r.response_headers_to_remove,
            n,
        )?,
        fault,
        cors,
    })
}

#[allow(deprecated)] // the legacy header match forms are still honoured
fn route_matcher(m: &pb::RouteMatch, n: &str) -> Result<RouteMatcher, RouteError> {
    if m.grpc.is_some()
        || m.tls_context.is_some()
        || !m.dynamic_metadata.is_empty()
        || !m.filter_state.is_empty()
        || !m.cookies.is_empty()
        || m.runtime_fraction.is_some()
    {
        return Err(err(
            n,
            "route matches on gRPC, TLS context, metadata, filter state, cookies or runtime are not supported",
        ));
    }
    let case_sensitive = m.case_sensitive.as_ref().is_none_or(|b| b.value);
    let fold = |s: &str| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_ascii_lowercase()
        }
    };
    let path = match &m.path_specifier {
        Some(pb::route_match::PathSpecifier::Prefix(p)) => PathMatch::Prefix(fold(p)),
        Some(pb::route_match::PathSpecifier::Path(p)) => PathMatch::Exact(fold(p)),
        Some(pb::route_match::PathSpecifier::SafeRegex(r)) => {
            PathMatch::Regex(full_regex(&r.regex, !case_sensitive, n)?)
        }
        Some(pb::route_match::PathSpecifier::PathSeparatedPrefix(p)) => {
            PathMatch::SeparatedPrefix(fold(p))
        }
        Some(pb::route_match::PathSpecifier::ConnectMatcher(_)) => PathMatch::Connect,
        Some(pb::route_match::PathSpecifier::PathMatchPolicy(_)) => {
            return Err(err(n, "path match policies are not supported"));
        }
        None => return Err(err(n, "route match without a path specifier")),
    };
    let mut headers = Vec::new();
    for h in &m.headers {
        use pb::header_matcher::HeaderMatchSpecifier as S;
        let sm = |kind| StringMatch {
            kind,
            ignore_case: false,
        };
        let spec = match &h.header_match_specifier {
            Some(S::StringMatch(s)) => HeaderSpec::Str(string_match(s, n)?),
            Some(S::PresentMatch(b)) => HeaderSpec::Present(*b),
            Some(S::ExactMatch(s)) => HeaderSpec::Str(sm(StrMatch::Exact(s.clone()))),
            Some(S::PrefixMatch(s)) => HeaderSpec::Str(sm(StrMatch::Prefix(s.clone()))),
            Some(S::SuffixMatch(s)) => HeaderSpec::Str(sm(StrMatch::Suffix(s.clone()))),
            Some(S::ContainsMatch(s)) => HeaderSpec::Str(sm(StrMatch::Contains(s.clone()))),
            Some(S::SafeRegexMatch(r)) => {
                HeaderSpec::Str(sm(StrMatch::Regex(full_regex(&r.regex, false, n)?)))
            }
            Some(S::RangeMatch(_)) => {
                return Err(err(n, "header range matches are not supported"));
            }
            // No specifier: the header must be present (Envoy's legacy empty exact match).
            None => HeaderSpec::Present(true),
        };
        headers.push(HeaderMatch {
            name: h.name.to_ascii_lowercase(),
            spec,
            invert: h.invert_match,
            missing_as_empty: h.treat_missing_header_as_empty,
        });
    }
    let mut query = Vec::new();
    for q in &m.query_parameters {
        use pb::query_parameter_matcher::QueryParameterMatchSpecifier as Q;
        let spec = match &q.query_parameter_match_specifier {
            Some(Q::StringMatch(s)) => Some(string_match(s, n)?),
            Some(Q::PresentMatch(_)) | None => None,
        };
        query.push(QueryMatch {
            name: q.name.clone(),
            spec,
        });
    }
    Ok(RouteMatcher {
        path,
        case_sensitive,
        headers,
        query,
    })
}

fn duration(d: &envoy_types::pb::google::protobuf::Duration) -> Duration {
    let secs = u64::try_from(d.seconds).unwrap_or(0);
    let nanos = u32::try_from(d.nanos).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// A proto duration where zero means "none".
pub fn optional_duration(
    d: Option<&envoy_types::pb::google::protobuf::Duration>,
) -> Option<Duration> {
    d.map(duration).filter(|d| !d.is_zero())
}

fn forward(a: &pb::RouteAction, n: &str) -> Result<Forward, RouteError> {
    use pb::route_action::ClusterSpecifier as C;
    let target = match &a.cluster_specifier {
        Some(C::Cluster(c)) => Target::Cluster(c.clone()),
        Some(C::WeightedClusters(w)) => {
            let mut targets = Vec::new();
            for cw in &w.clusters {
                if !cw.cluster_header.is_empty() {
                    return Err(err(n, "weighted cluster headers are not supported"));
                }
                let host_rewrite = cw.host_rewrite_specifier.as_ref().map(
                    |pb::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(h)| {
                        h.clone()
                    },
                );
                targets.push(WeightedTarget {
                    cluster: cw.name.clone(),
                    weight: cw.weight.as_ref().map_or(0, |w| w.value),
                    headers: mutations(
                        &cw.request_headers_to_add,
                        &cw.request_headers_to_remove,
                        &cw.response_headers_to_add,
                        &cw.response_headers_to_remove,
                        n,
                    )?,
                    host_rewrite,
                });
            }
            let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
            if total == 0 {
                return Err(err(n, "weighted clusters with a total weight of 0"));
            }
            Target::Weighted { targets, total }
        }
        Some(_) => {
            return Err(err(
                n,
                "cluster headers and cluster specifier plugins are not supported",
            ));
        }
        None => return Err(err(n, "route action without a cluster")),
    };
    if a.path_rewrite_policy.is_some() || !a.path_rewrite.is_empty() {
        return Err(err(n, "path rewrite policies are not supported"));
    }
    let host_rewrite = match &a.host_rewrite_specifier {
        Some(pb::route_action::HostRewriteSpecifier::HostRewriteLiteral(h)) => Some(h.clone()),
        Some(pb::route_action::HostRewriteSpecifier::AutoHostRewrite(b)) if !b.value => None,
        Some(_) => {
            return Err(err(
                n,
                "automatic and header- or path-based host rewrites are not supported",
            ));
        }
        None => None,
    };
    let regex_rewrite = match &a.regex_rewrite {
        Some(rw) => {
            let pat = rw
                .pattern
                .as_ref()
                .ok_or_else(|| err(n, "regex rewrite without a pattern"))?;
            let re = Regex::new(&pat.regex)
                .map_err(|e| err(n, format!("bad regex {:?}: {e}", pat.regex)))?;
            Some((re, regex_substitution(&rw.substitution)))
        }
        None => None,
    };
    let mut hash = Vec::new();
    for h in &a.hash_policy {
        use pb::route_action::hash_policy::PolicySpecifier as P;
        match &h.policy_specifier {
            Some(P::Header(hd)) => {
                hash.push(HashPolicy::Header(hd.header_name.to_ascii_lowercase()))
            }
            Some(P::Cookie(c)) => hash.push(HashPolicy::Cookie(c.name.clone())),
            Some(P::ConnectionProperties(cp)) if cp.source_ip => hash.push(HashPolicy::SourceIp),
            Some(P::QueryParameter(q)) => hash.push(HashPolicy::Query(q.name.clone())),
            _ => {}
        }
    }
    let mut mirrors = Vec::new();
    for m in &a.request_mirror_policies {
        if !m.cluster_header.is_empty() || m.cluster.is_empty() {
            return Err(err(n, "mirror policies need a cluster name"));
        }
        mirrors.push(Mirror {
            cluster: m.cluster.clone(),
            per_million: runtime_percent(m.runtime_fraction.as_ref()),
            shadow_suffix: !m.disable_shadow_host_suffix_append,
        });
    }
    let connect = a.upgrade_configs.iter().any(|u| {
        u.upgrade_type.eq_ignore_ascii_case("CONNECT") && u.enabled.as_ref().is_none_or(|b| b.value)
    });
    Ok(Forward {
        target,
        prefix_rewrite: (!a.prefix_rewrite.is_empty()).then(|| a.prefix_rewrite.clone()),
        regex_rewrite,
        host_rewrite,
        // Envoy's default route timeout is 15 s; an explicit 0 disables it.
        timeout: match &a.timeout {
            Some(d) => optional_duration(Some(d)),
            None => Some(Duration::from_secs(15)),
        },
        retry: a
            .retry_policy
            .as_ref()
            .map(|r| RetryPolicy::try_from(r).map_err(|e| err(n, e)))
            .transpose()?,
        hash,
        mirrors,
        connect,
    })
}

/// RE2 substitutions write `\1`; the regex crate writes `${1}`.
fn regex_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek().copied() {
                Some(d) if d.is_ascii_digit() => {
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                Some('\\') => {
                    chars.next();
                    out.push('\\');
                }
                _ => out.push('\\'),
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

fn redirect(r: &pb::RedirectAction, n: &str) -> Result<Redirect, RouteError> {
    use pb::redirect_action::{
        PathRewriteSpecifier as P, RedirectResponseCode as R, SchemeRewriteSpecifier as S,
    };
    let scheme = match &r.scheme_rewrite_specifier {
        Some(S::HttpsRedirect(true)) => Some("https".to_owned()),
        Some(S::SchemeRedirect(s)) if !s.is_empty() => Some(s.to_ascii_lowercase()),
        _ => None,
    };
    let (path, prefix) = match &r.path_rewrite_specifier {
        Some(P::PathRedirect(p)) => (Some(p.clone()), None),
        Some(P::PrefixRewrite(p)) => (None, Some(p.clone())),
        Some(P::RegexRewrite(_) | P::PathRewrite(_)) => {
            return Err(err(
                n,
                "regex and policy rewrites in redirects are not supported",
            ));
        }
        None => (None, None),
    };
    let status = match R::try_from(r.response_code) {
        Ok(R::MovedPermanently) => 301,
        Ok(R::Found) => 302,
        Ok(R::SeeOther) => 303,
        Ok(R::TemporaryRedirect) => 307,
        Ok(R::PermanentRedirect) => 308,
        Err(_) => return Err(err(n, format!("bad redirect code {}", r.response_code))),
    };
    Ok(Redirect {
        scheme,
        host: (!r.host_redirect.is_empty()).then(|| r.host_redirect.clone()),
        port: (r.port_redirect != 0)
            .then(|| u16::try_from(r.port_redirect))
            .transpose()
            .map_err(|_| err(n, "bad redirect port"))?,
        path,
        prefix,
        status,
        strip_query: r.strip_query,
    })
}

fn fault(any: &Any, n: &str) -> Result<Option<Fault>, RouteError> {
    let f = HttpFault::decode(any.value.as_slice())
        .map_err(|e| err(n, format!("bad fault config: {e}")))?;
    if !f.headers.is_empty() || !f.downstream_nodes.is_empty() || !f.upstream_cluster.is_empty() {
        return Err(err(
            n,
            "fault filters restricted to headers, nodes or clusters are not supported",
        ));
    }
    let delay = match &f.delay {
        Some(d) => match &d.fault_delay_secifier {
            Some(fault_delay::FaultDelaySecifier::FixedDelay(t)) => {
                Some((duration(t), d.percentage.as_ref().map_or(0, per_million)))
            }
            Some(_) => return Err(err(n, "header-controlled fault delays are not supported")),
            None => None,
        },
        None => None,
    };
    let abort = match &f.abort {
        Some(a) => match &a.error_type {
            Some(fault_abort::ErrorType::HttpStatus(s)) => Some((
                u16::try_from(*s)
                    .ok()
                    .filter(|s| (200..600).contains(s))
                    .ok_or_else(|| err(n, format!("bad fault abort status {s}")))?,
                a.percentage.as_ref().map_or(0, per_million),
            )),
            Some(_) => {
                return Err(err(
                    n,
                    "gRPC and header-controlled fault aborts are not supported",
                ));
            }
            None => None,
        },
        None => None,
    };
    Ok((delay.is_some() || abort.is_some()).then_some(Fault { delay, abort }))
}

fn cors(any: &Any, n: &str) -> Result<Cors, RouteError> {
    let c = PbCors::decode(any.value.as_slice())
        .map_err(|e| err(n, format!("bad CORS config: {e}")))?;
    let mut origins = Vec::new();
    for o in &c.allow_origin_string_match {
        origins.push(string_match(o, n)?);
    }
    Ok(Cors {
        origins,
        methods: c.allow_methods.clone(),
        headers: c.allow_headers.clone(),
        expose: c.expose_headers.clone(),
        max_age: c.max_age.clone(),
        credentials: c.allow_credentials.as_ref().is_some_and(|b| b.value),
        forward_unmatched_preflights: c
            .forward_not_matching_preflights
            .as_ref()
            .is_none_or(|b| b.value),
    })
}

// ---------------------------------------------------------------------------------------
// Matching

/// What a request offers to route matching.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// `host[:port]`, as the request named it.
    pub authority: &'a str,
    /// The path without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub scheme: &'a str,
    pub headers: &'a hyper::HeaderMap,
}

impl RouteTable {
    /// The virtual host for an authority: exact domains first, then the longest suffix
    /// wildcard, then the longest prefix wildcard, then `*` (Envoy's order).
    pub fn vhost(&self, authority: &str) -> Option<&VirtualHost> {
        let host = authority.to_ascii_lowercase();
        let host = if self.ignore_port {
            strip_port(&host).to_owned()
        } else {
            host
        };
        let mut best_suffix: Option<(usize, &VirtualHost)> = None;
        let mut best_prefix: Option<(usize, &VirtualHost)> = None;
        let mut any = None;
        for vh in &self.vhosts {
            for d in &vh.domains {
                match d {
                    Domain::Exact(e) => {
                        if *e == host {
                            return Some(vh);
                        }
                    }
                    Domain::Suffix(s) => {
                        if host.len() > s.len()
                            && host.ends_with(s.as_str())
                            && best_suffix.is_none_or(|(l, _)| s.len() > l)
                        {
                            best_suffix = Some((s.len(), vh));
                        }
                    }
                    Domain::Prefix(p) => {
                        if host.len() > p.len()
                            && host.starts_with(p.as_str())
                            && best_prefix.is_none_or(|(l, _)| p.len() > l)
                        {
                            best_prefix = Some((p.len(), vh));
                        }
                    }
                    Domain::Any => {
                        if any.is_none() {
                            any = Some(vh);
                        }
                    }
                }
            }
        }
        best_suffix.or(best_prefix).map(|(_, vh)| vh).or(any)
    }
}

/// `host:port` → `host` (IPv6 literals in brackets keep their colons).
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(i) => &authority[..=i],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

impl VirtualHost {
    /// The first route that matches.
    pub fn route(&self, req: &RequestView<'_>) -> Option<&Route> {
        self.routes.iter().find(|r| r.matcher.matches(req))
    }
}

impl RouteMatcher {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let is_connect = req.method.eq_ignore_ascii_case("CONNECT");
        let path_ok = match &self.path {
            PathMatch::Connect => is_connect,
            _ if is_connect => false,
            PathMatch::Regex(r) => r.is_match(req.path),
            other => {
                let folded;
                let path = if self.case_sensitive {
                    req.path
                } else {
                    folded = req.path.to_ascii_lowercase();
                    folded.as_str()
                };
                match other {
                    PathMatch::Prefix(p) => path.starts_with(p.as_str()),
                    PathMatch::Exact(p) => path == p,
                    PathMatch::SeparatedPrefix(p) => {
                        path == p
                            || (path.starts_with(p.as_str())
                                && path.as_bytes().get(p.len()) == Some(&b'/'))
                    }
                    _ => false,
                }
            }
        };
        path_ok
            && self.headers.iter().all(|h| h.matches(req))
            && self.query.iter().all(|q| q.matches(req.query))
    }
}

impl HeaderMatch {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        let joined;
        let value: Option<&str> = match self.name.as_str() {
            ":method" => Some(req.method),
            ":authority" | "host" => Some(req.authority),
            ":path" => Some(req.path),
            ":scheme" => Some(req.scheme),
            name => {
                let mut vals = req.headers.get_all(name).iter();
                match (vals.next(), vals.next()) {
                    (None, _) => None,
                    (Some(v), None) => v.to_str().ok(),
                    (Some(v), Some(w)) => {
                        // Several values match as one, joined by commas, as Envoy does.
                        let mut s = String::from_utf8_lossy(v.as_bytes()).into_owned();
                        s.push(',');
                        s.push_str(&String::from_utf8_lossy(w.as_bytes()));
                        for more in vals {
                            s.push(',');
                            s.push_str(&String::from_utf8_lossy(more.as_bytes()));
                        }
                        joined = s;
                        Some(joined.as_str())
                    }
                }
            }
        };
        let value = match value {
            None if self.missing_as_empty => Some(""),
            v => v,
        };
        let result = match (&self.spec, value) {
            (HeaderSpec::Present(want), v) => v.is_some() == *want,
            (HeaderSpec::Str(_), None) => return false,
            (HeaderSpec::Str(m), Some(v)) => m.matches(v),
        };
        result != self.invert
    }
}

impl QueryMatch {
    fn matches(&self, query: Option<&str>) -> bool {
        let Some(q) = query else { return false };
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == self.name {
                return match &self.spec {
                    None => true,
                    Some(m) => m.matches(&percent_decode(v)),
                };
            }
        }
        false
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Forward {
    /// The path (with query) after the route's rewrites; `matched_prefix` is the route's
    /// prefix when it matched by prefix.
    pub fn rewrite_path(&self, path: &str, query: Option<&str>, matched: &PathMatch) -> String {
        let new_path = if let Some((re, sub)) = &self.regex_rewrite {
            re.replace_all(path, sub.as_str()).into_owned()
        } else if let Some(pre) = &self.prefix_rewrite {
            match matched {
                PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => {
                    let cut = p.len().min(path.len());
                    format!("{pre}{}", &path[cut..])
                }
                PathMatch::Exact(_) | PathMatch::Regex(_) => pre.clone(),
                PathMatch::Connect => path.to_owned(),
            }
        } else {
            path.to_owned()
        };
        match query {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        }
    }
}

impl Redirect {
    /// The `location` for a request: scheme, host, port and path replaced as configured.
    pub fn location(
        &self,
        scheme: &str,
        authority: &str,
        path: &str,
        query: Option<&str>,
        matched: &PathMatch,
    ) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(scheme);
        let mut host = match &self.host {
            Some(h) => h.clone(),
            None => authority.to_owned(),
        };
        if let Some(p) = self.port {
            host = format!("{}:{p}", strip_port(&host));
        } else if self.scheme.is_some() {
            // A scheme change drops the original port when it is the old default.
            let h = strip_port(&host).to_owned();
            if host.ends_with(":80") || host.ends_with(":443") {
                host = h;
            }
        }
        let query = if self.strip_query { None } else { query };
        let (new_path, q) = if let Some(p) = &self.path {
            match p.split_once('?') {
                Some((pp, pq)) => (pp.to_owned(), Some(pq.to_owned())),
                None => (p.clone(), query.map(str::to_owned)),
            }
        } else if let Some(pre) = &self.prefix {
            let rest = match matched {
                PathMatch::Prefix(m) | PathMatch::SeparatedPrefix(m) => {
                    &path[m.len().min(path.len())..]
                }
                _ => "",
            };
            (format!("{pre}{rest}"), query.map(str::to_owned))
        } else {
            (path.to_owned(), query.map(str::to_owned))
        };
        match q {
            Some(q) if !q.is_empty() => format!("{scheme}://{host}{new_path}?{q}"),
            _ => format!("{scheme}://{host}{new_path}"),
        }
    }
}

/// Applies one level of header mutations to request headers.
pub fn apply_request(m: &HeaderMutations, headers: &mut hyper::HeaderMap) {
    apply(&m.request_add, &m.request_remove, headers);
}

/// Applies one level of header mutations to response headers.
pub fn apply_response(m: &HeaderMutations, headers: &mut hyper::HeaderMap) {
    apply(&m.response_add, &m.response_remove, headers);
}

fn apply(add: &[HeaderAdd], remove: &[String], headers: &mut hyper::HeaderMap) {
    for r in remove {
        headers.remove(r.as_str());
    }
    for a in add {
        if a.append {
            headers.append(a.name.clone(), a.value.clone());
        } else {
            headers.insert(a.name.clone(), a.value.clone());
        }
    }
}

/// Every cluster a table names, for checks and stats.
pub fn clusters_named(t: &RouteTable) -> HashMap<&str, ()> {
    let mut out = HashMap::new();
    for vh in &t.vhosts {
        for r in &vh.routes {
            if let Action::Forward(f) = &r.action {
                match &f.target {
                    Target::Cluster(c) => {
                        out.insert(c.as_str(), ());
                    }
                    Target::Weighted { targets, .. } => {
                        for t in targets {
                            out.insert(t.cluster.as_str(), ());
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
    use envoy_types::pb::google::protobuf::BoolValue;

    fn prefix(p: &str) -> pb::RouteMatch {
        pb::RouteMatch {
            path_specifier: Some(pb::route_match::PathSpecifier::Prefix(p.into())),
            ..Default::default()
        }
    }

    fn to(cluster: &str, m: pb::RouteMatch) -> pb::Route {
        pb::Route {
            name: cluster.into(),
            r#match: Some(m),
            action: Some(pb::route::Action::Route(pb::RouteAction {
                cluster_specifier: Some(pb::route_action::ClusterSpecifier::Cluster(
                    cluster.into(),
                )),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn table(routes: Vec<pb::Route>, domains: &[&str]) -> RouteTable {
        let rc = pb::RouteConfiguration {
            name: "t".into(),
            virtual_hosts: vec![pb::VirtualHost {
                name: "vh".into(),
                domains: domains.iter().map(|d| (*d).to_owned()).collect(),
                routes,
                ..Default::default()
            }],
            ..Default::default()
        };
        RouteTable::try_from(&rc).unwrap()
    }

    fn pick<'a>(
        t: &'a RouteTable,
        method: &str,
        path: &str,
        headers: &hyper::HeaderMap,
    ) -> Option<&'a str> {
        let (p, q) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let req = RequestView {
            method,
            authority: "reviews.shop:9080",
            path: p,
            query: q,
            scheme: "http",
            headers,
        };
        t.vhost(req.authority)?.route(&req).map(|r| r.name.as_str())
    }

    #[test]
    fn paths_in_order() {
        let t = table(
            vec![
                to(
                    "exact",
                    pb::RouteMatch {
                        path_specifier: Some(pb::route_match::PathSpecifier::Path("/exact".into())),
                        ..Default::default()
                    },
                ),
                to(
                    "regex",
                    pb::RouteMatch {
                        path_specifier: Some(pb::route_match::PathSpecifier::SafeRegex(
                            RegexMatcher {
                                regex: "/r/[0-9]+".into(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    },
                ),
                to("api", prefix("/api")),
                to("rest", prefix("/")),
            ],
            &["reviews.shop:9080"],
        );
        let h = hyper::HeaderMap::new();
        assert_eq!(pick(&t, "GET", "/exact", &h), Some("exact"));
        assert_eq!(pick(&t, "GET", "/exact/more", &h), Some("rest"));
        assert_eq!(pick(&t, "GET", "/r/42", &h), Some("regex"));
        assert_eq!(pick(&t, "GET", "/r/42x", &h), Some("rest"));
        assert_eq!(pick(&t, "GET", "/apiary?x=1", &h), Some("api"));
        assert_eq!(pick(&t, "CONNECT", "/", &h), None);
    }

    #[test]
    fn headers_query_and_method() {
        let hm = |name: &str, exact: &str| pb::HeaderMatcher {
            name: name.into(),
            header_match_specifier: Some(pb::header_matcher::HeaderMatchSpecifier::StringMatch(
                StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(exact.into())),
                    ignore_case: false,
                },
            )),
            ..Default::default()
        };
        let mut with_header = prefix("/");
        with_header.headers.push(hm("end-user", "jason"));
        let mut post = prefix("/");
        post.headers.push(hm(":method", "POST"));
        let mut q = prefix("/");
        q.query_parameters.push(pb::QueryParameterMatcher {
            name: "version".into(),
            query_parameter_match_specifier: Some(
                pb::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                    StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::Exact("v2".into())),
                        ignore_case: false,
                    },
                ),
            ),
        });
        let mut absent = prefix("/");
        absent.headers.push(pb::HeaderMatcher {
            name: "x-skip".into(),
            header_match_specifier: Some(pb::header_matcher::HeaderMatchSpecifier::PresentMatch(
                true,
            )),
            invert_match: true,
            ..Default::default()
        });
        let t = table(
            vec![
                to("jason", with_header),
                to("post", post),
                to("v2", q),
                to("noskip", absent),
                to("rest", prefix("/")),
            ],
            &["*"],
        );
        let mut h = hyper::HeaderMap::new();
        assert_eq!(pick(&t, "GET", "/", &h), Some("noskip"));
        assert_eq!(pick(&t, "POST", "/", &h), Some("post"));
        assert_eq!(pick(&t, "GET", "/r?version=v2", &h), Some("v2"));
        assert_eq!(pick(&t, "GET", "/r?version=v3", &h), Some("noskip"));
        h.insert("x-skip", "1".parse().unwrap());
        assert_eq!(pick(&t, "GET", "/", &h), Some("rest"));
        h.insert("end-user", "jason".parse().unwrap());
        assert_eq!(pick(&t, "GET", "/", &h), Some("jason"));
    }

    #[test]
    fn case_insensitive_paths() {
        let mut m = prefix("/API");
        m.case_sensitive = Some(BoolValue { value: false });
        let t = table(vec![to("api", m)], &["*"]);
        assert_eq!(
            pick(&t, "GET", "/api/x", &hyper::HeaderMap::new()),
            Some("api")
        );
    }

    #[test]
    fn domains_by_envoy_precedence() {
        let mk = |name: &str, d: &str| pb::VirtualHost {
            name: name.into(),
            domains: vec![d.into()],
            routes: vec![to(name, prefix("/"))],
            ..Default::default()
        };
        let rc = pb::RouteConfiguration {
            name: "t".into(),
            virtual_hosts: vec![
                mk("any", "*"),
                mk("prefix", "shop.*"),
                mk("suffix", "*.example.com"),
                mk("longer", "*.shop.example.com"),
                mk("exact", "a.shop.example.com"),
            ],
            ..Default::default()
        };
        let t = RouteTable::try_from(&rc).unwrap();
        assert_eq!(t.vhost("A.shop.example.com").unwrap().name, "exact");
        assert_eq!(t.vhost("b.shop.example.com").unwrap().name, "longer");
        assert_eq!(t.vhost("x.example.com").unwrap().name, "suffix");
        assert_eq!(t.vhost("shop.local").unwrap().name, "prefix");
        assert_eq!(t.vhost("other").unwrap().name, "any");
        let mut rc2 = rc.clone();
        rc2.virtual_hosts.truncate(0);
        rc2.virtual_hosts.push(mk("gw", "shop.example.com"));
        rc2.ignore_port_in_host_matching = true;
        let t2 = RouteTable::try_from(&rc2).unwrap();
        assert_eq!(t2.vhost("shop.example.com:8080").unwrap().name, "gw");
        assert!(t2.vhost("other.example.com").is_none());
    }

    #[test]
    fn rewrites_and_redirects() {
        let f = Forward {
            target: Target::Cluster("c".into()),
            prefix_rewrite: Some("/v2/".into()),
            regex_rewrite: None,
            host_rewrite: None,
            timeout: None,
            retry: None,
            hash: vec![],
            mirrors: vec![],
            connect: false,
        };
        let m = PathMatch::Prefix("/api/v1/".into());
        assert_eq!(
            f.rewrite_path("/api/v1/items", Some("page=2"), &m),
            "/v2/items?page=2"
        );
        let rf = Forward {
            regex_rewrite: Some((
                Regex::new("^/service/([^/]+)(/.*)$").unwrap(),
                regex_substitution("\\2/instance/\\1"),
            )),
            prefix_rewrite: None,
            ..f
        };
        assert_eq!(
            rf.rewrite_path("/service/foo/v1/api", None, &m),
            "/v1/api/instance/foo"
        );

        let r = Redirect {
            scheme: None,
            host: Some("details.shop:9080".into()),
            port: None,
            path: Some("/details".into()),
            prefix: None,
            status: 301,
            strip_query: false,
        };
        assert_eq!(
            r.location("http", "reviews.shop:9080", "/moved/here", Some("a=1"), &m),
            "http://details.shop:9080/details?a=1"
        );
        let r2 = Redirect {
            host: None,
            port: Some(8443),
            scheme: Some("https".into()),
            path: None,
            ..r
        };
        assert_eq!(
            r2.location("http", "reviews.shop:9080", "/x", None, &m),
            "https://reviews.shop:8443/x"
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let mut m = prefix("/");
        m.grpc = Some(Default::default());
        let rc = pb::RouteConfiguration {
            name: "t".into(),
            virtual_hosts: vec![pb::VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes: vec![to("c", m)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = RouteTable::try_from(&rc).unwrap_err();
        assert!(e.reason.contains("gRPC"), "{e}");
        assert_eq!(
            per_million(&FractionalPercent {
                numerator: 50,
                denominator: 0
            }),
            500_000
        );
        assert_eq!(
            per_million(&FractionalPercent {
                numerator: 500_000,
                denominator: 2
            }),
            500_000
        );
    }
}
