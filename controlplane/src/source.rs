//! The directory config source.
//!
//! This module owns turning a directory of YAML into the config meshd serves: loading it
//! (`mesh_core::source::load_paths`, recursively), building the [`Store`] and, through the
//! [`Translator`], the [`Snapshot`]; listing what is served and what was refused and why;
//! and watching the directory. The watch polls file names, sizes and modification times
//! and debounces the way istiod does (`PILOT_DEBOUNCE_AFTER` 100 ms of quiet,
//! `PILOT_DEBOUNCE_MAX` 1 s at most) before rebuilding and publishing a new [`ConfigState`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mesh_core::analysis::{MeshConfig, Store};
use mesh_core::source::{Loaded, load_paths};
use mesh_core::xds::Snapshot;
use mesh_core::xds::cache::Cache;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::translate::Translator;

/// Where the mesh config ConfigMap (`istio`, key `mesh`) is looked for.
pub const MESH_CONFIG_NAMESPACE: &str = "istio-system";

/// An object meshd serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServedObject {
    /// `Kind ns/name`.
    pub object: String,
    /// `file:line`.
    pub origin: String,
}

/// An object (or a document that never became one) meshd refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectedObject {
    /// `Kind ns/name`, or `None` for a document that could not be read as an object.
    pub object: Option<String>,
    /// `file:line`.
    pub origin: String,
    pub reason: String,
}

/// One build of the config: what every proxy's resources are generated from.
#[derive(Debug)]
pub struct ConfigState {
    /// Increases by one with each build; proxies see it as the xDS version.
    pub version: u64,
    pub snapshot: Snapshot,
    /// What the snapshot's proxies share, generated once (see `mesh_core::xds::cache`).
    pub cache: Cache,
    pub served: Vec<ServedObject>,
    pub rejected: Vec<RejectedObject>,
    /// Every object loaded, as read (for `/debug/resourcesz`: `meshctl describe` rebuilds
    /// its view of the mesh from them).
    pub store: Arc<Store>,
    /// When the build finished (push latency is measured from here).
    pub built_at: Instant,
    pub built_time: SystemTime,
}

/// Why the config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("config directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("the translation failed while building the snapshot: {0}")]
    Translation(String),
}

/// Loads `dir` and builds config version `version`. Blocking: call it off the runtime.
pub fn build(
    dir: &Path,
    translator: &dyn Translator,
    version: u64,
) -> Result<ConfigState, SourceError> {
    let meta = std::fs::metadata(dir).map_err(|e| SourceError::Dir(dir.to_owned(), e))?;
    if !meta.is_dir() {
        return Err(SourceError::Dir(
            dir.to_owned(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    build_loaded(load_paths(&[dir.to_owned()], true), translator, version)
}

/// Builds config version `version` from objects already loaded (from a directory, or from
/// the Kubernetes source). Blocking: call it off the runtime.
pub fn build_loaded(
    loaded: Loaded,
    translator: &dyn Translator,
    version: u64,
) -> Result<ConfigState, SourceError> {
    let mesh = MeshConfig::from_configmap(&loaded.resources, MESH_CONFIG_NAMESPACE)
        .unwrap_or_else(|| MeshConfig::from_json(serde_json::json!({})));
    let store = Store::new(loaded.resources);
    let snapshot = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        translator.snapshot(&store, &mesh)
    }))
    .map_err(|p| SourceError::Translation(panic_message(&p)))?;

    let mut rejected: Vec<RejectedObject> = loaded
        .errors
        .iter()
        .map(|e| RejectedObject {
            object: None,
            origin: if e.line > 0 {
                format!("{}:{}", e.file, e.line)
            } else {
                e.file.to_string()
            },
            reason: e.message.clone(),
        })
        .collect();
    rejected.extend(snapshot.rejected.iter().map(|r| RejectedObject {
        object: Some(r.object.clone()),
        origin: r.origin.clone(),
        reason: r.reason.clone(),
    }));
    let refused: std::collections::BTreeSet<&str> = snapshot
        .rejected
        .iter()
        .map(|r| r.object.as_str())
        .collect();
    let served = store
        .all()
        .iter()
        .map(|r| ServedObject {
            object: r.display_name(),
            origin: r.origin.to_string(),
        })
        .filter(|s| !refused.contains(s.object.as_str()))
        .collect();
    Ok(ConfigState {
        version,
        snapshot,
        cache: Cache::new(),
        served,
        rejected,
        store: Arc::new(store),
        built_at: Instant::now(),
        built_time: SystemTime::now(),
    })
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}

/// Logs what a build refused.
pub fn log_build(state: &ConfigState) {
    for r in &state.rejected {
        warn!(
            config.version = state.version,
            object = r.object.as_deref().unwrap_or("-"),
            origin = %r.origin,
            reason = %r.reason,
            "config skipped"
        );
    }
    info!(
        config.version = state.version,
        served = state.served.len(),
        rejected = state.rejected.len(),
        services = state.snapshot.registry.services.len(),
        "config built"
    );
}

/// What the watcher compares between polls: every config file's size and modification time.
pub type Fingerprint = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

/// The fingerprint of the files `load_paths` reads from `dir` (recursively: `.yaml`, `.yml`,
/// `.json`). An unreadable directory gives an empty fingerprint.
pub fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out = Fingerprint::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            {
                out.insert(path, (meta.len(), meta.modified().ok()));
            }
        }
    }
    out
}

/// Debouncing as istiod does it: rebuild once changes have been quiet for `quiet`, or once
/// the first unhandled change is `max` old, whichever comes first.
#[derive(Clone, Debug)]
pub struct Debounce {
    quiet: Duration,
    max: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debounce {
    pub fn new(quiet: Duration, max: Duration) -> Self {
        Debounce {
            quiet,
            max,
            first: None,
            last: None,
        }
    }

    /// Notes a change seen at `now`.
    pub fn changed(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// Whether a rebuild is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        match (self.first, self.last) {
            (Some(first), Some(last)) => {
                now.duration_since(last) >= self.quiet || now.duration_since(first) >= self.max
            }
            _ => false,
        }
    }

    /// Forgets the handled changes.
    pub fn reset(&mut self) {
        self.first = None;
        self.last = None;
    }
}

/// How the directory is watched.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub poll: Duration,
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            poll: Duration::from_millis(100),
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// Watches `dir` until `shutdown` turns true, publishing each rebuild on `tx`. A failed
/// rebuild is logged and the previous config stays served.
pub async fn watch(
    dir: PathBuf,
    translator: Arc<dyn Translator>,
    opts: WatchOptions,
    tx: watch::Sender<Arc<ConfigState>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(opts.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut debounce = Debounce::new(opts.quiet, opts.max);
    let mut prev = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || fingerprint(&dir))
            .await
            .unwrap_or_default()
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let fp = {
            let dir = dir.clone();
            match tokio::task::spawn_blocking(move || fingerprint(&dir)).await {
                Ok(fp) => fp,
                Err(e) => {
                    warn!(error = %e, "cannot scan the config directory");
                    continue;
                }
            }
        };
        let now = Instant::now();
        if fp != prev {
            debug!(files = fp.len(), "config directory changed");
            debounce.changed(now);
            prev = fp;
        }
        if !debounce.due(now) {
            continue;
        }
        debounce.reset();
        let version = tx.borrow().version + 1;
        let (d, t) = (dir.clone(), translator.clone());
        match tokio::task::spawn_blocking(move || build(&d, t.as_ref(), version)).await {
            Ok(Ok(state)) => {
                log_build(&state);
                tx.send_replace(Arc::new(state));
            }
            Ok(Err(e)) => {
                warn!(error = %e, "config rebuild failed; still serving the previous config")
            }
            Err(e) => warn!(error = %e, "config rebuild failed; still serving the previous config"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debounce_waits_for_quiet_but_not_forever() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut d = Debounce::new(ms(100), ms(1000));
        assert!(!d.due(t0));
        d.changed(t0);
        assert!(!d.due(t0 + ms(50)));
        assert!(d.due(t0 + ms(100)));
        // Changes every 50 ms keep postponing until the max.
        d.reset();
        for i in 0..30 {
            d.changed(t0 + ms(50 * i));
            let now = t0 + ms(50 * i + 10);
            assert_eq!(d.due(now), 50 * i + 10 >= 1000, "at {i}");
        }
        d.reset();
        assert!(!d.due(t0 + ms(5000)));
    }

    #[test]
    fn fingerprint_sees_config_files_only() {
        let dir = std::env::temp_dir().join(format!("meshd-fp-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.yaml"), "x: 1").unwrap();
        std::fs::write(dir.join("sub/b.json"), "{}").unwrap();
        std::fs::write(dir.join("notes.txt"), "hi").unwrap();
        let fp = fingerprint(&dir);
        let names: Vec<_> = fp
            .keys()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.yaml", "sub/b.json"]);
        std::fs::write(dir.join("a.yaml"), "x: 12").unwrap();
        assert_ne!(fingerprint(&dir), fp);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
