//! Port-forward through the API server, against the fake API server (tests/support/
//! fake_api.rs) speaking the kubelet's `v4.channel.k8s.io` websocket framing, with a real
//! meshd and a real mesh-proxy (native engine) admin API on loopback behind it:
//! `proxy-status --use-kube` (table and diff), `proxy-config --use-kube`,
//! `dashboard envoy` (a pod, a Deployment's Ready pod) and `dashboard meshd`; a pod that is
//! not Running and a port that refuses give a clear error and an exit code within bounds.
//! Also `dashboard envoy` in front of a real Envoy's admin page. No live cluster is involved.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mesh_e2e::process::{ChildGuard, Processes, ensure_free, find_envoy, workspace_binary};
use meshctl::demo::config;
use serde_json::{Value as J, json};
use support::fake_api::FakeApi;

/// Addresses no other test uses.
const PREFIX: [u8; 3] = [127, 0, 93];
/// An address nothing listens on (the "refused" pod's admin port).
const CLOSED: &str = "127.0.93.250:15000";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Mesh {
    fake: FakeApi,
    kubeconfig: PathBuf,
    dir: PathBuf,
    details_admin: SocketAddr,
    debug: SocketAddr,
    _procs: Processes,
}

impl Mesh {
    fn meshctl(&self, args: &[&str]) -> (Output, Duration) {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "fake"])
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        (out, start.elapsed())
    }

    /// Port-forward requests the fake saw for `pod` (NS/NAME), with their `ports`.
    fn forwards_to(&self, pod: &str) -> Vec<String> {
        let (ns, name) = pod.split_once('/').unwrap();
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/portforward");
        self.fake
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.query.get("ports").cloned().unwrap_or_default())
            .collect()
    }

    fn clear_requests(&self) {
        self.fake.with(|s| s.requests.clear());
    }

    /// `meshctl dashboard ARGS` in the background; its URL once printed.
    fn dashboard(&self, name: &str, args: &[&str]) -> (ChildGuard, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
        cmd.arg("dashboard")
            .args(args)
            .args(["--browser=false", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(["--context", "fake"])
            .env_remove("KUBECONFIG");
        let log = self.dir.join(format!("{name}.log"));
        let mut child = ChildGuard::spawn(name, cmd, &log).unwrap();
        let start = Instant::now();
        loop {
            let out = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(url) = out.lines().find(|l| l.starts_with("http://")) {
                return (child, url.to_owned());
            }
            if let Some(status) = child.exited() {
                panic!("dashboard exited with {status}:\n{out}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no URL within 30 s:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.dir.join("kube"));
    }
}

/// GET `path` on `addr` over one HTTP/1.1 connection (bounded): status and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = text(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn url_addr(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://localhost:").unwrap();
    let (port, path) = rest.split_once('/').unwrap_or((rest, ""));
    (
        SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())),
        format!("/{path}"),
    )
}

fn pod(name: &str, ns: &str, labels: J, phase: &str, ready: bool) -> J {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "x",
                 "ports": [{"name": "http-monitoring", "containerPort": 15014}]}]},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

/// meshd and one native sidecar (details-v1) on 127.0.93.x, and the fake API server that
/// knows their pods and forwards to their ports.
fn mesh(dir: &Path) -> Mesh {
    let _ = std::fs::remove_dir_all(dir);
    let workloads = config::workloads(PREFIX).unwrap();
    config::write(&dir.join("config"), &workloads).unwrap();
    let details = workloads
        .iter()
        .find(|w| w.name == "details-v1")
        .unwrap()
        .clone();
    let meshd_ip = format!("{}.{}.{}.1", PREFIX[0], PREFIX[1], PREFIX[2]);
    let xds: SocketAddr = format!("{meshd_ip}:15010").parse().unwrap();
    let debug: SocketAddr = format!("{meshd_ip}:15014").parse().unwrap();
    let details_admin = SocketAddr::new(details.ip.into(), 15000);
    for a in [xds, debug, details_admin] {
        ensure_free(a).unwrap();
    }
    let mut procs = Processes::default();
    let mut cmd = Command::new(workspace_binary("meshd").unwrap());
    cmd.arg("--config-dir").arg(dir.join("config")).args([
        "--xds-address",
        &xds.to_string(),
        "--debug-address",
        &debug.to_string(),
    ]);
    procs.push(ChildGuard::spawn("meshd", cmd, &dir.join("meshd.log")).unwrap());
    let mut cmd = Command::new(workspace_binary("mesh-proxy").unwrap());
    cmd.args([
        "run",
        "--engine",
        "native",
        "--xds-address",
        &xds.to_string(),
    ])
    .args([
        "--workload",
        &format!("{}/{}", details.namespace, details.name),
    ])
    .args(["--ip", &details.ip.to_string()])
    .args(["--service-account", &details.service_account])
    .args(["--label", &format!("app={}", details.app)])
    .args(["--label", &format!("version={}", details.version)]);
    procs.push(ChildGuard::spawn("details-v1", cmd, &dir.join("details-v1.log")).unwrap());

    let fake = FakeApi::start();
    let kubeconfig = fake.write_kubeconfig(&dir.join("kube"));
    let app = |app: &str, version: &str| json!({"app": app, "version": version});
    fake.put(
        "/api/v1/namespaces/istio-system/services/meshd",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "meshd", "namespace": "istio-system"},
               "spec": {"selector": {"app": "meshd", "istio": "pilot"},
                        "ports": [{"name": "http-monitoring", "port": 15014, "targetPort": "http-monitoring"}]}}),
    );
    let meshd_labels = json!({"app": "meshd", "istio": "pilot"});
    // The first by name is not Ready: the forward must pick the Ready one.
    fake.put(
        "/api/v1/namespaces/istio-system/pods/meshd-5c8d-aaaaa",
        pod(
            "meshd-5c8d-aaaaa",
            "istio-system",
            meshd_labels.clone(),
            "Running",
            false,
        ),
    );
    fake.put(
        "/api/v1/namespaces/istio-system/pods/meshd-5c8d-bbbbb",
        pod(
            "meshd-5c8d-bbbbb",
            "istio-system",
            meshd_labels,
            "Running",
            true,
        ),
    );
    fake.put(
        "/api/v1/namespaces/bookinfo/pods/details-v1",
        pod(
            "details-v1",
            "bookinfo",
            app("details", "v1"),
            "Running",
            true,
        ),
    );
    fake.put(
        "/api/v1/namespaces/bookinfo/pods/pending-1",
        pod(
            "pending-1",
            "bookinfo",
            app("pending", "v1"),
            "Pending",
            false,
        ),
    );
    fake.put(
        "/api/v1/namespaces/bookinfo/pods/refused-1",
        pod(
            "refused-1",
            "bookinfo",
            app("refused", "v1"),
            "Running",
            true,
        ),
    );
    fake.put(
        "/apis/apps/v1/namespaces/bookinfo/deployments/details-v1",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "details-v1", "namespace": "bookinfo"},
               "spec": {"selector": {"matchLabels": {"app": "details", "version": "v1"}},
                        "template": {"metadata": {"labels": {"app": "details", "version": "v1"}}}}}),
    );
    fake.with(|s| {
        s.forwards
            .insert("istio-system/meshd-5c8d-bbbbb:15014".into(), debug);
        s.forwards
            .insert("bookinfo/details-v1:15000".into(), details_admin);
        s.forwards
            .insert("bookinfo/refused-1:15000".into(), CLOSED.parse().unwrap());
    });
    Mesh {
        fake,
        kubeconfig,
        dir: dir.to_owned(),
        details_admin,
        debug,
        _procs: procs,
    }
}

/// Waits (bounded) until details-v1's sidecar is SYNCED on every type, asking meshd directly.
fn wait_synced(m: &Mesh) {
    let start = Instant::now();
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args(["proxy-status", "-o", "json", "--controlplane"])
            .arg(format!("http://{}", m.debug))
            .output()
            .unwrap();
        let rows: Vec<J> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let synced = rows.iter().any(|r| {
            r["name"] == "details-v1.bookinfo"
                && ["cds", "lds"]
                    .iter()
                    .all(|t| r["types"][t]["state"] == "SYNCED")
        });
        if synced {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "details-v1 not SYNCED within 60 s: {}{}\nmeshd: {}\nproxy: {}",
            text(&out.stdout),
            text(&out.stderr),
            mesh_e2e::process::tail(&m.dir.join("meshd.log"), 20),
            mesh_e2e::process::tail(&m.dir.join("details-v1.log"), 20),
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn proxy_status_proxy_config_and_dashboard_through_port_forward() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("port-forward");
    let m = mesh(&dir);
    wait_synced(&m);

    // proxy-status: meshd's debug API through its Service's Ready pod.
    m.clear_requests();
    let (out, _) = m.meshctl(&["proxy-status", "--use-kube", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: Vec<J> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        rows.iter().any(|r| r["name"] == "details-v1.bookinfo"),
        "{rows:#?}"
    );
    assert_eq!(m.forwards_to("istio-system/meshd-5c8d-bbbbb"), ["15014"]);
    assert!(m.forwards_to("istio-system/meshd-5c8d-aaaaa").is_empty());
    assert!(
        m.fake.requests().iter().all(|r| !r.path.contains("/proxy")),
        "no proxy subresource by default"
    );
    // The pods were found by the Service's selector.
    assert!(m.fake.requests().iter().any(|r| {
        r.path == "/api/v1/namespaces/istio-system/pods"
            && r.query.get("labelSelector").map(String::as_str) == Some("app=meshd,istio=pilot")
    }));

    // proxy-status PROXY: meshd's config against the sidecar's own, both forwarded.
    let (out, _) = m.meshctl(&["proxy-status", "--use-kube", "details-v1.bookinfo"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for s in ["Clusters Match", "Listeners Match", "Routes Match"] {
        assert!(stdout.contains(s), "{s} missing:\n{stdout}");
    }
    assert_eq!(m.forwards_to("bookinfo/details-v1"), ["15000"]);

    // proxy-config through the pod: the same table as from the admin address itself.
    for kind in ["cluster", "listener"] {
        let (live, _) = m.meshctl(&["proxy-config", kind, "details-v1.bookinfo", "--use-kube"]);
        assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
        let direct = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args(["proxy-config", kind, "--admin"])
            .arg(m.details_admin.to_string())
            .output()
            .unwrap();
        assert_eq!(direct.status.code(), Some(0), "{}", text(&direct.stderr));
        assert!(
            text(&live.stdout).lines().count() > 1,
            "{}",
            text(&live.stdout)
        );
        assert_eq!(text(&live.stdout), text(&direct.stdout));
    }

    // A port the kubelet cannot connect to: the error channel's message, promptly.
    let (out, took) = m.meshctl(&[
        "proxy-config",
        "cluster",
        "refused-1.bookinfo",
        "--use-kube",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains(
            "error: port-forward to pod bookinfo/refused-1 port 15000: error forwarding port 15000 to pod refused-1"
        ) && stderr.contains("connection refused"),
        "{stderr}"
    );
    // ... then what could not be read, without local mode's advice about addresses.
    assert!(
        stderr.contains(
            "Error: cannot read refused-1.bookinfo's admin API (port 15000) through the API server's port-forward"
        ) && !stderr.contains("local mode"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    // A pod that is not Running: refused before any forward.
    let (out, took) = m.meshctl(&[
        "proxy-config",
        "cluster",
        "pending-1.bookinfo",
        "--use-kube",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("pod bookinfo/pending-1 is Pending, not Running"),
        "{stderr}"
    );
    assert!(m.forwards_to("bookinfo/pending-1").is_empty());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let (out, _) = m.meshctl(&["proxy-status", "--use-kube", "gone-1.bookinfo"]);
    assert_eq!(out.status.code(), Some(69));
    assert!(
        text(&out.stderr).contains("pod bookinfo/gone-1 not found"),
        "{}",
        text(&out.stderr)
    );

    // The fallback through the proxy subresource is still there, behind its flag.
    m.clear_requests();
    let (out, _) = m.meshctl(&[
        "proxy-config",
        "cluster",
        "details-v1.bookinfo",
        "--use-kube",
        "--kube-transport",
        "api-proxy",
    ]);
    assert_ne!(out.status.code(), Some(0), "the fake has no canned answer");
    assert!(
        m.fake.requests().iter().any(
            |r| r.path == "/api/v1/namespaces/bookinfo/pods/details-v1:15000/proxy/config_dump"
        )
    );
    assert!(m.forwards_to("bookinfo/details-v1").is_empty());

    // dashboard envoy: the printed URL reaches the sidecar's admin API; every connection
    // gets its own forwarded stream.
    m.clear_requests();
    let (mut dash, url) = m.dashboard("dash-envoy", &["envoy", "details-v1", "-n", "bookinfo"]);
    let (local, path) = url_addr(&url);
    assert_eq!(path, "/", "{url}");
    let (status, body) = http_get(local, "/config_dump");
    assert_eq!(status, 200, "{body}");
    let dump: J = serde_json::from_str(&body).unwrap();
    assert!(dump["configs"].as_array().is_some_and(|c| !c.is_empty()));
    let (status, _) = http_get(local, "/ready");
    assert_eq!(status, 200);
    // The start-up check and the two requests: three streams.
    assert_eq!(m.forwards_to("bookinfo/details-v1").len(), 3);
    dash.stop(Duration::from_secs(5));
    assert_eq!(
        dash.exited().and_then(|s| s.code()),
        Some(0),
        "SIGTERM ends it cleanly"
    );

    // A Deployment's Ready pod, on a port given.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let (mut dash, url) = m.dashboard(
        "dash-deploy",
        &[
            "envoy",
            "deploy/details-v1",
            "-n",
            "bookinfo",
            "--port",
            &port,
        ],
    );
    assert_eq!(url, format!("http://localhost:{port}"));
    let (local, _) = url_addr(&url);
    let (status, body) = http_get(local, "/clusters?format=json");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("cluster_statuses"), "{body}");
    dash.stop(Duration::from_secs(5));

    // dashboard meshd: the debug API's syncz through the meshd Service's Ready pod.
    let (mut dash, url) = m.dashboard("dash-meshd", &["meshd"]);
    let (local, path) = url_addr(&url);
    assert_eq!(path, "/debug/syncz");
    let (status, body) = http_get(local, &path);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("details-v1"), "{body}");
    dash.stop(Duration::from_secs(5));

    // Refused and not-Running pods: a clear error and exit 69, no URL, no hang.
    for (pod, expect) in [
        ("refused-1", "connection refused"),
        (
            "pending-1",
            "pod bookinfo/pending-1 is Pending, not Running",
        ),
    ] {
        let (out, took) = m.meshctl(&[
            "dashboard",
            "envoy",
            pod,
            "-n",
            "bookinfo",
            "--browser=false",
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(69), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
        assert!(took < Duration::from_secs(20), "took {took:?}");
    }
    let (out, _) = m.meshctl(&["dashboard", "envoy", "job/x", "--browser=false"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));

    // Without RBAC for pods/portforward: the API server's reason, not a bare hang-up.
    m.fake.with(|s| s.denied.insert("pods/portforward".into()));
    let (out, _) = m.meshctl(&["proxy-status", "--use-kube"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(
        stderr.contains(
            "error: port-forward to pod istio-system/meshd-5c8d-bbbbb port 15014: pods \"meshd-5c8d-bbbbb\" is forbidden: User \"tester\" cannot create resource \"pods/portforward\""
        ) && stderr.contains("(Forbidden, 403)"),
        "{stderr}"
    );
}

#[test]
fn dashboard_envoy_serves_a_real_envoy_admin_page() {
    let Some(envoy) = find_envoy().unwrap() else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("port-forward-envoy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let admin: SocketAddr = "127.0.93.30:15000".parse().unwrap();
    ensure_free(admin).unwrap();
    let mut cmd = Command::new(envoy);
    cmd.args([
        "--config-yaml",
        &format!(
            "{{admin: {{address: {{socket_address: {{address: {}, port_value: {}}}}}}}}}",
            admin.ip(),
            admin.port()
        ),
        "--disable-hot-restart",
        "-l",
        "warn",
    ]);
    let _envoy = ChildGuard::spawn("envoy", cmd, &dir.join("envoy.log")).unwrap();
    let start = Instant::now();
    while TcpStream::connect_timeout(&admin, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "Envoy's admin did not listen within 20 s: {}",
            mesh_e2e::process::tail(&dir.join("envoy.log"), 20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let fake = FakeApi::start();
    let kubeconfig = fake.write_kubeconfig(&dir.join("kube"));
    fake.put(
        "/api/v1/namespaces/shop/pods/web-7f9c",
        pod("web-7f9c", "shop", json!({"app": "web"}), "Running", true),
    );
    fake.with(|s| s.forwards.insert("shop/web-7f9c:15000".into(), admin));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.args([
        "dashboard",
        "envoy",
        "web-7f9c.shop",
        "--browser=false",
        "--kubeconfig",
    ])
    .arg(&kubeconfig)
    .args(["--context", "fake"])
    .env_remove("KUBECONFIG");
    let log = dir.join("dashboard.log");
    let mut dash = ChildGuard::spawn("dashboard", cmd, &log).unwrap();
    let start = Instant::now();
    let url = loop {
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = out.lines().find(|l| l.starts_with("http://")) {
            break url.to_owned();
        }
        assert!(dash.exited().is_none(), "dashboard exited:\n{out}");
        assert!(start.elapsed() < Duration::from_secs(30), "no URL:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (local, _) = url_addr(&url);
    let (status, page) = http_get(local, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<title>Envoy Admin</title>"), "{page}");
    let (status, info) = http_get(local, "/server_info");
    assert_eq!(status, 200);
    let info: J = serde_json::from_str(&info).unwrap();
    assert_eq!(info["state"], "LIVE");
    assert!(
        info["version"].as_str().unwrap().contains("/1.40."),
        "{info}"
    );
    dash.stop(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(dir.join("kube"));
}
