//! meshd as a whole: bind, serve, shut down.
//!
//! This module owns the lifecycle: the first config build (before anything listens, so the
//! first proxy gets real config), binding the xDS and debug listeners (loopback only), the
//! tasks that watch the config directory, serve ADS and serve the debug API, in a cluster
//! the leader election that decides which replica writes to it, and the graceful
//! shutdown that closes every ADS stream, waits for them at most `grace`, and releases
//! the Lease.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use crate::ca::{Ca, CaError, CaOptions};
use crate::ca_server;
use crate::debug::{self, DebugState};
use crate::kube_source::{KubeClient, KubeOptions, KubeSource};
use crate::leader::{Elector, LeaderOptions};
use crate::metrics::Metrics;
use crate::source::{self, ConfigState, SourceError, WatchOptions};
use crate::status::SyncTable;
use crate::translate::Translator;
use crate::xds::{AdsServer, Shared};

/// The default xDS address (plaintext ADS, DESIGN.md).
pub const DEFAULT_XDS_ADDRESS: &str = "127.0.0.1:15010";
/// The default debug and metrics address.
pub const DEFAULT_DEBUG_ADDRESS: &str = "127.0.0.1:15014";

/// How meshd runs.
#[derive(Clone, Debug)]
pub struct Options {
    pub config_dir: PathBuf,
    /// Port 0 picks a free port (see [`Meshd::xds_address`]).
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    pub watch: WatchOptions,
    /// How long open streams get to close on shutdown.
    pub grace: Duration,
    /// Serve what a Kubernetes cluster holds instead of `config_dir` (and listen on any
    /// address: in a pod, proxies reach meshd through its Service).
    pub kube: Option<KubeClient>,
    /// Where the admission webhooks listen (`None`: not served; plain HTTP, see
    /// [`crate::webhook`]).
    pub webhook_address: Option<SocketAddr>,
    /// The CA and where it serves (None: no CA).
    pub ca: Option<(CaOptions, SocketAddr)>,
    /// With `kube`: the leader election among replicas (None: the Lease `meshd-leader` in
    /// meshd's namespace, held as `POD_NAME`, 30 s; see [`crate::leader`]).
    pub leader: Option<LeaderOptions>,
}

impl Options {
    pub fn new(config_dir: PathBuf, xds_address: SocketAddr, debug_address: SocketAddr) -> Self {
        Options {
            config_dir,
            xds_address,
            debug_address,
            watch: WatchOptions::default(),
            grace: Duration::from_secs(5),
            kube: None,
            webhook_address: None,
            ca: None,
            leader: None,
        }
    }
}

/// Why meshd could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum MeshdError {
    #[error(
        "the {what} address {addr} is not a loopback address; meshd binds 127.0.0.0/8 or ::1 only"
    )]
    NotLoopback {
        what: &'static str,
        addr: SocketAddr,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the xDS server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("the CA: {0}")]
    Ca(#[from] CaError),
    #[error("the CA's root in the cluster: {0}")]
    KubeCa(#[from] crate::ca_kube::KubeCaError),
    #[error("the first config build did not finish: {0}")]
    Join(String),
}

/// A bound, not yet serving meshd.
pub struct Meshd {
    opts: Options,
    translator: Arc<dyn Translator>,
    xds: TcpListener,
    debug: TcpListener,
    xds_address: SocketAddr,
    debug_address: SocketAddr,
    config: watch::Sender<Arc<ConfigState>>,
    status: Arc<SyncTable>,
    metrics: Arc<Metrics>,
    kube: Option<KubeSource>,
    webhook: Option<(TcpListener, SocketAddr)>,
    /// The webhooks' TLS (when meshd has a CA).
    webhook_tls: Option<Arc<rustls::ServerConfig>>,
    ca: Option<BoundCa>,
    /// The leader election (Kubernetes mode): only the leader writes to the cluster.
    elector: Option<Elector>,
}

/// The CA, its listener and TLS config.
struct BoundCa {
    ca: Arc<Ca>,
    listener: TcpListener,
    address: SocketAddr,
    tls: rustls::ServerConfig,
    /// The serving certificate's DNS names in a cluster (None: local mode's defaults).
    names: Option<Vec<String>>,
}

async fn listen(
    what: &'static str,
    addr: SocketAddr,
    any_address: bool,
) -> Result<(TcpListener, SocketAddr), MeshdError> {
    if !any_address && !addr.ip().is_loopback() {
        return Err(MeshdError::NotLoopback { what, addr });
    }
    let l = TcpListener::bind(addr)
        .await
        .map_err(|source| MeshdError::Bind { what, addr, source })?;
    let local = l
        .local_addr()
        .map_err(|source| MeshdError::Bind { what, addr, source })?;
    Ok((l, local))
}

impl Meshd {
    /// Builds the first config and binds both listeners.
    pub async fn bind(opts: Options, translator: Arc<dyn Translator>) -> Result<Meshd, MeshdError> {
        let (dir, t) = (opts.config_dir.clone(), translator.clone());
        let (first, kube) = match &opts.kube {
            None => {
                let first = tokio::task::spawn_blocking(move || source::build(&dir, t.as_ref(), 1))
                    .await
                    .map_err(|e| MeshdError::Join(e.to_string()))??;
                (first, None)
            }
            Some(client) => {
                let kube = KubeSource::start(client.0.clone(), KubeOptions::default());
                if !kube.wait_synced().await {
                    warn!("not every kind was listed in time; serving what was");
                }
                let loaded = kube.loaded();
                let first = tokio::task::spawn_blocking(move || {
                    source::build_loaded(loaded, t.as_ref(), 1)
                })
                .await
                .map_err(|e| MeshdError::Join(e.to_string()))??;
                (first, Some(kube))
            }
        };
        source::log_build(&first);
        let any = opts.kube.is_some();
        let (xds, xds_address) = listen("xDS", opts.xds_address, any).await?;
        let (debug, debug_address) = listen("debug", opts.debug_address, any).await?;
        let webhook = match opts.webhook_address {
            Some(addr) => Some(listen("webhook", addr, any).await?),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        // In a cluster every replica serves, and one (the Lease holder) writes.
        let elector = opts.kube.as_ref().map(|client| {
            let leader = opts.leader.clone().unwrap_or_else(|| {
                LeaderOptions::new(&crate::webhook_tls::namespace())
            });
            info!(lease.name = %leader.name, lease.namespace = %leader.namespace, lease.holder = %leader.identity, "leader election");
            Elector::start(client.0.clone(), leader)
        });
        let ca = match &opts.ca {
            None => None,
            Some((ca_opts, addr)) => {
                let ca = match &opts.kube {
                    // In a cluster the root lives in a Secret (unless the user gave one),
                    // and sidecars dial meshd's Service by name.
                    Some(client) => {
                        let mut ca_opts = ca_opts.clone();
                        let ns = crate::webhook_tls::namespace();
                        if ca_opts.root.is_none() {
                            // Whether this replica leads decides who creates the
                            // Secret: know it before looking.
                            if let Some(e) = &elector
                                && !e.first_round(Duration::from_secs(5)).await
                            {
                                warn!("the leader election has not answered in 5s");
                            }
                            let (mut leading, wait) = match (&elector, &opts.leader) {
                                (Some(e), Some(l)) => (e.leading(), l.lease_duration),
                                (Some(e), None) => {
                                    (e.leading(), crate::leader::DEFAULT_LEASE_DURATION)
                                }
                                (None, _) => (watch::channel(true).1, Duration::ZERO),
                            };
                            let from = crate::ca_kube::prepare_root(
                                &client.0,
                                &ns,
                                &mut ca_opts,
                                &mut leading,
                                wait,
                            )
                            .await?;
                            info!(ca.root = ?from, ca.namespace = %ns, "CA root from the cluster");
                        }
                        Arc::new(Ca::open(&ca_opts)?)
                    }
                    None => Arc::new(Ca::open(ca_opts)?),
                };
                let (listener, address) = listen("CA", *addr, any).await?;
                let names = opts.kube.as_ref().map(|_| {
                    let ns = crate::webhook_tls::namespace();
                    let mut names = crate::webhook_tls::service_names(&ns);
                    names.push(format!("istiod.{ns}.svc"));
                    names
                });
                let tls = match &names {
                    Some(names) => ca_server::tls_config_named(&ca, names.clone(), address.ip())?,
                    None => ca_server::tls_config(&ca, address.ip())?,
                };
                Some(BoundCa {
                    ca,
                    listener,
                    address,
                    tls,
                    names,
                })
            }
        };
        let webhook_tls = match (&webhook, &ca) {
            (Some((_, addr)), Some(c)) => Some(crate::webhook_tls::tls_config(
                &c.ca,
                &crate::webhook_tls::namespace(),
                addr.ip(),
            )?),
            _ => None,
        };
        Ok(Meshd {
            opts,
            translator,
            xds,
            debug,
            xds_address,
            debug_address,
            config: watch::Sender::new(Arc::new(first)),
            status: Arc::new(SyncTable::default()),
            metrics,
            kube,
            webhook,
            webhook_tls,
            ca,
            elector,
        })
    }

    /// Where the CA listens, when it runs.
    pub fn ca_address(&self) -> Option<SocketAddr> {
        self.ca.as_ref().map(|c| c.address)
    }

    /// Where ADS listens.
    pub fn xds_address(&self) -> SocketAddr {
        self.xds_address
    }

    /// Where the admission webhooks listen, when they are served.
    pub fn webhook_address(&self) -> Option<SocketAddr> {
        self.webhook.as_ref().map(|(_, a)| *a)
    }

    /// Where the debug API listens.
    pub fn debug_address(&self) -> SocketAddr {
        self.debug_address
    }

    /// Serves until `shutdown` completes, then closes every stream (waiting at most the
    /// grace period) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), MeshdError> {
        let Meshd {
            opts,
            translator,
            xds,
            debug,
            xds_address,
            debug_address,
            config,
            status,
            metrics,
            kube,
            webhook,
            webhook_tls,
            ca,
            elector,
        } = self;
        // Outside a cluster nothing writes to one: no replica leads.
        let leading = elector
            .as_ref()
            .map_or_else(|| watch::channel(false).1, Elector::leading);
        let (stop_tx, stop_rx) = watch::channel(false);
        // In a cluster the API server must trust the webhooks' certificate: write the CA
        // root into the webhook configurations.
        let bundle_task = match (&opts.kube, &webhook_tls, &ca) {
            (Some(client), Some(_), Some(c)) => {
                Some(tokio::spawn(crate::webhook_tls::keep_bundles(
                    client.0.clone(),
                    crate::webhook_tls::namespace(),
                    c.ca.root_pem(),
                    leading.clone(),
                    stop_rx.clone(),
                )))
            }
            _ => None,
        };
        let ready = Arc::new(AtomicBool::new(false));

        let gauges = tokio::spawn(track_config(
            config.subscribe(),
            metrics.clone(),
            stop_rx.clone(),
        ));
        let leader_gauge = tokio::spawn(track_leader(
            leading.clone(),
            metrics.clone(),
            stop_rx.clone(),
        ));
        // In a cluster every namespace gets the trust bundle as a ConfigMap.
        let root_task = match (&opts.kube, &ca) {
            (Some(client), Some(c)) => Some(tokio::spawn(crate::ca_kube::keep_root_configmaps(
                client.0.clone(),
                c.ca.root_pem().to_owned(),
                config.subscribe(),
                crate::ca_kube::PublishOptions::default(),
                leading.clone(),
                stop_rx.clone(),
            ))),
            _ => None,
        };
        let ca_task = ca.map(|c| {
            info!(ca.address = %c.address, ca.dir = %c.ca.dir().display(), "CA serving");
            let auth = match &opts.kube {
                Some(client) => ca_server::CallerAuth::Kube(client.0.clone()),
                None => ca_server::CallerAuth::Token(c.ca.token().to_owned()),
            };
            tokio::spawn(ca_server::serve(
                c.listener,
                c.tls,
                c.ca,
                auth,
                c.names,
                config.subscribe(),
                stop_rx.clone(),
            ))
        });
        let debug_task = tokio::spawn(debug::serve(
            debug,
            Arc::new(DebugState {
                config: config.subscribe(),
                status: status.clone(),
                metrics: metrics.clone(),
                translator: translator.clone(),
                ready: ready.clone(),
                leader: elector.as_ref().map(Elector::view),
            }),
            stop_rx.clone(),
        ));
        let shared = Arc::new(Shared::new(
            translator.clone(),
            config.subscribe(),
            status,
            metrics,
            stop_rx.clone(),
        ));
        // In a cluster the injector follows the istio-sidecar-injector ConfigMap.
        let injector = match &opts.kube {
            Some(_) => crate::webhook_inject::InjectorConfig::from_cluster(
                &crate::webhook_tls::namespace(),
                config.subscribe(),
            ),
            None => {
                crate::webhook_inject::InjectorConfig::defaults(&crate::webhook_tls::namespace())
            }
        };
        let webhook_task = webhook.map(|(listener, addr)| {
            match &webhook_tls {
                Some(_) => info!(webhook.address = %addr, "admission webhooks serving (TLS)"),
                None => {
                    info!(webhook.address = %addr, "admission webhooks serving (plain HTTP; no CA)")
                }
            }
            tokio::spawn(crate::webhook::serve_with_injector(
                listener,
                webhook_tls,
                injector,
                stop_rx.clone(),
            ))
        });
        let source_name = match &kube {
            Some(_) => "kubernetes".to_owned(),
            None => opts.config_dir.display().to_string(),
        };
        let watcher = match kube {
            Some(kube) => tokio::spawn(kube.run(translator, config, stop_rx)),
            None => tokio::spawn(source::watch(
                opts.config_dir.clone(),
                translator,
                opts.watch.clone(),
                config,
                stop_rx,
            )),
        };

        let (signal_tx, signal_rx) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(xds).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .serve_with_incoming_shutdown(AdsServer::new(shared), incoming, async {
                let _ = signal_rx.await;
            });
        tokio::pin!(server);
        ready.store(true, Ordering::Relaxed);
        info!(
            xds.address = %xds_address,
            debug.address = %debug_address,
            config.source = %source_name,
            "meshd serving; {}",
            debug::describe(debug_address)
        );
        tokio::pin!(shutdown);
        let early = tokio::select! {
            r = &mut server => Some(r),
            () = &mut shutdown => None,
        };
        ready.store(false, Ordering::Relaxed);
        stop_tx.send_replace(true);
        let result = match early {
            Some(r) => r.map_err(MeshdError::from),
            None => {
                info!("shutting down: closing streams");
                let _ = signal_tx.send(());
                match tokio::time::timeout(opts.grace, &mut server).await {
                    Ok(r) => r.map_err(MeshdError::from),
                    Err(_) => {
                        warn!(grace = ?opts.grace, "streams did not close in time; stopping anyway");
                        Ok(())
                    }
                }
            }
        };
        for task in [watcher, debug_task, gauges, leader_gauge]
            .into_iter()
            .chain(webhook_task)
            .chain(ca_task)
            .chain(bundle_task)
            .chain(root_task)
        {
            if tokio::time::timeout(Duration::from_secs(1), task)
                .await
                .is_err()
            {
                warn!("a background task did not stop in time");
            }
        }
        // The writers have stopped: give up the Lease so another replica takes over at
        // once rather than after the lease duration.
        if let Some(e) = elector {
            e.stop(Duration::from_secs(5)).await;
        }
        info!("meshd stopped");
        result
    }
}

/// Keeps the config gauges current.
async fn track_config(
    mut config: watch::Receiver<Arc<ConfigState>>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        {
            let c = config.borrow_and_update();
            metrics
                .config_version
                .set(i64::try_from(c.version).unwrap_or(i64::MAX));
            metrics
                .config_rejected
                .set(i64::try_from(c.rejected.len()).unwrap_or(i64::MAX));
        }
        tokio::select! {
            r = config.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Keeps the `meshd_leader` gauge current.
async fn track_leader(
    mut leading: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        metrics.leader.set(i64::from(*leading.borrow_and_update()));
        tokio::select! {
            r = leading.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives once meshd reports ready is
/// never lost to the default action.
pub fn signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            warn!("cannot install signal handlers; only a kill will stop meshd");
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM"),
            _ = int.recv() => info!("SIGINT"),
            pid = mesh_core::parent::parent_exit(tokio::time::sleep) => info!(parent.pid = pid, "parent process gone"),
        }
    }
}
