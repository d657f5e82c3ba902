//! The settings a manifest is rendered from: a profile's defaults, then `--set KEY=VALUE`
//! overrides, each checked against the key's type so a typo fails with the list of keys.

use std::fmt;

use clap::ValueEnum;
use thiserror::Error;

/// A named set of defaults, as Istio's installation profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The control plane only: CRDs, meshd, its RBAC and webhooks.
    Minimal,
    /// Minimal plus an ingress gateway (Istio's default profile).
    Default,
    /// Default plus an egress gateway, access logs, and small resource requests for a
    /// laptop cluster.
    Demo,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Minimal => "minimal",
            Profile::Default => "default",
            Profile::Demo => "demo",
        })
    }
}

/// Everything the rendered objects depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub profile: Profile,
    /// The namespace the control plane runs in.
    pub namespace: String,
    /// The image registry and repository prefix (`HUB/meshd:TAG`).
    pub hub: String,
    pub tag: String,
    pub meshd_replicas: u32,
    pub meshd_cpu: String,
    pub meshd_memory: String,
    pub meshd_log_level: String,
    /// The injection webhook (MutatingWebhookConfiguration).
    pub injection_webhook: bool,
    /// The validation webhook (ValidatingWebhookConfiguration).
    pub validation_webhook: bool,
    /// The validation webhook's failure policy (`Fail` or `Ignore`).
    pub validation_failure_policy: String,
    /// The injection webhooks' failure policy: `Fail` by default, as Istio (meshd serves
    /// `/inject` over TLS and sets the CA bundle); `Ignore` lets pods be created without a
    /// sidecar while meshd is down.
    pub injection_failure_policy: String,
    pub ingress_gateway: bool,
    pub ingress_service_type: String,
    pub egress_gateway: bool,
    pub gateway_replicas: u32,
    pub access_log: bool,
    /// The sidecar's image name under `hub`/`tag` (or a full image reference), written
    /// into the injector ConfigMap (`values.global.proxy.image`).
    pub proxy_image: String,
    /// Inject pods of labelled namespaces that do not ask (the injector ConfigMap's
    /// `policy: enabled`), or only pods that ask (`disabled`).
    pub auto_inject: bool,
}

/// A `--set` that could not be applied.
#[derive(Debug, Error, PartialEq)]
pub enum SetError {
    #[error("--set {0:?}: expected KEY=VALUE")]
    NoEquals(String),
    #[error("--set {key}: unknown key (known keys: {known})")]
    UnknownKey { key: String, known: String },
    #[error("--set {key}={value}: {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// Every key `--set` accepts, with what it holds (for errors and `--help`).
pub const KEYS: &[(&str, &str)] = &[
    ("namespace", "the control plane's namespace"),
    ("hub", "image registry/prefix"),
    ("tag", "image tag"),
    ("meshd.replicas", "meshd replicas"),
    ("meshd.resources.requests.cpu", "meshd CPU request"),
    ("meshd.resources.requests.memory", "meshd memory request"),
    ("meshd.logLevel", "meshd log level"),
    (
        "webhooks.injection.enabled",
        "install the injection webhook",
    ),
    (
        "webhooks.injection.failurePolicy",
        "Fail or Ignore for the injection webhooks",
    ),
    (
        "webhooks.validation.enabled",
        "install the validation webhook",
    ),
    (
        "webhooks.validation.failurePolicy",
        "Fail or Ignore for the validation webhook",
    ),
    ("gateways.ingress.enabled", "install an ingress gateway"),
    (
        "gateways.ingress.serviceType",
        "the ingress gateway Service's type",
    ),
    ("gateways.egress.enabled", "install an egress gateway"),
    ("gateways.replicas", "replicas of each gateway"),
    ("meshConfig.accessLog", "proxies write access logs"),
    (
        "global.proxy.image",
        "the sidecar image (a name under hub/tag, or a full reference)",
    ),
    (
        "global.proxy.autoInject",
        "enabled or disabled: the injection policy",
    ),
];

impl Values {
    /// The defaults of `profile`.
    pub fn for_profile(profile: Profile) -> Values {
        let demo = profile == Profile::Demo;
        Values {
            profile,
            namespace: "istio-system".into(),
            hub: "ghcr.io/meshctl".into(),
            tag: env!("CARGO_PKG_VERSION").into(),
            meshd_replicas: 1,
            meshd_cpu: if demo { "10m" } else { "500m" }.into(),
            meshd_memory: if demo { "100Mi" } else { "2048Mi" }.into(),
            meshd_log_level: "info".into(),
            injection_webhook: true,
            validation_webhook: true,
            validation_failure_policy: "Ignore".into(),
            injection_failure_policy: "Fail".into(),
            ingress_gateway: profile != Profile::Minimal,
            ingress_service_type: "LoadBalancer".into(),
            egress_gateway: demo,
            gateway_replicas: 1,
            access_log: demo,
            proxy_image: "mesh-proxy".into(),
            auto_inject: true,
        }
    }

    /// Applies one `KEY=VALUE`.
    pub fn set(&mut self, assignment: &str) -> Result<(), SetError> {
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(SetError::NoEquals(assignment.to_owned()));
        };
        let (key, value) = (key.trim(), value.trim());
        let bad = |expected| SetError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        let boolean = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad("expected true or false")),
        };
        let count = || {
            value
                .parse::<u32>()
                .map_err(|_| bad("expected a whole number"))
        };
        let quantity = || {
            if is_quantity(value) {
                Ok(value.to_owned())
            } else {
                Err(bad(
                    "expected a Kubernetes quantity (for example 500m, 2, 128Mi, 1Gi)",
                ))
            }
        };
        let name = || {
            if is_dns_label(value) {
                Ok(value.to_owned())
            } else {
                Err(bad(
                    "expected a DNS label (lower-case letters, digits and '-', at most 63)",
                ))
            }
        };
        let nonempty = || {
            if value.is_empty() || value.contains(char::is_whitespace) {
                Err(bad("expected a non-empty value without spaces"))
            } else {
                Ok(value.to_owned())
            }
        };
        match key {
            "namespace" => self.namespace = name()?,
            "hub" => self.hub = nonempty()?.trim_end_matches('/').to_owned(),
            "tag" => self.tag = nonempty()?,
            "meshd.replicas" => self.meshd_replicas = count()?,
            "meshd.resources.requests.cpu" => self.meshd_cpu = quantity()?,
            "meshd.resources.requests.memory" => self.meshd_memory = quantity()?,
            "meshd.logLevel" => {
                self.meshd_log_level = match value {
                    "trace" | "debug" | "info" | "warn" | "error" => value.to_owned(),
                    _ => return Err(bad("expected trace, debug, info, warn or error")),
                }
            }
            "webhooks.injection.enabled" => self.injection_webhook = boolean()?,
            "webhooks.validation.enabled" => self.validation_webhook = boolean()?,
            "webhooks.injection.failurePolicy" => {
                self.injection_failure_policy = match value {
                    "Fail" | "Ignore" => value.to_owned(),
                    _ => return Err(bad("expected Fail or Ignore")),
                }
            }
            "webhooks.validation.failurePolicy" => {
                self.validation_failure_policy = match value {
                    "Fail" | "Ignore" => value.to_owned(),
                    _ => return Err(bad("expected Fail or Ignore")),
                }
            }
            "gateways.ingress.enabled" => self.ingress_gateway = boolean()?,
            "gateways.ingress.serviceType" => {
                self.ingress_service_type = match value {
                    "ClusterIP" | "NodePort" | "LoadBalancer" => value.to_owned(),
                    _ => return Err(bad("expected ClusterIP, NodePort or LoadBalancer")),
                }
            }
            "gateways.egress.enabled" => self.egress_gateway = boolean()?,
            "gateways.replicas" => self.gateway_replicas = count()?,
            "meshConfig.accessLog" => self.access_log = boolean()?,
            "global.proxy.image" => self.proxy_image = nonempty()?,
            "global.proxy.autoInject" => {
                self.auto_inject = match value {
                    "enabled" => true,
                    "disabled" => false,
                    _ => return Err(bad("expected enabled or disabled")),
                }
            }
            _ => {
                return Err(SetError::UnknownKey {
                    key: key.to_owned(),
                    known: KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }

    /// The image of one of our binaries.
    pub fn image(&self, binary: &str) -> String {
        format!("{}/{binary}:{}", self.hub, self.tag)
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional suffix.
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|n| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit() || c == '.')
                && n.chars().filter(|c| *c == '.').count() <= 1
                && n != "."
        })
    })
}

/// An RFC 1123 label, as namespace names must be.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_differ_where_they_should() {
        let minimal = Values::for_profile(Profile::Minimal);
        let default = Values::for_profile(Profile::Default);
        let demo = Values::for_profile(Profile::Demo);
        assert!(!minimal.ingress_gateway && default.ingress_gateway && demo.ingress_gateway);
        assert!(!default.egress_gateway && demo.egress_gateway);
        assert_eq!(demo.meshd_cpu, "10m");
    }

    #[test]
    fn set_applies_typed_values() {
        let mut v = Values::for_profile(Profile::Minimal);
        v.set("meshd.replicas=3").unwrap();
        v.set("gateways.ingress.enabled=true").unwrap();
        v.set("hub=registry.example/mesh/").unwrap();
        v.set("meshd.resources.requests.memory=1.5Gi").unwrap();
        assert_eq!(v.meshd_replicas, 3);
        assert!(v.ingress_gateway);
        assert_eq!(
            v.image("meshd"),
            format!("registry.example/mesh/meshd:{}", v.tag)
        );
        assert_eq!(v.meshd_memory, "1.5Gi");
    }

    #[test]
    fn set_errors_name_the_key_and_what_was_expected() {
        let mut v = Values::for_profile(Profile::Default);
        let e = v.set("meshd.replica=2").unwrap_err();
        assert!(matches!(&e, SetError::UnknownKey { key, .. } if key == "meshd.replica"));
        assert!(e.to_string().contains("meshd.replicas"), "{e}");
        let e = v.set("meshd.replicas=two").unwrap_err().to_string();
        assert_eq!(e, "--set meshd.replicas=two: expected a whole number");
        let e = v
            .set("gateways.egress.enabled=yes")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected true or false"), "{e}");
        assert_eq!(
            v.set("namespace").unwrap_err(),
            SetError::NoEquals("namespace".into())
        );
        assert!(v.set("namespace=Istio_System").is_err());
        assert!(v.set("meshd.resources.requests.cpu=lots").is_err());
        // A failed --set leaves the value it named unchanged.
        assert_eq!(v, Values::for_profile(Profile::Default));
    }
}
