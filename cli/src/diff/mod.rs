//! `meshctl diff`: what a config change would do to every proxy before it is applied.
//!
//! The base is a directory of mesh YAML (`--against DIR`) or the objects a running meshd has
//! loaded (`--controlplane URL`, its `/debug/resourcesz`). The change is the `-f` files: each
//! object replaces the base object with the same group, kind, namespace and name, or is
//! added; objects annotated `meshctl.dev/diff: delete` in the change, and objects named by
//! `--delete Kind/ns/name`, are removed from the base. Both sides are translated exactly as
//! meshd translates them ([`mesh_core::xds::Snapshot::build`] and
//! [`mesh_core::xds::generate`]) for every proxy the config defines ([`proxies`]), and the
//! resources are compared by type and name ([`compare`]). The analyzers run on both sides
//! too: the messages the change introduces and those it fixes are reported, with the objects
//! meshd would refuse. [`render`] prints it all as text or JSON.
//!
//! This module owns the flags, loading both sides and the exit code.

pub mod compare;
pub mod proxies;
pub mod render;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mesh_core::analysis::MeshConfig;
use mesh_core::resource::Resource;
use mesh_core::source;

use crate::args::ColorMode;
use crate::exit;

/// The annotation that marks an object in the change as removed.
pub const DELETE_ANNOTATION: &str = "meshctl.dev/diff";

/// Exit status with `--exit-code` when the change would change something.
pub const CHANGED: u8 = 1;

/// Output formats of `meshctl diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Per proxy: added, removed and changed resources with unified diffs.
    Text,
    /// One JSON document (see the README's `meshctl diff` section for its shape).
    Json,
}

#[derive(Debug, Args)]
#[command(after_help = DIFF_EXAMPLES)]
pub struct DiffArgs {
    /// The changed or new objects: files or directories (`-` reads stdin). Repeatable.
    /// An object annotated `meshctl.dev/diff: delete` is removed instead.
    #[arg(short, long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,

    /// The current config: a directory of mesh YAML, read as `meshd --config-dir` reads it.
    #[arg(long, value_name = "DIR", conflicts_with = "controlplane")]
    pub against: Option<PathBuf>,

    /// The current config: the objects a running meshd serves, read from its debug API
    /// (e.g. http://127.0.0.1:15014). The proxies connected to it are diffed too.
    #[arg(long, value_name = "URL")]
    pub controlplane: Option<String>,

    /// Remove an object from the base: `Kind/namespace/name` (or `Kind/name` for
    /// cluster-scoped kinds). Repeatable.
    #[arg(long, value_name = "KIND/NS/NAME")]
    pub delete: Vec<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,

    /// Exit 1 when the change would change any proxy's config, analyzer message or refused
    /// object (0 when nothing).
    #[arg(long)]
    pub exit_code: bool,

    /// Color the text output.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,
}

const DIFF_EXAMPLES: &str = "\
Examples:
  # What would a new VirtualService do to the proxies of the mesh in config/?
  meshctl diff -f reviews-vs.yaml --against config/

  # Against the config a running meshd serves; fail CI when anything changes
  meshctl diff -f change/ --controlplane http://127.0.0.1:15014 --exit-code

  # Remove an object
  meshctl diff --delete DestinationRule/shop/reviews --against config/ -o json

Exit codes: 0 done (with --exit-code: nothing would change), 1 something would change
(--exit-code only), 64 bad usage, 65 unreadable input.";

/// Runs the command; returns the exit code.
pub fn run(args: &DiffArgs) -> u8 {
    if args.against.is_none() && args.controlplane.is_none() {
        eprintln!(
            "Error: give the current config: --against DIR or --controlplane URL\n\nFor example: meshctl diff -f change.yaml --against config/"
        );
        return exit::USAGE;
    }
    if args.files.is_empty() && args.delete.is_empty() {
        eprintln!("Error: nothing to diff: give the changed objects with -f, or --delete");
        return exit::USAGE;
    }
    let mut deletes = Vec::new();
    for d in &args.delete {
        match ObjectRef::parse(d) {
            Ok(r) => deletes.push(r),
            Err(e) => {
                eprintln!("Error: {e}");
                return exit::USAGE;
            }
        }
    }
    let (base, connected) = match load_base(args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let change = if args.files.is_empty() {
        Vec::new()
    } else {
        let loaded = source::load_paths(&args.files, true);
        if !loaded.errors.is_empty() {
            for e in &loaded.errors {
                eprintln!("Error: {e}");
            }
            return exit::BAD_INPUT;
        }
        if loaded.files_read == 0 {
            eprintln!(
                "Error: no YAML or JSON files found in {}",
                paths(&args.files)
            );
            return exit::BAD_INPUT;
        }
        loaded.resources
    };
    let change = match apply(base, change, &deletes) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let report = compare::diff(&change, &connected);

    let color = match args.color {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let text = match args.output {
        DiffFormat::Text => render::text(&report, color),
        DiffFormat::Json => render::json(&report),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    if !report.translation_errors.is_empty() {
        for e in &report.translation_errors {
            eprintln!(
                "Error: translating the config of {} failed: {}",
                e.id, e.error
            );
        }
        return exit::BAD_INPUT;
    }
    if args.exit_code && report.changed() {
        CHANGED
    } else {
        exit::OK
    }
}

fn paths(p: &[PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The base objects, and the node ids of the proxies connected to meshd (`--controlplane`).
fn load_base(args: &DiffArgs) -> Result<(Vec<Resource>, Vec<String>), String> {
    if let Some(url) = &args.controlplane {
        let resources = crate::describe::from_controlplane(url)?;
        let connected = connected_proxies(url)?;
        return Ok((resources, connected));
    }
    let Some(dir) = &args.against else {
        return Err("no base config".to_owned());
    };
    if !dir.is_dir() {
        return Err(format!("--against {}: not a directory", dir.display()));
    }
    let loaded = source::load_paths(std::slice::from_ref(dir), true);
    // meshd serves what it can read and lists the rest as refused; do the same, but say so.
    for e in &loaded.errors {
        eprintln!("Warning: base config: {e} (left out, as meshd would)");
    }
    Ok((loaded.resources, Vec::new()))
}

/// Node ids from meshd's `/debug/syncz`.
fn connected_proxies(url: &str) -> Result<Vec<String>, String> {
    let body = crate::describe::http_get(url, "/debug/syncz", std::time::Duration::from_secs(10))
        .map_err(|e| format!("reading {url}/debug/syncz: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{url}/debug/syncz is not JSON: {e}"))?;
    let mut ids: Vec<String> = doc
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["proxy"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// An object named on the command line: `Kind/ns/name` or `Kind/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn parse(s: &str) -> Result<ObjectRef, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [kind, ns, name] if !kind.is_empty() && !ns.is_empty() && !name.is_empty() => {
                Ok(ObjectRef {
                    kind: (*kind).to_owned(),
                    namespace: Some((*ns).to_owned()),
                    name: (*name).to_owned(),
                })
            }
            [kind, name] if !kind.is_empty() && !name.is_empty() => Ok(ObjectRef {
                kind: (*kind).to_owned(),
                namespace: None,
                name: (*name).to_owned(),
            }),
            _ => Err(format!(
                "--delete {s:?}: expected Kind/namespace/name or Kind/name"
            )),
        }
    }

    fn matches(&self, r: &Resource) -> bool {
        r.kind.eq_ignore_ascii_case(&self.kind)
            && r.name == self.name
            && self.namespace.as_deref().unwrap_or("") == r.ns()
    }
}

/// The two sides of a diff, and what the change did to the objects.
#[derive(Debug)]
pub struct Change {
    pub before: Vec<Resource>,
    pub after: Vec<Resource>,
    /// `Kind ns/name` of the objects the change adds, replaces (with a different object) and
    /// removes.
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
}

fn key(r: &Resource) -> (String, String, String, String) {
    (
        r.group.clone(),
        r.kind.clone(),
        r.ns().to_owned(),
        r.name.clone(),
    )
}

fn marked_deleted(r: &Resource) -> bool {
    r.annotations
        .get(DELETE_ANNOTATION)
        .is_some_and(|v| v.eq_ignore_ascii_case("delete"))
}

/// Applies the change to the base: a changed object takes the base object's place (its
/// age, which settles conflicts, is kept, as an update by `kubectl apply` keeps it), a new
/// one comes last, a deleted one is left out. Deleting what the base does not have is an
/// error.
pub fn apply(
    base: Vec<Resource>,
    change: Vec<Resource>,
    deletes: &[ObjectRef],
) -> Result<Change, String> {
    use std::collections::BTreeMap;
    let mut deleted_keys = std::collections::BTreeSet::new();
    let mut changes: BTreeMap<_, Resource> = BTreeMap::new();
    let mut order = Vec::new();
    for r in change {
        let k = key(&r);
        if marked_deleted(&r) {
            deleted_keys.insert(k);
            continue;
        }
        if changes.insert(k.clone(), r).is_none() {
            order.push(k);
        }
    }
    for d in deletes {
        let found: Vec<_> = base.iter().filter(|r| d.matches(r)).map(key).collect();
        if found.is_empty() {
            return Err(format!(
                "--delete {}/{}{}: no such object in the base config",
                d.kind,
                d.namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                d.name
            ));
        }
        deleted_keys.extend(found);
    }
    let mut out = Change {
        before: Vec::new(),
        after: Vec::new(),
        added: Vec::new(),
        replaced: Vec::new(),
        removed: Vec::new(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for r in &base {
        let k = key(r);
        if deleted_keys.contains(&k) {
            if seen.insert(k) {
                out.removed.push(r.display_name());
            }
            continue;
        }
        match changes.get(&k) {
            Some(new) => {
                if seen.insert(k) && new.json != r.json {
                    out.replaced.push(r.display_name());
                }
                out.after.push(new.clone());
            }
            None => out.after.push(r.clone()),
        }
    }
    for k in deleted_keys.iter() {
        if !base.iter().any(|r| key(r) == *k) {
            return Err(format!(
                "{} {}/{} is marked {DELETE_ANNOTATION}: delete but the base config has no such object",
                k.1, k.2, k.3
            ));
        }
    }
    let base_keys: std::collections::BTreeSet<_> = base.iter().map(key).collect();
    for k in order {
        if base_keys.contains(&k) {
            continue;
        }
        if let Some(r) = changes.remove(&k) {
            out.added.push(r.display_name());
            out.after.push(r);
        }
    }
    out.before = base;
    Ok(out)
}

/// The mesh config of one side, as meshd finds it (the `istio` ConfigMap in istio-system,
/// else defaults).
pub fn mesh_config(resources: &[Resource]) -> MeshConfig {
    MeshConfig::from_configmap(resources, "istio-system")
        .unwrap_or_else(|| MeshConfig::from_json(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn load(text: &str) -> Vec<Resource> {
        let loaded = source::load_bytes("t.yaml", text.as_bytes());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.resources
    }

    const BASE: &str = "\
apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {ports: [{port: 80}]}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: x}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn a_replaced_object_keeps_its_place_and_a_new_one_comes_last() {
        let change = load(
            "apiVersion: v1\nkind: Service\nmetadata: {name: c, namespace: x}\nspec: {ports: [{port: 81}]}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x}\nspec: {ports: [{port: 82}]}\n",
        );
        let c = apply(load(BASE), change, &[]).unwrap();
        let names: Vec<&str> = c.after.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(c.after[0].json["spec"]["ports"][0]["port"], 82);
        assert_eq!(c.replaced, ["Service x/a"]);
        assert_eq!(c.added, ["Service x/c"]);
        assert!(c.removed.is_empty());
        assert_eq!(c.before.len(), 2);
    }

    #[test]
    fn an_identical_object_is_no_change() {
        let c = apply(load(BASE), load(BASE), &[]).unwrap();
        assert!(c.replaced.is_empty() && c.added.is_empty() && c.removed.is_empty());
    }

    #[test]
    fn deletions_by_annotation_and_by_reference() {
        let change = load(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: x, annotations: {meshctl.dev/diff: delete}}\n",
        );
        let c = apply(load(BASE), change, &[]).unwrap();
        assert_eq!(c.removed, ["Service x/a"]);
        assert_eq!(c.after.len(), 1);
        let r = ObjectRef::parse("service/x/b").unwrap();
        let c = apply(load(BASE), Vec::new(), &[r]).unwrap();
        assert_eq!(c.removed, ["Service x/b"]);
        let missing = ObjectRef::parse("Service/y/b").unwrap();
        assert!(apply(load(BASE), Vec::new(), &[missing]).is_err());
        let change = load(
            "apiVersion: v1\nkind: Service\nmetadata: {name: z, namespace: x, annotations: {meshctl.dev/diff: delete}}\n",
        );
        assert!(apply(load(BASE), change, &[]).is_err());
    }

    #[test]
    fn object_references() {
        assert_eq!(
            ObjectRef::parse("Namespace/shop").unwrap(),
            ObjectRef {
                kind: "Namespace".into(),
                namespace: None,
                name: "shop".into()
            }
        );
        assert!(ObjectRef::parse("a/b/c/d").is_err());
        assert!(ObjectRef::parse("VirtualService//x").is_err());
        assert!(ObjectRef::parse("x").is_err());
    }
}
