//! `networking.istio.io` kinds: VirtualService, DestinationRule, Gateway, ServiceEntry,
//! Sidecar, WorkloadEntry, WorkloadGroup, EnvoyFilter, and the types they share.

mod destination_rule;
mod envoy_filter;
mod gateway;
mod service_entry;
mod sidecar;
mod virtual_service;
mod workload;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

pub use destination_rule::*;
pub use envoy_filter::*;
pub use gateway::*;
pub use service_entry::*;
pub use sidecar::*;
pub use virtual_service::*;
pub use workload::*;

/// How a string is matched. Exactly one of the three is meant to be set (a proto oneof).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StringMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Which of a [`StringMatch`]'s alternatives is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringMatchKind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Regex(&'a str),
    Unset,
}

impl StringMatch {
    /// The alternative in use (the first one, if several were given).
    pub fn kind(&self) -> StringMatchKind<'_> {
        if let Some(s) = &self.exact {
            StringMatchKind::Exact(s)
        } else if let Some(s) = &self.prefix {
            StringMatchKind::Prefix(s)
        } else if let Some(s) = &self.regex {
            StringMatchKind::Regex(s)
        } else {
            StringMatchKind::Unset
        }
    }

    /// How many alternatives are set (more than one is an error).
    pub fn alternatives_set(&self) -> usize {
        [&self.exact, &self.prefix, &self.regex]
            .iter()
            .filter(|o| o.is_some())
            .count()
    }

    pub fn exact_value(&self) -> &str {
        self.exact.as_deref().unwrap_or("")
    }
    pub fn prefix_value(&self) -> &str {
        self.prefix.as_deref().unwrap_or("")
    }
}

/// Where traffic goes: a host from the service registry, optionally a subset and port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Destination {
    pub host: String,
    pub subset: String,
    pub port: Option<PortSelector>,
}

/// A port of a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PortSelector {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub number: u32,
}

/// A percentage in `[0.0, 100.0]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Percent {
    #[serde(deserialize_with = "crate::model::num::float")]
    pub value: f64,
}

/// The workloads a networking config applies to, by labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WorkloadSelector {
    pub labels: BTreeMap<String, String>,
}

/// A port a listener serves: number, protocol, name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Port {
    #[serde(deserialize_with = "crate::model::num::int")]
    pub number: u32,
    pub protocol: String,
    pub name: String,
    /// Deprecated; has no effect on Gateways and Sidecars.
    #[serde(alias = "target_port", deserialize_with = "crate::model::num::int")]
    pub target_port: u32,
}

/// The type `istio.type.v1beta1.WorkloadSelector` (used by security kinds, DestinationRule
/// and others): labels under `matchLabels`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MatchLabelsSelector {
    #[serde(alias = "match_labels")]
    pub match_labels: BTreeMap<String, String>,
}

/// The type `istio.type.v1beta1.PolicyTargetReference`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyTargetReference {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}
