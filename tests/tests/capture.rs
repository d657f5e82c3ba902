//! Transparent capture, end to end: two network namespaces joined by a veth pair stand in
//! for a pod and a peer. `mesh-proxy init` installs the capture rules in the pod; meshd and
//! `mesh-proxy run --engine envoy` run there in Kubernetes mode (a non-loopback pod IP, so
//! `virtualOutbound` on 15001 with original destination and `virtualInbound` on 15006).
//! Then:
//!
//! - outbound: an unmodified client in the pod (curl, as an ordinary user) sends plain HTTP
//!   to the Service's cluster IP, which exists nowhere, and is answered by the server in the
//!   peer namespace through Envoy (Envoy's headers arrive, its outbound cluster counts the
//!   request); the proxy's own user is not captured (the same request as that user fails);
//! - inbound: the peer calls the pod's IP on the app's port; the app listens on 127.0.0.1
//!   only, so the answer can only come through the capture to 15006 (Envoy's inbound cluster
//!   counts it); a port no Service names passes through Envoy (`InboundPassthroughCluster`,
//!   from 127.0.0.6) once, without looping back into the capture;
//! - mutual TLS in Kubernetes mode: meshd runs its CA and the sidecar holds a workload
//!   certificate, so `virtualInbound` carries PeerAuthentication chains. Under the default
//!   PERMISSIVE the plaintext requests above pass (the `raw_buffer` chain), a client with a
//!   certificate of the mesh's trust domain (signed by meshd's root with openssl) offering
//!   the mesh ALPN gets mTLS, and TLS without it (the app's own) is passed to the app
//!   untouched; once a STRICT PeerAuthentication arrives, the peer's plaintext request is
//!   refused while the peer with the certificate reaches the app over mTLS, and the app
//!   sees its SPIFFE id in `x-forwarded-client-cert`; the port no Service names then takes
//!   mTLS only as well (plaintext closed, mTLS ended by the sidecar and passed through). Here the peer has no sidecar;
//!   `capture_mtls.rs` runs mTLS between two captured pods, sidecar to sidecar.
//!
//! Needs root, `ip`, `iptables-restore`, `curl`, `openssl`, `setpriv` and Envoy. Under `CI`
//! a missing one fails the test; otherwise it is skipped with a loud message. The
//! namespaces are deleted on every path (a guard), which also removes the veth pair and the
//! rules.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mesh_e2e::process::{find_envoy, workspace_binary};
use netns::{
    Netns, Sidecar, USER, curl, envoy_stat, in_ns, logs, meshd_args, must, spawn_in_ns, veth,
};
use serde_json::Value as J;

const POD_IP: &str = "10.77.0.2";
const PEER_IP: &str = "10.77.0.3";
const SERVICE_VIP: &str = "10.96.7.7";

fn config(dir: &Path) {
    let yaml = format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: shop
spec:
  clusterIP: {SERVICE_VIP}
  selector:
    app: server
  ports:
  - name: http
    port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: client
  namespace: shop
spec:
  clusterIP: 10.96.7.8
  selector:
    app: client
  ports:
  - name: http
    port: 9080
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: shop
  labels:
    app: client
spec:
  containers:
  - name: app
    image: mesh-echo
status:
  podIP: {POD_IP}
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: shop
  labels:
    app: server
spec:
  containers:
  - name: app
    image: mesh-echo
status:
  podIP: {PEER_IP}
"
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("mesh.yaml"), yaml).unwrap();
}

/// A STRICT PeerAuthentication for the pod's namespace, as a second file meshd picks up.
fn strict(dir: &Path) {
    let yaml = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: shop
spec:
  mtls:
    mode: STRICT
";
    std::fs::write(dir.join("strict.yaml"), yaml).unwrap();
}

/// A client certificate for `spiffe://cluster.local/ns/shop/sa/peer`, signed by meshd's
/// root in `ca`; (certificate, key) paths.
fn peer_certificate(ca: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let (key, csr, cert, ext) = (
        dir.join("peer-key.pem"),
        dir.join("peer.csr"),
        dir.join("peer-cert.pem"),
        dir.join("peer.ext"),
    );
    std::fs::write(
        &ext,
        "subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/peer\n\
         extendedKeyUsage=clientAuth\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n",
    )
    .unwrap();
    let p = |x: &Path| x.display().to_string();
    must(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/O=peer",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
        ],
    );
    must(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca.join("root-cert.pem")),
            "-CAkey",
            &p(&ca.join("root-key.pem")),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            &p(&ext),
            "-out",
            &p(&cert),
        ],
    );
    (cert, key)
}

/// An HTTP/1.1 request over TLS from `ns` to the pod's port 9080 with the mesh's ALPN
/// (`istio-http/1.1`, as a meshed client offers it) and the client certificate; the
/// response (status line, headers and body), which must be a 200.
fn mesh_alpn_request(ns: &str, cert: &Path, key: &Path) -> String {
    let script = format!(
        "printf 'GET /mesh-alpn HTTP/1.1\\r\\nHost: client\\r\\nConnection: close\\r\\n\\r\\n' | \
         timeout 5 openssl s_client -quiet -ign_eof -connect {POD_IP}:9080 \
         -alpn istio-http/1.1 -cert {} -key {}",
        cert.display(),
        key.display()
    );
    let out = in_ns(ns, None, &["sh", "-c", &script]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.starts_with("HTTP/1.1 200"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn unmodified_client_traffic_passes_through_the_sidecar() {
    if !netns::can_run("unmodified_client_traffic_passes_through_the_sidecar") {
        return;
    }
    let Some(envoy) = find_envoy().unwrap() else {
        return; // find_envoy fails under CI and prints the skip otherwise.
    };
    let meshd = workspace_binary("meshd").unwrap();
    let proxy = workspace_binary("mesh-proxy").unwrap();
    let echo = workspace_binary("mesh-echo").unwrap();

    let id = std::process::id() % 100_000;
    let (pod, peer) = (format!("mcap{id}p"), format!("mcap{id}q"));
    let net = Netns::create(&[pod.clone(), peer.clone()]);
    let (pod_cidr, peer_cidr) = (format!("{POD_IP}/24"), format!("{PEER_IP}/24"));
    veth(
        (&pod, &format!("mc{id}a"), Some(&pod_cidr)),
        (&peer, &format!("mc{id}b"), Some(&peer_cidr)),
    );
    // Service VIPs are routed off the pod, as on a node; only the capture answers them.
    must(
        "ip",
        &["-n", &pod, "route", "add", "default", "via", PEER_IP],
    );

    // The init step, exactly as the injected init container runs it.
    let p = proxy.to_str().unwrap();
    let init_args = netns::init_args(p);
    let dry = in_ns(&pod, None, &[init_args.as_slice(), &["--dry-run"]].concat());
    assert!(dry.status.success());
    let rules = String::from_utf8_lossy(&dry.stdout).into_owned();
    netns::capture(&pod, &proxy);
    let saved = String::from_utf8_lossy(&in_ns(&pod, None, &["iptables-save", "-t", "nat"]).stdout)
        .into_owned();
    for chain in [
        "ISTIO_INBOUND",
        "ISTIO_IN_REDIRECT",
        "ISTIO_OUTPUT",
        "ISTIO_REDIRECT",
    ] {
        assert!(
            saved.contains(&format!(":{chain} ")),
            "{chain} missing:\n{saved}"
        );
    }
    assert!(rules.contains("-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"));

    let tmp = netns::temp_dir(&format!("capture-{id}"));
    let cfg = tmp.join("config");
    config(&cfg);
    let ca = tmp.join("ca");
    let s = |x: &str| x.to_owned();
    let meshd_guard = spawn_in_ns(
        "meshd",
        &pod,
        None,
        &meshd_args(&meshd, &cfg, &ca, None),
        &tmp.join("meshd.log"),
    );
    let server = spawn_in_ns(
        "server",
        &peer,
        None,
        &[
            echo.display().to_string(),
            s("--listen"),
            format!("{PEER_IP}:8080"),
            s("--name"),
            s("server"),
            s("--in-netns"),
        ],
        &tmp.join("server.log"),
    );
    let app = spawn_in_ns(
        "app",
        &pod,
        Some(USER),
        &[
            echo.display().to_string(),
            s("--listen"),
            s("127.0.0.1:9080"),
            s("--name"),
            s("client-app"),
        ],
        &tmp.join("app.log"),
    );
    // An app port no Service names: inbound traffic to it passes through Envoy untouched.
    let extra = spawn_in_ns(
        "extra",
        &pod,
        Some(USER),
        &[
            echo.display().to_string(),
            s("--listen"),
            s("0.0.0.0:7777"),
            s("--name"),
            s("unlisted-port"),
            s("--in-netns"),
        ],
        &tmp.join("extra.log"),
    );
    let sidecar_args = Sidecar {
        proxy: &proxy,
        envoy: &envoy,
        workload: "shop/client",
        ip: POD_IP,
        labels: &["app=client"],
        service_account: None,
        ca: &ca,
    }
    .args();
    let sidecar = spawn_in_ns(
        "mesh-proxy",
        &pod,
        None,
        &sidecar_args,
        &tmp.join("proxy.log"),
    );
    let all = [&meshd_guard, &server, &app, &extra, &sidecar];

    // Outbound: the client names the service; DNS would give the VIP (curl --resolve).
    let host = "server.shop.svc.cluster.local";
    let resolve = format!("{host}:8080:{SERVICE_VIP}");
    let url = format!("http://{host}:8080/through-the-mesh");
    let deadline = Instant::now() + Duration::from_secs(45);
    let body = loop {
        match curl(&pod, Some(USER), &["--resolve", &resolve, &url]) {
            Ok(b) => break b,
            Err(e) if Instant::now() > deadline => {
                panic!("the client never got an answer: {e}\n{}", logs(&all))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    };
    let reply: J = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["name"], "server", "{body}");
    assert_eq!(reply["path"], "/through-the-mesh");
    // Headers only Envoy adds: the request went through the sidecar.
    for h in ["x-request-id", "x-envoy-attempt-count", "x-forwarded-proto"] {
        assert!(reply["headers"].get(h).is_some(), "no {h}: {body}");
    }
    let outbound = "cluster.outbound|8080||server.shop.svc.cluster.local.upstream_rq_total";
    assert!(
        envoy_stat(&pod, POD_IP, outbound) >= 1,
        "{outbound} did not count"
    );

    // The proxy's own uid is not captured: the VIP is unreachable to it.
    assert!(
        curl(&pod, None, &["-m", "2", "--resolve", &resolve, &url]).is_err(),
        "a request from the proxy's uid was captured"
    );

    // Inbound: nothing listens on POD_IP:9080 (the app is on 127.0.0.1:9080): only the
    // redirect to 15006 and Envoy's inbound cluster can answer.
    let inbound = curl(&peer, None, &[&format!("http://{POD_IP}:9080/inbound")])
        .unwrap_or_else(|e| panic!("inbound request failed: {e}\n{}", logs(&all)));
    let reply: J = serde_json::from_str(&inbound).unwrap();
    assert_eq!(reply["name"], "client-app", "{inbound}");
    assert!(reply["headers"].get("x-request-id").is_some(), "{inbound}");
    assert!(envoy_stat(&pod, POD_IP, "cluster.inbound|9080||.upstream_rq_total") >= 1);
    let listening =
        String::from_utf8_lossy(&in_ns(&pod, None, &["ss", "-ltn"]).stdout).into_owned();
    assert!(
        !listening.contains(&format!("{POD_IP}:9080")),
        "{listening}"
    );

    // A port no Service names goes through virtualInbound's passthrough, which reaches the
    // app from 127.0.0.6 (exempt from capture) instead of looping back into 15006.
    let passthrough = curl(&peer, None, &[&format!("http://{POD_IP}:7777/unlisted")])
        .unwrap_or_else(|e| panic!("passthrough request failed: {e}\n{}", logs(&all)));
    let reply: J = serde_json::from_str(&passthrough).unwrap();
    assert_eq!(reply["name"], "unlisted-port", "{passthrough}");
    let through = envoy_stat(
        &pod,
        POD_IP,
        "cluster.InboundPassthroughCluster.upstream_cx_total",
    );
    assert_eq!(through, 1, "one connection, no redirect loop");

    // PERMISSIVE tells mesh mTLS from an app's own TLS by ALPN: a client with the mesh's
    // certificate offering `istio-http/1.1` gets the mTLS chain (its identity reaches the
    // app) ...
    let (cert, key) = peer_certificate(&ca, &tmp);
    let via_alpn = mesh_alpn_request(&peer, &cert, &key);
    assert!(
        via_alpn.contains("URI=spiffe://cluster.local/ns/shop/sa/peer"),
        "PERMISSIVE with the mesh ALPN: {via_alpn}\n{}",
        logs(&all)
    );
    // ... while TLS offering only h2/http/1.1 is the app's own and goes to the app as is
    // (a plaintext app cannot answer it).
    // curl from the peer with the mesh certificate (any server certificate accepted).
    let with_cert = |url: &str| {
        curl(
            &peer,
            None,
            &[
                "-k",
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                url,
            ],
        )
    };
    let own_tls = "tcp.inbound|9080||.downstream_cx_total";
    let before = envoy_stat(&pod, POD_IP, own_tls);
    assert!(with_cert(&format!("https://{POD_IP}:9080/own-tls")).is_err());
    assert_eq!(
        envoy_stat(&pod, POD_IP, own_tls),
        before + 1,
        "the app's own TLS passed through"
    );

    // STRICT: plaintext to the app's port is refused once the policy arrives ...
    strict(&cfg);
    let deadline = Instant::now() + Duration::from_secs(20);
    let plain = format!("http://{POD_IP}:9080/plaintext");
    while curl(&peer, None, &[&plain]).is_ok() {
        assert!(
            Instant::now() < deadline,
            "STRICT never applied: plaintext still served\n{}",
            logs(&all)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // ... and a client with a certificate of the mesh reaches the app over mTLS.
    let mtls = with_cert(&format!("https://{POD_IP}:9080/mtls"))
        .unwrap_or_else(|e| panic!("the mTLS request failed: {e}\n{}", logs(&all)));
    let reply: J = serde_json::from_str(&mtls).unwrap();
    assert_eq!(reply["name"], "client-app", "{mtls}");
    let xfcc = reply["headers"]["x-forwarded-client-cert"]
        .as_str()
        .unwrap_or_default();
    assert!(
        xfcc.contains("URI=spiffe://cluster.local/ns/shop/sa/peer"),
        "{mtls}"
    );
    // Without a client certificate the handshake fails.
    assert!(
        curl(
            &peer,
            None,
            &["-k", &format!("https://{POD_IP}:9080/no-cert")]
        )
        .is_err(),
        "STRICT took TLS without a client certificate"
    );
    // The port no Service names follows the workload's STRICT too: plaintext is closed,
    // mTLS is ended by the sidecar and the bytes pass through to the app.
    assert!(
        curl(&peer, None, &[&format!("http://{POD_IP}:7777/unlisted")]).is_err(),
        "STRICT served plaintext on the unlisted port"
    );
    let unlisted = with_cert(&format!("https://{POD_IP}:7777/unlisted-mtls"))
        .unwrap_or_else(|e| panic!("mTLS to the unlisted port failed: {e}\n{}", logs(&all)));
    let reply: J = serde_json::from_str(&unlisted).unwrap();
    assert_eq!(reply["name"], "unlisted-port", "{unlisted}");

    drop(sidecar);
    drop(extra);
    drop(app);
    drop(server);
    drop(meshd_guard);
    drop(net);
    let _ = std::fs::remove_dir_all(&tmp);
}
