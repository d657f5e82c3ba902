//! Agent mode: run Envoy as the data plane and keep it running.
//!
//! This module owns Envoy's process: it writes the bootstrap to a file, starts Envoy with
//! it, restarts Envoy with a capped exponential backoff when it dies, forwards the request
//! to stop (SIGTERM, then SIGKILL after a grace period) and removes the bootstrap file on
//! the way out. An Envoy that exits with status 0 was told to quit (for example through
//! its admin `/quitquitquit`), so the agent stops with it instead of restarting it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tracing::{info, warn};

use mesh_core::identity::SpiffeId;
use tokio::sync::watch;

use crate::bootstrap::{BootstrapOptions, add_sds, bootstrap};
use crate::identity::{self, CaClientOptions as ClientOptions};
use crate::sds;

/// The agent's CA settings: how to reach meshd's CA and the trust domain of the identity
/// it asks for.
#[derive(Clone, Debug)]
pub struct CaClientOptions {
    pub client: ClientOptions,
    /// Default `cluster.local`.
    pub trust_domain: Option<String>,
}

/// A directory removed with its contents when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends `true` when dropped.
struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// How the agent runs Envoy.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub bootstrap: BootstrapOptions,
    /// The Envoy binary (`envoy` on PATH unless told otherwise).
    pub envoy_bin: PathBuf,
    /// Envoy's `--log-level`.
    pub log_level: String,
    /// Envoy's `--concurrency`.
    pub concurrency: u16,
    /// How long Envoy gets to exit after SIGTERM before it is killed.
    pub grace: Duration,
    /// First restart delay; doubles on each consecutive failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Envoy running this long counts as a success: the backoff and failure count reset.
    pub stable_after: Duration,
    /// Consecutive failures after which the agent gives up.
    pub max_failures: u32,
    /// meshd's CA: when set, the agent gets the workload certificate and serves it to
    /// Envoy over SDS on a Unix socket.
    pub ca: Option<CaClientOptions>,
}

impl AgentOptions {
    pub fn new(bootstrap: BootstrapOptions, envoy_bin: PathBuf) -> Self {
        AgentOptions {
            bootstrap,
            envoy_bin,
            log_level: "warning".to_owned(),
            concurrency: 1,
            grace: Duration::from_secs(5),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            stable_after: Duration::from_secs(10),
            max_failures: 10,
            ca: None,
        }
    }
}

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot write the bootstrap {path}: {source}")]
    Bootstrap {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot serve SDS on {path}: {source}")]
    Sds {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot wait for envoy: {0}")]
    Wait(std::io::Error),
    #[error("envoy failed {failures} times in a row (last: {last}); giving up")]
    GaveUp { failures: u32, last: ExitStatus },
}

/// How the agent ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Asked to stop (signal or the shutdown future).
    Asked,
    /// Envoy exited with status 0 on its own.
    EnvoyExited,
}

/// A per-process file name in the temp directory.
fn temp_path(opts: &BootstrapOptions, ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "mesh-proxy-{}-{}-{}.{ext}",
        opts.workload.namespace,
        opts.workload.name,
        std::process::id()
    ))
}

/// The bootstrap file; removed when dropped.
struct BootstrapFile(PathBuf);

impl BootstrapFile {
    fn write(opts: &BootstrapOptions, sds: Option<&Path>) -> Result<Self, AgentError> {
        let path = temp_path(opts, "json");
        let mut json = bootstrap(opts);
        if let Some(sds) = sds {
            add_sds(&mut json, sds);
        }
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| AgentError::Bootstrap {
            path: path.clone(),
            source,
        })?;
        Ok(BootstrapFile(path))
    }
}

impl Drop for BootstrapFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Doubling delays between `min` and `max`.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// The arguments Envoy is started with.
pub fn envoy_args(opts: &AgentOptions, bootstrap_path: &Path) -> Vec<String> {
    vec![
        "-c".to_owned(),
        bootstrap_path.display().to_string(),
        "--use-dynamic-base-id".to_owned(),
        "--concurrency".to_owned(),
        opts.concurrency.to_string(),
        "--log-level".to_owned(),
        opts.log_level.clone(),
    ]
}

fn spawn(opts: &AgentOptions, bootstrap_path: &Path) -> Result<Child, AgentError> {
    Command::new(&opts.envoy_bin)
        .args(envoy_args(opts, bootstrap_path))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| AgentError::Spawn {
            bin: opts.envoy_bin.clone(),
            source,
        })
}

/// Sends SIGTERM (through `kill(1)`: this crate forbids `unsafe`, so no direct `kill(2)`),
/// waits up to `grace`, then kills.
async fn terminate(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(e) = sent {
            warn!(error = %e, "cannot send SIGTERM to envoy");
        }
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => info!(%status, "envoy stopped"),
        Ok(Err(e)) => warn!(error = %e, "cannot wait for envoy"),
        Err(_) => {
            warn!(grace = ?grace, "envoy did not stop after SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }
}

/// Runs Envoy until `shutdown` completes, Envoy exits with status 0, or Envoy keeps failing.
pub async fn run(
    opts: &AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<Stopped, AgentError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Stops the identity and SDS tasks on every way out.
    let _stop = StopOnDrop(stop_tx);
    let sds_path = match &opts.ca {
        None => None,
        Some(ca) => {
            // The socket hands out the private key: it lives in a directory only this user
            // can enter.
            let dir = temp_path(&opts.bootstrap, "sds");
            let _ = std::fs::remove_dir_all(&dir);
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|source| AgentError::Sds {
                        path: dir.clone(),
                        source,
                    })?;
            }
            let path = dir.join("sds.sock");
            let (tx, certs) = watch::channel(None);
            let b = &opts.bootstrap;
            let td = ca
                .trust_domain
                .clone()
                .unwrap_or_else(|| mesh_core::identity::DEFAULT_TRUST_DOMAIN.to_owned());
            let id = SpiffeId::new(&td, &b.workload.namespace, &b.service_account);
            tokio::spawn(identity::keep_current(
                ca.client.clone(),
                id,
                tx,
                stop_rx.clone(),
            ));
            // Bind now so Envoy finds the socket; serve in the background.
            let listener =
                tokio::net::UnixListener::bind(&path).map_err(|source| AgentError::Sds {
                    path: path.clone(),
                    source,
                })?;
            let (p, stop) = (path.clone(), stop_rx.clone());
            tokio::spawn(async move {
                if let Err(e) = sds::serve_listener(listener, certs, stop).await {
                    warn!(sds.path = %p.display(), error = %e, "SDS stopped");
                }
            });
            Some((path, RemoveOnDrop(dir)))
        }
    };
    let file = BootstrapFile::write(&opts.bootstrap, sds_path.as_ref().map(|(p, _)| p.as_path()))?;
    info!(bootstrap = %file.0.display(), node.id = %opts.bootstrap.node_id(), "bootstrap written");
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new(opts.min_backoff, opts.max_backoff);
    let mut failures = 0u32;
    loop {
        let mut child = spawn(opts, &file.0)?;
        let started = Instant::now();
        info!(pid = child.id(), bin = %opts.envoy_bin.display(), "envoy started");
        let status = tokio::select! {
            status = child.wait() => status.map_err(AgentError::Wait)?,
            () = &mut shutdown => {
                terminate(&mut child, opts.grace).await;
                return Ok(Stopped::Asked);
            }
        };
        if status.success() {
            info!("envoy exited with status 0; stopping");
            return Ok(Stopped::EnvoyExited);
        }
        if started.elapsed() >= opts.stable_after {
            backoff.reset();
            failures = 0;
        }
        failures += 1;
        if failures >= opts.max_failures {
            return Err(AgentError::GaveUp {
                failures,
                last: status,
            });
        }
        let delay = backoff.next_delay();
        warn!(%status, restart_in = ?delay, failures, "envoy died; restarting");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return Ok(Stopped::Asked),
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; only a kill will stop the agent");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
        pid = mesh_core::parent::parent_exit(tokio::time::sleep) => info!(parent.pid = pid, "parent process gone: stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
