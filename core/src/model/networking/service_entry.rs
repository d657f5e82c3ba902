//! ServiceEntry: services added to Istio's registry by hand.

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::{WorkloadEntry, WorkloadSelector};
use crate::model::istio_enum;

istio_enum! {
    /// Whether the service is part of the mesh.
    pub enum Location {
        MeshExternal = "MESH_EXTERNAL",
        MeshInternal = "MESH_INTERNAL",
    }
}

istio_enum! {
    /// How the service's endpoints are found.
    pub enum Resolution {
        None = "NONE",
        Static = "STATIC",
        Dns = "DNS",
        DnsRoundRobin = "DNS_ROUND_ROBIN",
    }
}

/// `networking.istio.io/ServiceEntry` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServiceEntry {
    pub hosts: Vec<String>,
    pub addresses: Vec<String>,
    pub ports: Vec<ServicePort>,
    pub location: Location,
    pub resolution: Resolution,
    /// `None` when absent (Istio tells absent from empty here).
    pub endpoints: Option<Vec<WorkloadEntry>>,
    #[serde(alias = "workload_selector")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(alias = "export_to")]
    pub export_to: Vec<String>,
    #[serde(alias = "subject_alt_names")]
    pub subject_alt_names: Vec<String>,
}

/// A port of a ServiceEntry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServicePort {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub number: u32,
    pub protocol: String,
    pub name: String,
    #[serde(alias = "target_port", deserialize_with = "crate::model::num::int")]
    pub target_port: u32,
}
