//! meshd with real Envoy over ADS: every type ACKed, a config change reaching every Envoy
//! (ACKed with the new version) within a second, and a NACK recorded with Envoy's detail.
//!
//! Uses the hand-built test translation (tests/common) until mesh-core's is merged. Envoy
//! is found through `MESH_ENVOY_BIN` or `PATH`; without it this skips loudly, unless `CI` is
//! set, where it fails.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

async fn entry_for(debug: SocketAddr, node: &str) -> Option<Value> {
    let v = get_json(debug, "/debug/syncz").await;
    v.as_array()?.iter().find(|e| e["proxy"] == node).cloned()
}

fn node(ip: &str, name: &str) -> String {
    format!("sidecar~{ip}~{name}.default~default.svc.cluster.local")
}

async fn admin(envoy: &Envoy, path: &str) -> String {
    let (status, body) = http_get(envoy.admin, path).await;
    assert_eq!(status, 200, "envoy admin {path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_ads() {
    let Some(bin) = envoy_bin() else { return };
    let dir = TempDir::new("envoy");
    dir.write(
        "catalog.yaml",
        &service_entry("catalog", "catalog.shop", 7070, &["127.0.0.10"]),
    );
    let meshd = start_meshd(dir.path(), Arc::new(TestTranslator)).await;
    let proxies = [("127.0.0.2", "web"), ("127.0.0.3", "api")];
    let mut envoys = Vec::new();
    for (ip, name) in proxies {
        envoys.push(start_envoy(&bin, &envoy_bootstrap(meshd.xds, "default", name, ip)).await);
    }

    // (b) Every type reaches every Envoy and is ACKed.
    for (ip, name) in proxies {
        let id = node(ip, name);
        let e = eventually(&format!("{id} synced"), Duration::from_secs(30), || async {
            entry_for(meshd.debug, &id).await.filter(all_synced)
        })
        .await;
        for t in ["cds", "eds", "lds", "rds"] {
            assert_eq!(e["types"][t]["versionAcked"], "1", "{t}: {e}");
            assert!(e["types"][t]["lastNack"].is_null(), "{t}: {e}");
        }
        assert_eq!(
            e["types"]["eds"]["subscribed"],
            serde_json::json!(["outbound|7070||catalog.shop"])
        );
        assert_eq!(e["types"]["rds"]["subscribed"], serde_json::json!(["7070"]));
    }
    for envoy in &envoys {
        let clusters = admin(envoy, "/clusters").await;
        assert!(
            clusters.contains("outbound|7070||catalog.shop::127.0.0.10:7070"),
            "{clusters}"
        );
        let listeners = admin(envoy, "/listeners").await;
        assert!(listeners.contains("0.0.0.0_7070"), "{listeners}");
    }

    // (c) A change in the directory reaches every Envoy, ACKed with the new version,
    // within a second: a new service (new cluster, new endpoints, a new virtual host).
    let t0 = Instant::now();
    dir.write(
        "orders.yaml",
        &service_entry("orders", "orders.shop", 7070, &["127.0.0.11"]),
    );
    for (ip, name) in proxies {
        let id = node(ip, name);
        eventually(
            &format!("{id} acked v2"),
            Duration::from_secs(5),
            || async {
                entry_for(meshd.debug, &id).await.filter(|e| {
                    all_synced(e)
                        && e["types"]["cds"]["versionAcked"] == "2"
                        && e["types"]["rds"]["versionAcked"] == "2"
                        && e["types"]["eds"]["subscribed"]
                            .as_array()
                            .is_some_and(|s| s.len() == 2)
                })
            },
        )
        .await;
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "config change took {took:?} to be ACKed by every Envoy"
    );
    eprintln!("new service ACKed by every Envoy {took:?} after the write");
    for envoy in &envoys {
        let clusters = admin(envoy, "/clusters").await;
        assert!(
            clusters.contains("outbound|7070||orders.shop::127.0.0.11:7070"),
            "{clusters}"
        );
    }

    // A cluster modified in place must finish warming (it needs its endpoints again).
    let t0 = Instant::now();
    dir.write(
        "catalog.yaml",
        &service_entry("catalog", "catalog.shop", 7070, &["127.0.0.10"])
            .replace("MESH_INTERNAL", "MESH_EXTERNAL"),
    );
    for envoy in &envoys {
        eventually(
            "modified cluster active",
            Duration::from_secs(5),
            || async {
                let dump = admin(envoy, "/config_dump?resource=dynamic_active_clusters").await;
                let v: Value = serde_json::from_str(&dump).unwrap();
                let catalog = v["configs"]
                    .as_array()?
                    .iter()
                    .find(|c| c["cluster"]["name"] == "outbound|7070||catalog.shop")?;
                (catalog["cluster"]["connect_timeout"] == "2s").then_some(())
            },
        )
        .await;
        let warming = admin(envoy, "/config_dump?resource=dynamic_warming_clusters").await;
        assert!(
            !warming.contains("catalog.shop"),
            "still warming: {warming}"
        );
        let clusters = admin(envoy, "/clusters").await;
        assert!(
            clusters.contains("outbound|7070||catalog.shop::127.0.0.10:7070"),
            "{clusters}"
        );
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "modified cluster took {took:?} to become active"
    );

    // (d) Something Envoy rejects: the NACK is recorded with Envoy's detail, the rest keeps
    // being served, and fixing the config clears the state.
    dir.write(
        "nack.yaml",
        &service_entry("nack", "nack.shop", 7071, &["127.0.0.12"]),
    );
    for (ip, name) in proxies {
        let id = node(ip, name);
        let e = eventually(&format!("{id} NACK"), Duration::from_secs(5), || async {
            entry_for(meshd.debug, &id).await.filter(|e| {
                // The rest keeps being served and ACKed.
                e["types"]["lds"]["state"] == "NACKED"
                    && ["cds", "eds", "rds"]
                        .iter()
                        .all(|t| e["types"][*t]["state"] == "SYNCED")
            })
        })
        .await;
        let nack = &e["types"]["lds"]["lastNack"];
        let detail = nack["detail"].as_str().unwrap();
        assert!(detail.contains("not-an-ip"), "NACK detail: {detail}");
        assert_eq!(nack["version"], e["types"]["lds"]["versionSent"]);
    }
    let (_, metrics) = http_get(meshd.debug, "/metrics").await;
    assert!(
        metrics.contains("meshd_xds_nacks_total{type=\"lds\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshd_xds_connected_proxies 2"),
        "{metrics}"
    );
    std::fs::remove_file(dir.path().join("nack.yaml")).unwrap();
    for (ip, name) in proxies {
        let id = node(ip, name);
        let e = eventually(
            &format!("{id} recovered"),
            Duration::from_secs(5),
            || async { entry_for(meshd.debug, &id).await.filter(all_synced) },
        )
        .await;
        // The last NACK stays on record.
        assert!(!e["types"]["lds"]["lastNack"].is_null(), "{e}");
    }

    // Graceful shutdown with Envoys connected: streams close well within the grace period.
    let t0 = Instant::now();
    let xds_address = meshd.xds;
    meshd.stop().await.unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");

    // A new meshd on the same address: the Envoys reconnect (carrying the old versions and
    // nonces) and sync again.
    let meshd = start_meshd_at(dir.path(), Arc::new(TestTranslator), xds_address).await;
    for (ip, name) in proxies {
        let id = node(ip, name);
        eventually(
            &format!("{id} synced again"),
            Duration::from_secs(30),
            || async { entry_for(meshd.debug, &id).await.filter(all_synced) },
        )
        .await;
    }
    meshd.stop().await.unwrap();
    drop(envoys);
}
