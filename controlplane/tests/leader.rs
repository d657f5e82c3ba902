//! Two meshd replicas in Kubernetes mode against one fake API server: they elect one
//! leader on the Lease `meshd-leader`, only the leader writes to the cluster (the CA
//! Secret, the webhook caBundle, the root ConfigMaps), a leader that stops gracefully
//! hands over within a bound, and a leader whose Lease is taken steps down and takes it
//! back only once it has expired. Each replica talks to the fake with its own bearer
//! token, so the fake's request log says who wrote what. No live cluster is involved.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/support/fake_api.rs"]
mod fake_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use k8s_openapi::api::coordination::v1::Lease;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use mesh_controlplane::ca::CaOptions;
use mesh_controlplane::kube_source::KubeClient;
use mesh_controlplane::leader::{Elector, LeaderOptions};
use mesh_controlplane::{MeshTranslator, Meshd, Options};
use serde_json::{Value as J, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/istio-system/leases/meshd-leader";
const INJECTOR: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector";
const VALIDATOR: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-istio-system";
const SHOP_ROOT: &str = "/api/v1/namespaces/shop/configmaps/istio-ca-root-cert";
const SECRETS: &str = "/api/v1/namespaces/istio-system/secrets";
/// Short enough for a test: renewed every second, expired after three.
const LEASE_DURATION: Duration = Duration::from_secs(3);

fn hook(name: &str) -> J {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "meshd", "namespace": "istio-system", "path": "/inject", "port": 15017}},
        "sideEffects": "None",
    })
}

/// The webhook configurations with no caBundle (as applied, or re-created).
fn put_webhooks(fake: &FakeApi) {
    fake.put(
        INJECTOR,
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "istio-sidecar-injector"},
               "webhooks": [hook("object.sidecar-injector.istio.io")]}),
    );
    fake.put(
        VALIDATOR,
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
               "metadata": {"name": "istio-validator-istio-system"},
               "webhooks": [hook("rev.validation.istio.io")]}),
    );
}

/// Both caBundles, decoded, once both are set.
fn bundles(fake: &FakeApi) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for path in [INJECTOR, VALIDATOR] {
        let b = fake.object(path)?["webhooks"][0]
            .pointer("/clientConfig/caBundle")?
            .clone();
        let bytes: k8s_openapi::ByteString = serde_json::from_value(b).ok()?;
        out.push(String::from_utf8(bytes.0).ok()?);
    }
    Some(out)
}

/// A client of the fake that sends `token`.
async fn client(fake: &FakeApi, token: &str) -> Client {
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\ncurrent-context: fake\nusers:\n- name: u\n  user:\n    token: {token}\n",
        fake.addr
    );
    let kc = Kubeconfig::from_yaml(&yaml).unwrap();
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// The body of `GET path` on the meshd debug API at `addr`.
async fn debug_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut tcp =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await
            .ok()?
            .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(text[text.find("\r\n\r\n")? + 4..].to_owned())
}

/// The `meshd_leader` gauge of the meshd whose debug API is at `addr`.
async fn leader_gauge(addr: SocketAddr) -> Option<i64> {
    debug_get(addr, "/metrics")
        .await?
        .lines()
        .find_map(|l| l.strip_prefix("meshd_leader "))
        .and_then(|v| v.trim().parse().ok())
}

/// `/debug/leader` of the meshd whose debug API is at `addr`.
async fn debug_leader(addr: SocketAddr) -> J {
    serde_json::from_str(&debug_get(addr, "/debug/leader").await.unwrap()).unwrap()
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `bound`.
async fn eventually<F, Fut>(bound: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < bound, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn holder(fake: &FakeApi) -> Option<String> {
    fake.object(LEASE)?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

/// Writes (anything but GET, LIST and WATCH) to the webhook configurations or the root
/// ConfigMaps that `token`'s replica made.
fn writes_by(fake: &FakeApi, token: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.token.as_deref() == Some(token) && r.method != "GET")
        .filter(|r| {
            r.path.contains("/admissionregistration.k8s.io/")
                || r.path.ends_with("/istio-ca-root-cert")
        })
        .count()
}

struct Replica {
    name: &'static str,
    debug: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), mesh_controlplane::MeshdError>>,
}

async fn bind(fake: &FakeApi, name: &'static str, dir: &std::path::Path) -> Meshd {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut opts = Options::new(dir.join("unused"), any, any);
    opts.kube = Some(KubeClient(client(fake, name).await));
    opts.webhook_address = Some(any);
    opts.ca = Some((CaOptions::new(dir.join(name)), any));
    let mut leader = LeaderOptions::new("istio-system").with_duration(LEASE_DURATION);
    leader.identity = name.to_owned();
    opts.leader = Some(leader);
    Meshd::bind(opts, Arc::new(MeshTranslator)).await.unwrap()
}

fn run(name: &'static str, meshd: Meshd) -> Replica {
    let debug = meshd.debug_address();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(meshd.run(async {
        let _ = stop_rx.await;
    }));
    Replica {
        name,
        debug,
        stop: Some(stop),
        task,
    }
}

impl Replica {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("meshd did not stop in 15s")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[test]
fn one_replica_leads_writes_hands_over_and_steps_down_when_its_lease_is_taken() {
    let fake = FakeApi::start();
    for ns in ["istio-system", "shop"] {
        fake.put(
            &format!("/api/v1/namespaces/{ns}"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    put_webhooks(&fake);
    let dir = std::env::temp_dir().join(format!("meshd-leader-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Both start at once: one takes the Lease and stores the CA root, the other
        // waits for that Secret instead of creating its own.
        let (a, b) = tokio::join!(bind(&fake, "meshd-a", &dir), bind(&fake, "meshd-b", &dir));
        let creates: Vec<_> = fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == SECRETS)
            .collect();
        assert_eq!(creates.len(), 1, "{creates:?}");
        let first = holder(&fake).expect("nobody holds the lease");
        assert_eq!(creates[0].token.as_deref(), Some(first.as_str()));
        let root_a = std::fs::read_to_string(dir.join("meshd-a/root-cert.pem")).unwrap();
        let root_b = std::fs::read_to_string(dir.join("meshd-b/root-cert.pem")).unwrap();
        assert_eq!(root_a, root_b, "the replicas serve different roots");

        let (ra, rb) = (run("meshd-a", a), run("meshd-b", b));
        let (leader, follower) = if first == "meshd-a" { (ra, rb) } else { (rb, ra) };

        // The leader sets the caBundle and the ConfigMaps; the other writes nothing.
        eventually(Duration::from_secs(20), "bundles and ConfigMap written", || async {
            bundles(&fake).is_some() && fake.object(SHOP_ROOT).is_some()
        })
        .await;
        assert!(bundles(&fake).unwrap().iter().all(|b| *b == root_a));
        eventually(Duration::from_secs(5), "gauges 1 and 0", || async {
            leader_gauge(leader.debug).await == Some(1)
                && leader_gauge(follower.debug).await == Some(0)
        })
        .await;
        // /debug/leader on either says who leads.
        for (r, leads) in [(&leader, true), (&follower, false)] {
            let view = debug_leader(r.debug).await;
            assert_eq!(view["lease"], "istio-system/meshd-leader", "{view}");
            assert_eq!(view["identity"], r.name, "{view}");
            assert_eq!(view["leading"], leads, "{view}");
        }
        eventually(Duration::from_secs(3), "the follower sees the holder", || async {
            debug_leader(follower.debug).await["holder"] == leader.name
        })
        .await;
        // Two renewals later the follower still has not written.
        tokio::time::sleep(LEASE_DURATION * 2 / 3).await;
        assert_eq!(holder(&fake).as_deref(), Some(leader.name));
        assert!(writes_by(&fake, leader.name) >= 2);
        assert_eq!(writes_by(&fake, follower.name), 0);

        // An update with a stale resourceVersion is refused with 409, as the API server
        // does: the optimistic concurrency the election depends on.
        let api: Api<Lease> = Api::namespaced(client(&fake, "tester").await, "istio-system");
        let mut stale = api.get("meshd-leader").await.unwrap();
        stale.metadata.resource_version = Some("1".into());
        match api.replace("meshd-leader", &Default::default(), &stale).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 409, "{e:?}"),
            other => panic!("a stale update was not refused: {other:?}"),
        }

        // The leader stops gracefully: it clears the holder, and the other takes over at
        // its next try (well before the three-second duration would have run out) and
        // writes: re-created webhook configurations get their bundle back.
        let leader_name = leader.name;
        leader.stop().await;
        let stopped = Instant::now();
        let lease = fake.object(LEASE).unwrap();
        assert!(
            lease["spec"]["holderIdentity"].is_null() || lease["spec"]["holderIdentity"] == follower.name,
            "{lease}"
        );
        put_webhooks(&fake);
        eventually(Duration::from_secs(3), "the follower takes over", || async {
            holder(&fake).as_deref() == Some(follower.name)
                && leader_gauge(follower.debug).await == Some(1)
        })
        .await;
        let handover = stopped.elapsed();
        assert!(handover < LEASE_DURATION, "handover took {handover:?}");
        eventually(Duration::from_secs(10), "the new leader sets the bundles", || async {
            bundles(&fake).is_some_and(|b| b.iter().all(|x| *x == root_a))
        })
        .await;
        assert!(writes_by(&fake, follower.name) >= 2);
        let before = writes_by(&fake, leader_name);

        // Someone else takes the Lease: the leader steps down at its next renewal, and
        // takes the Lease back only after it has gone unrenewed for its duration.
        let mut lease = fake.object(LEASE).unwrap();
        lease["spec"]["holderIdentity"] = json!("thief");
        fake.put(LEASE, lease);
        let taken = Instant::now();
        eventually(Duration::from_secs(3), "the leader steps down", || async {
            leader_gauge(follower.debug).await == Some(0)
        })
        .await;
        let stepped_down = taken.elapsed();
        assert_eq!(holder(&fake).as_deref(), Some("thief"));
        // Not leading, it does not write: a ConfigMap removed now stays removed.
        fake.remove(SHOP_ROOT);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(fake.object(SHOP_ROOT).is_none(), "a replica that does not lead wrote");
        eventually(Duration::from_secs(8), "the expired lease is taken back", || async {
            holder(&fake).as_deref() == Some(follower.name)
                && leader_gauge(follower.debug).await == Some(1)
        })
        .await;
        let retaken = taken.elapsed();
        assert!(retaken >= LEASE_DURATION, "took a lease held by another after {retaken:?}");
        // Leading again, it writes every namespace's ConfigMap again.
        eventually(Duration::from_secs(5), "the ConfigMap is written again", || async {
            fake.object(SHOP_ROOT).is_some()
        })
        .await;
        assert_eq!(writes_by(&fake, leader_name), before, "a stopped replica wrote");
        eprintln!(
            "figures: handover after a graceful stop {handover:?}; step-down after the lease was taken {stepped_down:?}; expired lease taken back after {retaken:?} (lease {LEASE_DURATION:?})"
        );
        follower.stop().await;
        // The last leader releases too.
        assert!(fake.object(LEASE).unwrap()["spec"]["holderIdentity"].is_null());
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

fn electors_fake() -> FakeApi {
    let fake = FakeApi::start();
    fake.put(
        "/api/v1/namespaces/istio-system",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    );
    fake
}

fn options(identity: &str, duration: Duration) -> LeaderOptions {
    let mut o = LeaderOptions::new("istio-system").with_duration(duration);
    o.identity = identity.to_owned();
    o
}

#[test]
fn electors_started_together_never_lead_two_at_a_time() {
    let fake = electors_fake();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut electors = Vec::new();
        for name in ["r1", "r2", "r3"] {
            electors.push(Elector::start(
                client(&fake, name).await,
                options(name, LEASE_DURATION),
            ));
        }
        // Sampled for two renewal periods: never two leaders, and one from the first
        // round on.
        let start = Instant::now();
        let mut led = None;
        while start.elapsed() < Duration::from_secs(2) {
            let leading: Vec<&str> = electors
                .iter()
                .filter(|e| *e.leading().borrow())
                .map(Elector::identity)
                .collect();
            assert!(leading.len() <= 1, "two leaders: {leading:?}");
            if start.elapsed() > Duration::from_millis(500) {
                assert_eq!(leading.len(), 1, "no leader after {:?}", start.elapsed());
                let now = leading[0].to_owned();
                assert_eq!(
                    *led.get_or_insert_with(|| now.clone()),
                    now,
                    "leadership moved"
                );
                assert_eq!(holder(&fake).as_deref(), Some(now.as_str()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The three created at once: one create won, the others got 409 and followed.
        let creates = fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/leases"))
            .count();
        assert!(creates >= 1);
        let led = led.unwrap();
        let i = electors.iter().position(|e| e.identity() == led).unwrap();
        electors.remove(i).stop(Duration::from_secs(5)).await;
        let stopped = Instant::now();
        eventually(Duration::from_secs(3), "another elector leads", || async {
            electors.iter().filter(|e| *e.leading().borrow()).count() == 1
        })
        .await;
        assert!(stopped.elapsed() < LEASE_DURATION);
        assert_ne!(holder(&fake).as_deref(), Some(led.as_str()));
        for e in electors {
            e.stop(Duration::from_secs(5)).await;
        }
    });
}

#[test]
fn a_lease_left_by_a_crashed_leader_is_taken_after_its_duration() {
    let fake = electors_fake();
    // Renewed by a replica that then died without releasing it.
    fake.put(
        LEASE,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "meshd-leader", "namespace": "istio-system"},
               "spec": {"holderIdentity": "gone", "leaseDurationSeconds": 2,
                        "renewTime": "2026-01-01T00:00:00.000000Z", "leaseTransitions": 4}}),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = Elector::start(
            client(&fake, "next").await,
            options("next", Duration::from_millis(1500)),
        );
        let start = Instant::now();
        let mut leading = e.leading();
        // Its clock starts when it first sees the Lease: not before two seconds.
        tokio::time::timeout(Duration::from_secs(6), leading.wait_for(|l| *l))
            .await
            .expect("the expired lease was not taken within 6s")
            .unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(2),
            "took a live lease after {took:?}"
        );
        let lease = fake.object(LEASE).unwrap();
        assert_eq!(lease["spec"]["holderIdentity"], "next");
        assert_eq!(lease["spec"]["leaseTransitions"], 5);
        // 1.5 s, rounded up: the others wait at least as long as it may lead unrenewed.
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
        e.stop(Duration::from_secs(5)).await;
        assert!(fake.object(LEASE).unwrap()["spec"]["holderIdentity"].is_null());
        eprintln!("figures: a crashed leader's 2 s lease taken over after {took:?}");
    });
}
