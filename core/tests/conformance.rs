//! Runs Istio's analyzer test cases (`../shared/conformance/istio/analyzer-cases.json`)
//! the way Istio judges them: only the named analyzer, files-only mode, and the multiset of
//! `(code, resource)` must equal the expected one exactly. An expected `Kind name` without a
//! namespace stands for `Kind default/name` unless the kind is cluster-scoped.
//!
//! Set `CONFORMANCE_FILTER=substring` to run only cases whose analyzer or name contains it.
//! Without the shared data the test fails under `CI` and is skipped (loudly) otherwise.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mesh_core::analysis::{self, MeshConfig};
use mesh_core::resource::is_cluster_scoped;
use mesh_core::source;

/// How many of the cases must pass (the acceptance bar).
const REQUIRED_PASSING: usize = 100;

fn shared_dir() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("MESH_CONFORMANCE_DIR").map(PathBuf::from),
        Some(here.join("../../shared/conformance/istio")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("analyzer-cases.json").is_file())
}

fn cluster_scoped_kind(kind: &str) -> bool {
    [
        "",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "gateway.networking.k8s.io",
        "rbac.authorization.k8s.io",
    ]
    .iter()
    .any(|g| is_cluster_scoped(g, kind))
}

fn normalize_expected(resource: &str) -> String {
    match resource.split_once(' ') {
        Some((kind, name)) if !name.contains('/') && !cluster_scoped_kind(kind) => {
            format!("{kind} default/{name}")
        }
        _ => resource.to_owned(),
    }
}

struct Outcome {
    name: String,
    analyzer: String,
    failure: Option<String>,
}

fn run_case(dir: &Path, case: &serde_json::Value) -> Outcome {
    let name = case["name"].as_str().unwrap_or("?").to_owned();
    let analyzer_name = case["analyzer"].as_str().unwrap_or("?").to_owned();
    let fail = |why: String| Outcome {
        name: name.clone(),
        analyzer: analyzer_name.clone(),
        failure: Some(why),
    };
    if case["multiCluster"].as_bool() == Some(true) {
        return fail(
            "not supported: the case compares objects from two clusters; files-only analysis \
             reads one cluster (the analyzer exists, but has only one cluster to compare)"
                .into(),
        );
    }
    let Some(analyzer) = analysis::find_analyzer(&analyzer_name) else {
        return fail("analyzer not implemented".into());
    };
    let files: Vec<PathBuf> = case["inputFiles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .map(|f| dir.join("analyzers").join(f))
        .collect();
    let loaded = source::load_paths(&files, true);
    if !loaded.errors.is_empty() {
        let errs: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return fail(format!("input did not load: {}", errs.join("; ")));
    }
    let mut mesh = match case["meshConfigFile"].as_str() {
        Some(f) => match MeshConfig::from_file(&dir.join("analyzers").join(f)) {
            Ok(m) => m,
            Err(e) => return fail(format!("mesh config: {e}")),
        },
        None => MeshConfig::default(),
    };
    if let Some(f) = case["meshNetworksFile"].as_str() {
        mesh = match mesh.with_networks_file(&dir.join("analyzers").join(f)) {
            Ok(m) => m,
            Err(e) => return fail(format!("mesh networks: {e}")),
        };
    }
    let store = analysis::files_store(loaded.resources, &mesh);
    let messages = analysis::run(&store, &mesh, &[analyzer]);

    let mut want: BTreeMap<(String, String), i32> = BTreeMap::new();
    for e in case["expected"].as_array().into_iter().flatten() {
        let code = e["code"].as_str().unwrap_or("").to_owned();
        let res = normalize_expected(e["resource"].as_str().unwrap_or(""));
        *want.entry((code, res)).or_default() += 1;
    }
    let mut got: BTreeMap<(String, String), i32> = BTreeMap::new();
    for m in &messages {
        let res = m
            .origin
            .as_ref()
            .map(|o| o.display_name())
            .unwrap_or_default();
        *got.entry((m.code().to_owned(), res)).or_default() += 1;
    }
    if want == got {
        return Outcome {
            name,
            analyzer: analyzer_name,
            failure: None,
        };
    }
    let mut diff = Vec::new();
    for (k, n) in &want {
        let g = got.get(k).copied().unwrap_or(0);
        if g < *n {
            diff.push(format!("missing {}x {} {}", n - g, k.0, k.1));
        }
    }
    for (k, n) in &got {
        let w = want.get(k).copied().unwrap_or(0);
        if *n > w {
            diff.push(format!("unexpected {}x {} {}", n - w, k.0, k.1));
        }
    }
    fail(diff.join("; "))
}

#[test]
fn istio_analyzer_conformance() {
    let Some(dir) = shared_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "conformance data not found (expected ../shared/conformance/istio beside the checkout)"
            );
        }
        eprintln!("SKIPPED: conformance data not found beside the checkout");
        return;
    };
    let text = std::fs::read_to_string(dir.join("analyzer-cases.json")).expect("read cases");
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("parse cases");
    let filter = std::env::var("CONFORMANCE_FILTER").ok();
    let outcomes: Vec<Outcome> = cases
        .iter()
        .filter(|c| {
            filter.as_deref().is_none_or(|f| {
                c["analyzer"].as_str().unwrap_or("").contains(f)
                    || c["name"].as_str().unwrap_or("").contains(f)
            })
        })
        .map(|c| run_case(&dir, c))
        .collect();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    let passed = outcomes.len() - failed.len();
    println!("conformance: {passed} of {} cases pass", outcomes.len());
    for o in &failed {
        println!(
            "  FAIL [{}] {}: {}",
            o.analyzer,
            o.name,
            o.failure.as_deref().unwrap_or("")
        );
    }
    if filter.is_none() {
        assert_eq!(outcomes.len(), cases.len());
        assert!(
            passed >= REQUIRED_PASSING,
            "only {passed} of {} conformance cases pass (need {REQUIRED_PASSING}); failures listed above",
            outcomes.len()
        );
    } else {
        assert!(
            failed.is_empty(),
            "{} filtered cases fail; listed above",
            failed.len()
        );
    }
}

/// Every input file of Istio's analyzer suite is real-world YAML: all of it must load
/// without a single error, and every document must become an object.
#[test]
fn every_conformance_input_loads() {
    let Some(dir) = shared_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!("conformance data not found");
        }
        return;
    };
    let loaded = source::load_paths(&[dir.join("analyzers")], true);
    // Mesh config files are bare MeshConfig documents, not objects; they are read with
    // --meshConfigFile, so "no apiVersion and kind" is the right answer for them alone.
    let is_mesh_config = |f: &str| {
        [
            "meshconfig",
            "mesh-cfg",
            "meshnetworks",
            "mesh-with-automtls",
        ]
        .iter()
        .any(|m| f.contains(m))
    };
    let errs: Vec<String> = loaded
        .errors
        .iter()
        .filter(|e| !(is_mesh_config(&e.file) && e.message.contains("no apiVersion and kind")))
        .map(ToString::to_string)
        .collect();
    assert!(errs.is_empty(), "load errors:\n{}", errs.join("\n"));
    assert!(
        loaded.resources.len() > 500,
        "only {} objects",
        loaded.resources.len()
    );
}
