//! VirtualService: how requests to a set of hosts are routed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::{Destination, Percent, StringMatch};
use crate::model::{Duration, istio_enum};

/// `networking.istio.io/VirtualService` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VirtualService {
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
    pub tls: Vec<TlsRoute>,
    pub tcp: Vec<TcpRoute>,
    #[serde(alias = "export_to")]
    pub export_to: Vec<String>,
}

/// One HTTP routing rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRoute {
    pub name: String,
    #[serde(rename = "match")]
    pub r#match: Vec<HttpMatchRequest>,
    pub route: Vec<HttpRouteDestination>,
    pub redirect: Option<HttpRedirect>,
    #[serde(alias = "direct_response")]
    pub direct_response: Option<HttpDirectResponse>,
    pub delegate: Option<Delegate>,
    pub rewrite: Option<HttpRewrite>,
    pub timeout: Option<Duration>,
    pub retries: Option<HttpRetry>,
    pub fault: Option<HttpFaultInjection>,
    pub mirror: Option<Destination>,
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated: use `mirrorPercentage`.
    #[serde(
        alias = "mirror_percent",
        deserialize_with = "crate::model::num::opt_int"
    )]
    pub mirror_percent: Option<u32>,
    #[serde(alias = "mirror_percentage")]
    pub mirror_percentage: Option<Percent>,
    #[serde(alias = "cors_policy")]
    pub cors_policy: Option<CorsPolicy>,
    pub headers: Option<Headers>,
}

/// A delegate VirtualService an HTTP route hands over to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Delegate {
    pub name: String,
    pub namespace: String,
}

/// Header manipulation for requests and responses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Headers {
    pub request: Option<HeaderOperations>,
    pub response: Option<HeaderOperations>,
}

/// Headers to set, add and remove.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeaderOperations {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// One TLS (SNI-based) routing rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsRoute {
    #[serde(rename = "match")]
    pub r#match: Vec<TlsMatchAttributes>,
    pub route: Vec<RouteDestination>,
}

/// One TCP routing rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpRoute {
    #[serde(rename = "match")]
    pub r#match: Vec<L4MatchAttributes>,
    pub route: Vec<RouteDestination>,
}

/// The conditions an HTTP request must meet for a rule to apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpMatchRequest {
    pub name: String,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    pub headers: BTreeMap<String, StringMatch>,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub port: u32,
    #[serde(alias = "source_labels")]
    pub source_labels: BTreeMap<String, String>,
    pub gateways: Vec<String>,
    #[serde(alias = "query_params")]
    pub query_params: BTreeMap<String, StringMatch>,
    #[serde(alias = "ignore_uri_case")]
    pub ignore_uri_case: bool,
    #[serde(alias = "without_headers")]
    pub without_headers: BTreeMap<String, StringMatch>,
    #[serde(alias = "source_namespace")]
    pub source_namespace: String,
    #[serde(alias = "stat_prefix")]
    pub stat_prefix: String,
}

/// A weighted HTTP destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRouteDestination {
    pub destination: Option<Destination>,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub weight: i32,
    pub headers: Option<Headers>,
}

/// A weighted L4 destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteDestination {
    pub destination: Option<Destination>,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub weight: i32,
}

/// The conditions a TCP connection must meet for a rule to apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct L4MatchAttributes {
    #[serde(alias = "destination_subnets")]
    pub destination_subnets: Vec<String>,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub port: u32,
    #[serde(alias = "source_subnet")]
    pub source_subnet: String,
    #[serde(alias = "source_labels")]
    pub source_labels: BTreeMap<String, String>,
    pub gateways: Vec<String>,
    #[serde(alias = "source_namespace")]
    pub source_namespace: String,
}

/// The conditions a TLS connection must meet for a rule to apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TlsMatchAttributes {
    #[serde(alias = "sni_hosts")]
    pub sni_hosts: Vec<String>,
    #[serde(alias = "destination_subnets")]
    pub destination_subnets: Vec<String>,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub port: u32,
    #[serde(alias = "source_labels")]
    pub source_labels: BTreeMap<String, String>,
    pub gateways: Vec<String>,
    #[serde(alias = "source_namespace")]
    pub source_namespace: String,
}

istio_enum! {
    /// Which port a redirect keeps.
    pub enum RedirectPortSelection {
        FromProtocolDefault = "FROM_PROTOCOL_DEFAULT",
        FromRequestPort = "FROM_REQUEST_PORT",
    }
}

/// An HTTP redirect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRedirect {
    pub uri: String,
    pub authority: String,
    /// One of `port` and `derivePort` (a oneof).
    #[serde(deserialize_with = "crate::model::num::opt_int")]
    pub port: Option<u32>,
    #[serde(alias = "derive_port")]
    pub derive_port: Option<RedirectPortSelection>,
    pub scheme: String,
    #[serde(alias = "redirect_code", deserialize_with = "crate::model::num::int")]
    pub redirect_code: u32,
}

/// A fixed response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpDirectResponse {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub status: u32,
    pub body: Option<HttpBody>,
}

/// The body of a fixed response: a string or base64 bytes (a oneof).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpBody {
    pub string: Option<String>,
    pub bytes: Option<String>,
}

/// URI and authority rewrites.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRewrite {
    pub uri: String,
    pub authority: String,
    #[serde(alias = "uri_regex_rewrite")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex-based URI rewrite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegexRewrite {
    #[serde(rename = "match")]
    pub r#match: String,
    pub rewrite: String,
}

/// Retry policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpRetry {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub attempts: i32,
    #[serde(alias = "per_try_timeout")]
    pub per_try_timeout: Option<Duration>,
    #[serde(alias = "retry_on")]
    pub retry_on: String,
    #[serde(alias = "retry_remote_localities")]
    pub retry_remote_localities: Option<bool>,
    #[serde(alias = "retry_ignore_previous_hosts")]
    pub retry_ignore_previous_hosts: Option<bool>,
    pub backoff: Option<Duration>,
}

/// CORS policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CorsPolicy {
    /// Deprecated form of `allowOrigins` (exact matches).
    #[serde(alias = "allow_origin")]
    pub allow_origin: Vec<String>,
    #[serde(alias = "allow_origins")]
    pub allow_origins: Vec<StringMatch>,
    #[serde(alias = "allow_methods")]
    pub allow_methods: Vec<String>,
    #[serde(alias = "allow_headers")]
    pub allow_headers: Vec<String>,
    #[serde(alias = "expose_headers")]
    pub expose_headers: Vec<String>,
    #[serde(alias = "max_age")]
    pub max_age: Option<Duration>,
    #[serde(alias = "allow_credentials")]
    pub allow_credentials: Option<bool>,
    #[serde(alias = "unmatched_preflights")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

istio_enum! {
    /// What to do with preflight requests that match no CORS policy.
    pub enum UnmatchedPreflights {
        Unspecified = "UNSPECIFIED",
        Forward = "FORWARD",
        Ignore = "IGNORE",
    }
}

/// Fault injection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpFaultInjection {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

/// Injected delay: fixed or exponential (a oneof).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultDelay {
    /// Deprecated: use `percentage`.
    #[serde(deserialize_with = "crate::model::num::int")]
    pub percent: i32,
    #[serde(alias = "fixed_delay")]
    pub fixed_delay: Option<Duration>,
    #[serde(alias = "exponential_delay")]
    pub exponential_delay: Option<Duration>,
    pub percentage: Option<Percent>,
}

/// Injected abort: an HTTP status, gRPC status or HTTP/2 error (a oneof).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FaultAbort {
    #[serde(alias = "http_status", deserialize_with = "crate::model::num::opt_int")]
    pub http_status: Option<i32>,
    #[serde(alias = "grpc_status")]
    pub grpc_status: Option<String>,
    #[serde(alias = "http2_error")]
    pub http2_error: Option<String>,
    pub percentage: Option<Percent>,
}

/// One mirror destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpMirrorPolicy {
    pub destination: Option<Destination>,
    pub percentage: Option<Percent>,
}
