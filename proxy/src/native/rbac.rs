//! Role-based access control, as Envoy's `envoy.filters.http.rbac` and
//! `envoy.filters.network.rbac` enforce it: an [`RbacFilter`] is converted (TryFrom) from
//! the filter's config and evaluated per request (HTTP) or per connection (TCP).
//!
//! One filter holds the enforced `rules` and the `shadow_rules`. The enforced rules decide:
//! ALLOW lets through what some policy matches, DENY refuses what some policy matches, LOG
//! only logs a match. Shadow rules are evaluated and counted (`shadow_allowed` /
//! `shadow_denied`), never enforced. The counters show in `/stats` under Envoy's names
//! (`http.PREFIX.rbac.allowed`, `tcp.rbac.denied`, `...rbac.istio_dry_run_deny_.shadow_denied`);
//! they live with the listener's config generation, so a listener update restarts them. A policy matches when one of its permissions and one
//! of its principals match. A refused request gets Envoy's 403 `RBAC: access denied`
//! (flag `RBAC`); a refused connection is closed. Connections are checked when accepted
//! (Envoy checks on the first bytes; nothing a connection sends can change the decision
//! here), so a refused client never reaches the upstream, not even a server-first greeting.
//!
//! Evaluated: `any`, `and_rules`/`and_ids`, `or_rules`/`or_ids`, `not_rule`/`not_id`,
//! `header` (pseudo-headers `:method`, `:authority`, `:path`, `:scheme` included),
//! `url_path`, the `uri_template` path matcher, `destination_ip`, `destination_port`,
//! `requested_server_name` (the SNI of the TLS handshake; the empty name in plaintext), `direct_remote_ip`,
//! `source_ip`, `remote_ip` (the last `x-forwarded-for` address unless the HCM sets
//! `use_remote_address`, else the peer), `metadata`
//! / `sourced_metadata` on the dynamic metadata jwt_authn writes ([`Metadata`]), and
//! `authenticated` with its `principal_name` (Istio's `spiffe://` exact, prefix and suffix
//! forms are string matchers) against the peer certificate's URI SAN, which never matches
//! on a plaintext connection (as in Envoy).
//! Anything else (CEL conditions, matchers, filter-state, destination port ranges, other
//! metadata sources) is refused, so that the proxy NACKs the listener rather than widen or
//! narrow a policy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::rbac::v3::{
    MetadataSource, Permission, Policy, Principal, Rbac as RbacRules, permission, principal, rbac,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::path::r#match::uri_template::v3::UriTemplateMatchConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, ValueMatcher, list_matcher, metadata_matcher, path_matcher, value_matcher,
};
use prost::Message;
use regex::Regex;
use tracing::info;

use super::route::{
    HeaderMatch, HeaderSpec, RequestView, StrMatch, StringMatch, full_regex, string_match,
};

/// Envoy's body for a request RBAC refuses.
pub const DENIED_BODY: &str = "RBAC: access denied";

/// Why an RBAC config cannot be enforced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("RBAC policy {policy:?}: {reason}")]
pub struct RbacError {
    pub policy: String,
    pub reason: String,
}

fn err(policy: &str, reason: impl Into<String>) -> RbacError {
    RbacError {
        policy: policy.to_owned(),
        reason: reason.into(),
    }
}

/// Dynamic metadata of a request: filter name → a JSON object (jwt_authn writes
/// `{"payload": {claims}}` under `envoy.filters.http.jwt_authn`).
pub type Metadata = HashMap<String, serde_json::Value>;

/// What a request or connection looks like to RBAC.
pub struct Subject<'a> {
    /// The request, or `None` for a TCP connection.
    pub request: Option<&'a RequestView<'a>>,
    /// The downstream peer (the connection's remote address).
    pub peer: SocketAddr,
    /// The local address the connection came in on.
    pub local: SocketAddr,
    /// Whether `x-forwarded-for` names the client (an HCM without `use_remote_address`).
    pub trust_xff: bool,
    pub metadata: &'a Metadata,
    /// The peer certificate's identity (URI SAN), on an mTLS connection.
    pub principal: Option<String>,
    /// The server name the client's TLS handshake asked for (SNI); `None` in plaintext,
    /// which `requested_server_name` sees as the empty name, as Envoy does.
    pub sni: Option<String>,
}

impl Subject<'_> {
    /// The client address: the last `x-forwarded-for` entry when trusted and present (as
    /// Envoy with no trusted hops), else the peer.
    fn remote_ip(&self) -> IpAddr {
        self.request
            .filter(|_| self.trust_xff)
            .and_then(|r| r.headers.get("x-forwarded-for"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(self.peer.ip())
    }
}

/// An address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u32,
}

impl Cidr {
    fn from_pb(c: &CidrRange, policy: &str) -> Result<Cidr, RbacError> {
        let addr: IpAddr = c
            .address_prefix
            .parse()
            .map_err(|_| err(policy, format!("bad address {:?}", c.address_prefix)))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = c.prefix_len.as_ref().map_or(max, |l| l.value);
        if len > max {
            return Err(err(policy, format!("bad prefix length {len}")));
        }
        Ok(Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - self.len).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX.checked_shl(128 - self.len).unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// A value matcher on metadata (JSON).
#[derive(Debug)]
pub enum ValueMatch {
    Null,
    Double(f64),
    Str(StringMatch),
    Bool(bool),
    Present,
    /// A list with one element that matches.
    OneOf(Box<ValueMatch>),
}

impl ValueMatch {
    fn from_pb(v: &ValueMatcher, policy: &str) -> Result<ValueMatch, RbacError> {
        use value_matcher::MatchPattern as P;
        Ok(match &v.match_pattern {
            Some(P::NullMatch(_)) => ValueMatch::Null,
            Some(P::StringMatch(s)) => {
                ValueMatch::Str(string_match(s, policy).map_err(|e| err(policy, e.reason))?)
            }
            Some(P::BoolMatch(b)) => ValueMatch::Bool(*b),
            Some(P::PresentMatch(_)) => ValueMatch::Present,
            Some(P::DoubleMatch(d)) => match &d.match_pattern {
                Some(
                    envoy_types::pb::envoy::r#type::matcher::v3::double_matcher::MatchPattern::Exact(
                        x,
                    ),
                ) => ValueMatch::Double(*x),
                _ => return Err(err(policy, "double range matchers are not supported")),
            },
            Some(P::ListMatch(l)) => match &l.match_pattern {
                Some(list_matcher::MatchPattern::OneOf(inner)) => {
                    ValueMatch::OneOf(Box::new(ValueMatch::from_pb(inner, policy)?))
                }
                None => return Err(err(policy, "empty list matcher")),
            },
            Some(P::OrMatch(_)) => return Err(err(policy, "or value matchers are not supported")),
            None => return Err(err(policy, "empty value matcher")),
        })
    }

    fn matches(&self, v: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (self, v) {
            (ValueMatch::Null, J::Null) => true,
            (ValueMatch::Double(x), J::Number(n)) => n.as_f64() == Some(*x),
            (ValueMatch::Str(m), J::String(s)) => m.matches(s),
            (ValueMatch::Bool(b), J::Bool(x)) => b == x,
            (ValueMatch::Present, _) => true,
            (ValueMatch::OneOf(m), J::Array(items)) => items.iter().any(|i| m.matches(i)),
            _ => false,
        }
    }
}

/// A matcher on a request's dynamic metadata.
#[derive(Debug)]
pub struct MetaMatch {
    filter: String,
    path: Vec<String>,
    value: ValueMatch,
    invert: bool,
}

impl MetaMatch {
    fn from_pb(m: &MetadataMatcher, policy: &str) -> Result<MetaMatch, RbacError> {
        let mut path = Vec::new();
        for seg in &m.path {
            match &seg.segment {
                Some(metadata_matcher::path_segment::Segment::Key(k)) => path.push(k.clone()),
                None => return Err(err(policy, "empty metadata path segment")),
            }
        }
        let value = m
            .value
            .as_ref()
            .ok_or_else(|| err(policy, "metadata matcher without a value"))?;
        Ok(MetaMatch {
            filter: m.filter.clone(),
            path,
            value: ValueMatch::from_pb(value, policy)?,
            invert: m.invert,
        })
    }

    fn matches(&self, md: &Metadata) -> bool {
        let mut v = md.get(&self.filter);
        for k in &self.path {
            v = v.and_then(|x| x.get(k));
        }
        let hit = v.is_some_and(|v| self.value.matches(v));
        hit != self.invert
    }
}

/// A path template (`/a/*/b`, `/files/**`, `{name}` and `{name=**}` variables) as a
/// full regex, as Envoy's URI template matcher compiles it.
fn uri_template(t: &str, policy: &str) -> Result<Regex, RbacError> {
    const SEGMENT: &str = "[a-zA-Z0-9-._~%!$&'()+,;:@=]";
    if !t.starts_with('/') {
        return Err(err(
            policy,
            format!("path template {t:?} must start with /"),
        ));
    }
    let mut re = String::new();
    for (i, seg) in t.split('/').enumerate() {
        if i > 0 {
            re.push('/');
        }
        let op = match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(var) => var.split_once('=').map_or("*", |(_, op)| op),
            None => seg,
        };
        match op {
            "*" => re.push_str(&format!("{SEGMENT}+")),
            "**" => re.push_str("[a-zA-Z0-9-._~%!$&'()+,;:@=/]*"),
            lit if lit.contains(['*', '{', '}']) => {
                return Err(err(
                    policy,
                    format!("path template segment {seg:?} is not supported"),
                ));
            }
            lit => re.push_str(&regex::escape(lit)),
        }
    }
    full_regex(&re, false, policy).map_err(|e| err(policy, e.reason))
}

/// A header matcher on the request, or on no headers at all for a connection (as Envoy's
/// network RBAC evaluates headers: only a `present: false` matcher can match).
fn header_matches(h: &HeaderMatch, s: &Subject<'_>) -> bool {
    match s.request {
        Some(r) => h.matches(r),
        None => {
            let empty = hyper::HeaderMap::new();
            h.matches(&RequestView {
                method: "",
                authority: "",
                path: "",
                query: None,
                scheme: "",
                headers: &empty,
            })
        }
    }
}

/// A permission (what is accessed).
#[derive(Debug)]
pub enum Perm {
    Any,
    And(Vec<Perm>),
    Or(Vec<Perm>),
    Not(Box<Perm>),
    Header(HeaderMatch),
    Path(StringMatch),
    Template(Regex),
    DestIp(Cidr),
    DestPort(u32),
    Sni(StringMatch),
    Meta(MetaMatch),
}

/// A principal (who accesses).
#[derive(Debug)]
pub enum Id {
    Any,
    And(Vec<Id>),
    Or(Vec<Id>),
    Not(Box<Id>),
    /// A peer certificate's identity (URI SAN), matched against `principal_name` when
    /// given; never matches without mTLS.
    Authenticated(Option<StringMatch>),
    DirectRemoteIp(Cidr),
    RemoteIp(Cidr),
    Header(HeaderMatch),
    Path(StringMatch),
    Meta(MetaMatch),
}

// The deprecated matcher forms are still honoured when a config uses them, as Envoy does.
#[allow(deprecated)]
fn header(h: &HeaderMatcher, policy: &str) -> Result<HeaderMatch, RbacError> {
    use header_matcher::HeaderMatchSpecifier as S;
    let sm = |kind| StringMatch {
        kind,
        ignore_case: false,
    };
    let spec = match &h.header_match_specifier {
        Some(S::StringMatch(s)) => {
            HeaderSpec::Str(string_match(s, policy).map_err(|e| err(policy, e.reason))?)
        }
        Some(S::PresentMatch(b)) => HeaderSpec::Present(*b),
        Some(S::ExactMatch(s)) => HeaderSpec::Str(sm(StrMatch::Exact(s.clone()))),
        Some(S::PrefixMatch(s)) => HeaderSpec::Str(sm(StrMatch::Prefix(s.clone()))),
        Some(S::SuffixMatch(s)) => HeaderSpec::Str(sm(StrMatch::Suffix(s.clone()))),
        Some(S::ContainsMatch(s)) => HeaderSpec::Str(sm(StrMatch::Contains(s.clone()))),
        Some(S::SafeRegexMatch(r)) => HeaderSpec::Str(sm(StrMatch::Regex(
            full_regex(&r.regex, false, policy).map_err(|e| err(policy, e.reason))?,
        ))),
        Some(S::RangeMatch(_)) => {
            return Err(err(policy, "header range matches are not supported"));
        }
        None => HeaderSpec::Present(true),
    };
    Ok(HeaderMatch {
        name: h.name.to_ascii_lowercase(),
        spec,
        invert: h.invert_match,
        missing_as_empty: h.treat_missing_header_as_empty,
    })
}

fn path(
    p: &envoy_types::pb::envoy::r#type::matcher::v3::PathMatcher,
    policy: &str,
) -> Result<StringMatch, RbacError> {
    match &p.rule {
        Some(path_matcher::Rule::Path(s)) => {
            string_match(s, policy).map_err(|e| err(policy, e.reason))
        }
        None => Err(err(policy, "empty path matcher")),
    }
}

fn dynamic_meta(m: Option<&MetadataMatcher>, policy: &str) -> Result<MetaMatch, RbacError> {
    let m = m.ok_or_else(|| err(policy, "metadata rule without a matcher"))?;
    MetaMatch::from_pb(m, policy)
}

impl Perm {
    #[allow(deprecated)]
    fn from_pb(p: &Permission, policy: &str) -> Result<Perm, RbacError> {
        use permission::Rule as R;
        let all = |rules: &[Permission]| -> Result<Vec<Perm>, RbacError> {
            rules.iter().map(|r| Perm::from_pb(r, policy)).collect()
        };
        Ok(match &p.rule {
            Some(R::Any(true)) => Perm::Any,
            Some(R::AndRules(s)) => Perm::And(all(&s.rules)?),
            Some(R::OrRules(s)) => Perm::Or(all(&s.rules)?),
            Some(R::NotRule(r)) => Perm::Not(Box::new(Perm::from_pb(r, policy)?)),
            Some(R::Header(h)) => Perm::Header(header(h, policy)?),
            Some(R::UrlPath(u)) => Perm::Path(path(u, policy)?),
            Some(R::DestinationIp(c)) => Perm::DestIp(Cidr::from_pb(c, policy)?),
            Some(R::DestinationPort(port)) => Perm::DestPort(*port),
            Some(R::RequestedServerName(s)) => {
                Perm::Sni(string_match(s, policy).map_err(|e| err(policy, e.reason))?)
            }
            Some(R::Metadata(m)) => Perm::Meta(dynamic_meta(Some(m), policy)?),
            Some(R::UriTemplate(t)) => {
                let cfg = t
                    .typed_config
                    .as_ref()
                    .ok_or_else(|| err(policy, "uri_template without a config"))?;
                let m = UriTemplateMatchConfig::decode(cfg.value.as_slice())
                    .map_err(|e| err(policy, format!("bad uri_template config: {e}")))?;
                Perm::Template(uri_template(&m.path_template, policy)?)
            }
            Some(other) => {
                return Err(err(
                    policy,
                    format!("permission {} is not supported", rule_name(other)),
                ));
            }
            None => return Err(err(policy, "empty permission")),
        })
    }

    fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Perm::Any => true,
            Perm::And(v) => v.iter().all(|p| p.matches(s)),
            Perm::Or(v) => v.iter().any(|p| p.matches(s)),
            Perm::Not(p) => !p.matches(s),
            Perm::Header(h) => header_matches(h, s),
            Perm::Path(m) => s.request.is_some_and(|r| m.matches(r.path)),
            Perm::Template(re) => s.request.is_some_and(|r| re.is_match(r.path)),
            Perm::DestIp(c) => c.contains(s.local.ip()),
            Perm::DestPort(p) => u32::from(s.local.port()) == *p,
            Perm::Sni(m) => m.matches(s.sni.as_deref().unwrap_or("")),
            Perm::Meta(m) => m.matches(s.metadata),
        }
    }
}

fn rule_name(r: &permission::Rule) -> &'static str {
    use permission::Rule as R;
    match r {
        R::DestinationPortRange(_) => "destination_port_range",
        R::Matcher(_) => "matcher",
        R::SourcedMetadata(_) => "sourced_metadata",
        R::Any(false) => "any: false",
        _ => "of this kind",
    }
}

impl Id {
    #[allow(deprecated)]
    fn from_pb(p: &Principal, policy: &str) -> Result<Id, RbacError> {
        use principal::Identifier as I;
        let all = |ids: &[Principal]| -> Result<Vec<Id>, RbacError> {
            ids.iter().map(|r| Id::from_pb(r, policy)).collect()
        };
        Ok(match &p.identifier {
            Some(I::Any(true)) => Id::Any,
            Some(I::AndIds(s)) => Id::And(all(&s.ids)?),
            Some(I::OrIds(s)) => Id::Or(all(&s.ids)?),
            Some(I::NotId(i)) => Id::Not(Box::new(Id::from_pb(i, policy)?)),
            Some(I::Authenticated(a)) => Id::Authenticated(
                a.principal_name
                    .as_ref()
                    .map(|m| string_match(m, policy).map_err(|e| err(policy, e.reason)))
                    .transpose()?,
            ),
            Some(I::SourceIp(c)) => Id::DirectRemoteIp(Cidr::from_pb(c, policy)?),
            Some(I::DirectRemoteIp(c)) => Id::DirectRemoteIp(Cidr::from_pb(c, policy)?),
            Some(I::RemoteIp(c)) => Id::RemoteIp(Cidr::from_pb(c, policy)?),
            Some(I::Header(h)) => Id::Header(header(h, policy)?),
            Some(I::UrlPath(u)) => Id::Path(path(u, policy)?),
            Some(I::Metadata(m)) => Id::Meta(dynamic_meta(Some(m), policy)?),
            Some(I::SourcedMetadata(sm)) => {
                if sm.metadata_source != MetadataSource::Dynamic as i32 {
                    return Err(err(policy, "only dynamic metadata sources are supported"));
                }
                Id::Meta(dynamic_meta(sm.metadata_matcher.as_ref(), policy)?)
            }
            Some(I::Any(false)) => return Err(err(policy, "principal any: false")),
            Some(I::FilterState(_)) => {
                return Err(err(policy, "filter_state principals are not supported"));
            }
            Some(_) => return Err(err(policy, "this principal kind is not supported")),
            None => return Err(err(policy, "empty principal")),
        })
    }

    fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Id::Any => true,
            Id::And(v) => v.iter().all(|p| p.matches(s)),
            Id::Or(v) => v.iter().any(|p| p.matches(s)),
            Id::Not(p) => !p.matches(s),
            Id::Authenticated(m) => s
                .principal
                .as_deref()
                .is_some_and(|p| m.as_ref().is_none_or(|m| m.matches(p))),
            Id::DirectRemoteIp(c) => c.contains(s.peer.ip()),
            Id::RemoteIp(c) => c.contains(s.remote_ip()),
            Id::Header(h) => header_matches(h, s),
            Id::Path(m) => s.request.is_some_and(|r| m.matches(r.path)),
            Id::Meta(m) => m.matches(s.metadata),
        }
    }
}

/// One policy: some permission and some principal must match.
#[derive(Debug)]
pub struct PolicyMatch {
    pub name: String,
    permissions: Vec<Perm>,
    principals: Vec<Id>,
}

impl PolicyMatch {
    fn from_pb(name: &str, p: &Policy) -> Result<PolicyMatch, RbacError> {
        if p.condition.is_some() || p.checked_condition.is_some() {
            return Err(err(name, "CEL conditions are not supported"));
        }
        Ok(PolicyMatch {
            name: name.to_owned(),
            permissions: p
                .permissions
                .iter()
                .map(|x| Perm::from_pb(x, name))
                .collect::<Result<_, _>>()?,
            principals: p
                .principals
                .iter()
                .map(|x| Id::from_pb(x, name))
                .collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, s: &Subject<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(s))
            && self.principals.iter().any(|i| i.matches(s))
    }
}

/// What the rules do with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacAction {
    Allow,
    Deny,
    Log,
}

/// An RBAC rule set.
#[derive(Debug)]
pub struct Engine {
    pub action: RbacAction,
    /// Sorted by name, so the first match reported is stable.
    pub policies: Vec<PolicyMatch>,
}

impl TryFrom<&RbacRules> for Engine {
    type Error = RbacError;

    fn try_from(r: &RbacRules) -> Result<Engine, RbacError> {
        let action = match rbac::Action::try_from(r.action) {
            Ok(rbac::Action::Allow) => RbacAction::Allow,
            Ok(rbac::Action::Deny) => RbacAction::Deny,
            Ok(rbac::Action::Log) => RbacAction::Log,
            _ => return Err(err("", format!("unknown action {}", r.action))),
        };
        if r.audit_logging_options.is_some() {
            // Audit loggers only log; the LOG action's match is logged here instead.
        }
        let mut names: Vec<&String> = r.policies.keys().collect();
        names.sort();
        let policies = names
            .into_iter()
            .filter_map(|n| r.policies.get(n).map(|p| PolicyMatch::from_pb(n, p)))
            .collect::<Result<_, _>>()?;
        Ok(Engine { action, policies })
    }
}

impl Engine {
    /// The first policy that matches.
    pub fn first_match(&self, s: &Subject<'_>) -> Option<&str> {
        self.policies
            .iter()
            .find(|p| p.matches(s))
            .map(|p| p.name.as_str())
    }

    /// Whether the subject may pass, and the policy that decided (if one matched).
    pub fn allows(&self, s: &Subject<'_>) -> (bool, Option<&str>) {
        let hit = self.first_match(s);
        let ok = match self.action {
            RbacAction::Allow => hit.is_some(),
            RbacAction::Deny => hit.is_none(),
            RbacAction::Log => true,
        };
        (ok, hit)
    }
}

/// Counters of one filter, named as Envoy names them.
#[derive(Debug, Default)]
pub struct RbacStats {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub shadow_allowed: AtomicU64,
    pub shadow_denied: AtomicU64,
}

/// One RBAC filter (HTTP or network).
#[derive(Debug)]
pub struct RbacFilter {
    pub rules: Option<Engine>,
    pub shadow: Option<Engine>,
    /// HTTP: `rules_stat_prefix` (in front of `allowed`/`denied`); network: empty.
    pub stat_prefix: String,
    pub shadow_prefix: String,
    /// Network: the filter's `stat_prefix`, the root of its stat names.
    pub network_prefix: Option<String>,
    pub stats: RbacStats,
}

impl TryFrom<&HttpRbac> for RbacFilter {
    type Error = RbacError;

    fn try_from(r: &HttpRbac) -> Result<RbacFilter, RbacError> {
        if r.matcher.is_some() || r.shadow_matcher.is_some() {
            return Err(err(
                "",
                "RBAC matchers (the matching API) are not supported",
            ));
        }
        Ok(RbacFilter {
            rules: r.rules.as_ref().map(Engine::try_from).transpose()?,
            shadow: r.shadow_rules.as_ref().map(Engine::try_from).transpose()?,
            stat_prefix: r.rules_stat_prefix.clone(),
            shadow_prefix: r.shadow_rules_stat_prefix.clone(),
            network_prefix: None,
            stats: RbacStats::default(),
        })
    }
}

impl TryFrom<&NetworkRbac> for RbacFilter {
    type Error = RbacError;

    fn try_from(r: &NetworkRbac) -> Result<RbacFilter, RbacError> {
        if r.matcher.is_some() || r.shadow_matcher.is_some() {
            return Err(err(
                "",
                "RBAC matchers (the matching API) are not supported",
            ));
        }
        Ok(RbacFilter {
            rules: r.rules.as_ref().map(Engine::try_from).transpose()?,
            shadow: r.shadow_rules.as_ref().map(Engine::try_from).transpose()?,
            stat_prefix: String::new(),
            shadow_prefix: r.shadow_rules_stat_prefix.clone(),
            network_prefix: Some(r.stat_prefix.clone()),
            stats: RbacStats::default(),
        })
    }
}

impl RbacFilter {
    /// Decodes an HTTP RBAC filter's typed config.
    pub fn http_from_any(bytes: &[u8]) -> Result<RbacFilter, RbacError> {
        let m = HttpRbac::decode(bytes).map_err(|e| err("", format!("bad RBAC config: {e}")))?;
        RbacFilter::try_from(&m)
    }

    /// Decodes a network RBAC filter's typed config.
    pub fn network_from_any(bytes: &[u8]) -> Result<RbacFilter, RbacError> {
        let m = NetworkRbac::decode(bytes).map_err(|e| err("", format!("bad RBAC config: {e}")))?;
        RbacFilter::try_from(&m)
    }

    /// Evaluates the filter: shadow rules are counted, enforced rules decide. `false`:
    /// refuse.
    pub fn check(&self, s: &Subject<'_>) -> bool {
        if let Some(shadow) = &self.shadow {
            let (ok, hit) = shadow.allows(s);
            let c = if ok {
                &self.stats.shadow_allowed
            } else {
                &self.stats.shadow_denied
            };
            c.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                rbac.shadow_policy = hit.unwrap_or("none"),
                rbac.shadow_allowed = ok,
                "rbac shadow rules evaluated"
            );
        }
        let Some(rules) = &self.rules else {
            return true;
        };
        let (ok, hit) = rules.allows(s);
        if rules.action == RbacAction::Log {
            if let Some(p) = hit {
                info!(rbac.policy = p, client.addr = %s.peer, "rbac: request matched an audit (LOG) policy");
            }
            // A LOG decision always allows, and counts as allowed (as Envoy counts it).
            self.stats.allowed.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let c = if ok {
            &self.stats.allowed
        } else {
            &self.stats.denied
        };
        c.fetch_add(1, Ordering::Relaxed);
        if !ok {
            tracing::debug!(rbac.policy = hit.unwrap_or("none"), client.addr = %s.peer, "rbac: access denied");
        }
        ok
    }
}

impl RbacFilter {
    /// The filter's counters under `root` (`http.PREFIX.rbac.` or `PREFIX` + `rbac.`), named
    /// as Envoy 1.40 names them: `[rules_stat_prefix.]allowed|denied` and
    /// `[shadow_rules_stat_prefix.]shadow_allowed|shadow_denied`.
    fn stat_lines(&self, root: &str, out: &mut std::collections::BTreeMap<String, u64>) {
        let s = &self.stats;
        // Envoy joins a non-empty prefix with a dot: `http.X.rbac.foo_.allowed`.
        let dotted = |p: &str| {
            if p.is_empty() {
                String::new()
            } else {
                format!("{p}.")
            }
        };
        let p = dotted(&self.stat_prefix);
        let sp = dotted(&self.shadow_prefix);
        for (name, v) in [
            (format!("{root}{p}allowed"), &s.allowed),
            (format!("{root}{p}denied"), &s.denied),
            (format!("{root}{sp}shadow_allowed"), &s.shadow_allowed),
            (format!("{root}{sp}shadow_denied"), &s.shadow_denied),
        ] {
            *out.entry(name).or_default() += v.load(Ordering::Relaxed);
        }
    }
}

/// Every RBAC filter's counters in a config generation (filters of one listener add up, as
/// Envoy's share their stat names). Counters start again with each listener update.
pub fn stats(c: &super::config::Config) -> Vec<(String, u64)> {
    use super::config::{HttpAuthz, ListenerKind};
    let mut out = std::collections::BTreeMap::new();
    for l in c.listeners.values() {
        match &l.kind {
            ListenerKind::Http(h) => {
                let root = format!("http.{}.rbac.", h.stat_prefix);
                for f in &h.authz {
                    if let HttpAuthz::Rbac(r) = f {
                        r.stat_lines(&root, &mut out);
                    }
                }
            }
            ListenerKind::Tcp(t) => {
                for r in &t.rbac {
                    let root = format!("{}rbac.", r.network_prefix.as_deref().unwrap_or(""));
                    r.stat_lines(&root, &mut out);
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn cidr(a: &str, l: u32) -> Cidr {
        Cidr::from_pb(
            &CidrRange {
                address_prefix: a.to_owned(),
                prefix_len: Some(envoy_types::pb::google::protobuf::UInt32Value { value: l }),
            },
            "t",
        )
        .unwrap()
    }

    #[test]
    fn cidrs_contain_their_addresses() {
        let c = cidr("127.10.22.10", 31);
        assert!(c.contains("127.10.22.10".parse().unwrap()));
        assert!(c.contains("127.10.22.11".parse().unwrap()));
        assert!(!c.contains("127.10.22.12".parse().unwrap()));
        assert!(cidr("0.0.0.0", 0).contains("8.8.8.8".parse().unwrap()));
        assert!(cidr("::1", 128).contains("::1".parse().unwrap()));
        assert!(!cidr("::1", 128).contains("127.0.0.1".parse().unwrap()));
        assert!(cidr("127.0.0.1", 32).contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn remote_ip_follows_xff_only_when_trusted() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            hyper::header::HeaderValue::from_static("10.0.0.1, 192.0.2.7"),
        );
        let view = RequestView {
            method: "GET",
            authority: "a",
            path: "/",
            query: None,
            scheme: "http",
            headers: &headers,
        };
        let md = Metadata::new();
        let mut s = Subject {
            request: Some(&view),
            peer: "127.0.0.9:5000".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            trust_xff: true,
            metadata: &md,
            principal: None,
            sni: None,
        };
        let remote = Id::RemoteIp(cidr("192.0.2.7", 32));
        let direct = Id::DirectRemoteIp(cidr("127.0.0.9", 32));
        assert!(remote.matches(&s));
        assert!(direct.matches(&s));
        s.trust_xff = false;
        assert!(!remote.matches(&s));
        assert!(Id::RemoteIp(cidr("127.0.0.9", 32)).matches(&s));
        assert!(Perm::DestPort(80).matches(&s));
        assert!(!Perm::DestPort(81).matches(&s));
        assert!(Perm::DestIp(cidr("127.0.0.0", 8)).matches(&s));
        assert!(
            !Id::Authenticated(None).matches(&s),
            "no mTLS: never authenticated"
        );
        assert!(Id::Not(Box::new(Id::Authenticated(None))).matches(&s));
        let client = "spiffe://cluster.local/ns/shop/sa/client";
        let exact = |v: &str| {
            Id::Authenticated(Some(StringMatch {
                kind: StrMatch::Exact(v.to_owned()),
                ignore_case: false,
            }))
        };
        s.principal = Some(client.to_owned());
        assert!(Id::Authenticated(None).matches(&s));
        assert!(exact(client).matches(&s));
        assert!(!exact("spiffe://cluster.local/ns/shop/sa/intruder").matches(&s));
        s.principal = None;

        // requested_server_name: the handshake's SNI; plaintext is the empty name.
        let sni = |v: &str| {
            Perm::Sni(StringMatch {
                kind: StrMatch::Exact(v.to_owned()),
                ignore_case: false,
            })
        };
        let name = "outbound_.9080_._.catalog.shop.svc.cluster.local";
        assert!(!sni(name).matches(&s));
        assert!(sni("").matches(&s));
        s.sni = Some(name.to_owned());
        assert!(sni(name).matches(&s));
        assert!(!sni("").matches(&s));
        s.sni = None;

        // A connection has no headers: a string matcher fails, inverted or not (Envoy's
        // rule for a missing header), and `present: false` matches.
        let user = |invert| HeaderMatch {
            name: "x-user".to_owned(),
            spec: HeaderSpec::Str(StringMatch {
                kind: StrMatch::Exact("a".to_owned()),
                ignore_case: false,
            }),
            invert,
            missing_as_empty: false,
        };
        let tcp = Subject {
            request: None,
            peer: "127.0.0.9:5000".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            trust_xff: false,
            metadata: &md,
            principal: None,
            sni: None,
        };
        assert!(!Id::Header(user(false)).matches(&tcp));
        assert!(!Id::Header(user(true)).matches(&tcp));
        let absent = HeaderMatch {
            name: "x-user".to_owned(),
            spec: HeaderSpec::Present(false),
            invert: false,
            missing_as_empty: false,
        };
        assert!(Id::Header(absent).matches(&tcp));
        assert!(!Perm::Template(uri_template("/a/*", "t").unwrap()).matches(&tcp));
    }

    #[test]
    fn what_cannot_be_evaluated_is_refused() {
        let with = |perm: permission::Rule| RbacRules {
            action: rbac::Action::Allow as i32,
            policies: [(
                "p".to_owned(),
                Policy {
                    permissions: vec![Permission { rule: Some(perm) }],
                    principals: vec![Principal {
                        identifier: Some(principal::Identifier::Any(true)),
                    }],
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        assert!(Engine::try_from(&with(permission::Rule::Any(true))).is_ok());
        let e = Engine::try_from(&with(permission::Rule::DestinationPortRange(
            Default::default(),
        )))
        .unwrap_err();
        assert!(e.reason.contains("destination_port_range"), "{e}");
        let mut cel = with(permission::Rule::Any(true));
        if let Some(p) = cel.policies.get_mut("p") {
            p.condition = Some(Default::default());
        }
        assert!(Engine::try_from(&cel).unwrap_err().reason.contains("CEL"));
        let e = RbacFilter::try_from(&HttpRbac {
            matcher: Some(Default::default()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.reason.contains("matcher"), "{e}");
    }

    #[test]
    fn templates_match_segments() {
        let t = uri_template("/shelves/*/items", "t").unwrap();
        assert!(t.is_match("/shelves/7/items"));
        assert!(!t.is_match("/shelves/7/8/items"));
        assert!(!t.is_match("/shelves//items"));
        let t = uri_template("/files/**", "t").unwrap();
        assert!(t.is_match("/files/a/b/c.txt"));
        assert!(t.is_match("/files/"));
        assert!(!t.is_match("/other/a"));
        let t = uri_template("/v/{id}/x/{rest=**}", "t").unwrap();
        assert!(t.is_match("/v/1/x/a/b"));
        assert!(uri_template("/a*b", "t").is_err());
    }

    #[test]
    fn metadata_matches_claims() {
        let m = MetaMatch {
            filter: "envoy.filters.http.jwt_authn".to_owned(),
            path: vec!["payload".to_owned(), "groups".to_owned()],
            value: ValueMatch::OneOf(Box::new(ValueMatch::Str(StringMatch {
                kind: StrMatch::Exact("admins".to_owned()),
                ignore_case: false,
            }))),
            invert: false,
        };
        let mut md = Metadata::new();
        assert!(!m.matches(&md));
        md.insert(
            "envoy.filters.http.jwt_authn".to_owned(),
            serde_json::json!({"payload": {"groups": ["users", "admins"]}}),
        );
        assert!(m.matches(&md));
        md.insert(
            "envoy.filters.http.jwt_authn".to_owned(),
            serde_json::json!({"payload": {"groups": "admins"}}),
        );
        assert!(!m.matches(&md), "a string is not a list");
    }
}
