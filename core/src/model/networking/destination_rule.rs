//! DestinationRule: policies applied to traffic for a host after routing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::{MatchLabelsSelector, PortSelector};
use crate::model::{Duration, istio_enum};

/// `networking.istio.io/DestinationRule` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DestinationRule {
    pub host: String,
    #[serde(alias = "traffic_policy")]
    pub traffic_policy: Option<TrafficPolicy>,
    pub subsets: Vec<Subset>,
    #[serde(alias = "export_to")]
    pub export_to: Vec<String>,
    #[serde(alias = "workload_selector")]
    pub workload_selector: Option<MatchLabelsSelector>,
}

/// Load balancing, connection pool, outlier detection and TLS for a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TrafficPolicy {
    #[serde(alias = "load_balancer")]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(alias = "connection_pool")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(alias = "outlier_detection")]
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
    #[serde(alias = "port_level_settings")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    pub tunnel: Option<TunnelSettings>,
    #[serde(alias = "proxy_protocol")]
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// A traffic policy for one port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    #[serde(alias = "load_balancer")]
    pub load_balancer: Option<LoadBalancerSettings>,
    #[serde(alias = "connection_pool")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(alias = "outlier_detection")]
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
}

/// Tunneling (HTTP CONNECT or POST) to the destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TunnelSettings {
    pub protocol: String,
    #[serde(alias = "target_host")]
    pub target_host: String,
    #[serde(alias = "target_port", deserialize_with = "crate::model::num::int")]
    pub target_port: u32,
}

istio_enum! {
    /// PROXY protocol version.
    pub enum ProxyProtocolVersion {
        V1 = "V1",
        V2 = "V2",
    }
}

/// PROXY protocol towards the destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyProtocol {
    pub version: ProxyProtocolVersion,
}

/// A named group of the destination's endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    #[serde(alias = "traffic_policy")]
    pub traffic_policy: Option<TrafficPolicy>,
}

istio_enum! {
    /// Standard load balancing algorithms.
    pub enum SimpleLb {
        Unspecified = "UNSPECIFIED",
        LeastConn = "LEAST_CONN",
        Random = "RANDOM",
        Passthrough = "PASSTHROUGH",
        RoundRobin = "ROUND_ROBIN",
        LeastRequest = "LEAST_REQUEST",
    }
}

/// Load balancing. `simple` and `consistentHash` are a oneof.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LoadBalancerSettings {
    pub simple: Option<SimpleLb>,
    #[serde(alias = "consistent_hash")]
    pub consistent_hash: Option<ConsistentHashLb>,
    #[serde(alias = "locality_lb_setting")]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    /// Deprecated: use `warmup`.
    #[serde(alias = "warmup_duration_secs")]
    pub warmup_duration_secs: Option<Duration>,
    pub warmup: Option<WarmupConfiguration>,
}

/// Slow start for new endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WarmupConfiguration {
    pub duration: Option<Duration>,
    #[serde(
        alias = "minimum_percent",
        deserialize_with = "crate::model::num::opt_float"
    )]
    pub minimum_percent: Option<f64>,
    #[serde(deserialize_with = "crate::model::num::opt_float")]
    pub aggression: Option<f64>,
}

/// Consistent hashing (session affinity). The hash key fields are a oneof, and so are
/// `ringHash` and `maglev`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConsistentHashLb {
    #[serde(alias = "http_header_name")]
    pub http_header_name: Option<String>,
    #[serde(alias = "http_cookie")]
    pub http_cookie: Option<HttpCookie>,
    #[serde(alias = "use_source_ip")]
    pub use_source_ip: Option<bool>,
    #[serde(alias = "http_query_parameter_name")]
    pub http_query_parameter_name: Option<String>,
    #[serde(alias = "ring_hash")]
    pub ring_hash: Option<RingHash>,
    pub maglev: Option<MagLev>,
    /// Deprecated: use `ringHash`.
    #[serde(
        alias = "minimum_ring_size",
        deserialize_with = "crate::model::num::int"
    )]
    pub minimum_ring_size: u64,
}

/// The cookie to hash on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpCookie {
    pub name: String,
    pub path: String,
    pub ttl: Option<Duration>,
    pub attributes: Vec<CookieAttribute>,
}

/// An attribute of a generated cookie.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CookieAttribute {
    pub name: String,
    pub value: String,
}

/// Ring hash settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RingHash {
    #[serde(
        alias = "minimum_ring_size",
        deserialize_with = "crate::model::num::int"
    )]
    pub minimum_ring_size: u64,
}

/// Maglev settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MagLev {
    #[serde(alias = "table_size", deserialize_with = "crate::model::num::int")]
    pub table_size: u64,
}

/// Locality-aware load balancing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalityLoadBalancerSetting {
    pub distribute: Vec<LocalityDistribute>,
    pub failover: Vec<LocalityFailover>,
    #[serde(alias = "failover_priority")]
    pub failover_priority: Vec<String>,
    pub enabled: Option<bool>,
}

/// Traffic from one locality spread over others by weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalityDistribute {
    pub from: String,
    #[serde(deserialize_with = "crate::model::num::map_int")]
    pub to: BTreeMap<String, u32>,
}

/// Where traffic from a region fails over to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LocalityFailover {
    pub from: String,
    pub to: String,
}

/// Connection pool limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ConnectionPoolSettings {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

/// TCP connection pool limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpSettings {
    #[serde(alias = "max_connections", deserialize_with = "crate::model::num::int")]
    pub max_connections: i32,
    #[serde(alias = "connect_timeout")]
    pub connect_timeout: Option<Duration>,
    #[serde(alias = "tcp_keepalive")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    #[serde(alias = "max_connection_duration")]
    pub max_connection_duration: Option<Duration>,
    #[serde(alias = "idle_timeout")]
    pub idle_timeout: Option<Duration>,
}

/// TCP keepalive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpKeepalive {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub probes: u32,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

istio_enum! {
    /// Whether HTTP/1.1 connections are upgraded to HTTP/2.
    pub enum H2UpgradePolicy {
        Default = "DEFAULT",
        DoNotUpgrade = "DO_NOT_UPGRADE",
        Upgrade = "UPGRADE",
    }
}

/// HTTP connection pool limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpSettings {
    #[serde(
        alias = "http1_max_pending_requests",
        deserialize_with = "crate::model::num::int"
    )]
    pub http1_max_pending_requests: i32,
    #[serde(
        alias = "http2_max_requests",
        deserialize_with = "crate::model::num::int"
    )]
    pub http2_max_requests: i32,
    #[serde(
        alias = "max_requests_per_connection",
        deserialize_with = "crate::model::num::int"
    )]
    pub max_requests_per_connection: i32,
    #[serde(alias = "max_retries", deserialize_with = "crate::model::num::int")]
    pub max_retries: i32,
    #[serde(alias = "idle_timeout")]
    pub idle_timeout: Option<Duration>,
    #[serde(alias = "h2_upgrade_policy")]
    pub h2_upgrade_policy: H2UpgradePolicy,
    #[serde(alias = "use_client_protocol")]
    pub use_client_protocol: bool,
    #[serde(
        alias = "max_concurrent_streams",
        deserialize_with = "crate::model::num::int"
    )]
    pub max_concurrent_streams: i32,
}

/// Ejection of unhealthy endpoints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutlierDetection {
    #[serde(alias = "split_external_local_origin_errors")]
    pub split_external_local_origin_errors: bool,
    #[serde(
        alias = "consecutive_local_origin_failures",
        deserialize_with = "crate::model::num::opt_int"
    )]
    pub consecutive_local_origin_failures: Option<u32>,
    #[serde(
        alias = "consecutive_gateway_errors",
        deserialize_with = "crate::model::num::opt_int"
    )]
    pub consecutive_gateway_errors: Option<u32>,
    #[serde(
        alias = "consecutive_5xx_errors",
        deserialize_with = "crate::model::num::opt_int"
    )]
    pub consecutive_5xx_errors: Option<u32>,
    pub interval: Option<Duration>,
    #[serde(alias = "base_ejection_time")]
    pub base_ejection_time: Option<Duration>,
    #[serde(
        alias = "max_ejection_percent",
        deserialize_with = "crate::model::num::int"
    )]
    pub max_ejection_percent: i32,
    #[serde(
        alias = "min_health_percent",
        deserialize_with = "crate::model::num::int"
    )]
    pub min_health_percent: i32,
    /// Deprecated: use `consecutiveGatewayErrors` or `consecutive5xxErrors`.
    #[serde(
        alias = "consecutive_errors",
        deserialize_with = "crate::model::num::int"
    )]
    pub consecutive_errors: i32,
}

istio_enum! {
    /// TLS mode towards a destination.
    pub enum ClientTlsMode {
        Disable = "DISABLE",
        Simple = "SIMPLE",
        Mutual = "MUTUAL",
        IstioMutual = "ISTIO_MUTUAL",
    }
}

/// TLS settings for connections to a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClientTlsSettings {
    pub mode: ClientTlsMode,
    #[serde(alias = "client_certificate")]
    pub client_certificate: String,
    #[serde(alias = "private_key")]
    pub private_key: String,
    #[serde(alias = "ca_certificates")]
    pub ca_certificates: String,
    #[serde(alias = "credential_name")]
    pub credential_name: String,
    /// `None` when absent (Istio tells absent from empty here).
    #[serde(alias = "subject_alt_names")]
    pub subject_alt_names: Option<Vec<String>>,
    pub sni: String,
    #[serde(alias = "insecure_skip_verify")]
    pub insecure_skip_verify: Option<bool>,
    #[serde(alias = "ca_crl")]
    pub ca_crl: String,
}
