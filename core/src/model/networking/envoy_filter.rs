//! EnvoyFilter: patches to the Envoy configuration Istio generates. Patch values are raw
//! Envoy configuration and are kept as JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::CrdSchema;

use super::{PolicyTargetReference, WorkloadSelector};
use crate::model::istio_enum;

/// `networking.istio.io/EnvoyFilter` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EnvoyFilter {
    #[serde(alias = "workload_selector")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(alias = "target_refs")]
    pub target_refs: Vec<PolicyTargetReference>,
    #[serde(alias = "config_patches")]
    pub config_patches: Vec<EnvoyConfigObjectPatch>,
    #[serde(deserialize_with = "crate::model::num::int")]
    pub priority: i32,
}

istio_enum! {
    /// The kind of Envoy object a patch applies to.
    pub enum ApplyTo {
        Invalid = "INVALID",
        Listener = "LISTENER",
        FilterChain = "FILTER_CHAIN",
        NetworkFilter = "NETWORK_FILTER",
        HttpFilter = "HTTP_FILTER",
        RouteConfiguration = "ROUTE_CONFIGURATION",
        VirtualHost = "VIRTUAL_HOST",
        HttpRoute = "HTTP_ROUTE",
        Cluster = "CLUSTER",
        ExtensionConfig = "EXTENSION_CONFIG",
        Bootstrap = "BOOTSTRAP",
        ListenerFilter = "LISTENER_FILTER",
    }
}

istio_enum! {
    /// Which proxies' traffic a patch applies to.
    pub enum PatchContext {
        Any = "ANY",
        SidecarInbound = "SIDECAR_INBOUND",
        SidecarOutbound = "SIDECAR_OUTBOUND",
        Gateway = "GATEWAY",
    }
}

istio_enum! {
    /// What a patch does.
    pub enum PatchOperation {
        Invalid = "INVALID",
        Merge = "MERGE",
        Add = "ADD",
        Remove = "REMOVE",
        InsertBefore = "INSERT_BEFORE",
        InsertAfter = "INSERT_AFTER",
        InsertFirst = "INSERT_FIRST",
        Replace = "REPLACE",
    }
}

istio_enum! {
    /// Where in the filter chain an added HTTP filter goes.
    pub enum FilterClass {
        Unspecified = "UNSPECIFIED",
        Authn = "AUTHN",
        Authz = "AUTHZ",
        Stats = "STATS",
    }
}

/// One patch: what it applies to, which objects, and the change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EnvoyConfigObjectPatch {
    #[serde(alias = "apply_to")]
    pub apply_to: ApplyTo,
    #[serde(rename = "match")]
    pub r#match: Option<EnvoyConfigObjectMatch>,
    pub patch: Option<Patch>,
}

/// The change a patch makes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Patch {
    pub operation: PatchOperation,
    pub value: Option<serde_json::Value>,
    #[serde(alias = "filter_class")]
    pub filter_class: FilterClass,
}

/// Which objects a patch applies to. The object matches are a oneof.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EnvoyConfigObjectMatch {
    pub context: PatchContext,
    pub proxy: Option<ProxyMatch>,
    pub listener: Option<ListenerMatch>,
    #[serde(alias = "route_configuration")]
    pub route_configuration: Option<RouteConfigurationMatch>,
    pub cluster: Option<ClusterMatch>,
}

/// Proxies by version and metadata.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProxyMatch {
    #[serde(alias = "proxy_version")]
    pub proxy_version: String,
    pub metadata: BTreeMap<String, String>,
}

/// A listener, by port or name, and optionally a filter chain within it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ListenerMatch {
    #[serde(alias = "port_number", deserialize_with = "crate::model::num::int")]
    pub port_number: u32,
    #[serde(alias = "port_name")]
    pub port_name: String,
    #[serde(alias = "filter_chain")]
    pub filter_chain: Option<FilterChainMatch>,
    #[serde(alias = "listener_filter")]
    pub listener_filter: String,
    pub name: String,
}

/// A filter chain, and optionally a filter within it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FilterChainMatch {
    pub name: String,
    pub sni: String,
    #[serde(alias = "transport_protocol")]
    pub transport_protocol: String,
    #[serde(alias = "application_protocols")]
    pub application_protocols: String,
    pub filter: Option<FilterMatch>,
    #[serde(
        alias = "destination_port",
        deserialize_with = "crate::model::num::int"
    )]
    pub destination_port: u32,
}

/// A network filter, and optionally an HTTP filter within it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FilterMatch {
    pub name: String,
    #[serde(alias = "sub_filter")]
    pub sub_filter: Option<SubFilterMatch>,
}

/// An HTTP filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SubFilterMatch {
    pub name: String,
}

/// A route configuration, and optionally a virtual host within it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteConfigurationMatch {
    #[serde(alias = "port_number", deserialize_with = "crate::model::num::int")]
    pub port_number: u32,
    #[serde(alias = "port_name")]
    pub port_name: String,
    pub gateway: String,
    pub vhost: Option<VirtualHostMatch>,
    pub name: String,
}

/// A virtual host, and optionally a route within it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VirtualHostMatch {
    pub name: String,
    #[serde(alias = "domain_name")]
    pub domain_name: String,
    pub route: Option<RouteMatch>,
}

istio_enum! {
    /// The action of a route.
    pub enum RouteAction {
        Any = "ANY",
        Route = "ROUTE",
        Redirect = "REDIRECT",
        DirectResponse = "DIRECT_RESPONSE",
    }
}

/// A route, by name or action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RouteMatch {
    pub name: String,
    pub action: RouteAction,
}

/// A cluster, by port, service, subset or name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, CrdSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClusterMatch {
    #[serde(alias = "port_number", deserialize_with = "crate::model::num::int")]
    pub port_number: u32,
    pub service: String,
    pub subset: String,
    pub name: String,
}
