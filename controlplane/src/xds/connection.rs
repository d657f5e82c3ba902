//! One ADS stream: a proxy's subscriptions, what it was sent, and what it acknowledged.
//!
//! The first request names the proxy (its node). From then on the connection answers each
//! request by type URL (state of the world: every resource of the type, or those named for
//! EDS and RDS), records ACKs (the nonce of the last response, no error) and NACKs (with
//! `error_detail`), ignores requests carrying a stale nonce (except a type's first request
//! on a stream, answered in full whatever it carries, as after a reconnect), and answers
//! again when a
//! proxy changes the EDS or RDS names it wants. On each new config it regenerates the
//! proxy's resources and pushes, in the order CDS, EDS, LDS, RDS, only the types whose
//! encoded resources changed; when a cluster the proxy takes endpoints for was modified it
//! also resends those endpoints, which Envoy needs to finish warming the new cluster.
//! Endpoints asked for but absent from the config are sent empty, as istiod does.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use mesh_core::xds::ProxyInfo;
use mesh_core::xds::cache::{EncodedConfig, EncodedResource};
use prost::Message;
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::{Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::grpc::{Item, Tx, frame_response};
use super::{Shared, XdsType, proxy_info};
use crate::source::ConfigState;
use crate::status::{self, Nack, Names, ProxyStatus, TypeStatus};

/// The control plane identifier sent with every response.
const CONTROL_PLANE: &str = concat!("meshd ", env!("CARGO_PKG_VERSION"));

/// How long a new stream may take to send its first request.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a stream ended.
#[derive(Debug)]
enum End {
    /// The proxy closed the stream or went away.
    ClientGone,
    /// meshd is shutting down.
    Shutdown,
    /// Generating the proxy's config failed.
    Internal(String),
}

/// What was last sent for one type.
#[derive(Debug)]
struct Sent {
    nonce: String,
    version: String,
    /// A digest of the names and encoded bytes sent: a new config is pushed when its digest
    /// differs (a connection keeps the bytes once, not twice).
    digest: u64,
}

#[derive(Debug, Default)]
struct TypeState {
    subscribed: bool,
    /// For EDS and RDS (and CDS/LDS asked by name), the names asked for; `None` is all.
    /// Shared with the sync table, which shows them.
    names: Option<Arc<BTreeSet<String>>>,
    sent: Option<Sent>,
    status: TypeStatus,
}

struct Connection {
    shared: Arc<Shared>,
    id: u64,
    proxy: ProxyInfo,
    /// The proxy's version and cluster, from its node ([`status::node_agent`]).
    agent: (Option<String>, Option<String>),
    tx: Tx,
    config_version: u64,
    encoded: Arc<EncodedConfig>,
    types: [TypeState; 4],
}

/// Serves one stream until the proxy leaves or meshd shuts down.
pub async fn run(
    shared: Arc<Shared>,
    id: u64,
    peer: Option<SocketAddr>,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: Tx,
) {
    let mut shutdown = shared.shutdown.clone();
    let first = tokio::select! {
        m = tokio::time::timeout(FIRST_REQUEST_TIMEOUT, inbound.next()) => m,
        _ = shutdown.changed() => return,
    };
    let first = match first {
        Ok(Some(Ok(req))) => req,
        Ok(Some(Err(status))) => {
            debug!(connection.id = id, error = %status, "stream failed before its first request");
            return;
        }
        Ok(None) => return,
        Err(_) => {
            let _ = tx.send(Err(Status::deadline_exceeded("no request"))).await;
            return;
        }
    };
    let proxy = match first.node.as_ref().map(proxy_info) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            warn!(connection.id = id, error = %e, "proxy refused");
            let _ = tx.send(Err(Status::invalid_argument(e))).await;
            return;
        }
        None => {
            let _ = tx
                .send(Err(Status::invalid_argument(
                    "the first request of a stream must carry the node",
                )))
                .await;
            return;
        }
    };
    let agent = first
        .node
        .as_ref()
        .map(status::node_agent)
        .unwrap_or_default();
    let span = info_span!("xds", node.id = %proxy.id, connection.id = id);
    async move {
        // Subscribe before generating, so a change that lands meanwhile is not missed.
        let mut config = shared.config.clone();
        let state = config.borrow_and_update().clone();
        let mut conn = Connection {
            shared: shared.clone(),
            id,
            proxy,
            agent,
            tx,
            config_version: 0,
            encoded: Arc::default(),
            types: Default::default(),
        };
        for t in XdsType::ALL {
            conn.types[t as usize].status.type_url = t.type_url().to_owned();
            conn.types[t as usize].status.refresh_state();
        }
        if let Err(e) = conn.regenerate(&state).await {
            warn!(error = %e, "cannot generate the proxy's config");
            let _ = conn.tx.send(Err(Status::internal(e))).await;
            return;
        }
        shared.status.insert(conn.status_entry(peer));
        shared.metrics.connected.inc();
        info!(peer = ?peer, config.version = conn.config_version, "proxy connected");
        let end = conn.serve(first, inbound, config, &mut shutdown).await;
        shared.status.remove(id);
        shared.metrics.connected.dec();
        match end {
            End::ClientGone => info!("proxy disconnected"),
            End::Shutdown => info!("stream closed: shutting down"),
            End::Internal(e) => {
                warn!(error = %e, "stream closed");
                let _ = conn.tx.send(Err(Status::internal(e))).await;
            }
        }
    }
    .instrument(span)
    .await;
}

impl Connection {
    async fn serve(
        &mut self,
        first: DiscoveryRequest,
        mut inbound: Streaming<DiscoveryRequest>,
        mut config: watch::Receiver<Arc<ConfigState>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        if *shutdown.borrow() {
            return End::Shutdown;
        }
        if let Err(end) = self.on_request(first).await {
            return end;
        }
        loop {
            let step = tokio::select! {
                m = inbound.next() => match m {
                    Some(Ok(req)) => self.on_request(req).await,
                    Some(Err(status)) => {
                        debug!(error = %status, "stream error");
                        Err(End::ClientGone)
                    }
                    None => Err(End::ClientGone),
                },
                changed = config.changed() => match changed {
                    Ok(()) => {
                        let state = config.borrow_and_update().clone();
                        self.on_config(&state).await
                    }
                    Err(_) => Err(End::Shutdown),
                },
                _ = shutdown.changed() => Err(End::Shutdown),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn on_request(&mut self, req: DiscoveryRequest) -> Result<(), End> {
        let Some(t) = XdsType::from_type_url(&req.type_url) else {
            debug!(xds.type_url = %req.type_url, "request for a type meshd does not serve; ignored");
            return Ok(());
        };
        let st = &mut self.types[t as usize];

        if st.sent.is_none() {
            // Nothing sent for this type on this stream yet: a first request, or a proxy that
            // reconnected and still carries the version and nonce of an earlier stream (or an
            // earlier meshd). Either way it gets everything.
            if !req.response_nonce.is_empty() {
                debug!(xds.type_url = t.type_url(), xds.version = %req.version_info, "reconnected");
            }
            st.subscribed = true;
            st.names = requested_names(t, &req, &self.shared);
            self.respond(t, None).await?;
            self.mirror();
            return Ok(());
        }

        if let Some(err) = &req.error_detail {
            let version = st
                .sent
                .as_ref()
                .filter(|s| s.nonce == req.response_nonce)
                .map(|s| s.version.clone());
            warn!(
                xds.type_url = t.type_url(),
                xds.nonce = %req.response_nonce,
                xds.version = version.as_deref().unwrap_or("?"),
                detail = %err.message,
                "NACK"
            );
            st.status.last_nack = Some(Nack {
                version,
                nonce: req.response_nonce.clone(),
                detail: err.message.clone(),
                time: status::now(),
            });
            self.shared.metrics.nack(t.short());
            self.mirror();
            return Ok(());
        }

        if !req.response_nonce.is_empty() {
            let current = st
                .sent
                .as_ref()
                .is_some_and(|s| s.nonce == req.response_nonce);
            if !current {
                debug!(xds.type_url = t.type_url(), xds.nonce = %req.response_nonce, "stale nonce; ignored");
                return Ok(());
            }
            if st.status.nonce_acked.as_deref() != Some(req.response_nonce.as_str()) {
                debug!(xds.type_url = t.type_url(), xds.version = %req.version_info, "ACK");
                st.status.version_acked = Some(req.version_info.clone());
                st.status.nonce_acked = Some(req.response_nonce.clone());
                st.status.acked_time = Some(status::now());
            }
            if !same_names(st.names.as_deref(), t, &req) {
                st.names = requested_names(t, &req, &self.shared);
                self.respond(t, None).await?;
            }
            self.mirror();
            return Ok(());
        }

        // No nonce although something was sent: the proxy asks afresh; answer in full.
        st.subscribed = true;
        st.names = requested_names(t, &req, &self.shared);
        self.respond(t, None).await?;
        self.mirror();
        Ok(())
    }

    async fn on_config(&mut self, state: &Arc<ConfigState>) -> Result<(), End> {
        if state.version == self.config_version {
            return Ok(());
        }
        let old = self.encoded.clone();
        self.regenerate(state).await.map_err(End::Internal)?;
        // Clusters in both configs whose bytes differ (both lists are in name order).
        let clusters = XdsType::Cluster.kind();
        let mut before = old.iter(clusters).peekable();
        let mut modified: BTreeSet<&str> = BTreeSet::new();
        for r in self.encoded.iter(clusters) {
            while before.next_if(|o| o.name < r.name).is_some() {}
            if before
                .peek()
                .is_some_and(|o| o.name == r.name && o.digest != r.digest)
            {
                modified.insert(&r.name);
            }
        }
        let rewarm: bool = self.types[XdsType::Endpoint as usize]
            .names
            .as_ref()
            .is_some_and(|names| names.iter().any(|n| modified.contains(n.as_str())));
        let mut cds_pushed = false;
        for t in XdsType::ALL {
            let st = &self.types[t as usize];
            if !st.subscribed {
                continue;
            }
            let unchanged = st
                .sent
                .as_ref()
                .is_some_and(|s| s.digest == digest(&self.selected(t)));
            let warm = t == XdsType::Endpoint && cds_pushed && rewarm;
            if unchanged && !warm {
                continue;
            }
            self.respond(t, Some(state.built_at.elapsed())).await?;
            cds_pushed |= t == XdsType::Cluster;
        }
        self.mirror();
        Ok(())
    }

    /// Generates and encodes the proxy's resources from `state` (the part it shares with
    /// proxies of its outbound key comes from the build's cache, generated once).
    async fn regenerate(&mut self, state: &Arc<ConfigState>) -> Result<(), String> {
        let _permit = self
            .shared
            .generate_permits
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let (shared, proxy, state2) = (self.shared.clone(), self.proxy.clone(), state.clone());
        let encoded = tokio::task::spawn_blocking(move || {
            shared
                .translator
                .encoded(&state2.snapshot, &state2.cache, &proxy)
        })
        .await
        .map_err(|e| format!("the translation failed for this proxy: {e}"))?;
        self.encoded = Arc::new(encoded);
        self.config_version = state.version;
        Ok(())
    }

    /// The resources of type `t` this proxy asked for, by name. Endpoints asked for that the
    /// config does not have are sent empty, as istiod does, so that Envoy does not hold a
    /// cluster warming until its initial fetch timeout.
    fn selected(&self, t: XdsType) -> Vec<Cow<'_, EncodedResource>> {
        let kind = t.kind();
        match &self.types[t as usize].names {
            None => self.encoded.iter(kind).map(Cow::Borrowed).collect(),
            Some(names) => {
                // Names and resources are both in name order: walk them together.
                let mut resources = self.encoded.iter(kind).peekable();
                let mut out = Vec::with_capacity(names.len());
                for n in names.iter() {
                    while resources.next_if(|r| r.name < *n).is_some() {}
                    match resources.peek() {
                        Some(r) if r.name == *n => out.push(Cow::Borrowed(*r)),
                        _ if t == XdsType::Endpoint => out.push(Cow::Owned(empty_endpoints(n))),
                        _ => {}
                    }
                }
                out
            }
        }
    }

    async fn respond(&mut self, t: XdsType, latency: Option<Duration>) -> Result<(), End> {
        let selected = self.selected(t);
        let sent_digest = digest(&selected);
        let count = selected.len();
        let items: Vec<Item<'_>> = selected.iter().map(|r| Item { value: &r.value }).collect();
        let nonce = self.shared.nonce();
        let version = self.config_version.to_string();
        let response = frame_response(&version, t.type_url(), &nonce, CONTROL_PLANE, &items);
        drop(items);
        drop(selected);
        let started = Instant::now();
        for chunk in response {
            self.tx.send(Ok(chunk)).await.map_err(|_| End::ClientGone)?;
        }
        self.shared
            .metrics
            .push(t.short(), latency.map(|l| l + started.elapsed()));
        debug!(
            xds.type_url = t.type_url(),
            xds.version = %version,
            xds.nonce = %nonce,
            resources = count,
            "push"
        );
        let st = &mut self.types[t as usize];
        st.status.version_sent = Some(version.clone());
        st.status.nonce_sent = Some(nonce.clone());
        st.status.sent_time = Some(status::now());
        st.status.resources_sent = count;
        st.sent = Some(Sent {
            nonce,
            version,
            digest: sent_digest,
        });
        Ok(())
    }

    fn status_entry(&self, peer: Option<SocketAddr>) -> ProxyStatus {
        ProxyStatus {
            proxy: self.proxy.id.clone(),
            connection_id: self.id,
            peer: peer.map(|p| p.to_string()),
            namespace: self.proxy.namespace.clone(),
            workload: self.proxy.workload.clone(),
            ip: self.proxy.ip.to_string(),
            local_mode: self.proxy.local_mode,
            proxy_version: self.agent.0.clone(),
            cluster_id: self.agent.1.clone(),
            control_plane: status::control_plane_id().to_owned(),
            connected_time: status::now(),
            config_version: self.config_version,
            types: self.type_statuses(),
            info: Some(self.proxy.clone()),
            config: self.encoded.clone(),
        }
    }

    fn type_statuses(&self) -> std::collections::BTreeMap<&'static str, TypeStatus> {
        XdsType::ALL
            .into_iter()
            .map(|t| {
                let st = &self.types[t as usize];
                let mut s = st.status.clone();
                s.subscribed = st.names.clone().map(Names);
                s.refresh_state();
                (t.short(), s)
            })
            .collect()
    }

    /// Copies this connection's state into the shared table.
    fn mirror(&self) {
        let types = self.type_statuses();
        let (version, config) = (self.config_version, self.encoded.clone());
        self.shared.status.update(self.id, |s| {
            s.types = types;
            s.config_version = version;
            s.config = config;
        });
    }
}

/// The names a request asks for: `None` for all (CDS and LDS asked with no name or `*`).
fn requested_names(
    t: XdsType,
    req: &DiscoveryRequest,
    shared: &Shared,
) -> Option<Arc<BTreeSet<String>>> {
    let all = req.resource_names.is_empty() || req.resource_names.iter().any(|n| n == "*");
    if !t.by_name() && all {
        return None;
    }
    Some(
        shared
            .name_sets
            .intern(req.resource_names.iter().cloned().collect()),
    )
}

/// Whether a request asks for exactly the names `current` holds, without building a set
/// for the common case (an ACK repeating the names).
fn same_names(current: Option<&BTreeSet<String>>, t: XdsType, req: &DiscoveryRequest) -> bool {
    match current {
        Some(cur)
            if req.resource_names.len() == cur.len()
                && req.resource_names.iter().all(|n| cur.contains(n)) =>
        {
            true
        }
        _ => {
            let all = req.resource_names.is_empty() || req.resource_names.iter().any(|n| n == "*");
            match current {
                None => !t.by_name() && all,
                Some(cur) => {
                    (t.by_name() || !all)
                        && *cur == req.resource_names.iter().cloned().collect::<BTreeSet<_>>()
                }
            }
        }
    }
}

/// A ClusterLoadAssignment with no endpoints.
fn empty_endpoints(cluster: &str) -> EncodedResource {
    let value = ClusterLoadAssignment {
        cluster_name: cluster.to_owned(),
        ..ClusterLoadAssignment::default()
    }
    .encode_to_vec();
    EncodedResource::new(cluster.to_owned(), value)
}

/// A digest of resources, from their own digests (of name and encoded bytes).
fn digest(resources: &[Cow<'_, EncodedResource>]) -> u64 {
    let mut h = DefaultHasher::new();
    resources.len().hash(&mut h);
    for r in resources {
        r.digest.hash(&mut h);
    }
    h.finish()
}
