//! Analyzers of Istio's `externalcontrolplane` package: the webhook configurations of a
//! cluster whose control plane (istiod) runs elsewhere. Their webhooks must reach istiod
//! either through an in-cluster Service or through a URL; a webhook with neither, or with a
//! URL that cannot work, breaks injection or validation, and a bare IP address works but is
//! fragile.
//!
//! Istio also resolves each URL's host name through DNS and reports names that do not
//! resolve. meshctl analyzes files and must give the same answer on any machine, so it does
//! not query DNS: it reports only what the text of the URL shows (unparseable URLs, URLs with
//! no host, and IP addresses).

use std::net::IpAddr;

use serde_json::Value;

use crate::analysis::json::{arr_at, str_at};
use crate::analysis::{AnalyzerDef, Context, catalog};
use crate::resource::{Resource, groups};

/// The analyzers of this module.
pub const ANALYZERS: &[AnalyzerDef] = &[AnalyzerDef {
    name: "externalcontrolplane.ExternalControlPlaneAnalyzer",
    description: "Checks that the remote IstioOperator resources reference an external control plane",
    messages: &[
        &catalog::INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
        &catalog::EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME,
    ],
    run: analyze_external_control_plane,
}];

/// The validating webhook configuration every install creates.
const DEFAULT_VALIDATOR: &str = "istiod-default-validator";
/// Istio's validating webhook configurations: `istio-validator[-rev]-<istio namespace>`.
const VALIDATOR_PREFIX: &str = "istio-validator";
/// Istio's injection webhook configurations: `istio-sidecar-injector[-rev][-namespace]`.
const INJECTOR_PREFIX: &str = "istio-sidecar-injector";

fn analyze_external_control_plane(ctx: &mut Context<'_>) {
    for config in ctx
        .store
        .of(groups::ADMISSION, "ValidatingWebhookConfiguration")
    {
        let name = config.name.as_str();
        if name == DEFAULT_VALIDATOR || name.starts_with(VALIDATOR_PREFIX) {
            check_webhooks(ctx, config);
        }
    }
    for config in ctx
        .store
        .of(groups::ADMISSION, "MutatingWebhookConfiguration")
    {
        if config.name.starts_with(INJECTOR_PREFIX) {
            check_webhooks(ctx, config);
        }
    }
}

/// Checks how each webhook of an Istio webhook configuration reaches istiod.
fn check_webhooks(ctx: &mut Context<'_>, config: &Resource) {
    for (i, hook) in arr_at(&config.json, "/webhooks").iter().enumerate() {
        let hook_name = str_at(hook, "/name").unwrap_or("");
        let client = hook.get("clientConfig").unwrap_or(&Value::Null);
        match client.get("url").filter(|u| !u.is_null()) {
            Some(url) => {
                let url = url.as_str().unwrap_or("");
                let path = format!("webhooks[{i}].clientConfig.url");
                match lint_url(url) {
                    UrlVerdict::Problem(problem) => ctx.report(
                        &catalog::INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
                        config,
                        &path,
                        &[&url, &hook_name, &problem],
                    ),
                    UrlVerdict::IpAddress => ctx.report(
                        &catalog::EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME,
                        config,
                        &path,
                        &[&url, &hook_name],
                    ),
                    UrlVerdict::HostName => {}
                }
            }
            None if client.get("service").is_none_or(Value::is_null) => ctx.report(
                &catalog::INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
                config,
                &format!("webhooks[{i}].clientConfig"),
                &[&"", &hook_name, &"is blank"],
            ),
            None => {}
        }
    }
}

/// What the text of a webhook URL says about how it reaches istiod.
#[derive(Debug, PartialEq, Eq)]
enum UrlVerdict {
    /// The URL cannot work; the text completes Istio's sentence "The hostname ... %s".
    Problem(&'static str),
    /// The host is a literal IP address.
    IpAddress,
    /// The host is a name (whether it resolves is not checked).
    HostName,
}

fn lint_url(url: &str) -> UrlVerdict {
    let Some(host) = url_hostname(url) else {
        return UrlVerdict::Problem("was provided in an invalid format");
    };
    if host.parse::<IpAddr>().is_ok() {
        UrlVerdict::IpAddress
    } else if host.is_empty() {
        // A URL without a host: no lookup can resolve it.
        UrlVerdict::Problem("cannot be resolved via a DNS lookup")
    } else {
        UrlVerdict::HostName
    }
}

/// The host name of a URL without port or IPv6 brackets (empty when the URL has no
/// authority), or `None` when the URL would not parse. Follows the rules of Go's `net/url`,
/// which Istio uses, for the parts that decide the host.
fn url_hostname(url: &str) -> Option<&str> {
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let (scheme, rest) = split_scheme(url)?;
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let Some(after_slashes) = rest.strip_prefix("//") else {
        if scheme.is_none() {
            // A relative reference: a colon in its first segment is refused.
            let first = rest.split('/').next().unwrap_or("");
            if first.contains(':') {
                return None;
            }
        }
        return Some("");
    };
    if scheme.is_none() && rest.starts_with("///") {
        return Some("");
    }
    let authority = after_slashes
        .split_once('/')
        .map_or(after_slashes, |(a, _)| a);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    parse_host(host)
}

/// Splits off a URL's scheme, if it has one. A URL that starts with a colon does not parse
/// (Go calls it a missing scheme), hence `None`.
fn split_scheme(url: &str) -> Option<(Option<&str>, &str)> {
    for (i, c) in url.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return None,
            ':' => return Some((Some(&url[..i]), &url[i + 1..])),
            _ => return Some((None, url)),
        }
    }
    Some((None, url))
}

/// Validates a URL host (with optional port) and returns its name part.
fn parse_host(host: &str) -> Option<&str> {
    let (name, port) = if let Some(inner) = host.strip_prefix('[') {
        let end = inner.rfind(']')?;
        (&inner[..end], &inner[end + 1..])
    } else {
        match host.rfind(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    if !valid_optional_port(port) {
        return None;
    }
    if host.starts_with('[') {
        return Some(name);
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || !c.is_ascii() || "-_.~!$&'()*+,;=%<>\"".contains(c);
    name.chars().all(allowed).then_some(name)
}

/// Go's rule for the port part of a host: empty, or a colon followed by digits only.
fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
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
        analyze_external_control_plane(&mut ctx);
        ctx.into_messages()
            .into_iter()
            .map(|m| (m.code().to_owned(), m.text))
            .collect()
    }

    #[test]
    fn service_backed_and_foreign_webhooks_are_quiet() {
        let msgs = run(r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: istio-sidecar-injector}
webhooks:
- name: sidecar-injector.istio.io
  clientConfig:
    service: {name: istiod, namespace: istio-system}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: cert-manager-webhook}
webhooks:
- name: webhook.cert-manager.io
  clientConfig: {}
"#);
        assert!(msgs.is_empty(), "{msgs:?}");
    }

    #[test]
    fn blank_and_ip_urls_are_reported() {
        let msgs = run(r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: istio-validator-istio-system}
webhooks:
- name: rev.validation.istio.io
  clientConfig: {}
- name: ip.validation.istio.io
  clientConfig: {url: "https://[2001:db8::1]:15017/validate"}
"#);
        assert_eq!(
            msgs,
            vec![
                (
                    "IST0163".to_owned(),
                    "The hostname () that was provided for the webhook (rev.validation.istio.io) to reach the ingress gateway on the external control plane cluster is blank. Traffic may not flow properly.".to_owned()
                ),
                (
                    "IST0164".to_owned(),
                    "The address (https://[2001:db8::1]:15017/validate) that was provided for the webhook (ip.validation.istio.io) to reach the ingress gateway on the external control plane cluster is an IP address. This is not recommended for a production environment.".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn urls_are_read_like_go() {
        assert_eq!(
            lint_url("https://istiod.example.com:15017/inject"),
            UrlVerdict::HostName
        );
        assert_eq!(
            lint_url("https://user@10.0.0.1/inject"),
            UrlVerdict::IpAddress
        );
        assert_eq!(
            lint_url("https://istiod.example.com:port/inject"),
            UrlVerdict::Problem("was provided in an invalid format")
        );
        assert_eq!(
            lint_url("://istiod"),
            UrlVerdict::Problem("was provided in an invalid format")
        );
        assert_eq!(
            lint_url(""),
            UrlVerdict::Problem("cannot be resolved via a DNS lookup")
        );
        assert_eq!(
            lint_url("https:/inject"),
            UrlVerdict::Problem("cannot be resolved via a DNS lookup")
        );
    }
}
