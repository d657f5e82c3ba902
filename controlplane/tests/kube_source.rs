//! meshd's Kubernetes source against a fake API server (test code, shared with meshctl's
//! cluster tests): the reflectors list what the server holds, the first build serves it,
//! and later WATCH events (a new Service, a deleted VirtualService) reach a rebuilt
//! snapshot through the debounced publisher. No live cluster is involved.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/support/fake_api.rs"]
mod fake_api;

use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use kube::{Client, Config};
use mesh_controlplane::MeshTranslator;
use mesh_controlplane::kube_source::{KubeOptions, KubeSource};
use mesh_controlplane::source::ConfigState;
use serde_json::json;
use tokio::sync::watch;

fn service(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 9080, "targetPort": 9080}]},
    })
}

fn has_service(state: &ConfigState, host: &str) -> bool {
    state
        .snapshot
        .registry
        .services
        .iter()
        .any(|s| s.hostname == host)
}

/// Waits (bounded) for a published config that satisfies `pred`.
async fn wait_config(
    rx: &mut watch::Receiver<Arc<ConfigState>>,
    what: &str,
    pred: impl Fn(&ConfigState) -> bool,
) -> Arc<ConfigState> {
    tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|c| pred(c)))
        .await
        .unwrap_or_else(|_| panic!("no config with {what} within 15 s"))
        .unwrap()
        .clone()
}

#[test]
fn reflectors_list_then_follow_watch_events() {
    let fake = FakeApi::start();
    fake.put(
        "/api/v1/namespaces/default",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
    );
    fake.put(
        "/api/v1/namespaces/default/services/reviews",
        service("reviews"),
    );
    fake.put(
        "/api/v1/namespaces/default/pods/reviews-v1-abc",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "reviews-v1-abc", "namespace": "default", "labels": {"app": "reviews", "version": "v1"}},
            "spec": {"containers": [{"name": "app", "image": "reviews", "ports": [{"containerPort": 9080}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5"},
        }),
    );
    fake.put(
        "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews",
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
        }),
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::try_from(Config::new(
            format!("http://{}", fake.addr).parse().unwrap(),
        ))
        .unwrap();
        let opts = KubeOptions {
            retry: Duration::from_millis(200),
            sync_timeout: Duration::from_secs(15),
            ..KubeOptions::default()
        };
        let source = KubeSource::start(client, opts);
        assert!(source.wait_synced().await, "every kind listed");
        let first = source.build(&MeshTranslator, 1).unwrap();
        assert!(has_service(&first, "reviews.default.svc.cluster.local"));
        let reviews = first
            .snapshot
            .registry
            .services
            .iter()
            .find(|s| s.hostname == "reviews.default.svc.cluster.local")
            .unwrap();
        assert_eq!(
            reviews
                .endpoints
                .iter()
                .map(|e| e.address.as_str())
                .collect::<Vec<_>>(),
            ["10.0.0.5"]
        );
        assert_eq!(first.snapshot.virtual_services.len(), 1);
        assert!(
            first.rejected.is_empty(),
            "nothing refused: {:?}",
            first.rejected
        );
        assert!(
            first
                .served
                .iter()
                .any(|s| s.origin.starts_with("k8s/VirtualService/default/reviews")),
            "{:?}",
            first.served
        );

        let (tx, mut rx) = watch::channel(Arc::new(first));
        let (stop_tx, stop_rx) = watch::channel(false);
        let publisher = tokio::spawn(source.run(Arc::new(MeshTranslator), tx, stop_rx));

        // A new Service arrives by WATCH, not by a new list.
        let lists_before = fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/services") && !r.query.contains_key("watch"))
            .count();
        fake.put(
            "/api/v1/namespaces/default/services/ratings",
            service("ratings"),
        );
        let second = wait_config(&mut rx, "ratings", |c| {
            has_service(c, "ratings.default.svc.cluster.local")
        })
        .await;
        assert!(second.version >= 2);
        let lists_after = fake
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/services") && !r.query.contains_key("watch"))
            .count();
        assert_eq!(
            lists_before, lists_after,
            "followed by watch, not re-listed"
        );

        // The server expires the Services watch (410): the reflector lists again and
        // still sees every change.
        fake.with(|s| s.expire_watches = 1);
        let lists_before = fake
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/services" && !r.query.contains_key("watch"))
            .count();
        fake.put(
            "/api/v1/namespaces/default/services/details",
            service("details"),
        );
        wait_config(&mut rx, "details", |c| {
            has_service(c, "details.default.svc.cluster.local")
        })
        .await;
        let lists_after = fake
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/services" && !r.query.contains_key("watch"))
            .count();
        assert_eq!(lists_after, lists_before + 1, "re-listed once after 410");
        assert_eq!(fake.with(|s| s.expire_watches), 0);

        fake.remove("/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews");
        let third = wait_config(&mut rx, "no VirtualService", |c| {
            c.snapshot.virtual_services.is_empty()
        })
        .await;
        assert!(third.version > second.version);
        assert!(has_service(&third, "ratings.default.svc.cluster.local"));

        stop_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), publisher)
            .await
            .expect("publisher stops")
            .unwrap();
    });
    drop(rt);

    // Watches resumed from the listed version and asked for bookmarks.
    let watches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.query
                .get("watch")
                .is_some_and(|w| w == "true" || w == "1")
        })
        .collect();
    assert!(!watches.is_empty());
    assert!(watches.iter().all(|w| {
        w.query.get("allowWatchBookmarks").map(String::as_str) == Some("true")
            && w.query
                .get("resourceVersion")
                .is_some_and(|v| !v.is_empty())
    }));
}

struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: meshd\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn meshd_kube_serves_the_cluster_and_follows_it() {
    use std::io::BufRead;
    let fake = FakeApi::start();
    // meshd's own namespace holds its leader Lease and the CA Secret.
    for ns in ["default", "istio-system"] {
        fake.put(
            &format!("/api/v1/namespaces/{ns}"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    fake.put(
        "/api/v1/namespaces/default/services/reviews",
        service("reviews"),
    );
    let dir = std::env::temp_dir().join(format!("meshd-kube-{}", std::process::id()));
    let kubeconfig = fake.write_kubeconfig(&dir);
    // meshd has no --context: make the fake the current context.
    let text = std::fs::read_to_string(&kubeconfig)
        .unwrap()
        .replace("current-context: closed", "current-context: fake");
    std::fs::write(&kubeconfig, text).unwrap();

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_meshd"))
        .args([
            "--kube",
            "--xds-address",
            "127.0.0.1:0",
            "--debug-address",
            "127.0.0.1:0",
            // Loopback in tests (the --kube default is 0.0.0.0:15017).
            "--webhook-address",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = std::time::Instant::now();
    let debug: std::net::SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30).saturating_sub(start.elapsed()))
            .expect("meshd said nothing in 30s");
        if line.contains("meshd serving") {
            assert!(line.contains("config.source=kubernetes"), "{line}");
            assert!(!line.contains("0.0.0.0"), "{line}");
            let rest = &line[line.find("debug.address=").unwrap() + "debug.address=".len()..];
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    let registry = http_get(debug, "/debug/registryz");
    assert!(
        registry.contains("reviews.default.svc.cluster.local"),
        "{registry}"
    );
    assert!(!registry.contains("ratings.default.svc.cluster.local"));

    fake.put(
        "/api/v1/namespaces/default/services/ratings",
        service("ratings"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let registry = http_get(debug, "/debug/registryz");
        if registry.contains("ratings.default.svc.cluster.local") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "meshd did not pick up the watched Service in 15 s: {registry}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}
