//! Every scenario under `testdata/scenarios/` is sound before any process starts: its
//! `scenario.yaml` parses and is self-consistent, it agrees with its `config/` (every proxied
//! workload is a WorkloadEntry at the same address), no two scenarios share an address, and
//! its config passes `meshctl validate` and `meshctl analyze` with no message at all.

// Test helpers may stop the test with expect/panic; that is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::process::Command;

use mesh_e2e::process::workspace_binary;
use mesh_e2e::scenario::{ConfigIndex, load_all, scenarios_root, shared_addresses};

/// What the issue asks the scenarios to cover, by directory name.
const REQUIRED: &[&str] = &[
    "header-routing",
    "weighted-split",
    "retry-on-503",
    "timeout",
    "fault-delay",
    "fault-abort",
    "mirroring",
    "redirect",
    "rewrite",
    "registry-only",
    "service-entry-external",
    "gateway-ingress",
    "sidecar-scoping",
    "direct-response",
    "prefix-and-default-route",
];

#[test]
fn every_scenario_parses_and_is_consistent_with_its_config() {
    let all = load_all(&scenarios_root()).unwrap();
    let names: BTreeSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
    for r in REQUIRED {
        assert!(names.contains(r), "missing scenario {r}; have {names:?}");
    }
    assert!(all.len() >= 15, "{} scenarios", all.len());
    let mut problems = Vec::new();
    for s in &all {
        for p in s.problems() {
            problems.push(format!("{}: {p}", s.name));
        }
        match ConfigIndex::load(&s.config_dir) {
            Ok(index) => {
                for m in index.mismatches(&s.scenario) {
                    problems.push(format!("{}: {m}", s.name));
                }
            }
            Err(e) => problems.push(format!("{}: {e:#}", s.name)),
        }
    }
    problems.extend(shared_addresses(&all));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_scenario_config_passes_meshctl_validate_and_analyze() {
    let meshctl = workspace_binary("meshctl").unwrap();
    let all = load_all(&scenarios_root()).unwrap();
    let mut failures = Vec::new();
    for s in &all {
        let dir = s.config_dir.display().to_string();
        let v = Command::new(&meshctl)
            .args(["validate", "-f", &dir])
            .output()
            .unwrap();
        if !v.status.success() {
            failures.push(format!(
                "{}: meshctl validate -f {dir} exited {}:\n{}{}",
                s.name,
                v.status,
                String::from_utf8_lossy(&v.stdout),
                String::from_utf8_lossy(&v.stderr)
            ));
        }
        let a = Command::new(&meshctl)
            .args(["analyze", "--failure-threshold", "Info", &dir])
            .output()
            .unwrap();
        if !a.status.success() || !a.stdout.is_empty() {
            failures.push(format!(
                "{}: meshctl analyze {dir} exited {}:\n{}{}",
                s.name,
                a.status,
                String::from_utf8_lossy(&a.stdout),
                String::from_utf8_lossy(&a.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
