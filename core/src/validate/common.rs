//! Checks shared by several kinds: names, hosts, ports, durations, addresses, labels,
//! regexes, header names and values, exportTo, selectors, protocols.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::Duration;
use crate::model::networking::MatchLabelsSelector;
use crate::resource::{Resource, groups};

/// Annotations that make Istio refuse any object, or that only some kinds may carry.
pub fn metadata_problem(res: &Resource) -> Option<String> {
    const DRY_RUN: &str = "istio.io/dry-run";
    if res.annotations.contains_key(DRY_RUN)
        && !(res.group == groups::SECURITY && res.kind == "AuthorizationPolicy")
    {
        return Some(format!(
            "{}/{} has unsupported annotation {DRY_RUN}, please remove the annotation",
            res.ns(),
            res.name
        ));
    }
    if res
        .annotations
        .contains_key("internal.istio.io/webhook-always-reject")
    {
        return Some(
            "\"internal.istio.io/webhook-always-reject\" annotation found, rejecting".to_owned(),
        );
    }
    for internal in [
        "internal.istio.io/parent-namespace",
        "internal.istio.io/parents",
    ] {
        if res.annotations.contains_key(internal) {
            return Some(format!(
                "{internal:?} annotation found, this may not be set by users"
            ));
        }
    }
    None
}

/// `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// A DNS label that may also be `*`, or start with `*` or `*-`.
pub fn is_wildcard_dns1123_label(s: &str) -> bool {
    if s.len() > 63 {
        return false;
    }
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    is_dns1123_label(rest)
}

fn dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_owned());
    }
    Ok(())
}

fn dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts[parts.len() - 1];
    if !tld.is_empty() && tld.parse::<i64>().is_ok() {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully qualified domain name (a trailing dot is allowed).
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    dns1123_preconditions(fqdn)?;
    dns1123_labels(fqdn)
}

/// A domain name whose first label may be a wildcard (`*`, `*.example.com`).
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(r) => dns1123_labels(r),
        None => Ok(()),
    }
}

/// A host of a VirtualService bound to gateways: a wildcard domain, or (for SNI routing)
/// the auto-generated `outbound_.<port>_._.<host>` form.
pub fn validate_wildcard_domain_for_gateway(sni: bool, domain: &str) -> Result<(), String> {
    dns1123_preconditions(domain)?;
    if sni && domain.starts_with("outbound_") {
        const FORMAT: &str = "outbound_.<PORT>_._.<HOSTNAME>";
        let parts: Vec<&str> = domain.split('_').collect();
        if parts.len() < 4 {
            return Err(format!(
                "domain name {domain} invalid, should follow '{FORMAT}' format"
            ));
        }
        let port = parts[1].trim_matches('.');
        let host = parts[3].trim_matches('.');
        if parts[0] != "outbound" {
            return Err(format!(
                "domain name {domain:?} invalid (label {:?} invalid)",
                parts[0]
            ));
        }
        if !port.chars().any(|c| c.is_ascii_digit()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {port:?} invalid). should follow {FORMAT} format"
            ));
        }
        if !host.chars().any(|c| c.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {domain:?} invalid (label {host:?} invalid). should follow {FORMAT} format"
            ));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

/// A wildcard is allowed only as the whole host or as a `*.` prefix.
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

/// The host part of a Sidecar egress or Gateway server host.
fn validate_sidecar_or_gateway_host_part(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if host != "*" && !host.contains('.') {
        errs.push("short names (non FQDN) are not allowed".to_owned());
    }
    if let Err(e) = validate_wildcard_domain(host) {
        if !is_gateway {
            errs.push(e.clone());
        }
        if !is_ip(host) {
            errs.push(e);
        }
    }
    if let Err(e) = validate_partial_wildcard(host) {
        errs.push(e);
    }
    errs
}

/// A `namespace/host` of a Sidecar egress listener or Gateway server (gateways also take a
/// bare host).
pub fn validate_namespace_slash_wildcard_hostname(host: &str, is_gateway: bool) -> Vec<String> {
    let Some((ns, name)) = host.split_once('/') else {
        if is_gateway {
            return validate_sidecar_or_gateway_host_part(host, true);
        }
        return vec!["host must be of form namespace/dnsName".to_owned()];
    };
    let mut errs = Vec::new();
    if ns.is_empty() || name.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_owned());
    }
    if is_gateway {
        if ns != "*" && ns != "." && !is_dns1123_label(ns) {
            errs.push(format!("invalid namespace value {ns:?} in gateway"));
        }
    } else if ns != "*" && ns != "." && ns != "~" && !is_dns1123_label(ns) {
        errs.push(format!("invalid namespace value {ns:?} in sidecar"));
    }
    errs.extend(validate_sidecar_or_gateway_host_part(name, is_gateway));
    errs
}

/// Port numbers are 1..65535.
pub fn validate_port(port: i64) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

/// A port name is a DNS label.
pub fn validate_port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

/// Istio's protocols, as `protocol.Parse` knows them (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    Http,
    HttpProxy,
    Http2,
    Https,
    Tcp,
    Tls,
    Udp,
    Mongo,
    Redis,
    Mysql,
    Unsupported,
}

impl Protocol {
    pub fn parse(s: &str) -> Protocol {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "http" => Protocol::Http,
            "http_proxy" => Protocol::HttpProxy,
            "http2" => Protocol::Http2,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => Protocol::Unsupported,
        }
    }

    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

/// A protocol name is empty (sniffed) or one Istio knows.
pub fn validate_protocol(p: &str) -> Result<(), String> {
    if !p.is_empty() && Protocol::parse(p) == Protocol::Unsupported {
        return Err(format!("unsupported protocol: {p}"));
    }
    Ok(())
}

/// Durations are at least 1ms and whole milliseconds.
pub fn validate_duration(d: Duration) -> Result<(), String> {
    let d = d.0;
    if d < std::time::Duration::from_millis(1) {
        return Err("duration must be greater than 1ms".to_owned());
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err("only durations to ms precision are supported".to_owned());
    }
    Ok(())
}

/// Whether `s` is an IPv4 or IPv6 address.
pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

pub fn validate_ip(s: &str) -> Result<(), String> {
    if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

/// An address or a CIDR block.
pub fn validate_ip_subnet(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        if s.parse::<ipnet::IpNet>().is_err() {
            return Err(format!("{s} is not a valid CIDR block"));
        }
        return Ok(());
    }
    validate_ip(s)
}

/// An absolute path to a Unix domain socket (or an abstract one, `@name`).
pub fn validate_unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".to_owned());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}

fn is_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn validate_label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let bad = || format!("invalid tag key: {k:?}");
    if let Some(p) = prefix {
        if p.is_empty() || !p.split('.').all(is_dns1123_label) {
            return Err(bad());
        }
        if p.len() > 253 {
            return Err(format!("invalid tag key: {k:?} (DNS prefix is too long)"));
        }
    }
    if !is_qualified_name(name) {
        return Err(bad());
    }
    if name.len() > 63 {
        return Err(format!("invalid tag key: {k:?} (name is too long)"));
    }
    Ok(())
}

/// Kubernetes-style labels: qualified keys and values.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if let Err(e) = validate_label_key(k) {
            errs.push(e);
        }
        if !(v.is_empty() || is_qualified_name(v)) {
            errs.push(format!("invalid tag value: {v:?}"));
        }
    }
    errs
}

/// Compiles a regex the way Istio checks RE2 patterns (the `regex` crate is close to RE2).
pub fn validate_regex(re: &str, place: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err(format!(
            "{place:?}: regex is too large, max length allowed is 1024"
        ));
    }
    regex::Regex::new(re).map(|_| ()).map_err(|e| {
        let first = e.to_string().lines().last().unwrap_or_default().trim().to_owned();
        format!(
            "{place:?}: {first}; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
        )
    })
}

/// Header-name characters Istio allows: RFC 7230 token characters (Istio's pattern also
/// admits `,`, through its `+-.` range).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b','
                        | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether a header key names a JWT claim (`@request.auth.claims.sub`,
/// `@request.auth.claims[sub]`).
pub fn is_jwt_claim_route(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("@request.auth.claims") else {
        return false;
    };
    if let Some(dotted) = rest.strip_prefix('.') {
        return !dotted.is_empty();
    }
    rest.len() > 2 && rest.starts_with('[') && rest.ends_with(']')
}

/// A header name in a match: a token, a pseudo-header, or a JWT claim.
pub fn validate_header_name_or_claim(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_owned());
    }
    if is_jwt_claim_route(name)
        || matches!(
            name,
            ":method" | ":scheme" | ":authority" | ":path" | ":status"
        )
    {
        return Ok(());
    }
    if !is_token(name) {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

/// A header name in a CORS policy: a token or `*`.
pub fn validate_cors_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_owned());
    }
    if name == "*" || is_token(name) {
        return Ok(());
    }
    Err(format!("header name {name} is not a valid header name"))
}

/// `[-A-Za-z0-9]+`, used for probe headers and JWT output headers.
pub fn validate_strict_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_owned());
    }
    if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
        return Err(format!("header name {name} is not a valid header name"));
    }
    Ok(())
}

fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

pub fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// A header set or added on requests (the authority may be, once).
pub fn validate_header_with_authority_op_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_owned());
    }
    if is_internal_header(name) && !is_authority_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// A header removed from requests or changed on responses.
pub fn validate_header_op_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("header name cannot be empty".to_owned());
    }
    if name.eq_ignore_ascii_case("host") {
        return Err(format!("invalid header {name:?}: cannot set Host header"));
    }
    if is_internal_header(name) {
        return Err(format!(
            "invalid header {name:?}: header cannot have \":\" prefix"
        ));
    }
    Ok(())
}

/// A header value Envoy accepts: no control characters, and `%VAR%` expressions well formed
/// (`%%` is a literal percent sign).
pub fn validate_header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'))
    {
        return Err(format!("header value configuration {value} is invalid"));
    }
    header_expressions(value).map_err(|e| format!("header value configuration: {e}"))
}

fn header_expressions(value: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum State {
        Literal,
        VariableName,
        ExpectArray,
        ExpectString,
        InString,
        ExpectDelimiterOrEnd,
        ExpectArgsEnd,
        ExpectVariableEnd,
    }
    let b = value.as_bytes();
    let mut state = State::Literal;
    let mut pos = 0;
    while pos < b.len() {
        let ch = b[pos];
        let has_next = pos + 1 < b.len();
        match state {
            State::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("invalid header configuration. Un-escaped %".to_owned());
                    }
                    if b[pos + 1] == b'%' {
                        pos += 1;
                    } else {
                        state = State::VariableName;
                    }
                }
            }
            State::VariableName => {
                if ch == b'%' {
                    state = State::Literal;
                } else if ch == b'(' {
                    state = State::ExpectArray;
                }
            }
            State::ExpectArray => {
                if ch == b'[' {
                    state = State::ExpectString;
                } else if ch != b' ' {
                    state = State::InString;
                }
            }
            State::ExpectDelimiterOrEnd => {
                if ch == b',' {
                    state = State::ExpectString;
                } else if ch == b']' {
                    state = State::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ',', ']', or whitespace"
                            .to_owned(),
                    );
                }
            }
            State::ExpectString => {
                if ch == b'"' {
                    state = State::InString;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '\"'".to_owned());
                }
            }
            State::InString => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(
                            "invalid header configuration. Un-terminated backslash in JSON string"
                                .to_owned(),
                        );
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = State::ExpectVariableEnd;
                } else if ch == b'"' {
                    state = State::ExpectDelimiterOrEnd;
                }
            }
            State::ExpectArgsEnd => {
                if ch == b')' {
                    state = State::ExpectVariableEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ')' or whitespace".to_owned()
                    );
                }
            }
            State::ExpectVariableEnd => {
                if ch == b'%' {
                    state = State::Literal;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting '%' or whitespace after"
                            .to_owned(),
                    );
                }
            }
        }
        pos += 1;
    }
    if state != State::Literal {
        return Err(format!(
            "invalid header configuration. Un-terminated variable expression '{value}'"
        ));
    }
    Ok(())
}

/// `exportTo`: no duplicates (`.` counts as the namespace), valid entries, `*` alone, and
/// `~` (service entries only) alone.
pub fn validate_export_to(
    namespace: &str,
    export_to: &[String],
    is_service_entry: bool,
    is_dr_with_selector: bool,
) -> Vec<String> {
    let mut errs = Vec::new();
    if export_to.is_empty() {
        return errs;
    }
    let mut set: BTreeSet<String> = BTreeSet::new();
    for e in export_to {
        let key = if e == "." { namespace } else { e.as_str() };
        if set.contains(key) {
            if key != e {
                errs.push(format!(
                    "duplicate entries in exportTo: . and current namespace {namespace}"
                ));
            } else {
                errs.push(format!("duplicate entries in exportTo for entry {e}"));
            }
        } else if (is_service_entry && e == "~")
            || key == "*"
            || key == "."
            || key == "~"
            || is_dns1123_label(key)
        {
            set.insert(key.to_owned());
        } else {
            errs.push(format!(
                "only .,* or a valid DNS 1123 label is allowed as exportTo entry, found {key}"
            ));
        }
    }
    if is_dr_with_selector && !set.is_empty() {
        if set.contains(namespace) {
            if set.len() > 1 {
                errs.push(
                    "destination rule with workload selector cannot have multiple entries in exportTo"
                        .to_owned(),
                );
            }
        } else {
            errs.push(
                "destination rule with workload selector cannot have exportTo beyond current namespace"
                    .to_owned(),
            );
        }
    }
    if set.contains("*") && export_to.len() > 1 {
        errs.push(
            "cannot have both public (*) and non-public exportTo values for a resource".to_owned(),
        );
    }
    if set.contains("~") && export_to.len() > 1 {
        errs.push("cannot export service entry to no one (~) and someone".to_owned());
    }
    errs
}

/// A `matchLabels` selector: no empty keys, no wildcards; warns when it has no labels.
pub fn validate_match_labels_selector(
    selector: Option<&MatchLabelsSelector>,
) -> (Vec<String>, Option<String>) {
    let Some(sel) = selector else {
        return (Vec::new(), None);
    };
    let errs = selector_label_errors(&sel.match_labels);
    let warning = sel
        .match_labels
        .is_empty()
        .then(|| "workload selector specified without labels".to_owned());
    (errs, warning)
}

/// Selector labels: no empty keys, no wildcards.
pub fn selector_label_errors(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if k.is_empty() {
            errs.push(format!(
                "empty key is not supported in selector: {:?}",
                format!("{k}={v}")
            ));
        }
        if k.contains('*') || v.contains('*') {
            errs.push(format!(
                "wildcard is not supported in selector: {:?}",
                format!("{k}={v}")
            ));
        }
    }
    errs
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("a-b1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_wildcard_dns1123_label("*"));
        assert!(is_wildcard_dns1123_label("*-foo"));
        assert!(!is_wildcard_dns1123_label("foo*"));
    }

    #[test]
    fn domains() {
        assert!(validate_fqdn("istio.io").is_ok());
        assert!(validate_fqdn("istio.io.").is_ok());
        assert!(validate_fqdn("a.123").is_err());
        assert!(validate_fqdn("").is_err());
        assert!(validate_fqdn("*.io").is_err());
        assert!(validate_wildcard_domain("*.io").is_ok());
        assert!(validate_wildcard_domain("*").is_ok());
        assert!(validate_wildcard_domain("a.*.io").is_err());
        assert!(validate_wildcard_domain("reviews").is_ok());
        assert!(validate_wildcard_domain_for_gateway(true, "outbound_.80_._.e2e.foo.mesh").is_ok());
        assert!(validate_wildcard_domain_for_gateway(true, "outbound_.x_._.1").is_err());
        assert!(validate_partial_wildcard("*.a.com").is_ok());
        assert!(validate_partial_wildcard("a*.com").is_err());
    }

    #[test]
    fn namespaced_hosts() {
        assert!(validate_namespace_slash_wildcard_hostname("ns/a.com", false).is_empty());
        assert!(validate_namespace_slash_wildcard_hostname("*/*", false).is_empty());
        assert!(validate_namespace_slash_wildcard_hostname("~/*", false).is_empty());
        assert!(!validate_namespace_slash_wildcard_hostname("a.com", false).is_empty());
        assert!(!validate_namespace_slash_wildcard_hostname("ns/short", false).is_empty());
        assert!(validate_namespace_slash_wildcard_hostname("a.com", true).is_empty());
        assert!(validate_namespace_slash_wildcard_hostname("10.0.0.1", true).is_empty());
        assert!(!validate_namespace_slash_wildcard_hostname("~/a.com", true).is_empty());
    }

    #[test]
    fn ports_and_addresses() {
        assert!(validate_port(1).is_ok() && validate_port(65535).is_ok());
        assert!(validate_port(0).is_err() && validate_port(65536).is_err());
        assert!(validate_ip_subnet("10.0.0.0/8").is_ok());
        assert!(validate_ip_subnet("2001:db8::/32").is_ok());
        assert!(validate_ip_subnet("10.0.0.0/33").is_err());
        assert!(validate_ip_subnet("a.b").is_err());
        assert!(validate_unix_address("/var/run/x.sock").is_ok());
        assert!(validate_unix_address("@abstract").is_ok());
        assert!(validate_unix_address("relative").is_err());
    }

    #[test]
    fn durations() {
        use std::time::Duration as D;
        assert!(validate_duration(Duration(D::from_millis(1))).is_ok());
        assert!(validate_duration(Duration(D::from_micros(500))).is_err());
        assert!(validate_duration(Duration(D::from_micros(1500))).is_err());
    }

    #[test]
    fn labels() {
        let ok: BTreeMap<String, String> = [
            ("app.kubernetes.io/name".to_owned(), "x_y.z".to_owned()),
            ("version".to_owned(), String::new()),
        ]
        .into();
        assert!(validate_labels(&ok).is_empty());
        let bad: BTreeMap<String, String> = [("-bad".to_owned(), "v*".to_owned())].into();
        assert_eq!(validate_labels(&bad).len(), 2);
    }

    #[test]
    fn header_values() {
        assert!(validate_header_value("foo").is_ok());
        assert!(validate_header_value("%HOSTNAME%").is_ok());
        assert!(validate_header_value("100%%").is_ok());
        assert!(validate_header_value("%REQ(x-foo)%").is_ok());
        assert!(validate_header_value("abc%123").is_err());
        assert!(validate_header_value("%START_TIME%%").is_err());
        assert!(validate_header_value("a\u{1}b").is_err());
    }

    #[test]
    fn header_names() {
        assert!(validate_header_name_or_claim("x-foo").is_ok());
        assert!(validate_header_name_or_claim(":authority").is_ok());
        assert!(validate_header_name_or_claim("@request.auth.claims.sub").is_ok());
        assert!(validate_header_name_or_claim("bad header").is_err());
        assert!(validate_header_op_name("Host").is_err());
        assert!(validate_header_with_authority_op_name(":authority").is_ok());
        assert!(validate_header_with_authority_op_name(":path").is_err());
    }

    #[test]
    fn export_to() {
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(validate_export_to("ns", &v(&[".", "other"]), false, false).is_empty());
        assert!(!validate_export_to("ns", &v(&[".", "ns"]), false, false).is_empty());
        assert!(!validate_export_to("ns", &v(&["*", "other"]), false, false).is_empty());
        assert!(!validate_export_to("ns", &v(&["~", "a"]), false, false).is_empty());
        assert!(validate_export_to("ns", &v(&["~"]), true, false).is_empty());
        assert!(!validate_export_to("ns", &v(&["Bad_Name"]), false, false).is_empty());
    }

    #[test]
    fn regexes() {
        assert!(validate_regex("^/api/.*$", "uri").is_ok());
        assert!(validate_regex("(unclosed", "uri").is_err());
    }
}
