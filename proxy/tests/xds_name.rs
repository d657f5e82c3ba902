//! `--xds-address HOST:PORT`: both engines reach meshd through a host name (`localhost`).
//! The native engine, started before meshd listens, resolves the name again on its retries
//! and opens its ADS stream once meshd is up; Envoy's bootstrap with a STRICT_DNS cluster
//! passes `envoy --mode validate` and Envoy's ADS stream reaches the same meshd.
//!
//! meshd runs in-process; the proxies are the `mesh-proxy` binary. Envoy is found through
//! `MESH_ENVOY_BIN` or `PATH` (skipped loudly without it, failing when `CI` is set).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_controlplane::{MeshTranslator, Meshd, Options};

const MESH_PROXY: &str = env!("CARGO_BIN_EXE_mesh-proxy");

/// Each proxy's own loopback address (its outbound listener takes IP:15001).
const NATIVE_IP: &str = "127.10.246.1";
const ENVOY_IP: &str = "127.10.246.2";

const CONFIG: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop}
";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

async fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the proxy (and the Envoy it started) and stops meshd on every path.
struct Guard {
    child: Option<Child>,
    also: Vec<u32>,
    meshd: Option<tokio::task::JoinHandle<Result<(), mesh_controlplane::MeshdError>>>,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in &self.also {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(t) = &self.meshd {
            t.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mesh-proxy-xds-name-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/mesh.yaml"), CONFIG).unwrap();
    dir
}

/// meshd in-process with its xDS server on 127.0.0.1:`xds_port`; returns the debug address.
async fn start_meshd(
    dir: &std::path::Path,
    xds_port: u16,
) -> (
    tokio::task::JoinHandle<Result<(), mesh_controlplane::MeshdError>>,
    SocketAddr,
) {
    let xds: SocketAddr = format!("127.0.0.1:{xds_port}").parse().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let opts = Options::new(dir.join("config"), xds, any);
    let meshd = Meshd::bind(opts, Arc::new(MeshTranslator)).await.unwrap();
    let debug = meshd.debug_address();
    (tokio::spawn(meshd.run(std::future::pending::<()>())), debug)
}

/// meshd's `/debug/syncz` lists `node`.
fn meshd_knows(debug: SocketAddr, node: &str) -> Option<()> {
    http_get(debug, "/debug/syncz")
        .filter(|b| b.contains(node))
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_engine_resolves_a_host_name_and_retries_until_meshd_is_up() {
    let dir = scratch("native");
    let (xds_port, admin_port, health_port) = (free_port(), free_port(), free_port());
    let child = Command::new(MESH_PROXY)
        .args([
            "run",
            "--engine",
            "native",
            "--workload",
            "shop/byname",
            "--ip",
            NATIVE_IP,
        ])
        .args(["--admin-port", &admin_port.to_string()])
        .args(["--health-port", &health_port.to_string()])
        .args(["--xds-address", &format!("localhost:{xds_port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard {
        child: Some(child),
        also: Vec::new(),
        meshd: None,
        dir: dir.clone(),
    };
    let admin: SocketAddr = format!("{NATIVE_IP}:{admin_port}").parse().unwrap();
    // No meshd yet: the proxy serves its admin API, not connected.
    let stats = wait_for("admin /stats", Duration::from_secs(20), || {
        http_get(admin, "/stats")
    })
    .await;
    assert!(
        stats.contains("control_plane.connected_state: 0"),
        "{stats}"
    );
    // meshd comes up on the port the name leads to: a retry resolves `localhost` and
    // opens the stream (back-off is at most 10 s).
    let (task, debug) = start_meshd(&dir, xds_port).await;
    guard.meshd = Some(task);
    wait_for("connected_state 1", Duration::from_secs(30), || {
        http_get(admin, "/stats").filter(|s| s.contains("control_plane.connected_state: 1"))
    })
    .await;
    let node = format!("sidecar~{NATIVE_IP}~byname.shop~shop.svc.cluster.local");
    wait_for("meshd lists the proxy", Duration::from_secs(10), || {
        meshd_knows(debug, &node)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_reaches_meshd_through_a_strict_dns_cluster() {
    let Some(envoy) = mesh_core::envoy::locate_for_tests().expect("Envoy") else {
        return;
    };
    let dir = scratch("envoy");
    let xds_port = free_port();
    let xds = format!("localhost:{xds_port}");
    // The bootstrap Envoy gets for a name passes its own validation.
    let out = Command::new(MESH_PROXY)
        .args(["bootstrap", "--xds-address", &xds])
        .args(["--workload", "shop/byname-envoy", "--ip", ENVOY_IP])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["static_resources"]["clusters"][0]["type"],
        "STRICT_DNS"
    );
    let file = dir.join("bootstrap.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let v = Command::new(&envoy)
        .args(["--mode", "validate", "--use-dynamic-base-id", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "envoy rejected the bootstrap:\n{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );

    // And Envoy under the agent reaches meshd by that name.
    let (task, debug) = start_meshd(&dir, xds_port).await;
    let admin_port = free_port();
    let child = Command::new(MESH_PROXY)
        .args(["run", "--engine", "envoy", "--xds-address", &xds])
        .args(["--workload", "shop/byname-envoy", "--ip", ENVOY_IP])
        .args([
            "--admin-port",
            &admin_port.to_string(),
            "--log-level",
            "error",
        ])
        .arg("--envoy-bin")
        .arg(&envoy)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let agent = child.id();
    let mut guard = Guard {
        child: Some(child),
        also: Vec::new(),
        meshd: Some(task),
        dir,
    };
    let admin: SocketAddr = format!("{ENVOY_IP}:{admin_port}").parse().unwrap();
    let limit = Duration::from_secs(30);
    wait_for("envoy admin", limit, || {
        http_get(admin, "/server_info").filter(|r| r.contains("200 OK"))
    })
    .await;
    if let Ok(o) = Command::new("pgrep")
        .args(["-P", &agent.to_string()])
        .output()
    {
        guard.also.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
    }
    wait_for("envoy control_plane.connected_state 1", limit, || {
        http_get(admin, "/stats?filter=control_plane.connected_state")
            .filter(|s| s.contains("control_plane.connected_state: 1"))
    })
    .await;
    let node = format!("sidecar~{ENVOY_IP}~byname-envoy.shop~shop.svc.cluster.local");
    wait_for("meshd lists Envoy", Duration::from_secs(10), || {
        meshd_knows(debug, &node)
    })
    .await;
}
