//! WorkloadEntry and WorkloadGroup: non-Kubernetes workloads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

/// `networking.istio.io/WorkloadEntry` spec (also a ServiceEntry endpoint).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadEntry {
    pub address: String,
    #[serde(deserialize_with = "crate::model::num::map_int")]
    pub ports: BTreeMap<String, u32>,
    pub labels: BTreeMap<String, String>,
    pub network: String,
    pub locality: String,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub weight: u32,
    #[serde(alias = "service_account")]
    pub service_account: String,
}

/// `networking.istio.io/WorkloadGroup` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadGroup {
    pub metadata: Option<WorkloadGroupMetadata>,
    pub template: Option<WorkloadEntry>,
    pub probe: Option<ReadinessProbe>,
}

/// Labels and annotations given to the group's WorkloadEntries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadGroupMetadata {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// How the group's workloads are probed. The check methods are a oneof.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ReadinessProbe {
    #[serde(
        alias = "initial_delay_seconds",
        deserialize_with = "crate::model::num::int"
    )]
    pub initial_delay_seconds: i32,
    #[serde(alias = "timeout_seconds", deserialize_with = "crate::model::num::int")]
    pub timeout_seconds: i32,
    #[serde(alias = "period_seconds", deserialize_with = "crate::model::num::int")]
    pub period_seconds: i32,
    #[serde(
        alias = "success_threshold",
        deserialize_with = "crate::model::num::int"
    )]
    pub success_threshold: i32,
    #[serde(
        alias = "failure_threshold",
        deserialize_with = "crate::model::num::int"
    )]
    pub failure_threshold: i32,
    #[serde(alias = "http_get")]
    pub http_get: Option<HttpHealthCheckConfig>,
    #[serde(alias = "tcp_socket")]
    pub tcp_socket: Option<TcpHealthCheckConfig>,
    pub exec: Option<ExecHealthCheckConfig>,
    pub grpc: Option<GrpcHealthCheckConfig>,
}

/// An HTTP GET probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpHealthCheckConfig {
    pub path: String,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub port: u32,
    pub host: String,
    pub scheme: String,
    #[serde(alias = "http_headers")]
    pub http_headers: Vec<HttpHeader>,
}

/// A header sent by an HTTP probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

/// A TCP connect probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TcpHealthCheckConfig {
    pub host: String,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub port: u32,
}

/// A command probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExecHealthCheckConfig {
    pub command: Vec<String>,
}

/// A gRPC health probe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GrpcHealthCheckConfig {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub port: u32,
    pub service: String,
}
