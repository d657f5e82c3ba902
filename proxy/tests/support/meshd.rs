//! meshd run in-process for the CA tests (`ca_identity.rs`, `ca_mtls.rs`, `ca_kube.rs`):
//! started from its options, stopped within a bound, and its log lines captured for the
//! whole test binary. Each test binary uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mesh_controlplane::ca::CaOptions;
use mesh_controlplane::{MeshTranslator, Meshd, Options};

/// A running meshd; aborted (and its directory removed, when it owns one) when dropped.
pub struct Running {
    pub ca: SocketAddr,
    pub dir: PathBuf,
    owns_dir: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), mesh_controlplane::MeshdError>>>,
}

impl Running {
    /// Stops meshd gracefully; it must be done within 10 s.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("meshd stops")
            .unwrap()
            .unwrap();
    }

    /// The CA directory of a meshd from [`local`].
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Binds meshd with `opts` (which must have a CA) and runs it; `dir` is the test's directory
/// for it, removed on drop when `owns_dir`.
pub async fn start(opts: Options, dir: PathBuf, owns_dir: bool) -> Running {
    let meshd = Meshd::bind(opts, Arc::new(MeshTranslator)).await.unwrap();
    let ca = meshd.ca_address().expect("CA address");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(meshd.run(async {
        let _ = rx.await;
    }));
    Running {
        ca,
        dir,
        owns_dir,
        stop: Some(tx),
        task: Some(task),
    }
}

/// A local-mode meshd in a fresh directory `TMP/PREFIX-NAME-PID` serving `config` (its
/// `config/`), its CA in `ca/` with workload lifetime `ttl` and root overlap `root_overlap`.
pub async fn local(
    prefix: &str,
    name: &str,
    config: &str,
    ttl: Duration,
    root_overlap: Option<Duration>,
) -> Running {
    let dir = std::env::temp_dir().join(format!("{prefix}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/mesh.yaml"), config).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut opts = Options::new(dir.join("config"), any, any);
    let mut ca = CaOptions::new(dir.join("ca"));
    ca.workload_ttl = ttl;
    ca.root_overlap = root_overlap;
    opts.ca = Some((ca, any));
    start(opts, dir, true).await
}

/// The log lines of the test binary (from `level` up), once [`capture_logs`] has run.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A test that failed holding the lock must not fail the others' logging.
        LOGS.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the binary's log lines from `level` up (the first call's level holds).
pub fn capture_logs(level: tracing::Level) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_max_level(level)
            .init();
    });
}

/// Everything logged so far.
pub fn log_text() -> String {
    let logs = LOGS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    String::from_utf8_lossy(&logs).into_owned()
}
