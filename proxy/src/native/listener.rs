//! Listeners: binding the sockets LDS names (before the update is ACKed, so that an
//! address that cannot be bound NACKs it), accept loops, and per-connection serving: HTTP/1.1
//! and HTTP/2 cleartext (hyper's automatic codec, upgrades for `CONNECT`) for HTTP
//! connection managers, byte splicing for `tcp_proxy`; on listeners with a TLS chain, the
//! TLS handshake first when the client's first byte opens one (mTLS, the peer's identity
//! kept for RBAC and `x-forwarded-client-cert`), plaintext only when a plaintext chain
//! exists (PERMISSIVE; under STRICT a plaintext client is closed on).
//!
//! A listener removed by an update stops accepting; connections it accepted finish on
//! their own. Each connection looks its listener up in the config in force when it is
//! accepted, and each request takes the config in force when it starts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Proxy;
use super::ads::ListenerSink;
use super::cluster::HostAddr;
use super::config::{Config, Direction, ListenerKind, ListenerSpec};
use super::http::{self, Conn};
use super::metrics::{ConnectionSecurity, TcpLabels};

/// The running listeners, by name.
pub struct Listeners {
    proxy: Arc<Proxy>,
    running: HashMap<String, (SocketAddr, JoinHandle<()>)>,
}

impl Listeners {
    pub fn new(proxy: Arc<Proxy>) -> Listeners {
        Listeners {
            proxy,
            running: HashMap::new(),
        }
    }

    /// The addresses bound now, by listener name.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        let mut v: Vec<_> = self
            .running
            .iter()
            .map(|(n, (a, _))| (n.clone(), *a))
            .collect();
        v.sort();
        v
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for (_, (_, h)) in self.running.drain() {
            h.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

impl ListenerSink for Listeners {
    fn apply(&mut self, next: &mut Config) -> Vec<String> {
        // Stop what is gone or moved.
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, (addr, _))| next.listeners.get(*name).is_none_or(|l| l.addr != *addr))
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some((addr, h)) = self.running.remove(&name) {
                info!(listener.name = %name, listener.address = %addr, "listener removed");
                h.abort();
            }
        }
        // Bind what is new; what cannot be bound is taken out and reported.
        let mut errors = Vec::new();
        let new: Vec<(String, Arc<ListenerSpec>)> = next
            .listeners
            .iter()
            .filter(|(name, _)| !self.running.contains_key(*name))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        for (name, spec) in new {
            match bind(spec.addr) {
                Ok(l) => {
                    info!(listener.name = %name, listener.address = %spec.addr, "listening");
                    let addr = spec.addr;
                    let task = tokio::spawn(accept_loop(l, name.clone(), spec, self.proxy.clone()));
                    self.running.insert(name, (addr, task));
                }
                Err(e) => {
                    errors.push(format!("listener {name:?}: cannot bind {}: {e}", spec.addr));
                    next.drop_listener(&name);
                }
            }
        }
        errors
    }
}

async fn accept_loop(l: TcpListener, name: String, fallback: Arc<ListenerSpec>, proxy: Arc<Proxy>) {
    loop {
        let (sock, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(listener.name = %name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let spec = proxy
            .store
            .current()
            .listeners
            .get(&name)
            .cloned()
            .unwrap_or_else(|| fallback.clone());
        let proxy = proxy.clone();
        tokio::spawn(async move {
            proxy
                .metrics
                .downstream_cx_total
                .fetch_add(1, Ordering::Relaxed);
            proxy
                .metrics
                .downstream_cx_active
                .fetch_add(1, Ordering::Relaxed);
            serve(sock, peer, spec, proxy.clone()).await;
            proxy
                .metrics
                .downstream_cx_active
                .fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one accepted connection: plaintext, or TLS first when the listener has a TLS
/// chain and the client starts a handshake (as `tls_inspector` tells them apart).
async fn serve(sock: TcpStream, peer: SocketAddr, spec: Arc<ListenerSpec>, proxy: Arc<Proxy>) {
    // Servers always require a client certificate (`tls::ServerTls` refuses other configs).
    if spec.tls.is_none() {
        return serve_on(sock, peer, spec.clone(), proxy, None).await;
    }
    let mut first = [0u8; 1];
    let peeked = match spec.inspect_timeout {
        Some(t) => tokio::time::timeout(t, sock.peek(&mut first)).await,
        None => Ok(sock.peek(&mut first).await),
    };
    let is_tls = match peeked {
        Ok(Ok(1)) => first[0] == TLS_HANDSHAKE,
        Ok(_) => return,
        // As Envoy's listener filter timeout: close, or go on as plaintext when told to.
        Err(_) if spec.continue_on_inspect_timeout => false,
        Err(_) => {
            debug!(client.addr = %peer, listener.name = %spec.name, "no first bytes within the listener filter timeout; closing");
            return;
        }
    };
    if !is_tls {
        if spec.plaintext {
            return serve_on(sock, peer, spec.clone(), proxy, None).await;
        }
        debug!(client.addr = %peer, listener.name = %spec.name, "plaintext connection on an mTLS-only listener; closing");
        return;
    }
    let Some(identity) = proxy.identity.clone() else {
        warn!(client.addr = %peer, listener.name = %spec.name, "TLS connection but no workload certificate (no --ca-dir); closing");
        return;
    };
    let cfg = match identity.server_config() {
        Ok(c) => c,
        Err(e) => {
            warn!(client.addr = %peer, listener.name = %spec.name, error = %e, "cannot serve TLS; closing");
            return;
        }
    };
    let accepted = tokio::time::timeout(
        TLS_HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(cfg).accept(sock),
    )
    .await;
    let stream = match accepted {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            warn!(client.addr = %peer, listener.name = %spec.name, reason = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            debug!(client.addr = %peer, listener.name = %spec.name, "TLS handshake timed out");
            return;
        }
    };
    let local = identity.current().map(|c| c.id.clone());
    let peer_tls = super::tls::PeerTls::of(stream.get_ref().1, local);
    serve_on(stream, peer, spec.clone(), proxy, Some(peer_tls)).await;
}

async fn serve_on<S>(
    sock: S,
    peer: SocketAddr,
    spec: Arc<ListenerSpec>,
    proxy: Arc<Proxy>,
    tls: Option<super::tls::PeerTls>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match &spec.kind {
        ListenerKind::Http(_) => serve_http(sock, peer, spec.clone(), proxy, tls).await,
        ListenerKind::Tcp(_) => serve_tcp(sock, peer, spec.clone(), proxy, tls).await,
    }
}

async fn serve_http<S>(
    sock: S,
    peer: SocketAddr,
    spec: Arc<ListenerSpec>,
    proxy: Arc<Proxy>,
    tls: Option<super::tls::PeerTls>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let headers_timeout = match &spec.kind {
        ListenerKind::Http(h) => h.headers_timeout,
        ListenerKind::Tcp(_) => super::config::DEFAULT_HEADERS_TIMEOUT,
    };
    let conn = Arc::new(Conn {
        proxy,
        listener: spec,
        peer,
        tls,
    });
    let svc = hyper::service::service_fn(move |req| http::handle(req, conn.clone()));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(headers_timeout)
        .max_buf_size(64 * 1024);
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(sock), svc)
        .await
    {
        debug!(client.addr = %peer, error = %e, "connection ended with an error");
    }
}

/// Connects to an upstream host within `timeout`.
pub async fn connect(addr: &HostAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    connect_from(addr, None, timeout).await
}

/// Connects to an upstream host within `timeout`, from `bind` when given (local mode: the
/// workload's own loopback address, as Envoy's `upstream_bind_config`).
pub async fn connect_from(
    addr: &HostAddr,
    bind: Option<std::net::IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let fut = async {
        let Some(ip) = bind else {
            return match addr {
                HostAddr::Socket(s) => TcpStream::connect(s).await,
                HostAddr::Name(h, p) => TcpStream::connect((h.as_str(), *p)).await,
            };
        };
        let targets: Vec<SocketAddr> = match addr {
            HostAddr::Socket(s) => vec![*s],
            HostAddr::Name(h, p) => tokio::net::lookup_host((h.as_str(), *p)).await?.collect(),
        };
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for t in targets.into_iter().filter(|t| t.is_ipv4() == ip.is_ipv4()) {
            let sock = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            sock.bind(SocketAddr::new(ip, 0))?;
            match sock.connect(t).await {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => {
            let s = r?;
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "connect timeout",
        )),
    }
}

async fn serve_tcp<S>(
    mut sock: S,
    peer: SocketAddr,
    spec: Arc<ListenerSpec>,
    proxy: Arc<Proxy>,
    tls: Option<super::tls::PeerTls>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ListenerKind::Tcp(tcp) = &spec.kind else {
        return;
    };
    // Network RBAC, before the upstream is chosen: a refused connection is closed.
    let metadata = super::rbac::Metadata::new();
    let subject = super::rbac::Subject {
        request: None,
        peer,
        local: spec.addr,
        trust_xff: false,
        metadata: &metadata,
        principal: tls
            .as_ref()
            .and_then(|t| t.peer.as_ref())
            .map(ToString::to_string),
        sni: tls.as_ref().and_then(|t| t.sni.clone()),
    };
    if !tcp.rbac.iter().all(|r| r.check(&subject)) {
        debug!(client.addr = %peer, listener.name = %spec.name, "rbac: connection refused; closing");
        return;
    }
    let total: u64 = tcp.targets.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut r = fastrand::u64(0..total.max(1));
    let mut cluster_name = String::new();
    for (c, w) in &tcp.targets {
        cluster_name = c.clone();
        if r < u64::from(*w) {
            break;
        }
        r -= u64::from(*w);
    }
    let config = proxy.store.current();
    let Some(cluster) = config.clusters.get(&cluster_name).cloned() else {
        debug!(client.addr = %peer, cluster = %cluster_name, "no such cluster; closing");
        return;
    };
    let Some(idx) = cluster.choose(None, &[]) else {
        debug!(client.addr = %peer, cluster = %cluster_name, "no healthy upstream; closing");
        return;
    };
    let host = cluster.hosts[idx].clone();
    let mut up = match cluster.shared.connect_stream(&host.addr).await {
        Ok(s) => s,
        Err(e) => {
            host.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
            cluster
                .shared
                .stats
                .cx_connect_fail
                .fetch_add(1, Ordering::Relaxed);
            cluster.record(&host, None);
            debug!(client.addr = %peer, upstream = %host.addr, error = %e, "upstream connect failed");
            return;
        }
    };
    // A TLS connection here is one whose client certificate the server config verified.
    let security = if tls.is_some() {
        ConnectionSecurity::MutualTls
    } else {
        ConnectionSecurity::None
    };
    let reporter = match spec.direction {
        Direction::Outbound => "source",
        Direction::Inbound => "destination",
    };
    let labels = TcpLabels::connection(reporter, proxy.workload.clone(), &cluster_name, security);
    proxy.metrics.tcp_opened.get_or_create(&labels).inc();
    host.active.fetch_add(1, Ordering::Relaxed);
    let res = tokio::io::copy_bidirectional(&mut sock, &mut up).await;
    host.active.fetch_sub(1, Ordering::Relaxed);
    if let Ok((from_client, to_client)) = res {
        proxy
            .metrics
            .tcp_received
            .get_or_create(&labels)
            .inc_by(from_client);
        proxy
            .metrics
            .tcp_sent
            .get_or_create(&labels)
            .inc_by(to_client);
    }
    proxy.metrics.tcp_closed.get_or_create(&labels).inc();
    if conn_log_enabled(&proxy) {
        println!(
            "[{}] TCP {peer} -> {} {} {} listener={}",
            super::admin::timestamp(std::time::SystemTime::now()),
            host.addr,
            cluster_name,
            match res {
                Ok((a, b)) => format!("{a} {b}"),
                Err(e) => format!("error: {e}"),
            },
            spec.name
        );
    }
}

fn conn_log_enabled(p: &Proxy) -> bool {
    p.access_log
}
