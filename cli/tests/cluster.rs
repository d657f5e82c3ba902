//! `meshctl install`, `uninstall` and `check` against a fake API server (tests/support/
//! fake_api.rs) reached through a kubeconfig: server-side apply in dependency order, the
//! waits, dry runs, deletes, SelfSubjectAccessReviews and meshd's syncz through the
//! service proxy. No live cluster is involved.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as J, json};
use support::fake_api::FakeApi;

struct Env {
    fake: FakeApi,
    kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env(name: &str) -> Env {
    let fake = FakeApi::start();
    let dir = std::env::temp_dir().join(format!("meshctl-cluster-{name}-{}", std::process::id()));
    let kubeconfig = fake.write_kubeconfig(&dir);
    Env {
        fake,
        kubeconfig,
        dir,
    }
}

impl Env {
    fn meshctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "fake"])
            .env_remove("KUBECONFIG");
        // Bounded: every wait meshctl does has its own --timeout, and the fake answers at once.
        cmd.output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn install_applies_crds_first_waits_and_uses_server_side_apply() {
    let e = env("install");
    let out = e.meshctl(&["install", "--profile", "minimal", "--timeout", "20s"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let requests = e.fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.token.as_deref() == Some("fake-token"))
    );
    let patches: Vec<_> = requests.iter().filter(|r| r.method == "PATCH").collect();
    let expected = meshctl::manifest::render(&meshctl::manifest::Values::for_profile(
        meshctl::manifest::Profile::Minimal,
    ))
    .iter()
    .map(|c| c.objects.len())
    .sum::<usize>();
    assert_eq!(patches.len(), expected);
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{}", p.path);
        assert_eq!(
            p.query.get("fieldManager").map(String::as_str),
            Some("meshctl")
        );
        assert_eq!(p.query.get("force").map(String::as_str), Some("true"));
        assert!(!p.query.contains_key("dryRun"));
    }
    // CRDs first, and each read back Established before anything else is applied.
    let first_other = requests
        .iter()
        .position(|r| r.method == "PATCH" && !r.path.contains("customresourcedefinitions"))
        .unwrap();
    let crd_patches = requests[..first_other]
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(crd_patches, mesh_core::kinds::ISTIO_KINDS.len());
    let crd_gets = requests[..first_other]
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("customresourcedefinitions/"))
        .count();
    assert!(
        crd_gets >= 2 * crd_patches,
        "waited for Established: {crd_gets} reads"
    );
    // The namespace before anything in it (the fake refuses objects in a missing namespace).
    assert!(
        e.fake
            .object("/apis/apps/v1/namespaces/istio-system/deployments/meshd")
            .is_some()
    );
    assert!(
        e.fake
            .object("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualservices.networking.istio.io")
            .is_some()
    );
    assert!(
        e.fake
            .object("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector")
            .is_some()
    );
    assert!(
        stderr.contains("✔ CustomResourceDefinition virtualservices.networking.istio.io applied"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CustomResourceDefinitions established"),
        "{stderr}"
    );
    assert!(
        stderr.contains("✔ Deployment istio-system/meshd available (1 ready)"),
        "{stderr}"
    );

    // Installing again converges (apply is idempotent) and keeps creation time.
    let out = e.meshctl(&["install", "--profile", "minimal", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn install_fails_clearly_when_meshd_never_becomes_available() {
    let e = env("unavailable");
    e.fake.with(|s| s.deployments_available = false);
    let started = std::time::Instant::now();
    let out = e.meshctl(&["install", "--profile", "minimal", "--timeout", "2s"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Deployment istio-system/meshd not available after 2s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Deployment does not have minimum availability."),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn install_dry_run_changes_nothing() {
    let e = env("dryrun");
    let out = e.meshctl(&["install", "--dry-run"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(e.fake.with(|s| s.objects.is_empty()));
    let patches: Vec<_> = e
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert!(!patches.is_empty());
    assert!(
        patches
            .iter()
            .all(|p| p.query.get("dryRun").map(String::as_str) == Some("All"))
    );
    // The namespace does not exist, so objects in it cannot be dry-run yet; meshctl says so.
    assert!(
        stderr.contains("not sent: namespace istio-system does not exist yet"),
        "{stderr}"
    );
    assert!(stderr.contains("dry run: nothing was changed"), "{stderr}");

    // With the namespace there, every object goes to the server.
    e.fake.put(
        "/api/v1/namespaces/istio-system",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}),
    );
    let before = e.fake.requests().len();
    let out = e.meshctl(&["install", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sent = e.fake.requests()[before..]
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.path
                    .contains("/namespaces/istio-system/deployments/meshd")
        })
        .count();
    assert_eq!(sent, 1);
    assert_eq!(e.fake.with(|s| s.objects.len()), 1);
}

#[test]
fn kubeconfig_context_is_obeyed() {
    let e = env("context");
    // The current context points at a closed port: without --context, meshctl fails there.
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["check", "--pre-install", "--kubeconfig"])
        .arg(&e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(e.fake.requests().is_empty());
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    // KUBECONFIG is read when --kubeconfig is not given.
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["check", "--pre-install", "--context", "fake"])
        .env("KUBECONFIG", &e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!e.fake.requests().is_empty());
}

#[test]
fn uninstall_keeps_crds_unless_purged() {
    let e = env("uninstall");
    let out = e.meshctl(&["install", "--profile", "demo", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let installed = e.fake.with(|s| s.objects.len());

    let out = e.meshctl(&["uninstall"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let left: Vec<String> = e.fake.with(|s| s.objects.keys().cloned().collect());
    let crds = mesh_core::kinds::ISTIO_KINDS.len();
    assert_eq!(left.len(), crds + 1, "{left:?}");
    assert!(
        left.iter()
            .all(|k| k.contains("customresourcedefinitions")
                || k == "/api/v1/namespaces/istio-system")
    );
    assert!(
        stderr.contains(&format!(
            "uninstalled: {} objects deleted",
            installed - crds - 1
        )),
        "{stderr}"
    );
    assert!(
        e.fake
            .requests()
            .iter()
            .all(|r| r.method != "PATCH" || r.query.contains_key("fieldManager"))
    );

    let out = e.meshctl(&["uninstall", "--purge"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(e.fake.with(|s| s.objects.is_empty()));
    // Nothing left: a second purge finds nothing and still succeeds.
    let out = e.meshctl(&["uninstall", "--purge"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("uninstalled: 0 objects deleted"));
}

#[test]
fn pre_install_check_reports_version_and_permissions() {
    let e = env("precheck");
    let out = e.meshctl(&["check", "--pre-install"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("✔ kubernetes version: v1.33.0"), "{stdout}");
    assert!(
        stdout
            .contains("✔ permission: can create customresourcedefinitions (apiextensions.k8s.io)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✔ permission: can create deployments (apps) in namespace istio-system"),
        "{stdout}"
    );
    let reviews = e
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/selfsubjectaccessreviews"))
        .count();
    assert!(reviews >= 10, "{reviews}");

    e.fake.with(|s| {
        s.denied.insert("clusterroles".into());
        s.minor = "26".into();
    });
    let out = e.meshctl(&["check", "--pre-install", "-o", "json"]);
    assert_eq!(out.status.code(), Some(79));
    let findings: Vec<J> = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f["ok"] == false)
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        failed,
        [
            "v1.26.0 is older than 1.28, the oldest version supported",
            "cannot create clusterroles (rbac.authorization.k8s.io) (fake: clusterroles denied)",
        ]
    );
}

fn syncz_entry(pod: &str, cds_state: &str) -> J {
    json!({
        "proxy": format!("sidecar~10.0.0.7~{pod}.default~default.svc.cluster.local"),
        "namespace": "default",
        "types": {
            "cds": {"state": cds_state, "nonceSent": "n1"},
            "lds": {"state": "SYNCED", "nonceSent": "n1", "nonceAcked": "n1"},
        },
    })
}

/// A stand-in for meshd's debug API behind the port-forward: answers every request with
/// the JSON in the returned cell (one request per connection). The thread ends with the
/// test process.
fn syncz_server() -> (std::net::SocketAddr, Arc<Mutex<J>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(Mutex::new(json!([])));
    let cell = body.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let json = cell.lock().unwrap().to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                json.len()
            );
        }
    });
    (addr, body)
}

/// Requests the fake API server saw whose path contains `part`.
fn requests_to(e: &Env, part: &str) -> usize {
    e.fake
        .requests()
        .iter()
        .filter(|r| r.path.contains(part))
        .count()
}

#[test]
fn post_install_check_covers_meshd_webhooks_and_proxies() {
    let e = env("check");
    // Before install: meshd missing is a finding, not a crash.
    let out = e.meshctl(&["check"]);
    assert_eq!(out.status.code(), Some(79));
    assert!(
        text(&out.stdout).contains("✘ meshd: Deployment istio-system/meshd not found"),
        "{}",
        text(&out.stdout)
    );

    let out = e.meshctl(&["install", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // meshd's Ready pod behind its Service, its debug port forwarded to a local stand-in;
    // the service proxy's syncz says something else, so the finding shows which was read.
    let (debug, syncz) = syncz_server();
    *syncz.lock().unwrap() = json!([syncz_entry("reviews-v1-abc", "SYNCED")]);
    e.fake.put(
        "/api/v1/namespaces/istio-system/pods/meshd-7f9c-aaaaa",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "meshd-7f9c-aaaaa", "namespace": "istio-system",
                            "labels": {"app": "meshd", "istio": "pilot"}},
               "spec": {"containers": [{"name": "discovery", "image": "meshd",
                        "ports": [{"name": "http-monitoring", "containerPort": 15014}]}]},
               "status": {"phase": "Running",
                          "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    e.fake.with(|s| {
        s.forwards
            .insert("istio-system/meshd-7f9c-aaaaa:15014".into(), debug);
        s.syncz = json!([
            syncz_entry("a-v1-a", "SYNCED"),
            syncz_entry("b-v1-b", "SYNCED")
        ]);
    });

    // The webhook configurations have no CA bundle until meshd sets it.
    let out = e.meshctl(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}");
    assert!(
        stdout.contains("✔ meshd: Deployment istio-system/meshd 1/1 replicas available"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✔ crds: 14 CustomResourceDefinitions established"),
        "{stdout}"
    );
    assert!(stdout.contains("✘ injection webhook: MutatingWebhookConfiguration istio-sidecar-injector: no CA bundle on rev.namespace.sidecar-injector.istio.io"), "{stdout}");
    assert!(
        stdout.contains("✔ proxies: 1 proxies connected, all in sync"),
        "{stdout}"
    );
    assert!(requests_to(&e, "/pods/meshd-7f9c-aaaaa/portforward") >= 1);
    assert_eq!(requests_to(&e, "/services/meshd:15014/proxy"), 0);

    for path in [
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/istio-sidecar-injector",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istio-validator-istio-system",
    ] {
        let mut obj = e.fake.object(path).unwrap();
        for hook in obj["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"]["caBundle"] = json!("LS0tLS1CRUdJTi0tLS0t");
        }
        e.fake.put(path, obj);
    }
    // No root stored yet; then meshd's root in istio-ca-secret, and its ConfigMap.
    let out = e.meshctl(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}");
    assert!(
        stdout.contains("✘ ca root: no Secret cacerts or istio-ca-secret in istio-system"),
        "{stdout}"
    );
    let root = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let b64 = serde_json::to_value(k8s_openapi::ByteString(root.as_bytes().to_vec())).unwrap();
    e.fake.put(
        "/api/v1/namespaces/istio-system/secrets/istio-ca-secret",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "istio-ca-secret", "namespace": "istio-system"},
               "data": {"ca-cert.pem": b64, "ca-key.pem": "a2V5"}}),
    );
    let out = e.meshctl(&["check"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("✘ ca root: root kept in Secret istio-system/istio-ca-secret, but ConfigMap istio-system/istio-ca-root-cert is missing"), "{stdout}");
    e.fake.put(
        "/api/v1/namespaces/istio-system/configmaps/istio-ca-root-cert",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "istio-ca-root-cert", "namespace": "istio-system"},
               "data": {"root-cert.pem": root}}),
    );
    let out = e.meshctl(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("✔ ca root: root kept in Secret istio-system/istio-ca-secret, published as ConfigMap istio-ca-root-cert"), "{stdout}");
    assert!(stdout.contains("No problems found."));

    *syncz.lock().unwrap() = json!([
        syncz_entry("reviews-v1-abc", "SYNCED"),
        syncz_entry("ratings-v1-xyz", "STALE")
    ]);
    let out = e.meshctl(&["check", "-o", "json"]);
    assert_eq!(out.status.code(), Some(79));
    let findings: Vec<J> = serde_json::from_slice(&out.stdout).unwrap();
    let proxies = findings.iter().find(|f| f["check"] == "proxies").unwrap();
    assert_eq!(proxies["ok"], false);
    assert_eq!(
        proxies["message"],
        "1 of 2 proxies out of sync: ratings-v1-xyz.default (CDS STALE)"
    );

    // --kube-transport api-proxy reads the service proxy's syncz instead.
    let out = e.meshctl(&["check", "--kube-transport", "api-proxy"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("✔ proxies: 2 proxies connected, all in sync"),
        "{stdout}"
    );
    assert!(requests_to(&e, "/services/meshd:15014/proxy") >= 1);

    // No Ready meshd pod: the finding says what could not be reached.
    e.fake
        .remove("/api/v1/namespaces/istio-system/pods/meshd-7f9c-aaaaa");
    let out = e.meshctl(&["check"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(79), "{stdout}");
    assert!(
        stdout.contains(
            "✘ proxies: reaching meshd's debug API (service istio-system/meshd port 15014)"
        ),
        "{stdout}"
    );
}

fn seed_mesh(fake: &FakeApi) {
    for ns in ["default", "shop"] {
        fake.put(
            &format!("/api/v1/namespaces/{ns}"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}}),
        );
    }
    // Routes to a host no Service defines: IST0101 in each namespace.
    for ns in ["default", "shop"] {
        fake.put(
            &format!("/apis/networking.istio.io/v1/namespaces/{ns}/virtualservices/pricing"),
            json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "pricing", "namespace": ns},
                "spec": {"hosts": ["pricing"], "http": [{"route": [{"destination": {"host": "pricing-svc"}}]}]},
            }),
        );
    }
}

#[test]
fn analyze_use_kube_reads_the_cluster_and_overlays_files() {
    let e = env("analyze");
    seed_mesh(&e.fake);
    let json_of = |out: &Output| -> Vec<J> {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|err| panic!("{err}: {}{}", text(&out.stdout), text(&out.stderr)))
    };
    let ist0101 = |msgs: &[J]| -> Vec<String> {
        msgs.iter()
            .filter(|m| m["code"] == "IST0101")
            .map(|m| m["origin"].as_str().unwrap().to_owned())
            .collect()
    };

    // The context's namespace (default) only, as istioctl reports.
    let out = e.meshctl(&["analyze", "--use-kube", "-o", "json"]);
    assert_eq!(out.status.code(), Some(79), "{}", text(&out.stderr));
    assert_eq!(ist0101(&json_of(&out)), ["VirtualService default/pricing"]);
    // Every kind was listed across all namespaces.
    assert!(
        e.fake
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/apis/networking.istio.io/v1/virtualservices")
    );

    // -A: every namespace; -n: that one.
    let out = e.meshctl(&["analyze", "--use-kube", "-A", "-o", "json"]);
    assert_eq!(
        ist0101(&json_of(&out)),
        [
            "VirtualService default/pricing",
            "VirtualService shop/pricing"
        ]
    );
    let out = e.meshctl(&["analyze", "--use-kube", "-n", "shop", "-o", "json"]);
    assert_eq!(ist0101(&json_of(&out)), ["VirtualService shop/pricing"]);

    // A file overlaid: the Service the route needs, and a fixed copy of shop's route.
    let file = e.dir.join("fix.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: pricing-svc, namespace: default}\n\
         spec: {selector: {app: pricing}, ports: [{name: http, port: 80}]}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: pricing, namespace: shop}\n\
         spec: {hosts: [pricing], http: [{route: [{destination: {host: pricing-svc.default.svc.cluster.local}}]}]}\n",
    )
    .unwrap();
    let out = e.meshctl(&[
        "analyze",
        "--use-kube",
        "-A",
        "-o",
        "json",
        file.to_str().unwrap(),
    ]);
    assert!(ist0101(&json_of(&out)).is_empty(), "{}", text(&out.stdout));
}

#[test]
fn analyze_use_kube_fails_clearly_without_a_cluster() {
    let e = env("analyze-down");
    let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["analyze", "--use-kube", "--kubeconfig"])
        .arg(&e.kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).starts_with("Error: --use-kube: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn proxy_status_and_proxy_config_through_the_api_servers_proxy_subresource() {
    let e = env("relay");
    e.fake
        .with(|s| s.syncz = json!([syncz_entry("reviews-v1-abc", "SYNCED")]));
    // The fallback transport (port-forward, the default, is in tests/port_forward.rs).
    let out = e.meshctl(&[
        "proxy-status",
        "--use-kube",
        "--kube-transport",
        "api-proxy",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("reviews-v1-abc.default"), "{stdout}");
    assert!(stdout.contains("SYNCED"), "{stdout}");
    assert!(e.fake.requests().iter().any(
        |r| r.path == "/api/v1/namespaces/istio-system/services/meshd:15014/proxy/debug/syncz"
    ));

    // A proxy's admin API through its pod: the same table as from the saved dump.
    let dump_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/envoy-dumps/header-routing-client.json");
    let dump = std::fs::read_to_string(&dump_path).unwrap();
    e.fake.with(|s| {
        s.proxied
            .insert("pods/default/client-7f9c:15000/config_dump".into(), dump)
    });
    let live = e.meshctl(&[
        "proxy-config",
        "cluster",
        "client-7f9c.default",
        "--use-kube",
        "--kube-transport",
        "api-proxy",
    ]);
    assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
    let saved = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(["proxy-config", "cluster", "--file"])
        .arg(&dump_path)
        .output()
        .unwrap();
    assert_eq!(saved.status.code(), Some(0));
    assert!(!live.stdout.is_empty());
    assert_eq!(text(&live.stdout), text(&saved.stdout));

    // A pod the API server cannot reach: a clear error, not a hang.
    let out = e.meshctl(&[
        "proxy-config",
        "cluster",
        "gone-1.default",
        "--use-kube",
        "--kube-transport",
        "api-proxy",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!text(&out.stderr).is_empty());
}

/// A server-side apply through plain HTTP/1.1: the status code and the body.
fn apply_raw(fake: &FakeApi, path: &str, body: &J) -> (u16, J) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(fake.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let body = body.to_string();
    write!(
        stream,
        "PATCH {path}?fieldManager=test HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer fake-token\r\nContent-Type: application/apply-patch+yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let (_, payload) = response.split_once("\r\n\r\n").unwrap();
    (code, serde_json::from_str(payload).unwrap())
}

/// Once the CRDs are installed, the fake applies Istio objects through their schemas as
/// the API server would: wrong types and unknown enum values are refused (422), a field
/// the model does not have is pruned, a valid object is stored whole.
#[test]
fn installed_crd_schemas_refuse_wrong_types_and_prune_unknown_fields() {
    let e = env("schema");
    let out = e.meshctl(&["install", "--profile", "minimal", "--timeout", "20s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = "/apis/networking.istio.io/v1/namespaces/istio-system/virtualservices/reviews";
    let vs = |http: J| {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "reviews", "namespace": "istio-system"},
               "spec": {"hosts": ["reviews"], "http": http}})
    };

    let (code, status) = apply_raw(
        &e.fake,
        path,
        &vs(json!([{"route": [{"destination": {"host": "reviews"}, "weight": true}]}])),
    );
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("spec.http[0].route[0].weight: must be an integer or a string"),
        "{message}"
    );
    assert!(e.fake.object(path).is_none());

    let (code, status) = apply_raw(
        &e.fake,
        path,
        &vs(json!([{"route": [{"destination": {"host": "reviews"}}],
                     "corsPolicy": {"unmatchedPreflights": "DROP"}}])),
    );
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("\"DROP\" is not one of"),
        "{status}"
    );

    let (code, status) = apply_raw(
        &e.fake,
        path,
        &vs(
            json!([{"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": "100"}],
                     "futureKnob": 1}]),
        ),
    );
    assert_eq!(code, 200, "{status}");
    let stored = e.fake.object(path).unwrap();
    assert_eq!(
        stored["spec"]["http"],
        json!([{"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": "100"}]}])
    );
}
