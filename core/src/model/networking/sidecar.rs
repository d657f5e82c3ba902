//! Sidecar: the listeners and reachable hosts of the proxies of a set of workloads.

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::{ConnectionPoolSettings, Destination, Port, ServerTlsSettings, WorkloadSelector};
use crate::model::istio_enum;

/// `networking.istio.io/Sidecar` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Sidecar {
    #[serde(alias = "workload_selector")]
    pub workload_selector: Option<WorkloadSelector>,
    pub ingress: Vec<IstioIngressListener>,
    pub egress: Vec<IstioEgressListener>,
    #[serde(alias = "inbound_connection_pool")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    #[serde(alias = "outbound_traffic_policy")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

istio_enum! {
    /// How traffic reaches a listener.
    pub enum CaptureMode {
        Default = "DEFAULT",
        Iptables = "IPTABLES",
        None = "NONE",
    }
}

/// An inbound listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IstioIngressListener {
    pub port: Option<Port>,
    pub bind: String,
    #[serde(alias = "capture_mode")]
    pub capture_mode: CaptureMode,
    #[serde(alias = "default_endpoint")]
    pub default_endpoint: String,
    pub tls: Option<ServerTlsSettings>,
    #[serde(alias = "connection_pool")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// An outbound listener and the hosts it reaches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IstioEgressListener {
    pub port: Option<Port>,
    pub bind: String,
    #[serde(alias = "capture_mode")]
    pub capture_mode: CaptureMode,
    pub hosts: Vec<String>,
}

istio_enum! {
    /// Whether traffic to unknown destinations is allowed.
    pub enum OutboundTrafficMode {
        RegistryOnly = "REGISTRY_ONLY",
        AllowAny = "ALLOW_ANY",
    }
}

/// Handling of traffic to destinations outside the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutboundTrafficPolicy {
    pub mode: OutboundTrafficMode,
    #[serde(alias = "egress_proxy")]
    pub egress_proxy: Option<Destination>,
}
