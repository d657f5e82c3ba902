//! Per-proxy sync status: what meshd sent each connected proxy and what the proxy did with
//! it.
//!
//! This module owns the table behind `/debug/syncz` and `/debug/config_dump`: one entry per
//! ADS connection, with, per xDS type, the version and nonce last sent, the version and
//! nonce last acknowledged, the last rejection (NACK) and its detail, and when each
//! happened; the proxy's version and cluster from its node, and which meshd serves it;
//! plus the resources the proxy was last given. Connection tasks update their own
//! entry under a short lock that is never held across an `.await`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::google::protobuf::value::Kind;

use mesh_core::xds::ProxyInfo;
use mesh_core::xds::cache::EncodedConfig;
use serde::Serialize;

/// A rejection a proxy sent back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Nack {
    /// The version that was rejected (as meshd sent it with `nonce`), when known.
    pub version: Option<String>,
    pub nonce: String,
    pub detail: String,
    pub time: String,
}

/// Resource names a proxy asked for, shared with its connection rather than copied on
/// every update (an EDS subscription names every cluster); serialized as a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names(pub Arc<BTreeSet<String>>);

impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// Where one xDS type stands for one proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeStatus {
    pub type_url: String,
    /// `SYNCED` (the last response was ACKed), `STALE` (sent, not answered yet), `NACKED`
    /// (the last response was rejected) or `NOT_SENT`.
    pub state: &'static str,
    /// For EDS and RDS, the resource names the proxy asked for; absent for CDS and LDS
    /// (everything).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscribed: Option<Names>,
    pub version_sent: Option<String>,
    pub nonce_sent: Option<String>,
    pub sent_time: Option<String>,
    pub resources_sent: usize,
    pub version_acked: Option<String>,
    pub nonce_acked: Option<String>,
    pub acked_time: Option<String>,
    pub last_nack: Option<Nack>,
}

impl TypeStatus {
    /// Recomputes `state` from the nonces.
    pub fn refresh_state(&mut self) {
        self.state = match &self.nonce_sent {
            None => "NOT_SENT",
            Some(sent) if self.last_nack.as_ref().is_some_and(|n| &n.nonce == sent) => "NACKED",
            Some(sent) if self.nonce_acked.as_ref() == Some(sent) => "SYNCED",
            Some(_) => "STALE",
        };
    }
}

/// One connected proxy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    /// The node id.
    pub proxy: String,
    pub connection_id: u64,
    pub peer: Option<String>,
    pub namespace: String,
    pub workload: String,
    pub ip: String,
    pub local_mode: bool,
    /// The proxy's software and version (`envoy 1.40.0`, or node metadata `ISTIO_VERSION`),
    /// from its node; absent when it sends none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_version: Option<String>,
    /// The cluster the proxy says it runs in (node metadata `CLUSTER_ID`), when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Which meshd serves this proxy ([`control_plane_id`]).
    pub control_plane: String,
    pub connected_time: String,
    /// The config version the proxy's resources were last generated from.
    pub config_version: u64,
    /// Keyed `cds`, `eds`, `lds`, `rds`.
    pub types: BTreeMap<&'static str, TypeStatus>,
    #[serde(skip)]
    pub info: Option<ProxyInfo>,
    /// The resources last generated for the proxy, encoded.
    #[serde(skip)]
    pub config: Arc<EncodedConfig>,
}

/// Every connected proxy, by connection id.
#[derive(Debug, Default)]
pub struct SyncTable {
    inner: Mutex<BTreeMap<u64, ProxyStatus>>,
}

impl SyncTable {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, ProxyStatus>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, status: ProxyStatus) {
        self.lock().insert(status.connection_id, status);
    }

    pub fn update(&self, connection_id: u64, f: impl FnOnce(&mut ProxyStatus)) {
        if let Some(s) = self.lock().get_mut(&connection_id) {
            f(s);
        }
    }

    pub fn remove(&self, connection_id: u64) {
        self.lock().remove(&connection_id);
    }

    /// Every connection, in connection order.
    pub fn list(&self) -> Vec<ProxyStatus> {
        self.lock().values().cloned().collect()
    }

    /// Connections of the proxy `id`: a node id, or `NAME.NAMESPACE` as istioctl names pods.
    pub fn find(&self, id: &str) -> Vec<ProxyStatus> {
        self.lock()
            .values()
            .filter(|s| s.proxy == id || format!("{}.{}", s.workload, s.namespace) == id)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// This meshd's identity as proxy-status shows it: `meshd-PID.HOST`, where HOST is the
/// `POD_NAME` environment variable (in Kubernetes), else the machine's host name.
pub fn control_plane_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::env::var("POD_NAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "localhost".to_owned());
        format!("meshd-{}.{host}", std::process::id())
    })
}

/// What a proxy's node says about its software: `envoy 1.40.0` from the user agent, else
/// node metadata `ISTIO_VERSION`, else `None`; and its cluster (metadata `CLUSTER_ID`).
pub fn node_agent(node: &Node) -> (Option<String>, Option<String>) {
    let meta = |key: &str| {
        node.metadata
            .as_ref()
            .and_then(|m| m.fields.get(key))
            .and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            })
    };
    let version = match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(v)) if !v.is_empty() => Some(v.clone()),
        Some(UserAgentVersionType::UserAgentBuildVersion(b)) => b
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch)),
        _ => None,
    }
    .map(|v| match node.user_agent_name.as_str() {
        "" => v,
        name => format!("{name} {v}"),
    })
    .or_else(|| meta("ISTIO_VERSION"));
    (version, meta("CLUSTER_ID"))
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-11-24T18:32:09.123Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let d = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// Now, as [`rfc3339`].
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_977_129_123);
        assert_eq!(rfc3339(t), "2026-11-29T18:32:09.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_node_names_the_proxy_version_and_cluster() {
        use envoy_types::pb::envoy::config::core::v3::BuildVersion;
        use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
        use envoy_types::pb::google::protobuf::{Struct, Value};
        let mut node = Node {
            user_agent_name: "envoy".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(
                BuildVersion {
                    version: Some(SemanticVersion {
                        major_number: 1,
                        minor_number: 40,
                        patch: 0,
                    }),
                    metadata: None,
                },
            )),
            ..Node::default()
        };
        assert_eq!(node_agent(&node), (Some("envoy 1.40.0".into()), None));
        node.user_agent_version_type = None;
        node.metadata = Some(Struct {
            fields: [("ISTIO_VERSION", "1.24.0"), ("CLUSTER_ID", "east")]
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        Value {
                            kind: Some(Kind::StringValue(v.to_owned())),
                        },
                    )
                })
                .collect(),
        });
        assert_eq!(
            node_agent(&node),
            (Some("1.24.0".into()), Some("east".into()))
        );
        assert_eq!(node_agent(&Node::default()), (None, None));
        assert!(control_plane_id().starts_with("meshd-"));
    }

    #[test]
    fn state_follows_the_nonces() {
        let mut t = TypeStatus::default();
        t.refresh_state();
        assert_eq!(t.state, "NOT_SENT");
        t.nonce_sent = Some("2".into());
        t.refresh_state();
        assert_eq!(t.state, "STALE");
        t.nonce_acked = Some("2".into());
        t.refresh_state();
        assert_eq!(t.state, "SYNCED");
        t.nonce_sent = Some("3".into());
        t.last_nack = Some(Nack {
            version: Some("3".into()),
            nonce: "3".into(),
            detail: "bad".into(),
            time: now(),
        });
        t.refresh_state();
        assert_eq!(t.state, "NACKED");
    }
}
