//! mesh-proxy's own data plane (`mesh-proxy run --engine native`): an ADS client
//! ([`ads`]) that turns meshd's xDS into immutable config generations ([`config`],
//! [`route`], [`cluster`], [`retry`]), listeners bound as LDS says ([`listener`]) serving
//! HTTP and TCP ([`http`]) behind the authorization filters ([`authz`]: [`jwt`], [`rbac`]),
//! the admin API and health endpoint ([`admin`]), Istio's
//! metrics ([`metrics`]), and mutual TLS with the workload certificate ([`tls`]; with
//! `--ca-dir` the certificate comes from meshd's CA in process, as in agent mode, and the
//! node announces `MESH_MTLS` so that meshd sends mTLS listeners and clusters).
//!
//! Ports (local mode, DESIGN.md): admin on `IP:15000`, health on `IP:15021`, and whatever
//! listeners meshd sends (the outbound HTTP proxy on `IP:15001`, inbound `IP:PORT`,
//! gateway ports).

pub mod admin;
pub mod ads;
pub mod authz;
pub mod cluster;
pub mod config;
pub mod http;
pub mod jwt;
pub mod listener;
pub mod metrics;
pub mod rbac;
pub mod retry;
pub mod route;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

use crate::bootstrap::BootstrapOptions;

/// How long requests in flight may take to finish once the proxy is told to stop.
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the proxy waits for its first workload certificate before asking for config.
const CERT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The health port (`/healthz/ready`).
pub const HEALTH_PORT: u16 = 15021;

/// Why the native proxy cannot run.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("cannot bind the {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Changes the log level at run time (`POST /logging?level=`).
pub type LogLevelSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// What every part of the running proxy shares.
pub struct Proxy {
    pub store: Arc<config::Store>,
    pub metrics: metrics::Metrics,
    pub ads: Arc<ads::AdsStatus>,
    pub node_id: String,
    /// `(name, namespace)`.
    pub workload: (String, String),
    pub access_log: bool,
    pub shutdown: watch::Sender<bool>,
    pub set_log_level: LogLevelSetter,
    log_level: std::sync::Mutex<String>,
    /// What `/config_dump` shows as the BootstrapConfigDump: the node, admin address and ADS
    /// source this proxy started with, in the shape of the Envoy bootstrap `mesh-proxy
    /// bootstrap` prints for the same workload (`Null` when embedded without one).
    pub bootstrap: serde_json::Value,
    /// The workload certificate (`None`: no mTLS).
    pub identity: Option<Arc<tls::Identity>>,
}

impl Proxy {
    /// A proxy around a config store, for running listeners without the ADS client (tests,
    /// embedding). The receiver sees `POST /quitquitquit`.
    pub fn new(
        store: Arc<config::Store>,
        node_id: String,
        workload: (String, String),
        access_log: bool,
    ) -> (Arc<Proxy>, watch::Receiver<bool>) {
        let (shutdown, rx) = watch::channel(false);
        let proxy = Arc::new(Proxy {
            store,
            metrics: metrics::Metrics::new(),
            ads: Arc::new(ads::AdsStatus::default()),
            node_id,
            workload,
            access_log,
            shutdown,
            set_log_level: Box::new(|_| Err("log levels are fixed here".to_owned())),
            log_level: std::sync::Mutex::new("info".to_owned()),
            bootstrap: serde_json::Value::Null,
            identity: None,
        });
        (proxy, rx)
    }

    pub fn log_level(&self) -> String {
        self.log_level.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// How to run the native proxy.
pub struct NativeOptions {
    pub identity: BootstrapOptions,
    pub health_port: u16,
    /// One line per request on stdout.
    pub access_log: bool,
    pub log_level: String,
    pub set_log_level: LogLevelSetter,
    /// meshd's CA: with it the proxy gets the workload certificate and takes part in mTLS.
    pub ca: Option<crate::agent::CaClientOptions>,
}

/// Runs the proxy until `stop` completes or `POST /quitquitquit`; then stops accepting
/// connections and gives requests in flight up to [`DRAIN`] to finish.
pub async fn run(
    opts: NativeOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NativeError> {
    let id = &opts.identity;
    let admin_addr = id.admin_address();
    let health_addr = SocketAddr::new(id.ip, opts.health_port);
    let admin_l = admin::bind(admin_addr).map_err(|source| NativeError::Bind {
        what: "admin",
        addr: admin_addr,
        source,
    })?;
    let health_l = admin::bind(health_addr).map_err(|source| NativeError::Bind {
        what: "health",
        addr: health_addr,
        source,
    })?;
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let identity = opts.ca.as_ref().map(|ca| {
        let td = ca
            .trust_domain
            .clone()
            .unwrap_or_else(|| mesh_core::identity::DEFAULT_TRUST_DOMAIN.to_owned());
        let spiffe =
            mesh_core::identity::SpiffeId::new(&td, &id.workload.namespace, &id.service_account);
        let (tx, rx) = watch::channel(None);
        tokio::spawn(crate::identity::keep_current(
            ca.client.clone(),
            spiffe,
            tx,
            shutdown.subscribe(),
        ));
        Arc::new(tls::Identity::new(rx, &td))
    });
    let mut bootstrap = crate::bootstrap::bootstrap(id);
    let mut node = ads::node(id);
    if identity.is_some() {
        use envoy_types::pb::google::protobuf::{Value, value};
        let flag = crate::bootstrap::MTLS_METADATA;
        bootstrap["node"]["metadata"][flag] = serde_json::json!("true");
        if let Some(md) = node.metadata.as_mut() {
            md.fields.insert(
                flag.to_owned(),
                Value {
                    kind: Some(value::Kind::StringValue("true".to_owned())),
                },
            );
        }
    }
    let level = opts.log_level.clone();
    let setter = opts.set_log_level;
    let proxy = Arc::new(Proxy {
        store: Arc::new(config::Store::default()),
        metrics: metrics::Metrics::new(),
        ads: Arc::new(ads::AdsStatus::default()),
        node_id: id.node_id(),
        workload: (id.workload.name.clone(), id.workload.namespace.clone()),
        access_log: opts.access_log,
        shutdown,
        set_log_level: setter,
        log_level: std::sync::Mutex::new(level),
        bootstrap,
        identity: identity.clone(),
    });
    // In local mode upstream connections come from the workload's address, as the Envoy bootstrap's
    // `cluster_manager.upstream_bind_config` says (servers see who called: ipBlocks).
    proxy.store.set(config::Config {
        upstream_bind: id.local_mode().then_some(id.ip),
        identity,
        ..Default::default()
    });
    let admin_task = tokio::spawn(admin::serve(admin_l, proxy.clone(), admin::Server::Admin));
    let health_task = tokio::spawn(admin::serve(health_l, proxy.clone(), admin::Server::Health));
    // As Envoy waits for its SDS secrets before its listeners take traffic, the config is
    // asked for once the workload certificate is in (bounded: the CA may be slow to start).
    if let Some(identity) = &proxy.identity
        && tokio::time::timeout(CERT_WAIT, identity.ready())
            .await
            .is_err()
    {
        tracing::warn!(wait = ?CERT_WAIT, "no workload certificate yet; mTLS handshakes fail until one arrives");
    }
    let sink = Box::new(listener::Listeners::new(proxy.clone()));
    let ads_task = tokio::spawn(ads::run(
        id.xds_address,
        node,
        proxy.store.clone(),
        proxy.ads.clone(),
        sink,
        proxy.shutdown.subscribe(),
    ));
    info!(node.id = %proxy.node_id, admin.address = %admin_addr, xds.address = %id.xds_address, "mesh-proxy native engine started");
    tokio::select! {
        () = stop => {}
        _ = shutdown_rx.wait_for(|v| *v) => info!("quitquitquit: stopping"),
    }
    // Stop: the ADS client ends and drops the listeners (no new connections), requests in
    // flight get up to DRAIN to finish, then the admin servers stop.
    let _ = proxy.shutdown.send(true);
    let ads_abort = ads_task.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(2), ads_task)
        .await
        .is_err()
    {
        ads_abort.abort();
    }
    let deadline = std::time::Instant::now() + DRAIN;
    while proxy
        .metrics
        .downstream_rq_active
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    admin_task.abort();
    health_task.abort();
    Ok(())
}

impl Proxy {
    /// Records a level set through the admin API.
    pub fn note_log_level(&self, level: &str) {
        if let Ok(mut l) = self.log_level.lock() {
            level.clone_into(&mut l);
        }
    }
}
