//! The Kubernetes config source: what meshd serves when it runs in a cluster.
//!
//! This module owns one reflector per watched kind (every Istio kind meshctl reads,
//! Services, EndpointSlices, Pods, Namespaces, and the `istio` mesh-config ConfigMap's
//! namespace): each LISTs its kind, then WATCHes from the list's resourceVersion (with
//! bookmarks), applies ADDED/MODIFIED/DELETED to a shared object map, re-watches from the
//! last version seen when a watch ends, and re-lists when the server says the version is
//! gone (410). A kind the cluster does not serve (its CRD not installed) is retried slowly
//! and counts as empty. Changes are debounced like the directory source (quiet 100 ms, at
//! most 1 s) and each rebuild goes through the same [`build_loaded`] the directory
//! source uses, so both feed the same Store and Snapshot.
//!
//! The reflectors are written on kube's client (list + watch) rather than kube-runtime,
//! which would add a crate tree to every build for what is a short loop here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Client, ResourceExt};
use mesh_core::kinds::ISTIO_KINDS;
use mesh_core::source::{Loaded, load_bytes};
use serde_json::Value as J;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tracing::{debug, info, warn};

use crate::source::{
    ConfigState, Debounce, MESH_CONFIG_NAMESPACE, SourceError, build_loaded, log_build,
};
use crate::translate::Translator;

/// A Kubernetes client for [`crate::Options`] (kube's client has no `Debug`).
#[derive(Clone)]
pub struct KubeClient(pub Client);

impl KubeClient {
    /// A client for the API server at `url` with no credentials (a `kubectl proxy`, or a
    /// test's fake API server).
    pub fn for_url(url: &str) -> Result<KubeClient, String> {
        let uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        Client::try_from(kube::Config::new(uri))
            .map(KubeClient)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for KubeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeClient")
    }
}

/// One watched kind: its apiVersion, kind, and the namespace it is limited to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
}

/// What meshd watches: each Istio kind at its newest served version (the API server
/// converts), the registry's kinds, and ConfigMaps in the mesh-config namespace (and in
/// meshd's own, when that differs).
pub fn watched() -> Vec<Watched> {
    let w = |api_version: String, kind: &str, namespace: Option<&str>| Watched {
        api_version,
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
    };
    let mut out: Vec<Watched> = ISTIO_KINDS
        .iter()
        .filter_map(|(group, kind, versions)| {
            versions
                .first()
                .map(|v| w(format!("{group}/{v}"), kind, None))
        })
        .collect();
    out.push(w("v1".into(), "Namespace", None));
    out.push(w("v1".into(), "Service", None));
    out.push(w("v1".into(), "Pod", None));
    out.push(w("discovery.k8s.io/v1".into(), "EndpointSlice", None));
    out.push(w("v1".into(), "ConfigMap", Some(MESH_CONFIG_NAMESPACE)));
    // meshd's own namespace holds the injector's ConfigMap (`istio-sidecar-injector`).
    let own = crate::webhook_tls::namespace();
    if own != MESH_CONFIG_NAMESPACE {
        out.push(w("v1".into(), "ConfigMap", Some(&own)));
    }
    out
}

/// Timings of the source.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// Debounce: rebuild after this much quiet...
    pub quiet: Duration,
    /// ...or this long after the first unhandled change.
    pub max: Duration,
    /// How long to wait before retrying a kind the cluster does not serve or a failed list.
    pub retry: Duration,
    /// How long [`KubeSource::wait_synced`] waits for every kind's first list.
    pub sync_timeout: Duration,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
            retry: Duration::from_secs(5),
            sync_timeout: Duration::from_secs(30),
        }
    }
}

/// One object, read into mesh-core resources once, when it arrives (a rebuild then only
/// gathers them; it never re-parses the cluster).
#[derive(Debug, Default)]
struct Parsed {
    resources: Vec<mesh_core::resource::Resource>,
    errors: Vec<mesh_core::source::LoadError>,
}

impl Parsed {
    fn of(obj: &J) -> Parsed {
        let loaded = to_loaded(std::slice::from_ref(obj));
        Parsed {
            resources: loaded.resources,
            errors: loaded.errors,
        }
    }
}

/// Objects by (kind index, namespace, name).
type Objects = BTreeMap<(usize, String, String), Parsed>;

struct Shared {
    objects: Mutex<Objects>,
    changed: Notify,
    /// How many kinds have finished their first list (or found their kind absent).
    synced: watch::Sender<usize>,
}

/// The running reflectors; they stop when this is dropped.
pub struct KubeSource {
    shared: Arc<Shared>,
    kinds: usize,
    tasks: Vec<JoinHandle<()>>,
    opts: KubeOptions,
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("kinds", &self.kinds)
            .finish()
    }
}

impl KubeSource {
    /// Starts one reflector per watched kind.
    pub fn start(client: Client, opts: KubeOptions) -> KubeSource {
        let kinds = watched();
        let shared = Arc::new(Shared {
            objects: Mutex::new(Objects::new()),
            changed: Notify::new(),
            synced: watch::Sender::new(0),
        });
        let tasks = kinds
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, w)| tokio::spawn(reflect(client.clone(), i, w, shared.clone(), opts.retry)))
            .collect();
        KubeSource {
            shared,
            kinds: kinds.len(),
            tasks,
            opts,
        }
    }

    /// Waits until every kind has been listed once (or found absent), at most
    /// `sync_timeout`; returns whether all were.
    pub async fn wait_synced(&self) -> bool {
        let mut rx = self.shared.synced.subscribe();
        let kinds = self.kinds;
        tokio::time::timeout(self.opts.sync_timeout, rx.wait_for(|n| *n >= kinds))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The objects as mesh-core resources, each with origin `k8s/Kind/ns/name`.
    pub fn loaded(&self) -> Loaded {
        let objects = match self.shared.objects.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut loaded = Loaded {
            files_read: objects.len(),
            ..Loaded::default()
        };
        for p in objects.values() {
            loaded.resources.extend(p.resources.iter().cloned());
            loaded.errors.extend(p.errors.iter().cloned());
        }
        loaded
    }

    /// Builds config version `version` from the objects now held.
    pub fn build(
        &self,
        translator: &dyn Translator,
        version: u64,
    ) -> Result<ConfigState, SourceError> {
        build_loaded(self.loaded(), translator, version)
    }

    /// Rebuilds after each debounced burst of changes and publishes on `tx`, until `stop`.
    pub async fn run(
        self,
        translator: Arc<dyn Translator>,
        tx: watch::Sender<Arc<ConfigState>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let this = Arc::new(self);
        let mut debounce = Debounce::new(this.opts.quiet, this.opts.max);
        let mut pending = false;
        loop {
            let tick = if pending {
                this.opts.quiet.min(Duration::from_millis(50))
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                _ = this.shared.changed.notified() => {
                    debounce.changed(Instant::now());
                    pending = true;
                }
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if !pending || !debounce.due(Instant::now()) {
                continue;
            }
            debounce.reset();
            pending = false;
            let version = tx.borrow().version + 1;
            let (source, t) = (this.clone(), translator.clone());
            match tokio::task::spawn_blocking(move || source.build(t.as_ref(), version)).await {
                Ok(Ok(state)) => {
                    log_build(&state);
                    tx.send_replace(Arc::new(state));
                }
                Ok(Err(e)) => {
                    warn!(error = %e, "config rebuild failed; still serving the previous config")
                }
                Err(e) => {
                    warn!(error = %e, "config rebuild failed; still serving the previous config")
                }
            }
        }
    }
}

/// Objects (as the API server returns them) to mesh-core resources.
pub fn to_loaded(objects: &[J]) -> Loaded {
    let mut loaded = Loaded::default();
    for o in objects {
        let kind = o["kind"].as_str().unwrap_or("?");
        let name = o["metadata"]["name"].as_str().unwrap_or("?");
        let origin = match o["metadata"]["namespace"].as_str() {
            Some(ns) => format!("k8s/{kind}/{ns}/{name}"),
            None => format!("k8s/{kind}/{name}"),
        };
        loaded.extend(load_bytes(&origin, o.to_string().as_bytes()));
    }
    loaded
}

fn mark_synced(shared: &Shared, first: &mut bool) {
    if std::mem::take(first) {
        shared.synced.send_modify(|n| *n += 1);
    }
}

/// The object as meshd keeps it: typed (list items come without apiVersion and kind),
/// without managedFields.
fn normalize(obj: DynamicObject, w: &Watched) -> Option<((String, String), J)> {
    let key = (obj.namespace().unwrap_or_default(), obj.name_any());
    let mut v = serde_json::to_value(obj).ok()?;
    v["apiVersion"] = J::String(w.api_version.clone());
    v["kind"] = J::String(w.kind.clone());
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    Some((key, v))
}

/// One kind's reflector: list, then watch from the list's version, forever.
async fn reflect(client: Client, index: usize, w: Watched, shared: Arc<Shared>, retry: Duration) {
    let mut first = true;
    let (group, version) = match w.api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), w.api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &w.kind);
    loop {
        let (ar, caps) = match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok(found) => found,
            Err(e) => {
                debug!(kind = %w.kind, api.version = %w.api_version, error = %e, "kind not served; retrying");
                mark_synced(&shared, &mut first);
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let api: Api<DynamicObject> = match (&caps.scope, &w.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                warn!(kind = %w.kind, error = %e, "list failed; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let mut resource_version = list.metadata.resource_version.clone().unwrap_or_default();
        let parsed: Vec<_> = list
            .items
            .into_iter()
            .filter_map(|item| normalize(item, &w))
            .map(|((ns, name), v)| ((index, ns, name), Parsed::of(&v)))
            .collect();
        {
            let mut objects = match shared.objects.lock() {
                Ok(o) => o,
                Err(p) => p.into_inner(),
            };
            objects.retain(|(i, _, _), _| *i != index);
            objects.extend(parsed);
        }
        debug!(kind = %w.kind, resource.version = %resource_version, "listed");
        shared.changed.notify_one();
        mark_synced(&shared, &mut first);

        // Watch until the server says the version is gone, then list again.
        'watch: loop {
            let params = WatchParams::default().timeout(290);
            let stream = match api.watch(&params, &resource_version).await {
                Ok(s) => s,
                Err(e) => {
                    warn!(kind = %w.kind, error = %e, "watch failed; listing again");
                    tokio::time::sleep(retry).await;
                    break 'watch;
                }
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let (key, obj, deleted) = match event {
                    Ok(WatchEvent::Added(o)) | Ok(WatchEvent::Modified(o)) => {
                        if let Some(rv) = o.resource_version() {
                            resource_version = rv;
                        }
                        match normalize(o, &w) {
                            Some((k, v)) => (k, Some(v), false),
                            None => continue,
                        }
                    }
                    Ok(WatchEvent::Deleted(o)) => {
                        if let Some(rv) = o.resource_version() {
                            resource_version = rv;
                        }
                        (
                            (o.namespace().unwrap_or_default(), o.name_any()),
                            None,
                            true,
                        )
                    }
                    Ok(WatchEvent::Bookmark(b)) => {
                        resource_version = b.metadata.resource_version;
                        continue;
                    }
                    Ok(WatchEvent::Error(s)) if s.code == 410 => {
                        info!(kind = %w.kind, "watch version expired; listing again");
                        break 'watch;
                    }
                    Ok(WatchEvent::Error(s)) => {
                        warn!(kind = %w.kind, error = %s.message, "watch error; listing again");
                        tokio::time::sleep(retry).await;
                        break 'watch;
                    }
                    Err(e) => {
                        warn!(kind = %w.kind, error = %e, "watch stream failed; listing again");
                        tokio::time::sleep(retry).await;
                        break 'watch;
                    }
                };
                let parsed = obj.as_ref().map(Parsed::of);
                {
                    let mut objects = match shared.objects.lock() {
                        Ok(o) => o,
                        Err(p) => p.into_inner(),
                    };
                    let key = (index, key.0, key.1);
                    match parsed {
                        Some(p) => {
                            objects.insert(key, p);
                        }
                        None if deleted => {
                            objects.remove(&key);
                        }
                        None => {}
                    }
                }
                shared.changed.notify_one();
            }
            // The server closed the watch (its timeout): continue from the last version.
        }
    }
}
