//! Envoy's JSON for xDS resources and config dumps, both ways.
//!
//! This module owns the conversion between the prost types of envoy-types and the JSON Envoy
//! prints at its admin `/config_dump`: the proto3 JSON mapping with the `.proto` field names
//! kept (`connect_timeout`, not `connectTimeout`), `@type` on every `Any` (nested ones too:
//! `typed_config` of filters, transport sockets, extension options), durations as `"1s"` or
//! `"0.250s"`, enums by name, 64-bit integers as strings, and fields at their default value
//! left out. It also builds the `/config_dump` document itself ([`config_dump`]): a
//! `ConfigDump` whose `configs` are a `ClustersConfigDump`, `ListenersConfigDump`,
//! `RoutesConfigDump` and `EndpointsConfigDump` holding the dynamic resources.
//!
//! The conversion is reflective: the protobuf descriptors envoy-types was generated from
//! (copied at build time, see `core/build.rs`) drive prost-reflect's JSON mapping, so any
//! Envoy type, including ones meshd never writes, reads and prints the way Envoy's does.
//! Two details are settled here after prost-reflect: map entries are printed in key order
//! (prost keeps maps in hash order; Envoy's order is not specified), and a `double` that
//! holds a whole number is printed without a fraction (`100`, as Envoy prints it, not
//! `100.0`), so that documents compare equal as `serde_json::Value`s.
//!
//! What a real Envoy 1.40 adds when it prints the same resources is listed at
//! [`ENVOY_ADDITIONS`].

use std::sync::OnceLock;
use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3::{
    ClustersConfigDump, ConfigDump, EndpointsConfigDump, ListenersConfigDump, RoutesConfigDump,
    ScopedRoutesConfigDump, SecretsConfigDump,
    clusters_config_dump::DynamicCluster,
    endpoints_config_dump::DynamicEndpointConfig,
    listeners_config_dump::{DynamicListener, DynamicListenerState},
    routes_config_dump::DynamicRouteConfig,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::google::protobuf::{Any, Timestamp};
use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, ReflectMessage,
    SerializeOptions,
};
use serde_json::{Map, Number, Value};

use super::{ProxyConfig, type_url, wire};

/// The `FileDescriptorSet` envoy-types was generated from (see `core/build.rs`).
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

const ANY: &str = "google.protobuf.Any";

/// What Envoy 1.40 prints in `/config_dump?include_eds` beyond the dynamic resources it was
/// sent, found by comparing meshd's resources with Envoy's dump after the ACK (the e2e test
/// `config_dump` checks, for every proxy of several scenarios, that nothing else differs).
/// Clusters, listeners and route configurations are printed exactly as received.
/// [`comparable`] takes all of these out.
pub const ENVOY_ADDITIONS: &[&str] = &[
    "a BootstrapConfigDump first, and the bootstrap's static clusters (xds-grpc) and their \
     static_endpoint_configs",
    "last_updated on every dynamic resource: when Envoy applied it",
    "version_info per resource is the version of the response that last changed that \
     resource, older than the latest for resources a later push left unchanged; none at all \
     on endpoint configs",
    "endpoint configs are rebuilt from Envoy's hosts, not the ClusterLoadAssignment received: \
     one for every cluster, EDS or not (STATIC, dynamic forward proxy, ...); \
     policy.overprovisioning_factor 140; each locality's `locality: {}` and \
     `load_balancing_weight: 0`; each endpoint's `health_status: HEALTHY` (when health is not \
     known), `load_balancing_weight: 1` and `health_check_config: {}`",
];

const ADMIN: &str = "type.googleapis.com/envoy.admin.v3.";

/// A config dump (Envoy's or [`config_dump`]'s) reduced to what the control plane decides,
/// so that meshd's dump and a proxy's are equal when the proxy applied everything it was
/// sent: only the clusters, endpoints, listeners and route configurations sections, in that
/// order, with only their dynamic resources, sorted by name; no `last_updated` nor
/// `version_info`; endpoint configs only for clusters of type EDS (when the dump has the
/// clusters) and without the defaults Envoy fills in ([`ENVOY_ADDITIONS`]). Warming,
/// draining and error states of listeners and warming clusters are kept: they show what was
/// not applied.
pub fn comparable(dump: &Value) -> Value {
    let configs = dump
        .get("configs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let find = |kind: &str| {
        configs
            .iter()
            .find(|c| c.get("@type").and_then(Value::as_str) == Some(&format!("{ADMIN}{kind}")))
    };
    let eds_clusters: Option<Vec<String>> = find("ClustersConfigDump").map(|c| {
        list(c, "dynamic_active_clusters")
            .iter()
            .chain(list(c, "dynamic_warming_clusters"))
            .filter_map(|dc| {
                let cluster = dc.get("cluster")?;
                (cluster.get("type").and_then(Value::as_str) == Some("EDS"))
                    .then(|| cluster.get("name")?.as_str().map(str::to_owned))?
            })
            .collect()
    });
    let mut out = Vec::new();
    for (kind, keys) in [
        (
            "ClustersConfigDump",
            &["dynamic_active_clusters", "dynamic_warming_clusters"][..],
        ),
        ("EndpointsConfigDump", &["dynamic_endpoint_configs"][..]),
        ("ListenersConfigDump", &["dynamic_listeners"][..]),
        ("RoutesConfigDump", &["dynamic_route_configs"][..]),
    ] {
        let Some(section) = find(kind) else {
            continue;
        };
        let mut obj = Map::new();
        obj.insert("@type".to_owned(), Value::String(format!("{ADMIN}{kind}")));
        for key in keys {
            let mut items: Vec<Value> = list(section, key)
                .iter()
                .filter(|item| match (kind, &eds_clusters) {
                    ("EndpointsConfigDump", Some(eds)) => item
                        .pointer("/endpoint_config/cluster_name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| eds.iter().any(|e| e == n)),
                    _ => true,
                })
                .cloned()
                .collect();
            for item in &mut items {
                strip_update_marks(item);
                if let Some(cla) = item.get_mut("endpoint_config") {
                    strip_endpoint_defaults(cla);
                }
            }
            items.sort_by_cached_key(resource_name);
            if !items.is_empty() {
                obj.insert((*key).to_owned(), Value::Array(items));
            }
        }
        out.push(Value::Object(obj));
    }
    serde_json::json!({ "configs": out })
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The name a dynamic resource entry is known by.
fn resource_name(item: &Value) -> String {
    [
        "/name",
        "/cluster/name",
        "/route_config/name",
        "/endpoint_config/cluster_name",
    ]
    .iter()
    .find_map(|p| item.pointer(p).and_then(Value::as_str))
    .unwrap_or_default()
    .to_owned()
}

/// Drops `version_info` and `last_updated` from an entry and its listener states.
fn strip_update_marks(item: &mut Value) {
    let Value::Object(obj) = item else {
        return;
    };
    obj.remove("version_info");
    obj.remove("last_updated");
    for state in ["active_state", "warming_state", "draining_state"] {
        if let Some(Value::Object(s)) = obj.get_mut(state) {
            s.remove("version_info");
            s.remove("last_updated");
        }
    }
    if let Some(Value::Object(e)) = obj.get_mut("error_state") {
        e.remove("last_update_attempt");
    }
}

/// Removes from a ClusterLoadAssignment's JSON the values Envoy fills in when it prints
/// endpoints from its hosts (see [`ENVOY_ADDITIONS`]).
fn strip_endpoint_defaults(cla: &mut Value) {
    fn remove_if(obj: &mut Map<String, Value>, key: &str, default: &Value) {
        if obj.get(key) == Some(default) {
            obj.remove(key);
        }
    }
    let empty = Value::Object(Map::new());
    let Value::Object(cla) = cla else {
        return;
    };
    if let Some(Value::Object(policy)) = cla.get_mut("policy") {
        remove_if(policy, "overprovisioning_factor", &Value::from(140));
        if policy.is_empty() {
            cla.remove("policy");
        }
    }
    let Some(Value::Array(localities)) = cla.get_mut("endpoints") else {
        return;
    };
    for locality in localities.iter_mut().filter_map(Value::as_object_mut) {
        remove_if(locality, "locality", &empty);
        remove_if(locality, "load_balancing_weight", &Value::from(0));
        let Some(Value::Array(lb_endpoints)) = locality.get_mut("lb_endpoints") else {
            continue;
        };
        for lb in lb_endpoints.iter_mut().filter_map(Value::as_object_mut) {
            remove_if(lb, "health_status", &Value::from("HEALTHY"));
            remove_if(lb, "load_balancing_weight", &Value::from(1));
            if let Some(Value::Object(endpoint)) = lb.get_mut("endpoint") {
                remove_if(endpoint, "health_check_config", &empty);
            }
        }
    }
}

/// A failure to convert between protobuf and JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("the embedded protobuf descriptors are unreadable: {0}")]
    Descriptors(String),
    #[error("unknown protobuf message type {0:?}")]
    UnknownType(String),
    #[error("cannot decode {type_name}: {source}")]
    Decode {
        type_name: String,
        source: prost::DecodeError,
    },
    #[error("cannot print {type_name} as JSON: {message}")]
    Print { type_name: String, message: String },
    #[error("cannot read {type_name} from JSON: {message}")]
    Read { type_name: String, message: String },
    #[error("JSON for an Any needs a string \"@type\"")]
    MissingType,
}

/// Every Envoy, xDS and well-known message type, decoded once.
pub fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsonError::Descriptors(e.clone()))
}

/// The descriptor of a message type by full name (`envoy.config.cluster.v3.Cluster`).
pub fn descriptor(full_name: &str) -> Result<MessageDescriptor, JsonError> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_owned()))
}

/// The message name of a type URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`).
pub fn type_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, n)| n)
}

fn print_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
}

/// A message as Envoy prints it (without `@type`: the message is not in an `Any`).
pub fn to_value<M: Message + Name>(m: &M) -> Result<Value, JsonError> {
    encoded_to_value(&M::full_name(), &m.encode_to_vec())
}

/// The encoding of message type `full_name` as Envoy prints it (without `@type`).
pub fn encoded_to_value(full_name: &str, bytes: &[u8]) -> Result<Value, JsonError> {
    let desc = descriptor(full_name)?;
    let msg = DynamicMessage::decode(desc.clone(), bytes).map_err(|source| JsonError::Decode {
        type_name: full_name.to_owned(),
        source,
    })?;
    dynamic_to_value(&msg)
}

/// An `Any` as Envoy prints it: `{"@type": URL, ...the message's fields}` (a well-known type
/// as `{"@type": URL, "value": ...}`).
pub fn any_to_value(any: &Any) -> Result<Value, JsonError> {
    encoded_to_value(ANY, &any.encode_to_vec())
}

/// A dynamic message as Envoy prints it.
pub fn dynamic_to_value(msg: &DynamicMessage) -> Result<Value, JsonError> {
    let desc = msg.descriptor();
    let mut v = msg
        .serialize_with_options(serde_json::value::Serializer, &print_options())
        .map_err(|e| JsonError::Print {
            type_name: desc.full_name().to_owned(),
            message: e.to_string(),
        })?;
    settle_message(&mut v, &desc);
    Ok(v)
}

/// Reads a message from JSON in Envoy's form (or the camelCase form; both are proto3 JSON).
/// Fields this version of the descriptors does not know are ignored: dumps of newer Envoys
/// still read.
pub fn from_value<M: Message + Name + Default>(v: &Value) -> Result<M, JsonError> {
    let type_name = M::full_name();
    let msg = value_to_dynamic(&type_name, v)?;
    M::decode(msg.encode_to_vec().as_slice())
        .map_err(|source| JsonError::Decode { type_name, source })
}

/// A `/config_dump` document read into envoy-types' `ConfigDump` and printed again: equal to
/// the input when every type and field in it is known and printed as Envoy prints it.
pub fn reprint_config_dump(v: &Value) -> Result<Value, JsonError> {
    to_value(&from_value::<ConfigDump>(v)?)
}

/// Reads an `Any` from JSON with an `@type` (the form [`any_to_value`] prints).
pub fn any_from_value(v: &Value) -> Result<Any, JsonError> {
    let url = v
        .get("@type")
        .and_then(Value::as_str)
        .ok_or(JsonError::MissingType)?;
    let msg = value_to_dynamic(ANY, v)?;
    Any::decode(msg.encode_to_vec().as_slice()).map_err(|source| JsonError::Decode {
        type_name: type_name(url).to_owned(),
        source,
    })
}

/// Reads message type `full_name` from JSON into a dynamic message.
pub fn value_to_dynamic(full_name: &str, v: &Value) -> Result<DynamicMessage, JsonError> {
    let desc = descriptor(full_name)?;
    DynamicMessage::deserialize_with_options(
        desc,
        v,
        &DeserializeOptions::new().deny_unknown_fields(false),
    )
    .map_err(|e| JsonError::Read {
        type_name: full_name.to_owned(),
        message: e.to_string(),
    })
}

/// Puts map entries in key order and prints whole `double`s without a fraction, walking the
/// printed JSON beside the message's descriptor.
fn settle_message(v: &mut Value, desc: &MessageDescriptor) {
    let Value::Object(obj) = v else {
        // Well-known types printed as scalars (durations, wrappers, ...).
        if matches!(
            desc.full_name(),
            "google.protobuf.DoubleValue" | "google.protobuf.FloatValue"
        ) {
            settle_float(v);
        }
        return;
    };
    match desc.full_name() {
        "google.protobuf.Any" => {
            let Some(inner) = obj
                .get("@type")
                .and_then(Value::as_str)
                .and_then(|url| pool().ok()?.get_message_by_name(type_name(url)))
            else {
                return;
            };
            if obj.contains_key("value") && is_well_known(inner.full_name()) {
                if let Some(value) = obj.get_mut("value") {
                    settle_message(value, &inner);
                }
            } else {
                settle_fields(obj, &inner);
            }
        }
        "google.protobuf.Struct" | "google.protobuf.Value" | "google.protobuf.ListValue" => {}
        _ => settle_fields(obj, desc),
    }
}

fn settle_fields(obj: &mut Map<String, Value>, desc: &MessageDescriptor) {
    for (name, value) in obj.iter_mut() {
        let Some(field) = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name))
        else {
            continue;
        };
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                continue;
            };
            let value_kind = entry.map_entry_value_field().kind();
            if let Value::Object(map) = value {
                map.sort_keys();
                for v in map.values_mut() {
                    settle_kind(v, &value_kind);
                }
            }
        } else if field.is_list() {
            if let Value::Array(items) = value {
                for v in items {
                    settle_kind(v, &field.kind());
                }
            }
        } else {
            settle_kind(value, &field.kind());
        }
    }
}

fn settle_kind(v: &mut Value, kind: &Kind) {
    match kind {
        Kind::Message(desc) => settle_message(v, desc),
        Kind::Double | Kind::Float => settle_float(v),
        _ => {}
    }
}

/// `100.0` -> `100`: Envoy prints doubles in their shortest form.
fn settle_float(v: &mut Value) {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if let Value::Number(n) = v
        && let Some(f) = n.as_f64()
        && n.is_f64()
        && f.fract() == 0.0
        && f.abs() < EXACT
    {
        // Whole and within the exactly representable range, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let whole = f as i64;
        *v = Value::Number(Number::from(whole));
    }
}

fn is_well_known(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.Any"
            | "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.Struct"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Empty"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// When and at which version one xDS type's resources were last updated: Envoy's
/// `version_info` and `last_updated` of each dynamic resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub version_info: String,
    /// Left out of the dump when `None`.
    pub last_updated: Option<SystemTime>,
}

/// One type's resources, encoded as they are sent, with their [`Update`].
#[derive(Clone, Debug, Default)]
pub struct Section<'a> {
    pub update: Update,
    pub resources: Vec<&'a Any>,
}

/// The dynamic sections of a config dump. Without `endpoints` the dump has no
/// `EndpointsConfigDump`, as Envoy's `/config_dump` without `?include_eds`.
#[derive(Clone, Debug, Default)]
pub struct Sections<'a> {
    pub clusters: Section<'a>,
    pub listeners: Section<'a>,
    pub routes: Section<'a>,
    pub endpoints: Option<Section<'a>>,
}

/// The `version_info` and `last_updated` of each type, for [`config_dump`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpVersions {
    pub clusters: Update,
    pub listeners: Update,
    pub routes: Update,
    pub endpoints: Update,
}

/// A proxy config as Envoy's `/config_dump?include_eds` prints it once the proxy has applied
/// it: `{"configs": [...]}` with, in Envoy's order, a `ClustersConfigDump`,
/// `EndpointsConfigDump`, `ListenersConfigDump`, `ScopedRoutesConfigDump` (empty),
/// `RoutesConfigDump` and `SecretsConfigDump` (empty), holding the dynamic resources only.
/// Envoy's own dump starts with a `BootstrapConfigDump` and has the bootstrap's static
/// resources too; see [`ENVOY_ADDITIONS`] for what else differs.
pub fn config_dump(config: &ProxyConfig, versions: &DumpVersions) -> Result<Value, JsonError> {
    fn pack(type_url: &str, value: Vec<u8>) -> Any {
        Any {
            type_url: type_url.to_owned(),
            value,
        }
    }
    fn section<'a>(update: &Update, list: &'a [Any]) -> Section<'a> {
        Section {
            update: update.clone(),
            resources: list.iter().collect(),
        }
    }
    let clusters: Vec<Any> = config
        .clusters
        .iter()
        .map(|c| pack(type_url::CLUSTER, wire::encode_cluster(c)))
        .collect();
    let listeners: Vec<Any> = config
        .listeners
        .iter()
        .map(|l| pack(type_url::LISTENER, wire::encode_listener(l)))
        .collect();
    let routes: Vec<Any> = config
        .routes
        .iter()
        .map(|r| pack(type_url::ROUTE, wire::encode_route_configuration(r)))
        .collect();
    let endpoints: Vec<Any> = config
        .endpoints
        .iter()
        .map(|e| pack(type_url::ENDPOINT, wire::encode_endpoints(e)))
        .collect();
    config_dump_encoded(&Sections {
        clusters: section(&versions.clusters, &clusters),
        listeners: section(&versions.listeners, &listeners),
        routes: section(&versions.routes, &routes),
        endpoints: Some(section(&versions.endpoints, &endpoints)),
    })
}

/// [`config_dump`] of resources already encoded (as a control plane keeps what it sent).
pub fn config_dump_encoded(s: &Sections<'_>) -> Result<Value, JsonError> {
    let stamp = |u: &Update| u.last_updated.map(timestamp);
    let clusters = ClustersConfigDump {
        version_info: s.clusters.update.version_info.clone(),
        dynamic_active_clusters: s
            .clusters
            .resources
            .iter()
            .map(|any| DynamicCluster {
                version_info: s.clusters.update.version_info.clone(),
                cluster: Some((*any).clone()),
                last_updated: stamp(&s.clusters.update),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut dynamic_listeners = Vec::new();
    for any in &s.listeners.resources {
        let name = Listener::decode(any.value.as_slice())
            .map_err(|source| JsonError::Decode {
                type_name: Listener::full_name(),
                source,
            })?
            .name;
        dynamic_listeners.push(DynamicListener {
            name,
            active_state: Some(DynamicListenerState {
                version_info: s.listeners.update.version_info.clone(),
                listener: Some((*any).clone()),
                last_updated: stamp(&s.listeners.update),
            }),
            ..Default::default()
        });
    }
    let listeners = ListenersConfigDump {
        version_info: s.listeners.update.version_info.clone(),
        dynamic_listeners,
        ..Default::default()
    };
    let routes = RoutesConfigDump {
        dynamic_route_configs: s
            .routes
            .resources
            .iter()
            .map(|any| DynamicRouteConfig {
                version_info: s.routes.update.version_info.clone(),
                route_config: Some((*any).clone()),
                last_updated: stamp(&s.routes.update),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut configs = vec![super::proto::any(&clusters)];
    if let Some(endpoints) = &s.endpoints {
        let dump = EndpointsConfigDump {
            dynamic_endpoint_configs: endpoints
                .resources
                .iter()
                .map(|any| DynamicEndpointConfig {
                    version_info: endpoints.update.version_info.clone(),
                    endpoint_config: Some((*any).clone()),
                    last_updated: stamp(&endpoints.update),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        configs.push(super::proto::any(&dump));
    }
    configs.extend([
        super::proto::any(&listeners),
        super::proto::any(&ScopedRoutesConfigDump::default()),
        super::proto::any(&routes),
        super::proto::any(&SecretsConfigDump::default()),
    ]);
    to_value(&ConfigDump { configs })
}

/// An RFC 3339 time (`2026-11-24T21:20:50.355Z`, as `/debug/syncz` and Envoy print them).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let t: Timestamp = from_value(&Value::String(s.to_owned())).ok()?;
    let secs = u64::try_from(t.seconds).ok()?;
    let nanos = u32::try_from(t.nanos).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, nanos))
}

/// A `SystemTime` as a protobuf `Timestamp` (times before 1970 clamp to it), to the
/// millisecond, as Envoy's times are.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_millis() * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use serde_json::json;

    use super::*;
    use crate::analysis::{MeshConfig, Store};
    use crate::xds::{ProxyInfo, Snapshot, generate};

    const MESH: &str = r"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports:
  - {name: http, port: 8080, targetPort: 9090}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-v1, namespace: shop}
spec: {address: 127.0.0.21, labels: {app: api, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web, namespace: shop}
spec: {address: 127.0.0.20, labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: shop}
spec:
  host: api
  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 250ms}}}
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: shop}
spec:
  hosts: [api]
  http:
  - fault: {abort: {percentage: {value: 50}, httpStatus: 503}}
    corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]}
    route:
    - destination: {host: api, subset: v1}
    timeout: 1.5s
";

    fn config() -> ProxyConfig {
        let loaded = crate::source::load_bytes("test.yaml", MESH.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let snap = Snapshot::build(&Store::new(loaded.resources), &MeshConfig::default());
        let proxy =
            ProxyInfo::from_node_id("sidecar~127.0.0.20~web.shop~shop.svc.cluster.local").unwrap();
        generate(&snap, &proxy)
    }

    fn dump() -> Value {
        config_dump(&config(), &DumpVersions::default()).unwrap()
    }

    fn section<'a>(dump: &'a Value, kind: &str) -> &'a Value {
        dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["@type"] == format!("{ADMIN}{kind}"))
            .unwrap_or_else(|| panic!("no {kind} in {dump:#}"))
    }

    fn cluster<'a>(dump: &'a Value, name: &str) -> &'a Value {
        section(dump, "ClustersConfigDump")["dynamic_active_clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["cluster"])
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no cluster {name}"))
    }

    #[test]
    fn dump_has_envoys_sections_in_envoys_order() {
        let d = dump();
        let types: Vec<&str> = d["configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["@type"].as_str().unwrap().trim_start_matches(ADMIN))
            .collect();
        assert_eq!(
            types,
            [
                "ClustersConfigDump",
                "EndpointsConfigDump",
                "ListenersConfigDump",
                "ScopedRoutesConfigDump",
                "RoutesConfigDump",
                "SecretsConfigDump"
            ]
        );
        let listeners = &section(&d, "ListenersConfigDump")["dynamic_listeners"];
        assert_eq!(listeners[0]["name"], "virtualOutbound");
        assert_eq!(
            listeners[0]["active_state"]["listener"]["@type"],
            type_url::LISTENER
        );
        let routes = &section(&d, "RoutesConfigDump")["dynamic_route_configs"];
        assert_eq!(routes[0]["route_config"]["name"], "15001");
        // No versions given: none printed (proto3 leaves empty strings out).
        assert!(routes[0].get("version_info").is_none());
        assert!(routes[0].get("last_updated").is_none());
    }

    #[test]
    fn resources_print_as_envoy_prints_them() {
        let d = dump();
        let api = cluster(&d, "outbound|8080|v1|api.shop.svc.cluster.local");
        assert_eq!(api["@type"], type_url::CLUSTER);
        assert_eq!(api["connect_timeout"], "0.250s");
        assert_eq!(api["type"], "EDS");
        assert_eq!(api["eds_cluster_config"]["eds_config"]["ads"], json!({}));
        assert_eq!(
            api["eds_cluster_config"]["eds_config"]["resource_api_version"],
            "V3"
        );

        let listener =
            &section(&d, "ListenersConfigDump")["dynamic_listeners"][0]["active_state"]["listener"];
        let hcm = &listener["filter_chains"][0]["filters"][0];
        assert_eq!(hcm["name"], "envoy.filters.network.http_connection_manager");
        assert_eq!(
            hcm["typed_config"]["@type"],
            "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
        );
        let filters = hcm["typed_config"]["http_filters"].as_array().unwrap();
        assert!(filters.iter().all(|f| {
            f["typed_config"]["@type"].as_str().is_some_and(|t| {
                t.starts_with("type.googleapis.com/envoy.extensions.filters.http.")
            })
        }));

        let rc = &section(&d, "RoutesConfigDump")["dynamic_route_configs"][0]["route_config"];
        let vh = rc["virtual_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|vh| vh["name"] == "api.shop.svc.cluster.local:8080")
            .unwrap();
        let route = &vh["routes"][0];
        assert_eq!(route["route"]["timeout"], "1.500s");
        // int64 as a string, as proto3 JSON and Envoy print it.
        assert_eq!(
            route["route"]["retry_policy"]["host_selection_retry_max_attempts"],
            "5"
        );
        let per_filter = route["typed_per_filter_config"].as_object().unwrap();
        // Map entries in key order, whatever order prost's HashMap had.
        assert_eq!(
            per_filter.keys().collect::<Vec<_>>(),
            ["envoy.filters.http.cors", "envoy.filters.http.fault"]
        );
        let fault = &per_filter["envoy.filters.http.fault"];
        assert_eq!(
            fault["@type"],
            "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
        );
        assert_eq!(
            fault["abort"],
            json!({"http_status": 503, "percentage": {"numerator": 500000, "denominator": "MILLION"}})
        );
    }

    #[test]
    fn generated_resources_read_back_equal() {
        let c = config();
        for r in &c.clusters {
            assert_eq!(&from_value::<Cluster>(&to_value(r).unwrap()).unwrap(), r);
        }
        for r in &c.listeners {
            assert_eq!(&from_value::<Listener>(&to_value(r).unwrap()).unwrap(), r);
        }
        for r in &c.routes {
            assert_eq!(
                &from_value::<RouteConfiguration>(&to_value(r).unwrap()).unwrap(),
                r
            );
        }
        for r in &c.endpoints {
            assert_eq!(
                &from_value::<ClusterLoadAssignment>(&to_value(r).unwrap()).unwrap(),
                r
            );
        }
        // Through Any, with @type: the same message comes back.
        let any = super::super::proto::any(&c.listeners[0]);
        let v = any_to_value(&any).unwrap();
        assert_eq!(v["@type"], type_url::LISTENER);
        let back = any_from_value(&v).unwrap();
        assert_eq!(back.type_url, any.type_url);
        assert_eq!(
            Listener::decode(back.value.as_slice()).unwrap(),
            c.listeners[0]
        );
        // The camelCase form reads too.
        let camel: Cluster =
            from_value(&json!({"name": "x", "connectTimeout": "2s", "type": "STRICT_DNS"}))
                .unwrap();
        assert_eq!(camel.connect_timeout.unwrap().seconds, 2);
    }

    /// Dumps of Envoy 1.40 captured by the e2e test `config_dump` (`MESH_SAVE_DUMPS`).
    fn envoy_dumps() -> Vec<(String, Value)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envoy-dumps");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((
                path.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            ));
        }
        assert!(out.len() >= 2, "dumps in {}", dir.display());
        out
    }

    #[test]
    fn envoy_dumps_read_and_print_back_unchanged() {
        for (name, dump) in envoy_dumps() {
            let parsed: ConfigDump = from_value(&dump).unwrap();
            assert!(parsed.configs.len() >= 6, "{name}");
            assert_eq!(to_value(&parsed).unwrap(), dump, "{name}");
        }
    }

    #[test]
    fn comparable_takes_out_what_envoy_adds() {
        for (name, dump) in envoy_dumps() {
            let c = comparable(&dump);
            let text = c.to_string();
            for gone in [
                "last_updated",
                "version_info",
                "BootstrapConfigDump",
                "xds-grpc",
                "overprovisioning_factor",
                "health_check_config",
                "HEALTHY",
            ] {
                assert!(!text.contains(gone), "{name}: {gone} left in {c:#}");
            }
            let clusters = c["configs"][0]["dynamic_active_clusters"]
                .as_array()
                .unwrap();
            assert!(
                clusters
                    .iter()
                    .any(|c| c["cluster"]["name"] == "BlackHoleCluster")
            );
            // Endpoint configs only for EDS clusters: none for BlackHoleCluster.
            let eds = c["configs"][1]["dynamic_endpoint_configs"]
                .as_array()
                .unwrap();
            assert!(!eds.is_empty(), "{name}");
            assert!(eds.iter().all(|e| {
                let n = &e["endpoint_config"]["cluster_name"];
                clusters
                    .iter()
                    .any(|c| &c["cluster"]["name"] == n && c["cluster"]["type"] == "EDS")
            }));
            // Comparing is idempotent, and a dump compares equal to itself printed again.
            assert_eq!(comparable(&c), c, "{name}");
            assert_eq!(
                comparable(&reprint_config_dump(&dump).unwrap()),
                c,
                "{name}"
            );
        }
        // A real difference survives.
        let (_, dump) = envoy_dumps().remove(0);
        let mut changed = dump.clone();
        let cluster = changed
            .pointer_mut("/configs/1/dynamic_active_clusters/0/cluster")
            .unwrap();
        cluster["connect_timeout"] = json!("3s");
        assert_ne!(comparable(&changed), comparable(&dump));
    }

    #[test]
    fn versions_and_times_print_as_envoy_prints_them() {
        let t = parse_timestamp("2026-11-24T21:20:50.355Z").unwrap();
        let update = Update {
            version_info: "7".to_owned(),
            last_updated: Some(t),
        };
        let versions = DumpVersions {
            clusters: update.clone(),
            listeners: update.clone(),
            routes: update.clone(),
            endpoints: update,
        };
        let d = config_dump(&config(), &versions).unwrap();
        let clusters = section(&d, "ClustersConfigDump");
        assert_eq!(clusters["version_info"], "7");
        assert_eq!(clusters["dynamic_active_clusters"][0]["version_info"], "7");
        assert_eq!(
            clusters["dynamic_active_clusters"][0]["last_updated"],
            "2026-11-24T21:20:50.355Z"
        );
        let l = &section(&d, "ListenersConfigDump")["dynamic_listeners"][0]["active_state"];
        assert_eq!(l["last_updated"], "2026-11-24T21:20:50.355Z");
        // Envoy's times have milliseconds; so do ours.
        let fine = SystemTime::UNIX_EPOCH + std::time::Duration::new(1, 123_456_789);
        assert_eq!(timestamp(fine).nanos, 123_000_000);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn whole_doubles_print_without_a_fraction() {
        use envoy_types::pb::envoy::r#type::v3::Percent;
        assert_eq!(
            to_value(&Percent { value: 100.0 }).unwrap(),
            json!({"value": 100})
        );
        assert_eq!(
            to_value(&Percent { value: 12.5 }).unwrap(),
            json!({"value": 12.5})
        );
    }

    #[test]
    fn unknown_types_are_errors() {
        let any = Any {
            type_url: "type.googleapis.com/example.Unknown".to_owned(),
            value: vec![8, 1],
        };
        assert!(matches!(any_to_value(&any), Err(JsonError::Print { .. })));
        assert!(matches!(
            any_from_value(&json!({"@type": "type.googleapis.com/example.Unknown"})),
            Err(JsonError::Read { .. })
        ));
        assert!(matches!(
            any_from_value(&json!({"name": "x"})),
            Err(JsonError::MissingType)
        ));
        assert!(matches!(
            encoded_to_value("example.Unknown", &[]),
            Err(JsonError::UnknownType(_))
        ));
    }
}
