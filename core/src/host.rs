//! Host names as Istio treats them: short-name expansion, wildcards, and matching.

use std::net::IpAddr;

/// The cluster's DNS domain.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// Expands a short name (`reviews`) to `reviews.NS.svc.cluster.local`. Names with a dot, IP
/// addresses and `*` are left alone, as Istio leaves them.
pub fn fqdn(host: &str, namespace: &str) -> String {
    if host == "*" || host.contains('.') || host.parse::<IpAddr>().is_ok() {
        return host.to_owned();
    }
    let mut out = host.to_owned();
    if !namespace.is_empty() {
        out.push('.');
        out.push_str(namespace);
    }
    out.push_str(".svc.");
    out.push_str(DEFAULT_DOMAIN);
    out
}

/// The FQDN of a Kubernetes Service.
pub fn service_fqdn(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.{DEFAULT_DOMAIN}")
}

/// Whether a host is a wildcard (`*` or `*.example.com`).
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

/// Whether two hosts can name the same thing (Istio's `host.Name.Matches`): equal, or one is
/// a wildcard whose suffix the other ends with (`*.com` matches `a.com` and `*.a.com`).
pub fn matches(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if sa.len() > sb.len() {
                sa.ends_with(sb)
            } else {
                sb.ends_with(sa)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether every name `a` covers is also covered by `b` (Istio's `host.Name.SubsetOf`).
pub fn subset_of(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb),
        (None, Some(sb)) => a.ends_with(sb),
        (Some(_), None) => false,
        (None, None) => a == b,
    }
}

/// Splits a Gateway/Sidecar host of the form `ns/host` into its namespace part (`*`, `.`,
/// `~` or a name) and the host. A host without `/` has namespace `*`.
pub fn split_namespaced(host: &str) -> (&str, &str) {
    match host.split_once('/') {
        Some((ns, h)) => (ns, h),
        None => ("*", host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion() {
        assert_eq!(fqdn("reviews", "shop"), "reviews.shop.svc.cluster.local");
        assert_eq!(fqdn("reviews.shop", "x"), "reviews.shop");
        assert_eq!(fqdn("*", "x"), "*");
        assert_eq!(fqdn("10.0.0.1", "x"), "10.0.0.1");
        assert_eq!(fqdn("::1", "x"), "::1");
    }

    #[test]
    fn wildcard_matching() {
        assert!(matches("*.com", "a.com"));
        assert!(matches("a.com", "*.com"));
        assert!(matches("*.a.com", "*.com"));
        assert!(matches("*", "anything.org"));
        assert!(!matches("a.com", "b.com"));
        assert!(subset_of("a.b.com", "*.com"));
        assert!(subset_of("*.b.com", "*.com"));
        assert!(!subset_of("*.com", "*.b.com"));
        assert!(!subset_of("*.com", "a.com"));
    }
}
