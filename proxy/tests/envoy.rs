//! mesh-proxy against real Envoy: the bootstrap passes `envoy --mode validate`, and the
//! agent starts, restarts and stops Envoy.
//!
//! Envoy is found through `MESH_ENVOY_BIN` or `PATH`. Without it these tests skip loudly,
//! unless `CI` is set, where they fail.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MESH_PROXY: &str = env!("CARGO_BIN_EXE_mesh-proxy");

/// Envoy, through mesh-core's shared lookup: `None` (with a loud "SKIPPED") when absent,
/// a failure when `CI` is set.
fn envoy_bin() -> Option<PathBuf> {
    mesh_core::envoy::locate_for_tests().expect("Envoy")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mesh-proxy-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the processes it holds (and any Envoy they started) on every path.
struct Guard {
    child: Option<Child>,
    also: Vec<u32>,
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
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
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

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bootstrap_passes_envoy_validate() {
    let Some(envoy) = envoy_bin() else { return };
    let dir = scratch("validate");
    for ip in ["127.0.0.2", "10.1.2.3"] {
        let out = Command::new(MESH_PROXY)
            .args([
                "bootstrap",
                "--xds-address",
                "127.0.0.1:15010",
                "--workload",
                "shop/catalog-v1",
                "--ip",
                ip,
                "--service-account",
                "catalog",
                "--label",
                "app=catalog",
                "--label",
                "version=v1",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            json["node"]["id"],
            format!("sidecar~{ip}~catalog-v1.shop~shop.svc.cluster.local")
        );
        let file = dir.join(format!("bootstrap-{ip}.json"));
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
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn http_post(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Without meshd the native engine still serves its admin API and health endpoint, says it
/// is not ready, and stops on `POST /quitquitquit`.
#[test]
fn native_engine_serves_admin_without_meshd() {
    let (admin, health, xds) = (free_port(), free_port(), free_port());
    let child = Command::new(MESH_PROXY)
        .args([
            "run",
            "--engine",
            "native",
            "--workload",
            "a/b",
            "--ip",
            "127.0.0.1",
        ])
        .args(["--admin-port", &admin.to_string()])
        .args(["--health-port", &health.to_string()])
        .args(["--xds-address", &format!("127.0.0.1:{xds}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard {
        child: Some(child),
        also: Vec::new(),
    };
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let health_addr: SocketAddr = format!("127.0.0.1:{health}").parse().unwrap();
    let ready = wait_for("admin /ready", Duration::from_secs(20), || {
        http_get(admin_addr, "/ready")
    });
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("PRE_INITIALIZING"), "{ready}");
    let h = http_get(health_addr, "/healthz/ready").unwrap();
    assert!(h.starts_with("HTTP/1.1 503"), "{h}");
    let stats = http_get(admin_addr, "/stats").unwrap();
    assert!(
        stats.contains("control_plane.connected_state: 0"),
        "{stats}"
    );
    let q = http_post(admin_addr, "/quitquitquit").unwrap();
    assert!(q.starts_with("HTTP/1.1 200"), "{q}");
    let child = guard.child.as_mut().unwrap();
    let status = wait_for("exit", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
}

#[test]
fn run_supervises_envoy() {
    let Some(envoy) = envoy_bin() else { return };
    let admin_port = free_port();
    let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let child = Command::new(MESH_PROXY)
        .args([
            "run",
            "--engine",
            "envoy",
            // Nothing listens there: Envoy keeps retrying ADS, which is fine here.
            "--xds-address",
            "127.0.0.1:9",
            "--workload",
            "test/supervised",
            "--ip",
            "127.0.0.1",
            "--admin-port",
            &admin_port.to_string(),
            "--log-level",
            "error",
        ])
        .arg("--envoy-bin")
        .arg(&envoy)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let agent_pid = child.id();
    let mut guard = Guard {
        child: Some(child),
        also: Vec::new(),
    };

    // Envoy comes up: its admin answers.
    let limit = Duration::from_secs(30);
    wait_for("envoy admin", limit, || {
        http_get(admin, "/server_info").filter(|r| r.contains("200 OK"))
    });
    let first = wait_for("envoy pid", limit, || {
        children_of(agent_pid).first().copied()
    });
    guard.also.push(first);

    // Envoy dies: the agent starts another.
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    let second = wait_for("restarted envoy", limit, || {
        children_of(agent_pid).into_iter().find(|&p| p != first)
    });
    guard.also.push(second);
    wait_for("restarted envoy admin", limit, || {
        http_get(admin, "/server_info").filter(|r| r.contains("200 OK"))
    });

    // SIGTERM to the agent: Envoy stops, the agent exits 0 and removes its bootstrap.
    Command::new("kill")
        .args(["-TERM", &agent_pid.to_string()])
        .status()
        .unwrap();
    let mut child = guard.child.take().unwrap();
    let status = wait_for("agent exit", Duration::from_secs(15), || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "agent exited with {status}");
    wait_for("envoy gone", Duration::from_secs(5), || {
        (!alive(second)).then_some(())
    });
    let bootstrap =
        std::env::temp_dir().join(format!("mesh-proxy-test-supervised-{agent_pid}.json"));
    assert!(!bootstrap.exists(), "{} left behind", bootstrap.display());
}
