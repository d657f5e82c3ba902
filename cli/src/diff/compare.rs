//! The comparison: both sides' snapshots (each built once), every proxy's resources before
//! and after compared by type and name, the analyzer messages and refused objects of both
//! sides compared, all gathered in a [`Report`].
//!
//! Each side is translated as meshd translates it, through a per-snapshot
//! [`Cache`]: a sidecar's outbound part (most of its config) is generated and encoded once per
//! outbound key and shared by every proxy of the key; only each proxy's own part (inbound,
//! its local-mode listener) is generated per proxy. Resources are compared by digest and
//! bytes: each pair of shared parts (before, after) is compared once, however many proxies
//! hold it, then each proxy's own resources. Only resources that differ are decoded and
//! rendered as JSON for their unified diff, once per distinct change. Proxies are spread
//! over all cores. The translation is a plain function ([`Translate`]) so that tests can
//! stand in for it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use mesh_core::analysis::{self, MeshConfig, Message, Store};
use mesh_core::xds::cache::{Cache, EncodedConfig, EncodedPart, EncodedResource, ResourceKind};
use mesh_core::xds::{self, ProxyInfo, ProxyKind, Rejected, Snapshot};
use serde::Serialize;
use serde_json::Value;

use super::Change;
use super::proxies;
use crate::output::MessageRecord;

/// How one proxy's config is produced from a snapshot (meshd's translation, through the
/// side's cache).
pub type Translate = fn(&Cache, &Snapshot, &ProxyInfo) -> EncodedConfig;

/// What happened to one resource type of one proxy.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TypeDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ChangedResource>,
}

impl TypeDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A resource present on both sides with different content.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ChangedResource {
    pub name: String,
    /// A unified diff of the resource as Envoy's JSON (keys sorted), `before` to `after`.
    pub diff: String,
}

/// One proxy whose config the change would change.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProxyDiff {
    /// The node id.
    pub id: String,
    /// `sidecar` or `gateway`.
    pub kind: &'static str,
    pub namespace: String,
    pub workload: String,
    /// `changed`, `added` (the proxy exists only after the change) or `removed`.
    pub status: &'static str,
    pub clusters: TypeDiff,
    pub listeners: TypeDiff,
    pub routes: TypeDiff,
    pub endpoints: TypeDiff,
}

/// An object meshd refuses (invalid, conflicting, or not applied).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct RejectedRecord {
    pub object: String,
    pub origin: String,
    pub reason: String,
}

/// A proxy whose translation failed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TranslationError {
    pub id: String,
    pub error: String,
}

/// Before/after lists: what the change introduces and what it fixes.
#[derive(Debug, Serialize)]
pub struct Delta<T> {
    pub introduced: Vec<T>,
    pub fixed: Vec<T>,
}

/// The objects the change touches (`Kind ns/name`).
#[derive(Clone, Debug, Serialize)]
pub struct ObjectChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

/// Everything `meshctl diff` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub objects: ObjectChanges,
    /// Proxies whose config would change, by node id.
    pub proxies: Vec<ProxyDiff>,
    /// How many proxies were translated and would receive the same config.
    pub unchanged_proxies: usize,
    /// Proxies whose translation failed (a bug in the translation, which meshd would hit
    /// too).
    pub translation_errors: Vec<TranslationError>,
    pub analysis: Delta<MessageRecord>,
    pub rejected: Delta<RejectedRecord>,
}

impl Report {
    /// Whether anything would change: a proxy's config, an analyzer message, a refusal.
    pub fn changed(&self) -> bool {
        !self.proxies.is_empty()
            || !self.analysis.introduced.is_empty()
            || !self.analysis.fixed.is_empty()
            || !self.rejected.introduced.is_empty()
            || !self.rejected.fixed.is_empty()
    }
}

/// One side: the store meshd would index, the analysis store, the snapshot, its proxies.
struct Side {
    snapshot: Snapshot,
    messages: Vec<Message>,
    proxies: BTreeMap<String, ProxyInfo>,
}

fn side(resources: &[mesh_core::resource::Resource], connected: &[String]) -> Side {
    let mesh: MeshConfig = super::mesh_config(resources);
    // meshd indexes exactly what it read; the Pods derived from workload templates only add
    // proxies (a derived Pod has no IP, so it is nobody's endpoint).
    let mut store = Store::new(resources.to_vec());
    let snapshot = Snapshot::build(&store, &mesh);
    store.add_template_pods();
    let proxies = proxies::defined(&snapshot, &store, connected);
    let analysis_store = analysis::files_store(resources.to_vec(), &mesh);
    let messages = analysis::run(&analysis_store, &mesh, &analysis::all_analyzers());
    Side {
        snapshot,
        messages,
        proxies,
    }
}

/// Compares both sides of the change with meshd's translation.
pub fn diff(change: &Change, connected: &[String]) -> Report {
    diff_with(change, connected, Cache::generate)
}

/// [`diff`] with a given translation.
pub fn diff_with(change: &Change, connected: &[String], translate: Translate) -> Report {
    let (before, after) = std::thread::scope(|s| {
        let b = s.spawn(|| side(&change.before, connected));
        let a = side(&change.after, connected);
        (b.join(), a)
    });
    let before = match before {
        Ok(b) => b,
        Err(_) => side(&change.before, connected),
    };
    let ids: BTreeSet<&String> = before.proxies.keys().chain(after.proxies.keys()).collect();
    let jobs: Vec<(&String, Option<&ProxyInfo>, Option<&ProxyInfo>)> = ids
        .into_iter()
        .map(|id| (id, before.proxies.get(id), after.proxies.get(id)))
        .collect();
    let results = proxy_diffs(&before.snapshot, &after.snapshot, &jobs, translate);
    let mut proxies = Vec::new();
    let mut unchanged_proxies = 0;
    let mut translation_errors = Vec::new();
    for (outcome, (id, _, _)) in results.into_iter().zip(&jobs) {
        match outcome {
            Outcome::Unchanged => unchanged_proxies += 1,
            Outcome::Changed(d) => proxies.push(*d),
            Outcome::Failed(error) => translation_errors.push(TranslationError {
                id: (*id).clone(),
                error,
            }),
        }
    }

    Report {
        objects: ObjectChanges {
            added: change.added.clone(),
            changed: change.replaced.clone(),
            removed: change.removed.clone(),
        },
        proxies,
        unchanged_proxies,
        translation_errors,
        analysis: message_delta(&before.messages, &after.messages),
        rejected: rejected_delta(&before.snapshot.rejected, &after.snapshot.rejected),
    }
}

type Job<'a> = (&'a String, Option<&'a ProxyInfo>, Option<&'a ProxyInfo>);

/// Work shared by the threads of one comparison: both sides' caches, the shared-part
/// comparisons done so far and the unified diffs rendered so far.
struct Shared<'a> {
    before: &'a Snapshot,
    after: &'a Snapshot,
    caches: (Cache, Cache),
    /// The outbound part of a proxy absent from one side.
    empty: Arc<EncodedPart>,
    /// Names that differ between two shared parts (per resource type, in
    /// [`ResourceKind::ALL`] order), by the parts' addresses (before, after): each pair of
    /// parts is compared once, however many proxies hold it. The entry holds both parts, so
    /// that no address is freed and reused by another part during the comparison.
    pairs: Mutex<HashMap<(usize, usize), PairSlot>>,
    /// Unified diffs by resource type, name and both digests: proxies that see the same
    /// change to a resource share its rendering.
    renders: Mutex<HashMap<RenderKey, Slot<String>>>,
}

type PartDiff = [Vec<String>; 4];
type PairSlot = (Arc<EncodedPart>, Arc<EncodedPart>, Slot<PartDiff>);
type RenderKey = (ResourceKind, String, u64, u64);
type Slot<T> = Arc<OnceLock<Arc<T>>>;

/// The value of `key` in `map`, made by `fill` the first time (other threads asking for the
/// same key meanwhile wait for it; threads asking for other keys go on).
fn memo<K: std::hash::Hash + Eq, T>(
    map: &Mutex<HashMap<K, Slot<T>>>,
    key: K,
    fill: impl FnOnce() -> T,
) -> Arc<T> {
    let slot = map
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_default()
        .clone();
    slot.get_or_init(|| Arc::new(fill())).clone()
}

/// Translates and compares every proxy, on all cores.
fn proxy_diffs(
    before: &Snapshot,
    after: &Snapshot,
    jobs: &[Job<'_>],
    translate: Translate,
) -> Vec<Outcome> {
    let shared = Shared {
        before,
        after,
        caches: (Cache::new(), Cache::new()),
        empty: Arc::default(),
        pairs: Mutex::default(),
        renders: Mutex::default(),
    };
    let threads = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 16);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Outcome>> = Mutex::new(vec![Outcome::Unchanged; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&job) = jobs.get(k) else { return };
                    let outcome = proxy_outcome(&shared, job, translate);
                    let mut out = results.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(slot) = out.get_mut(k) {
                        *slot = outcome;
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// Translates one proxy on both sides and compares its configs.
fn proxy_outcome(shared: &Shared<'_>, job: Job<'_>, translate: Translate) -> Outcome {
    let (id, b, a) = job;
    let absent = || EncodedConfig {
        shared: shared.empty.clone(),
        own: EncodedPart::default(),
    };
    let translated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        (
            b.map_or_else(absent, |p| translate(&shared.caches.0, shared.before, p)),
            a.map_or_else(absent, |p| translate(&shared.caches.1, shared.after, p)),
        )
    }));
    let (cb, ca) = match translated {
        Ok(c) => c,
        Err(panic) => return Outcome::Failed(panic_message(panic.as_ref())),
    };
    let Some(d) = compare_configs(shared, &cb, &ca) else {
        return Outcome::Unchanged;
    };
    let info = a.or(b);
    Outcome::Changed(Box::new(ProxyDiff {
        id: id.clone(),
        kind: match info.map(|p| p.kind) {
            Some(ProxyKind::Gateway) => "gateway",
            _ => "sidecar",
        },
        namespace: info.map(|p| p.namespace.clone()).unwrap_or_default(),
        workload: info.map(|p| p.workload.clone()).unwrap_or_default(),
        status: match (b, a) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            _ => "changed",
        },
        clusters: d.clusters,
        listeners: d.listeners,
        routes: d.routes,
        endpoints: d.endpoints,
    }))
}

/// What became of one proxy.
#[derive(Clone, Debug)]
enum Outcome {
    Unchanged,
    Changed(Box<ProxyDiff>),
    /// The translation panicked (a bug): the message.
    Failed(String),
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the translation panicked".to_owned())
}

/// The per-type differences of two configs, `None` when they are the same.
#[derive(Debug)]
struct ConfigDiff {
    clusters: TypeDiff,
    listeners: TypeDiff,
    routes: TypeDiff,
    endpoints: TypeDiff,
}

/// Compares one proxy's configs: the names whose shared entries differ (once per pair of
/// shared parts) and the names of both own parts are looked up on both sides; every other
/// name is in both shared parts with the same bytes.
fn compare_configs(
    shared: &Shared<'_>,
    before: &EncodedConfig,
    after: &EncodedConfig,
) -> Option<ConfigDiff> {
    let key = (
        Arc::as_ptr(&before.shared) as usize,
        Arc::as_ptr(&after.shared) as usize,
    );
    let slot = shared
        .pairs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(key)
        .or_insert_with(|| (before.shared.clone(), after.shared.clone(), Slot::default()))
        .2
        .clone();
    let parts = slot
        .get_or_init(|| {
            Arc::new(
                ResourceKind::ALL
                    .map(|k| changed_names(before.shared.list(k), after.shared.list(k))),
            )
        })
        .clone();
    let kind = |i: usize| compare_kind(shared, ResourceKind::ALL[i], &parts[i], before, after);
    let d = ConfigDiff {
        listeners: kind(0),
        routes: kind(1),
        clusters: kind(2),
        endpoints: kind(3),
    };
    if d.clusters.is_empty()
        && d.listeners.is_empty()
        && d.routes.is_empty()
        && d.endpoints.is_empty()
    {
        None
    } else {
        Some(d)
    }
}

/// The names whose entries differ between two name-sorted lists (present on one side only,
/// or with other bytes), in name order.
fn changed_names(before: &[EncodedResource], after: &[EncodedResource]) -> Vec<String> {
    let mut out = Vec::new();
    let (mut b, mut a) = (before, after);
    loop {
        let name = match (b.first(), a.first()) {
            (Some(x), Some(y)) => x.name.as_str().min(y.name.as_str()),
            (Some(x), None) => x.name.as_str(),
            (None, Some(y)) => y.name.as_str(),
            (None, None) => return out,
        };
        let run = |l: &[EncodedResource]| l.iter().take_while(|r| r.name == name).count();
        let (nb, na) = (run(b), run(a));
        let (rb, rest_b) = b.split_at(nb);
        let (ra, rest_a) = a.split_at(na);
        if nb != na || rb.iter().zip(ra).any(|(x, y)| !same(x, y)) {
            out.push(name.to_owned());
        }
        (b, a) = (rest_b, rest_a);
    }
}

/// Whether two resources have the same bytes (the digest first: it settles most).
fn same(x: &EncodedResource, y: &EncodedResource) -> bool {
    x.digest == y.digest && x.value == y.value
}

/// The resource a proxy holds under `name`: the last of that name, as a client keeps the
/// last (its own part comes after the shared one, see [`EncodedConfig::iter`]).
fn lookup<'a>(
    config: &'a EncodedConfig,
    kind: ResourceKind,
    name: &str,
) -> Option<&'a EncodedResource> {
    let last = |l: &'a [EncodedResource]| {
        let end = l.partition_point(|r| r.name.as_str() <= name);
        end.checked_sub(1)
            .and_then(|i| l.get(i))
            .filter(|r| r.name == name)
    };
    last(config.own.list(kind)).or_else(|| last(config.shared.list(kind)))
}

/// One resource type of one proxy: the names that may differ (`shared_changed`, and every
/// name of both own parts) looked up on both sides.
fn compare_kind(
    shared: &Shared<'_>,
    kind: ResourceKind,
    shared_changed: &[String],
    before: &EncodedConfig,
    after: &EncodedConfig,
) -> TypeDiff {
    let names: BTreeSet<&str> = shared_changed
        .iter()
        .map(String::as_str)
        .chain(before.own.list(kind).iter().map(|r| r.name.as_str()))
        .chain(after.own.list(kind).iter().map(|r| r.name.as_str()))
        .collect();
    let mut out = TypeDiff::default();
    for name in names {
        match (lookup(before, kind, name), lookup(after, kind, name)) {
            (Some(_), None) => out.removed.push(name.to_owned()),
            (None, Some(_)) => out.added.push(name.to_owned()),
            (Some(old), Some(new)) if !same(old, new) => {
                let key = (kind, name.to_owned(), old.digest, new.digest);
                let diff = memo(&shared.renders, key, || render_change(kind, old, new));
                out.changed.push(ChangedResource {
                    name: name.to_owned(),
                    diff: (*diff).clone(),
                });
            }
            _ => {}
        }
    }
    out
}

/// The message type of a resource type.
fn message_name(kind: ResourceKind) -> &'static str {
    xds::json::type_name(match kind {
        ResourceKind::Listener => xds::type_url::LISTENER,
        ResourceKind::Route => xds::type_url::ROUTE,
        ResourceKind::Cluster => xds::type_url::CLUSTER,
        ResourceKind::Endpoint => xds::type_url::ENDPOINT,
    })
}

/// A changed resource as a unified diff of Envoy's JSON. A route configuration is shown
/// without the virtual hosts that did not change (one per service in a large mesh); every
/// other resource whole.
fn render_change(kind: ResourceKind, old: &EncodedResource, new: &EncodedResource) -> String {
    let full_name = message_name(kind);
    let reduced = match kind {
        ResourceKind::Route => drop_same_virtual_hosts(&old.value, &new.value),
        _ => None,
    };
    let (o, n) = match &reduced {
        Some((o, n)) => (o.as_slice(), n.as_slice()),
        None => (&old.value[..], &new.value[..]),
    };
    unified(
        &render_json(xds::json::encoded_to_value(full_name, o)),
        &render_json(xds::json::encoded_to_value(full_name, n)),
    )
}

/// `RouteConfiguration.virtual_hosts`.
const VIRTUAL_HOSTS_FIELD: u64 = 2;

/// Both encoded route configurations without the virtual hosts whose encodings are equal
/// (the encoding is deterministic, so equal bytes are equal virtual hosts): done on the
/// wire, before decoding, as rendering a thousand virtual hosts costs far more than
/// comparing their bytes. `None` when either is not a well-formed message.
fn drop_same_virtual_hosts(old: &[u8], new: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (o, n) = (fields(old)?, fields(new)?);
    fn hosts<'a>(f: &[Field<'a>]) -> HashSet<&'a [u8]> {
        f.iter()
            .filter(|x| x.number == VIRTUAL_HOSTS_FIELD)
            .map(|x| x.bytes)
            .collect()
    }
    let (oh, nh) = (hosts(&o), hosts(&n));
    let keep = |f: &[Field<'_>], other: &HashSet<&[u8]>| -> Vec<u8> {
        f.iter()
            .filter(|x| x.number != VIRTUAL_HOSTS_FIELD || !other.contains(x.bytes))
            .flat_map(|x| x.bytes.iter().copied())
            .collect()
    };
    Some((keep(&o, &nh), keep(&n, &oh)))
}

/// One top-level field of an encoded message: its number and its whole encoding (key
/// included).
struct Field<'a> {
    number: u64,
    bytes: &'a [u8],
}

/// The top-level fields of an encoded message, in order; `None` if malformed.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    fn varint(buf: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first()?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let key = varint(&mut buf)?;
        let len = match key & 7 {
            0 => {
                varint(&mut buf)?;
                0
            }
            1 => 8,
            2 => usize::try_from(varint(&mut buf)?).ok()?,
            5 => 4,
            _ => return None,
        };
        buf = buf.get(len..)?;
        let used = start.len() - buf.len();
        out.push(Field {
            number: key >> 3,
            bytes: start.get(..used)?,
        });
    }
    Some(out)
}

/// A resource as Envoy's JSON, pretty-printed with keys sorted (prost keeps maps in
/// `HashMap`s, whose order varies; sorting makes the text stable).
fn render_json(value: Result<Value, xds::json::JsonError>) -> String {
    match value {
        Ok(v) => serde_json::to_string_pretty(&sorted(v)).unwrap_or_default() + "\n",
        Err(e) => format!("(cannot render as JSON: {e})\n"),
    }
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A unified diff with three lines of context.
pub fn unified(before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header("before", "after")
        .to_string()
}

/// Analyzer messages compared by code, object and text (not by file and line: the changed
/// object moves from the base to the change's files).
fn message_delta(before: &[Message], after: &[Message]) -> Delta<MessageRecord> {
    type K = (&'static str, String, String);
    let k = |m: &Message| -> K {
        (
            m.kind.code,
            m.origin
                .as_ref()
                .map(|o| o.display_name())
                .unwrap_or_default(),
            m.text.clone(),
        )
    };
    let bk: BTreeSet<K> = before.iter().map(k).collect();
    let ak: BTreeSet<K> = after.iter().map(k).collect();
    let mut seen = BTreeSet::new();
    let introduced = after
        .iter()
        .filter(|m| !bk.contains(&k(m)) && seen.insert(k(m)))
        .map(MessageRecord::from_message)
        .collect();
    let mut seen = BTreeSet::new();
    let fixed = before
        .iter()
        .filter(|m| !ak.contains(&k(m)) && seen.insert(k(m)))
        .map(MessageRecord::from_message)
        .collect();
    Delta { introduced, fixed }
}

/// Refused objects compared by object and reason.
fn rejected_delta(before: &[Rejected], after: &[Rejected]) -> Delta<RejectedRecord> {
    let rec = |r: &Rejected| RejectedRecord {
        object: r.object.clone(),
        origin: r.origin.clone(),
        reason: r.reason.clone(),
    };
    let bk: BTreeSet<(&str, &str)> = before.iter().map(|r| (&*r.object, &*r.reason)).collect();
    let ak: BTreeSet<(&str, &str)> = after.iter().map(|r| (&*r.object, &*r.reason)).collect();
    Delta {
        introduced: after
            .iter()
            .filter(|r| !bk.contains(&(&*r.object, &*r.reason)))
            .map(rec)
            .collect(),
        fixed: before
            .iter()
            .filter(|r| !ak.contains(&(&*r.object, &*r.reason)))
            .map(rec)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const MESH: &str = "\
apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {selector: {app: a}, ports: [{name: http, port: 80}]}\n---\n\
apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a1, namespace: x, labels: {app: a}}\nspec: {address: 127.31.0.1}\n---\n\
apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a2, namespace: x, labels: {app: a}}\nspec: {address: 127.31.0.2}\n";

    fn change(extra: &str) -> Change {
        let base = mesh_core::source::load_bytes("base.yaml", MESH.as_bytes()).resources;
        let new = mesh_core::source::load_bytes("new.yaml", extra.as_bytes()).resources;
        super::super::apply(base, new, &[]).unwrap()
    }

    fn panicking(c: &Cache, s: &Snapshot, p: &ProxyInfo) -> EncodedConfig {
        if p.workload == "a2" {
            panic!("boom");
        }
        c.generate(s, p)
    }

    #[test]
    fn a_translation_that_panics_is_reported_not_propagated() {
        let report = diff_with(&change(""), &[], panicking);
        assert_eq!(report.translation_errors.len(), 1);
        assert_eq!(
            report.translation_errors[0].id,
            "sidecar~127.31.0.2~a2.x~x.svc.cluster.local"
        );
        assert_eq!(report.translation_errors[0].error, "boom");
        assert_eq!(report.unchanged_proxies, 1);
    }

    #[test]
    fn a_new_workload_is_an_added_proxy() {
        let report = diff_with(
            &change(
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: a3, namespace: x, labels: {app: a}}\nspec: {address: 127.31.0.3}\n",
            ),
            &[],
            Cache::generate,
        );
        let added: Vec<&ProxyDiff> = report
            .proxies
            .iter()
            .filter(|p| p.status == "added")
            .collect();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].workload, "a3");
        assert!(added[0].clusters.removed.is_empty());
        assert!(!added[0].clusters.added.is_empty());
        // The other two see a new endpoint of service a.
        let changed: Vec<&str> = report
            .proxies
            .iter()
            .filter(|p| p.status == "changed")
            .map(|p| p.workload.as_str())
            .collect();
        assert_eq!(changed, ["a1", "a2"]);
        for p in report.proxies.iter().filter(|p| p.status == "changed") {
            assert_eq!(
                p.endpoints
                    .changed
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>(),
                ["outbound|80||a.x.svc.cluster.local"]
            );
            assert!(p.endpoints.changed[0].diff.contains("127.31.0.3"));
        }
    }

    fn whole(_: &Cache, s: &Snapshot, p: &ProxyInfo) -> EncodedConfig {
        EncodedConfig::unshared(&xds::generate(s, p))
    }

    /// The cache's translation with every shared part a fresh copy, freed after use: parts
    /// are compared by address, and a freed address may come back for another part.
    fn fresh(c: &Cache, s: &Snapshot, p: &ProxyInfo) -> EncodedConfig {
        let e = c.generate(s, p);
        EncodedConfig {
            shared: Arc::new((*e.shared).clone()),
            own: e.own,
        }
    }

    #[test]
    fn the_shared_translation_reports_what_translating_every_proxy_whole_reports() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/diff");
        let base = mesh_core::source::load_paths(&[dir.join("base")], true);
        assert!(base.errors.is_empty(), "{:?}", base.errors);
        let mut changed = 0;
        for file in [
            "weight-shift.yaml",
            "new-subset.yaml",
            "gateway-route.yaml",
            "delete.yaml",
            "broken.yaml",
        ] {
            let new = mesh_core::source::load_paths(&[dir.join(file)], true);
            let change = super::super::apply(base.resources.clone(), new.resources, &[]).unwrap();
            let cached = diff_with(&change, &[], Cache::generate);
            let reference = diff_with(&change, &[], whole);
            assert_eq!(cached.proxies, reference.proxies, "{file}");
            let copied = diff_with(&change, &[], fresh);
            assert_eq!(copied.proxies, reference.proxies, "{file}");
            assert_eq!(
                cached.unchanged_proxies, reference.unchanged_proxies,
                "{file}"
            );
            assert!(cached.translation_errors.is_empty(), "{file}");
            changed += cached.proxies.len();
        }
        assert!(changed > 0);
    }

    #[test]
    fn a_route_configuration_renders_only_its_changed_virtual_hosts() {
        use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
        let vh = |name: &str, domain: &str| VirtualHost {
            name: name.to_owned(),
            domains: vec![domain.to_owned()],
            ..Default::default()
        };
        let rc = |hosts: Vec<VirtualHost>| RouteConfiguration {
            name: "80".to_owned(),
            virtual_hosts: hosts,
            ..Default::default()
        };
        let enc = |r: &RouteConfiguration| {
            EncodedResource::new(r.name.clone(), xds::wire::encode_route_configuration(r))
        };
        let old = enc(&rc(vec![vh("a", "a.x"), vh("b", "b.x"), vh("c", "c.x")]));
        let new = enc(&rc(vec![vh("a", "a.x"), vh("b", "b2.x"), vh("d", "d.x")]));
        let d = render_change(ResourceKind::Route, &old, &new);
        for shown in ["\"b.x\"", "\"b2.x\"", "\"c.x\"", "\"d.x\""] {
            assert!(d.contains(shown), "{shown} missing:\n{d}");
        }
        assert!(
            !d.contains("a.x"),
            "an unchanged virtual host is shown:\n{d}"
        );
        assert!(
            d.contains("-        \"b.x\"") && d.contains("+        \"b2.x\""),
            "{d}"
        );
        assert!(
            fields(&[0x0a, 0x05, b'a']).is_none(),
            "a truncated field is malformed"
        );
    }
}
