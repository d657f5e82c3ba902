//! PeerAuthentication, RequestAuthentication and AuthorizationPolicy rules: selectors and
//! target references, port-level mTLS, JWT rules, and authorization rules (sources,
//! operations, conditions, actions and providers).

use super::common::*;
use super::{Report, Severity};
use crate::model::networking::{MatchLabelsSelector, PolicyTargetReference};
use crate::model::security::{
    AuthorizationAction, AuthorizationPolicy, JwtRule, Operation, PeerAuthentication,
    RequestAuthentication, Source,
};

pub fn validate_peer_authn(out: &mut Report<'_>, pa: &PeerAuthentication) {
    let empty_selector = pa
        .selector
        .as_ref()
        .is_none_or(|s| s.match_labels.is_empty());
    if let Some(ports) = &pa.port_level_mtls {
        if empty_selector && !ports.is_empty() {
            out.error(
                "spec.portLevelMtls",
                "mesh/namespace peer authentication cannot have port level mTLS",
            );
        }
        if ports.is_empty() {
            out.error(
                "spec.portLevelMtls",
                "port level mTLS, if defined, must have at least one element",
            );
        }
        for port in ports.keys() {
            if *port == 0 || *port > 65535 {
                out.error(
                    &format!("spec.portLevelMtls.{port}"),
                    "port must be in range 1..65535",
                );
            }
        }
    }
    check_selector(out, pa.selector.as_ref());
}

pub fn validate_request_authn(out: &mut Report<'_>, ra: &RequestAuthentication) {
    check_selector_kinds(
        out,
        ra.selector.as_ref(),
        ra.target_ref.as_ref(),
        &ra.target_refs,
    );
    for (i, rule) in ra.jwt_rules.iter().enumerate() {
        validate_jwt_rule(out, &format!("spec.jwtRules[{i}]"), rule);
    }
}

/// Selector, targetRef and targetRefs: at most one kind, each well formed.
fn check_selector_kinds(
    out: &mut Report<'_>,
    selector: Option<&MatchLabelsSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    let set = [
        selector.is_some(),
        target_ref.is_some(),
        !target_refs.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set > 1 {
        out.error(
            "spec",
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    check_selector(out, selector);
    if let Some(r) = target_ref {
        check_target_ref(out, "spec.targetRef", r);
    }
    for (i, r) in target_refs.iter().enumerate() {
        check_target_ref(out, &format!("spec.targetRefs[{i}]"), r);
    }
}

fn check_selector(out: &mut Report<'_>, selector: Option<&MatchLabelsSelector>) {
    let (errs, warning) = validate_match_labels_selector(selector);
    out.check_all("spec.selector", errs);
    if let Some(w) = warning {
        out.warn("spec.selector", w);
    }
}

/// Kinds a policy may target: (group, kind), the core group written as `core`.
const TARGET_KINDS: &[(&str, &str)] = &[
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

fn check_target_ref(out: &mut Report<'_>, path: &str, r: &PolicyTargetReference) {
    if r.name.is_empty() {
        out.error(path, "targetRef name must be set");
    }
    if !r.namespace.is_empty() {
        out.error(
            &format!("{path}.namespace"),
            "targetRef namespace must not be set; cross namespace referencing is not supported",
        );
    }
    let group = if r.group.is_empty() {
        "core"
    } else {
        r.group.as_str()
    };
    if !TARGET_KINDS
        .iter()
        .any(|(g, k)| *g == group && *k == r.kind)
    {
        let allowed: Vec<String> = TARGET_KINDS
            .iter()
            .map(|(g, k)| format!("{g}/{k}"))
            .collect();
        out.error(
            path,
            format!(
                "targetRef must be to one of [{}] but was {}/{}",
                allowed.join(" "),
                r.group,
                r.kind
            ),
        );
    }
}

fn validate_jwt_rule(out: &mut Report<'_>, path: &str, rule: &JwtRule) {
    for (i, a) in rule.audiences.iter().enumerate() {
        if a.is_empty() {
            out.error(
                &format!("{path}.audiences[{i}]"),
                "audience must be non-empty string",
            );
        }
    }
    if rule.issuer.is_empty() && rule.jwks_uri.is_empty() {
        out.error(path, "issuer or jwksUri must be non-empty string");
    }
    if !rule.jwks_uri.is_empty() {
        out.check(&format!("{path}.jwksUri"), check_jwks_uri(&rule.jwks_uri));
    }
    if !rule.jwks.is_empty() {
        out.check(&format!("{path}.jwks"), check_jwks(&rule.jwks));
    }
    for (i, h) in rule.from_headers.iter().enumerate() {
        if h.name.is_empty() {
            out.error(
                &format!("{path}.fromHeaders[{i}]"),
                "location header name must be non-empty string",
            );
        }
    }
    for (i, p) in rule.from_params.iter().enumerate() {
        if p.is_empty() {
            out.error(
                &format!("{path}.fromParams[{i}]"),
                "location query must be non-empty string",
            );
        }
    }
    for (i, c) in rule.from_cookies.iter().enumerate() {
        if c.is_empty() {
            out.error(
                &format!("{path}.fromCookies[{i}]"),
                "cookie name must be non-empty string",
            );
        }
    }
    for (i, ch) in rule.output_claim_to_headers.iter().enumerate() {
        let p = format!("{path}.outputClaimToHeaders[{i}]");
        if ch.claim.is_empty() || ch.header.is_empty() {
            out.error(
                &p,
                "outputClaimToHeaders header and claim value must be non-empty string",
            );
            continue;
        }
        out.check(
            &format!("{p}.header"),
            validate_strict_header_name(&ch.header),
        );
    }
    if let Some(t) = rule.timeout {
        out.check(&format!("{path}.timeout"), validate_duration(t));
    }
}

/// A JWKS URI: http or https, with a numeric port if one is given.
fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    if scheme != "http" && scheme != "https" {
        return Err(format!("URI scheme {scheme:?} is not supported"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').and_then(|(_, p)| p.strip_prefix(':'))
    } else {
        host_port.rsplit_once(':').map(|(_, p)| p)
    };
    if let Some(p) = port
        && !p.is_empty()
        && p.parse::<u32>().is_err()
    {
        return Err(format!("parse {uri:?}: invalid port \":{p}\" after host"));
    }
    Ok(())
}

/// An inline JWKS: a JSON key set (`{"keys": [...]}`) or a single key (`{"kty": ...}`).
fn check_jwks(jwks: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(jwks).map_err(|e| format!("jwks parse error: {e}"))?;
    let is_set = v.get("keys").is_some_and(serde_json::Value::is_array);
    let is_key = v.get("kty").is_some_and(serde_json::Value::is_string);
    if is_set || is_key {
        Ok(())
    } else {
        Err("jwks parse error: not a JSON Web Key or key set".to_owned())
    }
}

fn parse_go_bool(s: &str) -> bool {
    matches!(
        s,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

pub fn validate_authz(out: &mut Report<'_>, ap: &AuthorizationPolicy) {
    if let Some(v) = out.res.annotations.get("istio.io/dry-run").cloned() {
        let (ns, name) = (out.namespace().to_owned(), out.res.name.clone());
        match ap.action {
            AuthorizationAction::Allow | AuthorizationAction::Deny => {
                if !parse_go_bool(&v) {
                    out.error(
                        "metadata.annotations",
                        format!(
                            "{ns}/{name} has annotation istio.io/dry-run with invalid value ({v}): strconv.ParseBool: parsing {v:?}: invalid syntax"
                        ),
                    );
                    return;
                }
            }
            action => {
                out.error(
                    "metadata.annotations",
                    format!(
                        "the annotation istio.io/dry-run currently only supports action ALLOW/DENY, found action {action} in {ns}/{name}"
                    ),
                );
                return;
            }
        }
    }

    let prefix = format!("invalid policy {}.{}:", out.res.name, out.namespace());
    let mut errs: Vec<(String, String)> = Vec::new();
    let mut err = |path: &str, msg: String| errs.push((path.to_owned(), msg));

    check_selector_kinds(
        out,
        ap.selector.as_ref(),
        ap.target_ref.as_ref(),
        &ap.target_refs,
    );

    if ap.action == AuthorizationAction::Custom {
        match &ap.rules {
            None => err(
                "spec",
                "CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request".to_owned(),
            ),
            Some(_) => {
                if ap.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
                    err("spec.provider", "`provider.name` must not be empty".to_owned());
                }
            }
        }
        for (i, rule) in ap.rules.iter().flatten().enumerate() {
            for (j, from) in rule.from.iter().flatten().enumerate() {
                let Some(src) = &from.source else {
                    continue;
                };
                let p = format!("spec.rules[{i}].from[{j}].source");
                for (name, set) in [
                    ("From.Namespaces", nonempty(&src.namespaces)),
                    ("From.NotNamespaces", nonempty(&src.not_namespaces)),
                    ("From.ServiceAccounts", nonempty(&src.service_accounts)),
                    (
                        "From.NotServiceAccounts",
                        nonempty(&src.not_service_accounts),
                    ),
                    ("From.Principals", nonempty(&src.principals)),
                    ("From.NotPrincipals", nonempty(&src.not_principals)),
                    ("From.RequestPrincipals", nonempty(&src.request_principals)),
                    (
                        "From.NotRequestPrincipals",
                        nonempty(&src.not_request_principals),
                    ),
                ] {
                    if set {
                        err(
                            &p,
                            format!("{name} is currently not supported with CUSTOM action"),
                        );
                    }
                }
            }
            for (j, when) in rule.when.iter().enumerate() {
                let k = when.key.as_str();
                if matches!(
                    k,
                    "source.namespace" | "source.serviceAccount" | "source.principal"
                ) || k.starts_with("request.auth.")
                {
                    err(
                        &format!("spec.rules[{i}].when[{j}].key"),
                        format!("{k} is currently not supported with CUSTOM action"),
                    );
                }
            }
        }
    }
    if ap.provider.is_some() && ap.action != AuthorizationAction::Custom {
        err(
            "spec.provider",
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                ap.action
            ),
        );
    }
    if ap.action == AuthorizationAction::Deny && ap.rules.is_none() {
        err(
            "spec",
            "DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request".to_owned(),
        );
    }

    let mut warnings: Vec<(String, String)> = Vec::new();
    for (i, rule) in ap.rules.iter().flatten().enumerate() {
        let rpath = format!("spec.rules[{i}]");
        if rule.from.as_ref().is_some_and(Vec::is_empty) {
            err(
                &rpath,
                format!("`from` must not be empty, found at rule {i}"),
            );
        }
        let mut tcp_in_from = false;
        let mut tcp_in_to = false;
        let mut from_exists = false;
        let mut to_exists = false;
        for (j, from) in rule.from.iter().flatten().enumerate() {
            let p = format!("{rpath}.from[{j}]");
            let Some(src) = &from.source else {
                err(
                    &p,
                    format!("`from.source` must not be nil, found at rule {i}"),
                );
                continue;
            };
            from_exists = true;
            let sp = format!("{p}.source");
            check_source(&sp, src, i, &mut err);
            tcp_in_from |= [
                &src.not_principals,
                &src.principals,
                &src.ip_blocks,
                &src.not_ip_blocks,
                &src.namespaces,
                &src.not_namespaces,
                &src.remote_ip_blocks,
                &src.not_remote_ip_blocks,
                &src.service_accounts,
                &src.not_service_accounts,
            ]
            .iter()
            .any(|l| l.is_some());
        }
        if rule.to.as_ref().is_some_and(Vec::is_empty) {
            err(&rpath, format!("`to` must not be empty, found at rule {i}"));
        }
        for (j, to) in rule.to.iter().flatten().enumerate() {
            let p = format!("{rpath}.to[{j}]");
            let Some(op) = &to.operation else {
                err(
                    &p,
                    format!("`to.operation` must not be nil, found at rule {i}"),
                );
                continue;
            };
            to_exists = true;
            check_operation(&format!("{p}.operation"), op, i, &mut err);
            tcp_in_to |= op.ports.is_some() || op.not_ports.is_some();
        }
        for (j, c) in rule.when.iter().enumerate() {
            let p = format!("{rpath}.when[{j}]");
            if c.key.is_empty() {
                err(&p, "`key` must not be empty".to_owned());
                continue;
            }
            if c.values.is_empty() && c.not_values.is_empty() {
                err(
                    &p,
                    format!(
                        "at least one of `values` or `notValues` must be set for key {}",
                        c.key
                    ),
                );
                continue;
            }
            if let Err(e) = validate_attribute(&c.key, &c.values) {
                err(&p, format!("invalid `value` for `key` {}: {e}", c.key));
            }
            if let Err(e) = validate_attribute(&c.key, &c.not_values) {
                err(&p, format!("invalid `notValue` for `key` {}: {e}", c.key));
            }
        }
        if ((from_exists && !to_exists && !tcp_in_from) || (to_exists && !tcp_in_to))
            && ap.action == AuthorizationAction::Deny
        {
            warnings.push((
                rpath,
                "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope due to the use of only HTTP attributes in a DENY rule; it is recommended to explicitly specify the port".to_owned(),
            ));
        }
    }
    for (path, msg) in errs {
        out.push(Severity::Error, &path, format!("{prefix} {msg}"));
    }
    for (path, msg) in warnings {
        out.warn(&path, msg);
    }
}

fn nonempty(l: &Option<Vec<String>>) -> bool {
    l.as_ref().is_some_and(|v| !v.is_empty())
}

fn check_empty_values(key: &str, values: &[String]) -> Result<(), String> {
    if values.iter().any(String::is_empty) {
        return Err(format!("empty value not allowed, found in {key}"));
    }
    Ok(())
}

fn check_source(path: &str, src: &Source, rule: usize, err: &mut impl FnMut(&str, String)) {
    let len = |l: &Option<Vec<String>>| l.as_ref().map_or(0, Vec::len);
    if len(&src.principals)
        + len(&src.not_principals)
        + len(&src.namespaces)
        + len(&src.not_namespaces)
        > 0
        && len(&src.service_accounts) + len(&src.not_service_accounts) > 0
    {
        err(
            path,
            format!(
                "cannot set serviceAccounts with namespaces or principals, found at rule {rule}"
            ),
        );
    }
    let fields: [(&str, &Option<Vec<String>>); 12] = [
        ("Principals", &src.principals),
        ("RequestPrincipals", &src.request_principals),
        ("Namespaces", &src.namespaces),
        ("ServiceAccounts", &src.service_accounts),
        ("IpBlocks", &src.ip_blocks),
        ("RemoteIpBlocks", &src.remote_ip_blocks),
        ("NotPrincipals", &src.not_principals),
        ("NotRequestPrincipals", &src.not_request_principals),
        ("NotNamespaces", &src.not_namespaces),
        ("NotServiceAccounts", &src.not_service_accounts),
        ("NotIpBlocks", &src.not_ip_blocks),
        ("NotRemoteIpBlocks", &src.not_remote_ip_blocks),
    ];
    if fields.iter().all(|(_, l)| len(l) == 0) {
        err(
            path,
            format!("`from.source` must not be empty, found at rule {rule}"),
        );
    }
    for l in [
        &src.ip_blocks,
        &src.not_ip_blocks,
        &src.remote_ip_blocks,
        &src.not_remote_ip_blocks,
    ] {
        for e in validate_ips(l.as_deref().unwrap_or(&[])) {
            err(path, e);
        }
    }
    for (name, l) in fields {
        if let Err(e) = check_empty_values(name, l.as_deref().unwrap_or(&[])) {
            err(path, e);
        }
    }
}

fn check_operation(path: &str, op: &Operation, rule: usize, err: &mut impl FnMut(&str, String)) {
    let fields: [(&str, &Option<Vec<String>>); 8] = [
        ("Ports", &op.ports),
        ("Methods", &op.methods),
        ("Paths", &op.paths),
        ("Hosts", &op.hosts),
        ("NotPorts", &op.not_ports),
        ("NotMethods", &op.not_methods),
        ("NotPaths", &op.not_paths),
        ("NotHosts", &op.not_hosts),
    ];
    if fields
        .iter()
        .all(|(_, l)| l.as_ref().is_none_or(Vec::is_empty))
    {
        err(
            path,
            format!("`to.operation` must not be empty, found at rule {rule}"),
        );
    }
    for l in [&op.ports, &op.not_ports] {
        for e in validate_ports(l.as_deref().unwrap_or(&[])) {
            err(path, e);
        }
    }
    for (name, l) in fields {
        if let Err(e) = check_empty_values(name, l.as_deref().unwrap_or(&[])) {
            err(path, e);
        }
    }
    for (name, l) in [("Paths", &op.paths), ("NotPaths", &op.not_paths)] {
        if l.as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|p| unsupported_path_template(p))
        {
            err(
                path,
                format!("invalid or unsupported path template, found in {name}"),
            );
        }
    }
}

/// Path templates (`{*}`, `{**}`) must not use named variables, bare `*` segments or `{}`.
fn unsupported_path_template(path: &str) -> bool {
    if !(path.contains("{*}") || path.contains("{**}")) {
        return false;
    }
    let b = path.as_bytes();
    for i in 0..b.len() {
        let rest = &path[i..];
        // `{name}` or `{}` (but not `{*}` / `{**}`), and `{name=*}` / `{name=**}`.
        if let Some(inner) = rest.strip_prefix('{')
            && let Some(end) = inner.find('}')
        {
            let body = &inner[..end];
            let word = |s: &str| s.chars().all(|c| c.is_alphanumeric() || c == '_');
            if word(body) {
                return true;
            }
            if i > 0
                && b[i - 1] == b'/'
                && let Some((name, pat)) = body.split_once('=')
                && !name.is_empty()
                && word(name)
                && (pat == "*" || pat == "**")
            {
                return true;
            }
        }
        if rest.starts_with("/*") || rest.starts_with("*/") {
            return true;
        }
    }
    false
}

fn validate_ips(ips: &[String]) -> Vec<String> {
    let mut errs = Vec::new();
    for v in ips {
        if v.contains('/') {
            if v.parse::<ipnet::IpNet>().is_err() {
                errs.push(format!(
                    "bad CIDR range ({v}): netip.ParsePrefix({v:?}): invalid"
                ));
            }
        } else if !is_ip(v) {
            errs.push(format!("bad IP address ({v})"));
        }
    }
    errs
}

fn validate_ports(ports: &[String]) -> Vec<String> {
    let mut errs = Vec::new();
    for p in ports {
        match p.parse::<u64>() {
            Ok(n) if n <= 65535 => {}
            Ok(_) => errs.push(format!("bad port ({p}): <nil>")),
            Err(e) => errs.push(format!("bad port ({p}): {e}")),
        }
    }
    errs
}

fn validate_map_key(key: &str) -> Result<(), String> {
    if let Some(open) = key.find('[')
        && key.ends_with(']')
        && open > 0
        && open + 2 < key.len()
    {
        return Ok(());
    }
    Err(format!("bad key ({key}): should have format a[b]"))
}

/// A condition's key and values.
fn validate_attribute(key: &str, values: &[String]) -> Result<(), String> {
    check_empty_values(key, values)?;
    let ips = |values: &[String]| {
        let errs = validate_ips(values);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    };
    match key {
        k if k.starts_with("request.headers") => validate_map_key(k),
        "source.ip" | "remote.ip" | "destination.ip" => ips(values),
        "source.namespace"
        | "source.principal"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => Ok(()),
        k if k.starts_with("request.auth.claims") => validate_map_key(k),
        "destination.port" => {
            let errs = validate_ports(values);
            if errs.is_empty() {
                Ok(())
            } else {
                Err(errs.join("; "))
            }
        }
        k if k.starts_with("experimental.envoy.filters.") => validate_map_key(k),
        "destination.namespace" => Err(format!(
            "attribute {key} is replaced by the metadata.namespace"
        )),
        k if k.starts_with("destination.labels") => Err(format!(
            "attribute {key} is replaced by the workload selector"
        )),
        "destination.name" | "destination.user" => Err(format!(
            "deprecated attribute {key}: only supported in v1alpha1"
        )),
        _ => Err(format!("unknown attribute: {key}")),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn peer_authentication() {
        accepts("PeerAuthentication", "mtls: {mode: STRICT}\n");
        accepts(
            "PeerAuthentication",
            "selector:\n  matchLabels: {app: a}\nportLevelMtls:\n  8080: {mode: DISABLE}\n",
        );
        rejects(
            "PeerAuthentication",
            "portLevelMtls:\n  8080: {mode: DISABLE}\n",
            "cannot have port level mTLS",
        );
        rejects(
            "PeerAuthentication",
            "selector:\n  matchLabels: {app: a}\nportLevelMtls: {}\n",
            "at least one element",
        );
        rejects(
            "PeerAuthentication",
            "selector:\n  matchLabels: {app: a}\nportLevelMtls:\n  0: {mode: DISABLE}\n",
            "port must be in range",
        );
        rejects("PeerAuthentication", "mtls: {mode: STRICTER}\n", "STRICTER");
        warns("PeerAuthentication", "selector: {}\n", "without labels");
    }

    #[test]
    fn request_authentication() {
        accepts(
            "RequestAuthentication",
            "selector:\n  matchLabels: {app: a}\njwtRules:\n- issuer: https://issuer\n  jwksUri: https://issuer/jwks.json\n  fromHeaders: [{name: x-jwt, prefix: \"Bearer \"}]\n  outputClaimToHeaders: [{header: x-sub, claim: sub}]\n",
        );
        rejects(
            "RequestAuthentication",
            "jwtRules:\n- audiences: [\"\"]\n",
            "issuer or jwksUri",
        );
        rejects(
            "RequestAuthentication",
            "jwtRules:\n- issuer: a\n  jwksUri: ftp://x/y\n",
            "scheme",
        );
        rejects(
            "RequestAuthentication",
            "jwtRules:\n- issuer: a\n  jwks: \"not json\"\n",
            "jwks parse error",
        );
        rejects(
            "RequestAuthentication",
            "jwtRules:\n- issuer: a\n  outputClaimToHeaders: [{header: \"bad header\", claim: sub}]\n",
            "not a valid header name",
        );
        rejects(
            "RequestAuthentication",
            "selector:\n  matchLabels: {app: a}\ntargetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n",
            "only one of targetRefs or workloadSelector",
        );
        rejects(
            "RequestAuthentication",
            "targetRef: {kind: Deployment, group: apps, name: d}\n",
            "targetRef must be to one of",
        );
    }

    #[test]
    fn authorization_actions() {
        accepts("AuthorizationPolicy", "{}\n");
        accepts(
            "AuthorizationPolicy",
            "action: DENY\nrules:\n- to:\n  - operation: {ports: [\"8080\"], paths: [/admin]}\n",
        );
        rejects(
            "AuthorizationPolicy",
            "action: DENY\n",
            "DENY action without `rules`",
        );
        rejects(
            "AuthorizationPolicy",
            "action: CUSTOM\nrules:\n- {}\n",
            "`provider.name` must not be empty",
        );
        rejects(
            "AuthorizationPolicy",
            "action: ALLOW\nprovider: {name: ext}\nrules:\n- {}\n",
            "must not be with non CUSTOM action",
        );
        accepts(
            "AuthorizationPolicy",
            "action: CUSTOM\nprovider: {name: ext}\nrules:\n- to:\n  - operation: {paths: [/x]}\n",
        );
        rejects(
            "AuthorizationPolicy",
            "action: CUSTOM\nprovider: {name: ext}\nrules:\n- from:\n  - source: {principals: [a]}\n",
            "not supported with CUSTOM action",
        );
        warns(
            "AuthorizationPolicy",
            "action: DENY\nrules:\n- to:\n  - operation: {methods: [GET]}\n",
            "deny all traffic to TCP ports",
        );
    }

    #[test]
    fn authorization_rules() {
        rejects(
            "AuthorizationPolicy",
            "rules:\n- from: []\n",
            "`from` must not be empty",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- from:\n  - source: {}\n",
            "`from.source` must not be empty",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- from:\n  - source: {ipBlocks: [\"1.2.3.4/99\"]}\n",
            "bad CIDR",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- from:\n  - source: {principals: [\"\"]}\n",
            "empty value not allowed",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- from:\n  - source: {namespaces: [a], serviceAccounts: [a/b]}\n",
            "cannot set serviceAccounts",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- to:\n  - operation: {ports: [http]}\n",
            "bad port",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- to:\n  - operation: {paths: [\"/{*}/foo/{bar}\"]}\n",
            "path template",
        );
        accepts(
            "AuthorizationPolicy",
            "rules:\n- to:\n  - operation: {paths: [\"/foo/{*}/bar/{**}\"]}\n",
        );
        accepts(
            "AuthorizationPolicy",
            "rules:\n- when:\n  - key: request.headers[x-a]\n    values: [b]\n  - key: source.ip\n    notValues: [10.0.0.0/8]\n",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- when:\n  - key: request.headers\n    values: [b]\n",
            "should have format a[b]",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- when:\n  - key: source.ip\n",
            "at least one of `values` or `notValues`",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- when:\n  - key: foo.bar\n    values: [x]\n",
            "unknown attribute",
        );
        rejects(
            "AuthorizationPolicy",
            "rules:\n- when:\n  - key: destination.labels[app]\n    values: [x]\n",
            "replaced by the workload selector",
        );
    }

    #[test]
    fn dry_run_annotation() {
        let res = object(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n  annotations:\n    istio.io/dry-run: maybe\nspec: {}\n",
        );
        assert!(errors(&res).iter().any(|e| e.contains("invalid value")));
        let res = object(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: a\n  annotations:\n    istio.io/dry-run: \"true\"\nspec: {}\n",
        );
        assert!(errors(&res).is_empty());
        let res = object(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: a\n  annotations:\n    istio.io/dry-run: \"true\"\nspec: {}\n",
        );
        assert!(
            errors(&res)
                .iter()
                .any(|e| e.contains("unsupported annotation"))
        );
    }

    #[test]
    fn templates() {
        assert!(unsupported_path_template("/{*}/foo/{bar}"));
        assert!(unsupported_path_template("/{*}/*/x"));
        assert!(!unsupported_path_template("/{*}/foo/{**}"));
        assert!(!unsupported_path_template("/foo/{bar}"));
    }
}
