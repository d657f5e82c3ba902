//! `security.istio.io` kinds: PeerAuthentication, RequestAuthentication and
//! AuthorizationPolicy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::networking::{MatchLabelsSelector, PolicyTargetReference};
use crate::model::{Duration, istio_enum};

istio_enum! {
    /// Mutual TLS mode for incoming connections.
    pub enum MtlsMode {
        Unset = "UNSET",
        Disable = "DISABLE",
        Permissive = "PERMISSIVE",
        Strict = "STRICT",
    }
}

/// `security.istio.io/PeerAuthentication` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PeerAuthentication {
    pub selector: Option<MatchLabelsSelector>,
    pub mtls: Option<MutualTls>,
    /// Per-port modes; `None` when absent (Istio tells absent from empty here).
    #[serde(alias = "port_level_mtls")]
    pub port_level_mtls: Option<BTreeMap<u32, MutualTls>>,
}

/// A mutual TLS setting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MutualTls {
    pub mode: MtlsMode,
}

/// `security.istio.io/RequestAuthentication` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RequestAuthentication {
    pub selector: Option<MatchLabelsSelector>,
    #[serde(alias = "target_ref")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(alias = "target_refs")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(alias = "jwt_rules")]
    pub jwt_rules: Vec<JwtRule>,
}

/// How to validate one issuer's JWTs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwtRule {
    pub issuer: String,
    pub audiences: Vec<String>,
    #[serde(alias = "jwks_uri")]
    pub jwks_uri: String,
    pub jwks: String,
    #[serde(alias = "from_headers")]
    pub from_headers: Vec<JwtHeader>,
    #[serde(alias = "from_params")]
    pub from_params: Vec<String>,
    #[serde(alias = "output_payload_to_header")]
    pub output_payload_to_header: String,
    #[serde(alias = "from_cookies")]
    pub from_cookies: Vec<String>,
    #[serde(alias = "forward_original_token")]
    pub forward_original_token: bool,
    #[serde(alias = "output_claim_to_headers")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    pub timeout: Option<Duration>,
}

/// A header a JWT is read from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwtHeader {
    pub name: String,
    pub prefix: String,
}

/// A claim copied to a header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

istio_enum! {
    /// What an authorization policy does with matching requests.
    pub enum AuthorizationAction {
        Allow = "ALLOW",
        Deny = "DENY",
        Audit = "AUDIT",
        Custom = "CUSTOM",
    }
}

/// `security.istio.io/AuthorizationPolicy` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthorizationPolicy {
    pub selector: Option<MatchLabelsSelector>,
    #[serde(alias = "target_ref")]
    pub target_ref: Option<PolicyTargetReference>,
    #[serde(alias = "target_refs")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// `None` when absent: Istio tells "no rules" from "an empty list of rules".
    pub rules: Option<Vec<Rule>>,
    pub action: AuthorizationAction,
    pub provider: Option<ExtensionProvider>,
}

/// The external authorizer of a CUSTOM policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtensionProvider {
    pub name: String,
}

/// One rule: sources, operations and conditions, all of which must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Rule {
    pub from: Option<Vec<RuleFrom>>,
    pub to: Option<Vec<RuleTo>>,
    pub when: Vec<Condition>,
}

/// A source clause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleFrom {
    pub source: Option<Source>,
}

/// An operation clause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleTo {
    pub operation: Option<Operation>,
}

/// Request sources. Lists are `None` when absent (Istio tells absent from empty here).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Source {
    pub principals: Option<Vec<String>>,
    #[serde(alias = "not_principals")]
    pub not_principals: Option<Vec<String>>,
    #[serde(alias = "request_principals")]
    pub request_principals: Option<Vec<String>>,
    #[serde(alias = "not_request_principals")]
    pub not_request_principals: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    #[serde(alias = "not_namespaces")]
    pub not_namespaces: Option<Vec<String>>,
    #[serde(alias = "ip_blocks")]
    pub ip_blocks: Option<Vec<String>>,
    #[serde(alias = "not_ip_blocks")]
    pub not_ip_blocks: Option<Vec<String>>,
    #[serde(alias = "remote_ip_blocks")]
    pub remote_ip_blocks: Option<Vec<String>>,
    #[serde(alias = "not_remote_ip_blocks")]
    pub not_remote_ip_blocks: Option<Vec<String>>,
    #[serde(alias = "service_accounts")]
    pub service_accounts: Option<Vec<String>>,
    #[serde(alias = "not_service_accounts")]
    pub not_service_accounts: Option<Vec<String>>,
}

/// Request operations. Lists are `None` when absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Operation {
    pub hosts: Option<Vec<String>>,
    #[serde(alias = "not_hosts")]
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    #[serde(alias = "not_ports")]
    pub not_ports: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    #[serde(alias = "not_methods")]
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    #[serde(alias = "not_paths")]
    pub not_paths: Option<Vec<String>>,
}

/// A condition on a request attribute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
    #[serde(alias = "not_values")]
    pub not_values: Vec<String>,
}
