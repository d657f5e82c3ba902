//! The comparison: both sides' snapshots (each built once), every proxy's resources before
//! and after compared by type and name, the analyzer messages and refused objects of both
//! sides compared, all gathered in a [`Report`].
//!
//! Proxies are translated on every core, each proxy's two configs compared and dropped at
//! once (a proxy of a large mesh receives megabytes). Proxies whose translation inputs are
//! the same ([`GenerateKey`]) share one translation. The translation is a plain function
//! ([`Translate`]) so that a per-key cache of outbound config can take its place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use mesh_core::analysis::{self, MeshConfig, Message, Store};
use mesh_core::xds::{self, ProxyConfig, ProxyInfo, ProxyKind, Rejected, Snapshot};
use serde::Serialize;
use serde_json::Value;

use super::Change;
use super::proxies::{self, GenerateKey};
use crate::output::MessageRecord;

/// How one proxy's config is produced from a snapshot (meshd's translation).
pub type Translate = fn(&Snapshot, &ProxyInfo) -> ProxyConfig;

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
    diff_with(change, connected, xds::generate)
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

/// Translates and compares every proxy, on all cores.
fn proxy_diffs(
    before: &Snapshot,
    after: &Snapshot,
    jobs: &[Job<'_>],
    translate: Translate,
) -> Vec<Outcome> {
    // Proxies with the same translation inputs share one translation: group them.
    let mut groups: BTreeMap<(Option<GenerateKey>, Option<GenerateKey>), Vec<usize>> =
        BTreeMap::new();
    for (i, (_, b, a)) in jobs.iter().enumerate() {
        groups
            .entry((b.map(GenerateKey::of), a.map(GenerateKey::of)))
            .or_default()
            .push(i);
    }
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    let threads = std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
        .clamp(1, 16);
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Outcome>> = Mutex::new(vec![Outcome::Unchanged; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut memo = Memos::new();
                loop {
                    let g = {
                        let Ok(mut n) = next.lock() else { return };
                        let g = *n;
                        *n += 1;
                        g
                    };
                    let Some(members) = groups.get(g) else { return };
                    let Some(&first) = members.first() else {
                        continue;
                    };
                    let (_, b, a) = jobs[first];
                    let empty = ProxyConfig::default();
                    let translated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        (
                            b.map(|p| translate(before, p)),
                            a.map(|p| translate(after, p)),
                        )
                    }));
                    let (cb, ca) = match translated {
                        Ok(c) => c,
                        Err(panic) => {
                            let error = panic_message(panic.as_ref());
                            let Ok(mut out) = results.lock() else { return };
                            for &i in members {
                                out[i] = Outcome::Failed(error.clone());
                            }
                            continue;
                        }
                    };
                    let diff = compare_configs(
                        cb.as_ref().unwrap_or(&empty),
                        ca.as_ref().unwrap_or(&empty),
                        &mut memo,
                    );
                    drop((cb, ca));
                    let Ok(mut out) = results.lock() else { return };
                    for &i in members {
                        let (id, b, a) = jobs[i];
                        let Some(d) = &diff else {
                            out[i] = Outcome::Unchanged;
                            continue;
                        };
                        out[i] = Outcome::Changed(Box::new({
                            let info = a.or(b);
                            ProxyDiff {
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
                                clusters: d.clusters.clone(),
                                listeners: d.listeners.clone(),
                                routes: d.routes.clone(),
                                endpoints: d.endpoints.clone(),
                            }
                        }));
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
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

/// Unified diffs already rendered, by resource name: proxies that see the same change to a
/// resource (most of them, in a mesh without Sidecar scoping) share its rendering, which
/// costs far more than comparing the messages. One per thread.
struct Memo<M> {
    seen: HashMap<String, Vec<(M, M, String)>>,
}

/// How many distinct changes of one resource a memo keeps.
const MEMO_PER_NAME: usize = 16;

impl<M: PartialEq + Clone> Memo<M> {
    fn new() -> Self {
        Memo {
            seen: HashMap::new(),
        }
    }

    fn diff(&mut self, name: &str, old: &M, new: &M, render: fn(&M) -> String) -> String {
        let entries = self.seen.entry(name.to_owned()).or_default();
        if let Some((_, _, d)) = entries.iter().find(|(o, n, _)| o == old && n == new) {
            return d.clone();
        }
        let d = unified(&render(old), &render(new));
        if entries.len() < MEMO_PER_NAME {
            entries.push((old.clone(), new.clone(), d.clone()));
        }
        d
    }
}

/// One thread's memos.
struct Memos {
    clusters: Memo<Cluster>,
    listeners: Memo<Listener>,
    routes: Memo<RouteConfiguration>,
    endpoints: Memo<ClusterLoadAssignment>,
}

impl Memos {
    fn new() -> Self {
        Memos {
            clusters: Memo::new(),
            listeners: Memo::new(),
            routes: Memo::new(),
            endpoints: Memo::new(),
        }
    }
}

fn compare_configs(
    before: &ProxyConfig,
    after: &ProxyConfig,
    memo: &mut Memos,
) -> Option<ConfigDiff> {
    let d = ConfigDiff {
        clusters: compare_list(
            &before.clusters,
            &after.clusters,
            |c| &c.name,
            |c| render_json(xds::json::to_value(c)),
            &mut memo.clusters,
        ),
        listeners: compare_list(
            &before.listeners,
            &after.listeners,
            |l| &l.name,
            |l| render_json(xds::json::to_value(l)),
            &mut memo.listeners,
        ),
        routes: compare_list(
            &before.routes,
            &after.routes,
            |r| &r.name,
            |r| render_json(xds::json::to_value(r)),
            &mut memo.routes,
        ),
        endpoints: compare_list(
            &before.endpoints,
            &after.endpoints,
            |e| &e.cluster_name,
            |e| render_json(xds::json::to_value(e)),
            &mut memo.endpoints,
        ),
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

/// Compares two lists of resources by name (typed equality; maps inside compare as maps).
fn compare_list<M: PartialEq + Clone + Reduce>(
    before: &[M],
    after: &[M],
    name: fn(&M) -> &String,
    render: fn(&M) -> String,
    memo: &mut Memo<M>,
) -> TypeDiff {
    let b: BTreeMap<&String, &M> = before.iter().map(|m| (name(m), m)).collect();
    let a: BTreeMap<&String, &M> = after.iter().map(|m| (name(m), m)).collect();
    let mut out = TypeDiff::default();
    for (n, old) in &b {
        match a.get(n) {
            None => out.removed.push((*n).clone()),
            Some(new) if *new != *old => {
                let diff = match M::reduce(old, new) {
                    Some((o, n2)) => memo.diff(n, &o, &n2, render),
                    None => memo.diff(n, old, new, render),
                };
                out.changed.push(ChangedResource {
                    name: (*n).clone(),
                    diff,
                });
            }
            Some(_) => {}
        }
    }
    for n in a.keys() {
        if !b.contains_key(n) {
            out.added.push((*n).clone());
        }
    }
    out
}

/// Leaving out of a changed resource's rendering the parts that did not change, where a
/// resource has many independent parts: a route configuration's virtual hosts (one per
/// service in a large mesh). The rest of the resource is kept whole.
trait Reduce: Sized {
    /// Copies of `old` and `new` without their equal parts, or `None` to render them whole.
    fn reduce(_old: &Self, _new: &Self) -> Option<(Self, Self)> {
        None
    }
}

impl Reduce for Cluster {}
impl Reduce for Listener {}
impl Reduce for ClusterLoadAssignment {}

impl Reduce for RouteConfiguration {
    /// Keeps the virtual hosts that are added, removed or changed (by name).
    fn reduce(old: &Self, new: &Self) -> Option<(Self, Self)> {
        let by_name = |rc: &Self| -> HashMap<String, usize> {
            rc.virtual_hosts
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.clone(), i))
                .collect()
        };
        let (ob, nb) = (by_name(old), by_name(new));
        let same = |name: &str| -> bool {
            match (ob.get(name), nb.get(name)) {
                (Some(&i), Some(&j)) => old.virtual_hosts[i] == new.virtual_hosts[j],
                _ => false,
            }
        };
        let keep = |rc: &Self| -> Self {
            let mut out = rc.clone();
            out.virtual_hosts.retain(|v| !same(&v.name));
            out
        };
        Some((keep(old), keep(new)))
    }
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

    fn panicking(_: &Snapshot, p: &ProxyInfo) -> ProxyConfig {
        if p.workload == "a2" {
            panic!("boom");
        }
        xds::generate(&Snapshot::default(), p)
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
            xds::generate,
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
}
