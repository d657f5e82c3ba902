//! `meshctl manifest generate`: the checked-in manifests in testdata/manifests/ are what the
//! profiles render (regenerate with `UPDATE_GOLDEN=1 cargo test -p meshctl --test manifest`
//! and review the diff), every document loads with mesh-core's own loader, and bad `--set`
//! values fail with a usage error that names the key.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use meshctl::manifest::{self, Profile, Values};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/manifests")
}

#[test]
fn profiles_match_the_checked_in_manifests() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for profile in [Profile::Minimal, Profile::Default, Profile::Demo] {
        let text = manifest::generate(&Values::for_profile(profile));
        let path = golden_dir().join(format!("{profile}.yaml"));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if want != text {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale manifests {stale:?}; regenerate with UPDATE_GOLDEN=1 cargo test -p meshctl --test manifest"
    );
}

#[test]
fn every_document_loads_with_our_loader() {
    for profile in [Profile::Minimal, Profile::Default, Profile::Demo] {
        let values = Values::for_profile(profile);
        let objects: Vec<_> = manifest::render(&values)
            .into_iter()
            .flat_map(|c| c.objects)
            .collect();
        let text = manifest::generate(&values);
        let loaded = mesh_core::source::load_bytes("manifest.yaml", text.as_bytes());
        assert!(loaded.errors.is_empty(), "{profile}: {:?}", loaded.errors);
        assert_eq!(loaded.resources.len(), objects.len(), "{profile}");
        for (r, o) in loaded.resources.iter().zip(&objects) {
            assert_eq!(r.kind, o["kind"].as_str().unwrap());
            assert_eq!(r.name, o["metadata"]["name"].as_str().unwrap());
            assert_eq!(*r.json, *o, "{} {} round-trips", r.kind, r.name);
        }
    }
}

#[test]
fn profiles_hold_what_they_promise() {
    let kinds = |p: Profile| -> Vec<(String, String)> {
        manifest::render(&Values::for_profile(p))
            .into_iter()
            .flat_map(|c| c.objects)
            .map(|o| {
                (
                    o["kind"].as_str().unwrap().to_owned(),
                    o["metadata"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let has = |objs: &[(String, String)], kind: &str, name: &str| {
        objs.iter().any(|(k, n)| k == kind && n == name)
    };
    let minimal = kinds(Profile::Minimal);
    let demo = kinds(Profile::Demo);
    for objs in [&minimal, &demo] {
        // CRDs come first: everything after may be an Istio kind or need one.
        assert_eq!(objs[0].0, "CustomResourceDefinition");
        assert!(has(
            objs,
            "CustomResourceDefinition",
            "virtualservices.networking.istio.io"
        ));
        assert!(has(
            objs,
            "CustomResourceDefinition",
            "authorizationpolicies.security.istio.io"
        ));
        assert!(has(objs, "Namespace", "istio-system"));
        assert!(has(objs, "Deployment", "meshd"));
        assert!(has(objs, "Service", "meshd"));
        assert!(has(
            objs,
            "MutatingWebhookConfiguration",
            "istio-sidecar-injector"
        ));
        assert!(has(
            objs,
            "ValidatingWebhookConfiguration",
            "istio-validator-istio-system"
        ));
    }
    assert!(!has(&minimal, "Deployment", "istio-ingressgateway"));
    assert!(has(&demo, "Deployment", "istio-ingressgateway"));
    assert!(has(&demo, "Service", "istio-egressgateway"));

    let meshd_ports: Vec<u64> = manifest::render(&Values::for_profile(Profile::Minimal))
        .into_iter()
        .flat_map(|c| c.objects)
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "meshd")
        .unwrap()["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(meshd_ports, [15010, 15012, 15014, 15017]);
}

#[test]
fn set_changes_the_output_and_bad_keys_are_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args([
            "manifest",
            "generate",
            "--profile",
            "minimal",
            "--set",
            "namespace=mesh",
            "--set",
            "webhooks.injection.enabled=false",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("namespace: mesh\n"));
    assert!(!text.contains("istio-system"));
    assert!(!text.contains("MutatingWebhookConfiguration"));
    assert!(text.contains("name: istio-validator-mesh\n"));

    // meshd's log level reaches its environment; the injection webhooks' failure policy is
    // Istio's Fail unless set.
    let render = |sets: &[&str]| {
        let mut v = Values::for_profile(Profile::Default);
        for s in sets {
            v.set(s).unwrap();
        }
        manifest::render(&v)
            .into_iter()
            .flat_map(|c| c.objects)
            .collect::<Vec<_>>()
    };
    let find = |objs: &[serde_json::Value], kind: &str| {
        objs.iter().find(|o| o["kind"] == kind).unwrap().clone()
    };
    let objs = render(&[
        "meshd.logLevel=debug",
        "webhooks.injection.failurePolicy=Ignore",
    ]);
    let meshd = objs
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "meshd")
        .unwrap();
    let env = meshd
        .pointer("/spec/template/spec/containers/0/env")
        .unwrap();
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "RUST_LOG" && e["value"] == "debug")
    );
    let hooks = find(&objs, "MutatingWebhookConfiguration");
    assert!(
        hooks["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["failurePolicy"] == "Ignore")
    );
    let hooks = find(&render(&[]), "MutatingWebhookConfiguration");
    assert!(
        hooks["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["failurePolicy"] == "Fail")
    );

    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["manifest", "generate", "--set", "meshd.replica=2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--set meshd.replica: unknown key"), "{err}");
    assert!(err.contains("meshd.replicas"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["manifest", "generate", "--set", "gateways.replicas=-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--set gateways.replicas=-1: expected a whole number")
    );
}

#[test]
fn output_dir_holds_the_same_objects_one_file_per_component() {
    let dir = std::env::temp_dir().join(format!("meshctl-manifest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["manifest", "generate", "--profile", "demo", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "01-crds.yaml",
            "02-base.yaml",
            "03-meshd.yaml",
            "04-webhooks.yaml",
            "05-gateways.yaml"
        ]
    );
    let loaded = mesh_core::source::load_paths(std::slice::from_ref(&dir), false);
    let stream = manifest::generate(&Values::for_profile(Profile::Demo));
    let from_stream = mesh_core::source::load_bytes("all.yaml", stream.as_bytes());
    assert!(loaded.errors.is_empty());
    let key = |r: &mesh_core::resource::Resource| (r.kind.clone(), r.name.clone());
    assert_eq!(
        loaded.resources.iter().map(key).collect::<Vec<_>>(),
        from_stream.resources.iter().map(key).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn meshd_may_hold_its_leader_lease_under_its_pod_name() {
    let objects: Vec<serde_json::Value> = manifest::render(&Values::for_profile(Profile::Default))
        .into_iter()
        .flat_map(|c| c.objects)
        .collect();
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == "meshd")
            .unwrap_or_else(|| panic!("no {kind} meshd"))
    };
    // meshd's Role in its own namespace lets it read, create and renew the Lease.
    let role = find("Role");
    assert_eq!(role["metadata"]["namespace"], "istio-system");
    let lease_rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["apiGroups"][0] == "coordination.k8s.io")
        .expect("no rule for coordination.k8s.io");
    assert_eq!(lease_rule["resources"], serde_json::json!(["leases"]));
    for verb in ["get", "create", "update"] {
        assert!(
            lease_rule["verbs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == verb),
            "{verb} missing: {lease_rule}"
        );
    }
    let binding = find("RoleBinding");
    assert_eq!(binding["roleRef"]["name"], "meshd");
    assert_eq!(binding["subjects"][0]["name"], "meshd");
    assert_eq!(binding["subjects"][0]["namespace"], "istio-system");
    // The holder identity is the pod's name, from the downward API.
    let env = find("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "{env}"
    );
}
