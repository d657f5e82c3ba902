//! Reading meshd's `/debug/syncz`: which proxies are connected, and per proxy and xDS type
//! the version sent, the version ACKed and the last NACK.
//!
//! The reader is deliberately lenient about the JSON's shape, so the runner does not break
//! over naming. It accepts:
//! - a top-level array of proxies, an object with a `proxies` (or `connections`) array or
//!   map, or an object keyed by node id;
//! - a proxy's id in `id`, `proxy`, `node_id`, `nodeId` or `node` (or the map key);
//! - per-type state in `types`, `xds`, `resources` or `watches` (a map keyed by type URL or
//!   short name, or an array with `type_url`/`typeUrl`/`type`), or Istio's flat
//!   `cluster_sent`/`cluster_acked` style fields;
//! - per type: sent in `version_sent`/`versionSent`/`sent_version`/`sent`/`version`, ACKed
//!   in `version_acked`/`versionAcked`/`acked_version`/`acked`, and any field whose name
//!   contains the word `nack` that is not null, empty or false counts as a NACK;
//! - a per-type `state`, when present, decides: `SYNCED` (or `ACKED`) is ACKed, `NOT_SENT`
//!   means the type is not in play, anything else (`STALE`, `NACKED`) is not ACKed.
//!
//! meshd's shape (controlplane `status.rs`): an array of
//! `{proxy, ..., types: {cds: {typeUrl, state, versionSent, nonceSent, versionAcked,
//! nonceAcked, lastNack: {version, nonce, detail, time}}, eds, lds, rds}}`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The xDS resource types the runner looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XdsType {
    Listener,
    Route,
    Cluster,
    Endpoint,
    Secret,
    Other,
}

impl XdsType {
    /// From a type URL (`type.googleapis.com/envoy.config.listener.v3.Listener`) or a short
    /// name (`LDS`, `listeners`, `cluster`).
    pub fn from_name(name: &str) -> XdsType {
        let n = name.to_ascii_lowercase();
        let last = n.rsplit(['/', '.']).next().unwrap_or(&n);
        match last {
            "lds" | "listener" | "listeners" => XdsType::Listener,
            "rds" | "route" | "routes" | "routeconfiguration" => XdsType::Route,
            "cds" | "cluster" | "clusters" => XdsType::Cluster,
            "eds" | "endpoint" | "endpoints" | "clusterloadassignment" => XdsType::Endpoint,
            "sds" | "secret" | "secrets" => XdsType::Secret,
            _ => XdsType::Other,
        }
    }
}

impl fmt::Display for XdsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            XdsType::Listener => "LDS",
            XdsType::Route => "RDS",
            XdsType::Cluster => "CDS",
            XdsType::Endpoint => "EDS",
            XdsType::Secret => "SDS",
            XdsType::Other => "other",
        };
        f.write_str(s)
    }
}

/// One xDS type's state for one proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeSync {
    pub sent: Option<String>,
    pub acked: Option<String>,
    pub nack: Option<String>,
    /// The control plane's own verdict (`SYNCED`, `STALE`, `NACKED`), when it gives one.
    pub state: Option<String>,
}

impl TypeSync {
    /// The proxy ACKed the latest version sent.
    pub fn is_acked(&self) -> bool {
        if let Some(state) = &self.state {
            return state.eq_ignore_ascii_case("SYNCED") || state.eq_ignore_ascii_case("ACKED");
        }
        match (&self.sent, &self.acked) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(s), Some(a)) => s == a || a == "true",
        }
    }
}

/// One connected proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySync {
    pub id: String,
    pub types: BTreeMap<XdsType, TypeSync>,
}

impl ProxySync {
    /// Every required type is present and ACKed, and so is every other type sent.
    pub fn is_synced(&self, required: &[XdsType]) -> bool {
        required.iter().all(|t| self.types.contains_key(t))
            && self.types.values().all(TypeSync::is_acked)
    }

    /// `TYPE: detail` for every NACK recorded.
    pub fn nacks(&self) -> Vec<String> {
        self.types
            .iter()
            .filter_map(|(t, s)| s.nack.as_ref().map(|n| format!("{t}: {n}")))
            .collect()
    }

    /// A one-line summary (`LDS sent 3 acked 3, ...`).
    pub fn summary(&self) -> String {
        self.types
            .iter()
            .map(|(t, s)| {
                format!(
                    "{t} sent {} acked {}{}",
                    s.sent.as_deref().unwrap_or("-"),
                    s.acked.as_deref().unwrap_or("-"),
                    s.nack
                        .as_ref()
                        .map(|n| format!(" NACK {n}"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The types every proxy must have ACKed before it counts as configured.
pub const REQUIRED: &[XdsType] = &[XdsType::Listener, XdsType::Cluster];

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(false) => None,
        Value::Bool(true) => Some("true".to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) if a.is_empty() => None,
        Value::Object(o) if o.is_empty() => None,
        Value::Object(o) => ["detail", "message", "error_detail", "errorDetail"]
            .iter()
            .find_map(|k| o.get(*k).and_then(text))
            .or_else(|| Some(v.to_string())),
        Value::Array(_) => Some(v.to_string()),
    }
}

fn first(o: &serde_json::Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| o.get(*k).and_then(text))
}

/// Whether a field name speaks of a NACK: one of its words (snake_case, kebab-case or
/// camelCase) starts with `nack` (`last_nack`, `lastNack`, `nacks`; not `versionAcked`).
fn is_nack_key(key: &str) -> bool {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c == '_' || c == '-' || (c.is_ascii_uppercase() && prev_lower) {
            words.push(std::mem::take(&mut word));
        }
        if c != '_' && c != '-' {
            word.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    words.push(word);
    words.iter().any(|w| w.starts_with("nack"))
}

fn nack_in(o: &serde_json::Map<String, Value>) -> Option<String> {
    o.iter()
        .filter(|(k, _)| is_nack_key(k))
        .find_map(|(_, v)| text(v))
}

fn type_sync(o: &serde_json::Map<String, Value>) -> TypeSync {
    TypeSync {
        sent: first(
            o,
            &[
                "version_sent",
                "versionSent",
                "sent_version",
                "sent",
                "version",
            ],
        ),
        acked: first(
            o,
            &[
                "version_acked",
                "versionAcked",
                "acked_version",
                "ackedVersion",
                "acked",
            ],
        ),
        nack: nack_in(o),
        state: first(o, &["state", "status"]),
    }
}

/// Adds a type unless the control plane says it was never sent (not in play).
fn insert_type(types: &mut BTreeMap<XdsType, TypeSync>, t: XdsType, s: TypeSync) {
    let not_sent = s
        .state
        .as_deref()
        .is_some_and(|st| st.eq_ignore_ascii_case("NOT_SENT"));
    if !not_sent || s.nack.is_some() {
        types.insert(t, s);
    }
}

fn proxy(id_hint: Option<&str>, v: &Value) -> Option<ProxySync> {
    let o = v.as_object()?;
    let id = first(
        o,
        &[
            "id", "proxy", "node_id", "nodeId", "node", "proxy_id", "proxyId",
        ],
    )
    .or_else(|| id_hint.map(str::to_owned))?;
    let mut types = BTreeMap::new();
    let nested = ["types", "xds", "resources", "watches"]
        .iter()
        .find_map(|k| o.get(*k));
    match nested {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if let Some(t) = v.as_object() {
                    insert_type(&mut types, XdsType::from_name(k), type_sync(t));
                }
            }
        }
        Some(Value::Array(a)) => {
            for v in a {
                if let Some(t) = v.as_object() {
                    let name = first(t, &["type_url", "typeUrl", "type"]).unwrap_or_default();
                    insert_type(&mut types, XdsType::from_name(&name), type_sync(t));
                }
            }
        }
        _ => {
            // Istio's flat style: cluster_sent, cluster_acked, listener_sent, ...
            for prefix in ["listener", "route", "cluster", "endpoint", "secret"] {
                let sent = o.get(&format!("{prefix}_sent")).and_then(text);
                let acked = o.get(&format!("{prefix}_acked")).and_then(text);
                let nack = o
                    .iter()
                    .filter(|(k, _)| k.to_ascii_lowercase().starts_with(prefix) && is_nack_key(k))
                    .find_map(|(_, v)| text(v));
                if sent.is_some() || acked.is_some() || nack.is_some() {
                    types.insert(
                        XdsType::from_name(prefix),
                        TypeSync {
                            sent,
                            acked,
                            nack,
                            state: None,
                        },
                    );
                }
            }
        }
    }
    // A NACK recorded at the proxy level rather than per type.
    if let Some(n) = nack_in(o) {
        types.entry(XdsType::Other).or_default().nack = Some(n);
    }
    Some(ProxySync { id, types })
}

/// Every proxy in a `/debug/syncz` answer.
pub fn parse(v: &Value) -> Vec<ProxySync> {
    let list = match v {
        Value::Object(o) => ["proxies", "connections", "clients"]
            .iter()
            .find_map(|k| o.get(*k))
            .unwrap_or(v),
        _ => v,
    };
    match list {
        Value::Array(a) => a.iter().filter_map(|p| proxy(None, p)).collect(),
        Value::Object(m) => m.iter().filter_map(|(k, p)| proxy(Some(k), p)).collect(),
        _ => Vec::new(),
    }
}

/// How far a set of proxies has got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Node ids not connected at all.
    pub missing: Vec<String>,
    /// Connected but not fully ACKed: `id (summary)`.
    pub pending: Vec<String>,
    /// `id: TYPE: detail` for every NACK, of any proxy.
    pub nacks: Vec<String>,
}

impl SyncState {
    pub fn all_synced(&self) -> bool {
        self.missing.is_empty() && self.pending.is_empty()
    }
}

/// Where `expected` node ids stand in a parsed `/debug/syncz`.
pub fn state(proxies: &[ProxySync], expected: &[String]) -> SyncState {
    let mut s = SyncState::default();
    for id in expected {
        match proxies.iter().find(|p| &p.id == id) {
            None => s.missing.push(id.clone()),
            Some(p) if !p.is_synced(REQUIRED) => {
                s.pending.push(format!("{id} ({})", p.summary()));
            }
            Some(_) => {}
        }
    }
    for p in proxies {
        for n in p.nacks() {
            s.nacks.push(format!("{}: {n}", p.id));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    const ID: &str = "sidecar~127.10.1.10~client.shop~shop.svc.cluster.local";

    #[test]
    fn type_names() {
        assert_eq!(
            XdsType::from_name("type.googleapis.com/envoy.config.listener.v3.Listener"),
            XdsType::Listener
        );
        assert_eq!(
            XdsType::from_name(
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            ),
            XdsType::Endpoint
        );
        assert_eq!(
            XdsType::from_name("type.googleapis.com/envoy.config.route.v3.RouteConfiguration"),
            XdsType::Route
        );
        assert_eq!(XdsType::from_name("CDS"), XdsType::Cluster);
        assert_eq!(XdsType::from_name("whatever"), XdsType::Other);
    }

    #[test]
    fn nested_map_by_type_url() {
        let v = json!({"proxies": [{
            "id": ID,
            "types": {
                "type.googleapis.com/envoy.config.listener.v3.Listener":
                    {"version_sent": "3", "nonce_sent": "a", "version_acked": "3", "last_nack": null},
                "type.googleapis.com/envoy.config.cluster.v3.Cluster":
                    {"version_sent": "3", "version_acked": "2", "last_nack": ""}
            }
        }]});
        let p = parse(&v);
        assert_eq!(p.len(), 1);
        assert!(!p[0].is_synced(REQUIRED), "CDS 3 not acked yet");
        let st = state(&p, &[ID.to_owned()]);
        assert_eq!(st.pending.len(), 1);
        assert!(st.pending[0].contains("CDS sent 3 acked 2"), "{st:?}");
        assert!(st.nacks.is_empty());
    }

    #[test]
    fn array_of_types_and_map_of_proxies_with_a_nack() {
        let v = json!({ID: {"xds": [
            {"typeUrl": "type.googleapis.com/envoy.config.listener.v3.Listener",
             "versionSent": "1", "versionAcked": "1"},
            {"typeUrl": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
             "versionSent": "2", "versionAcked": "1",
             "lastNack": {"version": "2", "detail": "bad cluster outbound|9080||x"}}
        ]}});
        let p = parse(&v);
        assert_eq!(p[0].id, ID);
        let st = state(&p, &[ID.to_owned(), "sidecar~x".to_owned()]);
        assert_eq!(st.missing, vec!["sidecar~x".to_owned()]);
        assert_eq!(
            st.nacks,
            vec![format!("{ID}: CDS: bad cluster outbound|9080||x")]
        );
    }

    #[test]
    fn istio_flat_style() {
        let v = json!([{
            "proxy": ID,
            "cluster_sent": "n1", "cluster_acked": "n1",
            "listener_sent": "n2", "listener_acked": "n2",
            "route_sent": "n3", "route_acked": "n3",
            "endpoint_sent": "n4", "endpoint_acked": "n4"
        }]);
        let p = parse(&v);
        assert_eq!(p[0].types.len(), 4);
        assert!(state(&p, &[ID.to_owned()]).all_synced());
    }

    #[test]
    fn meshd_shape() {
        let entry = |cds_state: &str, nack: Value| {
            json!([{
                "proxy": ID, "connectionId": 1, "namespace": "shop", "workload": "client",
                "ip": "127.10.1.10", "localMode": true, "configVersion": 3,
                "types": {
                    "cds": {"typeUrl": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                            "state": cds_state, "versionSent": "3", "nonceSent": "7",
                            "resourcesSent": 4, "versionAcked": "2", "nonceAcked": "5",
                            "lastNack": nack},
                    "eds": {"typeUrl": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                            "state": "NOT_SENT", "versionSent": null, "nonceSent": null,
                            "resourcesSent": 0, "versionAcked": null, "lastNack": null},
                    "lds": {"typeUrl": "type.googleapis.com/envoy.config.listener.v3.Listener",
                            "state": "SYNCED", "versionSent": "3", "nonceSent": "8",
                            "versionAcked": "3", "nonceAcked": "8", "lastNack": null}
                }
            }])
        };
        let ids = [ID.to_owned()];
        let synced = parse(&entry("SYNCED", Value::Null));
        assert_eq!(synced[0].types.len(), 2, "NOT_SENT types are not in play");
        assert!(
            state(&synced, &ids).all_synced(),
            "the state decides over versions"
        );
        let stale = parse(&entry("STALE", Value::Null));
        assert!(!state(&stale, &ids).all_synced());
        let nacked = parse(&entry(
            "NACKED",
            json!({"version": "3", "nonce": "7", "detail": "bad cluster", "time": "t"}),
        ));
        let st = state(&nacked, &ids);
        assert!(!st.all_synced());
        assert_eq!(st.nacks, vec![format!("{ID}: CDS: bad cluster")]);
    }

    #[test]
    fn nack_field_names() {
        for k in [
            "nack",
            "last_nack",
            "lastNack",
            "NACK",
            "lastNACK",
            "nacks",
            "cluster_nack",
        ] {
            assert!(is_nack_key(k), "{k}");
        }
        for k in ["versionAcked", "version_acked", "acked", "snack"] {
            assert!(!is_nack_key(k), "{k}");
        }
    }

    #[test]
    fn nothing_required_missing() {
        let v = json!([{"id": ID, "types": {"LDS": {"version_sent": "1", "version_acked": "1"}}}]);
        let p = parse(&v);
        assert!(!p[0].is_synced(REQUIRED), "CDS missing");
        assert!(parse(&json!("nonsense")).is_empty());
    }
}
