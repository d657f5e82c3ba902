//! Clusters: Envoy's Cluster (and ClusterLoadAssignment) turned into what the data path
//! sends to. A [`ClusterSpec`] is the immutable, converted config; a [`Cluster`] is one
//! config generation's view (spec, hosts, hash ring) over state that outlives config
//! updates ([`ClusterShared`]: connection pools, counters, in-flight requests, and each
//! [`Host`]'s outlier state, kept by address when endpoints change).
//!
//! Load balancing: round robin, least request (two random choices, the fewer in-flight
//! requests wins), random, and consistent hashing (ring hash; Maglev is served by the same
//! ring, which keeps its stickiness but not its table's exact spread). Outlier detection
//! ejects a host after `consecutive_5xx` (or gateway-failure) answers in a row, for the
//! base ejection time times the number of ejections, within `max_ejection_percent`.
//! Circuit breakers: `max_requests`, `max_pending_requests` (HTTP/1: in-flight requests
//! beyond `max_connections`), `max_retries`; overflow answers 503 with
//! `x-envoy-overloaded` (response flag UO).
//!
//! Upstream TLS: `envoy.transport_sockets.tls` with meshd's SDS secrets (see
//! [`super::tls`]), made with the workload certificate in force at connect time.
//!
//! Refused (NACK): other transport sockets and TLS settings, custom cluster
//! types other than the dynamic forward proxy, active health checks, the typed
//! load-balancing policy, and Unix-socket endpoints. Ignored: DNS refresh settings, TCP
//! keepalive, slow start, idle and connection-duration limits, metadata.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::{Cluster as PbCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;

const HTTP_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const DFP_CLUSTER_TYPE: &str = "envoy.clusters.dynamic_forward_proxy";

/// Why a cluster cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cluster {cluster:?}: {reason}")]
pub struct ClusterError {
    pub cluster: String,
    pub reason: String,
}

fn err(c: &str, reason: impl Into<String>) -> ClusterError {
    ClusterError {
        cluster: c.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    Static,
    StrictDns,
    Eds,
    /// Envoy's dynamic forward proxy: each request's authority is resolved.
    ForwardProxy,
    /// Kubernetes-mode passthrough (needs traffic capture; answers 503 here).
    OriginalDst,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lb {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// Use the downstream request's protocol.
    Downstream,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u64,
    pub max_pending: u64,
    pub max_requests: u64,
    pub max_retries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // Envoy's defaults.
        Limits {
            max_connections: 1024,
            max_pending: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierSpec {
    pub consecutive_5xx: u32,
    pub enforce_5xx: bool,
    pub consecutive_gateway: u32,
    pub enforce_gateway: bool,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
}

/// Where an endpoint is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostAddr {
    Socket(SocketAddr),
    /// A DNS name (STRICT_DNS endpoints, forward-proxy authorities).
    Name(String, u16),
}

impl std::fmt::Display for HostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostAddr::Socket(s) => write!(f, "{s}"),
            HostAddr::Name(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// A converted Cluster.
#[derive(Debug)]
pub struct ClusterSpec {
    pub name: String,
    pub discovery: Discovery,
    pub lb: Lb,
    pub ring_size: u64,
    pub connect_timeout: Duration,
    pub protocol: Protocol,
    pub limits: Limits,
    pub outlier: Option<OutlierSpec>,
    /// The percentage of healthy hosts below which all hosts are used.
    pub panic_threshold: f64,
    /// EDS: the name endpoints are asked for by.
    pub eds_name: Option<String>,
    /// STATIC and STRICT_DNS endpoints.
    pub static_hosts: Vec<HostAddr>,
    /// The client side of mTLS (`None`: plaintext).
    pub tls: Option<super::tls::UpstreamTls>,
    pub proto: PbCluster,
}

fn duration(d: Option<&envoy_types::pb::google::protobuf::Duration>) -> Option<Duration> {
    super::route::optional_duration(d)
}

/// The addresses of a load assignment.
pub fn assignment_hosts(
    cla: &ClusterLoadAssignment,
    c: &str,
) -> Result<Vec<HostAddr>, ClusterError> {
    let mut out = Vec::new();
    for loc in &cla.endpoints {
        for lbe in &loc.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &lbe.host_identifier else {
                return Err(err(c, "named endpoints are not supported"));
            };
            let addr = match ep.address.as_ref().and_then(|a| a.address.as_ref()) {
                Some(address::Address::SocketAddress(sa)) => {
                    let port = match sa.port_specifier {
                        Some(socket_address::PortSpecifier::PortValue(p)) => {
                            u16::try_from(p).map_err(|_| err(c, format!("bad port {p}")))?
                        }
                        _ => return Err(err(c, "named ports are not supported")),
                    };
                    match sa.address.parse() {
                        Ok(ip) => HostAddr::Socket(SocketAddr::new(ip, port)),
                        Err(_) => HostAddr::Name(sa.address.clone(), port),
                    }
                }
                Some(address::Address::Pipe(_)) => {
                    return Err(err(c, "Unix-socket endpoints are not supported"));
                }
                _ => return Err(err(c, "endpoint without a socket address")),
            };
            out.push(addr);
        }
    }
    Ok(out)
}

impl TryFrom<&PbCluster> for ClusterSpec {
    type Error = ClusterError;

    fn try_from(c: &PbCluster) -> Result<Self, ClusterError> {
        let n = c.name.as_str();
        let tls = super::tls::UpstreamTls::from_socket(c.transport_socket.as_ref())
            .map_err(|e| err(n, format!("upstream TLS: {e}")))?;
        if !c.transport_socket_matches.is_empty() {
            return Err(err(n, "transport socket matches are not supported"));
        }
        if !c.health_checks.is_empty() {
            return Err(err(n, "active health checks are not supported"));
        }
        if c.load_balancing_policy.is_some() {
            return Err(err(n, "typed load-balancing policies are not supported"));
        }
        let discovery = match &c.cluster_discovery_type {
            Some(cluster::ClusterDiscoveryType::Type(t)) => {
                match cluster::DiscoveryType::try_from(*t) {
                    Ok(cluster::DiscoveryType::Static) => Discovery::Static,
                    Ok(cluster::DiscoveryType::StrictDns | cluster::DiscoveryType::LogicalDns) => {
                        Discovery::StrictDns
                    }
                    Ok(cluster::DiscoveryType::Eds) => Discovery::Eds,
                    Ok(cluster::DiscoveryType::OriginalDst) => Discovery::OriginalDst,
                    Err(_) => return Err(err(n, format!("unknown discovery type {t}"))),
                }
            }
            Some(cluster::ClusterDiscoveryType::ClusterType(ct)) if ct.name == DFP_CLUSTER_TYPE => {
                Discovery::ForwardProxy
            }
            Some(cluster::ClusterDiscoveryType::ClusterType(ct)) => {
                return Err(err(
                    n,
                    format!("custom cluster type {:?} is not supported", ct.name),
                ));
            }
            None => Discovery::Static,
        };
        let lb = match cluster::LbPolicy::try_from(c.lb_policy) {
            Ok(cluster::LbPolicy::RoundRobin) => Lb::RoundRobin,
            Ok(cluster::LbPolicy::LeastRequest) => Lb::LeastRequest,
            Ok(cluster::LbPolicy::Random) => Lb::Random,
            Ok(cluster::LbPolicy::RingHash) => Lb::RingHash,
            Ok(cluster::LbPolicy::Maglev) => Lb::Maglev,
            Ok(cluster::LbPolicy::ClusterProvided) => Lb::Random,
            _ => {
                return Err(err(
                    n,
                    format!("load-balancing policy {} is not supported", c.lb_policy),
                ));
            }
        };
        let ring_size = match &c.lb_config {
            Some(cluster::LbConfig::RingHashLbConfig(r)) => {
                r.minimum_ring_size.as_ref().map_or(1024, |v| v.value)
            }
            Some(cluster::LbConfig::MaglevLbConfig(m)) => {
                m.table_size.as_ref().map_or(65537, |v| v.value)
            }
            _ => 1024,
        }
        .clamp(1, 1 << 20);
        let mut limits = Limits::default();
        if let Some(cb) = &c.circuit_breakers
            && let Some(t) = cb.thresholds.iter().find(|t| t.priority == 0)
        {
            let v = |o: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u64| {
                o.as_ref().map_or(d, |x| u64::from(x.value))
            };
            limits = Limits {
                max_connections: v(&t.max_connections, limits.max_connections),
                max_pending: v(&t.max_pending_requests, limits.max_pending),
                max_requests: v(&t.max_requests, limits.max_requests),
                max_retries: v(&t.max_retries, limits.max_retries),
            };
        }
        let outlier = c.outlier_detection.as_ref().map(|o| {
            let u = |x: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| {
                x.as_ref().map_or(d, |v| v.value)
            };
            OutlierSpec {
                consecutive_5xx: u(&o.consecutive_5xx, 5),
                enforce_5xx: u(&o.enforcing_consecutive_5xx, 100) > 0,
                consecutive_gateway: u(&o.consecutive_gateway_failure, 5),
                enforce_gateway: u(&o.enforcing_consecutive_gateway_failure, 0) > 0,
                base_ejection: duration(o.base_ejection_time.as_ref())
                    .unwrap_or(Duration::from_secs(30)),
                max_ejection_percent: u(&o.max_ejection_percent, 10),
            }
        });
        let panic_threshold = c
            .common_lb_config
            .as_ref()
            .and_then(|l| l.healthy_panic_threshold.as_ref())
            .map_or(50.0, |p| p.value);
        let mut protocol = Protocol::Http1;
        if let Some(any) = c.typed_extension_protocol_options.get(HTTP_OPTIONS_KEY) {
            let o = HttpProtocolOptions::decode(any.value.as_slice())
                .map_err(|e| err(n, format!("bad HTTP protocol options: {e}")))?;
            use http_protocol_options::UpstreamProtocolOptions as U;
            use http_protocol_options::explicit_http_config::ProtocolConfig as P;
            protocol = match &o.upstream_protocol_options {
                Some(U::ExplicitHttpConfig(e)) => match &e.protocol_config {
                    Some(P::Http2ProtocolOptions(_)) => Protocol::Http2,
                    Some(P::HttpProtocolOptions(_)) | None => Protocol::Http1,
                    Some(P::Http3ProtocolOptions(_)) => {
                        return Err(err(n, "HTTP/3 upstreams are not supported"));
                    }
                },
                Some(U::UseDownstreamProtocolConfig(_)) => Protocol::Downstream,
                Some(U::AutoConfig(_)) => Protocol::Http1,
                None => Protocol::Http1,
            };
        }
        let static_hosts = match (&c.load_assignment, discovery) {
            (Some(cla), Discovery::Static | Discovery::StrictDns) => assignment_hosts(cla, n)?,
            _ => Vec::new(),
        };
        let eds_name = (discovery == Discovery::Eds).then(|| {
            c.eds_cluster_config
                .as_ref()
                .map(|e| e.service_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| c.name.clone())
        });
        Ok(ClusterSpec {
            name: c.name.clone(),
            discovery,
            lb,
            ring_size,
            connect_timeout: duration(c.connect_timeout.as_ref()).unwrap_or(Duration::from_secs(5)),
            protocol,
            limits,
            outlier,
            panic_threshold,
            eds_name,
            static_hosts,
            tls,
            proto: c.clone(),
        })
    }
}

/// Outlier-detection state of one host.
#[derive(Debug, Default)]
struct OutlierState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

/// One endpoint and what is known about it.
#[derive(Debug)]
pub struct Host {
    pub addr: HostAddr,
    pub active: AtomicU64,
    pub rq_total: AtomicU64,
    pub rq_error: AtomicU64,
    pub rq_success: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    ejected: AtomicBool,
    outlier: std::sync::Mutex<OutlierState>,
}

impl Host {
    pub fn new(addr: HostAddr) -> Host {
        Host {
            addr,
            active: AtomicU64::new(0),
            rq_total: AtomicU64::new(0),
            rq_error: AtomicU64::new(0),
            rq_success: AtomicU64::new(0),
            cx_connect_fail: AtomicU64::new(0),
            ejected: AtomicBool::new(false),
            outlier: std::sync::Mutex::new(OutlierState::default()),
        }
    }

    /// Whether outlier detection has the host ejected now.
    pub fn is_ejected(&self) -> bool {
        if !self.ejected.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(mut st) = self.outlier.lock() else {
            return false;
        };
        match st.ejected_until {
            Some(t) if Instant::now() < t => true,
            _ => {
                st.ejected_until = None;
                self.ejected.store(false, Ordering::Relaxed);
                false
            }
        }
    }
}

/// Counters of one cluster, kept across config updates.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub rq_total: AtomicU64,
    pub rq_2xx: AtomicU64,
    pub rq_3xx: AtomicU64,
    pub rq_4xx: AtomicU64,
    pub rq_5xx: AtomicU64,
    pub rq_timeout: AtomicU64,
    pub rq_retry: AtomicU64,
    pub rq_pending_overflow: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub ejections_total: AtomicU64,
    pub no_healthy: AtomicU64,
}

/// State of a cluster that outlives config generations.
pub struct ClusterShared {
    pub h1: Client<HttpConnector, Full<Bytes>>,
    /// HTTP/2 connections, one per host, multiplexed (kept here rather than in a pooled
    /// client so that `:authority` can be the request's, not the host address).
    h2: std::sync::Mutex<HashMap<HostAddr, hyper::client::conn::http2::SendRequest<Full<Bytes>>>>,
    pub rr: AtomicUsize,
    pub active_rq: AtomicU64,
    pub active_retries: AtomicU64,
    pub stats: ClusterStats,
    pub connect_timeout: Duration,
    /// The source address of upstream connections (`None`: the kernel's choice).
    pub bind: Option<std::net::IpAddr>,
    /// Hosts by address, so outlier state survives endpoint updates.
    hosts: std::sync::Mutex<HashMap<HostAddr, std::sync::Weak<Host>>>,
    /// Upstream TLS: the cluster's settings (`None`: plaintext).
    pub tls: Option<super::tls::UpstreamTls>,
    /// The workload certificate's holder (TLS without one fails to connect).
    identity: Option<Arc<super::tls::Identity>>,
    /// HTTP/1.1 connections over TLS, by host (the pooled client above is plaintext only).
    /// Each connection is tagged with the serial of the certificate it was made with: once
    /// the certificate rotates, idle connections made with the old one are not reused.
    h1_tls: std::sync::Mutex<HashMap<HostAddr, Vec<(String, H1Sender)>>>,
}

type H1Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle TLS HTTP/1.1 connections kept per host.
const H1_TLS_IDLE: usize = 32;

impl std::fmt::Debug for ClusterShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterShared").finish_non_exhaustive()
    }
}

impl ClusterShared {
    pub fn new(connect_timeout: Duration) -> ClusterShared {
        ClusterShared::bound(connect_timeout, None)
    }

    /// Shared state whose upstream connections come from `bind` (when given).
    pub fn bound(connect_timeout: Duration, bind: Option<std::net::IpAddr>) -> ClusterShared {
        let mut conn = HttpConnector::new();
        conn.set_local_address(bind);
        conn.set_connect_timeout(Some(connect_timeout));
        conn.set_nodelay(true);
        let h1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(conn);
        let h2 = std::sync::Mutex::new(HashMap::new());
        ClusterShared {
            h1,
            h2,
            rr: AtomicUsize::new(0),
            active_rq: AtomicU64::new(0),
            active_retries: AtomicU64::new(0),
            stats: ClusterStats::default(),
            connect_timeout,
            bind,
            hosts: std::sync::Mutex::new(HashMap::new()),
            tls: None,
            identity: None,
            h1_tls: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Shared state whose upstream connections speak TLS as `tls` says.
    pub fn secured(
        connect_timeout: Duration,
        bind: Option<std::net::IpAddr>,
        tls: Option<super::tls::UpstreamTls>,
        identity: Option<Arc<super::tls::Identity>>,
    ) -> ClusterShared {
        let mut s = ClusterShared::bound(connect_timeout, bind);
        s.tls = tls;
        s.identity = identity;
        s
    }

    /// A new TCP connection to `addr`, from the bind address, within the connect timeout.
    pub async fn connect(&self, addr: &HostAddr) -> std::io::Result<tokio::net::TcpStream> {
        super::listener::connect_from(addr, self.bind, self.connect_timeout).await
    }

    /// A new connection to `addr`, in TLS when the cluster says so (the handshake within
    /// the connect timeout too).
    pub async fn connect_stream(&self, addr: &HostAddr) -> std::io::Result<super::tls::UpStream> {
        let tcp = self.connect(addr).await?;
        match (&self.tls, &self.identity) {
            (None, _) => Ok(super::tls::UpStream::Plain(tcp)),
            // A DestinationRule's SIMPLE/MUTUAL: files, no workload certificate needed.
            (
                Some(
                    up @ super::tls::UpstreamTls {
                        origination: Some(o),
                        ..
                    },
                ),
                _,
            ) => tokio::time::timeout(self.connect_timeout, super::tls::originate(up, o, tcp))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timeout")
                })?,
            (Some(_), None) => Err(std::io::Error::other(super::tls::TlsError::NoCertificate)),
            (Some(up), Some(id)) => tokio::time::timeout(self.connect_timeout, id.connect(up, tcp))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timeout")
                })?,
        }
    }

    /// The serial of the workload certificate in force ("" without one).
    fn serial(&self) -> String {
        self.identity
            .as_ref()
            .and_then(|i| i.current())
            .map(|c| c.serial.clone())
            .unwrap_or_default()
    }

    /// An HTTP/1.1 connection over TLS to `addr`: an idle one made with the certificate in
    /// force, or a new one.
    async fn h1_tls_sender(&self, addr: &HostAddr) -> Result<(String, H1Sender), UpstreamError> {
        let serial = self.serial();
        let idle = self.h1_tls.lock().ok().and_then(|mut m| {
            let v = m.get_mut(addr)?;
            v.retain(|(s, c)| !c.is_closed() && *s == serial);
            let i = v.iter().position(|(_, c)| c.is_ready())?;
            Some(v.swap_remove(i))
        });
        if let Some(s) = idle {
            return Ok(s);
        }
        let stream = self
            .connect_stream(addr)
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok((serial, sender))
    }

    /// Sends one HTTP/1.1 request over TLS; the connection goes back to the idle set (it is
    /// taken again once its response has been read).
    async fn send_h1_tls(
        &self,
        addr: &HostAddr,
        mut req: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
        let (serial, mut s) = self.h1_tls_sender(addr).await?;
        if !req.headers().contains_key(hyper::header::HOST)
            && let Some(a) = req.uri().authority()
            && let Ok(v) = hyper::header::HeaderValue::from_str(a.as_str())
        {
            req.headers_mut().insert(hyper::header::HOST, v);
        }
        // Origin form on the wire, as the pooled client sends.
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str)
            .to_owned();
        if let Ok(u) = pq.parse() {
            *req.uri_mut() = u;
        }
        s.ready()
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let resp = s.send_request(req).await;
        if let Ok(mut m) = self.h1_tls.lock() {
            let v = m.entry(addr.clone()).or_default();
            v.retain(|(_, c)| !c.is_closed());
            if v.len() < H1_TLS_IDLE {
                v.push((serial, s));
            }
        }
        resp.map_err(|e| UpstreamError::Reset(e.to_string()))
    }

    /// An HTTP/2 connection to `addr`: the open one, or a new one.
    pub async fn h2_sender(
        &self,
        addr: &HostAddr,
    ) -> Result<hyper::client::conn::http2::SendRequest<Full<Bytes>>, UpstreamError> {
        let open = self
            .h2
            .lock()
            .ok()
            .and_then(|m| m.get(addr).cloned())
            .filter(|s| !s.is_closed());
        if let Some(s) = open {
            return Ok(s);
        }
        let stream = self
            .connect_stream(addr)
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        if let Ok(mut m) = self.h2.lock() {
            m.retain(|_, s| !s.is_closed());
            m.insert(addr.clone(), sender.clone());
        }
        Ok(sender)
    }

    /// Sends one request to `addr` over HTTP/2 or HTTP/1.1.
    pub async fn send(
        &self,
        addr: &HostAddr,
        req: hyper::Request<Full<Bytes>>,
        h2: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, UpstreamError> {
        if h2 {
            let mut s = self.h2_sender(addr).await?;
            s.ready()
                .await
                .map_err(|e| UpstreamError::Reset(e.to_string()))?;
            s.send_request(req)
                .await
                .map_err(|e| UpstreamError::Reset(e.to_string()))
        } else if self.tls.is_some() {
            self.send_h1_tls(addr, req).await
        } else {
            self.h1.request(req).await.map_err(|e| {
                if e.is_connect() {
                    UpstreamError::Connect(format!("{e:?}"))
                } else {
                    UpstreamError::Reset(e.to_string())
                }
            })
        }
    }

    /// The host for an address: the existing one (with its state) or a new one.
    pub fn host(&self, addr: &HostAddr) -> Arc<Host> {
        let Ok(mut map) = self.hosts.lock() else {
            return Arc::new(Host::new(addr.clone()));
        };
        if let Some(h) = map.get(addr).and_then(std::sync::Weak::upgrade) {
            return h;
        }
        let h = Arc::new(Host::new(addr.clone()));
        map.insert(addr.clone(), Arc::downgrade(&h));
        map.retain(|_, w| w.strong_count() > 0);
        h
    }
}

/// Why an upstream request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    Connect(String),
    Reset(String),
}

/// One config generation's view of a cluster.
#[derive(Debug)]
pub struct Cluster {
    pub spec: Arc<ClusterSpec>,
    pub hosts: Vec<Arc<Host>>,
    /// Consistent-hash ring: (point, host index), sorted by point.
    ring: Vec<(u64, usize)>,
    pub shared: Arc<ClusterShared>,
}

impl Cluster {
    pub fn new(spec: Arc<ClusterSpec>, addrs: &[HostAddr], shared: Arc<ClusterShared>) -> Cluster {
        let mut seen = std::collections::HashSet::new();
        let hosts: Vec<Arc<Host>> = addrs
            .iter()
            .filter(|a| seen.insert((*a).clone()))
            .map(|a| shared.host(a))
            .collect();
        let ring = if matches!(spec.lb, Lb::RingHash | Lb::Maglev) {
            build_ring(&hosts, spec.ring_size)
        } else {
            Vec::new()
        };
        Cluster {
            spec,
            hosts,
            ring,
            shared,
        }
    }

    /// Picks a host: by hash when the cluster hashes and a hash is given, else by the
    /// cluster's policy; hosts in `avoid` are skipped while others remain.
    pub fn choose(&self, hash: Option<u64>, avoid: &[usize]) -> Option<usize> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        // Fast path: every host usable, nothing to avoid.
        if avoid.is_empty()
            && self
                .hosts
                .iter()
                .all(|h| !h.ejected.load(Ordering::Relaxed))
        {
            return Some(self.select(hash, n, |k| k, |_| true));
        }
        let healthy: Vec<usize> = (0..n).filter(|i| !self.hosts[*i].is_ejected()).collect();
        // Panic mode: too few healthy hosts, so every host is used.
        #[allow(clippy::cast_precision_loss)]
        let panic = (healthy.len() as f64) * 100.0 / (n as f64) < self.spec.panic_threshold;
        let usable: Vec<usize> = if panic { (0..n).collect() } else { healthy };
        if usable.is_empty() {
            return None;
        }
        let preferred: Vec<usize> = usable
            .iter()
            .copied()
            .filter(|i| !avoid.contains(i))
            .collect();
        let pool = if preferred.is_empty() {
            &usable
        } else {
            &preferred
        };
        Some(self.select(hash, pool.len(), |k| pool[k], |i| pool.contains(&i)))
    }

    /// Picks among `len` candidates (`at(k)` is the k-th host index; `allowed` says whether a
    /// host index is a candidate): by the ring when hashing, else by the cluster's policy.
    fn select(
        &self,
        hash: Option<u64>,
        len: usize,
        at: impl Fn(usize) -> usize,
        allowed: impl Fn(usize) -> bool,
    ) -> usize {
        if let (Some(h), false) = (hash, self.ring.is_empty()) {
            let start = self.ring.partition_point(|(p, _)| *p < h);
            for k in 0..self.ring.len() {
                let (_, idx) = self.ring[(start + k) % self.ring.len()];
                if allowed(idx) {
                    return idx;
                }
            }
        }
        match self.spec.lb {
            Lb::RoundRobin => at(self.shared.rr.fetch_add(1, Ordering::Relaxed) % len),
            Lb::LeastRequest if len > 1 => {
                let a = at(fastrand::usize(..len));
                let b = at(fastrand::usize(..len));
                if self.hosts[b].active.load(Ordering::Relaxed)
                    < self.hosts[a].active.load(Ordering::Relaxed)
                {
                    b
                } else {
                    a
                }
            }
            _ => at(fastrand::usize(..len)),
        }
    }

    /// Records a try's outcome for outlier detection: `status` is `None` for a connection
    /// failure or reset (counted as a 5xx and gateway failure, as Envoy counts
    /// locally-originated errors without split).
    pub fn record(&self, host: &Host, status: Option<u16>) {
        host.rq_total.fetch_add(1, Ordering::Relaxed);
        let is_5xx = status.is_none_or(|s| s >= 500);
        if is_5xx {
            host.rq_error.fetch_add(1, Ordering::Relaxed);
        } else {
            host.rq_success.fetch_add(1, Ordering::Relaxed);
        }
        let Some(od) = self.spec.outlier else { return };
        let gateway = status.is_none_or(|s| matches!(s, 502..=504));
        let Ok(mut st) = host.outlier.lock() else {
            return;
        };
        if !is_5xx {
            st.consecutive_5xx = 0;
            st.consecutive_gateway = 0;
            return;
        }
        st.consecutive_5xx += 1;
        if gateway {
            st.consecutive_gateway += 1;
        } else {
            st.consecutive_gateway = 0;
        }
        let trip =
            (od.enforce_5xx && od.consecutive_5xx > 0 && st.consecutive_5xx >= od.consecutive_5xx)
                || (od.enforce_gateway
                    && od.consecutive_gateway > 0
                    && st.consecutive_gateway >= od.consecutive_gateway);
        if !trip || st.ejected_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let ejected = self
            .hosts
            .iter()
            .filter(|h| h.ejected.load(Ordering::Relaxed))
            .count();
        let n = self.hosts.len().max(1);
        if ejected * 100 / n >= od.max_ejection_percent as usize && ejected > 0 {
            return;
        }
        st.ejections += 1;
        st.consecutive_5xx = 0;
        st.consecutive_gateway = 0;
        st.ejected_until = Some(Instant::now() + od.base_ejection * st.ejections);
        host.ejected.store(true, Ordering::Relaxed);
        self.shared
            .stats
            .ejections_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a new request would overflow the circuit breakers.
    pub fn overflows(&self) -> bool {
        let active = self.shared.active_rq.load(Ordering::Relaxed);
        let l = &self.spec.limits;
        let h1 = self.spec.protocol != Protocol::Http2;
        active >= l.max_requests
            || (h1 && active >= l.max_connections.saturating_add(l.max_pending))
    }
}

/// A 64-bit FNV-1a hash, mixed (stable across runs and builds).
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Finalizer (from MurmurHash3) to spread nearby keys over the ring.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn build_ring(hosts: &[Arc<Host>], size: u64) -> Vec<(u64, usize)> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let per_host = (size / hosts.len() as u64).max(1);
    let mut ring = Vec::with_capacity(usize::try_from(per_host).unwrap_or(1024) * hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let key = h.addr.to_string();
        for k in 0..per_host {
            ring.push((hash_bytes(format!("{key}_{k}").as_bytes()), i));
        }
    }
    ring.sort_unstable();
    ring
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn spec(lb: cluster::LbPolicy) -> ClusterSpec {
        ClusterSpec::try_from(&PbCluster {
            name: "c".into(),
            lb_policy: lb as i32,
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            ..Default::default()
        })
        .unwrap()
    }

    fn addrs(n: u8) -> Vec<HostAddr> {
        (1..=n)
            .map(|i| HostAddr::Socket(SocketAddr::from(([127, 0, 0, i], 80))))
            .collect()
    }

    fn cluster(s: ClusterSpec, n: u8) -> Cluster {
        Cluster::new(
            Arc::new(s),
            &addrs(n),
            Arc::new(ClusterShared::new(Duration::from_secs(1))),
        )
    }

    #[tokio::test]
    async fn round_robin_visits_every_host() {
        let c = cluster(spec(cluster::LbPolicy::RoundRobin), 3);
        let picks: Vec<usize> = (0..6).map(|_| c.choose(None, &[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // A retry avoids the host tried before.
        assert_ne!(c.choose(None, &[0]), Some(0));
    }

    #[tokio::test]
    async fn least_request_prefers_idle_hosts() {
        let c = cluster(spec(cluster::LbPolicy::LeastRequest), 2);
        c.hosts[0].active.store(10, Ordering::Relaxed);
        let ones = (0..200).filter(|_| c.choose(None, &[]) == Some(1)).count();
        // Host 1 wins whenever the two choices differ (about 3/4 of the time) and half
        // of the rest.
        assert!(ones > 120, "{ones}");
    }

    #[tokio::test]
    async fn ring_hash_is_sticky_and_spreads() {
        let c = cluster(spec(cluster::LbPolicy::RingHash), 3);
        let a = c.choose(Some(hash_bytes(b"alice")), &[]).unwrap();
        for _ in 0..20 {
            assert_eq!(c.choose(Some(hash_bytes(b"alice")), &[]), Some(a));
        }
        let mut seen = std::collections::HashSet::new();
        for u in 0..100 {
            seen.insert(
                c.choose(Some(hash_bytes(format!("user{u}").as_bytes())), &[])
                    .unwrap(),
            );
        }
        assert_eq!(seen.len(), 3);
        // Without a hash the cluster still answers.
        assert!(c.choose(None, &[]).is_some());
    }

    #[tokio::test]
    async fn outlier_detection_ejects_after_consecutive_5xx() {
        let mut s = spec(cluster::LbPolicy::RoundRobin);
        s.outlier = Some(OutlierSpec {
            consecutive_5xx: 2,
            enforce_5xx: true,
            consecutive_gateway: 5,
            enforce_gateway: false,
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 50,
        });
        s.panic_threshold = 0.0;
        let c = cluster(s, 2);
        c.record(&c.hosts[0], Some(503));
        assert!(!c.hosts[0].is_ejected());
        c.record(&c.hosts[0], Some(200));
        c.record(&c.hosts[0], Some(503));
        assert!(!c.hosts[0].is_ejected(), "a success resets the count");
        c.record(&c.hosts[0], Some(500));
        assert!(c.hosts[0].is_ejected());
        for _ in 0..5 {
            assert_eq!(c.choose(None, &[]), Some(1));
        }
        // 50% at most: the second host stays.
        c.record(&c.hosts[1], None);
        c.record(&c.hosts[1], None);
        assert!(!c.hosts[1].is_ejected());
    }

    #[test]
    fn conversion_refuses_tls_and_reads_limits() {
        let mut pb = PbCluster {
            name: "c".into(),
            transport_socket: Some(envoy_types::pb::envoy::config::core::v3::TransportSocket {
                name: "envoy.transport_sockets.tls".into(),
                config_type: None,
            }),
            ..Default::default()
        };
        let e = ClusterSpec::try_from(&pb).unwrap_err();
        assert!(e.reason.contains("TLS"), "{e}");
        pb.transport_socket = None;
        pb.circuit_breakers = Some(
            envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers {
                thresholds: vec![
                    envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds {
                        max_requests: Some(UInt32Value { value: 1 }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
        );
        pb.outlier_detection = Some(OutlierDetection::default());
        let s = ClusterSpec::try_from(&pb).unwrap();
        assert_eq!(s.limits.max_requests, 1);
        assert_eq!(s.outlier.unwrap().consecutive_5xx, 5);
    }
}
