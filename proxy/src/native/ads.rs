//! The ADS client: one aggregated, state-of-the-world gRPC stream to meshd.
//!
//! It presents the same node as the Envoy bootstrap (id and metadata from
//! [`crate::bootstrap`]), subscribes to clusters and listeners, then to the endpoints of
//! the EDS clusters and the route configurations the listeners name (their names follow
//! each applied CDS and LDS update). Every response is converted into the next [`Config`]
//! generation and swapped in. As in Envoy, resources that cannot be applied are left as
//! they were (absent when new) while the others apply, and the response is then NACKed
//! with the reasons in `error_detail` and the last fully applied version; otherwise it is
//! ACKed (version and nonce). A response that cannot be decoded changes nothing. When the stream ends or meshd is unreachable the last good config keeps
//! serving, and the client reconnects with exponential back-off (100 ms to 10 s, jittered),
//! resending the versions and names it holds. A host-name xDS address is resolved again on
//! every connection attempt, and each address it gives is tried in turn.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster as PbCluster;
use envoy_types::pb::envoy::config::core::v3::{Node, node};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Any, ListValue, Struct, Value, value};
use envoy_types::pb::google::rpc::Status;
use mesh_core::xds::type_url;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::config::{Applied, Config, Store};
use crate::bootstrap::{self, BootstrapOptions, XdsAddress};

/// gRPC's INVALID_ARGUMENT, the code of a NACK's error detail.
const INVALID_ARGUMENT: i32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Cluster, Kind::Endpoint, Kind::Listener, Kind::Route];

    fn url(self) -> &'static str {
        match self {
            Kind::Cluster => type_url::CLUSTER,
            Kind::Endpoint => type_url::ENDPOINT,
            Kind::Listener => type_url::LISTENER,
            Kind::Route => type_url::ROUTE,
        }
    }

    fn from_url(u: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.url() == u)
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// The node the proxy presents: the same id and metadata as the Envoy bootstrap.
pub fn node(opts: &BootstrapOptions) -> Node {
    let b = bootstrap::bootstrap(opts);
    let md = b["node"]["metadata"].clone();
    Node {
        id: opts.node_id(),
        cluster: b["node"]["cluster"].as_str().unwrap_or_default().to_owned(),
        metadata: Some(json_struct(&md)),
        user_agent_name: "mesh-proxy".to_owned(),
        user_agent_version_type: Some(node::UserAgentVersionType::UserAgentVersion(
            env!("CARGO_PKG_VERSION").to_owned(),
        )),
        ..Default::default()
    }
}

fn json_struct(v: &serde_json::Value) -> Struct {
    let mut s = Struct::default();
    if let serde_json::Value::Object(map) = v {
        for (k, v) in map {
            s.fields.insert(k.clone(), json_value(v));
        }
    }
    s
}

fn json_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => value::Kind::NullValue(0),
        serde_json::Value::Bool(b) => value::Kind::BoolValue(*b),
        serde_json::Value::Number(n) => value::Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => value::Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => value::Kind::ListValue(ListValue {
            values: a.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(_) => value::Kind::StructValue(json_struct(v)),
    };
    Value { kind: Some(kind) }
}

/// What the client tells the rest of the proxy about its stream.
#[derive(Debug, Default)]
pub struct AdsStatus {
    pub connected: std::sync::atomic::AtomicBool,
    pub acks: std::sync::atomic::AtomicU64,
    pub nacks: std::sync::atomic::AtomicU64,
    pub last_nack: std::sync::Mutex<Option<String>>,
}

/// Applies the listeners of a new generation (binding their sockets) before it is
/// swapped in. Listeners it cannot bind are taken out of `next` and reported (the update
/// is then NACKed).
pub trait ListenerSink: Send {
    fn apply(&mut self, next: &mut Config) -> Vec<String>;
}

/// Runs the client until `shutdown` turns true.
pub async fn run(
    xds: XdsAddress,
    node: Node,
    store: Arc<Store>,
    status: Arc<AdsStatus>,
    mut sink: Box<dyn ListenerSink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        let result = session(&xds, &node, &store, &status, sink.as_mut(), &mut shutdown).await;
        status
            .connected
            .store(false, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(()) => return,
            Err(e) => {
                warn!(xds.address = %xds, error = %e, "xDS stream ended; keeping the last good config")
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        let jitter = fastrand::u64(0..=u64::try_from(backoff.as_millis() / 2).unwrap_or(0));
        let pause = backoff + Duration::from_millis(jitter);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

struct Session<'a> {
    tx: mpsc::Sender<DiscoveryRequest>,
    node: Option<Node>,
    nonce: [String; 4],
    names: [BTreeSet<String>; 4],
    subscribed: [bool; 4],
    store: &'a Store,
    status: &'a AdsStatus,
}

impl Session<'_> {
    fn version(&self, k: Kind) -> String {
        let c = self.store.current();
        match k {
            Kind::Cluster => c.versions.clusters.clone(),
            Kind::Endpoint => c.versions.endpoints.clone(),
            Kind::Listener => c.versions.listeners.clone(),
            Kind::Route => c.versions.routes.clone(),
        }
    }

    async fn send(&mut self, k: Kind, error: Option<String>) -> Result<(), String> {
        let req = DiscoveryRequest {
            version_info: self.version(k),
            node: self.node.take(),
            resource_names: self.names[k.idx()].iter().cloned().collect(),
            type_url: k.url().to_owned(),
            response_nonce: self.nonce[k.idx()].clone(),
            error_detail: error.map(|message| Status {
                code: INVALID_ARGUMENT,
                message,
                details: Vec::new(),
            }),
            ..Default::default()
        };
        self.subscribed[k.idx()] = true;
        self.tx
            .send(req)
            .await
            .map_err(|_| "the request stream closed".to_owned())
    }

    /// Subscribes to (or updates the names of) EDS and RDS after CDS or LDS changed.
    async fn follow(&mut self, k: Kind, names: BTreeSet<String>) -> Result<(), String> {
        if !self.subscribed[k.idx()] || self.names[k.idx()] != names {
            self.names[k.idx()] = names;
            self.send(k, None).await?;
        }
        Ok(())
    }

    async fn on_response(
        &mut self,
        resp: DiscoveryResponse,
        sink: &mut dyn ListenerSink,
    ) -> Result<(), String> {
        let Some(k) = Kind::from_url(&resp.type_url) else {
            debug!(xds.type_url = %resp.type_url, "response of a type not asked for; ignored");
            return Ok(());
        };
        self.nonce[k.idx()] = resp.nonce.clone();
        let current = self.store.current();
        let errors = match apply(&current, k, &resp.resources, &resp.version_info) {
            Ok(Applied {
                mut config,
                mut errors,
            }) => {
                if k == Kind::Listener {
                    let bind_errors = sink.apply(&mut config);
                    if !bind_errors.is_empty() {
                        config.versions.listeners = current.versions.listeners.clone();
                        errors.extend(bind_errors);
                    }
                }
                let eds = config.eds_names();
                let rds = config.rds_names();
                // What could be applied is, even when some of it could not (as Envoy does).
                self.store.set(config);
                match k {
                    Kind::Cluster => self.follow(Kind::Endpoint, eds).await?,
                    Kind::Listener => self.follow(Kind::Route, rds).await?,
                    _ => {}
                }
                errors
            }
            Err(e) => vec![e],
        };
        if errors.is_empty() {
            debug!(xds.type_url = k.url(), xds.version = %resp.version_info, "ACK");
            self.status
                .acks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.send(k, None).await?;
        } else {
            let detail = errors.join("; ");
            warn!(xds.type_url = k.url(), xds.version = %resp.version_info, error = %detail, "NACK");
            self.status
                .nacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut l) = self.status.last_nack.lock() {
                *l = Some(detail.clone());
            }
            self.send(k, Some(detail)).await?;
        }
        Ok(())
    }
}

fn decode_all<M: Message + Default>(resources: &[Any], url: &str) -> Result<Vec<M>, String> {
    resources
        .iter()
        .map(|a| {
            if a.type_url != url {
                return Err(format!(
                    "resource of type {:?} in a {url} response",
                    a.type_url
                ));
            }
            M::decode(a.value.as_slice()).map_err(|e| format!("undecodable {url}: {e}"))
        })
        .collect()
}

/// The next generation after a response of one type, and what of it could not be applied;
/// `Err` when the response cannot be read at all.
fn apply(current: &Config, k: Kind, resources: &[Any], version: &str) -> Result<Applied, String> {
    Ok(match k {
        Kind::Cluster => {
            current.with_clusters(decode_all::<PbCluster>(resources, k.url())?, version)
        }
        Kind::Endpoint => current.with_endpoints(
            decode_all::<ClusterLoadAssignment>(resources, k.url())?,
            version,
        ),
        Kind::Listener => {
            current.with_listeners(decode_all::<Listener>(resources, k.url())?, version)
        }
        Kind::Route => current.with_routes(
            decode_all::<RouteConfiguration>(resources, k.url())?,
            version,
        ),
    })
}

/// Connects to the first of `xds`'s addresses that answers (a name is resolved now).
async fn connect(xds: &XdsAddress) -> Result<(tonic::transport::Channel, SocketAddr), String> {
    let addrs = tokio::time::timeout(Duration::from_secs(5), xds.resolve())
        .await
        .map_err(|_| format!("cannot resolve {xds}: timed out"))?
        .map_err(|e| format!("cannot resolve {xds}: {e}"))?;
    let mut last = format!("{xds} has no addresses");
    for addr in addrs {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        match endpoint.connect().await {
            Ok(channel) => return Ok((channel, addr)),
            Err(e) => last = format!("cannot connect to meshd at {xds} ({addr}): {e}"),
        }
    }
    Err(last)
}

async fn session(
    xds: &XdsAddress,
    node: &Node,
    store: &Store,
    status: &AdsStatus,
    sink: &mut dyn ListenerSink,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let (channel, resolved) = connect(xds).await?;
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 * 1024 * 1024);
    let (tx, rx) = mpsc::channel(16);
    let current = store.current();
    let mut s = Session {
        tx,
        node: Some(node.clone()),
        nonce: Default::default(),
        names: [
            BTreeSet::new(),
            current.eds_names(),
            BTreeSet::new(),
            current.rds_names(),
        ],
        subscribed: [false; 4],
        store,
        status,
    };
    s.send(Kind::Cluster, None).await?;
    s.send(Kind::Listener, None).await?;
    // After a reconnect, ask again for what the config in force names.
    if !s.names[Kind::Endpoint.idx()].is_empty() {
        s.send(Kind::Endpoint, None).await?;
    }
    if !s.names[Kind::Route.idx()].is_empty() {
        s.send(Kind::Route, None).await?;
    }
    let mut inbound = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|e| format!("ADS stream refused: {e}"))?
        .into_inner();
    status
        .connected
        .store(true, std::sync::atomic::Ordering::Relaxed);
    info!(xds.address = %xds, xds.resolved = %resolved, "xDS stream open");
    loop {
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(resp)) => s.on_response(resp, sink).await?,
                Ok(None) => return Err("meshd closed the stream".to_owned()),
                Err(e) => return Err(format!("stream error: {e}")),
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn node_matches_the_bootstrap() {
        let opts = BootstrapOptions {
            kind: mesh_core::xds::ProxyKind::Sidecar,
            xds_address: "127.0.0.1:15010".parse().unwrap(),
            workload: "shop/client".parse().unwrap(),
            ip: "127.0.0.9".parse().unwrap(),
            admin_port: 15000,
            service_account: "sa".into(),
            labels: [("app".to_owned(), "client".to_owned())].into(),
        };
        let n = node(&opts);
        assert_eq!(n.id, "sidecar~127.0.0.9~client.shop~shop.svc.cluster.local");
        let md = n.metadata.unwrap();
        assert_eq!(
            md.fields["NAMESPACE"].kind,
            Some(value::Kind::StringValue("shop".into()))
        );
        assert_eq!(
            md.fields["LOCAL_MODE"].kind,
            Some(value::Kind::StringValue("true".into()))
        );
        let Some(value::Kind::StructValue(labels)) = &md.fields["LABELS"].kind else {
            panic!("labels")
        };
        assert_eq!(
            labels.fields["app"].kind,
            Some(value::Kind::StringValue("client".into()))
        );
    }

    #[test]
    fn mismatched_resource_types_are_refused() {
        let c = Config::default();
        let wrong = Any {
            type_url: type_url::LISTENER.into(),
            value: Vec::new(),
        };
        assert!(apply(&c, Kind::Cluster, &[wrong], "1").is_err());
        let ok = apply(&c, Kind::Cluster, &[], "1").unwrap().ok().unwrap();
        assert!(ok.cds_applied);
        assert_eq!(ok.versions.clusters, "1");
    }
}
